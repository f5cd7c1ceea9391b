"""The plait command: demo, version, help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plait._cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("plait ")


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_demo_runs_every_scenario_and_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "plait", "demo"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for line in ("both functions have finished", "results identical", "speed-up"):
        assert line in out
    for how in ("plait, 2 threads", "plait, 20 threads", "plait, 2 processes"):
        assert how in out
    # auto, on the downloads and on the arithmetic, each with its reason (which backend the
    # arithmetic gets depends on how busy the machine is: see the README's limits)
    assert out.count("plait, auto") == 2
    assert out.count("backend='auto' chose") == 2
    downloads = out.split("(b)")[1].split("(c)")[0]
    assert "backend='auto' chose thread x" in downloads
    assert "it waits" in downloads
    assert out.count("    3\n") == 2  # each function printed all of its lines, twice over
    timeline = Path(out.split("timeline of plait's runs: ")[1].split(" (open it")[0])
    page = timeline.read_text()
    assert "<canvas" in page
    assert "crunch" in page  # (the arithmetic's function, recorded)


@pytest.mark.parametrize(
    ("shell", "status", "says"),
    [
        ("plait demo >&-", 1, "there is no standard output"),  # (a traceback: None.write)
        ("plait demo > /dev/full", 1, "No space left on device"),  # (a traceback: OSError)
        ("plait demo | head -1 > /dev/null; exit ${PIPESTATUS[0]}", 141, ""),  # (BrokenPipe)
    ],
)
def test_the_demo_whose_output_cannot_be_written_says_so_or_stops_quietly(
    shell: str, status: int, says: str
) -> None:
    plait = str(Path(sys.executable).with_name("plait"))
    done = subprocess.run(
        ["bash", "-c", shell.replace("plait", plait, 1)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    assert says in done.stderr


@pytest.mark.timeout(120)
def test_the_demo_whose_timeline_cannot_be_written_says_so_before_its_tour(
    tmp_path: Path,
) -> None:
    """Before, it ran its whole tour, then died with a ValueError's traceback."""
    (tmp_path / "plait-demo.html").mkdir()  # (where it writes the timeline: a folder)
    done = subprocess.run(
        [sys.executable, "-m", "plait", "demo"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""  # (nothing ran)
    assert done.stderr.startswith("plait demo: ")
    assert done.stderr.count("\n") == 1, done.stderr
    assert str(tmp_path / "plait-demo.html") in done.stderr
