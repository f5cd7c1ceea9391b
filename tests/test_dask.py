"""backend="dask": what only Dask has (its task stream, a result lost with its worker, an
address, the cluster plait starts). The semantics every cluster backend shares are tested in
``test_cluster.py``, on Dask and on Ray.

The cluster is started once for the module (a scheduler and two worker processes, each a fresh
interpreter) and is the current client while these tests run; one test starts no client and
checks the cluster plait starts by itself. Without ``distributed`` installed these tests skip,
except where ``PLAIT_REQUIRE_EXTRAS=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import plait
from engine_scripts import LIVING, run_script

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


def test_tiny_items_travel_in_batches_not_one_task_each(client: Any) -> None:
    with distributed.get_task_stream(client) as stream:
        assert sum(plait.map(square, range(20_000), backend="dask")) == sum(
            x * x for x in range(20_000)
        )
    tasks = [task for task in stream.data if "run_batch" in task["key"]]
    assert 0 < len(tasks) <= 200  # (about 20,000 / 4,096 once sized; small batches first)


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


def test_an_address_is_for_dask_only() -> None:
    with pytest.raises(ValueError, match=r"Workers\.address applies to backend='dask' or 'ray'"):
        plait.Pool("thread", plait.Workers(address="tcp://127.0.0.1:8786"))


def test_an_address_connects_to_that_scheduler(client: Any) -> None:
    workers = plait.Workers(address=client.scheduler.address)
    with plait.Pool("dask", workers) as pool:
        assert pool.submit(square, 9).result(timeout=60) == 81


def test_a_count_for_a_cluster_plait_did_not_start_is_not_plaits_to_check(client: Any) -> None:
    """(A cluster plait starts is refused one its machine cannot hold: test_local_cluster.)"""
    for workers in (plait.Workers(2**70, address=client.scheduler.address), plait.Workers(2**70)):
        with plait.Pool("dask", workers) as pool:  # at that address; the current client's
            assert pool.workers == 2**70
            assert list(pool.map(square, range(5))) == [0, 1, 4, 9, 16]


SCRIPT = LIVING + textwrap.dedent(
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
    print("left running", living(seen))
    """
)


@pytest.mark.timeout(180)
def test_without_a_client_plait_starts_a_cluster_and_ends_it(tmp_path: Path) -> None:
    assert run_script(tmp_path, SCRIPT) == [
        "results True",
        "cluster processes True",
        "left running []",
    ]


# The last item overruns its time limit: its owner has the TaskTimeout and the pool closes while
# the worker that ran it is still being restarted (made slow here, as on a busy machine).
CLOSED_DURING_RESTART = textwrap.dedent(
    """
    import time
    import distributed
    import plait

    happened = []
    restart, close = distributed.Client.restart_workers, distributed.Client.close

    def slow_restart(self, *args, **kwargs):
        happened.append("restart begins")
        time.sleep(2)
        try:
            return restart(self, *args, **kwargs)
        finally:
            happened.append("restart ends")

    def noted_close(self, *args, **kwargs):
        happened.append("client closes")
        return close(self, *args, **kwargs)

    distributed.Client.restart_workers = slow_restart
    distributed.Client.close = noted_close

    def hang_on_three(x):
        if x == 3:
            time.sleep(600)
        return x

    began = time.monotonic()
    with plait.Pool("dask", plait.Workers(2)) as pool:
        results = list(pool.map(hang_on_three, range(4), task_timeout=2, errors="return"))
        print("results", [type(r).__name__ for r in results])
    print(happened[:3])
    print("closed within 30 s", time.monotonic() - began < 30)
    """
)


@pytest.mark.timeout(180)
def test_a_pool_closes_its_client_only_after_a_worker_restart_under_way(tmp_path: Path) -> None:
    """The last item overran its time limit: the pool ends while the worker that ran it is
    being restarted (slow here, as on a busy machine). Closing the client under the restart
    made its calls wait for good, now and then (the program hung at exit, joining Dask's
    callback thread): the client closes after it."""
    assert run_script(tmp_path, CLOSED_DURING_RESTART) == [
        "results ['int', 'int', 'int', 'TaskTimeout']",
        "['restart begins', 'restart ends', 'client closes']",
        "closed within 30 s True",
    ]


