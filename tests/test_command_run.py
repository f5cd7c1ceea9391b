"""``plait run``: the same command lines given to GNU parallel and to plait, the same stdout and
exit status; then what GNU parallel cannot be compared on (a kill -9 and --resume, timeouts
that leave nothing, Ctrl-C, input that has not ended).

Both run their commands with ``/bin/sh`` here (``PARALLEL_SHELL``: GNU parallel otherwise uses
the shell that started it). Without GNU parallel installed the comparisons skip, except where
``PLAIT_REQUIRE_EXTRAS=1`` (CI, which installs Debian's ``parallel``) makes that a failure.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from plait._command import _signals
from plait._command._inputs import perl_pattern

pytestmark = pytest.mark.timeout(60)

GNU = shutil.which("parallel")
ENV = {**os.environ, "PARALLEL_SHELL": "/bin/sh", "LC_ALL": "C.UTF-8"}
needs_gnu = pytest.mark.skipif(
    GNU is None and os.environ.get("PLAIT_REQUIRE_EXTRAS") != "1",
    reason="GNU parallel is not installed (Debian: apt-get install parallel)",
)


@dataclass
class Ran:
    out: str
    err: str
    status: int


def plait_run(*args: str, stdin: str = "", cwd: Path | None = None) -> Ran:
    return _ran([sys.executable, "-m", "plait", "run", *args], stdin, cwd)


def gnu_parallel(*args: str, stdin: str = "", cwd: Path | None = None) -> Ran:
    assert GNU is not None, "GNU parallel is not installed (Debian: apt-get install parallel)"
    return _ran([GNU, "--will-cite", *args], stdin, cwd)


def _ran(argv: list[str], stdin: str, cwd: Path | None) -> Ran:
    done = subprocess.run(
        argv, input=stdin.encode(), capture_output=True, env=ENV, cwd=cwd, timeout=50
    )
    return Ran(done.stdout.decode(), done.stderr.decode(), done.returncode)


def same(*args: str, stdin: str = "", cwd: Path | None = None) -> Ran:
    """Run both; their stdout and exit status must be the same."""
    ours, theirs = plait_run(*args, stdin=stdin, cwd=cwd), gnu_parallel(*args, stdin=stdin, cwd=cwd)
    assert (ours.out, ours.status) == (theirs.out, theirs.status), (ours, theirs)
    return ours


TRICKY = [
    "plain", "a b", "it's", 'x"y', "$HOME", "a*b", "ü", "", "a;b", "a\\b", "a,b:c=d@e%f",
    "tab\tx", "~x", "a{b}", "!x", "#x", "'", "''", "a/b.c/d.e", "f.tar.gz", "/x/y", ".hidden",
    "dir/", "a.b/c", "noext", "a/b/", "/", "//", "a//b", "..", "a.", "a.b.", "-n", "--",
]  # fmt: skip


# -- the same as GNU parallel -----------------------------------------------------------------


@needs_gnu
def test_every_replacement_string_on_tricky_inputs() -> None:
    same("-j1", "echo", "[{}]", "[{.}]", "[{/}]", "[{//}]", "[{/.}]", "{#}", "{%}", ":::", *TRICKY)


@needs_gnu
def test_dry_run_quotes_each_input_as_gnu_parallel_does() -> None:
    same("--dry-run", "-j1", "echo", ":::", *TRICKY)
    same("--dry-run", "-j1", "echo {} x{}y", ":::", *TRICKY)
    same("--dry-run", "-j1", "--tag", "echo", ":::", *TRICKY)  # (each line tagged)


@needs_gnu
def test_the_input_is_appended_when_the_command_has_no_replacement_string() -> None:
    same("-k", "printf", "<%s>", ":::", "a b", "it's", "")
    same("-k", "echo", "pre", ":::", "a", "b c", ":::", "1", "2")


@needs_gnu
def test_a_negative_position_counts_from_the_last_value() -> None:
    """({-1} and its kin were left as they are, and every value appended.)"""
    same("-k", "echo", "{-1}", "{-2/}", "{-1.}", ":::", "a/x.c", "b/y.d", ":::", "p/q.r")
    same("-k", "--colsep", ",", "echo", "{-1}", "{-3}", ":::", "a,b,c")


@needs_gnu
def test_a_value_given_after_three_colons_is_read_as_lines() -> None:
    """As GNU parallel reads them: a newline in one makes two inputs (one input did); with
    -0 it stays one."""
    same("-k", "printf", "[%s]\\n", ":::", "new\nline", "x")
    same("-k", "echo", ":::", "a\nb", ":::", "c\nd")
    same("-k", "-0", "printf", "[%s]\\n", ":::", "new\nline", "x")


def test_a_perl_replacement_string_is_refused() -> None:
    """It was handed to the shell as it is, with the input appended: exit 0, wrong output."""
    for expression in ("{= s/a/b/ =}", "{=1 s/a/b/ =}", "{=uc($_)=}"):
        ran = plait_run("echo", expression, ":::", "abc")
        assert ran.status == 255, ran
        assert "not supported" in ran.err
        assert ran.out == ""


@needs_gnu
def test_without_a_command_the_inputs_are_the_commands() -> None:
    same("-k", ":::", "echo one", "echo two; echo three", "exit 3")


@needs_gnu
def test_keep_order_writes_outputs_in_input_order_whatever_order_jobs_end() -> None:
    ran = same("-k", "-j4", "sleep 0.{}; echo {}", ":::", "3", "1", "2", "0", "2", "1")
    assert ran.out.split() == ["3", "1", "2", "0", "2", "1"]


@needs_gnu
def test_without_keep_order_outputs_come_as_jobs_end() -> None:
    ours = plait_run("-j3", "sleep 0.{}; echo {}", ":::", "6", "0", "3")
    assert ours.out.split() == ["0", "3", "6"]


@needs_gnu
def test_several_sources_make_every_combination_and_linked_ones_pair_up() -> None:
    same("-k", "echo", ":::", "a", "b", ":::", "1", "2", "3")
    same("-k", "echo", "{2}-{1}", "[{3}]", ":::", "a", "b", ":::", "1", "2")
    same("-k", "echo", ":::", "a", "b", "c", ":::+", "1", "2")
    same("-k", "echo", "{1/}", "{2.}", ":::", "x/a", ":::", "b.txt", "c.d.e")


@needs_gnu
def test_inputs_from_stdin_files_and_arg_files(tmp_path: Path) -> None:
    (tmp_path / "one").write_text("a\nb c\n\nd")
    (tmp_path / "two").write_text("1\n2\n")
    same("-k", "echo", "x{}y", stdin="a\n\nb\nlast without newline")
    same("-k", "echo", "::::", "one", "two", cwd=tmp_path)
    same("-k", "-a", "one", "echo", "{}", cwd=tmp_path)
    same("-k", "-a", "one", "-a", "two", "echo", "{2}{1}", cwd=tmp_path)
    same("-k", "echo", ":::", "x", "::::", "two", cwd=tmp_path)
    (tmp_path / "three").write_text("p\nq\nr\n")
    same("-k", "echo", ":::", "a", "b", "c", "::::+", "two", "three", cwd=tmp_path)  # (all linked)
    same("-k", "echo", "::::", "two", "::::+", "three", "one", ":::", "x", "y", cwd=tmp_path)


@needs_gnu
def test_colsep_and_null_separated_input() -> None:
    same("-k", "--colsep", "\t", "echo", "{2}", "{1}", stdin="a b\tc\nd e\tf\n")
    same("-k", "--colsep", ",", "echo", "{2}-{1}", ":::", "a,b", "c", ":::", "x,y")
    same("-k", "--colsep", " +", "echo", stdin="a   b c\n")
    same("-k", "-0", "echo", "[{}]", stdin="x\0y z\0with\nnewline\0")
    same("-k", "--colsep", ",", "printf '<%s>' {1} {2} {3.}; echo", stdin="a,b\nc\n,\n")


@needs_gnu
@pytest.mark.parametrize("trim", [None, "n", "l", "r", "lr", "rl"])
def test_colsep_trims_each_column_and_trim_says_how(trim: str | None, tmp_path: Path) -> None:
    """--colsep implies --trim rl (each column); --trim n keeps the white space; without
    --colsep, --trim trims each whole input, wherever it goes (the tag, {.}, the command)."""
    (tmp_path / "pairs").write_text("src.txt , dst.txt\n  a\tb  \n \t\n , \n")
    given = ["--trim", trim] if trim else []
    for colsep in (",", "\t"):
        same("-k", *given, "--colsep", colsep, "--tag", "echo", "[{1}]", "[{2}]", "[{}]",
             "::::", "pairs", cwd=tmp_path)  # fmt: skip
    same("-k", *given, "--tag", "echo", "[{}]", "[{.}]", "[{1/}]", "::::", "pairs", cwd=tmp_path)
    same("-k", *given, "--colsep", ",", "--dry-run", "printf '[%s]'", ":::", " a.c , b ", " c")
    same("-k", *given, ":::", " echo  x ", "\techo y\t")


@needs_gnu
def test_trim_takes_away_the_white_space_gnu_parallel_does_and_no_more() -> None:
    """ASCII's: space, tab, CR, VT, FF, newline (an input's own, with -0); not \\x1c-\\x1f,
    which str.strip() takes, nor Unicode's spaces."""
    sides = [" ", "\t", "\r", "\v", "\f", "\n", "\x1c", "\x1f", "\x85", "\xa0", "\u2003", "\u3000"]
    stdin = "\0".join(f"{side}a{side}b{side}" for side in sides)
    same("-0", "-k", "--trim", "lr", "printf '[%s]\\n'", stdin=stdin)
    same("-0", "-k", "--colsep", "a", "printf '[%s]\\n'", stdin=stdin)


