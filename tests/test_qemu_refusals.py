"""Every reason QEMU 7.2 refuses to open an image has a rule that flags it.

A rule module lists the messages with which QEMU refuses the images it
flags in ``QEMU_REFUSES`` (rendered in docs/rules.md, "What QEMU refuses to
open"; N stands for a number, NAME for a name).  One row per message: the
image is built (qemu-img and a byte patch: most rows reuse a defect row of
the rule tests, by its table and row id, ``rows_*.py``), ``qemu-io -r -c quit``
must fail with that message (read-only: nothing writes to the image), and
qcow2lint must report the rule at error.

The one rule that is not an error by default is ``backing-file-missing``
(a warning: an overlay may be checked apart from its base).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imagebuilder as ib
import pytest
import qemu_hole_builders as holes
import rows_basic
import rows_bitmaps
import rows_header
import rows_placement
import rows_snapshots
from harness import Bases, RowImages, lint
from untrusted_builders import Builder as UntrustedImages

import qcow2lint

#: Rules that flag an image QEMU refuses without being errors by default.
NOT_ERRORS = {"backing-file-missing": "warning"}


@dataclass(frozen=True)
class Refusal:
    """QEMU's ``message`` for an image ``rule`` flags: built by ``case``, the
    name of a differential-test case, or by a local builder."""

    rule: str
    message: str
    case: str | Callable[[Path, Bases], tuple[Path, ib.Access]]  # a case name or a Builder
    id: str = ""

    @property
    def ident(self) -> str:
        return f"{self.rule}[{self.id}]" if self.id else self.rule


# --- local builders (defects no rule test builds) ---------------------------------

#: Builds a row's image in a directory: its path and how QEMU must open it.
Builder = Callable[[Path, Bases], tuple[Path, ib.Access]]


def _snapshot_offset_without_snapshots(value: int) -> Builder:
    def build(directory: Path, bases: Bases) -> tuple[Path, ib.Access]:
        path = bases.copy("v3", directory, f"snapshot-offset-{value:x}.qcow2")
        img = ib.Qcow2Image(path)
        assert img.header["nb_snapshots"] == 0
        img.set_header("snapshots_offset", value)
        return path, ib.PLAIN

    return build


def _overlay_without_base(directory: Path, bases: Bases) -> tuple[Path, ib.Access]:
    path = directory / "overlay-without-base.qcow2"
    ib.run_tool(
        [ib.QEMU_IMG, "create", "-q", "-f", "qcow2", "-u", "-b", "no-such-base.qcow2", "-F", "qcow2", path, "64M"]
    )
    assert not (directory / "no-such-base.qcow2").exists()
    return path, ib.PLAIN


def _luks_stripes(directory: Path, bases: Bases) -> tuple[Path, ib.Access]:
    path = directory / "luks-stripes.qcow2"
    UntrustedImages(directory).luks_patched(path, "slot0.stripes", 8000)
    return path, ib.LUKS_ACCESS


LUKS_SLOT0, LUKS_SLOT1 = 208, 256  # key slot table offsets in the LUKS1 header


def _luks_patched(offset: int, data: bytes | Callable[[bytes], bytes]) -> Builder:
    """The LUKS base with ``data`` (or ``data(header)``) written ``offset``
    bytes into its LUKS header."""

    def build(directory: Path, bases: Bases) -> tuple[Path, ib.Access]:
        path = bases.copy("luks", directory, f"luks-{offset}.qcow2")
        raw = path.read_bytes()
        start = raw.find((0x0537BE77).to_bytes(4, "big"), 72)  # the full disk encryption header pointer
        header = int.from_bytes(raw[start + 8 : start + 16], "big")
        value = data(raw[header : header + 592]) if callable(data) else data
        with path.open("r+b") as file:
            file.seek(header + offset)
            file.write(value)
        return path, ib.LUKS_ACCESS

    return build


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


C = "Bitmap 'NAME' doesn't satisfy the constraints"
T = "Could not read bitmap_table table from image for bitmap 'NAME': Invalid argument"
#: Row tables whose patched images are reused, by the prefix of a case name ("header:ROW-ID").
H, B, P = "header:", "bitmaps:", "placement:"
R, S = "rules:", "snapshots:"
TABLES = {
    "header": rows_header.ROWS,
    "bitmaps": rows_bitmaps.ROWS,
    "placement": rows_placement.ROWS,
    "rules": rows_basic.ROWS,
    "snapshots": rows_snapshots.ROWS,
}

ROWS: list[Refusal] = [
    # --- header (qcow2_do_open) ---
    Refusal("header-bad-magic", "Image is not in qcow2 format", R + "header-bad-magic"),
    Refusal("header-bad-version", "Unsupported qcow2 version N", R + "header-bad-version[4]"),
    Refusal("header-cluster-bits-range", "Unsupported cluster size: 2^N", R + "header-cluster-bits-range[22]"),
    Refusal("header-length-too-small", "qcow2 header too short", H + "header-length-too-small"),
    Refusal("header-length-too-large", "qcow2 header exceeds cluster size", H + "header-length-too-large"),
    Refusal("header-size-too-big", "Image is too big", H + "header-size-too-big"),
    Refusal("header-crypt-method-unknown", "Unsupported encryption method N", H + "header-crypt-method-unknown"),
    Refusal(
        "incompat-unknown-bits",
        "Unsupported qcow2 feature(s): Unknown incompatible feature: N",
        R + "incompat-unknown-bits[bit5]",
    ),
    Refusal("compression-type-unknown", "qcow2: unknown compression type: N", H + "compression-type-unknown"),
    Refusal(
        "compression-type-without-bit",
        "qcow2: Compression type incompatible feature bit must be set",
        H + "compression-type-without-bit",
    ),
    Refusal(
        "compression-bit-without-type",
        "qcow2: Compression type incompatible feature bit must not be set",
        H + "compression-bit-without-type",
    ),
    Refusal("extl2-cluster-too-small", "Unsupported subcluster size: N", H + "extl2-cluster-too-small"),
    Refusal("data-file-bit-without-file", "'data-file' is required for this image", H + "data-file-bit-without-file"),
    Refusal(
        "data-file-raw-without-data-file", "data-file-raw requires a data file", H + "data-file-raw-without-data-file"
    ),
    Refusal(
        "refcount-order-too-large",
        "Reference count entry width too large; may not exceed 64 bits",
        H + "refcount-order-too-large",
    ),
    # --- header extensions and the backing file (qcow2_read_extensions) ---
    Refusal("ext-overruns-area", "Header extension too large", H + "ext-overruns-area"),
    Refusal(
        "backing-format-too-long", "ERROR: ext_backing_format: len=N too large (>=16)", H + "backing-format-too-long"
    ),
    Refusal("backing-offset-out-of-cluster", "Invalid backing file offset", H + "backing-offset-out-of-cluster"),
    Refusal("backing-name-too-long", "Backing file name too long", H + "backing-name-too-long"),
    Refusal("backing-file-missing", "Could not open backing file", _overlay_without_base),
    Refusal("ext-end-marker-length", "Header extension too large", holes.end_marker_length(0x10000)),
    Refusal(
        "backing-format-unknown", "Could not open backing file: Unknown driver 'NAME'", holes.backing_format(b"qCow2")
    ),
    Refusal(
        "backing-protocol-unknown",
        "Could not open backing file: Unknown protocol 'NAME'",
        holes.backing_name("base.qcow:"),
    ),
    Refusal("data-file-missing", "Could not open 'NAME': No such file or directory", holes.data_file_missing),
    Refusal("data-file-missing", "'file' driver requires 'NAME' to be a regular file", holes.data_file_directory),
    Refusal("data-file-missing", "The 'file' block driver requires a file name", holes.data_file_name_empty),
    # --- encryption (qcow2_do_open, block/crypto, crypto/block-luks.c) ---
    Refusal("luks-missing-fde-ext", "Missing CRYPTO header for crypt method 2", P + "luks-missing-fde-ext"),
    Refusal(
        "fde-ext-without-luks",
        "CRYPTO header extension only expected with LUKS encryption method",
        P + "fde-ext-without-luks",
    ),
    Refusal("fde-ext-bad-length", "CRYPTO header extension size N, but expected size 16", P + "fde-ext-bad-length[24]"),
    Refusal(
        "misaligned-crypto-header",
        "Encryption header offset 'N' is not a multiple of cluster size 'N'",
        R + "misaligned-crypto-header",
    ),
    Refusal("luks-bad-magic", "Volume is not in LUKS format", P + "luks-bad-magic[magic]"),
    Refusal("luks-bad-magic", "LUKS version N is not supported", P + "luks-bad-magic[version]"),
    Refusal("luks-keyslot-bad", "Keyslot N state (active/disable) is corrupted", P + "luks-keyslot-bad[state]"),
    Refusal(
        "luks-keyslot-bad", "Keyslot N is overlapping with the encrypted payload", P + "luks-keyslot-bad[material]"
    ),
    Refusal("luks-params-unusual", "Keyslot N is corrupted (stripes N != 4000)", _luks_stripes),
    Refusal("luks-keyslot-bad", "Keyslot N iteration count is zero", _luks_patched(LUKS_SLOT0 + 4, _u32(0))),
    Refusal(
        "luks-keyslot-bad", "Keyslot N is overlapping with the LUKS header", _luks_patched(LUKS_SLOT0 + 40, _u32(1))
    ),
    Refusal(
        "luks-keyslot-bad",
        "Keyslots N and N are overlapping in the header",
        _luks_patched(LUKS_SLOT1 + 40, lambda header: header[LUKS_SLOT0 + 40 : LUKS_SLOT0 + 44]),
    ),
    Refusal("luks-header-bad", "LUKS header cipher name is not NUL terminated", _luks_patched(8, b"a" * 32)),
    Refusal("luks-header-bad", "LUKS header cipher mode is not NUL terminated", _luks_patched(40, b"b" * 32)),
    Refusal("luks-header-bad", "LUKS header hash spec is not NUL terminated", _luks_patched(72, b"c" * 32)),
    Refusal("luks-header-bad", "LUKS payload is overlapping with the header", _luks_patched(104, _u32(4))),
    Refusal("luks-header-bad", "LUKS key iteration count is zero", _luks_patched(164, _u32(0))),
    Refusal("luks-header-bad", "Unexpected cipher mode string format 'NAME'", _luks_patched(40, b"xts\0")),
    Refusal("luks-header-bad", "Cipher mode 'NAME' not supported", _luks_patched(40, b"abc-plain64\0")),
    Refusal("luks-header-bad", "IV generator 'NAME' not supported", _luks_patched(40, b"xts-plain65\0")),
    Refusal("luks-header-bad", "Hash algorithm 'NAME' not supported", _luks_patched(72, b"sha2566\0")),
    Refusal("luks-header-bad", "Algorithm 'NAME' with key size N bytes not supported", _luks_patched(8, b"foo\0")),
    # --- L1 and refcount tables (qcow2_do_open, qcow2_refcount_init) ---
    Refusal("misaligned-l1-table", "Active L1 table offset invalid", R + "misaligned-l1-table"),
    Refusal("l1-too-large", "Active L1 table too large", P + "l1-too-large"),
    Refusal("l1-too-small", "L1 table is too small", P + "l1-too-small"),
    Refusal("misaligned-refcount-table", "Reference count table offset invalid", R + "misaligned-refcount-table"),
    Refusal("reftable-too-large", "Reference count table too large", P + "reftable-too-large"),
    Refusal("reftable-missing", "Image does not contain a reference count table", P + "reftable-missing"),
    # --- snapshots (qcow2_do_open, qcow2_read_snapshots) ---
    Refusal("misaligned-snapshot-table", "Snapshot table offset invalid", R + "misaligned-snapshot-table"),
    Refusal(
        "misaligned-snapshot-table",
        "Snapshot table offset invalid",
        _snapshot_offset_without_snapshots(0x10200),
        "no-snapshots",
    ),
    Refusal(
        "misaligned-snapshot-table",
        "Snapshot table offset invalid",
        _snapshot_offset_without_snapshots(0x8000_0000_0000_0000),
        "no-snapshots-past-2^63",
    ),
    Refusal("snapshot-count-too-large", "Snapshot table too large", P + "snapshot-count-too-large"),
    Refusal(
        "snapshot-extra-too-large", "Too much extra metadata in snapshot table entry N", S + "snapshot-extra-too-large"
    ),
    Refusal("snapshot-table-too-big", "Snapshot table is too big", S + "snapshot-table-too-big"),
    # --- bitmaps (qcow2_read_extensions, qcow2-bitmap.c) ---
    Refusal("bitmaps-ext-bad-length", "bitmaps_ext: Invalid extension length", B + "bitmaps-ext-bad-length[32]"),
    Refusal(
        "bitmaps-ext-reserved-nonzero", "bitmaps_ext: Reserved field is not zero", R + "bitmaps-ext-reserved-nonzero"
    ),
    Refusal("bitmaps-ext-zero-bitmaps", "found bitmaps extension with zero bitmaps", B + "bitmaps-ext-zero-bitmaps"),
    Refusal(
        "bitmaps-ext-too-many",
        "bitmaps_ext: Image has N bitmaps, exceeding the QEMU supported maximum of 65535",
        B + "bitmaps-ext-too-many",
    ),
    Refusal(
        "misaligned-bitmap-directory", "bitmaps_ext: invalid bitmap directory offset", R + "misaligned-bitmap-directory"
    ),
    Refusal(
        "bitmap-dir-too-large",
        "bitmaps_ext: bitmap directory size (N) exceeds the maximum supported size (67107840)",
        B + "bitmap-dir-too-large",
    ),
    Refusal("bitmap-dir-size-zero", "Requested bitmap directory size is zero", B + "bitmap-dir-size-zero"),
    Refusal("bitmap-dir-size-mismatch", "Broken bitmap directory", B + "bitmap-dir-size-mismatch[slack]"),
    Refusal(
        "bitmap-count-mismatch",
        "More bitmaps found than specified in header extension",
        B + "bitmap-count-mismatch[more]",
    ),
    Refusal(
        "bitmap-count-mismatch",
        "Less bitmaps found than specified in header extension",
        B + "bitmap-count-mismatch[less]",
    ),
    Refusal("bitmap-name-duplicate", "Bitmap already exists: NAME", B + "bitmap-name-duplicate"),
    Refusal("bitmap-extra-data", "Bitmap extra data is not supported", B + "bitmap-extra-data"),
    Refusal("bitmap-flags-reserved", C, R + "bitmap-flags-reserved[bm0-bit3]"),
    Refusal("misaligned-bitmap-table", C, R + "misaligned-bitmap-table"),
    Refusal("bitmap-dir-out-of-file", C, B + "bitmap-dir-out-of-file"),
    Refusal("bitmap-name-too-long", C, B + "bitmap-name-too-long"),
    Refusal("bitmap-type-invalid", C, B + "bitmap-type-invalid[2]"),
    Refusal("bitmap-granularity-range", C, B + "bitmap-granularity-range[32]"),
    Refusal("bitmap-flag-extra-data-compatible", C, B + "bitmap-flag-extra-data-compatible"),
    Refusal("bitmap-table-offset-zero", C, B + "bitmap-table-offset-zero"),
    Refusal("bitmap-table-size-zero", C, B + "bitmap-table-size-zero"),
    Refusal("bitmap-table-size-too-large", C, B + "bitmap-table-size-too-large[entries]"),
    Refusal("bitmap-table-size-wrong", C, B + "bitmap-table-size-wrong[too-small]"),
    Refusal(
        "bitmap-table-size-wrong",
        "Could not read bitmap 'NAME' from image: Invalid argument",
        B + "bitmap-table-size-wrong[too-big]",
    ),
    Refusal("bitmap-table-reserved-bits", T, R + "bitmap-table-reserved-bits"),
    Refusal("bitmap-table-invalid-all-ones", T, R + "bitmap-table-invalid-all-ones"),
    Refusal("misaligned-bitmap-data", T, R + "misaligned-bitmap-data"),
]


def message_pattern(template: str) -> re.Pattern[str]:
    """The regular expression of a documented message: N a number, NAME a name."""
    pattern = re.sub(r"\bNAME\b", "[^']*", re.escape(template))
    return re.compile(re.sub(r"\bN\b", "[0-9a-fA-Fx]+", pattern))


# --- building and running ---------------------------------------------------------


@dataclass
class Outcome:
    path: Path | None = None
    build_error: str = ""
    qemu_rc: int | None = None
    qemu_stderr: str = ""
    findings: dict[str, set[str]] | None = None  # rule -> severities


def _build(row: Refusal, directory: Path, rows: RowImages, bases: Bases) -> tuple[Path, ib.Access]:
    if callable(row.case):
        return row.case(directory, bases)
    table, row_id = row.case.split(":", 1)
    [table_row] = [r for r in TABLES[table] if r.id == row_id]
    path, _ = rows.get(table_row)
    return path, bases.access(table_row.base)


@pytest.fixture(scope="module")
def outcomes(
    base_images: Bases, row_images: RowImages, tmp_path_factory: pytest.TempPathFactory
) -> dict[Refusal, Outcome]:
    """Every row's image, qemu-io's verdict on it and qcow2lint's findings."""
    root = tmp_path_factory.mktemp("refusals")
    result: dict[Refusal, Outcome] = {}
    for index, row in enumerate(ROWS):
        outcome = result[row] = Outcome()
        directory = root / f"row{index}"
        directory.mkdir()
        try:
            outcome.path, access = _build(row, directory, row_images, base_images)
        except Exception as exc:  # reported by the row's test
            outcome.build_error = f"{type(exc).__name__}: {exc}"
            continue
        proc = ib.run_tool([ib.QEMU_IO, "-r", *access.args(outcome.path), "-c", "quit"], check=False)
        outcome.qemu_rc, outcome.qemu_stderr = proc.returncode, proc.stderr + proc.stdout
        report = qcow2lint.lint(outcome.path, preset="default")
        outcome.findings = {}
        for finding in report.findings:
            outcome.findings.setdefault(finding.rule, set()).add(str(finding.severity))
    return result


