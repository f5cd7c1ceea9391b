"""A map auto runs inline runs each item as its result is taken, and keeps every promise of a
batch run at once: errors (StopIteration too) noted and raised or handed out in place, retries,
the worker's state and the map's token inside the function and the consumer's own between
items, a dropped result freed, Ctrl-C and ``break`` ending the map, nothing left behind."""

from __future__ import annotations

import gc
import itertools
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import plait
from conftest import read_in_a_thread
from plait import _standin
from plait._backends import _auto, _probe
from plait._plan import Plan

pytestmark = pytest.mark.timeout(60)

N = 20_000
PAST_THE_PROBE = 9_000  # an item read long after the plan was made: in a lazy batch


@pytest.fixture(autouse=True)
def inline_after_a_short_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every map is planned inline after its first few items, however busy the machine
    (which can make even a tiny item look slow to the probe)."""
    monkeypatch.setattr(_probe, "PROBE_ITEMS", 4)
    monkeypatch.setattr(_probe, "PROBE_SECONDS", float("inf"))
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


async def double(x: int) -> int:
    return 2 * x


def returns_coroutine(x: int) -> Any:
    return double(x)


def test_a_function_returning_coroutines_fails_each_item_of_a_lazy_batch() -> None:
    """Each item fails with a TypeError saying how to make plait await it (a lazy batch looks
    at its first value and at the first after each failure: here, every value)."""
    results = plait.map(returns_coroutine, range(N), errors="return")
    taken = list(results)
    assert results.plan.backend == "inline", str(results.plan)
    assert len(taken) == N
    assert all(isinstance(r, TypeError) for r in taken)
    assert "returned a coroutine (of double)" in str(taken[PAST_THE_PROBE])
    gc.collect()  # (a coroutine left unawaited would warn here: warnings are errors)


class CoroutineOnRetry:
    def __init__(self) -> None:
        self.tries = 0

    def __call__(self, x: int) -> Any:
        if x == PAST_THE_PROBE:
            self.tries += 1
            if self.tries == 1:
                raise ConnectionError("once")
            return double(x)
        return 2 * x


def test_a_retry_that_returns_a_coroutine_in_a_lazy_batch_fails_its_item() -> None:
    results = list(plait.map(CoroutineOnRetry(), range(N), retries=2, errors="return"))
    failed = results[PAST_THE_PROBE]
    assert isinstance(failed, TypeError)
    assert "returned a coroutine (of double)" in str(failed)
    assert results[PAST_THE_PROBE + 1] == 2 * (PAST_THE_PROBE + 1)
    gc.collect()


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
    with pytest.raises(KeyboardInterrupt) as caught:
        for _ in results:
            pass
    assert f"plait: raised by item {PAST_THE_PROBE}: {PAST_THE_PROBE}" in caught.value.__notes__
    assert list(results) == []


def test_breaking_out_runs_nothing_more_and_leaves_nothing_listed() -> None:
    fn = Counted()
    for taken, _ in enumerate(plait.map(fn, range(N)), start=1):
        if taken == PAST_THE_PROBE:
            break
    gc.collect()
    assert fn.calls == PAST_THE_PROBE
    assert not _standin._frames


def test_a_map_dropped_in_another_thread_leaves_nothing_listed() -> None:
    holder: list[Iterator[int]] = [iter(plait.map(abs, range(N)))]
    for _ in range(PAST_THE_PROBE):
        next(holder[0])
    assert len(_standin._frames) == 1  # a lazy batch, half taken
    dropper = threading.Thread(target=holder.clear)
    dropper.start()
    dropper.join()
    gc.collect()
    assert not _standin._frames


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


def generator_exit_at(x: int) -> int:
    if x == PAST_THE_PROBE:
        raise GeneratorExit("from the function")
    return x


def test_a_generator_exit_from_an_item_ends_the_map() -> None:
    """It was taken for the consumer closing the lazy batch: the map then waited for good for
    the batch's end."""
    results = plait.map(generator_exit_at, range(N))
    taken: list[int] = []
    with pytest.raises(GeneratorExit, match="from the function"):
        taken.extend(results)
    assert taken == list(range(PAST_THE_PROBE))
    assert list(results) == []


def test_a_generator_exit_from_an_item_is_a_value_with_errors_return() -> None:
    """As on threads: it takes its item's place and the map goes on. It was taken for the
    consumer closing the lazy batch, and the map ended there, its later results lost."""
    results = list(plait.map(generator_exit_at, range(N), errors="return"))
    assert len(results) == N
    assert isinstance(results[PAST_THE_PROBE], GeneratorExit)
    assert results[PAST_THE_PROBE + 1 :] == list(range(PAST_THE_PROBE + 1, N))


