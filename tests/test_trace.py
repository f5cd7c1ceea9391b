"""``plait.trace``: the JSON read back and checked as Perfetto reads it, on every backend, and
the summary."""

from __future__ import annotations

import gc
import json
import os
import threading
import time
import weakref
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import plait
from conftest import on, read_in_a_thread, wait_for_file
from plait import _trace
from plait._engine import Engine
from plait._options import MapOptions
from plait._worker_spec import as_workers

pytestmark = pytest.mark.timeout(120)


def square(x: int) -> int:
    return x * x


def fail_on_seven(x: int) -> int:
    if x == 7:
        raise ValueError("seven")
    return x


def load(path: Path) -> list[dict[str, Any]]:
    document = json.loads(path.read_text())
    assert document["displayTimeUnit"] == "ms"
    events: list[dict[str, Any]] = document["traceEvents"]
    check_as_perfetto_reads_it(events)
    return events


def check_as_perfetto_reads_it(events: list[dict[str, Any]]) -> None:
    """What the trace viewers need: complete events with every field, in microseconds; every
    row and every process named; no two events on a row overlapping (one that runs inside
    another, whole, nests in it: a map run inline inside a batch that ran inline); a counter
    that never goes below zero."""
    named_rows = {(e["pid"], e["tid"]) for e in events if e["name"] == "thread_name"}
    named_places = {e["pid"] for e in events if e["name"] == "process_name"}
    rows: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    for event in events:
        assert event["ph"] in ("X", "i", "C", "M"), event
        assert isinstance(event["pid"], int), event
        if event["ph"] == "M":
            assert event["name"] in ("process_name", "process_sort_index", "thread_name")
            continue
        assert isinstance(event["ts"], int | float), event
        assert event["ts"] >= 0, event
        assert event["pid"] in named_places, event
        if event["ph"] == "C":
            assert event["args"]["waiting"] >= 0, event
            continue
        assert isinstance(event["name"], str), event
        assert event["name"], event
        assert isinstance(event["cat"], str), event
        assert isinstance(event["tid"], int), event
        assert (event["pid"], event["tid"]) in named_rows, event
        # (A batch lost with its worker counts its items where they ran again.)
        args = event["args"]
        assert args["items"] >= 1 or args.get("lost items", args.get("cancelled items")), event
        if event["ph"] == "X":
            assert event["dur"] > 0, event
            rows[event["pid"], event["tid"]].append((event["ts"], event["dur"]))
    for spans in rows.values():
        spans.sort(key=lambda span: (span[0], -span[1]))  # (of two at once, the outer first)
        inside: list[float] = []  # the ends of the events that the next may be inside
        for ts, dur in spans:
            while inside and inside[-1] <= ts + 1e-3:  # (rounded to nanoseconds)
                inside.pop()
            assert not inside or ts + dur <= inside[-1], spans  # (within it, whole, or after)
            inside.append(ts + dur)


def batches(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["ph"] in ("X", "i") and e["name"] == name]


def assert_every_item_once(events: list[dict[str, Any]], count: int) -> None:
    covered = sorted(
        index
        for e in events
        for index in range(e["args"]["first item"], e["args"]["last item"] + 1)
    )
    assert covered == list(range(count))
    assert sum(e["args"]["items"] for e in events) == count


