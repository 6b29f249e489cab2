"""Real images that other projects ship, checked as their users would.

The corpus in ``tests/data/real/`` holds qcow2 images (and one that only
looks like an image) taken unchanged from public repositories whose licences
allow redistribution; ``tests/data/README.md`` names the source, commit,
path and licence of each.  They were written by real qemu-img versions and
real tools over the years, not by this suite's builders, so they catch the
assumptions a hand-made image shares with the code that judges it.

For each image: its bytes are the recorded ones (sha256), the findings with
the default and the ``untrusted`` presets are exactly the expected rules,
and where ``qemu-img check`` completes its figures equal ``stats``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import imagebuilder as ib
import pytest
from harness import QEMU_STATS_KEYS

from qcow2lint import lint

REAL = Path(__file__).parent / "data" / "real"

#: name -> (sha256 of the image, rules with the default preset, with untrusted)
EXPECTED: dict[str, tuple[str, set[str], set[str]]] = {
    "dfvfs/ext2.qcow2": ("130bb8d85ee04deb9cffa1d731ee7348ddb045eaf3762f2141a5ddf9b7f4ecb8", set(), set()),
    "dfvfs/lvm.qcow2": ("89c4e917690f5e7bf2375a296fa71a736b2759c059652966185394ef48df1ded", set(), set()),
    "dfvfs/windows_volume.qcow2": ("73d374551074dec6c25efeee6c062be05fd90a0faad586ba541c61817c77a6dd", set(), set()),
    # Its backing file (cirros.raw) is not shipped: QEMU cannot open it alone.
    "kubevirt-cdi/cirros-snapshot1.qcow2": (
        "12522252d9fda923246ea6b71abed73e8ff4889d572c0347c75fe3d94ab54b6d",
        {"backing-file-missing"},
        {"backing-file-present"},
    ),
    # Its backing file is cirros-snapshot1.qcow2, beside it.
    "kubevirt-cdi/cirros-snapshot2.qcow2": (
        "e79f9f69dec0ebe9c63d0aed52cc83026b606d58d684d9e999faad149560fde1",
        set(),
        {"backing-file-present"},
    ),
    "kubevirt-cdi/fs-overhead.qcow2": (
        "1499f435208d94a7af6e57ec831ef4d7687c61d7200b5731bf8c8d8e2a551667",
        set(),
        set(),
    ),
    # A VMDK sparse extent ("KDMV") that CDI's tests offer as a bad qcow2.
    "kubevirt-cdi/invalid-qcow-large-memory.img": (
        "9369d9889809a9c7401feca88fb167b4eaaa195b87bb030b876910b824c2912e",
        {"header-bad-magic"},
        {"header-bad-magic"},
    ),
    "qcow2-rs/test.qcow2": ("e6a294ecc8fadd7c1fb4477335c3851610fcd15c4daa1111f40b1329d48b7de8", set(), set()),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus unpacked, each source in its own directory (so that a
    backing file name resolves beside the image, as it did upstream)."""
    root = tmp_path_factory.mktemp("real")
    for packed in REAL.glob("*/*.gz"):
        target = root / packed.parent.name / packed.name.removesuffix(".gz")
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(gzip.decompress(packed.read_bytes()))
    return root


def test_the_table_names_every_image() -> None:
    shipped = {f"{packed.parent.name}/{packed.name.removesuffix('.gz')}" for packed in REAL.glob("*/*.gz")}
    assert shipped == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_image(corpus: Path, name: str) -> None:
    path = corpus / name
    digest, default_rules, untrusted_rules = EXPECTED[name]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest

    report = lint(path, statistics=True)
    assert {finding.rule for finding in report.findings} == default_rules, report.findings
    assert {finding.rule for finding in lint(path, preset="untrusted").findings} == untrusted_rules

    check = ib.run_tool([ib.QEMU_IMG, "check", "--output=json", str(path)], check=False)
    if "header-bad-magic" in default_rules:
        assert report.stats is None
        return
    if check.returncode == 1 and "backing file" in check.stderr:
        # As the differential test does: the check without the backing file.
        check = ib.run_tool(
            [ib.QEMU_IMG, "check", "--output=json", "--image-opts", f"driver=qcow2,file.filename={path},backing="],
            check=False,
        )
    assert check.returncode == 0, check.stderr
    qemu = json.loads(check.stdout)
    assert report.stats is not None
    assert {key: report.stats[key] for key in QEMU_STATS_KEYS} == {
        key: int(qemu.get(key, 0)) for key in QEMU_STATS_KEYS
    }
