"""How many workers a cluster that plait starts on this machine may have: as many as its memory
holds.

Given no cluster, backend="dask" starts one of its own (``_dask_local``: every worker started
at once) and backend="ray" a local Ray (a worker process per task running). Each worker is a
Python interpreter of its own, and a count that no machine holds (``workers=2**70``, a typing
slip) started Dask worker after worker until the machine gave out, and left Ray with no CPUs
at all (its resources overflow), so that the map waited for good. As backend="process" does
with its open-file limit (``process._limits``), such a count is refused where it is given,
saying what holds. (The open-file limit does not hold here: Dask's scheduler and Ray raise
their own.) A cluster the user connects to is sized by whoever runs it: its count is not
plait's to check.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .. import _cgroup
from .._cores import usable_cores

# The least memory one worker of a local cluster takes, below what was measured (Python 3.11,
# memory of their own): Dask's, a nanny, its worker process and their resource tracker, 75 MiB;
# Ray's, a worker process, 41 MiB. A count that not even this much of each fits is refused.
MIN_WORKER_BYTES = {"Dask": 64 * 2**20, "Ray": 32 * 2**20}

# Where to give a cluster that holds more, for the error: each engine's own address form.
ADDRESS_EXAMPLE = {"Dask": "tcp://scheduler:8786", "Ray": "ray://head:10001"}


def machine_memory() -> int | None:
    """This machine's memory in bytes, or its cgroup's limit if that is less; None if unknown."""
    try:
        physical: int | None = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # (not a POSIX system that says)
        physical = None
    limit = cgroup_memory()
    known = [size for size in (physical, limit) if size is not None and size > 0]
    return min(known) if known else None


def cgroup_memory(root: Path = _cgroup.ROOT, membership: Path = _cgroup.MEMBERSHIP) -> int | None:
    """The memory limit of this process's cgroup in bytes; None if it has none (or this is not
    Linux). cgroup v2 writes ``memory.max`` ("max": none); v1 ``memory.limit_in_bytes`` (a
    number near 2**63: none)."""
    for version, directory in _cgroup.directories("memory", root, membership):
        try:
            if version == 2:
                limit = (directory / "memory.max").read_text().strip()
                return None if limit == "max" else int(limit)
            limit = (directory / "memory.limit_in_bytes").read_text()
            return None if int(limit) >= 2**62 else int(limit)
        except (OSError, ValueError):
            continue
    return None


def most_workers(engine: str) -> int:
    """The most workers a cluster of ``engine`` started on this machine can have in its
    memory."""
    memory = machine_memory()
    return sys.maxsize if memory is None else max(1, memory // MIN_WORKER_BYTES[engine])


def local_workers(count: int | None, engine: str) -> int:
    """How many workers the local cluster of ``engine`` ("Dask", "Ray") gets: ``count`` if
    given (refused past what this machine holds), else one per usable core, as many of them
    as it holds (a number nobody gave is not an error)."""
    if count is None:
        return min(usable_cores(), most_workers(engine))
    check_count(count, engine)
    return count


def check_count(workers: int, engine: str) -> None:
    """Refuse a local cluster of ``workers`` workers if this machine's memory cannot hold
    them."""
    most = most_workers(engine)
    if workers <= most:
        return
    memory = machine_memory() or 0
    least = MIN_WORKER_BYTES[engine] // 2**20
    raise ValueError(
        f"workers={workers}: too many workers for a local {engine} cluster in this machine's "
        f"memory ({memory / 2**30:.1f} GiB): each runs in Python processes of its own, "
        f"{least} MiB at the very least, which leaves room for {most} workers; give "
        f"workers={most} or fewer, or connect to a cluster that holds more "
        f"(plait.Workers(address={ADDRESS_EXAMPLE[engine]!r}))"
    )
