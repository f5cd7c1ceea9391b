"""A trace as one self-contained HTML page: a lane per worker, zoom and pan, details on hover.

Everything is inline (the script, the style, the data): the page loads nothing, so it works
from ``file://`` with the network off, and can be mailed. The data is stored by column (one
array per field, names in tables), which keeps 100,000 batches to a few megabytes and lets the
script draw them from typed arrays: only what is on screen, at most one mark per pixel of a
lane.
"""

from __future__ import annotations

import html
import json
from typing import Any

from ._trace_out import Layout

# How a batch ended, as the page colours it.
OK, FAILED, TIMED_OUT, CRASHED, NOT_RUN = range(5)


def _outcome(errors: dict[str, int], ran: bool) -> int:
    if not ran:
        return NOT_RUN
    if "WorkerCrashed" in errors:
        return CRASHED
    if "TaskTimeout" in errors:
        return TIMED_OUT
    return FAILED if errors else OK


def timeline_html(layout: Layout, summary: str, title: str = "plait trace") -> str:
    """The page for ``layout``, with ``summary`` at its top."""
    names: dict[str, int] = {}
    error_names: dict[str, int] = {}
    columns: dict[str, list[Any]] = {k: [] for k in "rsdfniaqoegt"}
    # A lane per row, and one more under it for each depth of the batches that ran within
    # another of its batches (a map inline inside a batch run inline): a lane's batches never
    # overlap, which is what the page's search, and drawing, count on.
    depths = [0] * len(layout.rows)
    for item in layout.placed:
        depths[item.row] = max(depths[item.row], item.depth)
    lanes: dict[tuple[int, int], int] = {}
    rows: list[list[Any]] = []
    for row, (place, name) in enumerate(layout.rows):
        for depth in range(depths[row] + 1):
            lanes[row, depth] = len(rows)
            rows.append([place, f"{name} (within the lane above)" if depth else name])
    for item in layout.placed:
        batch = item.batch
        columns["r"].append(lanes[item.row, item.depth])
        columns["s"].append(item.ts)
        columns["d"].append(item.dur)
        columns["f"].append(names.setdefault(f"{batch.function} ({batch.backend})", len(names)))
        columns["n"].append(batch.items)
        columns["i"].append(-1 if batch.call else batch.first)
        columns["a"].append(batch.attempt)
        columns["q"].append(round((batch.start - batch.queued) * 1e6, 1))
        columns["o"].append(_outcome(batch.errors, batch.ran))
        error = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in sorted(batch.errors.items()))
        columns["e"].append(error_names.setdefault(error, len(error_names)) if error else -1)
        columns["g"].append(int(batch.again))
        columns["t"].append(batch.retries)
    data = {
        "places": layout.places,
        "rows": rows,
        "names": list(names),
        "errors": list(error_names),
        **columns,
    }
    # (Inside a <script>, "</" could end it early, and "<!--" followed by "<script" makes the
    # browser take the script's own end for a part of it: every "<" is escaped, which reads
    # the same in a JavaScript string, the only place one can be.)
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return (
        _PAGE.replace("__TITLE__", html.escape(title))
        .replace("__SUMMARY__", html.escape(summary))
        .replace("__DATA__", payload)
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
  body { margin: 0; font: 13px system-ui, sans-serif; color: #222; background: #fafafa; }
  header { padding: 10px 14px 6px; }
  h1 { font-size: 16px; margin: 0 0 6px; }
  pre { margin: 0; font: 12px ui-monospace, monospace; white-space: pre-wrap; }
  #legend span { display: inline-block; margin-right: 14px; }
  #legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px;
              vertical-align: -1px; }
  #help { color: #666; margin: 6px 0 0; }
  #view { position: relative; }
  canvas { display: block; cursor: grab; }
  #tip { position: absolute; display: none; pointer-events: none; background: #fff;
         border: 1px solid #999; padding: 6px 8px; font: 12px ui-monospace, monospace;
         white-space: pre; box-shadow: 0 2px 6px rgba(0,0,0,.15); z-index: 2; }
