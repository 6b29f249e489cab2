"""The command line reports what the library reports.

The rule rows run in-process (harness.lint); this test keeps the end-to-end
path covered: one ``qcow2lint check --preset pedantic --format json`` run
(the rows' configuration: every rule on) over the patched
image of every row of every table (and one ``--deep`` run over the rows
that need it) must give, image by image, exactly the findings of
``qcow2lint.lint``, and exit 1 because some of them are errors.
"""

from __future__ import annotations

import pytest
import rows_basic
import rows_bitmaps
import rows_consistency
import rows_header
import rows_placement
import rows_snapshots
from harness import Row, RowImages, format_findings, lint_json

#: The fields of a finding that the library's report and the JSON report share.
FIELDS = ("rule", "code", "severity", "offset", "location", "message")

ROWS: list[Row] = [
    row
    for table in (rows_basic, rows_header, rows_bitmaps, rows_consistency, rows_placement, rows_snapshots)
    for row in table.ROWS
    if not row.config  # a row with its own configuration cannot share the run's
]


@pytest.mark.parametrize("deep", [False, True], ids=["plain", "deep"])
def test_the_cli_reports_what_the_library_reports(row_images: RowImages, deep: bool) -> None:
    rows = [row for row in ROWS if row.deep == deep]
    paths = [row_images.get(row)[0] for row in rows]
    report = lint_json(paths, "--preset", "pedantic", *(["--deep"] if deep else []))
    assert [image["path"] for image in report["images"]] == [str(p) for p in paths]
    for row, image in zip(rows, report["images"]):
        linted = row_images.lint(row)
        library = linted.findings
        cli = [{key: finding[key] for key in FIELDS} for finding in image["findings"]]
        assert cli == library, (
            f"{row.id}: the CLI says\n{format_findings(image['findings'])}\nthe library says\n{format_findings(library)}"
        )
        for severity in ("error", "warning", "info"):
            assert image["summary"][severity] == linted.counts[severity], row.id
    assert report["_returncode"] == 1
