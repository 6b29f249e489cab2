"""A LUKS key slot or the master-key digest asks for too many PBKDF2 iterations.

Each active LUKS1 key slot stores the PBKDF2 iteration count that turns a
passphrase into the slot key, and the header stores the count for the
master-key digest (the LUKS1 on-disk format).  To open the image with a key QEMU
runs PBKDF2 for each active slot in turn, then the digest, so the counts
are CPU time chosen by whoever made the image: 4,000,000,000 iterations
keep `qemu-img convert` with the key busy for about a quarter of an hour
per slot on the machine measured below, and a wrong key pays for every active slot.

Default bounds, measured: `qemu-img create -f qcow2 -o
encrypt.format=luks,encrypt.iter-time=N` on the 2-core AMD EPYC machine
this rule was written on (QEMU 7.2, PBKDF2-SHA256, about 4.3 million
iterations per second) wrote 8,544,458 slot and 2,051,281 digest
iterations for the default iter-time of 2000 ms, and 42,335,910 slot and
10,939,585 digest iterations for a generous iter-time of 10000 ms.
Option `max-iterations` is 100,000,000: the generous slot count with a
margin of 2.4 for a machine that hashes 2.4 times faster (about 23 s of
PBKDF2 per slot on the measuring machine).  Option
`max-unlock-iterations` is 200,000,000: the sum over the active slots of
slot and digest iterations, what a wrong key costs (one generous slot and
digest is 53,275,495; eight default slots are 84,764,312).

Off by default, like the other cost bounds (`max-virtual-size`,
`max-open-metadata`): `qemu-img create -o encrypt.iter-time=N` writes
whatever counts N asks for.  The `untrusted` preset enables it at error,
`pedantic` at warning.

QEMU: accepts any count; `qemu-img info` (no key) does not derive keys,
`qemu-img convert` or a VM boot with the key spins for the whole count.
Repair: with the key, `qemu-img amend --object secret,id=s,data=PASS -o
encrypt.keyslot=N,encrypt.state=active,encrypt.new-secret=s,encrypt.iter-time=2000
IMAGE` re-keys a slot (this costs the old count once).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import EncryptionArea

NAME = "luks-iterations-too-high"
CODE = "Q0490"
SEVERITY = "warning"
SCOPE = EncryptionArea
DEFAULT_ENABLED = False
OPTIONS = {"max-iterations": 100_000_000, "max-unlock-iterations": 200_000_000}
OPTION_CONSTRAINTS = {"max-iterations": {"minimum": 1}, "max-unlock-iterations": {"minimum": 1}}


def check(area, ctx):
    """Flag slot or digest iteration counts, or their unlock sum, above the bounds."""
    luks = area.luks
    if luks is None or ctx.header.crypt_method != spec.CRYPT_LUKS or luks.magic != spec.LUKS_MAGIC:
        return
    limit, unlock_limit = ctx.options["max-iterations"], ctx.options["max-unlock-iterations"]
    active = [slot for slot in luks.key_slots if slot.active == spec.LUKS_KEY_ENABLED]
    if luks.mk_digest_iterations > limit:
        yield Problem(
            luks.file_offset + spec.LUKS_HEADER_FIELDS["mk_digest_iterations"],
            "encryption.luks.mk_digest_iterations",
            f"the LUKS master-key digest asks for {luks.mk_digest_iterations} PBKDF2 iterations, above "
            f"max-iterations {limit}",
        )
    for slot in active:
        if slot.iterations > limit:
            yield Problem(
                slot.file_offset + spec.LUKS_KEY_SLOT_FIELDS["iterations"],
                f"encryption.luks.key_slots[{slot.index}].iterations",
                f"LUKS key slot {slot.index} asks for {slot.iterations} PBKDF2 iterations, above max-iterations "
                f"{limit}",
            )
    unlock = sum(slot.iterations + luks.mk_digest_iterations for slot in active)
    if len(active) > 1 and unlock > unlock_limit:
        yield Problem(
            luks.file_offset,
            "encryption.luks",
            f"trying a key on the {len(active)} active LUKS key slots costs {unlock} PBKDF2 iterations "
            f"(slot and digest iterations), above max-unlock-iterations {unlock_limit}",
        )