@needs_gnu
def test_a_nul_in_a_line_is_written_backslash_0_with_a_warning_and_every_job_runs() -> None:
    """No command line can hold a NUL: GNU parallel writes it \\0 and warns (plait crashed,
    ending the jobs that ran)."""
    lines = "first\nx\0y\nlast\n"
    same("-k", "printf", "'<%s>\\n'", stdin=lines)
    ran = same("-k", "-j2", "sleep 0.{#}; printf '<%s>\\n' {}", stdin=lines)
    assert ran.out == "<first>\n<x\\0y>\n<last>\n"
    assert ran.err.count("\n") == 1
    assert "input 2 has a NUL character" in ran.err
    assert "give -0" in ran.err


@needs_gnu
def test_tag_prefixes_every_line_with_its_input() -> None:
    same("-k", "--tag", "printf", "'1\\n2\\n'", ":::", "a", "b c")
    same("-k", "--tag", "echo", ":::", "a", "b", ":::", "1", "2")


@needs_gnu
def test_failing_jobs_make_the_exit_status() -> None:
    same("-j2", "exit {}", ":::", "0", "1", "2", "3", "0")
    same("-k", "echo {}; exit {}", ":::", "0", "7")
    same("kill -9 $$", ":::", "1")  # (killed by a signal: failed)
    same("-j20", "exit 1", ":::", *map(str, range(150)))  # (at most 101)
    same("true", ":::", "a")


@needs_gnu
def test_retries_runs_a_failing_job_again_up_to_n_times_in_all(tmp_path: Path) -> None:
    command = "echo run >> {}; exit 1"
    for tries in ("1", "3"):
        ours, theirs = tmp_path / f"ours{tries}", tmp_path / f"theirs{tries}"
        assert plait_run("--retries", tries, command, ":::", str(ours)).status == 1
        assert gnu_parallel("--retries", tries, command, ":::", str(theirs)).status == 1
        assert ours.read_text() == theirs.read_text() == "run\n" * int(tries)


@needs_gnu
def test_halt_stops_at_the_first_failure_with_its_exit_status() -> None:
    for when in ("now", "soon"):
        ran = same("-j1", "--halt", f"{when},fail=1", "echo {}; exit {}", ":::", "0", "3", "4")
        assert ran.out.split() == ["0", "3"]
    same("-j1", "--halt", "now,success=1", "exit {}", ":::", "2", "0", "3")
    same("-j1", "--halt", "2", "exit {}", ":::", "0", "5", "0")


