"""``plait map MODULE:FUNCTION``: a Python function over inputs from the shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

TOOLS = textwrap.dedent(
    """
    import os

    def square(x):
        return int(x) ** 2

    def add(a, b):
        return a + b

    def where(x):
        return f"{x} {os.getpid()}"

    async def later(x):
        import asyncio

        await asyncio.sleep(0.001)
        return int(x) + 1

    class Later:
        async def __call__(self, x):
            return await later(x)

    later_object = Later()

    def as_set(x):
        return {x} if x == "2" else x

    def not_a_number(x):
        return float("nan") if x == "2" else x

    def touch(x):
        open(x, "w").close()
        return x

    NOTHING = None

    def fail_on_three(x):
        if x == "3":
            raise ValueError(f"no threes: {x}")
        return x
    """
)


def plait_map(folder: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plait", "map", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=100,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "tools.py").write_text(TOOLS)
    return tmp_path


def test_each_line_of_stdin_in_order(folder: Path) -> None:
    done = plait_map(folder, "tools:square", stdin="".join(f"{i}\n" for i in range(200)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(i * i) for i in range(200)]


def test_json_inputs_from_two_sources_are_the_arguments(folder: Path) -> None:
    done = plait_map(folder, "--json", "tools.py:add", ":::", "1", "2", ":::", "10", "20")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [11, 21, 12, 22]


def test_a_module_of_the_current_folder_travels_to_worker_processes(folder: Path) -> None:
    done = plait_map(folder, "--backend", "process", "-j", "2", "tools:where", ":::", "a", "b")
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert [x for x, _ in lines] == ["a", "b"]
    assert all(int(pid) != 0 for _, pid in lines)


def test_a_failure_stops_with_the_users_exception_and_its_item(folder: Path) -> None:
    done = plait_map(folder, "tools:fail_on_three", ":::", "1", "2", "3", "4")
    assert done.returncode == 1
    assert "ValueError: no threes: 3" in done.stderr
    assert "tools.py" in done.stderr  # (the traceback reaches into the user's code)
    assert done.stdout.split() == ["1", "2"]


def test_keep_going_prints_each_failure_and_counts_them(folder: Path) -> None:
    done = plait_map(folder, "--keep-going", "tools:fail_on_three", ":::", "1", "3", "4", "3")
    assert done.returncode == 2
    assert done.stdout.split() == ["1", "4"]
    assert done.stderr.count("ValueError: no threes: 3") == 2


def test_a_line_that_is_not_json_fails_its_own_item(folder: Path) -> None:
    done = plait_map(folder, "--json", "--keep-going", "tools.py:square", stdin="1\nnope\n3\n")
    assert (done.stdout.split(), done.returncode) == (["1", "9"], 1)
    assert "input 2 is not JSON" in done.stderr
    stopped = plait_map(folder, "--json", "tools.py:square", stdin="1\nnope\n3\n")
    assert (stopped.stdout.split(), stopped.returncode) == (["1"], 1)
    assert "JSONDecodeError" in stopped.stderr


@pytest.mark.parametrize("name", ["json", "queue", "signal"])
def test_a_file_named_like_a_module_already_imported_is_loaded_as_itself(
    folder: Path, name: str
) -> None:
    """Not mistaken for the library's module, nor put in its place (queue.py broke plait);
    and its function still travels to worker processes."""
    (folder / "sub").mkdir()
    (folder / "sub" / f"{name}.py").write_text("def shout(x):\n    return x.upper()\n")
    for backend in ("thread", "process"):
        done = plait_map(folder, "--backend", backend, f"sub/{name}.py:shout", ":::", "a", "b")
        assert (done.stdout, done.returncode) == ("A\nB\n", 0), done.stderr


def test_bad_workers_and_backends_exit_255_and_say_so(folder: Path) -> None:
    for args, words in (
        (["-j", "0"], "-j 0: give 1 or more workers, or leave -j out"),
        (["-j", "-1"], "-j -1: give 1 or more workers"),  # (it was "expected one argument")
        (["--backend", "nope"], "nope"),
        (["--colsep", "("], "--colsep '(': not a regular expression"),  # (a traceback, exit 1)
    ):
        done = plait_map(folder, *args, "tools.py:square", ":::", "1")
        assert done.returncode == 255, done
        assert words in done.stderr
        assert "Traceback" not in done.stderr


def test_an_input_source_that_is_a_directory_exits_255_and_says_so(folder: Path) -> None:
    """(It passed the check, then a traceback: IsADirectoryError, exit 1.)"""
    done = plait_map(folder, "tools:square", "::::", str(folder))
    assert done.returncode == 255, done
    assert (
        done.stderr == f"plait map: {folder}: a directory, not a file of inputs (an input source)\n"
    )


def plait_map_with_closed(folder: Path, fd: int, *args: str) -> tuple[int, bytes]:
    """``plait map`` started with its standard stream ``fd`` closed (``>&-``): its exit
    status and what it wrote on the other one."""
    ran = subprocess.run(
        [sys.executable, "-m", "plait", "map", *args],
        stdout=subprocess.PIPE if fd == 2 else None,
        stderr=subprocess.PIPE if fd == 1 else None,
        cwd=folder,
        timeout=100,
        preexec_fn=lambda: os.close(fd),
    )  # fmt: skip
    return ran.returncode, ran.stdout if fd == 2 else ran.stderr


def test_a_closed_stdout_drops_the_results_and_the_work_still_runs(folder: Path) -> None:
    """Started with ``>&-``, plait map crashed at its first result (sys.stdout is None)."""
    assert plait_map_with_closed(folder, 1, "tools:touch", ":::", "a", "b") == (0, b"")
    assert (folder / "a").exists()
    assert (folder / "b").exists()


def test_a_closed_stderr_keeps_failures_out_of_the_results(folder: Path) -> None:
    """With ``2>&-`` a failure's traceback went to stdout, among the results."""
    args = ("--keep-going", "tools:fail_on_three", ":::", "1", "2", "3", "4")
    assert plait_map_with_closed(folder, 2, *args) == (1, b"1\n2\n4\n")


