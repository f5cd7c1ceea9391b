"""Property tests: plait.map equals the builtin map, failures in their places."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import plait

_calls: dict[tuple[int, int], int] = {}  # (run, index) -> attempts so far, in this process
_calls_lock = threading.Lock()
_runs = itertools.count()


def work(item: tuple[int, int, int, int, int]) -> tuple[int, int]:
    """Doubles x; fails for good when x % bad == 0; fails ``flaky`` times first otherwise."""
    run, index, x, bad, flaky = item
    with _calls_lock:
        attempt = _calls[run, index] = _calls.get((run, index), 0) + 1
    if x % bad == 0:
        raise ValueError(f"{index}")
    if attempt <= flaky:
        raise ConnectionError(f"{index}")
    return index, x * 2


def expected(item: tuple[int, int, int, int, int], retries: int) -> Any:
    _, index, x, bad, flaky = item
    if x % bad == 0:
        return (ValueError, str(index))
    if flaky > retries:
        return (ConnectionError, str(index))
    return (index, x * 2)


def observed(outcome: Any) -> Any:
    if isinstance(outcome, BaseException):
        return (type(outcome), str(outcome))
    return outcome


def index_of(outcome: Any) -> int:
    return int(outcome[1]) if isinstance(outcome[0], type) else int(outcome[0])


def check(
    results: list[Any], items: list[tuple[int, int, int, int, int]], retries: int, ordered: bool
) -> None:
    want = [expected(item, retries) for item in items]
    got = [observed(r) for r in results]
    if not ordered:
        got.sort(key=index_of)
    assert got == want


settings_for_threads = settings(max_examples=60, deadline=None)
inputs = st.lists(st.integers(-1000, 1000), max_size=200)


@settings_for_threads
@given(
    xs=inputs,
    workers=st.integers(1, 4),
    chunksize=st.none() | st.integers(1, 40),
    ordered=st.booleans(),
    bad=st.integers(2, 30),
    flaky=st.integers(0, 2),
    retries=st.integers(0, 2),
)
def test_threads_equal_builtin_map(
    xs: list[int],
    workers: int,
    chunksize: int | None,
    ordered: bool,
    bad: int,
    flaky: int,
    retries: int,
) -> None:
    run = next(_runs)
    items = [(run, i, x, bad, flaky) for i, x in enumerate(xs)]
    results = plait.map(
        work,
        items,
        workers=workers,
        chunksize=chunksize,
        ordered=ordered,
        errors="return",
        retries=retries,
    )
    check(list(results), items, retries, ordered)


def test_processes_equal_builtin_map() -> None:
    with plait.Pool("process", workers=2) as pool:

        @settings(max_examples=25, deadline=None)
        @given(
            xs=inputs,
            chunksize=st.none() | st.integers(1, 40),
            ordered=st.booleans(),
            bad=st.integers(2, 30),
            flaky=st.integers(0, 2),
            retries=st.integers(0, 2),
        )
        def on_processes(
            xs: list[int], chunksize: int | None, ordered: bool, bad: int, flaky: int, retries: int
        ) -> None:
            run = next(_runs)
            items = [(run, i, x, bad, flaky) for i, x in enumerate(xs)]
            results = pool.map(
                work, items, chunksize=chunksize, ordered=ordered, errors="return", retries=retries
            )
            check(list(results), items, retries, ordered)

        on_processes()
