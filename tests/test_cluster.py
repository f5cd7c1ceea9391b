"""The cluster backends (Dask, Ray): the same test bodies on each, against a real cluster.

Each engine's cluster is started once for the module (two workers, each a process of its own)
and is the one plait finds while these tests run: Dask's as the current client, Ray's as the
Ray this program runs. Without an engine installed its tests skip, except where
``PLAIT_REQUIRE_EXTRAS=1`` (CI) makes that a failure. What only one engine has (Dask's task
stream, Ray's worker processes) is tested in ``test_dask.py`` and ``test_ray.py``.
"""

from __future__ import annotations

import gc
import importlib
import itertools
import os
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import plait
from engine_scripts import CTRL_C, TERMINATE, interrupt, living, run_script
from plait._backends._cluster import ClusterBackend
from plait._scheduler import max_items_in_flight
from test_attack_process import HereOnly, double_value
from test_lifecycle import broken_initializer, remember_worker, who_am_i

pytestmark = [pytest.mark.timeout(180), pytest.mark.engine_client]

REQUIRED = os.environ.get("PLAIT_REQUIRE_EXTRAS") == "1"


def _engine(module: str) -> Any:
    if REQUIRED:
        return __import__(module)
    return pytest.importorskip(module)


@pytest.fixture(scope="module", params=["dask", "ray"])
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "dask":
        distributed = _engine("distributed")
        from plait._backends._dask_local import LocalDaskCluster

        cluster = LocalDaskCluster(2)  # the kind of cluster plait starts when there is none
        try:
            client = distributed.Client(cluster.address)  # the current client: plait finds it
            client.wait_for_workers(2, timeout=60)
            warm_up(lambda: client.gather(client.map(abs, [-1, -2], pure=False)) == [1, 2])
            yield "dask"
            client.close()
        finally:
            cluster.close()
    else:
        ray = _engine("ray")
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
        try:
            basename = ray.remote(os.path.basename)  # (a function every worker imports)
            warm_up(lambda: ray.get([basename.remote(f"/{i}") for i in range(2)]) == ["0", "1"])
            yield "ray"
        finally:
            ray.shutdown()


def warm_up(check: Any) -> None:
    """The engine starts threads and connections of its own on first use: here, before any
    test's leak check begins, rather than inside the first test. (A map through plait, too.)"""
    assert check()


@pytest.fixture(scope="module", autouse=True)
def _plait_warm(engine: str) -> None:
    assert list(plait.map(square, range(4), backend=engine)) == [0, 1, 4, 9]


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def test_map_gives_every_result_in_order(engine: str) -> None:
    assert list(plait.map(square, range(500), backend=engine)) == [x * x for x in range(500)]


def test_unordered_map_gives_every_result_once(engine: str) -> None:
    results = list(plait.map(square, range(200), backend=engine, ordered=False))
    assert sorted(results) == [x * x for x in range(200)]


