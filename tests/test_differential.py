"""Differential test: qcow2lint's ``stats`` against ``qemu-img check``.

Each image object of ``qcow2lint check --format json`` carries ``stats`` with
the keys and meaning of ``qemu-img check --output=json``: image-end-offset,
total-clusters, allocated-clusters, fragmented-clusters, compressed-clusters,
leaks, corruptions (catalogue §3.3).  On an image where ``qemu-img check``
completes and finds no corruption (exit 0, or 3: leaks only) the numbers
must be equal; where it finds corruption (exit 2), qcow2lint's corruptions
must be non-zero too.  ``qemu-img check`` exit 1 (the check did not
complete: open refused, check errors) is skipped but counted.  qemu-img
omits zero-valued keys from its JSON: a missing key is 0.

The images:

(a) clean variants (:data:`consistency_builders.VARIANTS`): v2/v3, cluster
    sizes 512 B .. 2 MiB, refcount_bits 1 .. 64, extended L2, zlib / zstd
    compressed data, lazy refcounts, backing files, data files, snapshots
    with data written after them, bitmaps, preallocation, fragmented
    writes, LUKS, and a few made inconsistent on purpose (leaks made by
    raising a refcount, a dirty lazy-refcounts image after a crash, a
    refcount_bits=1 image with a snapshot);
(b) every crafted defect of the rule tests: the rows of
    test_rules_consistency.py and, imported defensively, the ``ROWS`` of
    tests/test_rules.py and every tests/test_rules_*.py (a module whose
    table cannot be imported or built is skipped with its reason).

All images are linted in one qcow2lint run; the summary (how many compared,
agreed, skipped and why) is printed in the test output.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import shutil
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import consistency_builders as cb
import imagebuilder as ib
import test_rules_consistency as consistency
from baseimages import BASES
from harness import TESTS_DIR, Bases, run_cli

#: The statistics the issue names, in qemu-img check's JSON spelling.
KEYS = (
    "image-end-offset", "total-clusters", "allocated-clusters", "fragmented-clusters",
    "compressed-clusters", "leaks", "corruptions",
)  # fmt: skip


# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One image: ``build(directory, env)`` writes it and returns its path
    and how QEMU must open it."""

    name: str
    source: str
    build: Callable[[Path, Env], tuple[Path, ib.Access]]
    #: a build failure of our own recipes fails the test; of other modules' rows it skips
    ours: bool = True


