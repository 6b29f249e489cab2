"""The map as one self-contained HTML page.

No network: a Content-Security-Policy forbids every fetch (``default-src
'none'``) and allows only this page's own script and style, by their
SHA-256 hashes.  The data is embedded as JSON in a ``<script
type="application/json">`` element with ``<``, ``>`` and ``&`` escaped (and
U+2028/U+2029, by ASCII-only JSON), so no name from the image can close the
element; the script puts every text from the image into the page with
``textContent`` only.

What is embedded stays bounded whatever the image: the most severe kind of
each pixel (at most ``analysis.MAX_CELLS``), the exact counts of the pixels
that cover more than one kind (at most ``MAX_MIXED``), the runs for the
close-up view (all of them up to ``MAX_PAGE_RUNS``, else those around the
findings), and the findings.
"""

from __future__ import annotations

import base64
import hashlib
import json

import numpy as np

from qcow2lint.filemap.analysis import GUEST_STATES, GUEST_TITLES, KIND_TITLES, KINDS, FileMap, Runs
from qcow2lint.filemap.render import GUEST_COLOURS, KIND_COLOURS, hex_colour, worst

#: Pixels whose exact counts per kind are embedded (the others hold one kind).
MAX_MIXED = 1 << 14
#: Runs embedded for the close-up view; past it only the windows around findings.
MAX_PAGE_RUNS = 30_000
#: Clusters in one close-up window (64 x 64, one cluster per pixel).
WINDOW = 4096
#: Close-up windows kept around findings when the runs are too many.
MAX_WINDOWS = 64
#: Findings embedded.
MAX_PAGE_FINDINGS = 2000


def _pixels(runs: Runs) -> dict[str, object]:
    """One map's pixels: worst kind each (base64), and the exact counts of
    the pixels that hold more than one kind."""
    codes = worst(runs)
    present = runs.counts > 0
    mixed = np.flatnonzero(present.sum(axis=1) > 1)
    listed = []
    for pixel in mixed[:MAX_MIXED].tolist():
        kinds = np.flatnonzero(present[pixel])
        listed.append([pixel, *[int(v) for k in kinds.tolist() for v in (k, runs.counts[pixel, k])]])
    return {
        "cells": runs.layout.cells,
        "per_pixel": runs.layout.per_pixel,
        "width": runs.layout.width,
        "rows": runs.layout.rows,
        "worst": base64.b64encode(codes.tobytes()).decode(),
        "mixed": listed,
        "mixed_omitted": max(len(mixed) - MAX_MIXED, 0),
    }


def _closeup_runs(filemap: FileMap, windows: list[int]) -> dict[str, object]:
    """Runs for the close-up view: all, or those of ``windows`` (clipped)."""
    host = filemap.host
    if len(host.first) <= MAX_PAGE_RUNS and not host.omitted:
        first, kind = host.first, host.kind
        return {"all": True, "first": first.tolist(), "kind": base64.b64encode(kind.tobytes()).decode()}
    firsts: list[int] = []
    kinds: list[int] = []
    for start in windows:
        low = int(np.searchsorted(host.first, start, "right")) - 1
        high = int(np.searchsorted(host.first, start + WINDOW, "left"))
        for index in range(max(low, 0), high):
            firsts.append(max(int(host.first[index]), start))
            kinds.append(int(host.kind[index]))
    return {
        "all": False,
        "windows": windows,
        "first": firsts,
        "kind": base64.b64encode(np.array(kinds, np.uint8).tobytes()).decode(),
    }