def test_tiny_items_travel_in_batches_not_one_task_each(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Counted as plait sends them: one engine task per batch.)"""
    backend: type[ClusterBackend] = getattr(
        importlib.import_module(f"plait._backends._{engine}"), f"{engine.title()}Backend"
    )
    launched = itertools.count()
    launch = backend._launch

    def counting(self: ClusterBackend, *args: Any) -> Any:
        next(launched)
        return launch(self, *args)

    monkeypatch.setattr(backend, "_launch", counting)
    total = sum(plait.map(square, range(20_000), backend=engine))
    assert total == sum(x * x for x in range(20_000))
    assert 0 < next(launched) <= 200  # (about 20,000 / 4,096 once sized; small batches first)


def test_an_item_the_worker_cannot_rebuild_fails_alone_and_nothing_is_lost(engine: str) -> None:
    """The worker's "items not read" was taken for a clean batch: its results were read as
    none, and the map went on without them (6 items, 3 results; no error, even with
    errors="raise"). The batch runs again item by item, as on local processes."""
    items: list[int | HereOnly] = list(range(12))
    items[5] = HereOnly(5)
    results = list(plait.map(double_value, items, backend=engine, chunksize=4, errors="return"))
    assert len(results) == 12
    assert isinstance(results[5], LookupError), repr(results[5])
    assert [r for i, r in enumerate(results) if i != 5] == [2 * i for i in range(12) if i != 5]


def test_an_endless_input_is_read_a_bounded_window_ahead(engine: str) -> None:
    read = itertools.count()

    def endless() -> Iterator[int]:
        while True:
            yield next(read)

    with plait.map(square, endless(), backend=engine) as results:
        for index, value in enumerate(results):
            assert value == index * index
            if index == 30_000:
                break
    ahead = next(read) - 30_000
    assert ahead <= max_items_in_flight(engine) + 16384


def test_the_users_own_exception_with_the_workers_traceback_and_the_item(engine: str) -> None:
    with pytest.raises(ValueError, match="bad item 3") as info:
        list(plait.map(fail_on_three, range(10), backend=engine, chunksize=2))
    text = "".join(traceback.format_exception(info.value))
    assert "in fail_on_three" in text
    assert any("raised by item 3: 3" in note for note in info.value.__notes__)


def test_errors_return_puts_the_exception_in_the_items_place(engine: str) -> None:
    results = list(plait.map(fail_on_three, range(6), backend=engine, errors="return"))
    assert results[:3] == [0, 1, 2]
    assert isinstance(results[3], ValueError)
    assert results[4:] == [4, 5]


async def double(x: int) -> int:
    return 2 * x


def sometimes_a_coroutine(x: int) -> Any:
    return double(x) if x % 2 else x


def test_a_coroutine_a_plain_function_returns_on_a_worker_fails_its_item(engine: str) -> None:
    """It is closed there, never run (test_call_kinds); the error says how to have it awaited.
    (One item a batch: a batch is looked at through its first value, see _not_awaited.)"""
    results = list(
        plait.map(sometimes_a_coroutine, range(6), backend=engine, chunksize=1, errors="return")
    )
    assert results[0::2] == [0, 2, 4]
    for failed in results[1::2]:
        assert isinstance(failed, TypeError)
        assert "returned a coroutine (of double) but is not an async function" in str(failed)


def test_an_initializer_runs_once_in_each_worker_and_tasks_reach_its_state(engine: str) -> None:
    """Each thread of the engine that runs a pool's batches is one of its workers (as on
    threads); a second pool with the same initializer has workers of its own, set up again;
    timed items, on a thread of their own, reach their worker's state too."""
    workers = plait.Workers(2, initializer=remember_worker, initargs=("db",))
    options: list[dict[str, Any]] = [{"chunksize": 3}, {"chunksize": 3}, {"task_timeout": 60}]
    for count, given in zip([60, 60, 4], options, strict=True):
        results = list(plait.map(who_am_i, range(count), backend=engine, workers=workers, **given))
        assert {tag for tag, _, _ in results} == {"db"}
        for who in {who for _, who, _ in results}:  # each counted its own, from its first
            counts = sorted(calls for _, w, calls in results if w == who)
            assert counts == list(range(1, len(counts) + 1)), given


def test_a_failing_initializer_fails_each_item_with_its_error(engine: str) -> None:
    workers = plait.Workers(2, initializer=broken_initializer)
    with pytest.raises(LookupError, match="no database today") as info:
        list(plait.map(square, range(3), backend=engine, workers=workers))
    assert any("initializer failed" in note for note in info.value.__notes__)
    results = list(plait.map(square, range(50), backend=engine, workers=workers, errors="return"))
    assert all(isinstance(r, LookupError) for r in results)
    assert len({id(r) for r in results}) == 50


def test_an_initializer_that_cannot_travel_fails_the_items_and_says_so(engine: str) -> None:
    lock = threading.Lock()
    workers = plait.Workers(2, initializer=lambda: lock.acquire())
    with pytest.raises(TypeError) as info:
        list(plait.map(square, range(3), backend=engine, workers=workers))
    assert any("initializer could not be pickled" in note for note in info.value.__notes__)


def fail_once(path: str) -> str:
    marker = Path(path)
    if not marker.exists():
        marker.write_text("tried")
        raise ConnectionError(f"first attempt at {marker.name}")
    return marker.name


def test_retries_run_again_on_the_cluster(engine: str, tmp_path: Path) -> None:
    paths = [str(tmp_path / f"item{i}") for i in range(6)]
    results = list(plait.map(fail_once, paths, backend=engine, retries=1))
    assert results == [f"item{i}" for i in range(6)]


def crash_on_three(x: int) -> int:
    if x == 3:
        os._exit(1)
    return x


