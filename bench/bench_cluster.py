"""plait on a cluster engine (Dask or Ray) against the engine's own API, in one run.

    python bench/bench_cluster.py --engine dask     # full run (about a minute)
    python bench/bench_cluster.py --engine ray
    python bench/bench_cluster.py --engine ray --quick    # smoke run

The cluster, shared by every case: Dask, a scheduler and 2 single-threaded workers on this
machine, started the way plait starts one when a program has none (``_dask_local``), through one
``distributed.Client``; Ray, ``ray.init(num_cpus=2)``. Measured:

- tiny tasks (``x * 2``): plait.map over 200,000 items; the engine's own per-item API, one task
  per item (``client.map``, ``ray.remote``: over fewer items, at their cost per item 200,000
  would take minutes; the cost per item is what is compared); hand-written batches of 1,000
  items, one task each (given its range of items: nothing shipped, the strongest baseline);
- an endless generator through 1,000,000 items: the growth of this process's peak RSS;
- a map of 10 items, one of which hangs, with ``task_timeout=2``: the time to its end.

Targets (issue: scale out): plait's tiny tasks at least 10x cheaper per item than the
engine's per-item API and within 1.3x of the hand-written batches; RSS growth at most 20 MiB;
the hung map done within 10 s with that one item failed.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
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


# An engine: (its description, one task per item over range(n), batches of 1,000 over
# range(n)), each returning the sum of the doubled items.
Engine = tuple[str, Callable[[int], int], Callable[[int], int]]


@contextlib.contextmanager
def dask() -> Iterator[Engine]:
    import distributed

    from plait._backends._dask_local import LocalDaskCluster

    cluster = LocalDaskCluster(2)
    client = distributed.Client(cluster.address)
    try:
        client.wait_for_workers(2, timeout=60)
        client.gather(client.map(double, range(100)))  # connections and imports, untimed

        def per_item(n: int) -> int:
            return sum(client.gather(client.map(double, range(n), pure=False)))

        def batches(n: int) -> int:
            # (A list of 1,000 items as an argument costs Dask tens of milliseconds a task: it
            # walks the list for futures. A range of two ints costs nothing.)
            futures = [
                client.submit(double_range, i, min(i + 1000, n), pure=False)
                for i in range(0, n, 1000)
            ]
            return sum(map(sum, client.gather(futures)))

        yield (
            f"distributed {distributed.__version__}, a local cluster of 2 single-threaded "
            "workers; client.map",
            per_item,
            batches,
        )
    finally:
        client.close()
        cluster.close()


@contextlib.contextmanager
def ray() -> Iterator[Engine]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        remote_double = ray.remote(max_retries=0)(double)
        remote_range = ray.remote(max_retries=0)(double_range)
        ray.get([remote_double.remote(x) for x in range(100)])  # workers and imports, untimed

        def per_item(n: int) -> int:
            return sum(ray.get([remote_double.remote(x) for x in range(n)]))

        def batches(n: int) -> int:
            refs = [remote_range.remote(i, min(i + 1000, n)) for i in range(0, n, 1000)]
            return sum(map(sum, ray.get(refs)))

        yield f"ray {ray.__version__}, ray.init(num_cpus=2); ray.remote", per_item, batches
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engine", choices=["dask", "ray"], required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    import plait
    import plait._api  # (the engine of plait itself, imported outside every timing)

    backend = args.engine
    tiny = 20_000 if args.quick else 200_000
    per_task = 500 if args.quick else 5_000
    endless = 100_000 if args.quick else 1_000_000
    repeat = 1 if args.quick else 3

    with {"dask": dask, "ray": ray}[backend]() as (about, per_item, batches):
        assert sum(plait.map(double, range(1000), backend=backend)) == 999_000  # (untimed)

        def plait_tiny() -> None:
            assert sum(plait.map(double, range(tiny), backend=backend)) == tiny * (tiny - 1)

        plait_seconds = timed(plait_tiny, repeat)
        per_item_seconds = timed(lambda: per_item(per_task), repeat)
        batches_seconds = timed(lambda: batches(tiny), repeat)
        plait_per_item = plait_seconds / tiny
        engine_item = per_item_seconds / per_task
        batch_item = batches_seconds / tiny

        before = peak_rss_mib()
        started = time.perf_counter()
        for index, _ in enumerate(plait.map(double, itertools.count(), backend=backend)):
            if index + 1 == endless:
                break
        endless_seconds = time.perf_counter() - started
        growth = peak_rss_mib() - before

        started = time.perf_counter()
        results = list(
            plait.map(hang_on_five, range(10), backend=backend, task_timeout=2, errors="return")
        )
        hung_seconds = time.perf_counter() - started
        failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]

    cluster, api = about.rsplit("; ", 1)
    print(f"Python {sys.version.split()[0]}, {cluster}; medians of {repeat} run(s).")
    print()
    print("| case | time | per item | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    ratio = engine_item / plait_per_item
    print(
        f"| plait.map, {tiny:,} tiny items | {plait_seconds:.3f} s | "
        f"{plait_per_item * 1e6:.1f} µs | - | - | - |"
    )
    print(
        f"| {api}, one task per item ({per_task:,} items) | {per_item_seconds:.3f} s | "
        f"{engine_item * 1e6:.1f} µs | {ratio:.0f}x plait's per item | >= 10x | "
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
