"""A batch whose worker process died, run again one item at a time (and one whose items the
worker could not unpickle: ``read_again``).

A worker that dies (``os._exit``, a segfault, SIGKILL, the OOM killer) takes the results of its
running batch with it, and the parent cannot tell which item was running. Rather than fail the
whole batch, or pay on every item to note progress, the backend runs the batch's items again,
each as a batch of its own: an item that kills its worker again fails alone with
``WorkerCrashed``; every other item gets its result. The price falls on the crash only: the
items that finished before it, and the item that crashed, run twice. (Dask reschedules the
tasks of a dead worker the same way and blames a task only when it kills workers again.)

The owner still hears back once, for the whole batch, with every item in its place.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from ... import _trace
from ..._task import Outcome, Task


def run_again(
    running: Task,
    *,
    crashed: bool,
    make_error: Callable[[], BaseException],
    where: tuple[str, str] | None = None,
    began: float = 0.0,
) -> list[Task] | None:
    """What to run again of the task a lost worker was running: after a crash, a batch of
    several items, item by item (which item did it?); else the task itself, if its retry
    policy covers ``make_error()``; or nothing (None): the task fails with that error.
    ``where`` the lost worker was, and since when (``perf_counter()``) it ran the task, if
    known, are for a trace."""
    if crashed and len(running.items) > 1 and (items := _loaded(running)) is not None:
        return ItemByItem(running, where, began, make_error).parts(items)
    retry = running.job.retry
    if retry is not None and retry.applies(make_error(), running.attempt):
        running.attempt += 1
        return [running]
    return None


def read_again(running: Task) -> list[Task] | None:
    """What to run again of a batch whose items its worker could not unpickle:
    none of them ran, and the pickle of the batch does not say which item failed to load. So
    a batch of several items is run again item by item (none runs twice): the item that
    cannot be rebuilt fails alone, with its own error, as one that will not pickle does. None:
    the batch fails whole (a single item; or its items cannot even be loaded here)."""
    if len(running.items) > 1 and (items := _loaded(running)) is not None:
        return ItemByItem(running).parts(items)
    return None


def _loaded(task: Task) -> list[Any] | None:
    """The task's items, to send one by one; None if they cannot be: kept as the pickle they
    were sent as (``SentItems``), they are loaded here, and loading runs their own code
    (``__setstate__``, what a ``__reduce__`` named), which may raise anything. Then the batch
    fails whole, as a batch of one item would. (Escaping, the error ended the dispatcher's
    thread, and the map waited for good.)"""
    try:
        return list(task.items)
    except BaseException:
        return None


class ItemByItem:
    """Collects the one-item runs of a crashed batch into one outcome for its owner."""

    def __init__(
        self,
        task: Task,
        where: tuple[str, str] | None = None,
        began: float = 0.0,
        make_error: Callable[[], BaseException] | None = None,
    ) -> None:
        self._task = task
        # For a trace (the task records one): the run that died, then each item's.
        self._runs: list[tuple[Task, Outcome]] | None = None
        if task.queued:
            # (Since when it ran, if known; else a mark at the moment its worker was lost.)
            now = _trace.clock()
            died = Outcome([], measured=False, began=began or now, elapsed=now - (began or now))
            died.where = where
            if make_error is not None:
                died.errors[0] = make_error()
            self._runs = [(task, died)]
        self._values: list[Any] = [None] * len(task.items)
        self._errors: dict[int, BaseException] = {}
        self._left = len(task.items)
        self._elapsed = 0.0
        self._sent_bytes = 0
        self._measured = False

    def parts(self, items: list[Any]) -> list[Task]:
        """One task per item of ``items`` (the task's), each telling this collector when it
        ends."""
        task = self._task
        parts = [
            Task(
                task.job,
                [item],
                start=_always,
                finish=partial(self._part_finished, offset),
                timeout=task.timeout,
                token=task.token,
                attempt=task.attempt,
                seq=task.seq,
                first_index=task.first_index + offset,
            )
            for offset, item in enumerate(items)
        ]
        if self._runs is not None:
            queued = _trace.clock()
            for part in parts:
                part.queued = queued
        return parts

    def _part_finished(self, offset: int, part: Task, outcome: Outcome) -> None:
        self._values[offset] = outcome.values[0]
        if 0 in outcome.errors:
            self._errors[offset] = outcome.errors[0]
        self._elapsed += outcome.elapsed
        self._sent_bytes += outcome.sent_bytes
        self._measured |= outcome.measured
        if self._runs is not None:
            self._runs.append((part, outcome))
        self._left -= 1
        if self._left == 0:
            # The items' own times: what the batch costs when nothing crashes.
            whole = Outcome(
                self._values, self._errors, self._elapsed, self._sent_bytes, self._measured
            )
            whole.runs = self._runs
            self._task.finish(self._task, whole)


def _always() -> bool:
    return True  # the batch had started: its owner already agreed to run it
