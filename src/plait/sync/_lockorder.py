"""Opt-in lock-order checking, in the spirit of the Linux kernel's lockdep.

A deadlock needs an unlucky schedule; an inconsistent lock order is there on every run. With the
checker on, each thread keeps the stack of plait locks it holds, and every blocking acquire of B
while holding A records the order ``A -> B`` (with both call sites). If B already reaches A
through recorded orders, some schedule can deadlock, and a LockOrderWarning names both locks and
the sites of both orders. Each pair is reported once. The check runs before the lock is taken, so
a warning turned into an error leaves nothing held.
"""

from __future__ import annotations

import threading
import warnings
from typing import Protocol

from ._errors import LockOrderWarning
from ._registry import Site, format_site, set_order_checks


class Ordered(Protocol):
    name: str
    _serial: int


# _after[a][b] = (site a was held from, site b was taken at), first time b was taken under a
_after: dict[int, dict[int, tuple[str, str, Site | None, Site]]] = {}
_warned: set[frozenset[int]] = set()
_ORDER_LOCK = threading.Lock()
_local = threading.local()
_generation = 0  # a thread's stack from before the last enable is stale


def enable_lock_order_checks() -> None:
    """Start recording the order in which plait locks are nested, and warn on inversions."""
    global _generation
    with _ORDER_LOCK:
        _generation += 1
    set_order_checks(True)


def disable_lock_order_checks() -> None:
    """Stop checking and forget every order seen so far."""
    set_order_checks(False)
    with _ORDER_LOCK:
        _after.clear()
        _warned.clear()


def _held() -> list[tuple[Ordered, Site | None]]:
    if getattr(_local, "generation", None) != _generation:
        _local.generation = _generation
        _local.stack = []
    stack: list[tuple[Ordered, Site | None]] = _local.stack
    return stack


def before_acquire(lock: Ordered, where: Site, stacklevel: int) -> None:
    """Record ``held -> lock`` for each lock this thread holds; warn if that inverts an order."""
    held = _held()
    if not held:
        return
    messages = []
    with _ORDER_LOCK:
        for other, other_site in held:
            if other is lock:
                continue
            edges = _after.setdefault(other._serial, {})
            if lock._serial in edges:
                continue
            edges[lock._serial] = (other.name, lock.name, other_site, where)
            path = _path(lock._serial, other._serial)
            pair = frozenset((lock._serial, other._serial))
            if path is not None and pair not in _warned:
                _warned.add(pair)
                messages.append(_message(other, other_site, lock, where, path))
    for message in messages:
        warnings.warn(message, LockOrderWarning, stacklevel=stacklevel + 1)


def acquired(lock: Ordered, where: Site | None) -> None:
    _held().append((lock, where))


def released(lock: Ordered) -> None:
    held = _held()
    for i in range(len(held) - 1, -1, -1):
        if held[i][0] is lock:
            del held[i]
            return


def _path(start: int, goal: int) -> list[tuple[str, str, Site | None, Site]] | None:
    """Recorded orders leading from ``start`` to ``goal``, if any (depth-first)."""
    stack: list[tuple[int, list[tuple[str, str, Site | None, Site]]]] = [(start, [])]
    seen = {start}
    while stack:
        node, path = stack.pop()
        for nxt, info in _after.get(node, {}).items():
            if nxt == goal:
                return [*path, info]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, info]))
    return None


def _message(
    first: Ordered,
    first_site: Site | None,
    second: Ordered,
    second_site: Site,
    earlier: list[tuple[str, str, Site | None, Site]],
) -> str:
    now = (
        f"{second.name!r} taken at {format_site(second_site)} while holding "
        f"{first.name!r} (taken at {format_site(first_site)})"
    )
    before = "; ".join(
        f"{b!r} taken at {format_site(b_site)} while holding {a!r} (taken at {format_site(a_site)})"
        for a, b, a_site, b_site in earlier
    )
    return (
        f"inconsistent lock order between {first.name!r} and {second.name!r}: now {now}; "
        f"earlier {before}. Threads taking them in these two orders can deadlock."
    )
