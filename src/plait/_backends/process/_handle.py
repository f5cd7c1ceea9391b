"""One worker process as the dispatcher sees it: its socket, what it holds, how it ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Callable
from contextlib import suppress

from ..._task import Task
from ._codec import Sent
from ._frames import FrameReader, FrameWriter, Tag, frame
from ._launch import launch, watch_exit

KILL_GRACE = 0.2  # seconds between SIGTERM and SIGKILL
# How long a timed task may spend loading (its function's module, its item) before its clock
# starts; past this the load itself counts as hung.
LOAD_SECONDS = 60.0
# A worker whose socket closed is exiting already; this long (the dispatcher waits meanwhile)
# to finish by itself, so that its own exit code or signal is what gets reported.
EXIT_GRACE = 0.05
EXIT_WAIT = 2.0  # at shutdown, how long an idle worker gets to exit at EOF before SIGKILL
# A worker whose initializer ends it (os._exit, a crash, a signal) holds no task, so nothing
# would fail, and replacing it for ever would spin a core and hang every call. After this many
# in a row end before they are ready, with no READY between, in a pool with an initializer, the
# dispatcher starts no more in their place; once none is left, each task fails with
# WorkerCrashed.
EARLY_DEATHS = 3


class WorkerHandle:
    """A worker process, its socket and the tasks it holds, in the order it runs them."""

    def __init__(self, index: int, start_method: str, init: bytes, max_tasks: int | None) -> None:
        parent_end, child_end = socket.socketpair()
        _parent_ends.add(parent_end)
        self.index = index
        try:
            self.proc = launch(child_end.fileno(), start_method)
        finally:
            child_end.close()
        parent_end.setblocking(False)
        self.sock = parent_end
        # Readable once the process has ended, even while its socket stays open (see
        # ``watch_exit``); None once closed, or where the system has none.
        self.exit_fd = watch_exit(self.proc)
        if self.exit_fd is not None:
            _exit_fds.add(self.exit_fd)
        self.reader = FrameReader()
        self.writer = FrameWriter()
        self.tasks: dict[int, Sent] = {}  # by task id: in flight, in the order it runs them
        self.jobs: set[int] = set()
        self.head_since = 0.0  # when the first task in flight became the one it runs
        # When that task reported it started (timed tasks only: their clock runs from here).
        self.head_started: float | None = None
        self.ready = False  # set up and listening: only then does it get tasks (and deadlines)
        # Taken warm and sent its tasks before it answered READY: until it does, it has run
        # nothing of this pool's, and losing it loses no task (see ``reuse``).
        self.unconfirmed = False
        self.items_sent = 0  # for recycling after Workers.max_tasks items
        self.max_tasks = max_tasks
        self.writer.add(frame(Tag.INIT, payload=init))

    def reuse(self, index: int, init: bytes, max_tasks: int | None, surroundings: bytes) -> None:
        """Take over a parked worker (``_warm``) for a new pool: it goes back to the program's
        directory and environment (``surroundings``: RESET), and starts again at INIT.

        It is ready at once: a parked worker has no setup to run (only pools without an
        initializer park theirs), so its first tasks follow INIT in the same write instead of
        waiting a round trip for READY. It may still turn out to be gone (it reached its idle
        limit, or was killed, as it was taken); until READY arrives, ``unconfirmed`` says so,
        and the dispatcher gives the tasks it held to another worker, none of them failed."""
        self.index = index
        self.tasks = {}
        self.jobs = set()
        self.ready = True
        self.unconfirmed = True
        self.items_sent = 0
        self.max_tasks = max_tasks
        self.next_head()
        self.writer.add(frame(Tag.RESET, payload=surroundings))
        self.writer.add(frame(Tag.INIT, payload=init))

    def next_head(self) -> None:
        """The first task in flight ended (or was just sent to an idle worker)."""
        self.head_since = time.monotonic()
        self.head_started = None

    def head_began(self) -> float:
        """When (``perf_counter()``) the task it runs now began, as near as the dispatcher
        knows: when it said it started (a timed task), else when it became the first in
        flight (sent to the idle worker, or the one before it ended); 0.0: not known."""
        since = self.head_since if self.head_started is None else self.head_started
        return time.perf_counter() - (time.monotonic() - since) if since else 0.0

    @property
    def where(self) -> tuple[str, str]:
        """Where its tasks run, for a trace."""
        return (f"worker process {self.proc.pid}", "worker")

    def deadline(self) -> float | None:
        """When the running task overruns: ``task_timeout`` after it started, or, while it is
        still loading (its function's module, its item), a generous allowance for that."""
        if not self.tasks:
            return None
        timeout = next(iter(self.tasks.values())).task.timeout
        if timeout is None:
            return None
        if self.head_started is not None:
            return self.head_started + timeout
        return self.head_since + max(LOAD_SECONDS, timeout)

    def overrun_message(self, timeout: float) -> str:
        """Why this worker is killed, its running task past ``deadline()``."""
        if self.head_started is None:
            return (
                f"the worker process (pid {self.proc.pid}) spent over "
                f"{max(LOAD_SECONDS, timeout)}s loading the function and the item, before "
                "the item could start; it was killed and replaced"
            )
        return (
            f"the item ran longer than task_timeout={timeout}s; its worker process "
            f"(pid {self.proc.pid}) was killed and replaced"
        )

    def fits(self, task: Task) -> bool:
        return self.max_tasks is None or self.items_sent + len(task.items) <= self.max_tasks

    @property
    def retiring(self) -> bool:
        """It has been given its quota of items: it gets no more, and goes once it is idle."""
        return self.max_tasks is not None and self.items_sent >= self.max_tasks

    def stop(self) -> int:
        """End the process and reap it: SIGTERM, then SIGKILL after a grace. A worker whose
        socket closed gets EXIT_GRACE first to finish exiting by itself, so that a crash is
        reported as what it was (its exit code or signal), not as our SIGTERM."""
        exiting = self.reader.closed or self.writer.closed
        self.sock.close()
        if exiting:
            with suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(EXIT_GRACE)
                self.close_exit_fd()
                return code
        self.terminate()  # (not if it has ended: a process it forked may hold its socket)
        return self.reap(time.monotonic() + KILL_GRACE)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                self.proc.terminate()

    def reap(self, deadline: float | None) -> int:
        """Wait for the exit; past ``deadline``, SIGKILL. Returns the Popen-style return code."""
        try:
            return self.proc.wait(
                None if deadline is None else max(0.0, deadline - time.monotonic())
            )
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self.close_exit_fd()

    def close_exit_fd(self) -> None:
        """The process is reaped: its exit needs no more watching (the dispatcher stopped
        watching it first)."""
        fd, self.exit_fd = self.exit_fd, None
        if fd in _exit_fds:  # (not in a fork, which closed its copy: the number may be reused)
            _exit_fds.discard(fd)
            os.close(fd)


def stop_all(workers: list[WorkerHandle], *, kill: bool) -> None:
    """End workers: politely when the work is done (EOF: an idle worker exits by itself), by
    signal when ``kill``. One that does not exit (something else holds its socket) is killed
    rather than waited for without end."""
    for worker in workers:
        worker.sock.close()
        if kill:
            worker.terminate()
    deadline = time.monotonic() + (KILL_GRACE if kill else EXIT_WAIT)
    for worker in workers:
        worker.reap(deadline)


def crash_message(pid: int, returncode: int) -> str:
    return f"the worker process (pid {pid}) {how_it_ended(returncode)} while running this item"


def early_death_message(
    pid: int, returncode: int, initializer: Callable[..., object] | None
) -> str:
    """Why a pool's tasks fail when its workers keep ending before they are ready."""
    during = "while starting"
    if initializer is not None:
        name = getattr(initializer, "__qualname__", None) or repr(initializer)
        module = getattr(initializer, "__module__", None)
        during = f"while running the initializer {module + '.' if module else ''}{name}"
    return (
        f"the worker process (pid {pid}) {how_it_ended(returncode)} {during}, before it was "
        f"ready to run a task; {EARLY_DEATHS} workers in a row ended so, and plait starts no "
        "more: the pool's tasks fail with this error"
    )


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


# The parent's end of every worker's socket. A process forked from this one (os.fork,
# multiprocessing's "fork") closes its copies at once: while a copy stays open, the worker
# never sees EOF when the pool closes its end, and the pool's shutdown would wait for the
# fork to end. (Worker processes of our own hold only their end: launch passes no other.)
_parent_ends: weakref.WeakSet[socket.socket] = weakref.WeakSet()
_exit_fds: set[int] = set()  # every ``WorkerHandle.exit_fd``: a fork has no use for them


def _close_in_child() -> None:
    for sock in list(_parent_ends):
        sock.close()
    for fd in list(_exit_fds):
        with suppress(OSError):
            os.close(fd)
    _exit_fds.clear()


os.register_at_fork(after_in_child=_close_in_child)
