"""How ``plait run`` starts a job's process: ``posix_spawn`` (no copy of this process is made),
in a process group of its own, its standard input ``/dev/null``, its output in two pipes (none
with ``--ungroup``); the command's own program where the shell would run it plainly (one
process, not two), else the shell (``PARALLEL_SHELL``, or ``/bin/sh``)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
from collections.abc import Callable
from typing import Any

from ._job import Job
from ._template import Template
from ._usage import UsageError

HAS_PIDFD = hasattr(os, "pidfd_open")

Pipes = list[tuple[int, int]]  # (read end, write end) of stdout's pipe, then of stderr's


class Spawner:
    def __init__(self, template: Template) -> None:
        self._template = template
        self._programs: dict[str, str | None] = {}  # a plain command's program, by name
        self.shell = _shell(os.environ.get("PARALLEL_SHELL") or "/bin/sh")
        self._shell_defines = _defined_at_start(self.shell)
        self._environment = dict(os.environb)  # each job's, with its number and slot added
        self.devnull = os.open(os.devnull, os.O_RDONLY)  # each job's stdin

    def close(self) -> None:
        os.close(self.devnull)

    def descriptors(self, ungroup: bool) -> tuple[Pipes, list[int]]:
        """Every descriptor a job needs, taken before it starts: its two pipes, whose write
        ends are closed once it has started (their numbers are then free for its pidfd); with
        ``--ungroup`` no pipe, but a spare closed for the pidfd so. Out of descriptors, none is
        left open (``OSError``) and the job has not started."""
        taken: list[int] = []
        try:
            if ungroup:
                return [], [os.dup(self.devnull)] if HAS_PIDFD else []
            taken.extend(os.pipe())
            taken.extend(os.pipe())
        except OSError:
            for fd in taken:
                os.close(fd)
            raise
        return [(taken[0], taken[1]), (taken[2], taken[3])], []

    def descriptors_free(self, count: int) -> bool:
        """Whether ``count`` more descriptors could be opened now."""
        taken: list[int] = []
        try:
            while len(taken) < count:  # (one by one: those taken are closed whatever comes)
                taken.append(os.dup(self.devnull))
        except OSError as error:
            if error.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            return False
        finally:
            for fd in taken:
                os.close(fd)
        return True

    def start(self, job: Job, pipes: Pipes) -> int:
        """Start the job, its output into ``pipes`` (none: plait's own): its pid; 0 if it
        could not start (its exit status and message set, as the shell's would be)."""
        actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_DUP2, self.devnull, 0)]
        if pipes:
            (_, out_w), (_, err_w) = pipes
            actions += [(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
        environment = self._environment.copy()  # (os.environ's own copy costs 20x more)
        environment[b"PARALLEL_SEQ"] = b"%d" % job.seq
        environment[b"PARALLEL_JOBSLOT"] = b"%d" % job.slot
        program, argv = self._program(job.command)
        return self._spawn(program, argv, environment, actions, job)

    def _spawn(
        self,
        program: str,
        argv: list[str],
        environment: dict[bytes, bytes],
        actions: list[tuple[Any, ...]],
        job: Job,
    ) -> int:
        try:
            return os.posix_spawn(
                program,
                argv,
                environment,
                file_actions=actions,
                setpgroup=0,
                # (Python ignores SIGPIPE, and an ignored signal stays ignored across exec:
                # a job's `yes | head -1` would never end.)
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        except OSError as error:
            if error.errno == errno.E2BIG:
                raise UsageError(
                    f"the command line of job {job.seq} is too long for this system "
                    f"({len(job.command.encode(errors='surrogateescape'))} bytes)"
                ) from None
            if error.errno == errno.ENOEXEC and program != self.shell:
                # A script without a #! line: the shell runs it, as it would have.
                return self._spawn(self.shell, [self.shell, "-c", job.command], environment,
                                   actions, job)  # fmt: skip
            job.exitval = 127 if error.errno == errno.ENOENT else 126
            job.err += f"plait run: {argv[0]}: {error.strerror}\n".encode(errors="replace")
            return 0

    def _program(self, command: str) -> tuple[str, list[str]]:
        """The program to start and its arguments: the command's own program where the shell
        would run it plainly (one process, not two), else the shell."""
        words = self._template.simple_words(command)
        if words is not None and not self._shell_defines(words[0]):
            name = words[0]
            if name not in self._programs:
                self._programs[name] = shutil.which(name)
            path = self._programs[name]
            if path is not None:
                return path, words
        return self.shell, [self.shell, "-c", command]


def signal_group(pid: int, signum: int) -> None:
    """Send ``signum`` to the job's process group: the job and what it started."""
    try:
        os.killpg(pid, signum)
    except OSError as error:  # (ended, all of it)
        if error.errno not in (errno.ESRCH, errno.EPERM):
            raise


def _shell(name: str) -> str:
    """PARALLEL_SHELL (or /bin/sh) as a path: a bare name is looked up on PATH."""
    path = shutil.which(name) if os.sep not in name else name
    if path is None or not os.access(path, os.X_OK):
        raise UsageError(f"the shell {name!r} (PARALLEL_SHELL) is not there, or cannot run")
    return path


def _defined_at_start(shell: str) -> Callable[[str], bool]:
    """Whether the shell, as it starts, defines a name as something other than the program of
    that name: bash (also as /bin/sh) imports the functions exported to it (``export -f``:
    ``BASH_FUNC_name%%`` in the environment), and runs the file ``BASH_ENV`` names, which may
    define any name. A command whose program is such a name needs the shell."""
    if not os.path.basename(os.path.realpath(shell)).startswith("bash"):
        return lambda name: False
    if os.environ.get("BASH_ENV"):
        return lambda name: True
    functions = {
        key.removeprefix("BASH_FUNC_").removesuffix("%%")
        for key in os.environ
        if key.startswith("BASH_FUNC_")
    }
    return functions.__contains__
