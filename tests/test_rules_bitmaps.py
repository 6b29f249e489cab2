"""Rule tests for the bitmaps rules (catalogue §2.14), from rows_bitmaps.py.

For every rule: (a) the patched image fires the rule once, with the
catalogue's severity, at the patched offset and structure path; (b) the
clean base does not fire it; (c) with ``rules: {NAME: disable}`` it does not
fire.  ``test_qemu_agrees`` proves each recipe makes the defect it claims:
QEMU refuses the image with the catalogue's message (``qemu-img info``), or
``qemu-img check`` reports it, or QEMU is silent where the catalogue says
so.  The rows run in-process (harness.lint).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import imagebuilder as ib
import pytest
from baseimages import CLUSTER, MIB, TAIL_BITS, TAIL_LAST_BYTE, TAIL_SIZE
from harness import (
    Bases,
    Finding,
    RowImages,
    Target,
    assert_all_found,
    check_table,
    disable,
    format_findings,
    lint,
)
from rows_bitmaps import (
    EXTRA_DATA_COMPATIBLE,
    IN_USE,
    MY_RULES,
    ROWS,
    entry_field,
    ext_field,
    patch_autoclear_without_ext,
    patch_data_out_of_file,
    patch_ext_without_autoclear,
    patch_extra_data,
)


def test_every_rule_has_a_row() -> None:
    """The table covers every rule of this file."""
    check_table(ROWS, MY_RULES)


def test_one_rule_disabled_leaves_the_others(row_images: RowImages) -> None:
    """Disabling one rule by name keeps the rest of the image's findings."""
    row = next(r for r in ROWS if r.rule == "bitmap-dir-size-mismatch" and r.variant == "entry-crosses-end")
    fired = row_images.lint(row, disable(row.rule)).fired
    assert row.rule not in fired and "bitmap-count-mismatch" in fired, fired


# ---------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------


def _lint_with(path: Path, tmp_path: Path, config: str) -> dict[str, list[Finding]]:
    return lint(path, config).fired


def _patched_copy(base_images: Bases, tmp_path: Path, base: str, patch: Callable[[ib.Qcow2Image], Target]) -> Path:
    path = base_images.copy(base, tmp_path, "img.qcow2")
    patch(ib.Qcow2Image(path))
    return path


def test_granularity_spec_reading_accepts_what_qemu_refuses(base_images: Bases, tmp_path: Path) -> None:
    """granularity_bits 32: outside QEMU's 9..31 but inside the spec's 0..63."""
    path = _patched_copy(base_images, tmp_path, "bitmaps", entry_field(1, "granularity_bits", lambda v: 32))
    assert "bitmap-granularity-range" in lint(path).fired
    assert "bitmap-granularity-range" not in _lint_with(
        path, tmp_path, "rules:\n  bitmap-granularity-range: {reading: spec}\n"
    )


def test_extra_data_compatible_spec_reading(base_images: Bases, tmp_path: Path) -> None:
    """Extra data with flag bit 2: QEMU refuses both, the spec allows both."""
    path = _patched_copy(base_images, tmp_path, "bitmaps", patch_extra_data(flags=EXTRA_DATA_COMPATIBLE))
    assert ib.run_tool(["qemu-img", "info", "-U", str(path)], check=False).returncode == 1
    qemu = lint(path).fired
    assert {"bitmap-extra-data", "bitmap-flag-extra-data-compatible"} <= set(qemu), qemu
    spec = _lint_with(
        path,
        tmp_path,
        "rules:\n  bitmap-extra-data: {reading: spec}\n  bitmap-flag-extra-data-compatible: {reading: spec}\n",
    )
    assert not {"bitmap-extra-data", "bitmap-flag-extra-data-compatible"} & set(spec), spec


