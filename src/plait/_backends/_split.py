"""A batch whose items wait: the rest of it goes to other threads.

The items of a batch run one after another on one thread. Items that wait for each other (one
waits at a ``Barrier``, or for an ``Event`` that a later item sets) wait for good once they
land in one batch: the item they wait for is behind them, on the same thread. So a batch that
has run ``SPLIT_AFTER`` seconds while its map's consumer waits for results gives the items it
has not started to another thread (``ThreadBackend.watch``), as a batch of their own, which may
be split again. That also spreads a batch of items that turned slow over the threads that idle
beside it. Its results come back as one batch: those the first thread ran, then the rest's.

    thread A: batch [0 1 2 3 4 5], runs 0 ... 1 (waits)
    consumer (waiting, looks): takes [2 3 4 5] from the batch's iterator, in one step
    thread B: [2 3 4 5]                         thread A: 1 ends, finds none left
    both ended: one outcome, [0 1] + [2 3 4 5], handed to the batch's owner

Only a batch's items not yet started move, taken from the iterator its thread runs them from
in one call that runs no Python code (a list's iterator): no item runs twice, none is lost.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .._task import Outcome, Task

SPLIT_AFTER = 0.1  # seconds a batch runs while its consumer waits, before its rest moves

# The iterators whose rest ``list()`` takes in one step, running no Python code: no other
# thread runs meanwhile, and the batch's thread finds them ended after its present item.
_STEALABLE: frozenset[type] = frozenset(map(type, (iter([]), iter(()))))


class Tail:
    """The items of a running batch not yet started: what another thread may take."""

    __slots__ = ("since", "source")

    def __init__(self, items: Any) -> None:
        self.source: Iterator[Any] = iter(items)
        self.since = time.perf_counter()

    @classmethod
    def of(cls, task: Task) -> Tail | None:
        """The tail of ``task``, if it may be split: untimed (a timed task holds one item), of
        more than one item, in a list or a tuple."""
        if task.timeout is not None or len(task.items) < 2:
            return None
        tail = cls(task.items)
        return tail if type(tail.source) in _STEALABLE else None

    def due(self, now: float) -> bool:
        return now - self.since >= SPLIT_AFTER

    def split(self, task: Task, submit: Callable[[Task], None]) -> None:
        """Send the items of ``task`` not yet started to run (``submit``) as a batch of their
        own; the two outcomes reach the task's owner as one."""
        halves = _Halves(task, task.finish)
        # (First: the batch's thread, if it ends meanwhile, must find the joined finish; one
        # that read the old one already took the whole batch, and leaves nothing to take.)
        task.finish = halves.first
        rest = list(self.source)  # (one step: see _STEALABLE)
        self.since = math.inf  # (nothing left to split)
        halves.stolen(len(rest))
        if not rest:
            return
        moved = Task(
            task.job,
            rest,
            start=lambda: True,  # (it must end, one way or another: its batch waits for it)
            finish=halves.second,
            discard=lambda moved: halves.second(moved, _not_run(len(rest))),
            token=task.token,
            attempt=task.attempt,
            seq=task.seq,
            first_index=task.first_index + len(task.items) - len(rest),
            owner_loads=task.owner_loads,
        )
        try:
            submit(moved)
        except Exception as exc:  # (PoolClosed: shut down meanwhile)
            from .._task import failed

            halves.second(moved, failed(len(rest), exc, ran=False, owner_loads=task.owner_loads))


class _Halves:
    """The outcomes of a split batch's two parts, joined once both ended (or the first, if
    nothing was left to move)."""

    def __init__(self, task: Task, finish: Callable[[Task, Outcome], None]) -> None:
        self._task = task
        self._finish = finish
        self._lock = threading.Lock()
        self._first: Outcome | None = None
        self._second: Outcome | None = None
        self._moved: bool | None = None  # unknown until the rest was taken

    def first(self, task: Task, outcome: Outcome) -> None:
        self._learn("_first", outcome)

    def second(self, moved: Task, outcome: Outcome) -> None:
        self._learn("_second", outcome)

    def stolen(self, count: int) -> None:
        self._learn("_moved", count > 0)

    def _learn(self, part: str, value: object) -> None:
        """One part is known: the batch's owner gets the joined outcome once all are."""
        with self._lock:
            setattr(self, part, value)
            joined = self._joined()
        if joined is not None:
            self._finish(self._task, joined)

    def _joined(self) -> Outcome | None:
        """The batch's outcome, once every part of it ended (holding the lock), once."""
        first, second = self._first, self._second
        if first is None or self._moved is None or (self._moved and second is None):
            return None
        self._first = None  # (joined once)
        if second is None:
            return first
        first.load()
        second.load()
        shift = len(first.values)
        errors = {**first.errors, **{shift + at: e for at, e in second.errors.items()}}
        joined = Outcome(
            first.values + second.values,
            errors,
            first.elapsed + second.elapsed,
            measured=False,  # (two runs, not one: nothing for the batch sizer to learn)
            ran=first.ran,
            began=first.began,
        )
        joined.retries = first.retries + second.retries
        joined.where = first.where
        return joined


def _not_run(count: int) -> Outcome:
    from .._errors import Cancelled, CancelReason
    from .._task import failed

    return failed(count, Cancelled(CancelReason.SHUT_DOWN, "the item"), ran=False)