@pytest.mark.parametrize("bad", [4, 5, 6, 9, 13, 21, 37, 70])
@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_ctrl_c_in_a_batch_read_while_it_measured_reaches_the_consumer(
    bad: int, error: type[BaseException]
) -> None:
    """The batches read while auto measured used to run inline on the probe's thread once the
    plan was inline: an item's Ctrl-C there ended that thread, its batch was never finished,
    and the map waited for good."""

    def fn(x: int) -> int:
        if x == bad:
            raise error("from the function")
        return x

    results = plait.map(fn, range(N))
    taken: list[int] = []
    with pytest.raises(error, match="from the function"):
        taken.extend(results)
    assert taken == list(range(bad))  # every result before it, then the interrupt
    assert list(results) == []


class InterruptedRetry:
    def __init__(self, error: type[BaseException]) -> None:
        self.error = error
        self.tries = 0

    def __call__(self, x: int) -> int:
        if x == PAST_THE_PROBE:
            self.tries += 1
            raise ConnectionError("first") if self.tries == 1 else self.error("in the retry")
        return x


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_ctrl_c_in_a_retry_is_raised_not_handed_out(error: type[BaseException]) -> None:
    results = plait.map(InterruptedRetry(error), range(N), retries=2, errors="return")
    taken: list[Any] = []
    with pytest.raises(error, match="in the retry"):
        taken.extend(results)
    assert taken == list(range(PAST_THE_PROBE))


def test_a_pool_shut_down_under_a_lazy_map_ends_it() -> None:
    """Lazy batches went on for good: the pool's shutdown was never seen."""
    pool = plait.Pool()
    results = pool.map(abs, itertools.count())
    for _ in range(PAST_THE_PROBE):
        next(results)
    closer = threading.Thread(target=pool.shutdown, kwargs={"wait": False})
    closer.start()
    closer.join()
    try:
        with pytest.raises(plait.PoolClosed):
            for _ in range(100_000):  # (a batch or two at most: up to 4,096 items each)
                next(results)
    finally:
        pool.shutdown(wait=True)


def test_a_lazy_map_read_after_its_pool_block_ends_with_pool_closed() -> None:
    with plait.Pool() as pool:
        results = pool.map(abs, range(10 * N))
        for _ in range(PAST_THE_PROBE):
            next(results)
    taken = PAST_THE_PROBE
    with pytest.raises(plait.PoolClosed):
        for _ in results:
            taken += 1
    assert taken < PAST_THE_PROBE + 10_000


def test_close_from_another_thread_while_an_item_runs_ends_the_map() -> None:
    inside, closed = threading.Event(), threading.Event()

    def fn(x: int) -> int:
        if x == PAST_THE_PROBE:
            inside.set()
            assert closed.wait(30)
        return x

    results = plait.map(fn, range(N))

    def close() -> None:
        assert inside.wait(30)
        results.close()
        closed.set()

    closer = threading.Thread(target=close)
    closer.start()
    taken = list(results)
    closer.join()
    assert taken == list(range(PAST_THE_PROBE + 1))  # the item running then, and no more


def test_close_from_inside_an_item_ends_the_map() -> None:
    box: list[Any] = []

    def fn(x: int) -> int:
        if x == PAST_THE_PROBE:
            box[0].close()
        return x

    results = plait.map(fn, range(N))
    box.append(results)
    assert list(results) == list(range(PAST_THE_PROBE + 1))


def test_an_iterator_handed_to_another_thread_mid_batch_stands_in_there() -> None:
    """The rest of the batch runs in the other thread, as that thread's inline worker (the
    inline worker is the thread that reads), while the first thread's own code is its own
    again."""
    inside, checked = threading.Event(), threading.Event()
    first_thread: list[str] = []

    def fn(x: int) -> int:
        state = id(plait.worker_state())  # (raises if not standing in for the worker)
        if x == PAST_THE_PROBE + 10:
            inside.set()
            assert checked.wait(30)
        return state

    results = iter(plait.map(fn, range(N)))
    states = {next(results) for _ in range(PAST_THE_PROBE)}
    rest: list[int] = []
    other = threading.Thread(target=lambda: rest.extend(results))
    other.start()
    assert inside.wait(30)
    try:
        plait.worker_state()
    except RuntimeError:
        first_thread.append("its own")
    checked.set()
    other.join()
    assert first_thread == ["its own"]
    assert len(rest) == N - PAST_THE_PROBE
    # Every item the other thread ran, the rest of the batch begun in the first thread too,
    # ran as the other thread's worker: one state, not the first thread's.
    assert len(set(rest)) == 1
    assert rest[0] not in states


