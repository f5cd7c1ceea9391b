"""``plait run``: commands over inputs, with GNU parallel's command line.

_options    the command line, read into RunOptions
_inputs     the input sources, read lazily
_template   each job's command line: replacement strings, shell quoting
_jobs       the jobs: watched in one loop, retried, written in order, --halt, Ctrl-C
_job        one job: its input, its process, its output so far, how it ended
_spawn      starting a job's process: posix_spawn, its program or the shell
_output     writing a job's output: whole, by lines, tagged
_joblog     --joblog, --resume
_streams    plait's own stdout and stderr, as bytes (nowhere if closed)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from . import _signals
from ._map import add_map_command, map_command
from ._options import CommandParser, build_parser, read
from ._usage import UsageError

__all__ = ["CommandParser", "add_map_command", "add_run_command", "map_command", "run_command"]


def add_run_command(commands: argparse._SubParsersAction[CommandParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="run a command over inputs, with GNU parallel's options",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build_parser(parser)


def run_command(namespace: argparse.Namespace) -> int:
    from ._inputs import arguments
    from ._jobs import Runner

    try:
        options = read(namespace)
        inputs = arguments(
            options.sources,
            separator=options.separator,
            colsep=options.colsep,
            trim=options.trim,
        )
        runner = Runner(options, inputs)
    except (UsageError, OSError) as error:
        print(f"plait run: {error}", file=sys.stderr)
        return 255
    # Ctrl-C, SIGTERM and SIGHUP (the terminal closed) end every job: the jobs run in process
    # groups of their own, which no signal to plait's group reaches.
    previous = _signals.install()
    try:
        return runner.run()
    except KeyboardInterrupt:  # (its jobs are ended: see Runner.run)
        return 130
    except _signals.Terminated as ended:
        return 128 + ended.signum
    except BrokenPipeError:  # whoever read the output stopped (``| head``): stop quietly
        return reader_gone()
    except UsageError as error:  # (found as a job starts: a command line too long)
        print(f"plait run: {error}", file=sys.stderr)
        return 255
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def reader_gone() -> int:
    """The exit status when the output's reader went away, after which nothing is written
    (not even at exit, when Python flushes its streams)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


DESCRIPTION = """\
Run COMMAND once per input, several at a time, as GNU parallel does (its man page applies
to the options below). The inputs: ::: ARGS, :::: FILES (several sources: every combination;
:::+ and ::::+ pair with the source before), -a FILE, or else the lines of stdin. In the
command, {} is the input, {.} without extension, {/} its basename, {//} its directory, {/.}
its basename without extension, {#} the job's number, {%} its job slot, {1} {2}... the
sources' values (or columns, with --colsep, each trimmed of white space as by --trim rl);
with none, the input is appended. The command runs with /bin/sh -c (PARALLEL_SHELL chooses
another), its inputs quoted.

Exit status: the number of failed jobs (at most 101), 255 for a bad command line, 130 after
Ctrl-C, 143 after SIGTERM, 129 after SIGHUP (each ends every job's process group). With
--halt, GNU parallel's: 0 on success=; when it takes one job (fail=1, done=1, or a share
that comes to one), that job's own (255 if --timeout ended it); the percentage that failed
when a percentage is given (all the input is read first, to count the jobs).

Where it differs from GNU parallel on purpose: jobs read /dev/null, never plait's stdin;
the shell is /bin/sh unless PARALLEL_SHELL says otherwise (GNU parallel uses the shell that
started it); a command the shell would run plainly (a program and plain words) is started
without a shell; --timeout takes seconds only; SIGHUP ends the running jobs (GNU parallel
lets them finish); no remote hosts (--sshlogin), no --pipe.

Examples:
  plait run gzip ::: *.log                 # compress each log, as many at once as cores
  find . -name '*.wav' | plait run -j 4 lame {} {.}.mp3
  plait run -k --tag curl -s ::: URL1 URL2 # outputs in input order, each line tagged
  plait run --joblog jobs.tsv --resume ./process.sh :::: ids.txt
"""
