"""How many workers the Dask or Ray cluster plait starts on this machine may have: as many as
its memory holds. A count past that is refused where it is given, at once, with no worker
started (the leak check would see one); a count for a cluster plait does not start is not
plait's to check (``test_dask.py``, ``test_ray.py``).

Without ``distributed`` or ``ray`` installed these tests skip, except where
``PLAIT_REQUIRE_EXTRAS=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import plait
from plait._backends import _local_cluster
from plait._backends._local_cluster import MIN_WORKER_BYTES, cgroup_memory

pytestmark = pytest.mark.timeout(60)

REQUIRED = os.environ.get("PLAIT_REQUIRE_EXTRAS") == "1"
ENGINES = {"dask": ("Dask", "distributed"), "ray": ("Ray", "ray")}


@pytest.fixture(params=sorted(ENGINES))
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A cluster backend with no cluster to find: plait would start one of its own."""
    name: str = request.param
    if not REQUIRED:
        pytest.importorskip(ENGINES[name][1])
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if name == "dask":
        import distributed

        with pytest.raises(ValueError, match="No clients found"):  # (else it would be used)
            distributed.default_client()
    else:
        import ray

        assert not ray.is_initialized()  # (else it would be used)
    return name


@pytest.fixture
def memory_for_four(backend: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """This machine's memory, as plait sees it, holds four workers of the backend's engine."""
    least = MIN_WORKER_BYTES[ENGINES[backend][0]]
    monkeypatch.setattr(_local_cluster, "machine_memory", lambda: 4 * least + least // 2)
    return 4


def test_a_count_no_machine_holds_is_refused_at_the_call(backend: str) -> None:
    # Dask started worker after worker (a nanny and a worker process each) until the machine
    # gave out; Ray's CPUs overflowed to none, and the map waited for good.
    engine = ENGINES[backend][0]
    refused = rf"workers={2**70}: too many workers for a local {engine} cluster"
    with pytest.raises(ValueError, match=refused):
        plait.map(abs, [1], backend=backend, workers=2**70)
    with pytest.raises(ValueError, match=refused):
        plait.Pool(backend, workers=2**70)
    with pytest.raises(ValueError, match=refused):
        plait.TaskGroup(backend=backend, workers=plait.Workers(2**70))

    async def in_async_code() -> None:
        plait.amap(abs, [1], backend=backend, workers=2**70)

    with pytest.raises(ValueError, match=refused):
        asyncio.run(in_async_code())


def test_the_refusal_says_what_holds_and_the_fix(backend: str, memory_for_four: int) -> None:
    most = memory_for_four
    expected = (
        rf"workers={most + 1}: too many .* in this machine's memory \([\d.]+ GiB\): .*"
        rf"room for {most} workers; give workers={most} or fewer, or connect to a cluster "
        r"that holds more \(plait.Workers\(address="
    )
    with pytest.raises(ValueError, match=expected):
        plait.Pool(backend, workers=most + 1)
    with plait.Pool(backend, workers=most) as pool:  # as many as it holds (none start unused)
        assert pool.workers == most


def test_one_worker_per_core_past_what_memory_holds_is_cut_to_it(
    backend: str, memory_for_four: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_local_cluster, "usable_cores", lambda: 64)
    with plait.Pool(backend) as pool:  # a number nobody gave is not an error
        assert pool.workers == memory_for_four


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(("memory_max", "expected"), [("max", None), ("2147483648", 2**31)])
def test_a_cgroup_v2_memory_limit_is_read(
    tmp_path: Path, memory_max: str, expected: int | None
) -> None:
    write(tmp_path / "proc", "0::/box/job\n")
    write(tmp_path / "cg" / "box" / "job" / "memory.max", memory_max + "\n")
    assert cgroup_memory(tmp_path / "cg", tmp_path / "proc") == expected


@pytest.mark.parametrize(
    ("limit", "expected"), [("9223372036854771712", None), ("1073741824", 2**30)]
)
def test_a_cgroup_v1_memory_limit_is_read(tmp_path: Path, limit: str, expected: int | None) -> None:
    write(tmp_path / "proc", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    write(tmp_path / "cg" / "memory" / "docker" / "abc" / "memory.limit_in_bytes", limit + "\n")
    assert cgroup_memory(tmp_path / "cg", tmp_path / "proc") == expected


def test_no_cgroup_files_means_no_memory_limit(tmp_path: Path) -> None:
    assert cgroup_memory(tmp_path / "cg", tmp_path / "missing") is None
    write(tmp_path / "proc", "0::/gone\n4:memory:/gone\n")
    assert cgroup_memory(tmp_path / "cg", tmp_path / "proc") is None


def test_a_cgroup_limit_below_the_machines_memory_is_what_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_local_cluster, "cgroup_memory", lambda *where: 2**30)
    assert _local_cluster.machine_memory() == 2**30


def test_a_ray_cluster_given_by_ray_address_is_not_plaits_to_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(That Ray is joined on the first batch: this pool, never used, connects to nothing.)"""
    if not REQUIRED:
        pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    with plait.Pool("ray", workers=2**70) as pool:
        assert pool.workers == 2**70