def test_table_size_wrong_skips_in_use_bitmaps_by_default(base_images: Bases, tmp_path: Path) -> None:
    """QEMU opens an in_use bitmap with a wrong table size; by default only
    bitmap-in-use reports it."""
    path = _patched_copy(
        base_images, tmp_path, "bitmaps", entry_field(0, "bitmap_table_size", lambda v: v + 1, flags=IN_USE)
    )
    assert ib.run_tool(["qemu-img", "info", "-U", str(path)], check=False).returncode == 0
    fired = lint(path).fired
    assert "bitmap-table-size-wrong" not in fired and "bitmap-in-use" in fired, fired
    reported = _lint_with(path, tmp_path, "rules:\n  bitmap-table-size-wrong: {in-use: report}\n")
    assert "in use" in reported["bitmap-table-size-wrong"][0]["message"]


def test_unknown_reading_is_a_clear_error(base_images: Bases, tmp_path: Path) -> None:
    """An option value outside the documented choices is refused when the
    configuration is loaded, naming them."""
    from qcow2lint.config import ConfigError

    path = _patched_copy(base_images, tmp_path, "bitmaps", entry_field(1, "granularity_bits", lambda v: 32))
    with pytest.raises(ConfigError) as refused:
        lint(path, "rules:\n  bitmap-granularity-range: {reading: posix}\n")
    message = str(refused.value)
    assert "'reading'" in message and "'qemu'" in message and "'spec'" in message and "'posix'" in message, message


# ---------------------------------------------------------------------------
# QEMU's behaviour the docs rely on
# ---------------------------------------------------------------------------


