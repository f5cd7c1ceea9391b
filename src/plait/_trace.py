"""``plait.trace``: what each worker did, batch by batch, on every backend.

plait knows every batch it sends, so a trace costs one record per batch (never per item):
where the batch ran (``Outcome.where``, set by each backend), when, how long, its items and
how it ended. The records become Chrome/Perfetto trace events (``.json``), a timeline page
(``.html``, ``_timeline``) and a summary a person reads (``_trace_out``). Off, it costs a
look at one empty list per batch (``active``).

Times are this process's ``perf_counter``: a batch that ran here (threads, inline, async)
gives its own start; one that ran elsewhere (a worker process, a cluster) is placed by when
its answer arrived, less the time the worker says it took. So every host is on one clock,
this one's, to within a message's trip.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ._task import EVENT_LOOP, THIS_PROCESS, Outcome, Task, failed_packed

# The row of batches that no one worker is known to have run: never run, or lost with a cluster
# worker that is not named.
NO_WORKER = "plait: no worker known"

# The traces open now: the scheduler and the engine look here as each batch is made.
active: list[Trace] = []
_active_lock = threading.Lock()
_appends: tuple[Callable[[Raw], None], ...] = ()  # each open trace's record keeper, at hand
clock = time.perf_counter


class OpenMap(Protocol):
    def close_at_exit(self) -> None: ...


# The maps still open whose own trace (``trace=``) is to be written as they end: closed as the
# program exits (``write_at_exit``). Weakly held: a map dropped was closed, and written, then.
_unwritten: weakref.WeakSet[OpenMap] = weakref.WeakSet()
_exit_hook = False  # whether ``_close_at_exit`` is registered (with the first such map)


@dataclass(slots=True)
class Batch:
    """One batch, as the trace keeps it."""

    function: str
    backend: str  # the backend it was given to ("auto" before it chose)
    group: str  # where it ran: "this process", "worker process 123", "Dask worker ..."
    row: str  # ... and which of that place's workers: a thread's name, "worker"
    queued: float  # perf_counter(): when it was made (then it waited for a worker)
    start: float
    elapsed: float
    items: int
    first: int  # the index of its first item in its map (a call: 0)
    attempt: int
    call: bool  # a submitted call (Pool.submit, TaskGroup), not a map's batch
    errors: dict[str, int]  # exception type name -> how many of its items raised it
    ran: bool  # False: its items never ran (dropped, cancelled, a dead worker's queue)
    # True: its worker died while it ran, and its items ran again one by one (each its own
    # batch, counted there, not here)
    again: bool = False
    retries: int = 0  # more attempts its items were given (``retries=``), within its time


# What a trace keeps of a batch as it ends: a tuple, made in a few hundred nanoseconds (a Batch
# is made of it when the trace is read): (function's name, backend, where, queued, began, elapsed,
# arrived, items, first, attempt, call, errors, ran, again, retries).
Raw = tuple[
    str,
    str,
    "tuple[str, str] | None",
    float,
    float,
    float,
    float,
    int,
    int,
    int,
    bool,
    "dict[str, int] | None",
    bool,
    bool,
    int,
]


def keep(
    task: Task, outcome: Outcome, backend: str, *, call: bool = False, also: Trace | None = None
) -> None:
    """Keep the record of ``task``, made while a trace recorded (``task.queued``), which ended
    with ``outcome``: in every open trace, and in ``also`` (a map's own trace, ``trace=``)."""
    appends = _appends
    if also is not None and also not in active:
        appends = (*appends, also._raw.append)
    try:
        job = task.job
        name = job.trace_name
        if name is None:
            name = job.trace_name = _name(job.fn)
        if outcome.runs is None:
            raw = _raw(name, backend, task, outcome, call)
            for append in appends:
                append(raw)  # (list.append: atomic)
            return
        for run in outcome.runs:  # a batch whose worker died, then its items one by one
            raw = _raw(name, backend, *run, call, again=run[0] is task)
            for append in appends:
                append(raw)
    except Exception:  # recording must never cost the run its result
        pass


def _raw(
    name: str, backend: str, task: Task, outcome: Outcome, call: bool, again: bool = False
) -> Raw:
    began = outcome.began
    return (
        name, backend, outcome.where, task.queued, began, outcome.elapsed,
        0.0 if began else clock(), len(task.items), task.first_index, task.attempt, call,
        _errors(outcome) if outcome.errors or outcome.packed else None, outcome.ran, again,
        outcome.retries,
    )  # fmt: skip


def record(task: Task, backend: str) -> None:
    """Have the open traces record ``task``, a submitted call, when it ends (a map's batches
    are kept by the map itself, see ``keep``)."""
    if not _appends:
        return
    task.queued = clock()
    finish = task.finish

    def finished(task: Task, outcome: Outcome) -> None:
        keep(task, outcome, backend, call=True)
        finish(task, outcome)

    task.finish = finished


def record_coroutine(
    fn: Any,
    first: int,
    started: float,
    outcome: Outcome,
    also: Trace | None = None,
    *,
    call: bool = False,
) -> None:
    """Have every open trace (and ``also``, as ``record`` does) record one item of
    ``plait.amap`` that ran as a coroutine on the caller's loop from ``started`` until now
    (or, ``call``, a coroutine of ``async with plait.TaskGroup()``: ``fn`` is the coroutine,
    named as its function)."""
    appends = _appends
    if also is not None and also not in active:
        appends = (*appends, also._raw.append)
    now = time.perf_counter()
    errors = _errors(outcome) if outcome.errors else None
    where = (THIS_PROCESS, EVENT_LOOP)
    raw: Raw = (_name(fn), "async", where, started, started, now - started, now, 1, first, 1, call,
                errors, True, False, outcome.retries)  # fmt: skip
    for append in appends:
        append(raw)


def _errors(outcome: Outcome) -> dict[str, int]:
    """How many of the batch's items raised each type of exception."""
    errors: dict[str, int] = {}
    for error in outcome.errors.values():
        name = type(error).__name__
        errors[name] = errors.get(name, 0) + 1
    if (packed := failed_packed(outcome)) is not None:
        errors[packed[0]] = packed[1]
    return errors


def _batch(raw: Raw) -> Batch:
    fn, backend, where, queued, began, elapsed, arrived, items, first, attempt, call = raw[:11]
    errors, ran, again, retries = raw[11:]
    start = began if began else arrived - elapsed
    group, row = where or (THIS_PROCESS, NO_WORKER)
    return Batch(
        fn,
        backend,
        group,
        row,
        min(queued, start),
        start,
        elapsed,
        items,
        first,
        attempt,
        call,
        errors or {},
        ran,
        again,
        retries,
    )


def write_at_exit(run: OpenMap) -> None:
    """Have ``run``, an open map, closed as the program exits, if it still is then, so that its
    trace is written: a map kept in a global, or aborted and never closed, is otherwise
    collected only as the interpreter is torn down, too late to write a file (or never)."""
    global _exit_hook
    with _active_lock:
        if not _exit_hook:
            # Registered now, after plait's backends registered theirs (atexit runs the last
            # first): a map is closed while its workers still run, and its own terminate
            # settles its running batches as the trace shows them.
            atexit.register(_close_at_exit)
            _exit_hook = True
        _unwritten.add(run)


def written(run: OpenMap) -> None:
    """``run``, a map, closed: nothing of it is left to do at exit."""
    _unwritten.discard(run)


def _close_at_exit() -> None:
    failures: list[Exception] = []
    for run in list(_unwritten):
        try:
            run.close_at_exit()
        except Exception as exc:  # (its folder went away: the others are still written)
            failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise ExceptionGroup("plait: traces that could not be written at exit", failures)


def _keep_appends() -> None:  # holding _active_lock
    global _appends
    _appends = tuple(trace._raw.append for trace in active)


def _name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None)
    if type(name) is str:
        return name
    name = getattr(fn, "__name__", None)
    return str(name) if name else type(fn).__name__


