"""How many worker processes a pool can have: as many as the open-file limit leaves room for.

Each worker holds ``FDS_PER_WORKER`` descriptors in this process for as long as it lives, so a
pool of more workers than ``ulimit -n`` allows would fail as it grows (socketpair: "Too many
open files") after part of its work ran. A count past the limit (``workers=2**70``, a
``PLAIT_WORKERS`` with a typing slip) is refused where it is given instead, saying what holds.
Workers start as the work needs them (``Crew.grow``): a count within the limit costs
nothing until items wait for that many.
"""

from __future__ import annotations

import os
import resource
import sys

from ..._cores import ENVIRONMENT, process_workers

# What a worker holds open here: its socket, the descriptor that turns readable when it exits
# (a pidfd, or a copy of the template's status pipe) and that status pipe.
FDS_PER_WORKER = 3
# Left for the rest of the program: its standard streams, the dispatcher's epoll and wake-up
# pipe, the template's socket, a few files of its own.
FDS_KEPT_FREE = 32


def open_file_limit() -> int | None:
    """``ulimit -n`` (the soft limit); None if there is none."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def most_workers() -> int:
    """The most worker processes one pool can keep at once under the open-file limit."""
    limit = open_file_limit()
    if limit is None:
        return sys.maxsize
    return max(1, (limit - FDS_KEPT_FREE) // FDS_PER_WORKER)


def worker_count(count: int | None) -> int:
    """How many workers a pool may start: ``count`` if given, else ``PLAIT_WORKERS`` if set
    (either refused past the limit, as the user's own number), else one per usable core (as
    many of them as the limit holds: a number nobody gave is not an error)."""
    if count is not None:
        check_count(count, f"workers={count}")
        return count
    workers = process_workers()
    if given := os.environ.get(ENVIRONMENT, "").strip():  # (empty: as if unset)
        check_count(workers, f"{ENVIRONMENT}={given}")
        return workers
    return min(workers, most_workers())


def check_count(workers: int, named: str) -> None:
    """Refuse ``workers`` processes if the open-file limit cannot hold them; ``named`` is how
    the count was given (``workers=...``, ``PLAIT_WORKERS=...``)."""
    most = most_workers()
    if workers <= most:
        return
    raise ValueError(
        f"{named}: too many worker processes for this process's open-file limit (ulimit -n "
        f"{open_file_limit()}): each holds {FDS_PER_WORKER} file descriptors here, which "
        f"leaves room for {most} workers; give workers={most} or fewer, or raise the limit "
        "(ulimit -n, resource.setrlimit)"
    )