</style>
</head>
<body data-rendered="no" data-errors="">
<header>
  <h1>__TITLE__</h1>
  <pre id="summary">__SUMMARY__</pre>
  <div id="legend"></div>
  <div id="help">Wheel: zoom at the pointer. Drag: pan. Double-click: the whole run.
  Hover a batch for its details.</div>
</header>
<div id="view"><canvas id="lanes"></canvas><div id="tip"></div></div>
<script>
"use strict";
window.addEventListener("error", (e) => {
  document.body.dataset.errors += (e.message || String(e)) + "\\n";
});
const D = __DATA__;
const COLOURS = ["#4e79a7", "#e15759", "#f28e2b", "#7b3294", "#bab0ac"];
const OUTCOMES = ["ran", "failed", "timed out", "worker crashed", "never ran"];
const LANE = 18, AXIS = 24, LABEL = 280;
const n = D.s.length;
const start = Float64Array.from(D.s), dur = Float64Array.from(D.d);
const row = Int32Array.from(D.r), outcome = Int8Array.from(D.o);
let end = 1;
for (let k = 0; k < n; k++) end = Math.max(end, start[k] + dur[k]);
// Each lane's batches, by start: they never overlap, so their ends are in order too.
const lanes = D.rows.map(() => []);
for (let k = 0; k < n; k++) lanes[row[k]].push(k);
const byLane = lanes.map((ks) => Int32Array.from(ks.sort((a, b) => start[a] - start[b])));
const legend = document.getElementById("legend");
OUTCOMES.forEach((name, k) => {
  const span = document.createElement("span");
  const box = document.createElement("i");
  box.style.background = COLOURS[k];
  span.append(box, name);
  legend.append(span);
});
const canvas = document.getElementById("lanes"), tip = document.getElementById("tip");
const ctx = canvas.getContext("2d");
let t0 = 0, t1 = end * 1.02, width = 0;
function resize() {
  const ratio = window.devicePixelRatio || 1;
  width = Math.max(400, document.documentElement.clientWidth);
  const height = AXIS + D.rows.length * LANE + 8;
  canvas.width = width * ratio; canvas.height = height * ratio;
  canvas.style.width = width + "px"; canvas.style.height = height + "px";
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  draw();
}
function x(t) { return LABEL + (t - t0) / (t1 - t0) * (width - LABEL - 10); }
function time(px) { return t0 + (px - LABEL) / (width - LABEL - 10) * (t1 - t0); }
function firstEnding(ks, t) {  // the first of a lane's batches that ends at t or later
  let lo = 0, hi = ks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (start[ks[mid]] + dur[ks[mid]] < t) lo = mid + 1; else hi = mid;
  }
  return lo;
}
function label(us) {
  if (us >= 1e6) return (us / 1e6).toFixed(2) + " s";
  if (us >= 1e3) return (us / 1e3).toFixed(2) + " ms";
  return us.toFixed(1) + " µs";
}
function draw() {
  const painted = performance.now();
  ctx.clearRect(0, 0, width, canvas.height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.fillStyle = "#666";
  const rough = (t1 - t0) / 8, power = Math.pow(10, Math.floor(Math.log10(rough)));
  const step = power * [1, 2, 2, 5, 5, 5, 5, 10, 10, 10][Math.floor(rough / power)];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    ctx.fillRect(x(t), AXIS - 6, 1, 6);
    ctx.fillText(label(t), x(t) + 2, AXIS - 14);
  }
  let drawn = 0;
  D.rows.forEach(([place, name], r) => {
    const y = AXIS + r * LANE;
    ctx.fillStyle = r % 2 ? "#f0f0f0" : "#fff";
    ctx.fillRect(0, y, width, LANE);
    ctx.fillStyle = "#222";
    const text = D.places[place] + " / " + name;
    ctx.fillText(text.length > 44 ? "…" + text.slice(-43) : text, 6, y + LANE / 2);
    ctx.save();
    ctx.beginPath(); ctx.rect(LABEL, y, width - LABEL, LANE); ctx.clip();
    const ks = byLane[r];
    let lastPixel = -1, lastOutcome = -1;
    for (let j = firstEnding(ks, t0); j < ks.length && start[ks[j]] <= t1; j++) {
      const k = ks[j], left = x(start[k]), right = x(start[k] + dur[k]);
      const pixel = Math.floor(left);
      if (right - left < 1 && pixel === lastPixel && outcome[k] === lastOutcome) continue;
      lastPixel = pixel; lastOutcome = outcome[k];
      ctx.fillStyle = COLOURS[outcome[k]];
      if (dur[k] > 0) ctx.fillRect(left, y + 3, Math.max(1, right - left - 0.5), LANE - 6);
      else ctx.fillRect(left - 1, y + 1, 2, LANE - 2);  // a mark: it never ran
      drawn++;
    }
    ctx.restore();
  });
  document.body.dataset.lanes = String(D.rows.length);
  document.body.dataset.drawn = String(drawn);
  document.body.dataset.drawMs = (performance.now() - painted).toFixed(1);
  if (document.body.dataset.rendered !== "yes") {  // from the page's start: its data read too
    document.body.dataset.loadMs = performance.now().toFixed(1);
  }
  document.body.dataset.rendered = "yes";
}
function hit(px, py) {
  const r = Math.floor((py - AXIS) / LANE);
  if (r < 0 || r >= D.rows.length || px < LABEL) return -1;
  const ks = byLane[r], t = time(px), slack = (t1 - t0) / (width - LABEL) * 2;
  const j = firstEnding(ks, t - slack);
  return j < ks.length && start[ks[j]] <= t + slack ? ks[j] : -1;
}
function details(k) {
  const lines = [D.names[D.f[k]], OUTCOMES[outcome[k]]];
  const last = D.i[k] + D.n[k] - 1;
  lines.push(D.i[k] < 0 ? "a call" : D.n[k] === 1 ? "1 item: " + D.i[k] :
    D.n[k] + " items: " + D.i[k] + "-" + last);
  lines.push("took " + label(dur[k]) + ", began at " + label(start[k]));
  lines.push("waited for a worker " + label(D.q[k]));
  if (D.a[k] > 1) lines.push("attempt " + D.a[k]);
  if (D.t[k]) lines.push(D.t[k] + " retr" + (D.t[k] > 1 ? "ies" : "y") + " of its items");
  if (D.g[k]) lines.push("its worker died: its items ran again one by one");
  else if (D.e[k] >= 0) lines.push("raised " + D.errors[D.e[k]]);
  const [place, name] = D.rows[row[k]];
  lines.push(D.places[place] + " / " + name);
  return lines.join("\\n");
}
let dragging = null;
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const at = time(e.offsetX), zoom = Math.exp(e.deltaY * 0.002);
  const span = Math.max(1, (t1 - t0) * zoom);
  t0 = at - (at - t0) * span / (t1 - t0); t1 = t0 + span; draw();
}, { passive: false });
canvas.addEventListener("mousedown", (e) => { dragging = [e.clientX, t0, t1]; });
window.addEventListener("mouseup", () => { dragging = null; });
window.addEventListener("mousemove", (e) => {
  if (!dragging) return;
  const shift = (e.clientX - dragging[0]) / (width - LABEL - 10) * (dragging[2] - dragging[1]);
  t0 = dragging[1] - shift; t1 = dragging[2] - shift; draw();
});
canvas.addEventListener("dblclick", () => { t0 = 0; t1 = end * 1.02; draw(); });
canvas.addEventListener("mousemove", (e) => {
  const k = dragging ? -1 : hit(e.offsetX, e.offsetY);
  if (k < 0) { tip.style.display = "none"; return; }
  tip.textContent = details(k);
  tip.style.left = Math.min(e.offsetX + 14, width - 300) + "px";
  tip.style.top = (e.offsetY + 14) + "px";
  tip.style.display = "block";
});
canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
window.addEventListener("resize", resize);
resize();
</script>
</body>
</html>
"""