@dataclass
class Env:
    """What case builders share: the session's base images and caches."""

    shared: Bases
    root: Path
    _cache: dict[str, Any] = field(default_factory=dict)

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """One object per key (base providers)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


def _variant_case(variant: cb.Variant) -> Case:
    def build(directory: Path, env: Env) -> tuple[Path, ib.Access]:
        path = directory / f"variant-{variant.name}.qcow2"
        variant.build(path, directory)
        return path, variant.access

    return Case(f"variant:{variant.name}", "clean variants", build)


def _consistency_case(row: consistency.Row) -> Case:
    def build(directory: Path, env: Env) -> tuple[Path, ib.Access]:
        bases = env.cached(
            "consistency", lambda: consistency.Bases(env.shared, cb.LocalImages(env.root / "consistency-bases"))
        )
        sub = directory / "consistency"
        sub.mkdir(exist_ok=True)
        path, _ = consistency.build_row(row, bases, sub)
        return path, bases.access(row.base)

    return Case(f"test_rules_consistency:{row.id}", "test_rules_consistency", build)


# --- other modules' rows, adapted defensively --------------------------------------


def _row_id(row: Any) -> str:
    ident = getattr(row, "id", None)
    return ident if isinstance(ident, str) else f"{getattr(row, 'rule', '?')}[{getattr(row, 'variant', '')}]"


class BaseProvider:
    """Finds a foreign row's base image the way its module does: its own
    base class (HeaderBases), its LOCAL_BASES, snapshot_builders.RECIPES,
    baseimages.BASES or consistency_builders.RECIPES."""

    def __init__(self, module: Any, env: Env) -> None:
        self.module, self.env = module, env
        self.root = env.root / f"bases-{module.__name__}"
        self.root.mkdir(parents=True, exist_ok=True)
        header_bases = getattr(module, "HeaderBases", None)
        self.own = header_bases(self.root, env.shared) if header_bases is not None else None

    def path(self, name: str) -> Path:
        """The clean base ``name``."""
        local = getattr(self.module, "LOCAL_BASES", {}) or {}
        if name in local:
            path = self.root / f"{name}.qcow2"
            if not path.exists():
                local[name](path)
            return path
        if self.own is not None:
            try:
                return self.own.path(name)
            except KeyError:
                pass
        if name in BASES:
            return self.env.shared.path(name)
        import snapshot_builders

        if name in snapshot_builders.RECIPES:
            extra = self.env.cached("snapshot-extra", lambda: snapshot_builders.ExtraImages(self._mkdir("extra")))
            return extra.path(name)
        if name in cb.RECIPES:
            local_images = self.env.cached("cb-local", lambda: cb.LocalImages(self._mkdir("cb-local")))
            return local_images.path(name)
        raise KeyError(f"no recipe for base {name!r}")

    def _mkdir(self, name: str) -> Path:
        path = self.env.root / name
        path.mkdir(exist_ok=True)
        return path

    def patch_args(self, patch: Callable[..., Any], img: ib.Qcow2Image) -> tuple[Any, ...]:
        """``(img,)`` or ``(img, bases)`` as the patch function wants."""
        required = [
            p for p in inspect.signature(patch).parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]  # fmt: skip
        if len(required) == 1:
            return (img,)
        if len(required) == 2 and self.own is not None:
            return (img, self.own)
        raise TypeError(f"patch {patch.__name__} wants {len(required)} arguments")


def _foreign_case(module: Any, row: Any) -> Case:
    name = module.__name__

    def build(directory: Path, env: Env) -> tuple[Path, ib.Access]:
        provider = env.cached(f"provider:{name}", lambda: BaseProvider(module, env))
        sub = directory / name
        sub.mkdir(exist_ok=True)
        path = sub / consistency.file_name(_row_id(row))
        shutil.copyfile(provider.path(row.base), path)
        img = ib.Qcow2Image(path)
        row.patch(*provider.patch_args(row.patch, img))
        access = BASES[row.base].access if row.base in BASES else ib.PLAIN
        return path, access

    return Case(f"{name}:{_row_id(row)}", name, build, ours=False)


def _foreign_modules() -> tuple[list[Case], dict[str, str]]:
    """Cases from the ROWS of tests/test_rules.py and tests/test_rules_*.py,
    and the modules skipped with their reason."""
    cases: list[Case] = []
    skipped: dict[str, str] = {}
    for file in sorted(TESTS_DIR.glob("test_rules*.py")):
        name = file.stem
        if name == "test_rules_consistency":
            continue
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # another module's bug must not break this test
            skipped[name] = f"import failed: {type(exc).__name__}: {exc}"
            continue
        rows = getattr(module, "ROWS", None)
        if not isinstance(rows, (list, tuple)) or not rows:
            skipped[name] = "no ROWS table"
            continue
        usable = [r for r in rows if hasattr(r, "base") and callable(getattr(r, "patch", None))]
        if not usable:
            skipped[name] = "ROWS entries have no base/patch"
            continue
        seen: set[str] = set()
        for row in usable:
            case = _foreign_case(module, row)
            if case.name not in seen:
                seen.add(case.name)
                cases.append(case)
    return cases, skipped


FOREIGN_CASES, SKIPPED_SOURCES = _foreign_modules()
CASES: list[Case] = (
    [_variant_case(v) for v in cb.VARIANTS]
    + [_consistency_case(row) for row in consistency.ROWS]
    + FOREIGN_CASES
)


# ---------------------------------------------------------------------------
# running both tools
# ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """Both tools' view of one case."""

    case: Case
    path: Path | None = None
    build_error: str | None = None
    qemu_rc: int | None = None
    qemu: dict[str, Any] = field(default_factory=dict)
    qemu_stderr: str = ""
    qemu_how: str = ""
    lint: dict[str, Any] | None = None

    @property
    def qemu_stats(self) -> dict[str, int]:
        """qemu-img's figures, a missing key being 0."""
        return {key: int(self.qemu.get(key, 0)) for key in KEYS}

    def lint_stats(self) -> dict[str, Any] | None:
        """qcow2lint's ``stats`` for the image (None when it has none)."""
        return None if self.lint is None else self.lint.get("stats")

    def describe(self) -> str:
        """Both outputs, for failure messages and the summary."""
        return (
            f"image {self.case.name} ({self.path})\n"
            f"  qemu-img check{self.qemu_how}: exit {self.qemu_rc}, {json.dumps(self.qemu_stats)}\n"
            f"  qemu-img stderr: {self.qemu_stderr.strip()[:600]!r}\n"
            f"  qcow2lint stats: {json.dumps(self.lint_stats())}\n"
            f"  qcow2lint error: {None if self.lint is None else self.lint.get('error') or self.lint.get('crash')}"
        )


