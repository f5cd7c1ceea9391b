"""Whose task runs in this thread, when a batch runs in the consumer's own thread (inline).

A batch run inline makes the consumer's thread stand in for the inline worker: while one of
its items runs, ``plait.worker_state()`` is that worker's and ``plait.cancelled()`` asks the
map's token. Around it, the thread is its own again: the consumer may itself be a task of
another pool, with its own state and token, and they must come back unchanged.

A batch run at once holds its place for as long as it runs. A batch run lazily (a generator
that runs each item as the consumer takes its result) is in place only while the generator
runs: between two items the consumer's own code runs, as itself. Setting and restoring
thread-locals around every item would cost more than a tiny item, so a lazy batch registers
once, and the lookup asks whether its generator is running now (``gi_running``).

A leaf: ``_worker_spec`` and ``_cancel`` ask it; nothing of plait is imported here.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from types import GeneratorType
from typing import Any, NamedTuple


class StandIn(NamedTuple):
    state: dict[str, Any]
    token: Any  # the task's CancelToken (or None): not imported, to keep this a leaf
    # A lazy batch, weakly (a batch its consumer dropped must still be freed, and so closed,
    # which takes it off the list); None: in place for as long as it is listed.
    generator: weakref.ref[GeneratorType[Any, None, None]] | None


_local = threading.local()


def current() -> StandIn | None:
    """The stand-in whose item runs now in this thread, if any: the innermost first."""
    listed: list[StandIn] | None = getattr(_local, "listed", None)
    if not listed:
        return None
    for position in range(len(listed) - 1, -1, -1):
        entry = listed[position]
        if entry.generator is None:
            return entry
        generator = entry.generator()
        if generator is not None and generator.gi_running:
            return entry
    return None


def enter(entry: StandIn) -> list[StandIn]:
    """List ``entry`` for this thread; returns the list, for ``leave``."""
    listed: list[StandIn] | None = getattr(_local, "listed", None)
    if listed is None:
        listed = _local.listed = []
    listed.append(entry)
    return listed


def leave(entry: StandIn, listed: list[StandIn]) -> None:
    """Take ``entry`` off the list ``enter`` put it on: maybe from another thread (a lazy
    batch dropped there is closed there), maybe not the last (a consumer may leave one map's
    loop for good and take up another)."""
    for position in range(len(listed) - 1, -1, -1):
        if listed[position] is entry:
            del listed[position]
            return


@contextmanager
def standing_in(state: dict[str, Any], token: Any) -> Iterator[None]:
    """This thread stands in for the worker whose state is ``state`` while the block runs."""
    entry = StandIn(state, token, None)
    listed = enter(entry)
    try:
        yield
    finally:
        leave(entry, listed)