def test_bitmap_bit_order_is_lsb_first(base_images: Bases) -> None:
    """QEMU stores bit n in bit n % 8 of byte n / 8: the tail base's last bit
    (1602) is bit 2 of byte 200."""
    img = ib.Qcow2Image(base_images.path("bitmaps-tail"))
    bitmap = img.bitmap("tail")
    assert bitmap.fields["granularity_bits"] == 16 and bitmap.fields["bitmap_table_size"] == 1
    data = img.read_bytes(bitmap.table[0] & ib.BME_TABLE_OFFSET_MASK, CLUSTER)
    assert TAIL_BITS == -(-TAIL_SIZE // CLUSTER)
    assert data[TAIL_LAST_BYTE] == 1 << ((TAIL_BITS - 1) % 8)
    assert not any(data[:TAIL_LAST_BYTE]) and not any(data[TAIL_LAST_BYTE + 1 :])


def test_autoclear_without_ext_makes_the_first_write_fail(base_images: Bases, tmp_path: Path) -> None:
    """qemu-img check is silent, but QEMU then refuses a guest write and marks
    the image corrupt (catalogue §4 item 4)."""
    path = _patched_copy(base_images, tmp_path, "v3", patch_autoclear_without_ext)
    write = ib.run_tool(["qemu-io", "-c", "write 0 4096", "-f", "qcow2", str(path)], check=False)
    assert "overlaps with bitmap directory" in write.stdout + write.stderr
    info = ib.run_tool(["qemu-img", "info", "-U", "--output=json", str(path)])
    assert json.loads(info.stdout)["format-specific"]["data"]["corrupt"] is True


def test_ext_without_autoclear_leaks_the_bitmap_clusters(base_images: Bases, tmp_path: Path) -> None:
    """With autoclear bit 0 clear, qemu-img check counts the bitmaps' clusters as leaked."""
    path = _patched_copy(base_images, tmp_path, "bitmaps", patch_ext_without_autoclear)
    check = ib.qemu_check(path)
    assert check.returncode == 3 and "leaked clusters" in check.output, check.output


def test_documented_repair_of_a_refused_image(base_images: Bases, tmp_path: Path) -> None:
    """The repair the entry rules document: `qemu-img bitmap --remove` fails on
    an image QEMU refuses, but clearing autoclear bit 0 and running
    `qemu-img check -r leaks` drops the bitmaps and leaves a clean image."""
    path = _patched_copy(base_images, tmp_path, "bitmaps", entry_field(1, "type", lambda v: 2))
    assert ib.run_tool(["qemu-img", "bitmap", "--remove", str(path), "bm1"], check=False).returncode == 1
    ib.Qcow2Image(path).set_header("autoclear_features", 0)
    assert ib.run_tool(["qemu-img", "check", "-r", "leaks", str(path)], check=False).returncode == 0
    assert ib.qemu_check(path).returncode == 0
    found = lint(path).findings
    assert not [f for f in found if f["severity"] != "info"], format_findings(found)


# ---------------------------------------------------------------------------
# several defects at once; clean images
# ---------------------------------------------------------------------------


def test_many_bitmap_defects_in_one_image(base_images: Bases, tmp_path: Path) -> None:
    """An image QEMU refuses for several bitmap reasons gets every finding in one run."""
    path = base_images.copy("bitmaps", tmp_path, "multi.qcow2")
    img = ib.Qcow2Image(path)
    expected = {
        "bitmap-type-invalid": entry_field(0, "type", lambda v: 0)(img),
        "bitmap-flag-extra-data-compatible": entry_field(0, "flags", lambda v: v | EXTRA_DATA_COMPATIBLE)(img),
        "bitmap-granularity-range": entry_field(1, "granularity_bits", lambda v: 40)(img),
        "bitmap-table-offset-zero": entry_field(1, "bitmap_table_offset", lambda v: 0)(img),
        "bitmap-data-out-of-file": patch_data_out_of_file(img),
        "bitmap-count-mismatch": ext_field("nb_bitmaps", lambda v: v + 1)(img),
    }
    info = ib.run_tool(["qemu-img", "info", "-U", str(path)], check=False)
    assert info.returncode == 1, info.stdout  # QEMU names only the first reason
    report = lint(path)
    assert_all_found(report, expected)
    assert report.exit_code == 1


def _clean_bitmaps(directory: Path, size: int, cluster_size: int, bitmaps: dict[str, int]) -> Path:
    path = ib.create(directory / f"clean-{cluster_size}-{size}.qcow2", size, {"cluster_size": cluster_size})
    for name, granularity in bitmaps.items():
        ib.bitmap_add(path, name, granularity=granularity)
    ib.qemu_io(path, f"write -P 0x11 0 {cluster_size}", f"write -P 0x22 {size // 512 * 512 - 4096} 4096")
    ib.bitmap_add(path, "disabled", disabled=True)
    return path


@pytest.mark.parametrize(
    "size, cluster_size, bitmaps",
    [
        (TAIL_SIZE + 1000, 64 * 1024, {"g512": 512, "g64k": 64 * 1024, "g2g": 1 << 31}),
        (3 * MIB + 512, 512, {"small": 512, "big": 1 << 20}),
        (40 * MIB, 2 * MIB, {"a": 4096, "b": 2 * MIB}),
    ],
    ids=["64K-odd-size", "512-clusters", "2M-clusters"],
)
def test_clean_bitmap_images_are_quiet(tmp_path: Path, size: int, cluster_size: int, bitmaps: dict[str, int]) -> None:
    """Real images with bitmaps made by qemu-img fire none of these rules."""
    path = _clean_bitmaps(tmp_path, size, cluster_size, bitmaps)
    assert ib.qemu_check(path).returncode == 0
    mine = [f for f in lint(path).findings if f["rule"] in MY_RULES]
    assert not mine, format_findings(mine)


def test_documented_repair_of_data_out_of_file(base_images: Bases, tmp_path: Path) -> None:
    """QEMU opens an image whose bitmap data lies past the end of the file:
    `qemu-img bitmap --remove` then `qemu-img check -r leaks` repair it."""
    path = _patched_copy(base_images, tmp_path, "bitmaps", patch_data_out_of_file)
    assert ib.run_tool(["qemu-img", "bitmap", "--remove", str(path), "bm0"], check=False).returncode == 0
    assert ib.run_tool(["qemu-img", "check", "-r", "leaks", str(path)], check=False).returncode == 0
    assert ib.qemu_check(path).returncode == 0
    found = lint(path).findings
    assert not [f for f in found if f["severity"] != "info"], format_findings(found)