@needs_gnu
def test_halt_exits_as_gnu_parallel_does_for_counts_shares_and_signals() -> None:
    """fail=N above 1: how many failed; a share: of all the jobs, and the exit status is the
    share that failed, reached or not; a job killed by a signal: 128 + it; done=."""
    same("-j1", "--halt", "soon,fail=2", "exit {}", ":::", "7", "8", "9")
    same("-j1", "--halt", "soon,fail=20%", "exit {}", ":::", "1", *["0"] * 9)
    same("-j1", "--halt", "soon,fail=20%", "exit {}", ":::", "7", "2", "0", "0", "3")
    same("-j1", "--halt", "soon,fail=40%", "exit {}", ":::", "7", "2", "0", "0", "3")
    same("-j1", "--halt", "soon,fail=3", "exit {}", ":::", "7", "2", "0", "5", "3")
    same("-j1", "--halt", "soon,success=3", "exit {}", ":::", "1", "0", "3", "0", "4")
    same("-j1", "--halt", "soon,done=2", "exit {}", ":::", "1", "0", "3")
    same("-j1", "--halt", "now,done=50%", "exit {}", ":::", "1", "1", "0", "0")  # (50: a share)
    same("-j1", "--halt", "soon,done=50%", "exit {}", ":::", "1", "0", "0", "0")
    same("-j1", "--halt", "soon,done=75%", "exit {}", ":::", "3", "0", "2", "0")
    same("-j1", "--halt", "now,success=50%", "exit {}", ":::", "3", "0", "5", "6")
    same("-j1", "--halt", "now,fail=1", "kill -9 $$; : {}", ":::", "1")
    same("-j1", "--halt", "now,done=1", "echo {}", ":::", "1", "2")
    same("-j1", "--halt=-1", "exit {}", ":::", "4", "0", "5")  # (-1: soon,success=1)


@needs_gnu
def test_halt_that_comes_at_one_job_exits_with_that_jobs_own_status() -> None:
    """fail=1, done=1, or a share of all the jobs that comes to exactly one: the job's own
    status (0 if it succeeded), on done= too; a share that comes to less than one job: the
    share that failed. GNU parallel reckons a share in floating point: 33% of 3 jobs is less
    than one, and 28% of 25 is 7.000000000000001 jobs, which takes 8."""
    same("-j1", "--halt", "now,done=1", "exit {}", ":::", "5", "0")
    same("-j1", "--halt", "now,done=1", "exit {}", ":::", "0", "5")
    same("-j1", "--halt", "now,done=1", "kill -9 $$; : {}", ":::", "1")
    same("-j1", "--halt", "soon,done=25%", "exit {}", ":::", "7", "0", "0", "0")
    same("-j1", "--halt", "soon,fail=10%", "exit {}", ":::", "7", "0", "0", "0", "0")
    same("-j1", "--halt", "soon,fail=33%", "exit {}", ":::", "7", "0", "0")
    same("-j1", "--halt", "soon,fail=28%", "echo {}; exit {}", ":::", *"1" * 7, *"0" * 17, "1")
    same("--halt", "now,done=1", "--timeout", "0.3", ":::", "sleep 5")
    same("-j1", "--halt", "soon,fail=50%", "--timeout", "0.3", ":::", "true", "sleep 5")


@needs_gnu
def test_halt_on_a_share_exits_with_the_share_that_failed_as_gnu_parallel_reckons_it() -> None:
    """failed / all * 100, rounded up, in floating point: 7 of 25 is 28.000000000000004%, 29;
    halted or not."""
    same("-j1", "--halt", "soon,fail=27%", "exit {}", ":::", *"1" * 7, *"0" * 18)
    same("-j1", "--halt", "soon,fail=60%", "exit {}", ":::", *"1" * 11, *"0" * 9)


TIMED_OUT = [  # jobs --timeout ends, each ending its own way
    "sleep 5",  # a signal (SIGTERM)
    'trap "exit 3" TERM; sleep 5 & wait',  # a status of its own
    'trap "exit 0" TERM; sleep 5 & wait',  # 0: still failed
    'trap "" TERM; sleep 5',  # SIGKILL, after the grace
]


@needs_gnu
def test_halt_on_a_job_the_timeout_ended_exits_as_gnu_parallel_does() -> None:
    """Its exit value is -1 (and exit(-1) is 255), unless it exited with a status of its own:
    not 128 + the signal that ended it, as for a job a signal ended by itself."""
    for job in TIMED_OUT:
        same("--halt", "now,fail=1", "--timeout", "0.3", ":::", job)
    same("-j2", "--halt", "soon,fail=1", "--timeout", "0.3", ":::", "sleep 5", "sleep 0.5")
    same("--halt", "now,fail=1", "kill -TERM $$; : {}", ":::", "1")  # (by itself: 143)


@needs_gnu
def test_the_job_log_says_how_a_job_the_timeout_ended_ended(tmp_path: Path) -> None:
    for who, run in (("ours", plait_run), ("theirs", gnu_parallel)):
        run("-j4", "--timeout", "0.3", "--joblog", str(tmp_path / who), ":::", *TIMED_OUT)
    ours, theirs = (
        sorted(line.split("\t")[6:] for line in (tmp_path / who).read_text().splitlines()[1:])
        for who in ("ours", "theirs")
    )
    assert ours == theirs  # Exitval, Signal, Command
    assert [columns[:2] for columns in ours] == [["-1", "0"], ["-1", "15"], ["-1", "9"], ["3", "0"]]


@needs_gnu
def test_keep_order_holds_with_line_buffer_and_no_newline_is_added() -> None:
    same("-k", "--lb", "sleep {}; echo {}", ":::", "0.3", "0")
    same("-k", "--lb", "--tag", "printf 'x\\n{}'", ":::", "a", "b")
    same("--lb", "printf", "{}", ":::", "a")


