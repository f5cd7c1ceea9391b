"""How many cores this process may really use: the number of process workers to start.

``os.cpu_count()`` counts the machine's cores. A process pinned to some of them (``taskset``,
CPU affinity) or given a CPU quota by its cgroup (a container with ``--cpus=2``, a Kubernetes
limit) gets fewer; a worker per counted core would then share the quota and only add
switching. ``PLAIT_WORKERS`` sets the number of process workers outright (empty or blank, it
is as if unset). Any other value that is not a number of workers is refused as each map or pool
is made, whatever its backend (``check_environment``): auto reads the number only once it chose
processes, mid-map, and a map on threads never reads it.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from . import _cgroup

ENVIRONMENT = "PLAIT_WORKERS"


def process_workers() -> int:
    """How many process workers a pool starts when not told: ``PLAIT_WORKERS`` if set, else
    one per usable core."""
    given = os.environ.get(ENVIRONMENT, "")
    return workers_from_environment(given) if given.strip() else usable_cores()


def check_environment() -> None:
    """Raise ValueError, naming it and the fix, if ``PLAIT_WORKERS`` is set to anything but
    a number of workers (one read of the environment, as a map or a pool is made)."""
    given = os.environ.get(ENVIRONMENT, "")
    if given.strip():
        workers_from_environment(given)


def usable_cores() -> int:
    """The fewest of: the cores this process may run on (its CPU affinity), and its cgroup's
    CPU quota, rounded up; at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _recent_quota()
    return max(1, min(cores or 1, quota or cores or 1))


# The cgroup's quota as read at most this many seconds ago: reading it takes a few files (0.1 to
# 0.3 ms, what a map of tiny items costs in all), and a container's quota seldom changes.
QUOTA_FRESH_FOR = 1.0
_quota_read: tuple[float, int | None] | None = None


def _recent_quota() -> int | None:
    global _quota_read
    read = _quota_read
    now = time.monotonic()
    if read is None or now - read[0] > QUOTA_FRESH_FOR:
        read = _quota_read = (now, cgroup_quota())
    return read[1]


def workers_from_environment(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if workers < 1:
        raise ValueError(
            f"{ENVIRONMENT}={value!r}: it must be a whole number of workers, 1 or more "
            f"(or unset it, and plait counts the usable cores)"
        )
    return workers


def cgroup_quota(root: Path = _cgroup.ROOT, membership: Path = _cgroup.MEMBERSHIP) -> int | None:
    """The CPU quota of this process's cgroup in cores, rounded up; None if it has none (or
    this is not Linux). cgroup v2 writes ``cpu.max`` as "<quota> <period>" or "max <period>";
    v1 writes ``cpu.cfs_quota_us`` (-1: none) and ``cpu.cfs_period_us``."""
    for version, directory in _cgroup.directories("cpu", root, membership):
        try:
            if version == 2:
                quota, period = (directory / "cpu.max").read_text().split()
                if quota == "max":
                    return None
                return _cores(int(quota), int(period))
            quota = (directory / "cpu.cfs_quota_us").read_text().strip()
            period = (directory / "cpu.cfs_period_us").read_text().strip()
            return None if int(quota) < 0 else _cores(int(quota), int(period))
        except (OSError, ValueError):
            continue
    return None


def _cores(quota: int, period: int) -> int | None:
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))