def test_a_map_on_each_backend_is_recorded_batch_by_batch(any_backend: str, tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    fn = on(any_backend, square)
    with plait.trace(path) as trace:
        assert list(plait.map(fn, range(300), backend=any_backend, workers=2)) == [
            x * x for x in range(300)
        ]
    assert path.exists()
    events = load(path)
    mine = batches(events, fn.__qualname__)
    assert {e["cat"] for e in mine} == {any_backend}
    assert_every_item_once(mine, 300)
    rows = {e["args"]["name"] for e in events if e["name"] == "thread_name"}
    if any_backend == "thread":
        assert all(row.startswith("plait-thread-") for row in rows), rows
    elif any_backend == "process":
        places = {e["args"]["name"] for e in events if e["name"] == "process_name"}
        assert sum(place.startswith("worker process ") for place in places) == 2, places
    summary = trace.summary()
    assert "300 items" in summary
    assert "workers:" in summary


async def async_square(x: int) -> int:
    return x * x


def test_amap_of_coroutines_gets_a_lane_per_coroutine_at_once(tmp_path: Path) -> None:
    import asyncio

    async def main() -> list[int]:
        return [x async for x in plait.amap(async_square, range(50), workers=8)]

    with plait.trace(tmp_path / "run.json"):
        assert asyncio.run(main()) == [x * x for x in range(50)]
    events = load(tmp_path / "run.json")
    mine = batches(events, "async_square")
    assert_every_item_once(mine, 50)
    lanes = {e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert "event loop" in lanes
    assert len(lanes) <= 8  # (no more side by side than it ran)


def test_coroutines_side_by_side_keep_the_event_loops_busy_share_a_share() -> None:
    """Eight coroutines that wait together: the loop was busy while any ran (at most all the
    time), not the sum of their times (before: 'busy 504%')."""
    import asyncio
    import re

    async def nap(x: int) -> int:
        await asyncio.sleep(0.05)
        return x

    async def main() -> list[int]:
        return [x async for x in plait.amap(nap, range(32), workers=8)]

    with plait.trace() as trace:
        assert asyncio.run(main()) == list(range(32))
    summary = trace.summary()
    shares = [int(share) for share in re.findall(r"event loop\S*\s+busy\s+(\d+)%", summary)]
    assert shares, summary
    assert all(share <= 100 for share in shares), summary


def test_auto_records_where_it_chose_to_run(tmp_path: Path) -> None:
    with plait.trace(tmp_path / "run.json"):
        assert sum(plait.map(square, range(2000))) == sum(x * x for x in range(2000))
    mine = batches(load(tmp_path / "run.json"), "square")
    assert {e["cat"] for e in mine} == {"auto"}
    assert_every_item_once(mine, 2000)


def test_failures_are_marked_with_their_exception_type(backend: str, tmp_path: Path) -> None:
    with plait.trace(tmp_path / "run.json") as trace:
        results = list(
            plait.map(fail_on_seven, range(20), backend=backend, errors="return", chunksize=4)
        )
    assert isinstance(results[7], ValueError)
    failing = [
        e for e in batches(load(tmp_path / "run.json"), "fail_on_seven") if "error" in e["args"]
    ]
    assert len(failing) == 1
    assert failing[0]["args"]["error"] == "ValueError"
    assert failing[0]["args"]["errors"] == 1
    assert failing[0]["args"]["first item"] <= 7 <= failing[0]["args"]["last item"]
    assert "errors 1," in trace.summary()


def fail_once_on_multiples_of_five(item: tuple[int, str]) -> int:
    """Fails the first attempt at 0, 5, 10, ...: a file marks the attempt, so that every
    backend's workers (processes too) see it."""
    x, folder = item
    marker = Path(folder) / str(x)
    if x % 5 == 0 and not marker.exists():
        marker.touch()
        raise ConnectionError(f"first attempt at {x}")
    return x


def test_retries_are_marked_on_their_batches_and_counted(any_backend: str, tmp_path: Path) -> None:
    """A batch whose items failed, then succeeded on another attempt, shows no error: its
    retries are still marked, and the summary counts them."""
    fn = on(any_backend, fail_once_on_multiples_of_five)
    items = [(x, str(tmp_path)) for x in range(20)]
    with plait.trace(tmp_path / "run.json") as trace:
        results = list(plait.map(fn, items, backend=any_backend, retries=2, chunksize=4))
    assert results == list(range(20))
    mine = batches(load(tmp_path / "run.json"), fn.__qualname__)
    assert_every_item_once(mine, 20)
    assert sum(e["args"].get("retries", 0) for e in mine) == 4
    assert not any("error" in e["args"] for e in mine)
    assert "errors 0, retries 4," in trace.summary()


def test_retries_of_amap_coroutines_are_counted(tmp_path: Path) -> None:
    import asyncio

    fn = on("async", fail_once_on_multiples_of_five)

    async def main() -> list[int]:
        items = [(x, str(tmp_path)) for x in range(10)]
        return [x async for x in plait.amap(fn, items, retries=1)]

    with plait.trace(tmp_path / "run.json") as trace:
        assert asyncio.run(main()) == list(range(10))
    mine = batches(load(tmp_path / "run.json"), fn.__qualname__)
    assert sum(e["args"].get("retries", 0) for e in mine) == 2
    assert "retries 2," in trace.summary()


def hang_on_two(x: int) -> int:
    if x == 2:
        plait.sleep(60)  # (told to stop once it overran: the thread ends)
    return x


def test_a_timeout_is_marked_and_counted(backend: str, tmp_path: Path) -> None:
    with plait.trace(tmp_path / "run.json") as trace:
        results = list(
            plait.map(hang_on_two, range(4), backend=backend, task_timeout=1, errors="return")
        )
    assert isinstance(results[2], plait.TaskTimeout)
    marked = [
        e for e in batches(load(tmp_path / "run.json"), "hang_on_two") if "error" in e["args"]
    ]
    assert [e["args"]["error"] for e in marked] == ["TaskTimeout"]
    assert "timeouts 1," in trace.summary()


def crash_on_three(x: int) -> int:
    if x == 3:
        os._exit(1)
    return x


def test_a_crash_is_drawn_where_it_happened_and_its_reruns_where_they_ran(tmp_path: Path) -> None:
    """Item 3 kills its worker: its batch (0-3) is drawn on the worker that died, marked as run
    again; then each of its items on the worker that ran it, item 3 failing again alone."""
    with plait.trace(tmp_path / "run.json") as trace:
        results = list(
            plait.map(
                crash_on_three, range(8), backend="process", workers=2, chunksize=4, errors="return"
            )
        )
    assert isinstance(results[3], plait.WorkerCrashed)
    events = load(tmp_path / "run.json")
    mine = batches(events, "crash_on_three")
    lost = [e for e in mine if "run again" in e["args"]]
    assert [
        (a["first item"], a["lost items"], a["items"], a["error"], "errors" in a)
        for a in (e["args"] for e in lost)
    ] == [(0, 4, 0, "WorkerCrashed", False)]
    assert lost[0]["ph"] == "X"  # (it ran until its worker died)
    # Every item counted once over all the events (as a reader adds them up): the lost batch
    # counts none, its items count where they ran again; one item's error, once.
    assert sum(e["args"]["items"] for e in mine) == 8
    assert sum(e["args"].get("errors", 0) for e in mine) == 1
    delivered = [e for e in mine if "run again" not in e["args"]]
    assert_every_item_once(delivered, 8)
    alone = sorted(
        (e["args"]["first item"], e["args"].get("error"))
        for e in delivered
        if e["args"]["items"] == 1
    )
    assert alone == [(0, None), (1, None), (2, None), (3, "WorkerCrashed")]
    rows = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    places = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    where = {places[e["pid"]] for e in mine}
    assert all(place.startswith("worker process ") for place in where), where
    assert set(rows.values()) == {"worker"}
    died_in = {places[lost[0]["pid"]]}
    assert died_in < where  # (the reruns ran on other workers: that one was gone)
    summary = trace.summary()
    assert "8 items" in summary.splitlines()[0]
    assert "errors 1, retries 0, timeouts 0, crashes 2, batches run again 1" in summary
    assert "1 batch lost as it died: run again item by item" in summary


def test_submitted_calls_are_recorded_as_calls(backend: str, tmp_path: Path) -> None:
    with plait.trace(tmp_path / "run.json"), plait.Pool(backend, 2) as pool:
        futures = [pool.submit(square, x) for x in range(10)]
        assert [f.result(timeout=60) for f in futures] == [x * x for x in range(10)]
    calls = batches(load(tmp_path / "run.json"), "square")
    assert len(calls) == 10
    assert all(e["args"]["call"] for e in calls)


def test_coroutines_of_an_async_task_group_are_recorded_as_calls(tmp_path: Path) -> None:
    """Before, only its plain functions (run on its pool) were: its coroutines run on the
    caller's loop, past the engine."""
    import asyncio

    async def main() -> list[int]:
        async with plait.TaskGroup() as group:
            handles = [group.submit(async_square, x) for x in range(4)]
            handles.append(group.submit(square, 5))
        return [handle.result() for handle in handles]

    with plait.trace(tmp_path / "run.json") as trace:
        assert asyncio.run(main()) == [0, 1, 4, 9, 25]
    events = load(tmp_path / "run.json")
    coroutines = batches(events, "async_square")
    assert len(coroutines) == 4
    assert all(e["args"]["call"] and e["cat"] == "async" for e in coroutines)
    assert len(batches(events, "square")) == 1
    assert "5 items" in trace.summary().splitlines()[0]


@pytest.mark.parametrize("how", ["cancelled", "failed"])
def test_coroutines_an_amap_cut_short_are_recorded_as_cancelled(how: str) -> None:
    """Three coroutines run side by side; the amap is cancelled (``asyncio.wait_for``, a
    ``timeout=``, Ctrl-C under ``asyncio.run`` cancel it so) or one of them fails: those it
    cut short are recorded as they ran, their items cancelled (before: not at all, and a
    cancelled amap left a trace of 0 batches)."""
    import asyncio

    async def main() -> None:
        begun: list[int] = []
        all_began = asyncio.Event()

        async def work(x: int) -> int:
            begun.append(x)
            if len(begun) == 3:
                all_began.set()
            if how == "failed" and x == 0:
                await all_began.wait()
                raise ValueError("zero")
            await asyncio.sleep(60)  # (cancelled as the amap ends)
            return x

        async def collect() -> list[int]:
            return await plait.amap(work, range(3))

        consumer = asyncio.ensure_future(collect())
        if how == "failed":
            with pytest.raises(ValueError, match="zero"):
                await asyncio.wait_for(consumer, 60)
            return
        await asyncio.wait_for(all_began.wait(), 60)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer

    with plait.trace() as trace:
        asyncio.run(main())
    recorded = {b.first: b for b in trace.batches}
    assert sorted(recorded) == [0, 1, 2]
    cut_short = [1, 2] if how == "failed" else [0, 1, 2]
    for first, batch in recorded.items():
        assert (batch.group, batch.row) == ("this process", "event loop"), batch
        assert batch.ran, batch
        assert batch.elapsed > 0, batch
        assert batch.errors == ({"Cancelled": 1} if first in cut_short else {"ValueError": 1})
    assert f"items cancelled {len(cut_short)} " in trace.summary()
    check_as_perfetto_reads_it(trace.events())


def test_two_pools_at_once_never_share_a_row(tmp_path: Path) -> None:
    """Their threads have the same names; their rows are still their own."""
    barrier = threading.Barrier(4)

    def meet(x: int) -> int:
        barrier.wait(timeout=30)
        return x

    with (
        plait.trace(tmp_path / "run.json"),
        plait.Pool("thread", 2) as one,
        plait.Pool("thread", 2) as two,
    ):
        futures = [pool.submit(meet, x) for pool in (one, two) for x in range(2)]
        assert [f.result(timeout=60) for f in futures] == [0, 1, 0, 1]
    events = load(tmp_path / "run.json")  # (no overlap on any row)
    assert len({(e["pid"], e["tid"]) for e in batches(events, meet.__qualname__)}) == 4


def sum_of_squares_on_a_hundred(x: int) -> int:
    """Item 100 runs a map of its own, in the same thread: inline too, inside the outer batch."""
    if x == 100:
        return sum(plait.map(square, range(100), chunksize=10))
    return x


def test_a_map_run_inline_inside_an_inline_batch_is_drawn_inside_it_when_it_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both maps' batches are on the caller's row ("inline [its id]"). Before, the rows' rule
    put each inner batch after the outer one ended: drawn where it never ran."""
    from plait._backends import _auto, _probe
    from plait._plan import Plan

    # Every map planned inline after its first few items (run by the probe, on a thread).
    monkeypatch.setattr(_probe, "PROBE_ITEMS", 4)
    monkeypatch.setattr(_probe, "PROBE_SECONDS", float("inf"))
    monkeypatch.setattr(_auto, "tiny_plan", lambda measured, **_: Plan("inline", 1, "a test"))
    path = tmp_path / "run.json"
    with plait.trace(path) as trace:
        results = list(plait.map(sum_of_squares_on_a_hundred, range(200), chunksize=20))
    assert results[99:102] == [99, sum(x * x for x in range(100)), 101]
    events = load(path)  # (nested whole, or not overlapping)
    mine = batches(events, "sum_of_squares_on_a_hundred")
    (outer,) = [e for e in mine if e["args"]["first item"] <= 100 <= e["args"]["last item"]]
    row = (outer["pid"], outer["tid"])
    inner = [e for e in batches(events, "square") if (e["pid"], e["tid"]) == row]
    assert inner  # (what ran after the probe, inline)
    for event in inner:
        assert outer["ts"] < event["ts"]
        assert event["ts"] + event["dur"] <= outer["ts"] + outer["dur"]
    began = {(b.function, b.first): (b.start - trace._opened) * 1e6 for b in trace.batches}
    for event in mine + batches(events, "square"):
        assert event["ts"] == pytest.approx(began[event["name"], event["args"]["first item"]])


def test_a_batch_on_a_workers_row_is_put_after_one_it_overlaps_but_is_not_inside() -> None:
    """Inside another batch of its row, whole, a batch is drawn where it ran (a call inside
    its caller); begun inside it but ending after it, it is put after it (the row's rule)."""
    from plait._trace_out import lay_out

    def batch(start: float, elapsed: float, first: int) -> _trace.Batch:
        where = ("this process", "inline [7]")
        return _trace.Batch(
            "f", "inline", *where, start, start, elapsed, 1, first, 1, False, {}, True
        )

    layout = lay_out([batch(1.0, 0.5, 0), batch(1.1, 0.1, 1), batch(1.3, 0.3, 2)], 1.0)
    placed = [(p.batch.first, p.row, round(p.ts), round(p.dur)) for p in layout.placed]
    assert placed == [
        (0, 0, 0, 500_000),  # (ts and dur in microseconds)
        (1, 0, 100_000, 100_000),  # within it, whole: where it ran
        (2, 0, 500_000, 300_000),  # begun within it, ended after it: after it
    ]
    assert [p.depth for p in layout.placed] == [0, 1, 0]


def test_the_queue_in_front_of_the_workers_is_a_counter(tmp_path: Path) -> None:
    with plait.trace(tmp_path / "run.json"):
        list(plait.map(square, range(100), backend="thread", workers=2, chunksize=1))
    counter = [e for e in load(tmp_path / "run.json") if e["ph"] == "C"]
    assert counter
    assert counter[-1]["args"]["waiting"] == 0
    assert max(e["args"]["waiting"] for e in counter) >= 1


def test_the_queue_counter_of_amap_coroutines_never_goes_below_zero(tmp_path: Path) -> None:
    """A coroutine waits for no worker: it is made as it starts. Before, its "started" came
    before its "queued" at the same time, and the counter went to -1 (and the summary's share
    of time that a batch waited counted from the clock's zero)."""
    import asyncio

    from plait._trace_out import _queued_share

    async def main() -> list[int]:
        return [x async for x in plait.amap(async_square, range(5))]

    with plait.trace(tmp_path / "run.json") as trace:
        assert asyncio.run(main()) == [x * x for x in range(5)]
    counter = [e["args"]["waiting"] for e in load(tmp_path / "run.json") if e["ph"] == "C"]
    assert counter
    assert min(counter) == 0
    assert _queued_share(trace.batches, 1.0) == 0.0


def test_the_summary_says_when_the_input_was_the_bottleneck() -> None:
    gate = threading.Event()

    def slow_input() -> Any:
        for x in range(20):
            gate.wait(0.02)  # (never set: a slow producer, 20 ms an item)
            yield x

    with plait.trace() as trace:
        assert list(plait.map(square, slow_input(), backend="thread", workers=4)) == [
            x * x for x in range(20)
        ]
    assert "the input (or the consumer of the results) was the bottleneck" in trace.summary()


def test_nothing_is_recorded_outside_the_block(tmp_path: Path) -> None:
    with plait.trace() as trace:
        pass
    list(plait.map(square, range(50), backend="thread"))
    assert trace.batches == []
    assert _trace.active == []
    assert trace.summary().startswith("plait trace: 0 batches")


def test_the_same_trace_entered_twice_records_each_batch_once(tmp_path: Path) -> None:
    trace = plait.trace(tmp_path / "run.json")
    with trace:
        with trace:
            list(plait.map(square, range(10), backend="thread", chunksize=5))
        assert not (tmp_path / "run.json").exists()  # (written as the outer block ends)
        list(plait.map(square, range(10, 20), backend="thread", chunksize=5))
    mine = batches(load(tmp_path / "run.json"), "square")
    assert sorted(e["args"]["first item"] for e in mine) == [0, 0, 5, 5]  # (two maps)
    assert sum(e["args"]["items"] for e in mine) == 20
    assert _trace.active == []


def test_a_trace_whose_block_ended_is_not_entered_again(tmp_path: Path) -> None:
    """A trace records one block. Before, a second block was recorded on the first one's: the
    first block's batches got negative times, and the summary divided both blocks' items by
    the second block's time."""
    trace = plait.trace(tmp_path / "run.json")
    with trace:
        list(plait.map(square, range(10), backend="thread"))
    with pytest.raises(RuntimeError, match=r"plait\.trace: this trace's block has ended"):
        trace.__enter__()
    assert _trace.active == []
    list(plait.map(square, range(10), backend="thread"))
    assert sum(b.items for b in trace.batches) == 10
    assert all(e["ts"] >= 0 for e in load(tmp_path / "run.json") if "ts" in e)


def test_a_path_that_is_not_json_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"plait\.trace: path must end in \.json .* or \.html"):
        plait.trace("run.txt")


def hang_from_ten(x: int) -> int:
    if x >= 10:
        plait.sleep(60)  # (told to stop as the map is left; a process worker is ended)
    return x


def test_leaving_a_map_cancels_items_and_is_no_error(backend: str, tmp_path: Path) -> None:
    """A break is the consumer's choice: the items it cut short are counted as cancelled, not
    as errors, and not as items that ran (before: 'errors 66' on processes)."""
    with plait.trace(tmp_path / "run.json") as trace:
        for x in plait.map(hang_from_ten, range(40), backend=backend, workers=2, chunksize=5):
            if x == 9:
                break
    summary = trace.summary()
    assert "errors 0," in summary, summary
    assert "items cancelled" in summary, summary
    events = batches(load(tmp_path / "run.json"), "hang_from_ten")
    assert not any("errors" in e["args"] for e in events)
    cut = [e["args"] for e in events if "cancelled items" in e["args"]]
    assert cut
    assert all(
        a["items"] + a["cancelled items"] == a["last item"] - a["first item"] + 1 for a in cut
    )


def run_until_released(item: tuple[str, int]) -> int:
    """Says it started, then runs until the test releases it, deaf to being told to stop
    (``time.sleep``, not ``plait.sleep``): the map gives it up while it runs."""
    folder, x = item
    Path(folder, f"started-{x}").touch()
    deadline = time.monotonic() + 30
    while not Path(folder, "release").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return x


def test_batches_running_when_a_map_is_given_up_are_drawn_on_their_workers(
    backend: str, tmp_path: Path
) -> None:
    """A map given up while two of its batches run (``abort()``, as ``timeout=`` and Ctrl-C
    give it up): each is recorded on the worker that ran it, from its start until the map gave
    it up, its item cancelled, and its queue wait is the time before it began (before: a mark
    on the row "no worker known", its running time counted as queue wait)."""
    items = [(str(tmp_path), x) for x in range(4)]
    with plait.trace() as trace:
        results = plait.map(run_until_released, items, backend=backend, workers=2, chunksize=1)
        reader, taken = read_in_a_thread(results)
        for x in (0, 1):
            wait_for_file(tmp_path / f"started-{x}")
        both_ran = time.perf_counter()
        results.abort()
        reader.join(30)
    (tmp_path / "release").touch()  # (an abandoned thread ends)
    assert isinstance(taken[-1], plait.Cancelled)
    running = [b for b in trace.batches if b.first in (0, 1)]
    assert len(running) == 2
    for batch in running:
        assert batch.row != _trace.NO_WORKER, batch
        assert batch.errors == {"Cancelled": 1}, batch
        assert batch.start < both_ran <= batch.start + batch.elapsed, batch
    assert len({(b.group, b.row) for b in running}) == 2
    events = trace.events()
    check_as_perfetto_reads_it(events)
    drawn = [e for e in batches(events, "run_until_released") if e["args"]["first item"] < 2]
    assert [e["ph"] for e in drawn] == ["X", "X"]
    for event, batch in zip(drawn, sorted(running, key=lambda b: b.start), strict=True):
        assert event["args"]["queued ms"] < (both_ran - batch.queued) * 1e3, event
    summary = trace.summary()
    assert all(f"{b.group} / {b.row}" in summary for b in running), summary


def test_a_maps_own_trace_holds_the_batches_running_as_it_was_given_up(
    backend: str, tmp_path: Path
) -> None:
    """``trace=`` on a map given up while two of its batches run: its file draws each on its
    worker until the map gave it up, its item cancelled (before, the file was written before
    the map's workers were released: on processes it lacked both)."""
    path = tmp_path / "run.json"
    items = [(str(tmp_path), x) for x in range(4)]
    results = plait.map(
        run_until_released, items, backend=backend, workers=2, chunksize=1, trace=path
    )
    reader, taken = read_in_a_thread(results)
    for x in (0, 1):
        wait_for_file(tmp_path / f"started-{x}")
    results.abort()
    reader.join(30)
    (tmp_path / "release").touch()  # (an abandoned thread ends)
    assert isinstance(taken[-1], plait.Cancelled)
    events = batches(load(path), "run_until_released")
    running = [e for e in events if e["args"]["first item"] in (0, 1)]
    assert [e["ph"] for e in running] == ["X", "X"], events
    assert [e["args"].get("cancelled items") for e in running] == [1, 1], events
    assert len({(e["pid"], e["tid"]) for e in running}) == 2, events


def test_a_batch_skipped_as_its_map_was_closed_is_recorded_as_never_run(tmp_path: Path) -> None:
    """A batch waiting for a worker of a pool when its map was given up is skipped as it was
    to start: it is drawn as never run (before, it was in no trace, and neither were its items).
    (Threads: a worker process is handed its next batch before the one it runs ends.)"""
    items = [(str(tmp_path), x) for x in range(2)]
    trace = plait.Trace()
    with plait.Pool("thread", workers=1) as pool:
        results = pool.map(run_until_released, items, chunksize=1, trace=trace)
        reader, taken = read_in_a_thread(results)
        wait_for_file(tmp_path / "started-0")
        results.abort()
        reader.join(30)
        (tmp_path / "release").touch()
    assert isinstance(taken[-1], plait.Cancelled)
    ran, skipped = sorted(trace.batches, key=lambda b: b.first)
    assert (ran.first, ran.ran, ran.errors) == (0, True, {})
    assert (skipped.first, skipped.ran, skipped.errors) == (1, False, {"Cancelled": 1})


def quick_then_until_released(item: tuple[str, int]) -> int:
    """Item 0 returns at once; the others as ``run_until_released``."""
    return item[1] if item[1] == 0 else run_until_released(item)


def test_an_aborted_maps_trace_is_written_as_it_is_closed_and_whole(
    backend: str, tmp_path: Path
) -> None:
    """``abort()`` with nobody waiting for a result: the map ends at the next ``next()``, which
    raises Cancelled (or ``close()``, or the program's exit: test_trace_exit), and its trace is
    written then, with every batch it made: the one running drawn on its worker until then,
    its item cancelled, and those that never started as marks."""
    path = tmp_path / "run.json"
    items = [(str(tmp_path), x) for x in range(20)]
    results = plait.map(
        quick_then_until_released, items, backend=backend, workers=2, chunksize=1, trace=path
    )
    assert next(results) == 0
    wait_for_file(tmp_path / "started-1")
    results.abort()
    with pytest.raises(plait.Cancelled):
        next(results)
    (tmp_path / "release").touch()  # (an abandoned thread ends)
    events = batches(load(path), "quick_then_until_released")
    covered = sorted(
        index
        for e in events
        for index in range(e["args"]["first item"], e["args"]["last item"] + 1)
    )
    assert covered == list(range(len(covered))), events
    for event in events:
        if event["args"]["first item"] == 0:
            assert "error" not in event["args"], event
        else:
            assert event["args"]["cancelled items"] == 1, event
    (running,) = [e for e in events if e["args"]["first item"] == 1]
    assert running["ph"] == "X", running


def test_a_batch_waiting_for_a_worker_as_its_map_is_aborted_never_starts(
    tmp_path: Path,
) -> None:
    """After ``abort()`` nothing more of the map starts, so its trace shows what ran up to the
    abort: a batch still waiting for a worker is skipped, drawn as never run (before, it ran
    once a worker was free, until the map was closed). (Threads: a worker process is handed
    its next batch before the one it runs ends.)"""
    path = tmp_path / "run.json"
    items = [(str(tmp_path), x) for x in range(4)]
    with plait.Pool("thread", workers=2) as pool:
        results = pool.map(quick_then_until_released, items, chunksize=1, trace=path)
        assert next(results) == 0
        for x in (1, 2):
            wait_for_file(tmp_path / f"started-{x}")
        results.abort()
        (tmp_path / "release").touch()
    results.close()
    assert not (tmp_path / "started-3").exists()
    events = batches(load(path), "quick_then_until_released")
    ended = [e for e in events if e["args"]["first item"] in (1, 2)]
    assert [e["ph"] for e in ended] == ["X", "X"], events
    assert not any("error" in e["args"] for e in ended), events
    (waiting,) = [e for e in events if e["args"]["first item"] == 3]
    assert waiting["ph"] == "i", waiting
    assert waiting["args"]["ran"] is False, waiting


def test_a_path_in_no_folder_is_refused_at_the_call_not_after_the_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"is not a folder this program can write to"):
        plait.trace(tmp_path / "missing" / "run.json")
    with pytest.raises(ValueError, match=r"plait\.map: the trace would be written"):
        plait.map(square, range(3), trace=tmp_path / "missing" / "run.html")


def test_a_path_that_is_a_folder_or_a_file_it_cannot_write_is_refused_at_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, both passed the check and failed as the block ended, after the work: the
    trace was lost (IsADirectoryError, PermissionError)."""
    folder = tmp_path / "run.json"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"plait\.trace: .*run\.json', but that is a folder"):
        plait.trace(folder)
    with pytest.raises(ValueError, match=r"plait\.map: .*run\.json', but that is a folder"):
        plait.map(square, range(3), trace=folder)
    locked = tmp_path / "locked.html"
    locked.write_text("")
    locked.chmod(0o444)
    real_access = os.access

    def as_a_user_sees_it(where: Any, mode: int, **options: Any) -> bool:
        # (root may write any file: these tests run as root too.)
        if Path(where) == locked and mode & os.W_OK:
            return False
        return real_access(where, mode, **options)

    monkeypatch.setattr(os, "access", as_a_user_sees_it)
    with pytest.raises(ValueError, match=r"locked\.html', but that is a file this program cannot"):
        plait.trace(locked)


def test_a_trace_that_cannot_be_written_leaves_the_blocks_own_error_as_it_was(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    with pytest.raises(KeyError) as caught, plait.trace(folder / "run.json"):
        list(plait.map(square, range(10), backend="thread"))
        folder.rmdir()  # (the folder goes while the block runs)
        raise KeyError("the block's own")
    assert any("the trace could not be written" in note for note in caught.value.__notes__)


def test_a_maps_own_trace_that_cannot_be_written_as_its_end_fails_is_a_note_on_that_error(
    tmp_path: Path,
) -> None:
    """The map's trace is written after its workers are released; when that release raised
    (Ctrl-C while it waited), its error goes on as itself, and the trace's failure is a note."""
    folder = tmp_path / "gone"
    folder.mkdir()
    engine = Engine("thread", as_workers(2))

    def interrupted(complete: bool, hurried: bool) -> None:
        folder.rmdir()
        raise KeyboardInterrupt

    options = MapOptions.build("plait.map", "raise", {"trace": folder / "run.json"})
    with pytest.raises(KeyboardInterrupt) as caught:
        list(engine.open_map(square, (range(10),), options, on_close=interrupted))
    engine.shutdown()
    assert any("the trace could not be written" in note for note in caught.value.__notes__)


def test_an_error_in_the_block_still_writes_the_trace(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    with pytest.raises(ValueError, match="seven"), plait.trace(path):
        list(plait.map(fail_on_seven, range(10), backend="thread"))
    assert batches(load(path), "fail_on_seven")


def test_trace_on_one_map_records_that_map_alone(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    other = plait.map(fail_on_seven, range(5), backend="thread", errors="return")
    results = plait.map(square, range(100), backend="thread", workers=2, trace=path)
    assert list(other) == [0, 1, 2, 3, 4]
    assert not path.exists()  # (written as the map ends)
    assert sum(results) == sum(x * x for x in range(100))
    events = load(path)
    assert_every_item_once(batches(events, "square"), 100)
    assert not batches(events, "fail_on_seven")


def test_trace_on_maps_can_gather_into_one_trace(any_backend: str, tmp_path: Path) -> None:
    trace = plait.Trace()
    fn = on(any_backend, square)
    for _ in range(2):
        assert len(list(plait.map(fn, range(30), backend=any_backend, trace=trace))) == 30
    assert sum(b.items for b in trace.batches) == 60
    trace.write(tmp_path / "both.json")
    assert len(batches(load(tmp_path / "both.json"), fn.__qualname__)) >= 2


def test_a_trace_given_to_a_map_then_entered_keeps_its_earliest_start(tmp_path: Path) -> None:
    """Before, its block's start became the trace's: the map's batches, recorded earlier, got
    negative times."""
    trace = plait.Trace(tmp_path / "run.json")
    assert list(plait.map(square, range(10), backend="thread", trace=trace)) == [
        x * x for x in range(10)
    ]
    with trace:
        list(plait.map(square, range(10, 20), backend="thread"))
    mine = batches(load(tmp_path / "run.json"), "square")  # (no time below zero)
    assert sum(e["args"]["items"] for e in mine) == 20
    assert "20 items" in trace.summary()


def test_trace_on_amap_of_coroutines(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "amap.html"

    async def main() -> list[int]:
        return [x async for x in plait.amap(async_square, range(10), trace=path)]

    assert asyncio.run(main()) == [x * x for x in range(10)]
    assert "async_square" in path.read_text()


def test_only_a_map_with_a_trace_to_write_is_closed_at_exit_and_it_is_held_weakly(
    tmp_path: Path,
) -> None:
    """A map still open as the program exits is closed then only if it has a file to write
    (``trace=`` a path; test_trace_exit): others are not held at all, and one that is, weakly,
    so that dropping it still closes it, and writes its trace, at once."""
    untraced = plait.map(square, range(10), backend="thread")
    gathered = plait.map(square, range(10), backend="thread", trace=plait.Trace())
    assert next(untraced) == next(gathered) == 0
    assert untraced._run not in _trace._unwritten
    assert gathered._run not in _trace._unwritten
    untraced.close()
    gathered.close()
    closed = plait.map(square, range(10), backend="thread", trace=tmp_path / "closed.json")
    assert closed._run in _trace._unwritten
    closed.close()
    assert closed._run not in _trace._unwritten
    path = tmp_path / "dropped.json"
    results = plait.map(square, range(10), backend="thread", trace=path)
    assert next(results) == 0
    run = weakref.ref(results._run)
    del results
    gc.collect()
    assert run() is None
    assert batches(load(path), "square")


def test_a_bad_trace_is_refused_at_the_call() -> None:
    with pytest.raises(TypeError, match=r"plait\.map: trace must be a path"):
        plait.map(square, range(3), trace=3)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"plait\.map: path must end in \.json"):
        plait.map(square, range(3), trace="run.txt")