def test_a_result_that_cannot_be_written_is_its_items_failure(folder: Path) -> None:
    """With --keep-going the others still print; without, the error names its input. (It
    stopped the whole run, naming no item.)"""
    ran = plait_map(folder, "--json", "--keep-going", "tools:as_set", stdin='"1"\n"2"\n"3"\n')
    assert (ran.returncode, ran.stdout) == (1, '"1"\n"3"\n')
    assert "not JSON serializable" in ran.stderr
    assert "the result of input 2 cannot be written" in ran.stderr
    ran = plait_map(folder, "--json", "--keep-going", "tools:not_a_number", stdin='"1"\n"2"\n"3"\n')
    assert (ran.returncode, ran.stdout) == (1, '"1"\n"3"\n')  # (NaN: JSON has none)
    ran = plait_map(folder, "--json", "tools:as_set", stdin='"1"\n"2"\n"3"\n')
    assert ran.returncode == 1
    assert ran.stdout == '"1"\n'
    assert "the result of input 2 cannot be written" in ran.stderr


def test_trace_writes_the_timeline(folder: Path) -> None:
    done = plait_map(folder, "--trace", "run.html", "tools:square", ":::", "1", "2")
    assert done.returncode == 0, done.stderr
    assert "<canvas" in (folder / "run.html").read_text()


def test_a_trace_path_that_is_a_folder_exits_255_before_the_work(folder: Path) -> None:
    """Before: every result was printed, then a traceback (IsADirectoryError), exit 1."""
    (folder / "run.json").mkdir()
    done = plait_map(folder, "--trace", "run.json", "tools:square", ":::", "1", "2")
    assert done.returncode == 255, done
    assert done.stdout == ""
    assert "plait map: plait.map: the trace would be written to 'run.json'" in done.stderr
    assert "Traceback" not in done.stderr


