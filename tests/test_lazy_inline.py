"""A map auto runs inline runs each item as its result is taken, and keeps every promise of a
batch run at once: errors (StopIteration too) noted and raised or handed out in place, retries,
the worker's state and the map's token inside the function and the consumer's own between
items, a dropped result freed, Ctrl-C and ``break`` ending the map, nothing left behind."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import plait
from plait import _standin
from plait._backends import _auto
from plait._plan import Plan

pytestmark = pytest.mark.timeout(60)

N = 20_000
PAST_THE_PROBE = 9_000  # an item read long after the plan was made: in a lazy batch


@pytest.fixture(autouse=True)
def inline_after_a_short_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every map is planned inline after its first few items, however busy the machine
    (which can make even a tiny item look slow to the probe)."""
    monkeypatch.setattr(_auto, "PROBE_ITEMS", 4)
    monkeypatch.setattr(_auto, "PROBE_SECONDS", float("inf"))
    monkeypatch.setattr(
        _auto, "tiny_plan", lambda measured, **_: Plan("inline", 1, "inline, for a test")
    )


class Counted:
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, x: int) -> int:
        with self.lock:  # (the probe's thread runs the first items)
            self.calls += 1
        return 2 * x


def test_items_run_as_their_results_are_taken() -> None:
    fn = Counted()
    results = plait.map(fn, range(N))
    for taken, value in enumerate(results, start=1):
        assert value == 2 * (taken - 1)
        if taken == PAST_THE_PROBE:
            break
    assert results.plan.backend == "inline", str(results.plan)
    assert fn.calls == PAST_THE_PROBE  # not a batch ahead: the rest was never run
    results.close()


def stop_at(x: int) -> int:
    if x == PAST_THE_PROBE:
        raise StopIteration("inside the function")
    return 2 * x


def test_a_stop_iteration_takes_its_place_and_shifts_nothing() -> None:
    results = list(plait.map(stop_at, range(N), errors="return"))
    assert len(results) == N
    error = results[PAST_THE_PROBE]
    assert isinstance(error, RuntimeError)
    assert isinstance(error.__cause__, StopIteration)
    assert f"plait: raised by item {PAST_THE_PROBE}: {PAST_THE_PROBE}" in error.__notes__
    others = results[:PAST_THE_PROBE] + results[PAST_THE_PROBE + 1 :]
    assert others == [2 * x for x in range(N) if x != PAST_THE_PROBE]


def fail_at(x: int) -> int:
    if x == PAST_THE_PROBE:
        raise ValueError(f"bad {x}")
    return 2 * x


def test_an_error_is_raised_with_its_item_and_ends_the_map() -> None:
    results = plait.map(fail_at, range(N))
    taken: list[int] = []
    with pytest.raises(ValueError, match=f"bad {PAST_THE_PROBE}") as caught:
        taken.extend(results)
    assert taken == [2 * x for x in range(PAST_THE_PROBE)]
    assert f"plait: raised by item {PAST_THE_PROBE}: {PAST_THE_PROBE}" in caught.value.__notes__
    assert list(results) == []  # the map ended with its error: nothing after it


def test_an_error_is_handed_out_in_place() -> None:
    results = list(plait.map(fail_at, range(N), errors="return"))
    assert isinstance(results[PAST_THE_PROBE], ValueError)
    assert results[PAST_THE_PROBE + 1] == 2 * (PAST_THE_PROBE + 1)
    assert len(results) == N


class FailsOnce:
    def __init__(self) -> None:
        self.tries = 0

    def __call__(self, x: int) -> int:
        if x == PAST_THE_PROBE:
            self.tries += 1
            if self.tries == 1:
                raise ConnectionError("once")
        return 2 * x


def test_retries_run_in_a_lazy_batch() -> None:
    fn = FailsOnce()
    results = list(plait.map(fn, range(N), retries=2))
    assert results == [2 * x for x in range(N)]
    assert fn.tries == 2


def state_of_the_worker(x: int) -> tuple[int, int]:
    state = plait.worker_state()
    state["items"] = state.get("items", 0) + 1
    return x, id(state)


def count_setups() -> None:
    plait.worker_state()["setups"] = plait.worker_state().get("setups", 0) + 1


