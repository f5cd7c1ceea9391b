"""backend="dask": the semantics of the other backends, on a real Dask cluster.

The cluster is started once for the module (a scheduler and two worker processes, each a fresh
interpreter) and is the current client while these tests run; one test starts no client and
checks the cluster plait starts by itself. Without ``distributed`` installed these tests skip,
except where ``PLAIT_REQUIRE_EXTRAS=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import plait
from plait._scheduler import max_items_in_flight

if os.environ.get("PLAIT_REQUIRE_EXTRAS") == "1":
    import distributed
else:
    distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.timeout(120), pytest.mark.engine_client]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from plait._backends._dask_local import LocalDaskCluster

    cluster = LocalDaskCluster(2)  # the kind of cluster plait starts when there is none
    try:
        client = distributed.Client(cluster.address)  # the current client: plait finds it
        client.wait_for_workers(2, timeout=60)
        # Dask starts threads of its own on first use (a callback thread, an offload pool):
        # here, before any test's leak check begins, rather than inside the first test.
        done = threading.Event()
        client.submit(abs, -1).add_done_callback(lambda future: done.set())
        assert done.wait(60)
        assert client.gather(client.scatter([1, 2])) == [1, 2]
        # ... and a connection to each worker, which its pool keeps open.
        workers = list(client.nthreads())
        results = [client.submit(abs, -i, workers=[w], pure=False) for i, w in enumerate(workers)]
        assert client.gather(results) == list(range(len(workers)))
        yield client
        client.close()
    finally:
        cluster.close()


@pytest.fixture(autouse=True)
def _needs_client(client: Any) -> None:
    """Every test here runs with the module's cluster as the current client, unless it says
    otherwise (a script of its own)."""


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def test_map_gives_every_result_in_order() -> None:
    assert list(plait.map(square, range(500), backend="dask")) == [x * x for x in range(500)]


def test_unordered_map_gives_every_result_once() -> None:
    results = list(plait.map(square, range(200), backend="dask", ordered=False))
    assert sorted(results) == [x * x for x in range(200)]


def test_tiny_items_travel_in_batches_not_one_task_each(client: Any) -> None:
    with distributed.get_task_stream(client) as stream:
        assert sum(plait.map(square, range(20_000), backend="dask")) == sum(
            x * x for x in range(20_000)
        )
    tasks = [task for task in stream.data if "run_batch" in task["key"]]
    assert 0 < len(tasks) <= 200  # (about 20,000 / 4,096 once sized; small batches first)


def test_an_endless_input_is_read_a_bounded_window_ahead() -> None:
    read = itertools.count()

    def endless() -> Iterator[int]:
        while True:
            yield next(read)

    with plait.map(square, endless(), backend="dask") as results:
        for index, value in enumerate(results):
            assert value == index * index
            if index == 30_000:
                break
    ahead = next(read) - 30_000
    assert ahead <= max_items_in_flight("dask") + 16384


def test_the_users_own_exception_with_the_workers_traceback_and_the_item() -> None:
    with pytest.raises(ValueError, match="bad item 3") as info:
        list(plait.map(fail_on_three, range(10), backend="dask", chunksize=2))
    text = "".join(traceback.format_exception(info.value))
    assert "in fail_on_three" in text
    assert any("raised by item 3: 3" in note for note in info.value.__notes__)


def test_errors_return_puts_the_exception_in_the_items_place() -> None:
    results = list(plait.map(fail_on_three, range(6), backend="dask", errors="return"))
    assert results[:3] == [0, 1, 2]
    assert isinstance(results[3], ValueError)
    assert results[4:] == [4, 5]


def fail_once(path: str) -> str:
    marker = Path(path)
    if not marker.exists():
        marker.write_text("tried")
        raise ConnectionError(f"first attempt at {marker.name}")
    return marker.name


def test_retries_run_again_on_the_cluster(tmp_path: Path) -> None:
    paths = [str(tmp_path / f"item{i}") for i in range(6)]
    results = list(plait.map(fail_once, paths, backend="dask", retries=1))
    assert results == [f"item{i}" for i in range(6)]


def crash_on_three(x: int) -> int:
    if x == 3:
        os._exit(1)
    return x


def test_a_worker_that_dies_fails_only_the_item_it_ran() -> None:
    results = list(
        plait.map(crash_on_three, range(8), backend="dask", chunksize=4, errors="return")
    )
    assert isinstance(results[3], plait.WorkerCrashed)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
    assert list(plait.map(square, range(4), backend="dask")) == [0, 1, 4, 9]  # it recovered


def test_a_submitted_item_that_kills_its_worker_is_worker_crashed() -> None:
    """A lone item whose worker died runs once more before it is blamed: the second run of a
    task its owner saw start must not ask the owner to start it again."""
    with plait.Pool("dask") as pool:
        with pytest.raises(plait.WorkerCrashed):
            pool.submit(crash_on_three, 3).result(timeout=60)
        assert pool.submit(square, 5).result(timeout=60) == 25


def square_then_wait_for_go(x: int, folder: str) -> int:
    """Square x at once the first time; any later run waits until the test says go."""
    try:
        os.close(os.open(os.path.join(folder, "ran"), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(folder, "go")) and time.monotonic() < deadline:
            time.sleep(0.01)
    return x * x


def test_a_result_lost_with_its_worker_before_it_was_read_runs_again(
    client: Any, tmp_path: Path
) -> None:
    """A batch finishes; before plait reads its result, the worker holding it dies. (Dask
    runs callbacks on one thread: a callback that waits holds plait's back meanwhile.) Dask
    computes the lost result again, but that run waits for the test: plait must not wait for it
    nor take the future's missing exception for a failure; it runs the batch again itself."""
    entered, gate, after = threading.Event(), threading.Event(), threading.Event()

    def hold(future: Any) -> None:
        entered.set()
        gate.wait(60)

    client.submit(abs, -1, pure=False).add_done_callback(hold)
    assert entered.wait(60)
    try:
        with plait.Pool("dask") as pool:
            known = set(client.futures)
            future = pool.submit(square_then_wait_for_go, 7, str(tmp_path))
            deadline = time.monotonic() + 60
            while not (held := {k: w for k, w in client.who_has().items() if w and k not in known}):
                assert time.monotonic() < deadline, "the batch never finished"
                time.sleep(0.01)
            [(key, holders)] = held.items()
            client.restart_workers(list(holders))  # (through its nanny: the result is gone)
            while client.futures.get(key) is not None and client.futures[key].status == "finished":
                assert time.monotonic() < deadline, "Dask never saw the result lost"
                time.sleep(0.01)
            gate.set()
            # plait's callback runs next; this one after it, once plait's has returned.
            client.submit(abs, -2, pure=False).add_done_callback(lambda f: after.set())
            after.wait(5)  # (a plait that waits for Dask's second run never lets it come)
            (tmp_path / "go").touch()
            assert future.result(timeout=60) == 49
    finally:
        gate.set()
        (tmp_path / "go").touch()


def hang_on_one(x: int) -> int:
    if x == 1:
        time.sleep(600)
    return x


def test_an_item_past_its_task_timeout_fails_and_its_worker_is_restarted() -> None:
    started = time.monotonic()
    results = list(
        plait.map(hang_on_one, range(4), backend="dask", task_timeout=2, errors="return")
    )
    assert time.monotonic() - started < 30
    assert isinstance(results[1], plait.TaskTimeout)
    assert [results[0], *results[2:]] == [0, 2, 3]
    # The restarted worker (no longer sleeping) serves the next map.
    assert list(plait.map(square, range(4), backend="dask")) == [0, 1, 4, 9]


def test_a_dask_pool_is_an_executor() -> None:
    with plait.Pool("dask") as pool:
        future = pool.submit(square, 12)
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(timeout=60) == 144
        failing = pool.submit(fail_on_three, 3)
        with pytest.raises(ValueError, match="bad item 3"):
            failing.result(timeout=60)
        assert list(pool.map(square, range(5))) == [0, 1, 4, 9, 16]


def test_a_task_group_on_dask() -> None:
    with plait.TaskGroup(backend="dask") as group:
        futures = [group.submit(square, i) for i in range(5)]
    assert [f.result() for f in futures] == [0, 1, 4, 9, 16]


def test_progress_counts_every_item(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(list(plait.map(square, range(50), backend="dask", progress=True))) == 50
    assert "50/50" in capsys.readouterr().err


def test_an_unused_pool_dropped_says_nothing() -> None:
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool = plait.Pool("dask")
        del pool
        gc.collect()


def test_a_used_pool_dropped_warns() -> None:
    pool = plait.Pool("dask")
    assert pool.submit(square, 3).result(timeout=60) == 9
    with pytest.warns(ResourceWarning, match="unclosed <plait.Pool backend='dask'"):
        del pool


def test_an_address_is_for_dask_only() -> None:
    with pytest.raises(ValueError, match=r"Workers\.address applies to backend='dask' only"):
        plait.Pool("thread", plait.Workers(address="tcp://127.0.0.1:8786"))


def test_an_address_connects_to_that_scheduler(client: Any) -> None:
    workers = plait.Workers(address=client.scheduler.address)
    with plait.Pool("dask", workers) as pool:
        assert pool.submit(square, 9).result(timeout=60) == 81


def test_without_distributed_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'plait\[dask\]'"):
        plait.Pool("dask")


SCRIPT = textwrap.dedent(
    """
    import os
    import psutil
    import plait

    def square(x):
        return x * x

    # No main guard, no client: plait starts a cluster for the map and closes it after.
    me = psutil.Process()
    seen = set()

    results = plait.map(square, range(100), backend="dask")
    first = next(results)
    seen.update(child.pid for child in me.children(recursive=True))
    rest = list(results)
    print("results", [first, *rest] == [x * x for x in range(100)])
    print("cluster processes", len(seen) >= 3)
    print("left running", [pid for pid in seen if psutil.pid_exists(pid) and
                           psutil.Process(pid).status() != psutil.STATUS_ZOMBIE])
    """
)


def run_script(tmp_path: Path, code: str) -> list[str]:
    """Run ``code`` as a script of its own (a program with no client of its own); its lines."""
    script = tmp_path / "script.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=150
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.timeout(180)
def test_without_a_client_plait_starts_a_cluster_and_ends_it(tmp_path: Path) -> None:
    assert run_script(tmp_path, SCRIPT) == [
        "results True",
        "cluster processes True",
        "left running []",
    ]


TERMINATE = textwrap.dedent(
    """
    import time
    import psutil
    import plait

    def work(x):
        if x == 1:
            time.sleep(600)
        return x

    me = psutil.Process()
    pool = plait.Pool("dask", 2)
    futures = [pool.submit(work, x) for x in range(2)]
    print("first", futures[0].result(timeout=60))
    cluster = {child.pid for child in me.children(recursive=True)}
    started = time.monotonic()
    pool.terminate()
    print("prompt", time.monotonic() - started < 10)
    print("hung item", type(futures[1].exception(timeout=10)).__name__)
    print("left running", [pid for pid in cluster if psutil.pid_exists(pid) and
                           psutil.Process(pid).status() != psutil.STATUS_ZOMBIE])
    """
)


@pytest.mark.timeout(180)
def test_terminate_ends_the_cluster_plait_started_and_its_running_items(tmp_path: Path) -> None:
    assert run_script(tmp_path, TERMINATE) == [
        "first 0",
        "prompt True",
        "hung item Cancelled",
        "left running []",
    ]


CTRL_C = textwrap.dedent(
    """
    import os
    import sys
    import time
    import psutil
    import plait

    def work(x):
        if x >= 1:
            time.sleep(600)
        return x

    me = psutil.Process()
    results = plait.map(work, range(4), backend="dask", chunksize=1)
    try:
        print("first", next(results), flush=True)
        with open(sys.argv[1], "w") as out:
            out.write(" ".join(str(c.pid) for c in me.children(recursive=True)))
        print("ready", flush=True)
        for _ in results:
            pass
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    """
)


@pytest.mark.timeout(180)
def test_ctrl_c_stops_the_map_and_its_cluster(tmp_path: Path) -> None:
    import signal

    import psutil

    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    pids_file = tmp_path / "pids"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(pids_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "first 0\n"
        assert proc.stdout.readline() == "ready\n"
        cluster = [int(pid) for pid in pids_file.read_text().split()]
        assert len(cluster) >= 3
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert out == "interrupted\n", err
    assert proc.returncode == 0, err
    assert took < 5.0  # (the map ends within 2 s; the interpreter's exit follows)
    alive = [
        pid
        for pid in cluster
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == []
