"""What travels from the scheduler to a backend: a Job (the function) and Tasks (batches of items).

A leaf module, backend-neutral: the thread backend runs tasks in place, the process backend ships
them (how is its own business), and a worker process runs them with the same ``execute``
function, so a batch behaves alike everywhere.
"""

from __future__ import annotations

import copy
import enum
import gc
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import CoroutineType
from typing import Any, TypeVar

from . import _waits
from ._cancel import CancelToken, cancelled
from ._cpu_wait import waited_for_cpu
from ._errors import note
from ._not_awaited import not_awaited, refuse_coroutines
from ._retry import Retry

E = TypeVar("E", bound=BaseException)


class Kind(enum.IntEnum):
    """How the function is called on each item of a batch."""

    MAP = 0  # fn(item)
    STAR = 1  # fn(*item): plait.map over several iterables
    CALL = 2  # fn(*args, **kwargs), item == (args, kwargs): Pool.submit


_job_ids = itertools.count()

THIS_PROCESS = "this process"  # where batches run that run here (``Outcome.where``)
EVENT_LOOP = "event loop"  # ... the row of those that run as coroutines, side by side


def _nothing() -> None:
    pass


class Job:
    """A function and how to call it. A process worker receives it once, not once per item.

    A Job can be weakly referred to: a backend keeps what it makes of one (a pickled function)
    in a weak dictionary, so that it goes with the job."""

    __slots__ = (
        "__weakref__",
        "fn",
        "id",
        "kind",
        "measure",
        "needs_worker",
        "replanned",
        "retry",
        "threads_only",
        "total",
        "trace_name",
    )

    def __init__(self, fn: Callable[..., Any], kind: Kind, retry: Retry | None = None) -> None:
        self.fn = fn
        self.kind = kind
        self.retry = retry
        self.id = next(_job_ids)
        self.measure = False  # its batches also take their thread's CPU time (backend="auto")
        self.threads_only = False  # backend="auto" keeps it on threads (a rate shared by all)
        # backend="auto" never runs it inline: its map has a timeout, which the consumer could
        # not keep while it ran an item itself
        self.needs_worker = False
        # Called by backend="auto" when it chose where the job runs, or changed how wide: the
        # map's consumer, if it waits, wakes to send more (a wider plan has room for more).
        self.replanned: Callable[[], None] = _nothing
        self.total: int | None = None  # the map's items, when its input's length is known
        self.trace_name: str | None = None  # the function's name, once a trace asked (_trace)


@dataclass(slots=True)
class Outcome:
    """The result of one batch: a value per item, and the exceptions of the items that failed.

    ``values[i]`` is a placeholder (None) where ``i in errors``. ``elapsed`` is the time the
    worker spent running the batch and ``sent_bytes`` the size of the items as they were sent
    to a process (0 for threads): the chunk sizer learns from both, unless the batch never ran
    to its end (it crashed, was dropped or cancelled: ``measured`` is False).
    """

    values: list[Any]
    errors: dict[int, BaseException] = field(default_factory=dict)
    elapsed: float = 0.0
    sent_bytes: int = 0
    measured: bool = True  # False: the batch did not run to its end, its time says nothing
    ran: bool = True  # False: its items never ran (the errors say why), they did not raise
    # Values still packed (a process backend's, for a task whose owner loads them): ``load``
    # unpacks them into ``values`` and ``errors``, in the owner's thread rather than the
    # backend's, and only when they are about to be handed out.
    packed: Callable[[], tuple[list[Any], dict[int, BaseException]]] | None = None
    began: float = 0.0  # perf_counter() when the batch started
    cpu: float = 0.0  # its thread's CPU seconds, if the job asked (``Job.measure``)
    # ... and the seconds its thread was ready to run but no core ran it (a busy machine)
    waited_for_cpu: float = 0.0
    # ... and whether a full garbage collection ran meanwhile (milliseconds, in a large heap,
    # that are the program's rather than the work's)
    collected: bool = False
    # Where it ran, for a trace (``_trace``): a place ("this process", "worker process 123",
    # a cluster's worker) and which of its workers (a thread's name); None: not said.
    where: tuple[str, str] | None = None
    # How many more attempts its items were given (``retries=``), for a trace: a batch whose
    # items failed and then succeeded shows no error, and must still show what it cost.
    retries: int = 0
    # For a trace, the runs behind an outcome that was not one run (a batch whose worker died,
    # then its items one by one, see ``_rerun``): each run's task and outcome, the first the
    # batch's own run that died.
    runs: list[tuple[Task, Outcome]] | None = None
    # The offsets of the items a process backend could not send, because they would not
    # pickle (their errors say so; they never ran): ``backend="auto"``, which chose processes
    # on a sample of the items, runs these on threads instead.
    unsent: tuple[int, ...] = ()

    def load(self) -> None:
        """Unpack the values, if still packed (see ``packed``); idempotent."""
        if self.packed is not None:
            self.values, self.errors = self.packed()
            self.packed = None


