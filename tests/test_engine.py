"""The engine: rule isolation, the findings cap, ordering, and the records
that rules receive (read in-process, on real images made with qemu-img)."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import SimpleNamespace

import attrs
import imagebuilder as ib
import numpy as np
import pytest

from qcow2lint import records, spec
from qcow2lint.config import load_config
from qcow2lint.engine import lint_path, run_rules
from qcow2lint.reader import ImageError, open_image
from qcow2lint.registry import Registry, RegistryError, load_registry, validate


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engine") / "plain.qcow2"
    ib.create(path, 64 << 20, {"cluster_size": 65536})
    ib.write(path, 0, 65536, 0x11)
    return path


def _rule(name: str, code: str, scope: type, check, severity: str = "error", options=None) -> object:
    return SimpleNamespace(
        NAME=name,
        CODE=code,
        SEVERITY=severity,
        SCOPE=scope,
        check=check,
        OPTIONS=options or {},
        __doc__=f"{name} for tests.",
    )


def _registry(*targets: object) -> Registry:
    return Registry(tuple(validate(t, t.NAME, "tests") for t in targets))


def test_a_crashing_rule_is_an_internal_error_and_the_others_still_run(image: Path, tmp_path: Path) -> None:
    def crash(header, ctx):
        raise ZeroDivisionError("boom")
        yield  # pragma: no cover

    def fine(header, ctx):
        from qcow2lint.findings import Problem

        yield Problem(4, "header.version", f"version is {header.version}")

    registry = _registry(
        _rule("t-crash", "T0001", records.Header, crash), _rule("t-fine", "T0002", records.Header, fine)
    )
    config = load_config(registry, start=tmp_path)
    report = lint_path(image, config, registry)
    by_rule = {f.rule: f for f in report.findings}
    assert by_rule["internal-error"].code == "Q0000"
    assert (
        "t-crash" in by_rule["internal-error"].message
        and "ZeroDivisionError: boom" in by_rule["internal-error"].message
    )
    assert by_rule["t-fine"].message == "version is 3"


def test_findings_are_capped_per_rule_with_a_final_count(image: Path, tmp_path: Path) -> None:
    from qcow2lint.findings import Problem

    def many(header, ctx):
        for i in range(250):
            yield Problem(i, f"x[{i}]", "hit")

    registry = _registry(_rule("t-many", "T0003", records.Header, many))
    (tmp_path / "cap.yaml").write_text("max-findings-per-rule: 7\n")
    config = load_config(registry, tmp_path / "cap.yaml")
    findings = lint_path(image, config, registry).findings
    assert len(findings) == 8
    assert [f.offset for f in findings[:7]] == list(range(7))
    assert findings[-1].message.startswith("and 243 more t-many findings")


def test_findings_sort_by_offset_then_code(image: Path, tmp_path: Path) -> None:
    from qcow2lint.findings import Problem

    def late(header, ctx):
        yield Problem(100, "b", "late")
        yield Problem(5, "a", "early")

    def same(header, ctx):
        yield Problem(100, "c", "same offset, lower code")

    registry = _registry(_rule("t-late", "T0009", records.Header, late), _rule("t-same", "T0004", records.Header, same))
    findings = lint_path(image, load_config(registry, start=tmp_path), registry).findings
    assert [(f.offset, f.code) for f in findings] == [(5, "T0009"), (100, "T0004"), (100, "T0009")]


def test_rules_receive_frozen_records_and_read_only_tables(image: Path, tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def grab(table, ctx):
        seen["table"] = table
        with pytest.raises(ValueError):
            table.entries[0] = 1
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            table.file_offset = 0
        with pytest.raises(TypeError):
            ctx.options["x"] = 1  # type: ignore[index]
        return ()

    registry = _registry(_rule("t-grab", "T0005", records.L1Table, grab, options={"x": 0}))
    assert lint_path(image, load_config(registry, start=tmp_path), registry).findings == ()
    assert seen["table"].entries.dtype == np.uint64


def test_the_registry_rejects_rules_that_break_the_contract() -> None:
    good = dict(NAME="t-ok", CODE="T0006", SEVERITY="error", SCOPE=records.Header, check=lambda r, c: ())
    validate(SimpleNamespace(**good), "t-ok")
    for change, needle in [
        ({"NAME": "other"}, "NAME"),
        ({"CODE": "nope"}, "CODE"),
        ({"SEVERITY": "fatal"}, "SEVERITY"),
        ({"SCOPE": dict}, "SCOPE"),
        ({"check": None}, "check"),
        ({"OPTIONS": {"level": 1}}, "OPTIONS"),
    ]:
        with pytest.raises(RegistryError, match=needle):
            validate(SimpleNamespace(**(good | change)), "t-ok")


def test_every_builtin_rule_has_identity_and_documentation() -> None:
    registry = load_registry()
    assert len(registry) >= 30
    for rule in registry:
        assert rule.code.startswith("Q") and rule.summary, rule.name
        assert "QEMU" in rule.doc, f"{rule.name}: the doc must say what QEMU does"


def test_the_reader_never_follows_pointers_of_a_file_that_is_not_qcow2(tmp_path: Path) -> None:
    path = tmp_path / "text.img"
    path.write_bytes(b"QFI\xfb" + b"\xff" * 200)  # right magic, absurd version
    with open_image(path) as image_file:
        img = image_file.image
        assert not img.readable and img.l1 is None and img.extensions == ()


def test_hostile_counts_allocate_no_more_than_the_file_holds(image: Path, tmp_path: Path) -> None:
    path = tmp_path / "hostile.qcow2"
    data = bytearray(image.read_bytes())
    struct.pack_into(">I", data, 36, 0xFFFFFFFF)  # l1_size = 2^32 - 1 (32 GiB of entries)
    struct.pack_into(">I", data, 56, 0xFFFFFFFF)  # refcount_table_clusters
    path.write_bytes(data)
    with open_image(path) as image_file:
        img = image_file.image
        assert img.l1.entries.nbytes <= len(data)
        assert img.refcount_table.entries.nbytes <= len(data)
        assert {p.structure for p in img.problems} >= {"l1", "reftable"}


def test_unreadable_inputs_raise_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="No such file"):
        with open_image(tmp_path / "missing.qcow2"):
            pass
    with pytest.raises(ImageError, match="directory"):
        with open_image(tmp_path):
            pass


@pytest.mark.parametrize("order", range(7))
def test_refcount_blocks_decode_every_width(tmp_path: Path, order: int) -> None:
    """Refcounts of every width read back as QEMU wrote them: the first
    clusters (header, reftable, refblock, L1, data) have refcount 1."""
    path = tmp_path / f"rc{order}.qcow2"
    ib.create(path, 16 << 20, {"cluster_size": 65536, "refcount_bits": 1 << order})
    ib.write(path, 0, 65536, 0x22)
    used = (path.stat().st_size + 65535) // 65536
    with open_image(path) as img:
        blocks = list(img.refcount_blocks())
        counts = blocks[0].refcounts()
    assert len(counts) == 65536 * 8 >> order
    assert counts[:used].tolist() == [1] * used
    assert not counts[used:].any()


def test_run_rules_skips_disabled_rules(image: Path, tmp_path: Path) -> None:
    """A rule that fires on a defective image is not run once the
    configuration disables it, and the others still run."""
    broken = tmp_path / "broken.qcow2"
    data = bytearray(image.read_bytes())
    struct.pack_into(">Q", data, 72, 1 << 5)  # incompatible_features: unknown bit 5
    struct.pack_into(">Q", data, 88, 1 << 5)  # autoclear_features: unknown bit 5
    broken.write_bytes(data)
    registry = load_registry()
    enabled = load_config(registry, start=tmp_path)
    with open_image(broken) as image_file:
        fired = {f.rule for f in run_rules(image_file, enabled, registry)}
    assert {"incompat-unknown-bits", "autoclear-unknown-bits"} <= fired, fired
    (tmp_path / "off.yaml").write_text("rules: {incompat-unknown-bits: disable}\n")
    disabled = load_config(registry, tmp_path / "off.yaml")
    with open_image(broken) as image_file:
        fired = {f.rule for f in run_rules(image_file, disabled, registry)}
    assert "incompat-unknown-bits" not in fired and "autoclear-unknown-bits" in fired, fired
    assert spec.QCOW_MAGIC == 0x514649FB


def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.qcow2"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        with open_image(fifo):
            pass


def test_rules_never_judge_what_was_not_read(tmp_path: Path) -> None:
    """An image whose cluster_bits is out of range is read no further than
    its header: its real bitmaps extension, tables and snapshots are unknown,
    not absent.  With every rule on (and every limit low enough to fire),
    only the rules that judge the header alone report, and none crashes."""
    path = tmp_path / "cluster-bits-30.qcow2"
    ib.create(path, 16 << 20)
    ib.bitmap_add(path, "b0")
    ib.snapshot_create(path, "s0")
    data = bytearray(path.read_bytes())
    struct.pack_into(">I", data, 20, 30)  # cluster_bits: outside QEMU's 9..21
    path.write_bytes(data)
    config_file = tmp_path / "all.yaml"
    config_file.write_text("extends: pedantic\nrules:\n  open-metadata-too-large: {max-open-metadata: 1}\n")
    registry = load_registry()
    config = load_config(registry, config_file)
    assert all(settings.enabled for settings in config.rules.values())
    with open_image(path) as image_file:
        assert not image_file.image.readable
        fired = {f.rule for f in run_rules(image_file, config, registry, deep=True)}
    assert fired == {"header-cluster-bits-range"}


def test_an_unread_image_raises_not_read_for_all_but_its_header() -> None:
    from qcow2lint.context import NotRead
    from qcow2lint.engine import KNOWN_UNREAD, rule_view

    header = records.Header.from_bytes(b"QFI\xfb" + b"\xff" * 200)
    image = records.Image("x.qcow2", 204, header, readable=False)
    view = rule_view(image)
    assert view.header is header and view.file_size == 204 and not view.readable and view.problems == ()
    for field in attrs.fields(records.Image):
        if field.name not in KNOWN_UNREAD:
            with pytest.raises(NotRead):
                getattr(view, field.name)
    with pytest.raises(NotRead):
        view.extension(spec.EXT_BITMAPS)
    assert rule_view(attrs.evolve(image, readable=True)).extensions == ()