@needs_gnu
def test_a_pipeline_in_a_job_ends_when_its_reader_does() -> None:
    """A job's SIGPIPE is the default one (Python ignores it, and an ignored signal stays
    ignored across exec: `yes | head -1` ran forever)."""
    ran = same("-k", "yes {} | head -2; seq 100000 | head -1", ":::", "x")
    assert ran.err == ""


@needs_gnu
def test_options_end_at_a_double_dash() -> None:
    same("-j", "2", "--", "echo", ":::", "a")


def test_a_job_that_cannot_start_fails_as_it_would_in_a_shell(tmp_path: Path) -> None:
    script = tmp_path / "plain.sh"
    script.write_text('echo ran "$@"\n')  # (no #! line: the shell runs it)
    script.chmod(0o755)
    ran = plait_run("-k", "./plain.sh", ":::", "a", "b", cwd=tmp_path)
    assert (ran.out, ran.status) == ("ran a\nran b\n", 0)
    script.chmod(0o644)  # (not executable: 126, as sh says)
    ran = plait_run("./plain.sh", ":::", "a", cwd=tmp_path)
    assert ran.status == 1
    assert "Permission denied" in ran.err


def test_a_command_line_too_long_and_a_missing_shell_exit_255(tmp_path: Path) -> None:
    (tmp_path / "long").write_text("x" * 300_000 + "\n")  # (past what exec takes in one word)
    ran = plait_run("echo {} | wc -c", "::::", str(tmp_path / "long"))
    assert ran.status == 255
    assert "too long" in ran.err
    for shell in ("/no/such/shell", "no-such-shell"):
        done = subprocess.run(
            [sys.executable, "-m", "plait", "run", "echo {}", ":::", "a"],
            capture_output=True,
            text=True,
            env={**ENV, "PARALLEL_SHELL": shell},
            timeout=50,
        )
        assert done.returncode == 255, done
        assert "PARALLEL_SHELL" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "plait", "run", "echo {}", ":::", "a"],
        capture_output=True,
        text=True,
        env={**ENV, "PARALLEL_SHELL": "sh"},  # (a bare name: looked up on PATH)
        timeout=50,
    )
    assert (done.stdout, done.returncode) == ("a\n", 0)


def test_closed_stdin_and_stderr_are_no_input_and_no_error_output() -> None:
    both = [sys.executable, "-m", "plait", "run"]
    done = subprocess.run([*both, "echo"], stdin=subprocess.DEVNULL, env=ENV, timeout=50)
    assert done.returncode == 0
    closed_stdin = subprocess.run(
        [*both, "echo"], capture_output=True, env=ENV, timeout=50, preexec_fn=lambda: os.close(0)
    )
    assert (closed_stdin.returncode, closed_stdin.stderr) == (0, b"")
    closed_stderr = subprocess.run(
        [*both, "echo {}; echo e >&2", ":::", "a"],
        stdout=subprocess.PIPE,
        env=ENV,
        timeout=50,
        preexec_fn=lambda: os.close(2),
    )
    assert (closed_stderr.stdout, closed_stderr.returncode) == (b"a\n", 0)


def test_a_closed_stdout_drops_the_output_and_the_jobs_still_run(tmp_path: Path) -> None:
    """Started with ``>&-``, plait crashed before running anything. (With --ungroup a job's
    stdout is plait's own, closed: it only touches its file.)"""
    job = f"touch {tmp_path}/{{}}"
    for options, command in (
        ([], f"{job}; echo {{}}"),
        (["--joblog", "-", "--tag"], f"{job}; echo {{}}"),
        (["--ungroup", "--dry-run"], f"{job}; echo {{}}"),
        (["--ungroup"], job),
    ):
        ran = subprocess.run(
            [sys.executable, "-m", "plait", "run", *options, command, ":::", "a", "b"],
            stderr=subprocess.PIPE,
            env=ENV,
            timeout=50,
            preexec_fn=lambda: os.close(1),
        )  # fmt: skip
        assert (ran.returncode, ran.stderr) == (0, b""), options
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "b"]


@needs_gnu
def test_jobs_halt_now_ended_are_neither_logged_nor_written_as_gnu_parallel_does(
    tmp_path: Path,
) -> None:
    """Job 1 runs on until --halt now ends it (job 2 fails once job 1 is seen running): GNU
    parallel writes no log line and no output for it, so --resume runs it again."""
    command = (
        "if [ {} = long ]; then echo started; touch {}.$PARALLEL_SEQ; sleep 30;"
        " else until [ -e long.1 ]; do sleep 0.01; done; echo failing; exit 3; fi"
    )
    logs = {}
    for who, run in (("ours", plait_run), ("theirs", gnu_parallel)):
        (tmp_path / who).mkdir()
        ran = run(
            "-j2", "--halt", "now,fail=1", "--joblog", "log", command, ":::", "long", "fails",
            cwd=tmp_path / who,
        )  # fmt: skip
        assert (ran.out, ran.status) == ("failing\n", 3), (who, ran)
        logs[who] = [
            line.split("\t")[0] for line in (tmp_path / who / "log").read_text().splitlines()
        ]
    assert logs["ours"] == logs["theirs"] == ["Seq", "2"]
    again = plait_run(
        "-j2",
        "--resume",
        "--joblog",
        "log",
        "echo {}",
        ":::",
        "long",
        "fails",
        cwd=tmp_path / "ours",
    )
    assert again.out == "long\n"


@needs_gnu
def test_the_job_log_has_gnu_parallels_columns(tmp_path: Path) -> None:
    for who, run in (("ours", plait_run), ("theirs", gnu_parallel)):
        run("-j1", "--joblog", str(tmp_path / who), "echo {}; exit {}", ":::", "0", "1", "22")
    ours = [line.split("\t") for line in (tmp_path / "ours").read_text().splitlines()]
    theirs = [line.split("\t") for line in (tmp_path / "theirs").read_text().splitlines()]
    assert ours[0] == theirs[0]  # the header: Seq Host Starttime JobRuntime Send ... Command
    assert len(ours) == len(theirs) == 4
    for mine, gnu in zip(ours[1:], theirs[1:], strict=True):
        assert len(mine) == 9
        # Seq, Host, Send, Receive, Exitval, Signal, Command: the same; times: numbers
        assert [mine[i] for i in (0, 1, 4, 5, 6, 7, 8)] == [gnu[i] for i in (0, 1, 4, 5, 6, 7, 8)]
        assert abs(float(mine[2]) - time.time()) < 60
        assert mine[3].strip() == f"{float(mine[3]):.3f}"
        assert len(mine[3]) == len(gnu[3])


# -- what plait promises beyond the comparison --------------------------------------------------


def test_a_jobs_output_is_never_mixed_with_anothers() -> None:
    """Two jobs write a line each, then wait for the other to have written, then write again:
    each job's lines still come out together."""
    command = "echo $0-1; touch $0.1; while [ ! -e $1.1 ]; do sleep 0.01; done; echo $0-2"
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"plait-mix-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    try:
        ran = plait_run(
            "-j2",
            f"cd {folder} && sh -c '{command}' {{1}} {{2}}",
            ":::",
            "a",
            "b",
            ":::+",
            "b",
            "a",
        )
    finally:
        shutil.rmtree(folder)
    assert ran.status == 0, ran
    lines = ran.out.split()
    assert sorted(lines) == ["a-1", "a-2", "b-1", "b-2"]
    assert lines.index("a-2") == lines.index("a-1") + 1
    assert lines.index("b-2") == lines.index("b-1") + 1


def test_line_buffer_writes_a_long_line_whole() -> None:
    """(A line's end is looked for in what each read brought: bench/bench_run.py times it.)"""
    ran = plait_run("--line-buffer", "head -c 3000000 /dev/zero; echo; echo done", ":::", "x")
    assert ran.status == 0
    assert ran.out == "\0" * 3_000_000 + "\ndone x\n"


def test_line_buffer_and_ungroup_write_every_line() -> None:
    for mode in ("--line-buffer", "--ungroup"):
        ran = plait_run("-j2", mode, "printf 'x{}\\ny{}\\n'; echo e{} >&2", ":::", "1", "2")
        assert sorted(ran.out.split()) == ["x1", "x2", "y1", "y2"], (mode, ran)
        assert sorted(ran.err.split()) == ["e1", "e2"], (mode, ran)


def test_more_jobs_at_once_than_file_descriptors_allow_run_fewer_at_once(tmp_path: Path) -> None:
    """A job holds three descriptors: with 64 in all, 40 at once cannot run. plait says so and
    runs fewer at once, every job in the end (it crashed, ending the jobs that ran). The jobs
    wait for a file until plait has said so: they all run side by side till then."""
    go = tmp_path / "go"
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "run", "-j40",
         f"while [ ! -e {go} ]; do sleep 0.01; done; echo {{}}", ":::", *map(str, range(40))],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)),
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        said = proc.stderr.readline().decode()
        go.touch()
        out, err = proc.communicate(timeout=30)
    finally:
        go.touch()
        proc.kill()
        proc.communicate()
    assert said.startswith("plait run: warning: only enough file descriptors (ulimit -n 64)"), (
        said + err.decode()
    )
    assert (sorted(out.decode().split(), key=int), err, proc.returncode) == (
        [str(i) for i in range(40)],
        b"",
        0,
    )


def test_a_job_started_without_a_shell_behaves_as_with_one(tmp_path: Path) -> None:
    """A plain command runs without a shell: the same result, and a program that does not exist
    still fails as the shell says (127)."""
    assert plait_run("-k", "ls", ":::", str(tmp_path)).status == 0
    missing = plait_run("no-such-program-here", ":::", "a")
    assert missing.status == 1
    assert "not found" in missing.err


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
def test_a_bash_function_exported_to_the_shell_runs_in_place_of_the_program(
    tmp_path: Path,
) -> None:
    """With PARALLEL_SHELL=bash, ``export -f grep`` makes ``grep`` the function, as GNU
    parallel's man page shows: the no-shell start ran /usr/bin/grep. So does a function the
    file BASH_ENV names defines."""
    function = '() {  echo "function got: $*"\n}'
    bash = {**ENV, "PARALLEL_SHELL": "bash"}
    done = subprocess.run(
        [sys.executable, "-m", "plait", "run", "grep", "-c", "root", ":::", "/etc/passwd"],
        capture_output=True,
        text=True,
        env={**bash, "BASH_FUNC_grep%%": function},
        timeout=50,
    )
    assert (done.stdout, done.returncode) == ("function got: -c root /etc/passwd\n", 0)
    (tmp_path / "start").write_text('grep() { echo "BASH_ENV function got: $*"; }\n')
    done = subprocess.run(
        [sys.executable, "-m", "plait", "run", "grep", "-c", "root", ":::", "/etc/passwd"],
        capture_output=True,
        text=True,
        env={**bash, "BASH_ENV": str(tmp_path / "start")},
        timeout=50,
    )
    assert (done.stdout, done.returncode) == ("BASH_ENV function got: -c root /etc/passwd\n", 0)


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if command.startswith(marker) and state != "Z":
                found.append(int(entry.name))
    return found


def unique_seconds() -> str:
    """A sleep's length no other test's process has: its processes are found by it."""
    return f"{4000 + os.getpid() % 1000}.{time.monotonic_ns() % 10**6:06d}"