def test_worker_state_holds_while_lazy_maps_are_dropped_in_other_threads() -> None:
    """A lazy batch dropped in another thread leaves the stand-ins as its items look them up
    (an IndexError inside an item, once)."""
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            holder = [iter(plait.map(abs, range(5_000)))]
            for _ in range(4_500):
                next(holder[0])
            dropper = threading.Thread(target=holder.clear)
            dropper.start()
            dropper.join()

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        seen = list(plait.map(lambda x: id(plait.worker_state()), range(200_000)))
    finally:
        stop.set()
        churner.join()
    assert len(seen) == 200_000


def test_ctrl_c_from_an_item_is_raised_in_place_even_with_errors_return() -> None:
    def fn(x: int) -> int:
        if x == PAST_THE_PROBE:
            raise KeyboardInterrupt("from the function")
        return x

    for backend in ("auto", "thread"):
        results = plait.map(fn, range(N), backend=backend, errors="return")
        taken: list[int | BaseException] = []
        with pytest.raises(KeyboardInterrupt, match="from the function"):
            taken.extend(results)
        assert taken == list(range(PAST_THE_PROBE)), backend


@pytest.mark.parametrize("cancel_futures", [False, True])
def test_a_shutdown_without_wait_does_not_wait_for_batches_handed_on_inline(
    monkeypatch: pytest.MonkeyPatch, cancel_futures: bool
) -> None:
    """The plan is made as the first batch ends, in the probe's thread, which then runs the
    batches that waited for it, there (as the thread worker it is, not the inline one): a
    shutdown(wait=False) meanwhile returns at once (it waited for them, for as long as an item
    ran: for good, were that item waiting for the shutdown's caller); with
    cancel_futures=True, those not yet started are dropped."""
    monkeypatch.setattr(_probe, "PROBE_ITEMS", 1)  # (the plan, once item 0 ran)
    enqueued, item_2_runs, gate = threading.Event(), threading.Event(), threading.Event()
    ran: list[tuple[int, str]] = []
    enqueue = _auto.AutoBackend._enqueue

    def counting(self: _auto.AutoBackend, task: Any) -> None:
        enqueue(self, task)
        if task.items[0] == 3:
            enqueued.set()

    monkeypatch.setattr(_auto.AutoBackend, "_enqueue", counting)

    def fn(x: int) -> int:
        ran.append((x, threading.current_thread().name))
        if x == 0:
            assert enqueued.wait(30)  # items 1-3 wait for the plan
        if x == 2:
            item_2_runs.set()
            assert gate.wait(30)
        return x

    pool = plait.Pool("auto")
    results = pool.map(fn, range(4), chunksize=1)
    reader, taken = read_in_a_thread(results)
    closer = threading.Thread(
        target=pool.shutdown, kwargs={"wait": False, "cancel_futures": cancel_futures}
    )
    try:
        assert item_2_runs.wait(30)
        assert ran[-1][1].startswith("plait-thread"), ran  # (handed on, in the probe's thread)
        closer.start()
        closer.join(10)
        assert not closer.is_alive(), "shutdown(wait=False) waited for an item handed on inline"
    finally:
        gate.set()
        reader.join(30)
        if closer.ident is not None:
            closer.join(30)
        pool.shutdown()
    assert taken[:3] == [0, 1, 2]
    if cancel_futures:
        assert isinstance(taken[3], plait.Cancelled), taken
    else:
        assert taken[3] == 3


class Halt(BaseException):
    """Neither an Exception nor Ctrl-C nor SystemExit: an item's error all the same."""


def halts_at(x: int) -> int:
    if x == PAST_THE_PROBE:
        raise Halt(x)
    return x


