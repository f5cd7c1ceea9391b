"""The notebook in examples/ runs on a real Jupyter kernel: tqdm's notebook bar, and the trace's
timeline shown inline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(180)

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "notebook_progress_and_trace.ipynb"
REQUIRED = os.environ.get("PLAIT_REQUIRE_EXTRAS") == "1"


def _module(name: str) -> Any:
    if REQUIRED:
        return __import__(name)
    return pytest.importorskip(name)


def outputs_of(cell: Any) -> list[Any]:
    return list(cell.get("outputs", []))


# Run in a process of its own: nbclient keeps an event loop (and its sockets) per thread.
EXECUTE = """
import sys, nbclient, nbformat
notebook = nbformat.read(sys.argv[1], as_version=4)
nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
nbformat.write(notebook, sys.argv[2])
"""


def test_the_notebook_runs_with_a_notebook_bar_and_an_inline_timeline(tmp_path: Path) -> None:
    nbformat = _module("nbformat")
    _module("nbclient")
    executed = tmp_path / "executed.ipynb"
    subprocess.run(
        [sys.executable, "-c", EXECUTE, str(NOTEBOOK), str(executed)],
        cwd=tmp_path,
        check=True,
        timeout=170,
        capture_output=True,
    )
    notebook = nbformat.read(executed, as_version=4)
    outputs = [output for cell in notebook.cells for output in outputs_of(cell)]
    assert not [o for o in outputs if o["output_type"] == "error"], outputs
    data = [o.get("data", {}) for o in outputs]
    # tqdm's notebook bar is a widget, not text written to stderr:
    assert any("application/vnd.jupyter.widget-view+json" in d for d in data), outputs
    assert not any("pages:" in o.get("text", "") for o in outputs if o.get("name") == "stderr")
    timelines = [d["text/html"] for d in data if "<iframe srcdoc=" in d.get("text/html", "")]
    assert len(timelines) == 1
    assert "crunch" in timelines[0]
    printed = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    assert "plait trace:" in printed
    assert "worker process" in printed  # (crunch, from the notebook, ran on processes)
