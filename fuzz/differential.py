"""Differential fuzzing: qcow2lint against ``qemu-img check`` on mutants.

Each mutant is a single edit (a byte, a bit, or a 2/4/8-byte field set to
an interesting value) of a seed image built by qemu-img / qemu-io (the seeds
of ``fuzz.py``), weighted toward metadata.  It is checked twice:

* ``qemu-img check --output=json``, run in the image's directory (an
  encrypted seed gets its key secret when QEMU asks for one);
* ``qcow2lint.lint(path, preset="default", statistics=True)``, in a worker
  process whose working directory is the image's directory too (QEMU
  resolves a relative external data file name against it).

and classed:

* ``refused-missed`` (a): QEMU refuses to open the image or counts
  corruptions, and qcow2lint has no error (nor a finding of a rule that
  documents a QEMU refusal at a lower level, such as backing-file-missing);
* ``leak-missed`` (b): QEMU counts leaks only, and qcow2lint has no finding;
* ``figure-differs`` (c): both complete without corruption and a figure
  differs (leaks, image end offset, total, allocated, fragmented and
  compressed clusters);
* ``internal-error`` (d): qcow2lint raised, reported an internal error
  (Q0000) or ran past the time bound, or its worker died;
* ``stricter`` (e): QEMU finds the image clean and qcow2lint has an error:
  counted by rule, kept for review (not a miss: stricter than QEMU is right
  where the spec forbids the layout or data is lost).

Everything else agrees.  Misses (a-d) and examples of (e) are saved to the
misses directory: the mutant, and a ``.txt`` with the seed, the mutation and
both tools' verdicts.  The same ``--seed`` gives the same mutants.
"""

from __future__ import annotations

import json
import os
import random
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import fuzz as crash

QEMU_IMG = shutil.which("qemu-img") or "qemu-img"
#: The key secret of the LUKS seed (fuzz.py's recipe).
LUKS_OBJECT = "secret,id=sec0,data=abc"
STATS = (
    "leaks",
    "image-end-offset",
    "total-clusters",
    "allocated-clusters",
    "fragmented-clusters",
    "compressed-clusters",
)
CLASSES = ("refused-missed", "leak-missed", "figure-differs", "internal-error", "stricter", "out-of-reach")
#: QEMU refusals no check of the image alone can foresee: they depend on the
#: key (qcow2lint checks without it) or on the backing file's own contents
#: (qcow2lint never opens a file an image names).  Message prefixes.
OUT_OF_REACH = {
    "Invalid password, cannot unlock any keyslot": "the key does not unlock the mutated LUKS header",
    "Could not open backing file: ": "the backing file's contents",
}
#: Backing file refusals that the image alone shows (rules cover them).
IN_REACH = ("Unknown driver", "Unknown protocol", "No such file or directory", "regular file")
MISSES = CLASSES[:4]
BATCH = 20  # mutants per forked worker
QEMU_TIMEOUT = 60.0  # seconds per qemu-img check
LINT_TIME_LIMIT = 60.0  # seconds per qcow2lint check
ADDRESS_SPACE_HEADROOM = 2 << 30  # soft RLIMIT_AS of the worker over its start
KEEP_PER_KEY = 5  # saved examples per (class, rule or reason)

# --- single-edit mutations, weighted toward metadata --------------------------

#: Weight of each structure kind when choosing where to edit.
WEIGHTS = {
    "header": 4.0,
    "ext-header": 2.0,
    "ext": 1.5,
    "feature-entry": 0.3,
    "backing-name": 0.7,
    "l1": 1.5,
    "l2": 2.0,
    "reftable": 1.5,
    "refblock": 2.0,
    "snapshot-entry": 1.5,
    "snapshot-l1": 0.7,
    "snapshot-l2": 0.5,
    "bitmap-directory": 1.0,
    "bitmap-entry": 1.0,
    "bitmap-table": 1.0,
    "luks-header": 1.0,
    "luks-area": 0.1,
    "data": 0.2,
    "compressed": 0.4,
}


def _group(kind: str) -> str:
    return "ext" if kind.startswith("ext-0x") else kind


