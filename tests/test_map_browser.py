"""``qcow2lint map``'s page in a real browser: headless Chromium (Debian's
``chromium``) driven by Playwright (the ``browser`` extra), never a
downloaded browser.

Marked ``browser``: deselected by default, run with ``-m browser``
(``.ci/run`` does), and skipped with a reason where Chromium or Playwright
is missing.  The page is loaded from ``file://``; it must log no console
error, make no request but its own, draw the map (the screenshot holds the
legend's colours), show exact counts on hover, and show a finding when it
is clicked.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import consistency_builders as cb
import imagebuilder as ib
import pytest

from qcow2lint.filemap import build_map
from qcow2lint.filemap.command import render
from qcow2lint.filemap.render import KIND_COLOURS

pytestmark = pytest.mark.browser

HOSTILE = "</script><script>alert(1)</script>"


def _chromium() -> str | None:
    for name in (os.environ.get("QCOW2LINT_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (pip install 'qcow2lint[browser]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A page with a leak, an overlap, a finding and a hostile snapshot name."""
    work = tmp_path_factory.mktemp("browser")
    path = work / "img.qcow2"
    ib.create(path, "64M")
    ib.qemu_io(path, "write -P 0x11 0 1M", "write -P 0x22 8M 192k")
    ib.snapshot_create(path, HOSTILE)
    img = ib.Qcow2Image(path)
    cb.append_clusters(img, 2)
    out = work / "map.html"
    out.write_bytes(render(build_map(path), "html"))
    return out


class Loaded:
    """A page loaded from file://, with what it logged and asked for."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.browser = browser
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.console: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.url = path.as_uri()
        self.page.goto(self.url)
        self.page.wait_for_load_state("load")

    def colours(self, selector: str) -> set[tuple[int, int, int]]:
        """The colours of a screenshot of ``selector``: the PNG is decoded
        by the browser itself, in a blank page of its own."""
        shot = base64.b64encode(self.page.locator(selector).screenshot(type="png")).decode()
        blank = self.browser.new_page()
        try:
            found = blank.evaluate(_DECODE, shot)
        finally:
            blank.close()
        return {tuple(c) for c in found}


_DECODE = """async (b64) => {
  const img = new Image();
  img.src = "data:image/png;base64," + b64;
  await img.decode();
  const c = document.createElement("canvas");
  c.width = img.width; c.height = img.height;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < d.length; i += 4) seen.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);
  return [...seen].map((v) => [v >> 16, (v >> 8) & 255, v & 255]);
}"""


def test_the_page_loads_offline_and_draws(browser: Any, page_file: Path) -> None:
    loaded = Loaded(browser, page_file)
    try:
        assert loaded.console == []
        assert loaded.dialogs == []  # the hostile snapshot name ran nothing
        assert loaded.requests == [loaded.url]  # nothing but the page itself
        assert loaded.page.locator("#names").text_content().count(HOSTILE) == 1
        # The map is drawn: the host canvas holds the legend's colours.
        legend = loaded.page.eval_on_selector_all("#legend .sw", "e => e.map(s => s.dataset.kind)")
        assert {"header", "data", "leaked"} <= set(legend)
        colours = loaded.colours("#host")
        for kind in legend:
            assert KIND_COLOURS[kind] in colours, kind
    finally:
        loaded.page.close()


def test_hover_shows_exact_counts(browser: Any, page_file: Path) -> None:
    loaded = Loaded(browser, page_file)
    try:
        box = loaded.page.locator("#host").bounding_box()
        width = loaded.page.evaluate("D.host.width")
        scale = box["width"] / width
        loaded.page.mouse.move(box["x"] + scale / 2, box["y"] + scale / 2)  # pixel 0: the header
        text = loaded.page.locator("#hover").text_content()
        assert text.startswith("cluster 0 ") and "header: 1" in text
        leaked = loaded.page.evaluate("D.findings.find(f => f.rule === 'refcount-leak').first")
        x, y = leaked % width, leaked // width
        loaded.page.mouse.move(box["x"] + (x + 0.5) * scale, box["y"] + (y + 0.5) * scale)
        assert f"cluster {leaked:,} " in loaded.page.locator("#hover").text_content()
        assert "leaked: 1" in loaded.page.locator("#hover").text_content()
    finally:
        loaded.page.close()


def test_clicking_a_finding_shows_it(browser: Any, page_file: Path) -> None:
    loaded = Loaded(browser, page_file)
    try:
        findings = loaded.page.evaluate("D.findings")
        index = next(i for i, f in enumerate(findings) if f["rule"] == "refcount-leak")
        loaded.page.locator("#findings button").nth(index).click()
        shown = loaded.page.locator("#finding").text_content()
        assert findings[index]["message"] in shown and "refcount-leak" in shown
        first, last = findings[index]["first"], findings[index]["last"]
        assert f"clusters {first:,}..{last:,}" in shown and f"leaked x{last - first + 1}" in shown
        assert "sel" in (loaded.page.locator("#findings button").nth(index).get_attribute("class") or "")
        assert loaded.page.locator("#detail-title").text_content().startswith("clusters 0..")
        assert loaded.console == []
    finally:
        loaded.page.close()


def test_chromium_is_the_systems() -> None:
    """The suite never downloads a browser: Playwright's own cache stays empty."""
    if _chromium() is None:
        pytest.skip("no Chromium installed")
    cache = Path.home() / ".cache" / "ms-playwright"
    assert not cache.exists() or not any(cache.glob("chromium-*"))
    assert subprocess.run([_chromium() or "", "--version"], capture_output=True, check=False).returncode == 0