def test_options_after_the_function_as_the_readme_writes_them(folder: Path) -> None:
    """`seq 1000 | plait map --json scoring.py:score --trace run.html`: the options after the
    function are plait's too (before, the inputs took them: exit 255)."""
    done = plait_map(folder, "--json", "tools.py:square", "--trace", "run.html", stdin="2\n3\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", "9"]
    assert "<canvas" in (folder / "run.html").read_text()
    done = plait_map(folder, "tools.py:square", "-j", "2", ":::", "4", "5")
    assert (done.returncode, done.stdout.split()) == (0, ["16", "25"]), done.stderr
    done = plait_map(folder, "tools.py:square", "7", ":::", "1")
    assert done.returncode == 255
    assert "7: give inputs after ::: or :::: (or on stdin)" in done.stderr


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("tools", "give MODULE:FUNCTION"),
        ("no_such_module:f", "cannot import it"),
        ("tools:nothing", "tools has no nothing"),
        ("tools:NOTHING", "NOTHING is not a function"),  # (a name whose value is None)
        ("missing.py:f", "no such file"),
    ],
)
def test_a_bad_function_exits_255_and_says_why(folder: Path, spec: str, words: str) -> None:
    done = plait_map(folder, spec, ":::", "1")
    assert done.returncode == 255
    assert words in done.stderr


def test_a_reader_that_stops_early_ends_the_map_quietly(folder: Path) -> None:
    numbers = folder / "numbers"
    numbers.write_text("".join(f"{i}\n" for i in range(100_000)))
    with numbers.open("rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "plait", "map", "tools:square"],
            cwd=folder,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    assert proc.stdout is not None
    assert proc.stderr is not None
    with proc.stdout, proc.stderr:
        assert proc.stdout.readline() == b"0\n"
        proc.stdout.close()
        assert proc.wait(60) == 141
        assert proc.stderr.read() == b""


def test_a_trickle_of_lines_gets_each_result_before_the_line_after_next(folder: Path) -> None:
    """`tail -f log | plait map ...`: once a line was slow to come while a result waited, the
    results ready are printed before plait waits for another line (it waits for one line
    while it holds the result of the one before, never for a batch of them)."""
    import select

    late = 0
    with subprocess.Popen(
        [sys.executable, "-m", "plait", "map", "tools:square"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
        cwd=folder,
    ) as mapping:
        assert mapping.stdin is not None
        assert mapping.stdout is not None
        got: list[int] = []
        for k in range(1, 21):
            mapping.stdin.write(f"{k}\n")
            mapping.stdin.flush()
            while k > 1 and (k - 1) ** 2 not in got:  # the result of the line before
                if not select.select([mapping.stdout], [], [], 1.0)[0]:
                    late += 1  # (the next line is written anyway: it brings the result)
                    break
                got.append(int(mapping.stdout.readline()))
        mapping.stdin.close()
        got.extend(int(line) for line in mapping.stdout)
    assert mapping.returncode == 0
    assert got == [k * k for k in range(1, 21)]
    assert late <= 6  # (before the input was seen to trickle: a batch of lines waited)


def test_an_async_function_is_awaited(folder: Path) -> None:
    """Before: each result printed as '<coroutine object later ...>', never awaited."""
    done = plait_map(folder, "tools.py:later", ":::", "1", "2", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "3", "4"]
    assert "never awaited" not in done.stderr


def test_an_object_whose_call_is_async_is_awaited(folder: Path) -> None:
    """Before: each result printed as '<coroutine object Later.__call__ ...>'."""
    done = plait_map(folder, "tools.py:later_object", ":::", "1", "2", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "3", "4"]
    assert "never awaited" not in done.stderr
