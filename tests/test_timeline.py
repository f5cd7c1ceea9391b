"""The trace's HTML timeline: self-contained, and rendered by a real headless Chromium with the
network off (a lane per worker, no console error, a screenshot)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import plait
from plait._trace import Trace

pytestmark = pytest.mark.timeout(180)

REQUIRED = os.environ.get("PLAIT_REQUIRE_EXTRAS") == "1"  # CI installs Chromium
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# No request can leave the browser: every name fails to resolve, and any connection would go
# to a proxy that is not there.
OFFLINE = ["--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]


def chromium(page: Path, tmp_path: Path, *options: str) -> str:
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("Chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("Chromium is not installed")
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            *OFFLINE,
            *options,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def rendered(page: Path, tmp_path: Path) -> dict[str, str]:
    """The page's <body> attributes once its script ran (the page writes what it drew, and
    any error, there)."""
    dom = chromium(page, tmp_path, "--dump-dom")
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(1)))


def square(x: int) -> int:
    return x * x


def fail_on_five(x: int) -> int:
    if x == 5:
        raise ValueError("five")
    return x


def test_the_timeline_needs_nothing_from_the_network(tmp_path: Path) -> None:
    page = tmp_path / "run.html"
    with plait.trace(page):
        list(plait.map(square, range(100), backend="thread", workers=2))
    text = page.read_text()
    assert not re.search(r"\b(src|href)\s*=", text)
    assert not re.search(r"https?://|//cdn|@import|url\(", text)
    assert "<script>" in text  # (inline)
    assert "<style>" in text


def test_the_timeline_renders_a_lane_per_worker_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "run.html"
    with plait.trace(page) as trace:
        list(plait.map(square, range(200), backend="thread", workers=3, chunksize=5))
        list(plait.map(fail_on_five, range(40), backend="process", workers=2, errors="return"))
    workers = {(b.group, b.row) for b in trace.batches}
    body = rendered(page, tmp_path)
    assert body["rendered"] == "yes"
    assert body["errors"] == ""
    assert int(body["lanes"]) == len(workers)
    assert int(body["drawn"]) >= len(workers)
    shot = tmp_path / "timeline.png"
    chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1400,700")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # (not a blank page)


def test_a_hundred_thousand_batches_render_and_the_file_stays_small(tmp_path: Path) -> None:
    trace = Trace()
    now = time.perf_counter()
    for k in range(100_000):
        start = now + k * 1e-4
        where = ("this process", f"plait-thread-{k % 8}")
        errors = {"ValueError": 1} if k % 1000 == 0 else None
        raw = ("square", "thread", where, start, start, 7e-4, start + 7e-4, 4, 4 * k, 1, False)
        trace._raw.append((*raw, errors, True, False, 0))
    page = trace.write(tmp_path / "big.html")
    assert page.stat().st_size < 8_000_000  # (by column: about 70 bytes a batch)
    body = rendered(page, tmp_path)
    assert body["rendered"] == "yes"
    assert body["errors"] == ""
    assert body["lanes"] == "8"


def page_data(page: Path) -> dict[str, Any]:
    """The data the page draws (one JSON line in its script)."""
    (line,) = [line for line in page.read_text().splitlines() if line.startswith("const D = ")]
    data: dict[str, Any] = json.loads(line.removeprefix("const D = ").removesuffix(";"))
    return data


def test_a_map_inline_inside_an_inline_batch_gets_a_lane_under_it_drawn_when_it_ran(
    tmp_path: Path,
) -> None:
    """Its batches ran within the outer one, in the same thread (the same row): drawn when they
    ran, on a lane of their own under it (the page's lanes never overlap: its search for what
    is on screen counts on it). Before, they were drawn after the outer batch ended."""
    trace = Trace()
    now = time.perf_counter()
    where = ("this process", "inline [7]")
    for name, start, elapsed, first in [
        ("outer", now, 0.5, 0),  # (its item 3 runs the inner map, then sleeps)
        *(("inner", now + 0.08 + k * 1e-3, 5e-4, 10 * k) for k in range(4)),
        ("outer", now + 0.6, 0.01, 8),
    ]:
        raw = (name, "auto", where, start, start, elapsed, start + elapsed, 8, first, 1, False)
        trace._raw.append((*raw, None, True, False, 0))
    trace._opened = now
    page = trace.write(tmp_path / "nested.html")
    data = page_data(page)
    assert data["rows"] == [[0, "inline [7]"], [0, "inline [7] (within the lane above)"]]
    outer = data["names"].index("outer (auto)")
    assert [(data["r"][k], round(data["s"][k])) for k in range(6)] == [
        (0 if data["f"][k] == outer else 1, round(start))
        for k, start in enumerate([0, 80_000, 81_000, 82_000, 83_000, 600_000])
    ]
    body = rendered(page, tmp_path)
    assert body["rendered"] == "yes"
    assert body["errors"] == ""
    assert body["lanes"] == "2"


@pytest.mark.parametrize(
    "name",
    [
        "</script><script>document.body.dataset.errors='pwned'</script>",
        "<!--<script>",  # (the page's own </script> then no longer ends its data)
    ],
)
def test_a_function_name_cannot_break_out_of_the_page(name: str, tmp_path: Path) -> None:
    def evil(x: int) -> int:
        return x

    evil.__qualname__ = name
    page = tmp_path / "run.html"
    with plait.trace(page):
        list(plait.map(evil, range(10), backend="thread"))
    body = rendered(page, tmp_path)
    assert body["rendered"] == "yes"
    assert body["errors"] == ""


def test_jupyter_shows_the_timeline_in_a_frame_of_its_own() -> None:
    with plait.trace() as trace:
        list(plait.map(square, range(20), backend="thread"))
    shown = trace._repr_html_()
    assert shown.startswith("<iframe srcdoc=")
    assert "<script>" not in shown  # (escaped into the frame's document)