def _waited(outcome: Outcome, before: float) -> float:
    """How long the batch's thread waited for a core while it ran: never more than the time it
    did not run, and not read at all when that was next to nothing (a tiny batch saves the
    reading). (The reading at its start let go of the GIL: a wait for it there may be counted,
    up to that bound.)"""
    off_cpu = outcome.elapsed - outcome.cpu
    if off_cpu < OFF_CPU_WORTH_READING:
        return 0.0
    return max(0.0, min(waited_for_cpu() - before, off_cpu))


OFF_CPU_WORTH_READING = 5e-5


def failed(
    size: int,
    error: BaseException | Callable[[], BaseException],
    *,
    ran: bool = True,
    owner_loads: bool = False,
) -> Outcome:
    """The outcome of a batch of ``size`` items that all failed with ``error``.

    Each item gets its own exception object (from the factory, or a copy of the instance), so
    the notes added per item (which item it was) never pile up on one shared object. For a
    task whose owner loads its outcomes (``Task.owner_loads``) they are made only when it
    does: the batches of an abandoned map fail by the thousand items, and nobody reads them.
    """
    if owner_loads:
        return Outcome([], measured=False, ran=ran, packed=partial(_each_failed, size, error))
    values, errors = _each_failed(size, error)
    return Outcome(values, errors, measured=False, ran=ran)


def failed_packed(outcome: Outcome) -> tuple[str, int] | None:
    """For an outcome of ``failed`` whose exceptions are not made yet (its owner makes them):
    their type's name and how many items, without making them all (a trace reads this)."""
    packed = outcome.packed
    if not (isinstance(packed, partial) and packed.func is _each_failed):
        return None
    size, error = packed.args
    if isinstance(error, BaseException):
        return type(error).__name__, size
    if isinstance(error, partial) and isinstance(error.func, type):
        return error.func.__name__, size
    if isinstance(error, type):
        return error.__name__, size
    return type(error()).__name__, size  # (a factory: one made, to see what it makes)


def _each_failed(
    size: int, error: BaseException | Callable[[], BaseException]
) -> tuple[list[Any], dict[int, BaseException]]:
    if isinstance(error, BaseException):  # it may be shared further (a worker's init error)
        errors = {offset: copy_error(error) for offset in range(size)}
    else:
        errors = {offset: error() for offset in range(size)}
    return [None] * size, errors