def test_inside_an_item_the_workers_state_and_between_items_the_consumers_own() -> None:
    spec = plait.Workers(initializer=count_setups)
    states: set[int] = set()
    for taken, (x, state) in enumerate(plait.map(state_of_the_worker, range(N), workers=spec)):
        assert x == taken
        if taken >= PAST_THE_PROBE:
            states.add(state)
            with pytest.raises(RuntimeError, match="only available inside a task"):
                plait.worker_state()  # the consumer's code, between two items
    assert len(states) == 1  # the inline worker's one state, set up once


def test_a_task_still_sees_its_own_cancellation_after_an_inline_map() -> None:
    """The task's token was replaced by nothing once a map ran inline in its thread: a group
    that failed could then never stop it (it polled plait.cancelled() in vain)."""
    ran_inline = threading.Event()
    saw: list[bool] = []

    def looper() -> None:
        assert sum(plait.map(abs, range(N))) == sum(range(N))
        ran_inline.set()
        deadline = time.monotonic() + 20
        while not plait.cancelled() and time.monotonic() < deadline:
            time.sleep(0.001)
        saw.append(plait.cancelled())

    def failer() -> None:
        ran_inline.wait(20)
        raise LookupError("the group fails")

    with pytest.raises(ExceptionGroup), plait.TaskGroup(workers=2) as group:
        group.submit(looper)
        group.submit(failer)
    assert saw == [True]


def test_between_items_a_consumer_that_is_a_task_sees_its_own_token() -> None:
    def consumer() -> list[bool]:
        seen = []
        for taken, _ in enumerate(plait.map(abs, range(N))):
            if taken >= PAST_THE_PROBE:
                seen.append(plait._cancel.current_token() is mine)
        return seen

    mine: Any = None

    def task() -> list[bool]:
        nonlocal mine
        mine = plait._cancel.current_token()
        return consumer()

    with plait.Pool("thread", 1) as pool:
        seen = pool.submit(task).result(timeout=30)
    assert mine is not None
    assert seen
    assert all(seen)


class Big:
    def __init__(self, x: int) -> None:
        self.x = x


def test_a_result_dropped_by_the_consumer_is_freed() -> None:
    results = iter(plait.map(Big, range(N)))
    for _ in range(PAST_THE_PROBE):
        value = next(results)
    alive = weakref.ref(value)
    del value
    gc.collect()
    assert alive() is None


def interrupt_at(x: int) -> int:
    if x == PAST_THE_PROBE:
        raise KeyboardInterrupt
    return x


def test_ctrl_c_inside_an_item_ends_the_map() -> None:
    results = plait.map(interrupt_at, range(N))
    with pytest.raises(KeyboardInterrupt):
        for _ in results:
            pass
    assert list(results) == []


def test_breaking_out_runs_nothing_more_and_leaves_nothing_listed() -> None:
    fn = Counted()
    for taken, _ in enumerate(plait.map(fn, range(N)), start=1):
        if taken == PAST_THE_PROBE:
            break
    gc.collect()
    assert fn.calls == PAST_THE_PROBE
    assert not getattr(_standin._local, "listed", [])


def test_a_map_dropped_in_another_thread_leaves_nothing_listed_here() -> None:
    holder: list[Iterator[int]] = [iter(plait.map(abs, range(N)))]
    for _ in range(PAST_THE_PROBE):
        next(holder[0])
    assert len(_standin._local.listed) == 1  # a lazy batch, half taken
    dropper = threading.Thread(target=holder.clear)
    dropper.start()
    dropper.join()
    gc.collect()
    assert _standin._local.listed == []


def outer(x: int) -> tuple[int, int]:
    before = id(plait.worker_state())
    inner = {state for _, state in plait.map(state_of_the_worker, range(50))}
    after = id(plait.worker_state())
    assert before == after  # (the inner map's workers, inline too, came and went)
    assert before not in inner
    return x, before


def test_a_map_inside_a_lazy_item_has_its_own_worker_state() -> None:
    seen = list(plait.map(outer, range(200)))  # (the asserts are in ``outer``)
    assert [x for x, _ in seen] == list(range(200))
