"""A batch run lazily in the consumer's thread: each item runs as its result is taken.

When ``backend="auto"`` runs a map inline (its items take a microsecond or less), running a
batch first and handing its values out after costs a second pass over them: half as much
again as the builtin ``map``. Run lazily, the batch is a generator that calls the function as
the consumer asks for the next result, and hands out the value it returned, held by nobody
else: as cheap per item as the builtin ``map``, which it otherwise matches, with every promise
of an inline batch kept:

- a failing item's exception is the same: ``retries=`` first, a StopIteration made a
  RuntimeError, a note naming the item, then raised (the map ends) or handed out in place;
- ``plait.worker_state()`` and ``plait.cancelled()`` inside the function are the inline
  worker's and the map's, while between two items the consumer's own code sees its own
  (``_standin``);
- Ctrl-C inside an item ends the map, as it would any loop the consumer runs.

What it cannot do is measure the function alone: its time includes the consumer's. The
scheduler hands the batch's time to ``ended``; a batch that took long enough that the function
may have become slow is followed by one run at once, which ``backend="auto"`` measures.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Generator, Iterator
from operator import length_hint
from types import GeneratorType
from typing import Any, cast

from . import _standin
from ._task import Kind, Task

Failed = Callable[[Task, int, Exception], Iterator[Any]]


def run_lazily(
    task: Task,
    state: dict[str, Any],
    *,
    failed: Failed,
    ended: Callable[[Task, float], None],
    interrupted: Callable[[], None],
) -> Iterator[Any]:
    """The task's results, each item run as its result is taken. ``failed(task, offset,
    error)`` gives what stands in the failed item's place (or raises: then, as after any
    BaseException but the generator's own closing, ``interrupted()`` ends the map);
    ``ended(task, seconds)`` is told once the last result was taken."""
    holder: list[_standin.StandIn] = []
    generator = _run(task, holder, failed, ended, interrupted)
    running = weakref.ref(cast("GeneratorType[Any, None, None]", generator))  # (it is one)
    holder.append(_standin.StandIn(state, task.token, running))
    return generator


def _run(
    task: Task,
    holder: list[_standin.StandIn],
    failed: Failed,
    ended: Callable[[Task, float], None],
    interrupted: Callable[[], None],
) -> Generator[Any, None, None]:
    job = task.job
    fn, kind, items = job.fn, job.kind, task.items
    remaining = iter(items)
    entry = holder.pop()
    listed = _standin.enter(entry)
    began = time.perf_counter()
    try:
        while True:
            failure: Exception | None = None
            # (``yield fn(item)``: no variable of ours holds a value after it is taken.)
            try:
                if kind is Kind.MAP:
                    for item in remaining:
                        yield fn(item)
                elif kind is Kind.STAR:
                    for item in remaining:
                        yield fn(*item)
                else:
                    for args, kwargs in remaining:
                        yield fn(*args, **kwargs)
            except Exception as exc:  # (not GeneratorExit: the consumer closed us at a yield)
                failure = exc
            if failure is None:
                break
            offset = len(items) - length_hint(remaining) - 1
            yield from failed(task, offset, failure)
            del failure
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            interrupted()
        raise
    finally:
        _standin.leave(entry, listed)
    ended(task, time.perf_counter() - began)
