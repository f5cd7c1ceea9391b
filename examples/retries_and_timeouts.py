"""Retries for flaky items, and a time limit for items that hang, with plait.map.

``errors="return"`` puts each failure in its item's place instead of raising, so every
outcome can be printed: a value, or the exception that ended the item.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import plait

attempts: Counter[int] = Counter()  # attempts per item (threads share this process's memory)
attempts_lock = threading.Lock()


def flaky_lookup(n: int) -> str:
    """Item 1 fails once, item 2 twice, item 3 always; item 4 has a bug that no retry fixes."""
    with attempts_lock:
        attempts[n] += 1
        attempt = attempts[n]
    if n == 4:
        raise ValueError("bad record 4")  # not a ConnectionError: never retried
    if attempt <= {1: 1, 2: 2, 3: 99}.get(n, 0):
        raise ConnectionError(f"connection reset (item {n}, attempt {attempt})")
    return f"record {n}"


def compute(n: int) -> int:
    if n == 3:
        time.sleep(60)  # hangs: only the time limit ends it
    return n * n


def show(label: str, n: int, outcome: object) -> None:
    if not isinstance(outcome, BaseException):
        print(f"{label} {n}: {outcome}")
        return
    print(f"{label} {n}: {type(outcome).__name__}: {outcome}")
    for note in getattr(outcome, "__notes__", []):  # plait says which item, and how many tries
        print(f"    {note}")


def retry_flaky_lookups() -> None:
    retry = plait.Retry(retries=2, on=(ConnectionError,))  # up to 2 more attempts each
    items = range(5)
    outcomes = plait.map(flaky_lookup, items, retries=retry, errors="return")
    for n, outcome in zip(items, outcomes, strict=True):
        show("lookup", n, outcome)
        print(f"    attempts: {attempts[n]}")


def stop_a_hanging_item() -> None:
    start = time.monotonic()
    items = range(6)
    # On processes a worker running an item past its limit is killed, and a new one started.
    outcomes = plait.map(compute, items, backend="process", task_timeout=0.5, errors="return")
    for n, outcome in zip(items, outcomes, strict=True):
        show("compute", n, outcome)
    print(f"the hanging item was stopped: all done in {time.monotonic() - start:.2f} s")


if __name__ == "__main__":  # not needed by plait's process workers, but a good habit
    retry_flaky_lookups()
    stop_a_hanging_item()
