"""Argument checks shared by the public API: each error names the parameter and the fix."""

from __future__ import annotations

import functools
import inspect
import math
import types
from typing import Any

from ._backends import BACKENDS


def check_fn(fn: object, where: str) -> None:
    if not callable(fn):
        raise TypeError(
            f"{where}: fn must be callable, got {type(fn).__name__} {fn!r:.60}; "
            + _how_to_call(where)
        )


def _how_to_call(where: str) -> str:
    if where == "plait.run":  # plait.run(print, "hello"): each argument is a function to call
        return (
            "plait.run calls each of its arguments with no arguments: give them with "
            "functools.partial, e.g. plait.run(functools.partial(print, 'hello')), or use "
            "TaskGroup.submit(print, 'hello')"
        )
    if where.endswith("submit"):
        return f"pass the function first, then its arguments, e.g. {where}(print, 'hello')"
    return f"pass the function itself, e.g. {where}(str.upper, items)"


def check_workers(workers: object, where: str) -> None:
    from ._worker_spec import Workers

    if workers is None or isinstance(workers, Workers):
        return
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(
            f"{where}: workers must be an int >= 1, a plait.Workers or None, got {workers!r}"
        )
    if workers < 1:
        raise ValueError(
            f"{where}: workers must be >= 1, got {workers}; "
            "use None to let plait choose for the backend"
        )


def check_backend(backend: object, where: str) -> None:
    if backend not in BACKENDS:
        choices = ", ".join(repr(b) for b in BACKENDS)
        raise ValueError(f"{where}: unknown backend {backend!r}; choose one of {choices}")


def check_chunksize(chunksize: object, where: str) -> None:
    if chunksize is None:
        return
    if isinstance(chunksize, bool) or not isinstance(chunksize, int):
        raise TypeError(f"{where}: chunksize must be an int >= 1 or None, got {chunksize!r}")
    if chunksize < 1:
        raise ValueError(
            f"{where}: chunksize must be >= 1, got {chunksize}; "
            "use None (the default) to let plait size batches by itself"
        )


def check_choice(name: str, value: object, choices: tuple[object, ...], where: str) -> None:
    if value not in choices:
        allowed = " or ".join(repr(c) for c in choices)
        raise ValueError(f"{where}: {name} must be {allowed}, got {value!r}")


def check_timeout(timeout: object, where: str, name: str = "timeout") -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{where}: {name} must be a number of seconds or None, got {timeout!r}")
    if not math.isfinite(timeout):  # (NaN compares false to everything: it passed as no limit)
        raise ValueError(
            f"{where}: {name} must be a finite number of seconds, got {timeout}; "
            "use None for no time limit"
        )
    if timeout < 0:
        raise ValueError(f"{where}: {name} must be >= 0 seconds, got {timeout}")
    if timeout == 0 and name == "task_timeout":  # every item would time out at once
        raise ValueError(
            f"{where}: task_timeout must be > 0 seconds, got 0; use None for no time limit"
        )


def check_iterables(
    iterables: tuple[Any, ...], where: str, *, async_ok: bool = False
) -> int | None:
    """Check the inputs; return their common length when every one has a length.
    ``async_ok``: async iterables are inputs too (``plait.amap``)."""
    if not iterables:
        raise TypeError(f"{where}: give at least one iterable of inputs, e.g. {where}(fn, items)")
    lengths: list[int | None] = []
    for position, iterable in enumerate(iterables, start=1):
        if hasattr(iterable, "__aiter__") and not hasattr(iterable, "__iter__"):
            if not async_ok:
                raise TypeError(
                    f"{where}: iterable #{position} is a {type(iterable).__name__}, an async "
                    "iterable; in async code use plait.amap, which reads it on the event loop"
                )
            lengths.append(None)
            continue
        if not hasattr(iterable, "__iter__") and not hasattr(iterable, "__getitem__"):
            raise TypeError(
                f"{where}: iterable #{position} is a {type(iterable).__name__}, which is not "
                "iterable; pass a list, a generator or any other iterable"
            )
        try:
            lengths.append(len(iterable))
        except (TypeError, OverflowError):  # (no length; a range longer than sys.maxsize)
            lengths.append(None)
    known = [n for n in lengths if n is not None]
    if len(set(known)) > 1:
        raise ValueError(
            f"{where}: the iterables have different lengths {known}; pass iterables of equal "
            "length (cut the longer ones with itertools.islice if that is what you mean)"
        )
    if known and len(known) == len(lengths):
        return known[0]
    return None


def is_async(fn: object) -> bool:
    """Whether calling ``fn`` gives a coroutine that plait must await on an event loop: an
    ``async def`` function, a ``functools.partial`` or bound method of one, an object whose
    class's ``__call__`` is one, or a callable marked with ``inspect.markcoroutinefunction``
    (3.12+). The one answer to "is it async" in plait: every entry point asks it before the
    first call, to choose where the calls run.

    Called per submit, so the common cases are answered from the code object, without
    inspect's general search."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, _NEVER_ASYNC):  # (a class's call makes an instance, whatever it is)
        return False
    if _is_async_function(fn):
        return True
    if isinstance(fn, _FUNCTIONS):
        return False
    # An object is called through its class's ``__call__``, which inspect does not look at
    # (``inspect.iscoroutinefunction(obj)`` is False even when that is ``async def``).
    try:
        call = type(fn).__call__
    except AttributeError:  # not callable at all
        return False
    return isinstance(call, types.FunctionType) and _is_async_function(call)


_NEVER_ASYNC = (types.BuiltinFunctionType, types.BuiltinMethodType, type)
_FUNCTIONS = (types.FunctionType, types.MethodType)
_MARKED = hasattr(inspect, "markcoroutinefunction")  # (Python 3.12+)


def _is_async_function(fn: object) -> bool:
    function = getattr(fn, "__func__", fn)  # (a bound method's own function)
    code = getattr(function, "__code__", None)
    if not isinstance(code, types.CodeType):
        return inspect.iscoroutinefunction(fn)  # (a marked object, an AsyncMock ...)
    if code.co_flags & inspect.CO_COROUTINE:
        return True
    # A plain function marked async carries the mark as an attribute: only a function with
    # attributes needs inspect's slower look.
    return _MARKED and bool(getattr(function, "__dict__", None)) and inspect.iscoroutinefunction(fn)


def check_fits_backend(fn: object, backend: str, where: str) -> None:
    """Coroutine functions run on the async backend, plain ones anywhere else."""
    if is_async(fn) and backend != "async":
        raise TypeError(
            f"{where}: fn is an async function, which runs on an event loop: use plait.map or "
            "plait.amap (they choose the event loop by themselves), or plait.Pool('async')"
        )
    if not is_async(fn) and backend == "async":
        raise TypeError(
            f"{where}: the 'async' backend runs async functions only; use 'thread' or "
            "'process' for a plain function"
        )
