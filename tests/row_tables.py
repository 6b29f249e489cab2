"""Every table of rule rows (rows_*.py), by family: what test_rule_rows.py
runs and test_differential.py compares with qemu-img check."""

from __future__ import annotations

import rows_basic
import rows_bitmaps
import rows_consistency
import rows_header
import rows_placement
import rows_policy
import rows_snapshots
from harness import Row

TABLES: dict[str, list[Row]] = {
    "basic": rows_basic.ROWS,
    "header": rows_header.ROWS,
    "bitmaps": rows_bitmaps.ROWS,
    "consistency": rows_consistency.ROWS,
    "placement": rows_placement.ROWS,
    "snapshots": rows_snapshots.ROWS,
    "policy": rows_policy.ROWS,
}
