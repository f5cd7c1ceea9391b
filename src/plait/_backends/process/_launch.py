"""Starting a worker process: forked by the template process by default.

``"forkserver"`` (the default) asks the program's template process (``_template``) to fork a
worker: a millisecond or two, and safe, since the template runs no threads.

``"spawn"`` runs ``python -c BOOTSTRAP <fd>``: a new interpreter that imports only what the
worker needs. It is safe in a program that runs threads, and costs an interpreter start (tens
of milliseconds).

``"fork"`` copies this process (a few milliseconds). Forking a process that runs threads can
deadlock the child if another thread held a lock at that moment (Python 3.12+ warns about it);
choose it knowingly, e.g. for many short-lived pools in a single-threaded program.

None of them re-runs the user's ``__main__``: functions travel by value, so a script needs no
``if __name__ == "__main__"`` guard.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import suppress
from typing import Protocol

from ._child import BOOTSTRAP

START_METHODS = ("forkserver", "spawn", "fork")


class WorkerProcess(Protocol):
    """What the backend needs of a child process (``subprocess.Popen`` has it all)."""

    pid: int

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


def prepare(start_method: str) -> None:
    """Called as a pool starts, in its caller's thread, before the pool starts a thread of
    its own: the template process is forked from this process if it runs no other thread."""
    if start_method == "forkserver":
        from ._template import template

        template()


def launch(child_fd: int, start_method: str) -> WorkerProcess:
    """Start a worker talking over ``child_fd`` (the caller closes its copy afterwards)."""
    if start_method == "forkserver":
        from ._template import TemplateGone, template

        try:
            return template().fork_worker(child_fd)
        except TemplateGone:  # killed from outside: template() makes a new one, once
            return template().fork_worker(child_fd)
    if start_method == "fork":
        return ForkedProcess(child_fd)
    return subprocess.Popen(
        [sys.executable, "-c", BOOTSTRAP, str(child_fd)],
        pass_fds=(child_fd,),
        stdin=subprocess.DEVNULL,
    )


def watch_exit(proc: WorkerProcess) -> int | None:
    """A new descriptor that turns readable once ``proc`` has ended (the caller closes it); None
    where the system offers none (no pidfd), and only EOF on its socket tells.

    A worker's socket alone cannot tell: a process the task forked inherits the worker's end,
    and no EOF comes while it lives."""
    if isinstance(proc, Signalled):
        return proc.exit_descriptor()
    return pidfd(proc.pid)  # a Popen: our child, not reaped yet, so the pid is still its own


def pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux, or a kernel before 5.3
        return None


class Signalled:
    """``terminate`` and ``kill`` for a child process known by its pid and ``poll``; a process
    that already ended (or was reaped meanwhile) is left alone."""

    pid: int

    def poll(self) -> int | None:
        raise NotImplementedError

    def exit_descriptor(self) -> int | None:
        """See ``watch_exit``; for a child of ours, not reaped yet."""
        return pidfd(self.pid)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signum)


class ForkedProcess(Signalled):
    """A forked worker, with the part of Popen's interface the backend uses."""

    def __init__(self, child_fd: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child: keep only the standard streams and our socket
            try:
                os.closerange(3, child_fd)
                os.closerange(child_fd + 1, _max_fd())
                from ._child import main

                main(child_fd)
            finally:
                os._exit(0)
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            if self.returncode is None:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode
        import time

        deadline = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
            time.sleep(0.005)
        return code


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 4096
