"""Records share one repr, written as attrs writes its own."""

import attrs
import numpy as np

from qcow2lint.records import L1Table
from qcow2lint.recordtype import Record
from qcow2lint.results import Extent


def test_the_shared_repr_is_attrs_repr():
    @attrs.frozen
    class Extent:  # what attrs would write for the record
        kind: str
        label: str
        offset: int
        length: int

    from qcow2lint import results

    assert repr(results.Extent("l1", "l1", 0x30000, 8)) == repr(Extent("l1", "l1", 0x30000, 8))


def test_fields_hidden_from_repr_stay_hidden_and_custom_reprs_apply():
    @attrs.frozen(repr=False)
    class Sample(Record):
        shown: int
        hidden: int = attrs.field(repr=False)
        custom: int = attrs.field(repr=lambda value: f"<{value:#x}>")

    assert repr(Sample(1, 2, 255)) == "Sample(shown=1, custom=<0xff>)"
    assert "entries=" in repr(L1Table(0x30000, 1, np.zeros(1, np.uint64)))
    assert Extent("a", "b", 1, 2) == Extent("a", "b", 1, 2)  # attrs' equality is kept
