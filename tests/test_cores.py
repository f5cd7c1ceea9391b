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


@pytest.mark.parametrize("value", ["0", "-2", "two", ""])
def test_a_bad_plait_workers_names_the_variable_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PLAIT_WORKERS", value)
    with pytest.raises(ValueError, match=r"PLAIT_WORKERS=.*whole number of workers, 1 or more"):
        process_workers()
