"""A batch whose items wait for each other gives the rest of its items to other threads
(``_backends/_split.py``): items that meet at a Barrier, or wait for an Event a later item of
the same batch sets, waited for good on one thread."""

from __future__ import annotations

import threading

import pytest

import plait

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("backend", ["thread", "auto"])
def test_an_item_that_waits_for_the_next_one_in_its_batch_gets_it(backend: str) -> None:
    later_ran = threading.Event()
    runs: list[int] = []

    def wait_for_the_next(x: int) -> int:
        runs.append(x)
        if x == 50:
            assert later_ran.wait(10), "item 51 never ran while item 50 waited for it"
        if x == 51:
            later_ran.set()
        return x * 2

    # (chunksize: items 50 and 51 in one batch, whatever the sizer would have made)
    results = plait.map(wait_for_the_next, range(200), backend=backend, chunksize=100)
    assert list(results) == [x * 2 for x in range(200)]
    assert sorted(runs) == list(range(200))  # each once


def test_items_that_meet_at_a_barrier_in_one_batch_meet() -> None:
    """Three items of one batch meet: the batch is split twice (the rest after the first
    waiter, then after the second), each part on a thread of its own."""
    meet = threading.Barrier(3, timeout=10)

    def meet_at_3_4_5(x: int) -> int:
        if x in (3, 4, 5):
            meet.wait()
        return x

    results = plait.map(meet_at_3_4_5, range(10), backend="thread", chunksize=10, workers=4)
    assert list(results) == list(range(10))


def test_a_split_batch_keeps_each_failure_at_its_own_item() -> None:
    later_ran = threading.Event()

    def wait_then_fail(x: int) -> int:
        if x == 2:
            assert later_ran.wait(10)
        if x == 3:
            later_ran.set()
        if x in (1, 6):
            raise ValueError(f"item {x}")
        return x

    results = list(
        plait.map(wait_then_fail, range(8), backend="thread", chunksize=8, errors="return")
    )
    assert [r for r in results if not isinstance(r, ValueError)] == [0, 2, 3, 4, 5, 7]
    for at in (1, 6):
        error = results[at]
        assert isinstance(error, ValueError)
        assert str(error) == f"item {at}"
        assert f"plait: raised by item {at}: {at}" in error.__notes__
