"""``trace=`` on a map still open as the program ends (kept in a global, aborted and never
closed): its file is written as the program exits, whole, and the exit waits for nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from test_trace import batches, load

pytestmark = pytest.mark.timeout(120)

SCRIPT = textwrap.dedent(
    """
    import pathlib, sys, time
    import plait

    backend, how, trace = sys.argv[1:4]
    folder = pathlib.Path(trace).parent


    def work(x):
        time.sleep(0.01)  # (not so quick that backend="auto" runs the map inline)
        if x >= 4:
            (folder / f"started-{x}").touch()
            time.sleep(600)  # deaf to being told to stop: the exit must not wait for it
        return x


    results = plait.map(work, range(100), backend=backend, workers=2, chunksize=1, trace=trace)
    for x in results:
        if x == 3:
            break
    deadline = time.monotonic() + 30
    while not (folder / "started-4").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    if how == "aborted":
        results.abort()
    print("the program ends with its map open")
    """
)


def run_script(tmp_path: Path, backend: str, how: str, trace: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), backend, how, str(trace)],
        capture_output=True,
        text=True,
        timeout=60,  # (an exit that waited for the item running would take 600 s)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "the program ends with its map open\n"
    assert proc.stderr == ""  # (before, on processes: an ImportError at shutdown)


def check_whole(events: list[dict[str, Any]]) -> None:
    """Every batch the map made is there once: those it handed out as they ran, the one
    running as the program ended drawn on its worker until then, its item cancelled, and any
    still waiting for a worker as a mark."""
    covered = sorted(
        index
        for e in events
        for index in range(e["args"]["first item"], e["args"]["last item"] + 1)
    )
    assert covered == list(range(len(covered))), events
    assert len(covered) > 4, events  # (item 4 ran)
    for event in events:
        args = event["args"]
        if args["first item"] < 4:
            assert event["ph"] == "X", event
            assert "error" not in args, event
        else:
            assert args["cancelled items"] == 1, event
    (running,) = [e for e in events if e["args"]["first item"] == 4]
    assert running["ph"] == "X", running


@pytest.mark.parametrize("backend", ["thread", "process", "auto"])
@pytest.mark.parametrize("how", ["kept", "aborted"])
def test_a_map_open_as_the_program_ends_writes_its_trace(
    tmp_path: Path, backend: str, how: str
) -> None:
    """A map kept in a global and left with a ``break``, or aborted and never closed, as the
    program ends: no file was written (on processes, a traceback at shutdown instead)."""
    trace = tmp_path / "run.json"
    run_script(tmp_path, backend, how, trace)
    check_whole(batches(load(trace), "work"))


def test_a_timeline_page_is_written_at_exit_too(tmp_path: Path) -> None:
    """``.html``: what writing the page takes was imported with the map, not at exit."""
    trace = tmp_path / "run.html"
    run_script(tmp_path, "process", "kept", trace)
    page = trace.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "work" in page
