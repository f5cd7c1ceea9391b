"""plait on a Dask cluster against Dask's own APIs, in one run on one local cluster.

    python bench/bench_dask.py            # full run (about a minute)
    python bench/bench_dask.py --quick    # smoke run

The cluster: a scheduler and 2 single-threaded workers on this machine, started the way plait
starts one when a program has none (``plait._backends._dask_local``), and shared by every case
through one ``distributed.Client``. Measured:

- tiny tasks (``x * 2``): plait.map over 200,000 items; Dask's ``client.map`` one task per item
  (over fewer items: at its cost per item, 200,000 would take minutes; the cost per item is what
  is compared); hand-written batches of 1,000 items, one ``client.submit`` each (given its
  range of items: nothing shipped);
- an endless generator through 1,000,000 items: the growth of this process's peak RSS;
- a map of 10 items, one of which hangs, with ``task_timeout=2``: the time to its end.

Targets (issue: scale out): plait's tiny tasks at least 10x cheaper per item than
``client.map`` and within 1.3x of the hand-written batches; RSS growth at most 20 MiB; the hung
map done within 10 s with that one item failed.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any


def double(x: int) -> int:
    return x * 2


def double_range(start: int, stop: int) -> list[int]:
    return [x * 2 for x in range(start, stop)]


def hang_on_five(x: int) -> int:
    if x == 5:
        time.sleep(3600)
    return x


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import distributed

    import plait
    import plait._api
    from plait._backends._dask_local import LocalDaskCluster

    tiny = 20_000 if args.quick else 200_000
    per_task = 500 if args.quick else 5_000
    endless = 100_000 if args.quick else 1_000_000
    repeat = 1 if args.quick else 3

    cluster = LocalDaskCluster(2)
    client = distributed.Client(cluster.address)
    try:
        client.wait_for_workers(2, timeout=60)
        client.gather(client.map(double, range(100)))  # connections and imports, untimed

        def plait_tiny() -> None:
            assert sum(plait.map(double, range(tiny), backend="dask")) == tiny * (tiny - 1)

        def dask_per_item() -> None:
            assert sum(client.gather(client.map(double, range(per_task), pure=False))) == (
                per_task * (per_task - 1)
            )

        def dask_batches() -> None:
            # Each batch names its items by their range: nothing to ship but two ints (a list
            # of 1,000 items as an argument costs Dask tens of milliseconds a task: it walks
            # the list for futures). The strongest hand-written baseline.
            futures = [
                client.submit(double_range, i, min(i + 1000, tiny), pure=False)
                for i in range(0, tiny, 1000)
            ]
            assert sum(map(sum, client.gather(futures))) == tiny * (tiny - 1)

        plait_seconds = timed(plait_tiny, repeat)
        per_item_seconds = timed(dask_per_item, repeat)
        batches_seconds = timed(dask_batches, repeat)
        plait_per_item = plait_seconds / tiny
        dask_item = per_item_seconds / per_task
        batch_item = batches_seconds / tiny

        def source() -> Iterator[int]:
            yield from itertools.count()

        before = peak_rss_mib()
        started = time.perf_counter()
        for index, _ in enumerate(plait.map(double, source(), backend="dask")):
            if index + 1 == endless:
                break
        endless_seconds = time.perf_counter() - started
        growth = peak_rss_mib() - before

        started = time.perf_counter()
        results = list(
            plait.map(hang_on_five, range(10), backend="dask", task_timeout=2, errors="return")
        )
        hung_seconds = time.perf_counter() - started
        failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    finally:
        client.close()
        cluster.close()

    print(
        f"Python {sys.version.split()[0]}, distributed {distributed.__version__}, a local cluster "
        "of 2 single-threaded workers; medians of "
        f"{repeat} run(s)."
    )
    print()
    print("| case | time | per item | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    ratio = dask_item / plait_per_item
    print(
        f"| plait.map, {tiny:,} tiny items | {plait_seconds:.3f} s | "
        f"{plait_per_item * 1e6:.1f} µs | - | - | - |"
    )
    print(
        f"| client.map, one task per item ({per_task:,} items) | {per_item_seconds:.3f} s | "
        f"{dask_item * 1e6:.1f} µs | {ratio:.0f}x plait's per item | >= 10x | "
        f"{'yes' if ratio >= 10 else '**no**'} |"
    )
    against = plait_per_item / batch_item
    print(
        f"| hand-written batches of 1,000 ({tiny:,} items) | {batches_seconds:.3f} s | "
        f"{batch_item * 1e6:.1f} µs | plait {against:.2f}x | <= 1.3x | "
        f"{'yes' if against <= 1.3 else '**no**'} |"
    )
    print(
        f"| endless generator, {endless:,} items | {endless_seconds:.1f} s | - | "
        f"peak RSS +{growth:.1f} MiB | <= 20 MiB | {'yes' if growth <= 20 else '**no**'} |"
    )
    print(
        f"| 10 items, one hung, task_timeout=2 | {hung_seconds:.1f} s | - | failed items "
        f"{failed} | <= 10 s, item 5 | "
        f"{'yes' if hung_seconds <= 10 and failed == [5] else '**no**'} |"
    )


if __name__ == "__main__":
    main()