def page_data(filemap: FileMap) -> dict[str, object]:
    """Everything the page draws."""
    cs = filemap.cluster_size
    findings = []
    windows: list[int] = []
    for finding in filemap.findings[:MAX_PAGE_FINDINGS]:
        first, last = finding.clusters if finding.clusters is not None else (finding.offset // cs,) * 2
        findings.append({**finding.to_json(), "first": int(first), "last": int(last)})
        window = int(first) // WINDOW * WINDOW
        if window not in windows and len(windows) < MAX_WINDOWS:
            windows.append(window)
    return {
        "path": filemap.path,
        "cluster_size": cs,
        "file_size": filemap.file_size,
        "virtual_size": filemap.virtual_size,
        "file_clusters": filemap.file_clusters,
        "window": WINDOW,
        "kinds": [[name, KIND_TITLES[name], hex_colour(KIND_COLOURS[name])] for name in KINDS],
        "states": [[name, GUEST_TITLES[name], hex_colour(GUEST_COLOURS[name])] for name in GUEST_STATES],
        "host": _pixels(filemap.host),
        "guest": _pixels(filemap.guest),
        "runs": _closeup_runs(filemap, sorted(windows)),
        "totals": filemap.host.totals(KINDS),
        "guest_totals": filemap.guest.totals(GUEST_STATES),
        "findings": findings,
        "findings_omitted": max(len(filemap.findings) - MAX_PAGE_FINDINGS, 0),
        "figures": filemap.figures,
        "names": filemap.names,
        "past_end": [[o, n, label] for o, n, label in filemap.past_end[:100]],
    }


def embedded_json(data: object) -> str:
    """JSON that is safe inside a ``<script>`` element: ASCII only (so
    U+2028/U+2029 are escapes) and no ``<``, ``>`` or ``&``."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def render_html(filemap: FileMap) -> str:
    """The page."""
    policy = (
        f"default-src 'none'; script-src {_hash(SCRIPT)}; style-src {_hash(STYLE)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    title = json.dumps(filemap.path, ensure_ascii=True)[1:-1]
    title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        f"<title>qcow2lint map: {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{BODY}\n"
        f'<script type="application/json" id="map-data">{embedded_json(page_data(filemap))}</script>\n'
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:18px;margin:0 0 8px}h2{font-size:15px;margin:14px 0 6px}
#path{font-family:monospace;word-break:break-all}
.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.panel{min-width:260px}
canvas{image-rendering:pixelated;border:1px solid #999;display:block;cursor:crosshair}
.stack{position:relative}
.stack canvas.overlay{position:absolute;left:0;top:0;pointer-events:none;border-color:transparent}
table{border-collapse:collapse}td,th{padding:1px 8px 1px 0;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.sw{display:inline-block;width:11px;height:11px;border:1px solid #777;margin-right:5px;vertical-align:-1px}
#hover,#detail-hover,#guest-hover{font-family:monospace;font-size:12px;min-height:5em;white-space:pre-wrap;
background:#f6f6f6;padding:4px 6px;margin-top:6px;max-width:760px}
.scale{font-size:12px;color:#555;max-width:760px}
#findings button{font:inherit;text-align:left;border:0;background:none;padding:1px 2px;cursor:pointer;width:100%}
#findings button:hover,#findings button.sel{background:#ffe9b3}
.sev-error{color:#b00}.sev-warning{color:#a60}.sev-info{color:#066}
#finding{background:#fff6dd;padding:6px 8px;margin-top:6px;max-width:760px;white-space:pre-wrap;font-size:13px}
#findings{max-height:320px;overflow:auto;max-width:760px}
.mono{font-family:monospace}
"""

BODY = """<h1>qcow2lint map: <span id="path"></span></h1>
<div class="row">
<div class="panel"><h2>File: every host cluster</h2><div id="host-scale" class="scale"></div>
<div class="stack"><canvas id="host"></canvas><canvas id="marks" class="overlay"></canvas></div>
<div id="hover">Point at the map: the clusters under the pointer and their kinds. Click: close-up.</div></div>
<div class="panel"><h2>Guest: the virtual disk by guest cluster</h2><div id="guest-scale" class="scale"></div>
<canvas id="guest"></canvas><div id="guest-hover">Point at the guest map: its clusters and their states.</div></div>
</div>
<div class="row">
<div class="panel"><h2>Legend</h2><table id="legend"></table></div>
<div class="panel"><h2>Guest legend</h2><table id="guest-legend"></table></div>
<div class="panel"><h2>Figures</h2><table id="figures"></table></div>
</div>
<div class="row">
<div class="panel"><h2>Findings</h2><div id="findings"></div><div id="finding">Click a finding (or a marked pixel).</div>
<h2>Names in the image</h2><div id="names"></div></div>
<div class="panel"><h2>Close-up: one cluster per pixel</h2><div id="detail-title">Click the map or a finding.</div>
<div class="stack"><canvas id="detail"></canvas><canvas id="detail-marks" class="overlay"></canvas></div>
<div id="detail-hover"></div></div>
</div>"""

SCRIPT = r"""
"use strict";
const D = JSON.parse(document.getElementById("map-data").textContent);
const $ = (id) => document.getElementById(id);
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; };
const hex = (n) => "0x" + Number(n).toString(16);
const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const num = (n) => Number(n).toLocaleString("en-US");
const human = (n) => { const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]; let i = 0; let v = Number(n); while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; } return (i ? v.toFixed(2) : String(v)) + " " + u[i]; };
const rgb = (h) => [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
const CS = D.cluster_size;
$("path").textContent = D.path;

function scaleOf(m, w) { return Math.max(1, Math.min(64, Math.floor(w / m.width), Math.floor(w / m.rows))); }

function mapInfo(m, kinds, w) {
  const worst = bytes(m.worst);
  const mixed = new Map();
  for (const row of m.mixed) { const c = []; for (let i = 1; i < row.length; i += 2) c.push([row[i], row[i + 1]]); mixed.set(row[0], c); }
  return { m: m, worst: worst, mixed: mixed, kinds: kinds, scale: scaleOf(m, w) };
}

function draw(canvas, info) {
  const m = info.m;
  canvas.width = m.width; canvas.height = m.rows;
  canvas.style.width = m.width * info.scale + "px"; canvas.style.height = m.rows * info.scale + "px";
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(m.width, m.rows);
  const pal = info.kinds.map((k) => rgb(k[2]));
  for (let p = 0; p < m.width * m.rows; p++) {
    const c = p < info.worst.length ? pal[info.worst[p]] : [255, 255, 255];
    img.data[4 * p] = c[0]; img.data[4 * p + 1] = c[1]; img.data[4 * p + 2] = c[2]; img.data[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function countsAt(info, p) {
  if (p < 0 || p >= info.worst.length || p * info.m.per_pixel >= info.m.cells) return null;
  const m = info.m;
  const first = p * m.per_pixel;
  const n = Math.min(m.per_pixel, m.cells - first);
  const c = info.mixed.get(p);
  if (c) return { first: first, n: n, counts: c };
  if (info.mixed.size && m.mixed_omitted) return { first: first, n: n, counts: [[info.worst[p], n]], approx: true };
  return { first: first, n: n, counts: [[info.worst[p], n]] };
}

function pixelAt(canvas, info, ev) {
  const r = canvas.getBoundingClientRect();
  const x = Math.floor((ev.clientX - r.left) / info.scale), y = Math.floor((ev.clientY - r.top) / info.scale);
  if (x < 0 || y < 0 || x >= info.m.width || y >= info.m.rows) return -1;
  return y * info.m.width + x;
}

function describe(info, p, unit, unitBytes) {
  const a = countsAt(info, p);
  if (!a) return "";
  const last = a.first + a.n - 1;
  let t = unit + (a.n > 1 ? "s " : " ") + num(a.first) + (a.n > 1 ? ".." + num(last) : "") + "  (bytes " + hex(a.first * unitBytes) + ".." + hex((last + 1) * unitBytes - 1) + ")\n";
  for (const [k, n] of a.counts) t += "  " + info.kinds[k][0] + ": " + num(n) + (a.approx ? " (counts not kept)" : "") + "\n";
  return t;
}

function legend(table, kinds, totals, unit) {
  for (const [name, title, colour] of kinds) {
    if (!totals[name]) continue;
    const tr = el("tr"), td = el("td"), sw = el("span", undefined, "sw");
    sw.style.background = colour; sw.dataset.kind = name;
    td.appendChild(sw); td.appendChild(document.createTextNode(title));
    tr.appendChild(td); tr.appendChild(el("td", num(totals[name]) + " " + unit + (totals[name] === 1 ? "" : "s"), "n")); table.appendChild(tr);
  }
}

const host = mapInfo(D.host, D.kinds, 768);
const guest = mapInfo(D.guest, D.states, 512);
draw($("host"), host); draw($("guest"), guest);
$("host-scale").textContent = num(D.file_clusters) + " clusters of " + human(CS) + ", " + num(D.host.per_pixel) + " per pixel, " + num(D.host.width * D.host.per_pixel) + " per row (rows start at multiples of " + hex(D.host.width * D.host.per_pixel * CS) + ")";
$("guest-scale").textContent = human(D.virtual_size) + ", " + num(D.guest.per_pixel) + " guest clusters per pixel";
legend($("legend"), D.kinds, D.totals, "cluster");
legend($("guest-legend"), D.states, D.guest_totals, "cluster");

// Findings: marks on the map, a list, a panel.
const marks = $("marks");
marks.width = D.host.width * host.scale; marks.height = D.host.rows * host.scale;
marks.style.width = marks.width + "px"; marks.style.height = marks.height + "px";
const byPixel = new Map();
function markPixel(ctx, info, p, colour) {
  const s = info.scale, x = (p % info.m.width) * s, y = Math.floor(p / info.m.width) * s;
  ctx.strokeStyle = colour; ctx.lineWidth = 2; ctx.strokeRect(x - 2, y - 2, s + 4, s + 4);
}
function drawMarks(selected) {
  const ctx = marks.getContext("2d");
  ctx.clearRect(0, 0, marks.width, marks.height);
  for (const f of D.findings) {
    const p = Math.floor(f.first / D.host.per_pixel);
    markPixel(ctx, host, p, f === selected ? "#0050ff" : "#000");
  }
}
D.findings.forEach((f) => { const p = Math.floor(f.first / D.host.per_pixel); if (!byPixel.has(p)) byPixel.set(p, f); });
drawMarks(null);

const list = $("findings");
const buttons = [];
if (!D.findings.length) list.textContent = "No findings.";
for (const f of D.findings) {
  const b = el("button");
  b.appendChild(el("span", f.severity + " ", "sev-" + f.severity));
  b.appendChild(el("span", f.code + " " + f.rule + " at " + hex(f.offset) + " " + f.location, "mono"));
  b.addEventListener("click", () => select(f));
  list.appendChild(b); buttons.push([f, b]);
}
if (D.findings_omitted) list.appendChild(el("div", "and " + num(D.findings_omitted) + " more findings not shown (qcow2lint check lists them)"));

function kindsOf(first, last) {
  const counts = new Map();
  let unknown = 0;
  for (let c = first; c <= last && c - first < 1 << 20; c++) { const k = kindAt(c); if (k < 0) unknown++; else counts.set(k, (counts.get(k) || 0) + 1); }
  const parts = []; for (const [k, n] of counts) parts.push(D.kinds[k][0] + " x" + num(n));
  if (unknown) parts.push("not kept x" + num(unknown));
  return parts.join(", ");
}

function select(f) {
  for (const [g, b] of buttons) b.classList.toggle("sel", g === f);
  const box = $("finding");
  box.textContent = "";
  box.appendChild(el("div", f.severity + "  " + f.code + "  " + f.rule, "sev-" + f.severity));
  box.appendChild(el("div", "at " + hex(f.offset) + "  " + f.location, "mono"));
  box.appendChild(el("div", f.message));
  const span = f.last > f.first ? "clusters " + num(f.first) + ".." + num(f.last) : "cluster " + num(f.first);
  box.appendChild(el("div", span + " (bytes " + hex(f.first * CS) + ".." + hex((f.last + 1) * CS - 1) + "): " + kindsOf(f.first, Math.min(f.last, f.first + 4095)), "mono"));
  drawMarks(f);
  closeup(f.first, f);
}

// The close-up: runs, all of them or those of the windows around findings.
const runFirst = D.runs.first, runKind = bytes(D.runs.kind);
const windows = D.runs.all ? null : new Set(D.runs.windows);
function kindAt(c) {
  if (c < 0 || c >= D.host.cells) return -1;
  if (windows && !windows.has(Math.floor(c / D.window) * D.window)) return -1;
  let lo = 0, hi = runFirst.length - 1;
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (runFirst[mid] <= c) lo = mid; else hi = mid - 1; }
  return runFirst.length ? runKind[lo] : -1;
}
const detail = $("detail"), dmarks = $("detail-marks");
const DW = 64, DS = 8;
let detailStart = -1;
function closeup(cluster, f) {
  detailStart = Math.floor(cluster / D.window) * D.window;
  const shown = Math.min(D.window, D.host.cells - detailStart), DH = Math.max(1, Math.ceil(shown / DW));
  detail.width = DW; detail.height = DH;
  detail.style.width = DW * DS + "px"; detail.style.height = DH * DS + "px";
  const ctx = detail.getContext("2d"), img = ctx.createImageData(DW, DH);
  let missing = 0;
  for (let i = 0; i < DW * DH; i++) {
    const k = kindAt(detailStart + i);
    let c = [255, 255, 255];
    if (k >= 0) c = rgb(D.kinds[k][2]); else if (detailStart + i < D.host.cells) { c = (i + Math.floor(i / DW)) % 2 ? [200, 200, 200] : [150, 150, 150]; missing++; }
    img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2]; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  dmarks.width = DW * DS; dmarks.height = DH * DS;
  dmarks.style.width = dmarks.width + "px"; dmarks.style.height = dmarks.height + "px";
  const mctx = dmarks.getContext("2d");
  mctx.clearRect(0, 0, dmarks.width, dmarks.height);
  for (const g of D.findings) {
    for (let c = Math.max(g.first, detailStart); c <= Math.min(g.last, detailStart + shown - 1); c++) {
      const i = c - detailStart;
      mctx.strokeStyle = g === f ? "#0050ff" : "#000"; mctx.lineWidth = 2;
      mctx.strokeRect((i % DW) * DS + 1, Math.floor(i / DW) * DS + 1, DS - 2, DS - 2);
    }
  }
  $("detail-title").textContent = "clusters " + num(detailStart) + ".." + num(detailStart + shown - 1) + " (bytes " + hex(detailStart * CS) + "..)" + (missing ? "; grey: not kept in this page (too many runs; see --format json)" : "");
}

$("host").addEventListener("mousemove", (ev) => { $("hover").textContent = describe(host, pixelAt($("host"), host, ev), "cluster", CS); });
$("host").addEventListener("click", (ev) => {
  const p = pixelAt($("host"), host, ev); if (p < 0) return;
  const f = byPixel.get(p);
  if (f) select(f); else closeup(p * D.host.per_pixel, null);
});
$("guest").addEventListener("mousemove", (ev) => { $("guest-hover").textContent = describe(guest, pixelAt($("guest"), guest, ev), "guest cluster", CS); });
detail.addEventListener("mousemove", (ev) => {
  if (detailStart < 0) return;
  const r = detail.getBoundingClientRect();
  const x = Math.floor((ev.clientX - r.left) / DS), y = Math.floor((ev.clientY - r.top) / DS);
  if (x < 0 || y < 0 || x >= DW || y >= detail.height) return;
  const c = detailStart + y * DW + x, k = kindAt(c);
  let t = "cluster " + num(c) + " at " + hex(c * CS) + ": " + (k >= 0 ? D.kinds[k][0] + " (" + D.kinds[k][1] + ")" : "not kept");
  for (const g of D.findings) if (c >= g.first && c <= g.last) t += "\n  " + g.code + " " + g.rule + ": " + g.message;
  $("detail-hover").textContent = t;
});

// Figures.
const F = D.figures, fig = $("figures");
function row(label, value) { const tr = el("tr"); tr.appendChild(el("td", label)); tr.appendChild(el("td", value, "n")); fig.appendChild(tr); }
const sized = (b) => num(b) + " B (" + human(b) + ")";
row("file size", sized(F["file-size"]));
if ("image-end-offset" in F) row("image end offset", sized(F["image-end-offset"]));
row("virtual size", sized(F["virtual-size"]));
row("cluster size", sized(F["cluster-size"]));
for (const k of ["allocated-clusters", "fragmented-clusters", "compressed-clusters"]) if (k in F) row(k.replace("-", " ") + " (qemu-img check)", num(F[k]));
row("leaked clusters", num(F["leaked-clusters"]) + " (" + human(F["leaked-bytes"]) + ")");
row("metadata clusters", num(F["metadata-clusters"]));
row("free clusters", num(F["free-clusters"]));
if (F["overlapping-clusters"]) row("overlapping clusters", num(F["overlapping-clusters"]));
if (F["references-past-end"]) row("references past the end", num(F["references-past-end"]));
if ("measure-required" in F) {
  row("a fresh copy needs (qemu-img measure)", sized(F["measure-required"]) + (F["measure-exact"] ? "" : " (without the backing file's data)"));
  row("reclaimable (file size - that)", sized(F["reclaimable"]));
}

const names = $("names");
const N = D.names;
if (N["backing-file"] !== undefined) names.appendChild(el("div", "backing file: " + N["backing-file"]));
for (const s of N.snapshots || []) names.appendChild(el("div", "snapshot: " + s));
for (const b of N.bitmaps || []) names.appendChild(el("div", "bitmap: " + b));
if (!names.childNodes.length) names.textContent = "none";
if (D.findings.length) select(D.findings[0]);
"""
