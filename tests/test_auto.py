"""backend="auto": each decision on a real workload; moving mid-map loses, repeats and reorders
nothing; what the user sets always wins; the plan says why, and is logged."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import plait
from conftest import read_in_a_thread
from plait._backends import _auto, _probe, _watched
from plait._backends._base import default_workers
from plait._cores import usable_cores
from plait._cpu_wait import Thread, read_clocks, waited_between
from plait._plan import INLINE_BELOW, WAITING_BELOW, Plan

pytestmark = pytest.mark.timeout(120)

several_cores = pytest.mark.skipif(usable_cores() < 2, reason="needs two usable cores")


def sleepy(x: int) -> int:
    time.sleep(0.005)
    return x


def nap20(x: int) -> int:
    time.sleep(0.02)
    return x


def spin(x: int) -> tuple[int, int]:
    total = 0
    for i in range(30_000):  # ~2-3 ms of pure Python, holding the GIL
        total += i * i % 7
    return x, os.getpid()


def digest(block: bytes) -> str:
    return hashlib.sha256(block).hexdigest()  # releases the GIL on large buffers


def double(x: int) -> int:
    return 2 * x


def where(x: int) -> tuple[int, str]:
    return x, threading.current_thread().name


def skip_unless_a_thread_gets_a_core() -> None:
    """Computing work is told from waiting work by its CPU time over the time it ran or slept.
    Where the time a thread waits for a core is not counted (not Linux), a machine so busy that
    a computing thread gets under a third of a core makes the two look alike (see the README's
    limits): the decision cannot be checked there."""
    start = read_clocks()
    spin(0)
    stop = read_clocks()
    assert start is not None
    assert stop is not None
    share = (stop.cpu - start.cpu) / (stop.wall - start.wall - waited_between(start, stop))
    if share < 0.6:
        pytest.skip(f"the machine is too busy: a computing thread gets {share:.0%} of a core")


def skip_if_tiny_work_does_not_look_tiny(plan: str) -> None:
    """A machine busy enough (a virtual machine's host, too) makes even ``where`` take
    microseconds an item of wall and CPU time, measured by the thread itself: then the
    decision cannot be checked there. Measured right after the map, in this thread."""
    started = time.perf_counter()
    for x in range(20_000):
        where(x)
    per_item = (time.perf_counter() - started) / 20_000
    if per_item >= INLINE_BELOW / 3:
        pytest.skip(f"the machine is too busy: a tiny item takes {per_item * 1e6:.1f} µs ({plan})")


def test_waiting_work_runs_on_threads() -> None:
    results = plait.map(sleepy, range(20), backend="auto")
    assert list(results) == list(range(20))
    assert results.plan.backend == "thread"
    assert "it waits" in results.plan.reason


def takes_2_5_us(x: int) -> int:
    """An item of 2.5 µs at the least, whatever the machine: tiny, but not clearly so."""
    until = time.perf_counter() + 2.5e-6
    while time.perf_counter() < until:
        pass
    return x


@pytest.mark.parametrize(("fn", "clearly_tiny"), [(where, True), (takes_2_5_us, False)])
def test_clearly_tiny_work_is_decided_after_a_few_dozen_items(
    fn: Any, clearly_tiny: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work under a quarter of INLINE_BELOW an item needs PROBE_TINY_ITEMS items, not
    PROBE_ITEMS (made endless here): a pause makes work look slower, never faster. Work of
    2.5 µs an item still needs them all."""
    monkeypatch.setattr(_probe, "PROBE_ITEMS", 10**9)
    monkeypatch.setattr(_probe, "PROBE_SECONDS", float("inf"))
    monkeypatch.setattr(_probe, "PROBE_LONG", float("inf"))
    results = plait.map(fn, range(3000), chunksize=None)
    out = list(results)
    assert [x if isinstance(x, int) else x[0] for x in out] == list(range(3000))
    if clearly_tiny:
        skip_if_tiny_work_does_not_look_tiny(str(results.plan))
        assert results.plan.backend == "inline", str(results.plan)
    else:
        assert results.plan.backend == "auto", str(results.plan)  # (still measuring)


def test_one_batch_that_waited_is_enough_to_decide() -> None:
    """5 ms sleeps: the first item's batch settles the map on threads before its result
    reaches the consumer (three probe batches, one after another, cost a map of 10 ms sleeps
    20 ms more)."""
    with plait.map(sleepy, range(20), backend="auto") as results:
        iterator = iter(results)
        assert next(iterator) == 0
        assert results.plan.backend == "thread"
        assert "of its time on CPU" in results.plan.reason
        assert list(iterator) == list(range(1, 20))


@several_cores
def test_computing_work_that_holds_the_gil_moves_to_processes() -> None:
    skip_unless_a_thread_gets_a_core()
    results = plait.map(spin, iter(range(40)), backend="auto")  # (length unknown: see below)
    out = list(results)
    assert [x for x, _ in out] == list(range(40))
    assert results.plan.backend == "process", str(results.plan)
    assert "holding the GIL" in results.plan.reason
    assert {pid for _, pid in out} - {os.getpid()}  # the items after the probe ran elsewhere


def cores_two_threads_get(block: bytes) -> float:
    """The cores' worth of CPU two threads hashing at once get from this machine right now."""
    used = [0.0, 0.0]
    barrier = threading.Barrier(2)

    def hash_twice(slot: int) -> None:
        barrier.wait()
        start = time.thread_time()
        for _ in range(3):
            digest(block)
        used[slot] = time.thread_time() - start

    threads = [threading.Thread(target=hash_twice, args=(slot,)) for slot in (0, 1)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sum(used) / (time.perf_counter() - began)


@several_cores
def test_hashing_releases_the_gil_and_stays_on_threads() -> None:
    """The probe sees two threads use more than one core. This machine lends two threads
    anywhere from one to two cores from one moment to the next: a probe that met a lean
    moment tries again, up to three maps; the test gives up (skips) only if the machine,
    measured after them, does not lend two cores at all."""
    blocks = [bytes([i]) * (4 << 20) for i in range(12)]
    plans = []
    for _ in range(3):
        results = plait.map(digest, iter(blocks), backend="auto")  # (length unknown)
        assert list(results) == [hashlib.sha256(b).hexdigest() for b in blocks]
        plans.append(results.plan)
        if results.plan.backend == "thread" and "releases the GIL" in results.plan.reason:
            return
    # (A machine that lends a computing thread too little of a core makes hashing look like
    # waiting: "it waits" on threads. One that lends two threads one core between them makes
    # it look GIL-bound: processes. Neither can be checked there.)
    skip_unless_a_thread_gets_a_core()
    if (cores := cores_two_threads_get(blocks[0])) < 1.5:
        pytest.skip(f"two threads get {cores:.1f} cores here: too few to see the GIL released")
    pytest.fail(f"three maps of sha256 went elsewhere: {[str(plan) for plan in plans]}")


@several_cores
def test_computing_work_that_cannot_travel_stays_on_threads_and_says_why() -> None:
    skip_unless_a_thread_gets_a_core()
    lock = threading.Lock()

    def spin_holding(x: int) -> int:  # a closure over a lock: no process can take it
        with lock:
            pass
        return spin(x)[0]

    # (About one probe in thirty has measured this GIL-bound work as two threads computing
    # 1.3-1.7 cores' worth: threads still, but "releases the GIL". Its cause is not found yet;
    # the decision checked here is the one after the GIL is seen held: up to three maps.)
    plans = []
    for _ in range(3):
        results = plait.map(spin_holding, iter(range(30)), backend="auto")
        assert list(results) == list(range(30))
        assert results.plan.backend == "thread", str(results.plan)
        plans.append(str(results.plan))
        if "releases the GIL" not in results.plan.reason:
            break
    assert "cannot go to a process" in results.plan.reason, plans


def spin_or_hold(x: int | threading.Lock) -> tuple[int | str, int]:
    if isinstance(x, int):
        return spin(x)
    with x:  # (a lock: no process can be sent it)
        return "lock", os.getpid()


@several_cores
def test_a_later_item_that_cannot_travel_runs_on_a_thread_beside_the_processes() -> None:
    """auto looks at a sample of the items before it chooses processes: an item found later
    that would not pickle runs on a thread, with no error, as on the threads it would have
    run on had the plan been threads."""
    skip_unless_a_thread_gets_a_core()
    items: list[int | threading.Lock] = list(range(60))
    items[45] = items[52] = threading.Lock()  # (past the probe: sent under the plan)
    results = plait.map(spin_or_hold, iter(items), backend="auto")
    out = list(results)
    if results.plan.backend != "process":
        pytest.skip(f"processes were not chosen here: {results.plan}")
    assert [x for x, _ in out] == [x if isinstance(x, int) else "lock" for x in items]
    assert out[45][1] == out[52][1] == os.getpid()  # (here: threads)
    assert {pid for x, pid in out[30:] if x != "lock"} - {os.getpid()}, "none ran elsewhere"


def choose_processes_if_it_travels(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto's decision made certain: processes whenever the function and the first items
    pickle (so that it finds out whether they do), else threads, saying why not; the work is
    never taken for tiny or waiting, and not run two batches at once."""

    def decide(measured: object, situation: Any) -> Plan:
        if situation.travels:
            return Plan("process", 2, "it travels")
        return Plan("thread", 2, situation.why_not)

    monkeypatch.setattr(_auto, "decide", decide)
    monkeypatch.setattr(_auto, "tiny_plan", lambda measured, **_: None)
    monkeypatch.setattr(_auto, "needs_parallel_probe", lambda measured, situation: False)
    monkeypatch.setattr(_watched, "WATCH_AFTER", 3600.0)  # (no batch is settled as waiting)


def read_within_a_minute(results: plait.MapIterator[Any]) -> list[Any]:
    """Every result, read in another thread, then the exception that ended them, if one did;
    the test fails if the map is still not over after a minute."""
    reader, taken = read_in_a_thread(results)
    try:
        reader.join(60)
        assert not reader.is_alive(), "the map waited for good"
    finally:
        results.abort()  # (a reader still waiting raises Cancelled, and ends)
        reader.join(30)
    return taken


class OwnBaseException(BaseException):
    pass


class RaisesAsItPickles:
    """A value whose ``__reduce__`` (the user's code) raises ``raises``; it is called with
    one like it."""

    def __init__(self, value: int, raises: type[BaseException]) -> None:
        self.value = value
        self.raises = raises

    def __reduce__(self) -> Any:
        raise self.raises("no pickling for me")

    def __call__(self, item: RaisesAsItPickles) -> int:
        return spin(item.value)[0]


def spin_value(item: RaisesAsItPickles) -> int:
    return spin(item.value)[0]


@pytest.mark.parametrize("what", ["items", "function"])
@pytest.mark.parametrize("raises", [SystemExit, KeyboardInterrupt, OwnBaseException])
def test_what_raises_any_base_exception_as_it_pickles_stays_on_threads(
    monkeypatch: pytest.MonkeyPatch, raises: type[BaseException], what: str
) -> None:
    """Pickling trouble like any other, whatever the ``__reduce__`` raises. (Only an
    Exception was caught: a SystemExit ended the probe's thread silently, another
    BaseException with a traceback, and the map waited for good.)"""
    choose_processes_if_it_travels(monkeypatch)
    fn = RaisesAsItPickles(0, raises) if what == "function" else spin_value
    items = [RaisesAsItPickles(i, raises) for i in range(40)]
    results = plait.map(fn, items, backend="auto")
    taken = read_within_a_minute(results)
    assert taken == list(range(40))
    assert results.plan.backend == "thread", str(results.plan)
    function = "the function" if what == "function" else "its items"
    assert f"{function} would not pickle ({raises.__name__}: no pickling" in results.plan.reason


class UsesThePoolAsItPickles:
    """A value whose ``__reduce__`` (the user's code) runs a call on the pool its map runs on."""

    pool: plait.Pool

    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self) -> Any:
        assert self.pool.submit(abs, -self.value).result(timeout=60) == self.value
        return (rebuilt, (self.value,))


def rebuilt(value: int) -> UsesThePoolAsItPickles:
    return UsesThePoolAsItPickles(value)


def spin_used(item: UsesThePoolAsItPickles) -> int:
    return spin(item.value)[0]


def test_pickling_that_uses_the_same_pool_is_found_out_without_waiting_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whether the items travel is found out without holding auto's lock: a ``__reduce__``
    that submits to the same pool (its probe's thread held the lock the submit waited for)
    waited for good, and so did the map."""
    choose_processes_if_it_travels(monkeypatch)
    with plait.Pool() as pool:
        UsesThePoolAsItPickles.pool = pool
        results = pool.map(spin_used, [UsesThePoolAsItPickles(i) for i in range(12)])
        taken = read_within_a_minute(results)
        assert taken == list(range(12))
        assert results.plan.backend == "process", str(results.plan)


@pytest.mark.parametrize("errors", ["raise", "return"])
def test_a_plan_that_cannot_be_made_ends_the_map_with_its_error(
    monkeypatch: pytest.MonkeyPatch, errors: Literal["raise", "return"]
) -> None:
    """Whatever making the plan raises (a bug of plait's; PLAIT_WORKERS changed mid-map, read
    as the plan is made), the batch it measured hands out its results, and the items not yet
    run fail with that error. (It escaped from the probe's thread, printed there, and the map
    waited for good.)"""

    def cannot_decide(self: _auto.AutoBackend, route: object) -> Plan | None:
        raise RuntimeError("no plan")

    monkeypatch.setattr(_auto.AutoBackend, "_decide", cannot_decide)
    results = plait.map(double, range(6), backend="auto", chunksize=1, errors=errors)
    taken = read_within_a_minute(results)
    assert taken[0] == 0, taken  # (the probe's first batch: it ran)
    assert len(taken) == (2 if errors == "raise" else 6), taken
    for error in taken[1:]:
        assert isinstance(error, RuntimeError), taken
        assert str(error) == "no plan"
        assert 'plait: backend="auto" failed as it chose where' in error.__notes__[0]
    assert "choosing where it runs failed (RuntimeError)" in results.plan.reason


def test_tiny_work_runs_inline_in_the_consumers_thread() -> None:
    """(The batches read while the probe measured run where the probe's thread is when the
    plan is made; the ones read after it, in the consumer's own thread.)"""
    results = plait.map(where, range(50_000), backend="auto")
    out = list(results)
    assert [x for x, _ in out] == list(range(50_000))
    if results.plan.backend != "inline":
        skip_if_tiny_work_does_not_look_tiny(str(results.plan))
    assert results.plan.backend == "inline", str(results.plan)
    ran_here = sum(name == threading.current_thread().name for _, name in out)
    assert ran_here >= 10_000


def test_tiny_work_with_a_task_timeout_is_never_run_inline() -> None:
    results = plait.map(where, range(20_000), backend="auto", task_timeout=30)
    out = list(results)
    assert [x for x, _ in out] == list(range(20_000))
    assert results.plan.backend == "thread", str(results.plan)
    assert out[-1][1] != threading.current_thread().name


def test_the_callers_width_wins() -> None:
    results = plait.map(sleepy, range(10), backend="auto", workers=3)
    assert list(results) == list(range(10))
    assert (results.plan.backend, results.plan.workers) == ("thread", 3)


def test_a_rate_keeps_the_map_on_threads() -> None:
    results = plait.map(spin, range(6), backend="auto", rate=1000)
    assert [x for x, _ in results] == list(range(6))
    assert results.plan.backend == "thread"
    assert "rate=" in results.plan.reason


def test_a_backend_named_by_the_caller_is_its_plan() -> None:
    with plait.map(double, range(3), backend="thread", workers=2) as results:
        assert results.plan == Plan("thread", 2, "backend='thread' was chosen")


def test_the_plan_says_it_is_still_measuring_and_then_what_it_chose() -> None:
    results = plait.map(sleepy, range(4), backend="auto")
    assert results.plan.backend == "auto"
    assert str(results.plan).endswith("measuring its first items")
    assert list(results) == list(range(4))
    assert str(results.plan).startswith("thread x ")
    assert "\n" not in str(results.plan)


def test_each_decision_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="plait"):
        assert list(plait.map(sleepy, range(3), backend="auto")) == [0, 1, 2]
    [record] = [r for r in caplog.records if r.name == "plait"]
    assert "sleepy runs thread x" in record.getMessage()


def test_submitted_calls_run_on_threads() -> None:
    with plait.Pool("auto") as pool:
        assert pool.submit(where, 1).result(timeout=30)[1].startswith("plait-thread")


def test_submitted_calls_run_as_wide_as_on_a_thread_pool() -> None:
    """(They ran on two threads: a third call that waits for the others waited for good.)"""
    width = default_workers("thread")
    barrier = threading.Barrier(width, timeout=30)
    with plait.Pool("auto") as pool:
        calls = [pool.submit(barrier.wait) for _ in range(width)]
        assert sorted(call.result(timeout=60) for call in calls) == list(range(width))


def test_submitted_calls_keep_within_the_callers_ceiling() -> None:
    with plait.Pool("auto", plait.Workers(max_count=2)) as pool:
        assert pool.submit(double, 1).result(timeout=30) == 2
        assert pool.workers == 2


def test_a_map_with_a_rate_runs_as_wide_as_on_a_thread_pool() -> None:
    results = plait.map(double, range(4), rate=1000)
    assert list(results) == [0, 2, 4, 6]
    assert results.plan.workers == default_workers("thread"), str(results.plan)


class Once:
    """Counts how often each item ran (threads and inline share this process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[int, int] = {}

    def __call__(self, x: int) -> int:
        with self.lock:
            self.seen[x] = self.seen.get(x, 0) + 1
        return x


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 300),
    probe_items=st.integers(1, 60),
    target=st.sampled_from(["thread", "inline", "process"]),
    ordered=st.booleans(),
)
def test_moving_mid_map_keeps_every_item_once_and_in_order(
    n: int, probe_items: int, target: str, ordered: bool
) -> None:
    count = Once()
    fn: Any = count if target != "process" else double
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_probe, "PROBE_ITEMS", probe_items)
        patch.setattr(_probe, "PROBE_SECONDS", float("inf"))
        patch.setattr(_auto, "decide", lambda measured, situation: Plan(target, 2, "a test"))
        patch.setattr(_auto, "tiny_plan", lambda measured, **_: None)  # (decide says all)
        results = list(plait.map(fn, range(n), backend="auto", ordered=ordered))
    expected = [2 * x for x in range(n)] if target == "process" else list(range(n))
    assert results == expected if ordered else sorted(results) == expected
    if target != "process":
        assert count.seen == dict.fromkeys(range(n), 1)


def count_calls(x: int) -> tuple[int, int]:
    state = plait.worker_state()
    state["calls"] = state.get("calls", 0) + 1
    return x, state["calls"]


def remember_setup() -> None:
    plait.worker_state()["calls"] = 1000


def test_worker_state_is_there_wherever_auto_runs_the_items() -> None:
    """Tiny work ends up inline, in the consumer's thread: it stands in for a worker, with its
    own state and the initializer run once for it, as the probe's threads have theirs."""
    results = list(plait.map(count_calls, range(50), backend="auto", chunksize=1))
    assert [x for x, _ in results] == list(range(50))
    assert all(calls >= 1 for _, calls in results)
    with pytest.raises(RuntimeError, match="only available inside a task"):
        plait.worker_state()  # the consumer's thread is not a worker once the batch ran
    spec = plait.Workers(initializer=remember_setup)
    results = list(plait.map(count_calls, range(50), backend="auto", workers=spec, chunksize=1))
    assert all(calls > 1000 for _, calls in results)


def broken_setup() -> None:
    raise LookupError("no database")


def test_an_initializer_that_fails_fails_the_items_auto_runs_inline_too() -> None:
    spec = plait.Workers(initializer=broken_setup)
    results = list(plait.map(double, range(5), backend="auto", workers=spec, errors="return"))
    assert all(isinstance(r, LookupError) for r in results)


def test_a_task_handed_on_as_a_thread_finishes_runs_on_that_thread() -> None:
    """``submit_next``: the probe's next batch costs no thread start (a third of a millisecond,
    a tenth of a map of tiny items); a second one from the same finish gets a thread of its
    own, as does one submitted from outside a finish."""
    from plait._backends._thread import ThreadBackend
    from plait._task import Job, Kind, Outcome, Task
    from plait._worker_spec import Workers

    threads = ThreadBackend(Workers(4))
    ran: list[str] = []
    done = threading.Semaphore(0)
    job = Job(lambda _: ran.append(threading.current_thread().name), Kind.MAP)

    def last(task: Task, outcome: Outcome) -> None:
        done.release()

    def hand_on(count: int) -> Any:
        def finish(task: Task, outcome: Outcome) -> None:
            for _ in range(count):
                threads.submit_next(Task(job, [0], start=lambda: True, finish=last))
            done.release()

        return finish

    try:
        threads.submit(Task(job, [0], start=lambda: True, finish=hand_on(1)))
        for _ in range(2):
            assert done.acquire(timeout=30)
        assert len(set(ran)) == 1
        assert len(threads._all) == 1
        threads.submit(Task(job, [0], start=lambda: True, finish=hand_on(2)))
        for _ in range(3):
            assert done.acquire(timeout=30)
        assert len(threads._all) == 2  # the second of one finish: a thread of its own
        threads.submit_next(Task(job, [0], start=lambda: True, finish=last))  # (not a worker)
        assert done.acquire(timeout=30)
        assert len(ran) == 6
    finally:
        threads.shutdown(wait=True, cancel_pending=False)


def test_a_wider_thread_limit_starts_threads_for_the_tasks_already_queued() -> None:
    """The window may be full of batches queued behind the old width: no submit would come to
    start the threads the new width allows."""
    from plait._backends._thread import ThreadBackend
    from plait._task import Job, Kind, Outcome, Task
    from plait._worker_spec import Workers

    together = threading.Barrier(4, timeout=10)
    done: list[Outcome] = []
    threads = ThreadBackend(Workers(1))
    job = Job(lambda _: together.wait(), Kind.MAP)
    for _ in range(4):
        threads.submit(Task(job, [0], start=lambda: True, finish=lambda t, o: done.append(o)))
    threads.resize(4)
    threads.shutdown(wait=True, cancel_pending=False)
    assert [o.errors for o in done] == [{}] * 4  # all four met at the barrier


SLOT_SERVER = Path(__file__).resolve().parents[1] / "bench" / "slot_server.py"


@contextlib.contextmanager
def slot_server(slots: int, seconds: float) -> Iterator[int]:
    """A local HTTP server in its own process that serves ``slots`` requests at a time; its
    port."""
    with subprocess.Popen(
        [sys.executable, str(SLOT_SERVER), str(slots), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as server:  # (its exit closes the pipes, which ends the server, and waits for it)
        assert server.stdout is not None
        yield int(server.stdout.readline())


connections: list[http.client.HTTPConnection] = []  # every one opened: closed by the test


def fetch(port: int) -> int:
    state = plait.worker_state()  # one keep-alive connection per thread
    connection = state.get("connection")
    if connection is None:
        connection = state["connection"] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connections.append(connection)
    connection.request("GET", "/")
    response = connection.getresponse()
    response.read()
    return response.status


def test_waiting_on_a_server_with_few_slots_holds_near_them() -> None:
    """Start-up doubles the threads while throughput grows, then the width holds where more
    only queue at the server: near its 8 slots, far below the 256 that sleeps would get."""
    with slot_server(slots=8, seconds=0.010) as port:
        results = plait.map(fetch, [port] * 1500, backend="auto")
        try:
            assert set(results) == {200}
        finally:
            while connections:
                connections.pop().close()
    assert results.plan.adaptive
    # (Not much below 8 either, on an idle machine; on a busy one the server's own threads get
    # less CPU, its latency rises, and fewer in flight is right.)
    assert 2 <= results.plan.workers <= 24, results.plan


def test_waiting_on_nothing_but_time_grows_far_wider(caplog: pytest.LogCaptureFixture) -> None:
    """Each change of width is logged at DEBUG: start-up doubles it while throughput grows,
    which sleeps do until our own threads crowd the GIL."""
    with caplog.at_level(logging.DEBUG, logger="plait"):
        # (20 ms sleeps: at 128 threads they cost the program well under a core of CPU, whose
        # own limit would otherwise stop the growth of throughput early on a slow machine.)
        results = plait.map(nap20, range(3000), backend="auto")
        assert list(results) == list(range(3000))
    assert results.plan.adaptive
    widths = [int(m.split(" on ")[1].split()[0]) for m in caplog.messages if " threads (" in m]
    assert max(widths) >= 128, caplog.messages


def test_a_maximum_given_by_the_caller_is_never_passed() -> None:
    results = plait.map(sleepy, range(600), backend="auto", workers=plait.Workers(max_count=12))
    assert list(results) == list(range(600))
    assert results.plan.workers <= 12


def test_max_count_is_for_auto_only() -> None:
    with pytest.raises(ValueError, match="max_count applies to backend='auto' only"):
        plait.map(sleepy, range(3), backend="thread", workers=plait.Workers(max_count=4))
    with pytest.raises(ValueError, match="not both"):
        plait.Workers(4, max_count=8)


def test_a_map_with_a_timeout_is_never_run_in_the_consumers_thread() -> None:
    """Its first item blocks: run inline, it would hold the consumer, which could then not
    raise the map's TimeoutError at its deadline."""
    release = threading.Event()

    def first_blocks(x: int) -> int:
        if x == 0:
            release.wait(10)
        return x

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        list(plait.map(first_blocks, range(5), backend="auto", timeout=0.5))
    assert time.monotonic() - started < 5
    release.set()
    tiny = plait.map(double, range(10_000), backend="auto", timeout=30)
    assert list(tiny) == [2 * x for x in range(10_000)]
    assert tiny.plan.backend != "inline"


def test_auto_is_the_default_of_map_amap_and_pool() -> None:
    results = plait.map(sleepy, range(4))
    assert list(results) == list(range(4))
    assert results.plan.backend == "thread"
    assert "it waits" in results.plan.reason
    with plait.Pool() as pool:
        assert pool.backend == "auto"
        mapped = pool.map(sleepy, range(4))
        assert list(mapped) == list(range(4))
        assert mapped.plan.backend == "thread"

    async def gather() -> list[int]:
        return await plait.amap(sleepy, range(4))

    import asyncio

    assert asyncio.run(gather()) == list(range(4))


def first_waits_for(later: int) -> Any:
    """A function whose item 0 waits until item ``later`` has run."""
    ran = threading.Event()

    def fn(x: int) -> int:
        if x == 0:
            assert ran.wait(60)
        if x == later:
            ran.set()
        return x

    return fn


def test_a_first_item_that_waits_for_a_later_one_does_not_hold_the_map_up() -> None:
    """The probe runs one batch at a time; one that waits (here, for a later item) would stall
    the map for good. The watcher sees its thread wait and settles the map on threads."""
    results = plait.map(first_waits_for(5), range(10), chunksize=1)
    assert list(results) == list(range(10))
    assert results.plan.backend == "thread", str(results.plan)
    assert "still running after" in results.plan.reason
    assert "on CPU" in results.plan.reason


@pytest.mark.parametrize("wait", [True, False])
def test_a_shutdown_while_a_probe_batch_waits_for_a_later_item_runs_that_item(
    monkeypatch: pytest.MonkeyPatch, wait: bool
) -> None:
    """A pool shut down while its probe's first batch waits for an item that waits for the
    probe's plan: the shutdown settles the probe on threads, and the item runs. (Nobody looks
    at the probe here: shutdown(wait=True) waited for the first batch, which waited for good.)"""
    monkeypatch.setattr(_watched, "WATCH_AFTER", 3600.0)  # (nobody looks)
    started = threading.Event()
    together = threading.Barrier(4, timeout=30)  # (more than the probe's two threads)

    def fn(x: int) -> bool:
        if x == 0:
            started.set()
        together.wait()
        return True

    pool = plait.Pool("auto")
    results = pool.map(fn, range(4), chunksize=1)
    taken: list[bool] = []
    reader = threading.Thread(target=lambda: taken.extend(results))
    reader.start()
    try:
        assert started.wait(30)
        began = time.monotonic()
        pool.shutdown(wait=wait)
        reader.join(30)
        assert taken == [True] * 4
        assert time.monotonic() - began < 20, "the shutdown waited for the first item"
        assert "shut down before its first items were measured" in results.plan.reason
    finally:
        together.abort()  # (a failure above: nothing waits on)
        reader.join(30)
        pool.shutdown()


class AnyPoolClosed:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, plait.PoolClosed)


def test_a_shutdown_waits_for_batches_a_plan_is_handing_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The probe's plan is made; the batches that waited for it are on their way to the
    threads when the pool shuts down: they get there and run (they were dropped as Cancelled:
    the shutdown closed the threads first)."""
    handing_on, go = threading.Event(), threading.Event()
    size_threads = _auto.AutoBackend._size_threads

    def paused(self: _auto.AutoBackend) -> None:
        if not handing_on.is_set():  # (whoever made the plan: the probe's thread, or a look)
            handing_on.set()
            assert go.wait(30)
        size_threads(self)

    monkeypatch.setattr(_auto.AutoBackend, "_size_threads", paused)
    pool = plait.Pool("auto")
    results = pool.map(nap20, range(6), chunksize=1)
    reader, taken = read_in_a_thread(results)
    closer = threading.Thread(target=pool.shutdown)
    try:
        assert handing_on.wait(30)
        closer.start()
        closer.join(0.3)
        assert closer.is_alive(), "the shutdown did not wait for the batches handed on"
        go.set()
        closer.join(30)
        reader.join(30)
        # Every batch sent before the shutdown ran; the map then stopped (PoolClosed): items
        # it had not read yet were never sent.
        ran = [value for value in taken if not isinstance(value, BaseException)]
        assert ran == list(range(len(ran))), taken
        assert len(ran) >= 2, taken
        assert taken[len(ran) :] in ([], [AnyPoolClosed()]), taken
    finally:
        go.set()
        reader.join(30)
        if closer.ident is not None:
            closer.join(30)
        pool.shutdown()


def test_items_that_meet_at_a_barrier_all_run() -> None:
    barrier = threading.Barrier(6, timeout=60)
    results = plait.map(lambda x: (barrier.wait(), x)[1], range(6), chunksize=1)
    assert list(results) == list(range(6))


def test_a_first_batch_is_looked_at_while_the_consumer_reads_a_waiting_input() -> None:
    """Its first item waits for its second; the input, a crawler's queue, gives a third only
    once the second ran. The consumer, inside next() but reading the input, cannot look at the
    probe: a watcher thread must (the map settled only when the barrier broke, after 20 s)."""
    both = threading.Barrier(2, timeout=20)
    second_ran = threading.Event()

    def fn(x: int) -> int:
        if x < 2:
            both.wait()
            if x == 1:
                second_ran.set()
        return x

    def crawl() -> Iterator[int]:
        yield 0
        yield 1
        assert second_ran.wait(30)
        yield from range(2, 6)

    started = time.monotonic()
    results = plait.map(fn, crawl(), chunksize=1)
    assert list(results) == list(range(6))
    assert time.monotonic() - started < 15
    assert "still running after" in results.plan.reason


def test_ctrl_c_from_a_tiny_item_comes_after_every_result_before_it() -> None:
    """(Results read and run before it were lost: a batch run in the consumer's thread ran
    ahead of them, and raised at once.)"""

    def fn(x: int) -> int:
        if x == 1500:
            raise KeyboardInterrupt("from the function")
        return x

    for _ in range(5):
        results = plait.map(fn, range(3000))
        taken: list[int] = []
        with pytest.raises(KeyboardInterrupt) as caught:
            taken.extend(results)
        assert taken == list(range(1500))
        assert "plait: raised by item 1500: 1500" in getattr(caught.value, "__notes__", [])


def test_a_consumer_that_waits_watches_the_probe_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """No watcher thread at all: the consumer, waiting for the first result, sees the first
    batch wait (at a barrier no item can pass alone) and settles the map on threads."""
    monkeypatch.setattr(_auto, "WATCH_QUICK", float("inf"))
    barrier = threading.Barrier(6, timeout=60)
    results = plait.map(lambda x: (barrier.wait(), x)[1], range(6), chunksize=1)
    assert list(results) == list(range(6))
    assert "still running after" in results.plan.reason
    assert not [t for t in threading.enumerate() if t.name == "plait-auto-watcher"]


def test_a_probe_batch_that_ran_long_gets_a_watcher_for_the_next() -> None:
    """After a batch of a millisecond or more, the next may block while the consumer is busy
    elsewhere (here: waiting for that very batch's item, not for the map): a watcher thread
    looks at it and puts the map on threads."""
    second_started = threading.Event()
    release = threading.Event()

    def slow_then_waits(x: int) -> int:
        if x == 0:  # computes 5 ms: the probe goes on (waiting work would settle it at once)
            until = time.perf_counter() + 0.005
            while time.perf_counter() < until:
                pass
        elif x == 1:
            second_started.set()
            release.wait(30)  # until item 2 ran: only a thread beside this one runs it
        elif x == 2:
            release.set()
        return x

    results = plait.map(slow_then_waits, range(3), chunksize=1)
    assert next(results) == 0
    assert second_started.wait(30)
    assert release.wait(30)  # (the consumer is not in next(): the watcher settled the map)
    assert list(results) == [1, 2]


def test_where_no_thread_cpu_clock_can_be_read_a_long_first_batch_means_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_watched, "this_thread", lambda: Thread(threading.get_native_id(), None))
    results = plait.map(first_waits_for(3), range(5), chunksize=1)
    assert list(results) == list(range(5))
    assert "still running after" in results.plan.reason
    assert "on CPU" not in results.plan.reason


def spin_for(seconds: float) -> int:
    cpu = time.thread_time()
    while time.thread_time() - cpu < seconds:
        pass
    return os.getpid()


@several_cores
def test_a_long_first_batch_that_computes_is_measured_to_its_end() -> None:
    """The watcher looks at it and lets it run: computing work is not waiting work. (Enough
    items that some are left after the probe on a busy machine, where it takes up to
    PROBE_MIN_BATCHES + 2 x TOGETHER_ROUNDS of them: with 8, a loaded run probed them all and
    rightly found nothing left worth starting processes for.)"""
    skip_unless_a_thread_gets_a_core()
    results = plait.map(spin_for, [5 * _watched.WATCH_AFTER] * 32, chunksize=1)
    pids = list(results)
    assert results.plan.backend == "process", str(results.plan)
    assert "still running" not in results.plan.reason
    assert set(pids) - {os.getpid()}


def test_a_pool_closed_while_its_probe_is_watched_leaves_no_thread() -> None:
    release = threading.Event()
    started = threading.Event()

    def first_blocks(x: int) -> int:
        if x == 0:
            started.set()
            release.wait(60)
        return x

    pool = plait.Pool()
    results = pool.map(first_blocks, range(3), chunksize=1)
    thread = threading.Thread(target=lambda: list(results))
    thread.start()
    assert started.wait(60)
    release.set()
    thread.join(60)
    pool.shutdown()
    assert not [t for t in threading.enumerate() if t.name == "plait-auto-watcher"]


def run_at_a_barrier(threads: Any, count: int, then: Any = None) -> None:
    """Submit ``count`` one-item tasks that only end once all ``count`` run at once (calling
    ``then`` once they are submitted), and wait for them."""
    from plait._task import Job, Kind, Task

    together = threading.Barrier(count, timeout=30)
    ended = threading.Semaphore(0)
    errors: list[Any] = []

    def ended_one(_: Task, outcome: Any) -> None:
        errors.append(outcome.errors)
        ended.release()

    job = Job(lambda _: together.wait(), Kind.MAP)
    for _ in range(count):
        threads.submit(Task(job, [0], start=lambda: True, finish=ended_one))
    if then is not None:
        then()
    for _ in range(count):
        assert ended.acquire(timeout=60)
    assert errors == [{}] * count


def test_a_narrower_thread_limit_parks_threads_and_a_wider_one_wakes_them() -> None:
    """An adaptive width goes down and up all the time: the threads it no longer needs wait
    parked, and come back when it widens, rather than ending and being started anew."""
    from plait._backends._thread import ThreadBackend
    from plait._worker_spec import Workers

    threads = ThreadBackend(Workers(8))
    run_at_a_barrier(threads, 8)
    threads.resize(2)
    run_at_a_barrier(threads, 2)  # six threads park as they find the pool too wide
    threads.resize(8)
    run_at_a_barrier(threads, 8)  # impossible with fewer than eight threads taking work
    assert len(threads._all) == 8  # no thread was started for the second eight
    threads.shutdown(wait=True, cancel_pending=False)  # parked threads leave too
    assert not any(t.is_alive() for t in threads._all)


def test_a_resize_starts_many_threads_for_what_is_queued() -> None:
    from plait._backends._thread import ThreadBackend
    from plait._worker_spec import Workers

    threads = ThreadBackend(Workers(1))
    # The caller starts two; those start the rest, two each.
    run_at_a_barrier(threads, 40, then=lambda: threads.resize(40))
    threads.shutdown(wait=True, cancel_pending=False)


@several_cores
def test_a_short_map_of_computing_work_does_not_start_processes() -> None:
    """Its input's length is known: what is left after the probe would not pay for them.
    (Six items: on a machine slow enough that one takes 12 ms, as a loaded CI's did, twelve
    left more than the 0.1 s that starting processes needs to pay off.)"""
    skip_unless_a_thread_gets_a_core()
    results = plait.map(spin, range(6))
    assert [x for x, _ in results] == list(range(6))
    assert results.plan.backend == "thread", str(results.plan)
    assert "not worth starting processes" in results.plan.reason
    spun = plait.map(spin, iter(range(6)))  # a generator: its length is not known
    assert [x for x, _ in spun] == list(range(6))
    assert "not worth" not in spun.plan.reason


def tiny_then_slow(x: int) -> int:
    if x >= 10_000:
        time.sleep(0.0002)  # from here on: an item waits a fifth of a millisecond
    return x


def test_work_that_turns_slow_inline_is_measured_again(caplog: pytest.LogCaptureFixture) -> None:
    """(The batches already read when the plan was made run as they are: the input must go on
    long enough for the smaller batches after them to show the change.)"""
    with caplog.at_level(logging.INFO, logger="plait"):
        results = plait.map(tiny_then_slow, iter(range(18_000)))
        assert list(results) == list(range(18_000))
    messages = [r.getMessage() for r in caplog.records if r.name == "plait"]
    assert "runs inline" in messages[0], messages
    assert any("measures again" in m for m in messages), messages
    assert results.plan.backend == "thread", str(results.plan)
    assert "it waits" in results.plan.reason


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 400),
    plans=st.lists(st.sampled_from(["thread", "inline", "process"]), min_size=1, max_size=4),
    every=st.integers(1, 12),
    ordered=st.booleans(),
)
def test_measuring_again_mid_map_keeps_every_item_once_and_in_order(
    n: int, plans: list[str], every: int, ordered: bool
) -> None:
    """The plan changes up to three times mid-map (the work "changed" every ``every``
    batches): every item still runs once, and its result comes in its place."""
    count = Once()
    fn: Any = double if "process" in plans else count
    decisions = iter([*plans, *[plans[-1]] * 10])
    batches = iter(range(10**6))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_probe, "PROBE_ITEMS", 3)
        patch.setattr(_probe, "PROBE_SECONDS", float("inf"))
        patch.setattr(_auto, "decide", lambda measured, situation: Plan(next(decisions), 2, "test"))
        patch.setattr(
            _auto.AutoBackend,
            "_work_changed",
            lambda self, route, task, outcome: next(batches) % every == every - 1,
        )
        results = list(plait.map(fn, range(n), ordered=ordered, chunksize=2))
    expected = [2 * x for x in range(n)] if fn is double else list(range(n))
    assert results == expected if ordered else sorted(results) == expected
    if fn is count:
        assert count.seen == dict.fromkeys(range(n), 1)


def test_two_batches_taking_turns_with_the_gil_on_a_busy_machine_compute() -> None:
    """Measured on a machine with twice as many busy threads as cores: two batches of pure
    Python that ran together, each holding the GIL while it waited for a core, so that each
    was off most of the time the other held it. Judged together they compute; each one's
    share, summed, said they waited (0.29)."""
    first = _watched.Look(cpu=0.0126, waited=0.140, wall=0.270)
    second = _watched.Look(cpu=0.023, waited=0.136, wall=0.252)
    assert _watched.share([first, second]) >= WAITING_BELOW
    sleeping = _watched.Look(cpu=0.0005, waited=0.001, wall=0.270)
    assert _watched.share([sleeping, sleeping]) < WAITING_BELOW


def test_a_batch_kept_from_the_gil_by_threads_waiting_for_a_core_is_looked_at_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The program's other threads held the GIL while they waited for a core: the watched
    batch was off, but not waiting. Its first look says nothing of them; then their waits
    count for it as their CPU time would, and once they stop, it is judged on its own."""
    waits = iter([0.0, 0.050, 0.050])  # the other threads' waits for a core, at each look
    monkeypatch.setattr(_watched, "waited_by_others", lambda judged: next(waits))
    watched = _watched.Watched(None)  # type: ignore[arg-type]
    look = _watched.Look(cpu=0.001, waited=0.0, wall=0.040)
    assert watched.starved(look, [], look.cpu)  # the first look: nothing known of them
    later = _watched.Look(cpu=0.002, waited=0.0, wall=0.100)  # 59 ms more off; 50 ms theirs
    assert watched.starved(later, [], later.cpu)
    last = _watched.Look(cpu=0.003, waited=0.0, wall=0.160)  # 59 ms more off; none theirs
    assert not watched.starved(last, [], last.cpu)