class Trace:
    """What ran while the trace was open: every map, pool, TaskGroup and amap, on every
    backend. ``with plait.trace("run.json") as t:`` writes the file as the block ends;
    ``t.summary()`` says in words what the workers did."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, where: str = "plait.trace"
    ) -> None:
        if path is not None:
            _check_path(path, where)
            _import_writers()
        self.path = None if path is None else Path(path)
        self._raw: list[Raw] = []  # a record per batch, as it ended (``batches`` reads them)
        self._opened = time.perf_counter()  # (again as the block begins, if it holds no batch yet)
        self._closed: float | None = None
        self._depth = 0  # how many ``with`` blocks of it are open (nested: one recording)
        # Its block ended: it is not entered again (its times are from that block's start, and
        # its summary's rate over that block's time).
        self._ended = False

    def __enter__(self) -> Trace:
        with _active_lock:
            if self._ended:
                raise RuntimeError(
                    "plait.trace: this trace's block has ended, and a trace records one block "
                    "(entered again inside it, it records once); make a new plait.trace() for "
                    "the next block, or one block that holds both"
                )
            self._depth += 1
            if self._depth > 1:  # (the same trace entered again inside its block: one record)
                return self
            if not self._raw:
                self._opened = time.perf_counter()
            # (else it keeps its earliest start: it holds the batches of a map it was given to,
            # ``trace=``, recorded before the block, whose times would be below zero)
            self._closed = None
            active.append(self)
            _keep_appends()
        return self

    def map_ended(self, error: BaseException | None = None) -> None:
        """The map whose own trace this is (``trace=``) ended: written, if it has a path.
        ``error``: what its ending raised, which goes on as itself (a trace that cannot be
        written is a note on it, as in ``__exit__``)."""
        self._closed = time.perf_counter()
        if self.path is None:
            return
        try:
            self.write(self.path)
        except Exception as exc:
            if error is None:
                raise
            error.add_note(f"plait: the trace could not be written to {self.path}: {exc!r}")

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        with _active_lock:
            self._depth -= 1
            if self._depth > 0:  # an inner block of the same trace: it goes on
                return
            self._ended = True
            self._closed = time.perf_counter()
            if self in active:
                active.remove(self)
            _keep_appends()
        if self.path is None:
            return
        try:
            self.write(self.path)
        except Exception as exc:
            if error is None:
                raise
            # The block's own exception goes on as itself: the trace's failure is a note on it.
            error.add_note(f"plait: the trace could not be written to {self.path}: {exc!r}")

    # -- reading ------------------------------------------------------------------------

    @property
    def batches(self) -> list[Batch]:
        """The batches recorded so far, by start."""
        return sorted((_batch(raw) for raw in list(self._raw)), key=lambda b: b.start)

    def _span(self, batches: list[Batch]) -> tuple[float, float]:
        end = self._closed if self._closed is not None else time.perf_counter()
        if batches:
            end = max(end, max(b.start + b.elapsed for b in batches))
        return self._opened, end

    def events(self) -> list[dict[str, Any]]:
        """The trace as Chrome/Perfetto trace events (what ``write`` puts in a .json)."""
        from ._trace_out import lay_out, trace_events

        return trace_events(lay_out(self.batches, self._opened))

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the trace to ``path``, as its extension says: ``.json``, Chrome/Perfetto
        trace events; ``.html``, the timeline, a page that needs nothing else. Its path."""
        path = Path(path)
        if _check_path(path) == ".html":
            path.write_text(self.html(), encoding="utf-8")
            return path
        import json  # (only here: a program that never writes a trace needs none)

        document = {
            "traceEvents": self.events(),
            "displayTimeUnit": "ms",
            "otherData": {"producer": "plait", "summary": self.summary()},
        }
        path.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
        return path

    def html(self) -> str:
        """The timeline: one self-contained HTML page (what ``write`` puts in a .html)."""
        from ._timeline import timeline_html
        from ._trace_out import lay_out

        batches = self.batches
        return timeline_html(lay_out(batches, self._opened), self._summary(batches))

    def _repr_html_(self) -> str:
        """Jupyter shows the timeline inline (in a frame of its own: its script and style
        stay out of the notebook's)."""
        import html

        page = html.escape(self.html(), quote=True)
        height = 220 + 18 * len({raw[2] for raw in self._raw})
        return (
            f'<iframe srcdoc="{page}" style="width: 100%; height: {min(height, 900)}px; '
            'border: 1px solid #ddd"></iframe>'
        )

    def summary(self) -> str:
        """Plain text: per worker its busy share, items and errors; the run's items per
        second, item times, queue wait, retries, timeouts, crashes, and whether the workers
        sat idle for want of input."""
        return self._summary(self.batches)

    def _summary(self, batches: list[Batch]) -> str:
        from ._trace_out import summary

        return summary(batches, *self._span(batches))

    def __repr__(self) -> str:
        return f"<plait.Trace: {len(self._raw)} batches>"


