"""The exceptions plait raises.

    BaseException
     ├── Cancelled                     raised by plait.checkpoint() in a task told to stop;
     │                                 a BaseException, so ``except Exception`` cannot swallow it
     └── Exception
          └── PlaitError               anything plait itself reports
               ├── TaskTimeout         an item ran longer than task_timeout (also a TimeoutError)
               ├── WorkerCrashed       a worker process died while it held an item
               ├── RemoteError         a worker's exception that could not be rebuilt here
               ├── PoolClosed          work given to a pool that is shut down (a RuntimeError)
               ├── sync.DeadlockError  a wait on plait.sync locks that would never end
               └── sync.ChannelClosed  a send to (or a receive from an empty) closed Channel

A failure inside the user's function is never wrapped: it reaches the caller as the user's own
exception, with a note naming the item, and (from a process) the worker's traceback as
``__cause__``, a ``RemoteTraceback`` whose text is that traceback.
"""

from __future__ import annotations


class PlaitError(Exception):
    """Base class of the errors plait itself reports."""


class Cancelled(BaseException):
    """The task was told to stop (its deadline passed, its map was abandoned, its group failed).

    Raised by ``plait.checkpoint()``. It derives from BaseException, like KeyboardInterrupt, so
    that a task's ``except Exception`` cannot swallow it.
    """


class TaskTimeout(PlaitError, TimeoutError):
    """An item ran longer than its ``task_timeout``.

    On processes its worker was killed and replaced. On threads (which cannot be killed) the
    thread was abandoned and replaced; ``plait.cancelled()`` turned True inside it.
    """

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_timeout, (str(self), self.timeout))


def _rebuild_timeout(message: str, timeout: float) -> TaskTimeout:
    return TaskTimeout(message, timeout=timeout)


class WorkerCrashed(PlaitError):
    """A worker process died (exit code or signal) while it was running the item."""

    def __init__(self, message: str, *, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode


class RemoteError(PlaitError):
    """An exception raised in a worker whose class could not be sent back or rebuilt here."""

    def __init__(self, type_name: str, message: str, traceback: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback

    def __reduce__(self) -> tuple[type[RemoteError], tuple[str, str, str]]:
        return (RemoteError, (self.type_name, self.message, self.traceback))


class PoolClosed(PlaitError, RuntimeError):
    """Work was submitted to a pool after ``shutdown()``."""


class RemoteTraceback(Exception):
    """Carries a worker's formatted traceback; it is attached as ``__cause__``."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb
