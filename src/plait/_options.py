"""The options of a map, spelled once.

``plait.map``, ``Pool.map`` and ``plait.amap`` take the same keywords (``MapKeywords``, typed for
their signatures with ``Unpack``), and ``MapOptions.build`` checks them once, at the entry point.
``errors`` stays a parameter of its own in each signature, because it decides the type of the
results (``R`` or ``R | BaseException``).

On ``Pool.map``, ``task_timeout`` and ``retries`` default to ``DEFAULT``: the pool's own setting.
``None`` means none, so one map can switch off its pool's time limit or retries.
"""

from __future__ import annotations

import difflib
import enum
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict

from . import _validate as check
from ._retry import Retry, as_retry

if TYPE_CHECKING:
    from ._trace import Trace


class Default(enum.Enum):
    """The type of ``plait.DEFAULT``."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "plait.DEFAULT"


DEFAULT: Final = Default.DEFAULT
""""Use the pool's setting": the default of ``Pool.map``'s ``task_timeout`` and ``retries``."""


class MapKeywords(TypedDict, total=False):
    """The keywords every map takes, besides ``workers``, ``backend`` and ``errors``."""

    ordered: bool
    """Results in input order (True), or as they finish (False)."""
    chunksize: int | None
    """Items per batch; None sizes batches by measuring."""
    timeout: float | None
    """Seconds for the whole map, from the call: a result not ready by then raises
    TimeoutError when it is asked for."""
    task_timeout: float | Default | None
    """Seconds per item: an overrunning item fails with TaskTimeout."""
    retries: int | Retry | Default | None
    """More attempts for failing items: a count, or a plait.Retry."""
    progress: bool | Mapping[str, Any]
    """A tqdm progress bar counting items: True, or a dict of tqdm's options (``desc``,
    ``total`` for a generator whose length you know, ``unit``, ...)."""
    rate: float | None
    """At most this many calls of the function per second."""
    trace: str | os.PathLike[str] | Trace | None
    """A trace of this map alone: a path (``.html``: a timeline; ``.json``: Chrome/Perfetto
    trace events), written as the map ends, or a ``plait.Trace`` to add its batches to."""


_DEFAULTS: Final[MapKeywords] = {
    "ordered": True,
    "chunksize": None,
    "timeout": None,
    "task_timeout": DEFAULT,
    "retries": DEFAULT,
    "progress": False,
    "rate": None,
    "trace": None,
}


@dataclass(frozen=True, slots=True)
class MapOptions:
    """How one map runs, checked once: what its entry point was given."""

    where: str
    errors: Literal["raise", "return"]
    ordered: bool = True
    chunksize: int | None = None
    deadline: float | None = None  # time.monotonic() by which the map must be done
    task_timeout: float | None = None
    retry: Retry | None = None
    progress: bool | Mapping[str, Any] = False
    rate: float | None = None
    trace: Trace | None = None

    @classmethod
    def build(
        cls,
        where: str,
        errors: object,
        keywords: Mapping[str, object],
        *,
        task_timeout: float | None = None,
        retry: Retry | None = None,
    ) -> MapOptions:
        """Check ``keywords`` (a ``MapKeywords``); ``task_timeout`` and ``retry`` are what
        ``DEFAULT`` stands for (a pool's settings)."""
        _check_names(where, keywords)
        given: dict[str, Any] = {**_DEFAULTS, **keywords}
        check.check_choice("errors", errors, ("raise", "return"), where)
        check.check_choice("ordered", given["ordered"], (True, False), where)
        progress = given["progress"]
        if not isinstance(progress, bool | Mapping):  # (not 1, which == True)
            raise ValueError(
                f"{where}: progress must be True, False or a dict of tqdm's options (e.g. "
                f"{{'desc': 'pages', 'total': 1000}}), got {progress!r}"
            )
        chunksize = given["chunksize"]
        check.check_chunksize(chunksize, where)
        check.check_timeout(given["timeout"], where)
        timeout = given["timeout"]
        if given["task_timeout"] is not DEFAULT:
            check.check_timeout(given["task_timeout"], where, "task_timeout")
            task_timeout = given["task_timeout"]
        if task_timeout is not None and chunksize not in (None, 1):
            raise ValueError(
                f"{where}: chunksize={chunksize} cannot be combined with task_timeout: an item "
                "with a time limit is sent to a worker alone; leave chunksize out"
            )
        if given["retries"] is not DEFAULT:
            retry = as_retry(given["retries"], where)
        rate = given["rate"]
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)):
            raise TypeError(f"{where}: rate must be a number of calls per second, got {rate!r}")
        if rate is not None and not rate > 0:  # (NaN too)
            raise ValueError(f"{where}: rate must be > 0 calls per second, got {rate}")
        if rate is not None:
            check_rate_size(rate, where)
        return cls(
            where,
            "return" if errors == "return" else "raise",
            ordered=given["ordered"],
            chunksize=chunksize,
            deadline=None if timeout is None else time.monotonic() + timeout,
            task_timeout=task_timeout,
            retry=retry,
            progress=given["progress"],
            rate=rate,
            trace=_as_trace(given["trace"], where),
        )


def _as_trace(trace: object, where: str) -> Trace | None:
    if trace is None:
        return None
    from ._trace import Trace

    if isinstance(trace, Trace):
        return trace
    if isinstance(trace, str | os.PathLike):
        return Trace(trace, where=where)
    raise TypeError(
        f"{where}: trace must be a path ('run.html' or 'run.json') or a plait.Trace, got {trace!r}"
    )


def _check_names(where: str, keywords: Mapping[str, object]) -> None:
    for name in keywords:
        if name not in _DEFAULTS:
            close = difflib.get_close_matches(name, [*_DEFAULTS, "errors"], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            choices = ", ".join(sorted([*_DEFAULTS, "errors"]))
            raise TypeError(
                f"{where}() got an unexpected keyword argument {name!r}{hint} "
                f"(the keywords of a map: {choices})"
            )


def check_rate_size(rate: float, where: str) -> None:
    """A positive ``rate`` whose time per call is a float: not so large that it is no float
    (``10**400``), nor so small that its time per call is infinite (``1e-320``)."""
    try:
        per_call = 1.0 / float(rate)
    except OverflowError:
        raise ValueError(
            f"{where}: rate={rate} is too large to be a number of calls per second; "
            "leave rate out for no limit"
        ) from None
    if math.isinf(per_call):
        raise ValueError(
            f"{where}: rate={rate} calls per second is too small: its time between two calls "
            "is infinite; give a rate of at least 1e-300"
        )
