"""A plain function that returned a coroutine: its item fails with a TypeError that says how
to make plait await it.

plait decides before the first call whether a function is async (``_validate.is_async``), and
runs a plain one where nothing awaits what it returns. A ``lambda x: fetch(x)`` over an
``async def fetch`` would hand out coroutine objects that never run, with Python's only word
a "coroutine ... was never awaited" RuntimeWarning at some later garbage collection. Running
them instead (a new event loop per item, in a worker thread or process) would not be what an
async function gets from plait: its coroutines, side by side on one loop. So, as Trio's
``to_thread.run_sync`` does, the coroutine is closed (never run, no warning) and the item
fails; ``errors="return"`` hands out that error in its place, as any item's.

What is looked at: the first value of each batch (the first of an item that did not fail), and,
if that is a coroutine, every value of the batch (``refuse_coroutines``); a batch that
``backend="auto"`` runs lazily inline looks at its first value and at the first after each
failure (``_lazy``). A look at every value, even one pass in C, cost a tiny item 40 % of its
time (15 ns beside ``x * 2``'s 39). A wrapper of an async function returns a coroutine for every
item, and each fails; a function that returns one for a few items only may hand those out, as
the builtin ``map`` would.
"""

from __future__ import annotations

import types
from typing import Any


def refuse_coroutines(fn: Any, values: list[Any], errors: dict[int, BaseException]) -> None:
    """If the batch's first value (of an item that did not fail) is a coroutine, make each
    coroutine among its ``values`` its item's error."""
    first = 0
    while first in errors:  # (an item's error is in its value's place)
        first += 1
    if first >= len(values) or type(values[first]) is not types.CoroutineType:
        return
    for offset, value in enumerate(values):
        if type(value) is types.CoroutineType:
            values[offset] = None
            errors[offset] = not_awaited(fn, value)


def plain(value: Any, fn: Any) -> Any:
    """``value``, the result of one call of the plain function ``fn``; raises if it is a
    coroutine."""
    if type(value) is types.CoroutineType:
        raise not_awaited(fn, value)
    return value


def not_awaited(fn: Any, coroutine: types.CoroutineType[Any, Any, Any]) -> TypeError:
    """The error of an item whose plain function ``fn`` returned ``coroutine``, which is
    closed: it never runs, and Python does not warn that it was never awaited."""
    coroutine.close()
    return TypeError(
        f"{_name(fn)} returned a coroutine (of {coroutine.__qualname__}) but is not an async "
        "function: plait ran it as a plain one, and nothing awaits what it returns (the "
        "coroutine was closed, never run). Give plait the async function itself or a "
        "functools.partial of it, or make the wrapper an `async def` that awaits the call "
        "(on Python 3.12+, inspect.markcoroutinefunction(fn) also says that fn is async)"
    )


def _name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None)
    return name if type(name) is str else f"the {type(fn).__qualname__} object"
