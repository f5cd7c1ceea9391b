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

import enum


def note(exc: BaseException, text: str) -> None:
    """``exc.add_note(text)``, unless the exception will not take it: its ``__notes__`` is not
    a list (a tuple, set by its own code), or its class forbids new attributes. The user's
    exception, noted or not, is what matters: it is never lost to plait's note."""
    try:
        exc.add_note(text)
    except Exception:
        pass


class PlaitError(Exception):
    """Base class of the errors plait itself reports."""


class CancelReason(enum.Enum):
    """Why work was told to stop: the ``reason`` of a ``plait.Cancelled``."""

    CANCELLED = "it was cancelled"  # TaskHandle.cancel(), TaskGroup.cancel()
    SIBLING_FAILED = "another task of its group failed"
    BLOCK_FAILED = "the body of its group's `with` block raised"
    DEADLINE = "its group's timeout passed"
    ABANDONED = "its map was closed or abandoned before it finished"
    SHUT_DOWN = "its pool was shut down before it started"
    TERMINATED = "its pool was terminated while it ran"
    TIMED_OUT = "it ran past its task_timeout"
    INTERRUPTED = "the program was interrupted (Ctrl-C)"


class Cancelled(BaseException):
    """Work was told to stop; ``reason`` (a ``plait.CancelReason``) says why.

    Raised by ``plait.checkpoint()`` and ``plait.sleep()`` in a task told to stop, by a
    ``TaskHandle`` of a cancelled task, and in the place of map items that a shutdown dropped or
    a terminate interrupted. It derives from BaseException, like KeyboardInterrupt, so that a
    task's ``except Exception`` cannot swallow it. (A ``Pool.submit`` future keeps the Executor
    contract instead: cancelled, it raises ``concurrent.futures.CancelledError``.)
    """

    def __init__(self, reason: CancelReason = CancelReason.CANCELLED, what: str = "the task"):
        super().__init__(f"plait: {what} was told to stop: {reason.value}")
        self.reason = reason
        self.what = what

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reason, self.what))


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