def end_all(marker: str) -> None:
    for pid in processes_with(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_until(condition: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_timeout_ends_the_whole_process_group_and_logs_it(tmp_path: Path) -> None:
    log, seconds = tmp_path / "log", unique_seconds()
    began = time.monotonic()
    try:
        ran = plait_run(
            "--timeout", "0.5", "--joblog", str(log), f"sleep {seconds}1 & sleep {seconds}{{}}",
            ":::", "2",
        )  # fmt: skip
        assert time.monotonic() - began < 10
        assert ran.status == 1, ran
        wait_until(lambda: not processes_with(f"sleep {seconds}"), 5)
    finally:
        end_all(f"sleep {seconds}")
    columns = log.read_text().splitlines()[1].split("\t")
    assert (columns[6], columns[7]) == ("-1", "15")


@pytest.mark.parametrize("seconds", ["2592000", "1e10", "1e308", "inf"])
def test_a_timeout_of_any_length_lets_the_jobs_run(seconds: str) -> None:
    # Past 24.8 days poll's int of milliseconds overflowed: plait run crashed with a traceback.
    assert plait_run("--timeout", seconds, "echo", ":::", "a") == Ran("a\n", "", 0)


def test_halt_now_ends_the_running_jobs() -> None:
    seconds = unique_seconds()
    began = time.monotonic()
    try:
        ran = plait_run(
            "-j2", "--halt", "now,fail=1", ":::", f"sleep {seconds}", "sleep 0.2; exit 2"
        )
        assert time.monotonic() - began < 10
        assert ran.status == 2, ran
        wait_until(lambda: not processes_with(f"sleep {seconds}"), 5)
    finally:
        end_all(f"sleep {seconds}")


def test_sighup_ends_every_job_and_exits_129() -> None:
    """The terminal closed: the jobs, in process groups of their own, would not be told."""
    seconds = unique_seconds()
    marker = f"sleep {seconds}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "run", "-j2", f"{marker}{{}} & {marker}{{}}", ":::", "1",
         "2", "3"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_until(lambda: len(processes_with(marker)) == 4)
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(10) == 129
        wait_until(lambda: processes_with(marker) == [])
    finally:
        proc.kill()
        proc.communicate()
        end_all(marker)


def test_ctrl_c_ends_every_job_and_exits_130_within_a_second() -> None:
    seconds = unique_seconds()
    marker = f"sleep {seconds}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "run", "-j3", f"{marker}{{}}", ":::", "1", "2", "3", "4"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: len(processes_with(marker)) == 3)
        proc.send_signal(signal.SIGINT)
        began = time.monotonic()
        assert proc.wait(10) == 130
        assert time.monotonic() - began < 1.0
        assert processes_with(marker) == []
    finally:
        proc.kill()
        proc.communicate()
        end_all(marker)


def end_groups(marker: str) -> None:
    """Kill the process groups of the processes ``marker`` finds (a shell left running would
    start them again)."""
    for pid in processes_with(marker):
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_while_the_jobs_are_ended_still_ends_them_all(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Ctrl-C pressed twice, or ``timeout``, which signals plait and then its whole group: the
    second signal comes while plait is ending the jobs. Each job's shell outlives SIGTERM (it
    traps it, says so in a file, and starts its sleep again): only the SIGKILL after the grace
    period ends it, and the second signal must not cut that short."""
    seconds = unique_seconds()
    marker = f"sleep {seconds}"
    job = f'trap "touch {tmp_path}/termed{{}}" TERM; while :; do {marker} & wait $!; done'
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "run", "-j2", job, ":::", "1", "2"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: len(processes_with(marker)) == 2)
        proc.send_signal(signum)
        # plait has sent the jobs SIGTERM: it is in its grace period, waiting for them.
        wait_until(lambda: len(list(tmp_path.glob("termed*"))) > 0)
        proc.send_signal(signum)
        assert proc.wait(10) == 128 + signum
        wait_until(lambda: processes_with(marker) == [], 5)
    finally:
        proc.kill()
        proc.communicate()
        end_groups(marker)


def test_input_that_has_not_ended_starts_jobs_at_once(tmp_path: Path) -> None:
    """Jobs start as lines arrive (GNU parallel's --bar reads all input first): with --bar,
    two jobs run while stdin is still open."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "run", "--bar", "-j2", "touch", f"{tmp_path}/{{}}"],
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"one\ntwo\n")
        proc.stdin.flush()
        wait_until(lambda: (tmp_path / "one").exists() and (tmp_path / "two").exists())
        proc.stdin.close()
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        with proc.stderr:
            err = proc.stderr.read()
    assert b"2job" in err, err


def test_while_plait_waits_for_a_line_jobs_end_on_time_and_their_output_is_written(
    tmp_path: Path,
) -> None:
    """Input that has not ended (``tail -f``): a job that ended has its output written, and a
    job past its --timeout is ended, while plait waits for the next line (both waited for
    it). The input's commands: an echo, a sleep past the timeout."""
    seconds = unique_seconds()
    marker = f"sleep {seconds}"
    out, log = tmp_path / "out", tmp_path / "log"
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "plait", "run", "-j3", "--timeout", "1", "--joblog", str(log)],
            env=ENV,
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
    assert proc.stdin is not None
    try:
        proc.stdin.write(f"echo first\n{marker}\n".encode())
        proc.stdin.flush()
        wait_until(lambda: out.read_text() == "first\n", 10)
        wait_until(lambda: len(log.read_text().splitlines()) == 3, 10)  # (its header too)
        assert processes_with(marker) == []
        proc.stdin.close()
        assert proc.wait(20) == 1
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        if not proc.stdin.closed:
            proc.stdin.close()
        end_all(marker)
    ended = [line.split("\t") for line in log.read_text().splitlines()[1:]]
    assert [(row[0], row[6], row[7]) for row in ended] == [("1", "0", "0"), ("2", "-1", "15")]


def test_resume_after_kill_9_reruns_no_finished_job_and_loses_none(tmp_path: Path) -> None:
    log, runs = tmp_path / "log", tmp_path / "runs"
    runs.mkdir()
    items = [str(i) for i in range(40)]
    command = f"echo {{}} >> {runs}/{{}}; sleep 0.05"
    args = ["-j4", "--joblog", str(log), command, ":::", *items]
    proc = subprocess.Popen([sys.executable, "-m", "plait", "run", *args], env=ENV)
    try:
        wait_until(lambda: log.exists() and len(log.read_text().splitlines()) > 10)
        proc.kill()  # (kill -9: no chance to write anything more)
        proc.wait(10)
    finally:
        proc.kill()
    logged_before = {line.split("\t")[0] for line in log.read_text().splitlines()[1:]}
    assert 10 <= len(logged_before) < 40
    time.sleep(0.2)  # (the jobs it left running end: each sleeps 0.05 s)
    assert plait_run("--resume", *args).status == 0
    lines = log.read_text().splitlines()[1:]
    seqs = sorted(int(line.split("\t")[0]) for line in lines)
    assert seqs == list(range(1, 41))  # every job logged once: none lost, none twice
    for seq in logged_before:  # a job logged before the kill never ran again
        assert (runs / items[int(seq) - 1]).read_text().count("\n") == 1


@needs_gnu
def test_a_jobs_log_line_follows_its_output_in_the_order_gnu_parallel_writes_them(
    tmp_path: Path,
) -> None:
    """Job 2 ends first; with --keep-order its output, and so its log line, come after job
    1's: in a log file, and interleaved with the output in ``--joblog -``."""
    command = (
        "if [ {} = 1 ]; then until [ -e two ]; do sleep 0.01; done; fi; echo out {}; touch two"
    )
    seen = {}
    for who, run in (("ours", plait_run), ("theirs", gnu_parallel)):
        (tmp_path / who).mkdir()
        to_file = run("-j2", "-k", "--joblog", "log", command, ":::", "1", "2", cwd=tmp_path / who)
        (tmp_path / who / "two").unlink()
        to_out = run("-j2", "-k", "--joblog", "-", command, ":::", "1", "2", cwd=tmp_path / who)
        logged = [line.split("\t")[0] for line in (tmp_path / who / "log").read_text().splitlines()]
        interleaved = [line.split("\t")[0] for line in to_out.out.splitlines()]
        seen[who] = (to_file.out, logged, interleaved)
    assert seen["ours"] == seen["theirs"], seen
    assert seen["ours"][2] == ["Seq", "out 1", "1", "out 2", "2"]


def test_a_job_log_of_dash_goes_to_standard_output() -> None:
    ran = plait_run("-j1", "--joblog", "-", "echo", ":::", "a", "b")
    lines = ran.out.splitlines()
    assert lines[0].startswith("Seq\tHost\tStarttime")
    assert [line for line in lines[1:] if "\t" not in line] == ["a", "b"]
    assert [line.split("\t")[8] for line in lines[1:] if "\t" in line] == ["echo a", "echo b"]
    assert plait_run("--joblog", "-", "--resume", "echo", ":::", "a").status == 255


def test_resume_failed_runs_only_the_failed_jobs_again(tmp_path: Path) -> None:
    log, marker = tmp_path / "log", tmp_path / "fixed"
    command = f"echo {{}}; [ {{}} != 2 ] || [ -e {marker} ]"
    assert plait_run("-k", "--joblog", str(log), command, ":::", "1", "2", "3").status == 1
    marker.touch()
    again = plait_run("-k", "--joblog", str(log), "--resume-failed", command, ":::", "1", "2", "3")
    assert (again.out, again.status) == ("2\n", 0)


def test_bad_command_lines_exit_255_and_say_the_fix() -> None:
    for args, words in (
        (["-j", "lots", "echo"], "-j lots: give N"),
        (["--halt", "sometimes", "echo"], "--halt sometimes: give"),
        (["--timeout", "10%", "echo"], "--timeout 10%: give seconds"),
        (["--timeout", "-1", "echo"], "--timeout -1: give a number of seconds (0: none)"),
        (["-j", "1.5", "echo"], "-j 1.5: give a whole number of jobs"),
        (["--resume", "echo"], "--resume needs --joblog"),
        (["--colsep", "(", "echo"], "not a regular expression"),
        (["--trim", "both", "echo"], "invalid choice: 'both'"),
        (["-a", "/no/such/file", "echo"], "No such file"),
        (["-a", "/", "echo"], "/: a directory, not a file of inputs"),
        (["echo", ":::", "a", "::::", "/"], "/: a directory, not a file of inputs"),
        (["--no-such-option", "echo"], "unrecognized arguments: --no-such-option"),
        (["--retries", "x", "echo"], "invalid int value: 'x'"),
        (["--lb", "--group", "echo"], "not allowed with"),
        (["-j"], "expected one argument"),
    ):
        ran = plait_run(*args)
        assert ran.status == 255, (args, ran)
        assert words in ran.err, (args, ran)


def test_bar_without_tqdm_exits_255_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """tqdm is an optional extra (plait[progress]): without it, --bar was a traceback."""
    from plait._cli import main

    monkeypatch.setitem(sys.modules, "tqdm", None)  # (as if it were not installed)
    for option in ("--bar", "--eta"):
        assert main(["run", option, "true", ":::", "a"]) == 255
        assert capsys.readouterr().err == (
            "plait run: --bar and --eta need tqdm: pip install 'plait[progress]' "
            "(or pip install tqdm)\n"
        )


def test_jobs_at_once_in_each_form(monkeypatch: pytest.MonkeyPatch) -> None:
    from plait._command import _options

    monkeypatch.setattr(_options, "usable_cores", lambda: 8)
    forms = {None: 8, "3": 3, "50%": 4, "150%": 12, "+2": 10, "-2": 6, "-20": 1, "0": 256}
    assert {given: _options.jobs(given) for given in forms} == forms


def test_help_says_where_it_differs_from_gnu_parallel() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "plait", "run", "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0
    for words in ("Where it differs from GNU parallel on purpose", "/dev/null", "PARALLEL_SHELL"):
        assert words in done.stdout


def test_a_reader_that_stops_early_ends_the_run_quietly() -> None:
    """``plait run ... | head -1``: no traceback, the exit status of a broken pipe (141)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait", "run", "-k", "echo", ":::", *map(str, range(3000))],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    with proc.stdout, proc.stderr:
        assert proc.stdout.readline() == b"0\n"
        proc.stdout.close()
        assert proc.wait(30) == 141
        assert proc.stderr.read() == b""


def test_an_ending_signal_while_a_job_starts_is_raised_once_the_job_is_listed() -> None:
    """A SIGTERM that came between a job's spawn and its entry in the list of running jobs
    (which the ending ends) left it running after plait exited (1 start in 5 when the
    signal came as the jobs started): it is now raised as the start lets go of it."""
    previous = _signals.install()
    try:
        _signals.hold()
        os.kill(os.getpid(), signal.SIGTERM)  # (its handler runs at once, in this thread)
        listed = 0
        for _ in range(1000):  # the rest of the start (a loop looks for signals): no raise
            listed += 1
        with pytest.raises(_signals.Terminated):
            _signals.let_go()
        assert listed == 1000
        os.kill(os.getpid(), signal.SIGTERM)  # a second one, while the jobs end: let go by
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_a_jobs_runtime_in_the_log_is_its_own_not_its_wait_for_its_turn(tmp_path: Path) -> None:
    """With --keep-order a job's line is written in its turn; its JobRuntime was read then,
    and held the wait for the jobs before it (job 2: 2.0 s, its own 0.1 s; GNU parallel's
    is its own)."""
    command = "if [ {} = 1 ]; then until [ -e two ]; do sleep 0.01; done; sleep 0.5; fi; touch two"
    ran = plait_run("-j2", "-k", "--joblog", "log", command, ":::", "1", "2", cwd=tmp_path)
    assert ran.status == 0, ran
    lines = [line.split("\t") for line in (tmp_path / "log").read_text().splitlines()[1:]]
    runtime = {int(columns[0]): float(columns[3]) for columns in lines}
    assert runtime[2] + 0.4 < runtime[1], runtime  # (job 1 ran 0.5 s past job 2's end)


@needs_gnu
def test_a_dry_run_writes_no_job_log_as_gnu_parallel_does(tmp_path: Path) -> None:
    """It emptied an existing log (a real one, lost) and wrote a header to ``--joblog -``."""
    for who, run in (("ours", plait_run), ("theirs", gnu_parallel)):
        (tmp_path / who).mkdir()
        (tmp_path / who / "log").write_text("kept\n")
        to_file = run("--dry-run", "--joblog", "log", "echo", ":::", "a", cwd=tmp_path / who)
        to_out = run("--dry-run", "--joblog", "-", "echo", ":::", "a", cwd=tmp_path / who)
        assert (to_file.out, to_out.out) == ("echo a\n", "echo a\n"), who
        assert (tmp_path / who / "log").read_text() == "kept\n", who


def test_an_input_that_cannot_be_read_midway_is_a_clear_error() -> None:
    """A read that fails (a device: EIO) was a Python traceback, exit status 1."""
    ran = plait_run("echo", "::::", "/proc/self/mem")
    assert ran.status == 255
    assert ran.err == "plait run: cannot read /proc/self/mem: Input/output error\n"


def test_jobs_given_as_minus_n_after_a_space_is_a_value_and_minus_0_an_option() -> None:
    """`-j -1` (a core less) was refused: argparse took -1 for an option, as -0 is one."""
    ran = plait_run("-k", "-j", "-1", "echo", ":::", "a", "-2")
    assert (ran.out, ran.status) == ("a\n-2\n", 0), ran
    ran = plait_run("-0", "-k", "echo", stdin="x y\0z\0")
    assert (ran.out, ran.status) == ("x y\nz\n", 0), ran


@needs_gnu
@pytest.mark.parametrize(
    "pattern", [",", "|", ",?", "a*", r"\s+", "[[:space:]]+", "[[:digit:][:punct:]]", "(,)", r"\d"]
)
def test_colsep_is_read_as_gnu_parallels_perl_reads_it(pattern: str) -> None:
    """As a Python regular expression, `\\s` split at a no-break space and \\x1f, `\\d` at
    Arabic-Indic digits, `[[:space:]]` was the characters ":space" (with a warning), and a
    pattern that matches nothing at the start made an empty first column."""
    inputs = ["x,y,", ",b c", "a|b,", "x\x1fy z", "p:q 7"]
    if not perl_pattern(pattern).match(b""):  # (one that matches nothing splits every byte)
        inputs += ["a\u00a0b c", "1\u0663 2"]
    same("-k", "--colsep", pattern, "echo", "[{1}][{2}][{3}][{4}][{5}]", ":::", *inputs)


@needs_gnu
def test_a_timeout_of_0_is_none_and_a_share_of_the_cores_may_be_a_fraction() -> None:
    same("-k", "--timeout", "0", "echo", ":::", "a", "b")
    same("-k", "-j", "1.5%", "echo", ":::", "a", "b")


@needs_gnu
def test_time_is_the_shells_keyword_under_bash_not_usr_bin_time() -> None:
    """bash runs `time` itself (a keyword): started as a program, it was /usr/bin/time."""
    env = {**ENV, "PARALLEL_SHELL": "/bin/bash"}
    ours = subprocess.run(
        [sys.executable, "-m", "plait", "run", "time", "true", ":::", "a"],
        capture_output=True, text=True, env=env, timeout=50,
    )  # fmt: skip
    assert ours.returncode == 0, ours
    assert "real" in ours.stderr, ours  # (bash's: real, user, sys; /usr/bin/time's: elapsed)


@needs_gnu
def test_an_empty_source_among_others_is_one_empty_value_as_gnu_parallels(
    tmp_path: Path,
) -> None:
    """It made no job at all: `::: a b :::` ran nothing (GNU parallel: a and b)."""
    (tmp_path / "empty").write_text("")
    for args in (
        [":::", ":::", "a", "b"],
        [":::", "a", "b", ":::"],
        ["::::", "empty", ":::", "a", "b"],
        [":::", "a", "b", ":::", ":::", "c"],
        [":::", "a", "b", ":::+"],
        [":::", "a", "b", ":::+", "x", ":::"],
        ["::::", "empty"],  # (alone: no job)
    ):
        same("-k", "echo", "[{1}][{2}][{3}]", *args, cwd=tmp_path)


def test_a_dry_run_counts_each_job_as_done_for_halt_now() -> None:
    """As GNU parallel's dry run, when its halt comes in time (it checks as jobs end, beside
    printing them: under load it printed all three of these)."""
    for halt, printed in (("now,done=1", 1), ("now,success=2", 2), ("now,fail=1", 3)):
        ran = plait_run("-k", "--dry-run", "--halt", halt, "echo", ":::", "a", "b", "c")
        assert (ran.out, ran.status) == ("".join(f"echo {x}\n" for x in "abc"[:printed]), 0)