def trace(path: str | os.PathLike[str] | None = None) -> Trace:
    """Record what every map, pool, TaskGroup and amap of the program does while the ``with``
    block runs (other threads' too; not maps run inside a worker process), on every backend,
    and write it to ``path`` as the block ends: ``.json``, Chrome/Perfetto
    trace events, which ui.perfetto.dev and chrome://tracing open; ``.html``, a timeline
    that needs nothing but a browser. ``summary()`` says what the workers did."""
    return Trace(path)


def _import_writers() -> None:
    """Import what writing a trace takes, as a trace with a path is made, not as it is
    written: that may be as the program exits (``write_at_exit``), when an import can fail or
    wait on a lock that a stopped thread held. (A program that writes no trace imports none.)"""
    import json  # noqa: F401

    from . import _timeline, _trace_out  # noqa: F401


def _check_path(path: str | os.PathLike[str], where: str = "plait.trace") -> str:
    """The path's kind (".json" or ".html"), or a ValueError that says which there are."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".json", ".html"):
        raise ValueError(
            f"{where}: path must end in .json (Chrome/Perfetto trace events) or .html (a "
            f"timeline that opens in any browser), got {os.fspath(path)!r}"
        )
    # (Each checked now, not once the work is done and the trace is written.)
    folder = Path(path).parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ValueError(
            f"{where}: the trace would be written to {os.fspath(path)!r}, but "
            f"{os.fspath(folder)!r} is not a folder this program can write to; create it, "
            "or give a path in one"
        )
    if Path(path).is_dir() or (Path(path).exists() and not os.access(path, os.W_OK)):
        raise ValueError(
            f"{where}: the trace would be written to {os.fspath(path)!r}, but that is "
            f"{'a folder' if Path(path).is_dir() else 'a file this program cannot write'}; "
            "give the path of a file to write"
        )
    return suffix