def test_a_worker_that_dies_fails_only_the_item_it_ran(engine: str, tmp_path: Path) -> None:
    from test_trace import assert_every_item_once, batches, load

    with plait.trace(tmp_path / "run.json") as trace:
        results = list(
            plait.map(crash_on_three, range(8), backend=engine, chunksize=4, errors="return")
        )
    assert isinstance(results[3], plait.WorkerCrashed)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
    # The trace: the batch lost with its worker, then its items each on the worker that ran it.
    mine = batches(load(tmp_path / "run.json"), "crash_on_three")
    lost = [e["args"] for e in mine if "run again" in e["args"]]
    assert [(a["first item"], a["lost items"], a["error"]) for a in lost] == [
        (0, 4, "WorkerCrashed")
    ]
    assert sum(e["args"]["items"] for e in mine) == 8  # (each item once, where it ran)
    assert sum(e["args"].get("errors", 0) for e in mine) == 1
    assert_every_item_once([e for e in mine if "run again" not in e["args"]], 8)
    assert "errors 1, retries 0, timeouts 0," in trace.summary()
    assert list(plait.map(square, range(4), backend=engine)) == [0, 1, 4, 9]  # it recovered


def test_retries_on_the_cluster_are_marked_in_the_trace(engine: str, tmp_path: Path) -> None:
    from test_trace import assert_every_item_once, batches, fail_once_on_multiples_of_five, load

    items = [(x, str(tmp_path)) for x in range(12)]
    with plait.trace(tmp_path / "run.json") as trace:
        results = list(
            plait.map(fail_once_on_multiples_of_five, items, backend=engine, retries=1, chunksize=4)
        )
    assert results == list(range(12))
    mine = batches(load(tmp_path / "run.json"), "fail_once_on_multiples_of_five")
    assert_every_item_once(mine, 12)
    assert sum(e["args"].get("retries", 0) for e in mine) == 3
    assert "errors 0, retries 3," in trace.summary()


def test_rate_holds_across_the_clusters_workers(engine: str, tmp_path: Path) -> None:
    """One bucket for the map, whichever worker calls, a worker restarted after item 3 killed
    it too (each worker took the whole rate: twice as many calls a second on two workers)."""
    from test_failures import most_in_a_second, stamp_then_die_once

    log = str(tmp_path / "calls")
    dies = [i == 3 for i in range(12)]
    results = plait.map(
        stamp_then_die_once, [log] * 12, range(12), dies, backend=engine, rate=4, chunksize=1
    )
    assert list(results) == list(range(12))
    times = [float(line) for line in Path(log).read_text().split()]
    assert len(times) == 13
    assert most_in_a_second(times) <= 4 + 1  # (slots 1/4 s apart: a second holds 4, or 5)


def test_a_submitted_item_that_kills_its_worker_is_worker_crashed(engine: str) -> None:
    """A lone item whose worker died runs once more before it is blamed: the second run of a
    task its owner saw start must not ask the owner to start it again."""
    with plait.Pool(engine) as pool:
        with pytest.raises(plait.WorkerCrashed):
            pool.submit(crash_on_three, 3).result(timeout=60)
        assert pool.submit(square, 5).result(timeout=60) == 25


def hang_on_one(args: tuple[int, str]) -> int:
    x, folder = args
    if x == 1:
        Path(folder, "hung.pid").write_text(str(os.getpid()))
        time.sleep(600)
    return x


def test_an_item_past_its_task_timeout_fails_and_its_worker_is_ended(
    engine: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    items = [(x, str(tmp_path)) for x in range(4)]
    results = list(plait.map(hang_on_one, items, backend=engine, task_timeout=2, errors="return"))
    assert time.monotonic() - started < 60
    assert isinstance(results[1], plait.TaskTimeout)
    assert [results[0], *results[2:]] == [0, 2, 3]
    # The process that ran the hung item ends (Dask restarts it; Ray's exits after the task).
    pid = int((tmp_path / "hung.pid").read_text())
    deadline = time.monotonic() + 60
    while _alive(pid):
        assert time.monotonic() < deadline, "the worker that ran the hung item still runs"
        time.sleep(0.05)
    assert list(plait.map(square, range(4), backend=engine)) == [0, 1, 4, 9]


def hang_on_one_each_time(args: tuple[int, str]) -> int:
    x, folder = args
    if x == 1:
        with Path(folder, "attempts").open("a") as attempts:
            attempts.write("1")
        time.sleep(600)
    return x


def test_a_timeout_is_retried_when_the_retry_policy_counts_timeouts(
    engine: str, tmp_path: Path
) -> None:
    """Retry(timeouts=True): the item past its time limit is sent again, as on processes. The
    worker's TaskTimeout came back as a finished batch's result, never weighed against the
    policy: one attempt, and no note saying how many failed."""
    items = [(x, str(tmp_path)) for x in range(3)]
    retry = plait.Retry(retries=1, timeouts=True, backoff=0.0)
    results = list(
        plait.map(hang_on_one_each_time, items, backend=engine, task_timeout=2, retries=retry,
                  errors="return")
    )  # fmt: skip
    assert [results[0], results[2]] == [0, 2]
    assert isinstance(results[1], plait.TaskTimeout), repr(results[1])
    assert (tmp_path / "attempts").read_text() == "11"
    assert any("failed 2 times" in note for note in results[1].__notes__), results[1].__notes__


@pytest.mark.parametrize("seconds", [86_400.0 * 30, 1e10, 1e308])
def test_a_task_timeout_of_any_length_is_kept(engine: str, seconds: float) -> None:
    # The worker's wait for the item's thread raised OverflowError past 1e10 s (Thread.join):
    # every batch of the map failed (see test_long_timeouts).
    results = plait.map(square, range(3), backend=engine, task_timeout=seconds)
    assert list(results) == [0, 1, 4]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][:1] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # (gone before the open, or during it)
        return False


