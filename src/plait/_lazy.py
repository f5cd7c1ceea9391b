"""A batch run lazily in the consumer's thread: each item runs as its result is taken.

When ``backend="auto"`` runs a map inline (its items take a microsecond or less), running a
batch first and handing its values out after costs a second pass over them: half as much
again as the builtin ``map``. Run lazily, the batch is a generator that calls the function as
the consumer asks for the next result, and hands out the value it returned, held by nobody
else: a generator's resumption an item more than the builtin ``map`` (1.15-1.2x its time per
item on Python 3.11, about 1.0x on 3.13), with every promise of an inline batch kept:

- a failing item's exception is the same: ``retries=`` first, a StopIteration made a
  RuntimeError, a note naming the item, then raised (the map ends) or handed out in place
  (any BaseException, a GeneratorExit too, unless it is the consumer closing the generator);
- ``plait.worker_state()`` and ``plait.cancelled()`` inside the function are the inline
  worker's and the map's, while between two items the consumer's own code sees its own
  (``_standin``);
- Ctrl-C inside an item (or its retry) ends the map, as it would any loop the consumer runs;
- ``close()``, from any thread, even from inside an item, ends it before its next item.

What it cannot do is measure the function alone: its time includes the consumer's. The
scheduler hands the batch's time to ``ended``; a batch that took long enough that the function
may have become slow is followed by one run at once, which ``backend="auto"`` measures. Nor
does it look at every value for a coroutine that the plain function returned (``_not_awaited``):
only at the first, and at the first after each failure.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Generator, Iterator
from operator import length_hint
from typing import Any

from . import _standin
from ._not_awaited import plain
from ._task import Kind, Task, call

Failed = Callable[[Task, int, BaseException], Iterator[Any]]


class LazyBatch:
    """A task run lazily: ``results`` hands out its values; ``stop()``, from any thread (even
    while an item runs), makes it end before its next item."""

    def __init__(
        self,
        task: Task,
        state: Callable[[], dict[str, Any]],
        *,
        failed: Failed,
        ended: Callable[[Task, float], None],
        interrupted: Callable[[int], None],
    ) -> None:
        """``state()`` is the worker state of the thread an item runs in (a map may be handed
        to another thread between two items). ``failed(task, offset, error)`` gives what takes
        the failed item's place (or raises:
        then, as after any BaseException, ``interrupted(taken)`` ends the map, told how many
        results were taken); ``ended(task, seconds)`` is told once the last was taken."""
        self._remaining = iter(task.items)
        self.results: Iterator[Any] = _run(
            task,
            self._remaining,
            _standin.StandIn(None, task.token, of_thread=state),
            failed,
            ended,
            interrupted,
        )

    def stop(self) -> None:
        for _ in self._remaining:  # (a list's iterator: each step is atomic)
            pass


def _run(
    task: Task,
    remaining: Iterator[Any],
    standin: _standin.StandIn,
    failed: Failed,
    ended: Callable[[Task, float], None],
    interrupted: Callable[[int], None],
) -> Generator[Any, None, None]:
    job = task.job
    fn, kind, items = job.fn, job.kind, task.items
    here = id(sys._getframe())  # (not the frame itself: see _standin.enter)
    _standin.enter(here, standin)  # (this frame's items stand in for the worker: _standin)
    began = time.perf_counter()
    try:
        while True:
            failure: BaseException | None = None
            # (``yield fn(item)``: no variable of ours holds a value after it is taken.)
            try:
                # The first value, and the first after a failure, is looked at: a plain function
                # that returns coroutines fails there (``_not_awaited``), and again at the next.
                # (Looking at every value would add half again to a tiny item's time here.)
                for item in remaining:
                    yield plain(call(fn, kind, item), fn)
                    break
                if kind is Kind.MAP:
                    for item in remaining:
                        yield fn(item)
                elif kind is Kind.STAR:
                    for item in remaining:
                        yield fn(*item)
                else:
                    for args, kwargs in remaining:
                        yield fn(*args, **kwargs)
            except GeneratorExit as exc:
                # The consumer closed us at a yield: thrown in here, its traceback is this
                # frame's alone. One an item raised has the item's frames after ours: it is
                # that item's failure, as any other.
                if exc.__traceback__ is None or exc.__traceback__.tb_next is None:
                    raise
                failure = exc
            # (Any other BaseException is its item's, as on a worker: its note, then in its
            # place, or raised; Ctrl-C and SystemExit end the map in their item's place.)
            except BaseException as exc:
                failure = exc
            if failure is None:
                break
            offset = len(items) - length_hint(remaining) - 1
            yield from failed(task, offset, failure)
            del failure
    except BaseException:
        # Ctrl-C or SystemExit from an item, an error raised (errors="raise"), or the consumer
        # closing us (GeneratorExit at a yield; the map is closing anyway): the map ends.
        interrupted(len(items) - length_hint(remaining))
        raise
    finally:
        _standin.leave(here)
    ended(task, time.perf_counter() - began)