def qemu_check_json(path: Path, access: ib.Access) -> tuple[int, dict[str, Any], str, str]:
    """``qemu-img check --output=json``.  So that the check can run, a
    missing backing file is replaced by none (``--image-opts ...,backing=``)
    and an encrypted image QEMU asks a key for gets the test secret."""
    proc = ib.run_tool([ib.QEMU_IMG, "check", "--output=json", *access.args(path)], check=False)
    how = ""
    if proc.returncode == 1 and "encrypt.key-secret" in proc.stderr and not access.opts:
        proc = ib.run_tool([ib.QEMU_IMG, "check", "--output=json", *ib.LUKS_ACCESS.args(path)], check=False)
        how = " (with the test secret)"
    if proc.returncode == 1 and "backing" in proc.stderr.lower() and not access.opts:
        proc = ib.run_tool(
            [ib.QEMU_IMG, "check", "--output=json", "--image-opts", f"driver=qcow2,file.filename={path},backing="],
            check=False,
        )
        how = " (backing file left out)"
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        data = {}
    return proc.returncode, data, proc.stderr, how


def _lint_run(paths: list[Path]) -> list[dict[str, Any]] | str:
    """One ``qcow2lint check --format json`` run: the image reports, or
    what went wrong when there is no JSON report."""
    result = run_cli("check", "--format", "json", *paths)
    if "Traceback" in result.stderr or result.returncode not in (0, 1, 2) or not result.stdout.strip():
        return f"exit {result.returncode}: {result.stderr.strip()[-500:]}"
    images = json.loads(result.stdout)["images"]
    assert [image["path"] for image in images] == [str(p) for p in paths]
    return images


def _lint(paths: list[Path]) -> list[dict[str, Any]]:
    """Every image linted in one run.  When that run dies (a crash on one
    image ends it), the list is split in halves until the culprits are
    alone; a crash becomes the image's ``crash``."""
    images = _lint_run(paths)
    if isinstance(images, list):
        return images
    if len(paths) == 1:
        return [{"path": str(paths[0]), "crash": images}]
    middle = len(paths) // 2
    return _lint(paths[:middle]) + _lint(paths[middle:])


