"""Rule tests for the header (catalogue §2.1), feature bits (§2.2), header
extensions and the backing file name (§2.3), and the file-level
trailing-partial-cluster rule (§2.15), from rows_header.py.

For every rule, (a) the patched image fires it once with the catalogue's
severity and code at the patched field, (b) the clean base does not fire it,
(c) ``rules: {NAME: disable}`` silences it.  ``test_qemu_agrees`` proves the
recipes: the clean base passes ``qemu-img check``, and QEMU (``qemu-img
info`` / ``check`` / a read-write ``qemu-io`` open) does with the patched
image what the catalogue says.  The rows run in-process (harness.lint).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import imagebuilder as ib
from harness import (
    Bases,
    QemuExpect,
    RowImages,
    Target,
    assert_all_found,
    check_table,
    disable,
    format_findings,
    lint,
    run_qemu,
)
from rows_header import BASE_NAMES, ROWS, RULES, extension_list, rewrite_area

from qcow2lint.reader import open_image
from qcow2lint.registry import load_registry


def test_every_rule_has_a_row() -> None:
    """The table covers every rule of this file, and only those."""
    check_table(ROWS, RULES)
    registry = load_registry()
    # catalogue row v2-refcount-order has no condition: answered, not a rule
    assert registry.get("v2-refcount-order") is None and registry.get("Q0217") is None


def test_disabling_one_rule_leaves_the_others(row_images: RowImages) -> None:
    """Disabling one rule by name keeps the others: the end marker that runs
    into the backing file name fires both ext-overruns-area and
    backing-name-overlaps-header; with the latter off, the former stays."""
    row = next(r for r in ROWS if r.id == "ext-overruns-area[end-marker]")
    fired = row_images.lint(row, disable("backing-name-overlaps-header")).fired
    assert "backing-name-overlaps-header" not in fired and "ext-overruns-area" in fired, fired


# ---------------------------------------------------------------------------
# several defects at once; real images never fire the non-info rules
# ---------------------------------------------------------------------------


def test_many_header_defects_in_one_image(base_images: Bases, tmp_path: Path) -> None:
    """Unknown compression type, unaligned header_length, a duplicate extension
    and the corrupt bit: QEMU refuses at the first, qcow2lint reports them all."""
    path = base_images.copy("v3", tmp_path)
    img = ib.Qcow2Image(path)
    table = img.extension(ib.EXT_FEATURE_TABLE).data
    area = rewrite_area(img, [(ib.EXT_FEATURE_TABLE, table), (ib.EXT_FEATURE_TABLE, table)], start=108)
    length_off = img.set_header("header_length", 108)
    type_off = img.set_header("compression_type", 7)
    incompat_off = img.set_header("incompatible_features", img.header["incompatible_features"] | 0x2)

    info = run_qemu(QemuExpect("info", 1), path, ib.PLAIN, tmp_path)
    assert info.returncode == 1 and "unknown compression type: 7" in info.output, info.output

    expected = {
        "compression-type-unknown": Target((type_off,), re.escape("header.compression_type")),
        "compression-type-without-bit": Target((type_off,), re.escape("header.compression_type")),
        "header-length-unaligned": Target((length_off,), re.escape("header.header_length")),
        "ext-duplicate": Target((area.extensions[1],), re.escape("extensions[1](feature-table)")),
        "corrupt-bit-set": Target((incompat_off,), re.escape("header.incompatible_features")),
    }
    report = lint(path)
    assert_all_found(report, expected)
    assert report.exit_code == 1


def test_clean_images_fire_only_the_partial_cluster_info(base_images: Bases) -> None:
    """Real qemu-img images (v3, v2, v2 and v3 with qcow2 and raw backing files,
    lazy refcounts, 4 KiB clusters, external data files) get no finding from
    these rules except file-trailing-partial-cluster, which is normal."""
    for name in BASE_NAMES:
        fired = {rule: hits for rule, hits in base_images.lint(name).fired.items() if rule in RULES}
        fired.pop("file-trailing-partial-cluster", None)
        assert not fired, f"{name}:\n" + format_findings(f for hits in fired.values() for f in hits)


def test_old_qemu_header_length_104_is_not_a_compression_type(base_images: Bases, tmp_path: Path) -> None:
    """Before QEMU 5.1 images had header_length 104 and the first extension at
    byte 104 (here the backing format 0xe2792aca): byte 104 is then no
    compression type, and the image is fine for QEMU."""
    path = tmp_path / "old.qcow2"
    shutil.copyfile(base_images.path("backing"), path)
    img = ib.Qcow2Image(path)
    rewrite_area(img, extension_list(img), start=104)
    img.set_header("header_length", 104)
    assert img.read_bytes(104, 1) == b"\xe2"
    assert run_qemu(QemuExpect("info", 0), path, ib.PLAIN, tmp_path).returncode == 0
    fired = {rule for rule in lint(path).fired if rule in RULES}
    assert fired <= {"file-trailing-partial-cluster"}, fired


def test_v2_refcount_order_is_answered_by_the_reader(base_images: Bases) -> None:
    """Catalogue row v2-refcount-order (condition n/a) is not a rule: a v2
    header has no refcount_order field and the reader never reads bytes 96..99
    as one. In a v2 image with a backing file those bytes are the name."""
    path = base_images.path("backing-v2")
    with open_image(path) as image_file:
        header = image_file.image.header
        assert header.version == 2
        assert header.refcount_order == 4 and header.header_length == 72
        assert header.v3_fields_on_disk[3] != 4  # bytes 96..99 of the extension area / name
        blocks = list(image_file.refcount_blocks())
        assert blocks and blocks[0].refcounts()[0] == 1  # 16-bit refcounts decode as QEMU wrote them
    info = json.loads(ib.run_tool([ib.QEMU_IMG, "info", "-U", "--output=json", path]).stdout)
    assert info["format-specific"]["data"]["refcount-bits"] == 16