def test_a_pool_is_an_executor(engine: str) -> None:
    with plait.Pool(engine) as pool:
        future = pool.submit(square, 12)
        assert future.result(timeout=60) == 144
        assert list(pool.map(square, range(5))) == [0, 1, 4, 9, 16]


def test_a_task_group(engine: str) -> None:
    with plait.TaskGroup(backend=engine) as group:
        futures = [group.submit(square, i) for i in range(5)]
    assert [f.result() for f in futures] == [0, 1, 4, 9, 16]


def test_amap(engine: str) -> None:
    import asyncio

    async def gather() -> list[int]:
        return [x async for x in plait.amap(square, range(20), backend=engine)]

    assert asyncio.run(gather()) == [x * x for x in range(20)]


def test_progress_counts_every_item(engine: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(list(plait.map(square, range(50), backend=engine, progress=True))) == 50
    assert "50/50" in capsys.readouterr().err


def test_an_unused_pool_dropped_says_nothing(engine: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool = plait.Pool(engine)
        del pool
        gc.collect()


def test_a_used_pool_dropped_warns(engine: str) -> None:
    pool = plait.Pool(engine)
    assert pool.submit(square, 3).result(timeout=60) == 9
    with pytest.warns(ResourceWarning, match=f"unclosed <plait.Pool backend='{engine}'"):
        del pool


def test_without_the_engine_the_error_names_the_extra(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = {"dask": "distributed", "ray": "ray"}[engine]
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=rf"pip install 'plait\[{engine}\]'"):
        plait.Pool(engine)


def test_terminate_ends_the_cluster_plait_started_and_its_running_items(
    engine: str, tmp_path: Path
) -> None:
    """(A program of its own, with no cluster running: plait starts one.)"""
    assert run_script(tmp_path, TERMINATE.format(backend=engine)) == [
        "first 0",
        "prompt True",
        "hung item CancelledError",  # (the Executor contract)
        "left running []",
    ]


def test_ctrl_c_stops_the_map_and_the_cluster_plait_started(engine: str, tmp_path: Path) -> None:
    run = interrupt(tmp_path, CTRL_C.format(backend=engine))
    assert run.out == "interrupted\n", run.err
    assert run.returncode == 0, run.err
    assert len(run.cluster) >= 2
    # The items that ran are stopped within 2 s, wherever they ran:
    assert run.stopped is not None, run
    assert run.stopped < 2.0, run
    # (The map ends, then the cluster plait started is shut down before the KeyboardInterrupt
    # reaches the program: Ray's shutdown takes seconds, 10.6 s on a loaded 2-core machine.)
    assert run.took < {"dask": 5.0, "ray": 30.0}[engine]
    assert living(run.cluster) == []


def test_a_trace_names_the_cluster_s_workers_and_counts_every_item(
    engine: str, tmp_path: Path
) -> None:
    from test_trace import assert_every_item_once, batches, load

    with plait.trace(tmp_path / "run.json") as trace:
        assert sum(plait.map(square, range(3000), backend=engine)) == sum(
            x * x for x in range(3000)
        )
    events = load(tmp_path / "run.json")  # (checked as Perfetto reads it: no overlaps)
    mine = batches(events, "square")
    assert {e["cat"] for e in mine} == {engine}
    assert_every_item_once(mine, 3000)
    places = {e["args"]["name"] for e in events if e["name"] == "process_name"}
    worker = {"dask": "Dask worker tcp://", "ray": "Ray worker "}[engine]
    assert any(place.startswith(worker) for place in places), places
    assert "3,000 items" in trace.summary()