@pytest.mark.parametrize("row", ROWS, ids=[row.ident + ":" + row.message[:40] for row in ROWS])
def test_qemu_refuses_and_the_rule_reports_it(row: Refusal, outcomes: dict[Refusal, Outcome]) -> None:
    """qemu-io refuses the image with the message; the rule flags it at error."""
    outcome = outcomes[row]
    assert not outcome.build_error, f"could not build {row.case}: {outcome.build_error}"
    assert outcome.qemu_rc != 0 and "can't open" in outcome.qemu_stderr, (
        f"qemu-io opened {outcome.path}: exit {outcome.qemu_rc}, {outcome.qemu_stderr!r}"
    )
    assert message_pattern(row.message).search(outcome.qemu_stderr), (
        f"qemu-io refused {outcome.path} otherwise: {outcome.qemu_stderr!r}"
    )
    assert outcome.findings is not None
    expected = NOT_ERRORS.get(row.rule, "error")
    assert expected in outcome.findings.get(row.rule, set()), (
        f"{row.rule} not reported at {expected}; qcow2lint reported {outcome.findings}"
    )


def test_every_documented_refusal_has_a_row() -> None:
    """The rows and the rules' QEMU_REFUSES name the same (rule, message) pairs,
    and a rule that lists a refusal is an error (but the documented exceptions)."""
    registry = qcow2lint._registry()
    documented = {(rule.name, message) for rule in registry for message in rule.qemu_refuses}
    tested = {(row.rule, row.message) for row in ROWS}
    assert documented - tested == set(), "QEMU_REFUSES messages without a row"
    assert tested - documented == set(), "rows whose message is not in the rule's QEMU_REFUSES"
    for rule in registry:
        if rule.qemu_refuses:
            assert str(rule.severity) == NOT_ERRORS.get(rule.name, "error"), rule.name


def test_message_pattern() -> None:
    pattern = message_pattern("Encryption header offset 'N' is not a multiple of cluster size 'N'")
    assert pattern.search("Encryption header offset '262656' is not a multiple of cluster size '65536'")
    assert message_pattern(C).search("Bitmap 'bm1' doesn't satisfy the constraints")
    assert not message_pattern("Unsupported qcow2 version N").search("Unsupported qcow2 version ")


def test_luks_header_bad_is_quiet_on_a_clean_header_and_can_be_disabled(base_images: Bases, tmp_path: Path) -> None:
    """The rule's passing and disabled-in-config cases (its failing ones are
    the refusal rows above)."""
    assert "luks-header-bad" not in lint(base_images.copy("luks", tmp_path, "clean.qcow2")).fired
    path, _ = _luks_patched(164, _u32(0))(tmp_path, base_images)
    assert "luks-header-bad" in lint(path).fired
    assert "luks-header-bad" not in lint(path, "rules:\n  luks-header-bad: disable\n").fired
