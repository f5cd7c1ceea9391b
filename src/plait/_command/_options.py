"""``plait run``'s command line, read as GNU parallel reads its own (its options, then the
command, then the input sources), into ``RunOptions``."""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from .._cores import usable_cores
from ._inputs import Source, perl_pattern
from ._usage import UsageError

MARKERS = (":::", ":::+", "::::", "::::+")
UNLIMITED_JOBS = 256  # what -j 0 ("as many as possible") means


class CommandParser(argparse.ArgumentParser):
    """The parser of ``plait run`` and ``plait map``: a command line it cannot read exits
    255, as GNU parallel's does (argparse's own status is 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(255, f"{self.prog}: error: {message}\n")


@dataclass(frozen=True)
class Halt:
    now: bool  # end the running jobs too (else: let them finish, start no more)
    on: str  # what is counted: "fail", "success" or "done" (either)
    count: int = 1
    percent: float | None = None  # ... or this share of all the jobs


@dataclass
class RunOptions:
    command: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    jobs: int = 1
    keep_order: bool = False
    tag: bool = False
    output: str = "group"  # "group", "line-buffer" or "ungroup"
    joblog: str | None = None
    resume: bool = False
    resume_failed: bool = False
    retries: int = 1  # runs of a failing job, in all (GNU parallel's 0 means 1)
    timeout: float | None = None
    halt: Halt | None = None
    dry_run: bool = False
    bar: bool = False
    separator: bytes = b"\n"
    colsep: str | None = None
    trim: str = "n"  # white space taken from each input: n, l, r, lr or rl (--trim)


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add = parser.add_argument
    add(
        "-j",
        "--jobs",
        metavar="N",
        default=None,
        help="jobs at once: N, N%% of the cores, +N or -N cores, 0 for as many as possible "
        "(default: the usable cores)",
    )
    add("-k", "--keep-order", action="store_true", help="write outputs in input order")
    add("--tag", action="store_true", help="prefix each output line with its job's input")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--group",
        dest="output",
        action="store_const",
        const="group",
        help="write a job's output whole when it ends (the default)",
    )
    group.add_argument(
        "--line-buffer",
        "--lb",
        dest="output",
        action="store_const",
        const="line-buffer",
        help="write whole lines as jobs write them",
    )
    group.add_argument(
        "-u",
        "--ungroup",
        dest="output",
        action="store_const",
        const="ungroup",
        help="jobs write to plait's output directly (lines may mix)",
    )
    add(
        "-a",
        "--arg-file",
        action="append",
        default=[],
        metavar="FILE",
        help="read inputs from FILE (several: every combination)",
    )
    add("-0", "--null", action="store_true", help="inputs are separated by NUL, not newline")
    add(
        "--colsep",
        metavar="REGEX",
        help="split each input into columns {1} {2} ... (each trimmed: --trim rl)",
    )
    add(
        "--trim",
        choices=("n", "l", "r", "lr", "rl"),
        help="trim white space from each input (or column): n none (the default without "
        "--colsep), l from its start, r from its end, lr or rl both",
    )
    add("--joblog", metavar="FILE", help="log each job: GNU parallel's nine columns")
    add("--resume", action="store_true", help="skip the jobs the job log has")
    add(
        "--resume-failed",
        action="store_true",
        help="skip the jobs the job log has as succeeded, run the failed ones again",
    )
    add("--retries", type=int, default=1, metavar="N", help="run a failing job up to N times")
    add(
        "--timeout",
        metavar="SECONDS",
        help="end a job (its whole process group: TERM, then KILL) after SECONDS",
    )
    add(
        "--halt",
        metavar="WHEN",
        help="now|soon,fail|success|done=N|P%%: stop early (GNU parallel's older 1, 2, P%%; "
        "-1 and -2 as --halt=-1)",
    )
    add("--dry-run", action="store_true", help="print the commands, run none")
    add(
        "--bar",
        action="store_true",
        help="a progress bar on stderr (endless input too; needs tqdm: plait[progress])",
    )
    add("--eta", dest="bar", action="store_true", help="the same as --bar")
    add("--will-cite", action="store_true", help=argparse.SUPPRESS)  # (GNU parallel's)
    add("command", nargs=argparse.REMAINDER,
        help="the command, then its inputs: ::: ARGS, :::: FILES (:::+ and ::::+ link to the "
        "source before); none: lines of stdin")  # fmt: skip
    # An option that looks like a negative number (-0) makes argparse take every negative
    # number for an option: `-j -1` (GNU parallel's "a core less") was "expected one
    # argument". Told there is none, argparse still knows -0 by its name, and -1 is a value.
    parser._has_negative_number_optionals.clear()
    return parser


def read(namespace: argparse.Namespace) -> RunOptions:
    """``RunOptions`` from the parsed command line; ``UsageError`` names what is wrong."""
    words: list[str] = namespace.command
    if words[:1] == ["--"]:  # (the end of plait's options, as GNU parallel takes it)
        words = words[1:]
    cut = next((i for i, word in enumerate(words) if word in MARKERS), len(words))
    command, sources = words[:cut], _sources(words[cut:])
    sources = [Source(path=path) for path in namespace.arg_file] + sources
    check_readable(sources)
    if namespace.resume and namespace.resume_failed:
        raise UsageError("--resume and --resume-failed: give one of them")
    if (namespace.resume or namespace.resume_failed) and namespace.joblog in (None, "-"):
        raise UsageError("--resume needs --joblog FILE (the log it resumes from)")
    if namespace.bar and importlib.util.find_spec("tqdm") is None:  # (an optional extra)
        raise UsageError(
            "--bar and --eta need tqdm: pip install 'plait[progress]' (or pip install tqdm)"
        )
    if namespace.retries < 0:
        raise UsageError(f"--retries {namespace.retries}: give the runs in all, 0 or more")
    return RunOptions(
        command=command,
        sources=sources,
        jobs=jobs(namespace.jobs),
        keep_order=namespace.keep_order,
        tag=namespace.tag,
        output=namespace.output or "group",
        joblog=namespace.joblog,
        resume=namespace.resume,
        resume_failed=namespace.resume_failed,
        retries=max(1, namespace.retries),
        timeout=_timeout(namespace.timeout),
        halt=halt(namespace.halt),
        dry_run=namespace.dry_run,
        bar=namespace.bar,
        separator=b"\0" if namespace.null else b"\n",
        colsep=check_colsep(namespace.colsep),
        # (--colsep implies --trim rl, as GNU parallel's does: "a , b" is a and b.)
        trim=namespace.trim or ("rl" if namespace.colsep is not None else "n"),
    )


def check_readable(sources: list[Source]) -> None:
    for source in sources:
        if source.path in (None, "-"):
            continue
        if not os.access(source.path, os.R_OK):
            raise UsageError(f"{source.path}: No such file, or not readable (an input source)")
        if os.path.isdir(source.path):  # (readable, as access() sees it: not as a file)
            raise UsageError(f"{source.path}: a directory, not a file of inputs (an input source)")


def _sources(words: Sequence[str]) -> list[Source]:
    sources: list[Source] = []
    marker = ""
    for word in words:
        if word in MARKERS:
            marker = word
            if marker.startswith(":::") and not marker.startswith("::::"):
                sources.append(Source(values=[], linked=marker.endswith("+")))
            continue
        if marker.startswith("::::"):  # (after ::::+, every file is linked, as GNU's are)
            sources.append(Source(path=word, linked=marker.endswith("+")))
        else:
            values = sources[-1].values
            assert values is not None
            values.append(word)
    return sources


def jobs(given: str | None) -> int:
    """-j: N, N% of the cores, +N/-N (the cores plus or minus N), 0: as many as possible."""
    cores = usable_cores()
    if given is None:
        return cores
    match = re.fullmatch(r"([+-]?)(\d+(?:\.\d+)?)(%?)", given.strip())
    if match is None:
        raise UsageError(f"-j {given}: give N, N%, +N or -N (for example -j 4 or -j 50%)")
    sign, number, percent = match.groups()
    if "." in number and not percent:  # (as GNU parallel's: a share of the cores is N%)
        raise UsageError(f"-j {given}: give a whole number of jobs (or N% of the cores)")
    value = float(number)
    if percent:
        count = math.floor(cores * value / 100)
    elif sign:
        count = cores + int(value) if sign == "+" else cores - int(value)
    elif value == 0:
        return UNLIMITED_JOBS
    else:
        count = int(value)
    return max(1, count)


def halt(given: str | None) -> Halt | None:
    if given is None or given in ("never", "0"):
        return None
    older = {"1": "soon,fail=1", "2": "now,fail=1", "-1": "soon,success=1", "-2": "now,success=1"}
    given = older.get(given, given)  # (GNU parallel's older forms)
    if re.fullmatch(r"\d+(?:\.\d+)?%", given):
        given = f"soon,fail={given}"
    match = re.fullmatch(r"(now|soon),(fail|success|done)=(\d+(?:\.\d+)?)(%?)", given)
    if match is None:
        raise UsageError(
            f"--halt {given}: give when,what=how many, for example now,fail=1 or soon,fail=10%"
        )
    when, what, number, percent = match.groups()
    if percent:
        return Halt(when == "now", what, percent=float(number))
    return Halt(when == "now", what, count=max(1, int(float(number))))


def _timeout(given: str | None) -> float | None:
    if given is None:
        return None
    try:
        seconds = float(given)
    except ValueError:
        raise UsageError(
            f"--timeout {given}: give seconds (a share of the median run time, GNU parallel's "
            "N%, is not supported)"
        ) from None
    if seconds == 0:
        return None  # (as GNU parallel's: no timeout)
    if not seconds > 0:
        raise UsageError(f"--timeout {given}: give a number of seconds (0: none)")
    return seconds


def check_colsep(given: str | None) -> str | None:
    """``--colsep``'s pattern, checked: Perl's, as GNU parallel reads it."""
    if given is None:
        return None
    try:
        perl_pattern(given)
    except re.error as error:
        raise UsageError(f"--colsep {given!r}: not a regular expression ({error})") from None
    return given