def _interesting(size: int, cluster: int, offsets: list[int]) -> list[int]:
    values = [0, 1, 2, 3, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x1FF, 0x200, 0x7FFF, 0x8000, 0xFFFF, 0x10000]
    values += [(1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, 1 << 62, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]
    values += [size, size - 1, size + 1, cluster, cluster - 1, cluster + 1, 2 * cluster, size + cluster]
    return values + offsets


def mutate_one(seed: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One single-edit mutant of ``seed`` and the recipe of the edit."""
    buf = bytearray(seed)
    found = crash.regions(seed)
    groups: dict[str, list[crash.Region]] = {}
    for region in found:
        groups.setdefault(_group(region.kind), []).append(region)
    names = sorted(groups)
    kind = rng.choices(names, weights=[WEIGHTS.get(name, 0.5) for name in names])[0]
    region = rng.choice(groups[kind])
    cluster = 1 << min(max(crash._u(seed, 20, 4), 9), 21)
    what = rng.random()
    if what < 0.5:  # a field set to an interesting value
        if region.kind == "header":
            offset, width = rng.choice(crash.HEADER_FIELDS)
        else:
            width = rng.choice((region.width,) * 3 + (2, 4, 8)) if region.width else rng.choice((2, 4, 8))
            slots = max(1, region.length // width)
            offset = region.offset + width * rng.randrange(slots)
        value = rng.choice(_interesting(len(seed), cluster, sorted({r.offset for r in found})))
        if width == 8 and rng.random() < 0.3:  # keep flag bits: an offset-shaped lie
            value = (value & 0x00FFFFFFFFFFFE00) | (crash._u(seed, offset, 8) & 0xFF000000000001FF)
        recipe = f"{region.kind}: " + crash._put(buf, offset, width, value)
        return bytes(buf), recipe
    if what < 0.8:  # a bit
        bit = rng.randrange(max(1, min(region.length, len(buf) - region.offset)) * 8)
        byte = region.offset + bit // 8
        if byte < len(buf):
            buf[byte] ^= 1 << (bit % 8)
        return bytes(buf), f"{region.kind}: flip bit {bit % 8} of {byte:#x}"
    byte = region.offset + rng.randrange(max(1, region.length))  # a byte
    value = rng.choice((0, 0xFF, 0x01, 0x80, 0x0A, 0x3A, 0x2F, rng.randrange(256)))
    if byte < len(buf):
        buf[byte] = value
    return bytes(buf), f"{region.kind}: set byte {byte:#x}={value:#x}"


# --- the two checks -----------------------------------------------------------


def _unlimited() -> None:
    """qemu-img gets no address-space limit (the worker's soft limit is for qcow2lint)."""
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def qemu_check(path: Path) -> dict[str, Any]:
    """``qemu-img check --output=json`` in the image's directory: its exit
    code, figures (a missing key is 0) and first stderr line."""
    name = path.name

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            cwd=path.parent,
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=QEMU_TIMEOUT,
            preexec_fn=_unlimited,
        )

    try:
        # -f qcow2: a mutant whose magic was edited is refused as qcow2, not
        # probed as a raw image (which qemu-img cannot check)
        proc = run([QEMU_IMG, "check", "-f", "qcow2", "--output=json", name])
        # an encrypted mutant (the LUKS seed, or crypt_method set to AES by the
        # mutation) is checked with the key, as its owner would check it
        if proc.returncode == 1 and "key-secret" in proc.stderr:
            opts = f"driver=qcow2,file.filename={name},encrypt.key-secret=sec0"
            proc = run([QEMU_IMG, "check", "--output=json", "--object", LUKS_OBJECT, "--image-opts", opts])
    except subprocess.TimeoutExpired:
        return {"rc": None, "stats": {}, "message": f"qemu-img check ran past {QEMU_TIMEOUT:g} s"}
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        data = {}
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "warning" not in line.lower()]
    stats = {key: int(data.get(key, 0)) for key in (*STATS, "corruptions")} if isinstance(data, dict) else {}
    return {"rc": proc.returncode, "stats": stats, "message": lines[0][:300] if lines else ""}


class _Limit(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Limit()


def lint_check(path: Path, refusal_rules: frozenset[str]) -> dict[str, Any]:
    """qcow2lint with the default configuration, run in the image's directory."""
    import qcow2lint
    from qcow2lint.registry import INTERNAL_ERROR_CODE

    old = os.getcwd()
    os.chdir(path.parent)
    signal.setitimer(signal.ITIMER_REAL, LINT_TIME_LIMIT)
    try:
        report = qcow2lint.lint(path.name, preset="default", statistics=True)
    except _Limit:
        return {"internal": f"time: ran past {LINT_TIME_LIMIT:g} s"}
    except qcow2lint.ImageError as exc:
        return {"errors": ["(unreadable)"], "findings": 1, "unreadable": str(exc)[:200]}
    except BaseException as exc:  # noqa: BLE001 -- that is what we look for
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return {"internal": f"{type(exc).__name__} at {Path(tb.filename).name}:{tb.lineno}: {str(exc)[:200]}"}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os.chdir(old)
    internal = [f for f in report.findings if f.code == INTERNAL_ERROR_CODE]
    if internal:
        return {"internal": internal[0].message[:300]}
    errors = sorted({f.rule for f in report.findings if str(f.severity) == "error"})
    if report.error is not None:
        errors.append("(unreadable)")
    return {
        "errors": errors,
        "refusal_rules": sorted({f.rule for f in report.findings if f.rule in refusal_rules}),
        "findings": len(report.findings),
        "rules": sorted({f.rule for f in report.findings}),
        "stats": report.stats,
    }


def classify(qemu: dict[str, Any], lint: dict[str, Any]) -> tuple[str, str]:
    """``(class, key)``: one of :data:`CLASSES` or ``agree`` / ``skipped``,
    and what to count it by (a rule, a QEMU message, a figure)."""
    if "internal" in lint:
        return "internal-error", lint["internal"].split(":")[0][:80]
    rc = qemu["rc"]
    if rc is None:
        return "skipped", "qemu-img timeout"
    if rc not in (0, 1, 2, 3):
        return "skipped", f"qemu-img exit {rc}"
    if rc in (1, 2):
        if not lint["errors"] and not lint.get("refusal_rules"):
            message = qemu["message"] if rc == 1 else "corruptions"
            bare = message.removeprefix("qemu-img: ").split("': ", 1)[-1]
            for prefix in OUT_OF_REACH:
                if rc == 1 and bare.startswith(prefix) and not any(word in bare for word in IN_REACH):
                    return "out-of-reach", _message_key(message)
            return "refused-missed", _message_key(message)
        return "agree", ""
    if rc == 3 and not lint["findings"]:
        return "leak-missed", "leaks"
    stats = lint.get("stats")
    if stats is not None and stats.get("corruptions", 0) == 0:
        differ = [key for key in STATS if int(stats.get(key, 0)) != qemu["stats"].get(key, 0)]
        if differ:
            return "figure-differs", ",".join(differ)
    if rc == 0 and lint["errors"]:
        return "stricter", lint["errors"][0] if len(lint["errors"]) == 1 else "+".join(lint["errors"][:3])
    return "agree", ""


def _message_key(message: str) -> str:
    """A QEMU message with its image name, numbers and quoted names masked."""
    import re

    message = re.sub(r"Could not open '[^']*': ", "", message)
    message = re.sub(r"'[^']*'", "'NAME'", message)
    return re.sub(r"\b(0x[0-9a-fA-F]+|\d+)\b", "N", message.replace("qemu-img: ", ""))[:120]


# --- workers --------------------------------------------------------------------


def _worker(
    seeds: dict[str, bytes],
    seed_dirs: dict[str, Path],
    names: list[str],
    base_seed: int,
    indices: list[int],
    workdir: Path,
    result_fd: int,
    refusal_rules: frozenset[str],
) -> None:
    """Check mutants ``indices``; one JSON line per mutant on ``result_fd``."""
    vm = crash._vm_size() + ADDRESS_SPACE_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (vm, resource.getrlimit(resource.RLIMIT_AS)[1]))
    signal.signal(signal.SIGALRM, _alarm)
    out = os.fdopen(result_fd, "w", buffering=1)
    for index in indices:
        rng = random.Random(f"diff:{base_seed}:{index}")
        seed_name = rng.choice(names)
        data, recipe = mutate_one(seeds[seed_name], rng)
        directory = workdir / seed_name
        path = directory / f"mutant-{index}.qcow2"
        path.write_bytes(data)
        out.write(json.dumps({"start": index, "path": str(path)}) + "\n")
        qemu = qemu_check(path)
        lint = lint_check(path, refusal_rules)
        kind, key = classify(qemu, lint)
        out.write(
            json.dumps(
                {"done": index, "seed": seed_name, "recipe": recipe, "class": kind, "key": key}
                | {"qemu": qemu, "lint": {k: v for k, v in lint.items() if k != "refusal_rules"}, "path": str(path)}
            )
            + "\n"
        )
    out.close()
    os._exit(0)


def _prepare(seed_dirs: dict[str, Path], workdir: Path) -> None:
    """One directory per seed beside which its mutants live: the seed's
    neighbours (a backing file, a data file) are linked in."""
    for name, source in seed_dirs.items():
        target = workdir / name
        target.mkdir()
        for item in source.iterdir():
            if item.name != "seed.qcow2":
                os.symlink(item, target / item.name)


def _save(record: dict[str, Any], base_seed: int, misses: Path) -> Path:
    misses.mkdir(parents=True, exist_ok=True)
    stem = f"{record['class']}-{record['seed']}-{record['done']}"
    target = misses / f"{stem}.qcow2"
    shutil.copyfile(record["path"], target)
    (misses / f"{stem}.txt").write_text(
        f"class: {record['class']} ({record['key']})\n"
        f"seed image: {record['seed']} (fuzz.py SEEDS); mutation: {record['recipe']}\n"
        f"qemu-img check (exit {record['qemu']['rc']}): {record['qemu']['message']!r} {record['qemu']['stats']}\n"
        f"qcow2lint: {json.dumps(record['lint'])}\n"
        f"reproduce: python fuzz/fuzz.py --differential --seed {base_seed} --first {record['done']} --mutants 1\n"
        "(the mutant needs its seed's neighbours: base.qcow2 for the backing seed)\n"
    )
    return target


def run(mutants: int, base_seed: int, jobs: int, misses: Path, first: int = 0, minutes: float | None = None) -> int:
    """Check ``mutants`` mutants (fewer when ``minutes`` pass first: no new
    batch starts after that); print progress and a summary; return the
    number of misses (classes a-d)."""
    import qcow2lint

    refusal_rules = frozenset(rule.name for rule in qcow2lint._registry() if rule.qemu_refuses)
    with tempfile.TemporaryDirectory(prefix="qcow2lint-diff-") as tmp:
        root = Path(tmp)
        seeds = crash.build_seeds(root / "seeds")
        names = sorted(seeds)
        seed_dirs = {name: root / "seeds" / name for name in names}
        workdir = root / "work"
        workdir.mkdir()
        _prepare(seed_dirs, workdir)
        print(
            f"differential fuzzing: {mutants} mutants of {len(names)} seeds, seed {base_seed}, {jobs} jobs", flush=True
        )
        todo = list(range(first, first + mutants))
        classes: Counter[str] = Counter()
        keys: Counter[tuple[str, str]] = Counter()
        by_seed: Counter[str] = Counter()
        saved: Counter[tuple[str, str]] = Counter()
        running: dict[int, tuple[Any, set[int], dict[str, Any]]] = {}
        selector = selectors.DefaultSelector()
        started = last = time.monotonic()
        done = 0

        def launch() -> None:
            batch, todo[:] = todo[:BATCH], todo[BATCH:]
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                try:
                    _worker(seeds, seed_dirs, names, base_seed, batch, workdir, write_fd, refusal_rules)
                finally:
                    os._exit(3)
            os.close(write_fd)
            stream = os.fdopen(read_fd)
            running[pid] = (stream, set(batch), {})
            selector.register(stream, selectors.EVENT_READ, pid)

        def record(entry: dict[str, Any]) -> None:
            nonlocal done
            done += 1
            kind = entry["class"]
            classes[kind] += 1
            if kind == "skipped":
                keys[(kind, entry["key"] + ": " + _message_key(entry["qemu"]["message"]))] += 1
            if kind in CLASSES:
                keys[(kind, entry["key"])] += 1
                by_seed[f"{kind}:{entry['seed']}"] += 1
                if saved[(kind, entry["key"])] < KEEP_PER_KEY:
                    saved[(kind, entry["key"])] += 1
                    where = _save(entry, base_seed, misses)
                    if kind in MISSES:
                        print(
                            f"MISS {kind} ({entry['key']}): {entry['seed']}: {entry['recipe']}\n  {where}", flush=True
                        )
            Path(entry["path"]).unlink(missing_ok=True)

        deadline = None if minutes is None else started + minutes * 60
        while todo or running:
            if deadline is not None and time.monotonic() > deadline:
                todo.clear()
            while todo and len(running) < jobs:
                launch()
            for key, _ in selector.select(timeout=5):
                pid = key.data
                stream, pending, state = running[pid]
                line = stream.readline()
                if line:
                    entry = json.loads(line)
                    if "start" in entry:
                        state.update(entry)
                    else:
                        pending.discard(entry["done"])
                        state.clear()
                        record(entry)
                    continue
                selector.unregister(stream)
                stream.close()
                _, status = os.waitpid(pid, 0)
                del running[pid]
                if state:  # the worker died inside a mutant
                    index = state["start"]
                    pending.discard(index)
                    rng = random.Random(f"diff:{base_seed}:{index}")
                    seed_name = rng.choice(names)
                    _, recipe = mutate_one(seeds[seed_name], rng)
                    how = f"worker died (status {status})"
                    entry = {"done": index, "seed": seed_name, "recipe": recipe, "class": "internal-error"}
                    entry |= {"key": how, "qemu": {"rc": None, "message": "", "stats": {}}, "lint": {"internal": how}}
                    entry["path"] = state["path"]
                    if Path(state["path"]).exists():
                        record(entry)
                todo[:0] = sorted(pending)  # the rest of a dead worker's batch
            now = time.monotonic()
            if now - last > 30:
                last = now
                print(f"{done} mutants, {done / (now - started):.1f}/s, {dict(classes)}", flush=True)
        elapsed = time.monotonic() - started
    _summary(done, elapsed, base_seed, classes, keys, by_seed)
    return sum(classes[kind] for kind in MISSES)


def _undeclared(rules: str) -> str:
    """A mark for a stricter-than-QEMU key none of whose rules says why
    (``STRICTER_THAN_QEMU``, rendered in docs/rules.md): to review."""
    from qcow2lint.registry import load_registry

    registry = load_registry()
    names = rules.split("+")
    declared = any(registry.get(name) is not None and registry.get(name).stricter_than_qemu for name in names)
    return "" if declared else "   (no STRICTER_THAN_QEMU: review)"


def _summary(
    done: int,
    elapsed: float,
    base_seed: int,
    classes: Counter[str],
    keys: Counter[tuple[str, str]],
    by_seed: Counter[str],
) -> None:
    print(f"\ndone: {done} mutants in {elapsed:.0f} s ({done / max(elapsed, 1e-9):.1f}/s), seed {base_seed}")
    print(f"{'class':<22}{'mutants':>9}")
    for kind in (*CLASSES, "agree", "skipped"):
        print(f"{kind:<22}{classes[kind]:>9}")
    for kind in (*CLASSES, "skipped"):
        rows = sorted(((n, key) for (k, key), n in keys.items() if k == kind), reverse=True)
        if rows:
            print(f"\n{kind}, by {'rule' if kind == 'stricter' else 'reason'}:")
            for n, key in rows:
                print(f"  {n:>7}  {key}{_undeclared(key) if kind == 'stricter' else ''}")
            seeds = sorted((n, s.split(":", 1)[1]) for s, n in by_seed.items() if s.startswith(kind + ":"))
            if seeds:
                print("  seeds: " + ", ".join(f"{name} {n}" for n, name in reversed(seeds)))


def main(mutants: int, base_seed: int, jobs: int, misses: Path, first: int = 0, minutes: float | None = None) -> int:
    """Command line entry (``fuzz.py --differential``): exit 1 when a miss was found."""
    if shutil.which(QEMU_IMG) is None:
        print("qemu-img is not installed", file=sys.stderr)
        return 2
    return 1 if run(mutants, base_seed, jobs, misses, first, minutes) else 0