def hog_on_two(x: int) -> int:
    if x == 2:
        hog = b"x" * (1 << 30)  # 1 GiB, written: twice the worker's limit
        time.sleep(30)  # (its nanny ends it long before)
        return len(hog)
    return x


def test_a_worker_its_nanny_ends_for_its_memory_fails_only_its_item() -> None:
    """Out of memory: Dask's nanny ends a worker past its memory limit. Its item fails as
    WorkerCrashed, the other items of its batch are delivered."""
    from plait._backends._dask_local import LocalDaskCluster

    cluster = LocalDaskCluster(1, memory_limit="500MB")
    try:
        with distributed.Client(cluster.address) as own:  # the current client meanwhile
            own.wait_for_workers(1, timeout=60)
            results = list(
                plait.map(hog_on_two, range(6), backend="dask", chunksize=3, errors="return")
            )
    finally:
        cluster.close()
    assert isinstance(results[2], plait.WorkerCrashed), results
    assert [r for i, r in enumerate(results) if i != 2] == [0, 1, 3, 4, 5]


# The nanny killed outright orphans its worker process. Where the process that adopts orphans
# does not reap them (this script makes itself that process: a "subreaper" that never waits),
# the worker that ends stays a zombie in the nanny's process group, for good.
NANNY_KILLED = textwrap.dedent(
    """
    import ctypes, os, signal, sys, time
    import distributed, psutil
    from plait._backends._dask_local import LocalDaskCluster

    PR_SET_CHILD_SUBREAPER = 36
    assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    cluster = LocalDaskCluster(1)
    with distributed.Client(cluster.address) as client:
        client.wait_for_workers(1, timeout=60)
    nanny = cluster._processes[1]
    workers = [child.pid for child in psutil.Process(nanny.pid).children()]
    os.kill(nanny.pid, signal.SIGKILL)
    nanny.wait()
    deadline = time.monotonic() + 60  # until the orphans have ended (they watch the nanny)
    while any(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in workers):
        assert time.monotonic() < deadline, "the orphaned workers did not end"
        time.sleep(0.05)
    began = time.monotonic()
    cluster.close()
    print("close took less than 15 s", time.monotonic() - began < 15)
    print("left unreaped", {psutil.Process(pid).status() for pid in workers})
    for pid in workers:
        os.waitpid(pid, 0)
    """
)


@pytest.mark.timeout(180)
def test_a_cluster_whose_nanny_was_killed_closes_though_nobody_reaps_its_orphans(
    tmp_path: Path,
) -> None:
    """``close()`` used to wait forever on a process group that held only a zombie."""
    assert run_script(tmp_path, NANNY_KILLED) == [
        "close took less than 15 s True",
        "left unreaped {'zombie'}",
    ]


# A process of the cluster's that will not stop when told (it ignores SIGTERM) and holds a
# semaphore of multiprocessing's, whose resource tracker (a process of the same group) removes
# it from /dev/shm once its holders are gone.
SEMAPHORE_HELD = textwrap.dedent(
    """
    import os, subprocess, sys, tempfile
    from plait._backends import _dask_local

    _dask_local.STOP_SECONDS = 1.0  # (the grace before the SIGKILL)
    HOLDER = (
        "import multiprocessing, signal, time\\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
        "lock = multiprocessing.get_context('spawn').Lock()\\n"
        "print(lock._semlock.name, flush=True)\\n"
        "time.sleep(600)\\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, start_new_session=True
    )
    path = "/dev/shm/sem." + holder.stdout.readline().decode().strip().lstrip("/")
    print("held", os.path.exists(path))
    cluster = object.__new__(_dask_local.LocalDaskCluster)  # (one of this process alone)
    cluster._processes = [holder]
    cluster._directory = tempfile.TemporaryDirectory()
    cluster.close()
    holder.stdout.close()
    print("left in /dev/shm", os.path.exists(path))
    """
)


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="named semaphores live in /dev/shm")
def test_a_cluster_killed_after_its_grace_leaves_no_semaphore_behind(tmp_path: Path) -> None:
    """The SIGKILL after the grace ended multiprocessing's resource tracker too, before it
    could remove the semaphores of the processes killed with it (a worker a nanny had just
    started again): each close that came to it left three in /dev/shm for good."""
    assert run_script(tmp_path, SEMAPHORE_HELD) == ["held True", "left in /dev/shm False"]