@pytest.fixture(scope="module")
def outcomes(base_images: Bases, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Build every case, then run qcow2lint (once) and qemu-img check (each)."""
    root = tmp_path_factory.mktemp("differential")
    env = Env(base_images, root)
    (root / "consistency-bases").mkdir()
    directory = root / "images"
    directory.mkdir()
    result: dict[str, Outcome] = {}
    for case in CASES:
        outcome = Outcome(case)
        result[case.name] = outcome
        try:
            outcome.path, access = case.build(directory, env)
        except Exception as exc:
            outcome.build_error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
            continue
        outcome.qemu_rc, outcome.qemu, outcome.qemu_stderr, outcome.qemu_how = qemu_check_json(outcome.path, access)
    built = [o for o in result.values() if o.path is not None]
    for outcome, image in zip(built, _lint([o.path for o in built])):
        outcome.lint = image
    return result


# ---------------------------------------------------------------------------
# the comparison
# ---------------------------------------------------------------------------


def verdict(outcome: Outcome) -> tuple[str, str]:
    """``(kind, detail)``: kind is compared / corrupt-agree / skipped /
    build-failed / disagree."""
    if outcome.build_error is not None:
        return "build-failed", outcome.build_error.splitlines()[0]
    if outcome.lint is not None and "crash" in outcome.lint:
        return "disagree", f"qcow2lint crashed: {outcome.lint['crash']}"
    rc = outcome.qemu_rc
    if rc == 1:
        lines = [line for line in outcome.qemu_stderr.splitlines() if line.strip() and "warning:" not in line]
        first = lines[0] if lines else "no message"
        return "skipped", f"qemu-img check did not complete (exit 1): {first}"
    if rc not in (0, 2, 3):
        return "skipped", f"qemu-img check exit {rc}"
    stats = outcome.lint_stats()
    if stats is None:
        return "disagree", "qcow2lint gave no stats where qemu-img check completed"
    missing = [key for key in KEYS if key not in stats]
    if missing:
        return "disagree", f"qcow2lint stats lack {missing}"
    if rc == 2:
        if stats["corruptions"] > 0:
            return "corrupt-agree", ""
        return "disagree", "qemu-img check found corruptions, qcow2lint counts none"
    theirs = outcome.qemu_stats
    differ = {key: (theirs[key], stats[key]) for key in KEYS if theirs[key] != stats[key]}
    if differ:
        return "disagree", "qemu-img vs qcow2lint: " + ", ".join(f"{k} {a} != {b}" for k, (a, b) in differ.items())
    return "compared", ""


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_stats_agree_with_qemu_img_check(name: str, outcomes: dict[str, Outcome]) -> None:
    """Equal figures where qemu-img check finds no corruption; corruptions
    on both sides where it does."""
    outcome = outcomes[name]
    kind, detail = verdict(outcome)
    if kind == "build-failed":
        if outcome.case.ours:
            pytest.fail(f"could not build {name}: {outcome.build_error}")
        pytest.skip(f"{outcome.case.source}: row could not be built here: {detail}")
    if kind == "skipped":
        pytest.skip(detail)
    assert kind != "disagree", f"{detail}\n{outcome.describe()}"


@pytest.mark.parametrize("module", sorted(SKIPPED_SOURCES) or ["(none)"])
def test_foreign_tables_importable(module: str) -> None:
    """Reports the rule-test modules whose defect table could not be used."""
    if module == "(none)":
        return
    pytest.skip(f"{module}: {SKIPPED_SOURCES[module]}")


def test_summary(outcomes: dict[str, Outcome], request: pytest.FixtureRequest) -> None:
    """Print how many images were compared, agreed, skipped (and why) and
    every disagreement, in the test output (also with -q)."""
    kinds: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    disagreements: list[str] = []
    differ_on_corrupt: list[str] = []
    for outcome in outcomes.values():
        kind, detail = verdict(outcome)
        kinds[kind] += 1
        by_source[outcome.case.source] += 1
        if kind in ("skipped", "build-failed"):
            reasons[re.sub(r"Could not open '[^']*': |qemu-img: ", "", detail)[:150]] += 1
        elif kind == "disagree":
            disagreements.append(f"{detail}\n{outcome.describe()}")
        elif kind == "corrupt-agree":
            theirs, ours = outcome.qemu_stats, outcome.lint_stats() or {}
            differ = [k for k in KEYS if theirs[k] != ours.get(k)]
            if differ:
                differ_on_corrupt.append(
                    f"{outcome.case.name}: " + ", ".join(f"{k} {theirs[k]} vs {ours.get(k)}" for k in differ)
                )
    lines = [
        "",
        "differential test (qcow2lint stats vs qemu-img check --output=json):",
        f"  images: {len(outcomes)} ({', '.join(f'{s} {n}' for s, n in sorted(by_source.items()))})",
        f"  compared, all figures equal (check exit 0/3): {kinds['compared']}",
        f"  corrupt on both sides (check exit 2): {kinds['corrupt-agree']}",
        f"  disagreements: {kinds['disagree']}",
        *(f"  qemu-img check run{how}: {n}" for how, n in Counter(o.qemu_how for o in outcomes.values()).items() if how),
        f"  skipped: {kinds['skipped'] + kinds['build-failed']}",
        *(f"    {n} x {reason}" for reason, n in reasons.most_common()),
        *(f"  source skipped: {m}: {why}" for m, why in sorted(SKIPPED_SOURCES.items())),
        f"  exit-2 images whose other figures differ (informational): {len(differ_on_corrupt)}",
        *(f"    {line}" for line in differ_on_corrupt),
        *(f"  DISAGREEMENT {text}" for text in disagreements),
    ]
    text = "\n".join(lines)
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown even with -q and captured output
            reporter.write_line(text)
    else:
        print(text)
    assert kinds["compared"] + kinds["corrupt-agree"] > 0, "nothing was compared"
