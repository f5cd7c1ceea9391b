"""The number of process workers: usable cores (affinity, cgroup quota), or PLAIT_WORKERS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import plait
from plait._cores import cgroup_quota, process_workers, usable_cores

pytestmark = pytest.mark.timeout(60)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000", None), ("200000 100000", 2), ("150000 100000", 2), ("50000 100000", 1)],
)
def test_a_cgroup_v2_quota_is_read_in_cores_rounded_up(
    tmp_path: Path, cpu_max: str, expected: int | None
) -> None:
    write(tmp_path / "proc", "0::/box/job\n")
    write(tmp_path / "cg" / "box" / "job" / "cpu.max", cpu_max + "\n")
    assert cgroup_quota(tmp_path / "cg", tmp_path / "proc") == expected


@pytest.mark.parametrize(("quota", "expected"), [("-1", None), ("300000", 3), ("100", 1)])
def test_a_cgroup_v1_quota_is_read_in_cores_rounded_up(
    tmp_path: Path, quota: str, expected: int | None
) -> None:
    write(tmp_path / "proc", "4:memory:/elsewhere\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    directory = tmp_path / "cg" / "cpu,cpuacct" / "docker" / "abc"
    write(directory / "cpu.cfs_quota_us", quota + "\n")
    write(directory / "cpu.cfs_period_us", "100000\n")
    assert cgroup_quota(tmp_path / "cg", tmp_path / "proc") == expected


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_quota(tmp_path / "cg", tmp_path / "missing") is None
    write(tmp_path / "proc", "0::/gone\n1:cpu:/gone\n")
    assert cgroup_quota(tmp_path / "cg", tmp_path / "proc") is None


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_usable_cores_never_exceed_the_affinity() -> None:
    assert 1 <= usable_cores() <= len(os.sched_getaffinity(0))


def test_plait_workers_sets_the_number_of_process_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAIT_WORKERS", "3")
    assert process_workers() == 3
    with plait.Pool("process") as pool:
        assert pool.workers == 3


BAD_VALUES = ["abc", "0", "-1", "1e3", "2.5"]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_a_bad_plait_workers_names_the_variable_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PLAIT_WORKERS", value)
    with pytest.raises(ValueError, match=r"PLAIT_WORKERS=.*whole number of workers, 1 or more"):
        process_workers()


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_plait_workers_is_as_if_unset(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """``PLAIT_WORKERS=`` in a shell (or a script that sets it from an empty variable of its
    own) means no number was given: one worker per usable core."""
    monkeypatch.setenv("PLAIT_WORKERS", value)
    assert process_workers() == usable_cores()
    with plait.Pool("process") as pool:
        assert pool.workers == usable_cores()
    assert list(plait.map(abs, range(3), backend="auto")) == [0, 1, 2]


async def negated(x: int) -> int:
    return -x


@pytest.mark.parametrize("value", BAD_VALUES)
@pytest.mark.parametrize("backend", ["auto", "thread", "process"])
def test_a_bad_plait_workers_is_refused_as_a_map_or_a_pool_is_made(
    monkeypatch: pytest.MonkeyPatch, value: str, backend: str
) -> None:
    """Whatever the backend, before anything runs. (It was read only by a process pool as it
    started: a map on threads ignored it, and auto read it only once its probe found work
    that computes, in the probe's thread, whose error was printed there while the map waited
    for good.)"""
    monkeypatch.setenv("PLAIT_WORKERS", value)
    refused = pytest.raises(ValueError, match=r"PLAIT_WORKERS=.*1 or more \(or unset it")
    with refused:
        plait.map(abs, range(3), backend=backend)
    with refused:
        plait.Pool(backend)
    with refused:
        plait.amap(abs, range(3), backend=backend)
    if backend == "auto":
        with refused:
            plait.amap(negated, range(3))  # (an async function: no pool behind it)