def copy_error(exc: BaseException) -> BaseException:
    """A new exception object like ``exc``: same type, arguments, cause and traceback; notes of
    its own. An exception that cannot be copied is shared rather than lost."""
    try:
        clone = copy.copy(exc)
    except Exception:
        return exc
    if type(clone) is not type(exc):
        return exc
    # A reducer registered for exceptions (tblib's, which importing Dask's distributed
    # installs) may hand the copy the original's very __dict__: then every note added to one
    # would show on the other.
    if getattr(clone, "__dict__", None) is getattr(exc, "__dict__", None) is not None:
        try:
            clone.__dict__ = dict(exc.__dict__)
        except (AttributeError, TypeError):
            return exc
    if hasattr(exc, "__notes__"):
        clone.__notes__ = list(exc.__notes__)
    clone.__cause__ = exc.__cause__
    clone.__context__ = exc.__context__
    clone.__suppress_context__ = exc.__suppress_context__
    return clone.with_traceback(exc.__traceback__)


def task_error(exc: BaseException) -> BaseException:
    """What a task's exception becomes on its way out: itself, except a StopIteration.

    A StopIteration (or StopAsyncIteration) that escaped the user's function would be taken for
    "the end" by anything that iterates over results, and silently cut them short. Generators
    turn it into a RuntimeError whose cause is the original (PEP 479): so does plait.
    """
    if isinstance(exc, StopIteration | StopAsyncIteration):
        error = RuntimeError(f"the function raised {type(exc).__name__}")
        error.__cause__ = exc
        error.add_note(
            f"plait: a {type(exc).__name__} cannot leave a task as itself (it would end the "
            "iteration over the results); it is raised as this RuntimeError, as a generator "
            "does (PEP 479)"
        )
        return error
    return exc


def stop_iteration_behind(error: BaseException) -> StopIteration | StopAsyncIteration | None:
    """The StopIteration (or StopAsyncIteration) that ``task_error`` turned into ``error``, or
    None. Its RuntimeError was made, never raised: it has no traceback of its own, and is
    nothing without its cause. (A RuntimeError the user raised from a StopIteration has a
    traceback, and is no concern of plait's.)"""
    cause = error.__cause__
    made = type(error) is RuntimeError and error.__traceback__ is None
    return cause if made and isinstance(cause, StopIteration | StopAsyncIteration) else None


@dataclass(slots=True, eq=False)
class Task:
    """A batch of items for one job, with the two callbacks that tie it back to its owner.

    ``start()`` is asked just before the batch runs: False means its owner gave up on it (an
    abandoned map, a cancelled future) and the batch is skipped. ``finish(task, outcome)`` is
    called exactly once for a batch that started, from whichever thread saw it end.
    ``discard(task)`` is called instead of both when a shutdown drops the batch before it
    started. (Each callback is handed the task rather than bound to it: a task that referred to
    itself would be freed only by the cycle collector, and would hold its items until then.)
    ``timeout`` is the per-item time limit (a timed task holds one item); ``token`` tells the
    running code, through ``plait.cancelled()``, that it should stop.
    """

    job: Job
    items: Sequence[Any]  # a list, until a process backend keeps them pickled (SentItems)
    start: Callable[[], bool]
    finish: Callable[[Task, Outcome], None]
    discard: Callable[[Task], object] = lambda task: None
    timeout: float | None = None
    token: CancelToken | None = None
    attempt: int = 1  # > 1 when the batch runs again after a timeout or a crash
    seq: int = 0
    first_index: int = 0
    # The owner calls ``Outcome.load()`` before it reads the values: a backend may hand them
    # over still packed. (A map's batches; a call's owner reads its one value at once.)
    owner_loads: bool = False
    # Not to run in the thread that submits it, were its map inline: the input watcher's,
    # which sends items in hand (a thread of plait's, one for the program: ``_in_hand``).
    elsewhere: bool = False
    queued: float = 0.0  # perf_counter() when it was made, if a trace records it (``_trace``)


def call_one(fn: Callable[..., Any], item: tuple[tuple[Any, ...], dict[str, Any]]) -> Any:
    args, kwargs = item
    return fn(*args, **kwargs)


def call(fn: Callable[..., Any], kind: Kind, item: Any) -> Any:
    if kind is Kind.MAP:
        return fn(item)
    if kind is Kind.STAR:
        return fn(*item)
    return call_one(fn, item)