def test_a_base_exception_from_an_item_takes_its_place_or_is_raised_with_its_note() -> None:
    """On a worker any BaseException is its item's error; inline only Exception, Ctrl-C and
    SystemExit were: another (a BaseException subclass, plait.Cancelled) left the map bare,
    without the note naming its item, even with errors="return"."""
    results = plait.map(halts_at, range(N), errors="return")
    out = list(results)
    assert results.plan.backend == "inline", str(results.plan)
    assert len(out) == N
    error = out[PAST_THE_PROBE]
    assert isinstance(error, Halt)
    assert f"plait: raised by item {PAST_THE_PROBE}: {PAST_THE_PROBE}" in error.__notes__
    assert out[PAST_THE_PROBE + 1 :] == list(range(PAST_THE_PROBE + 1, N))
    with pytest.raises(Halt) as raised:
        list(plait.map(halts_at, range(N)))
    assert f"plait: raised by item {PAST_THE_PROBE}: {PAST_THE_PROBE}" in raised.value.__notes__


def test_abort_from_another_thread_starts_no_further_item_of_a_lazy_batch() -> None:
    """abort() told running items to stop, but a lazy batch ran on, item after item, until
    it ended (thousands of items, seconds later): now its next item does not start, and the
    consumer's next() raises Cancelled."""
    inside, aborted = threading.Event(), threading.Event()
    after: list[int] = []

    def fn(x: int) -> int:
        if aborted.is_set():
            after.append(x)
        if x == PAST_THE_PROBE:
            inside.set()
            assert aborted.wait(30)
        return x

    results = plait.map(fn, range(N))

    def abort() -> None:
        assert inside.wait(30)
        results.abort()
        aborted.set()

    aborter = threading.Thread(target=abort)
    aborter.start()
    taken: list[int] = []
    with pytest.raises(plait.Cancelled):
        taken.extend(results)  # (what it handed out before it raised)
    aborter.join()
    assert results.plan.backend == "inline", str(results.plan)
    assert after == []  # no item started after the abort
    assert taken == list(range(PAST_THE_PROBE + 1))


def test_the_inline_worker_is_set_up_in_the_thread_that_runs_its_items() -> None:
    """Its initializer ran in the probe's thread (which also ran the batches read while it
    measured, and so set the worker up in a thread the later items never ran in, racing the
    consumer's first batch): a connection it made (sqlite's) failed in every later item.
    Now each thread that reads the map inline is a worker of its own, set up there first."""

    def connect() -> None:
        plait.worker_state()["made in"] = threading.current_thread()

    def used_where_made(x: int) -> int:
        if plait.worker_state()["made in"] is not threading.current_thread():
            raise AssertionError(f"item {x}: set up in another thread")
        return x

    results = plait.map(
        used_where_made, range(N), workers=plait.Workers(initializer=connect), errors="return"
    )
    out = list(results)
    assert results.plan.backend == "inline", str(results.plan)
    assert out == list(range(N))


def test_a_second_reader_while_an_item_runs_inline_gets_a_value_error_and_loses_nothing() -> None:
    """What the README says of two readers of a map run inline: the second, asking while the
    first is inside an item, gets the generator's ValueError; the first goes on, whole."""
    inside, asked = threading.Event(), threading.Event()

    def fn(x: int) -> int:
        if x == PAST_THE_PROBE:
            inside.set()
            assert asked.wait(30)
        return x

    results = plait.map(fn, range(N))
    reader, taken = read_in_a_thread(results)
    assert inside.wait(30)
    with pytest.raises(ValueError, match="generator already executing"):
        next(iter(results))
    asked.set()
    reader.join(30)
    assert results.plan.backend == "inline", str(results.plan)
    assert taken == list(range(N))


def note_my_thread() -> None:
    plait.worker_state()["thread"] = threading.get_ident()


def whose_state(x: int) -> tuple[int, int, int]:
    return x, plait.worker_state()["thread"], threading.get_ident()


def test_a_map_handed_to_another_thread_mid_batch_runs_there_as_that_threads_worker() -> None:
    """Read in one thread, then (no overlap) in another: two workers, each set up in its own
    thread. The lazy batch under way kept the first thread's worker state for its items run
    in the second (the README's sqlite connection failed there, for up to a batch's items)."""
    results = plait.map(whose_state, range(N), workers=plait.Workers(initializer=note_my_thread))
    first = [next(results) for _ in range(PAST_THE_PROBE)]
    assert results.plan.backend == "inline", str(results.plan)
    rest: list[tuple[int, int, int]] = []
    reader = threading.Thread(target=lambda: rest.extend(results))
    reader.start()
    reader.join(30)
    assert [x for x, _, _ in first + rest] == list(range(N))
    wrong = [x for x, state, thread in first + rest if state != thread]
    assert wrong == [], f"{len(wrong)} items ran with another thread's worker state"