def retry_item(
    fn: Callable[..., Any], kind: Kind, item: Any, retry: Retry, error: BaseException
) -> tuple[Any, BaseException | None, int]:
    """More attempts at an item that raised ``error``: (value, None, attempts made) or
    (None, last error, attempts made), not counting the first."""
    attempt = 1
    while retry.applies(error, attempt) and not cancelled():
        _waits.sleep(retry.delay(attempt))  # (Retry(backoff=1e10, max_backoff=1e10) is legal)
        attempt += 1
        try:
            value = call(fn, kind, item)
        except BaseException as exc:
            error = task_error(exc)
            continue
        if type(value) is CoroutineType:  # (see _not_awaited; a retry cannot make it async)
            return None, note_attempts(not_awaited(fn, value), attempt), attempt - 1
        return value, None, attempt - 1
    return None, note_attempts(error, attempt), attempt - 1


def note_attempts(error: E, attempts: int) -> E:
    """``error``, the last of an item's ``attempts``, noted with their number if more than one
    (every backend's retries, of errors, timeouts and crashes alike, say it so)."""
    if attempts > 1:
        note(error, f"plait: the item failed {attempts} times; this is the last error")
    return error


def execute(
    fn: Callable[..., Any],
    kind: Kind,
    items: Sequence[Any],
    retry: Retry | None = None,
    *,
    measure: bool = False,
    remaining: Iterator[Any] | None = None,
) -> Outcome:
    """Run ``fn`` over ``items``; a failing item records its exception and the batch goes on.
    ``remaining``: the iterator over ``items`` to run them from, one another thread may take
    the rest of (``_backends._split``): then the outcome holds the items run here only.

    The happy path is a plain ``for`` loop with a bound ``append``: as fast as
    ``list.extend(map(...))`` for Python functions, and unlike ``map`` it lets a StopIteration
    raised by ``fn`` through as an exception instead of taking it for the end of the batch. A
    failure resumes the same iterator after the failing item. Exceptions the retry policy covers
    get their further attempts right here, in the worker. ``measure`` also takes the thread's
    CPU time (a system call at each end: only while ``backend="auto"`` probes).
    """
    # (The wait for a core first: reading it lets go of the GIL, the CPU clock does not.)
    waited, cpu = (waited_for_cpu(), time.thread_time()) if measure else (0.0, 0.0)
    full_collections = gc.get_stats()[2]["collections"] if measure else 0
    started = time.perf_counter()
    values: list[Any] = []
    append = values.append
    errors: dict[int, BaseException] = {}
    retries = 0
    if remaining is None:
        remaining = iter(items)
    while True:
        try:
            if kind is Kind.MAP:
                for item in remaining:
                    append(fn(item))
            elif kind is Kind.STAR:
                for item in remaining:
                    append(fn(*item))
            else:
                for args, kwargs in remaining:
                    append(fn(*args, **kwargs))
        except BaseException as exc:
            offset = len(values)
            exc = task_error(exc)
            value, error, attempts = (
                (None, exc, 0) if retry is None else retry_item(fn, kind, items[offset], retry, exc)
            )
            retries += attempts
            append(value)
            if error is not None:
                errors[offset] = error
        else:
            # (Read before anything of plait's: a probe's batch of one item is mostly the time
            # it takes, and says the work is tiny only if it is not counted.)
            elapsed = time.perf_counter() - started
            refuse_coroutines(fn, values, errors)  # (a plain function's: see _not_awaited)
            outcome = Outcome(values, errors, elapsed, began=started)
            outcome.retries = retries
            if measure:
                outcome.cpu = time.thread_time() - cpu
                outcome.waited_for_cpu = _waited(outcome, waited)
                outcome.collected = gc.get_stats()[2]["collections"] != full_collections
            return outcome
