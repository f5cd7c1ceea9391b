"""The next process map in the same program: time from the call to its first result.

    python bench/bench_warm.py            # full run (about 10 s)
    python bench/bench_warm.py --quick    # smoke run (about 2 s)

A program that maps again (a loop of small maps, a notebook's next cell) should not pay for
starting workers again: plait hands a finished map's idle workers to the next one (warm
workers). Measured in one fresh process: the first map of 2 items on 2 processes (cold), then
N more, each timed from the ``plait.map`` call to its first result; the median and the 90th
percentile of those N. Beside it, the same for ``multiprocessing.Pool`` (fork) made anew for
each map (it keeps nothing between pools), and for one ``multiprocessing.Pool`` kept open
across all the maps (``imap``), the floor for a pool that is already running.

Target (issue: fast process start): plait's next map, at most 1 ms to its first result.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterator


def double(x: int) -> int:
    return 2 * x


def plait_maps(count: int) -> list[float]:
    import plait

    times = []
    for _ in range(count):
        start = time.perf_counter()
        results = plait.map(double, range(2), workers=2, backend="process")
        next(iter(results))
        times.append(time.perf_counter() - start)
        for _ in results:  # consumed: the map ends normally and parks its workers
            pass
    return times


def pool_maps(count: int) -> list[float]:
    context = multiprocessing.get_context("fork")
    times = []
    for _ in range(count):
        start = time.perf_counter()
        with context.Pool(2) as pool:
            results = pool.imap(double, range(2))
            next(results)
            times.append(time.perf_counter() - start)
            list(results)
    return times


def open_pool_maps(count: int) -> list[float]:
    context = multiprocessing.get_context("fork")
    times = []
    with context.Pool(2) as pool:
        for _ in range(count):
            start = time.perf_counter()
            results = pool.imap(double, range(2))
            next(results)
            times.append(time.perf_counter() - start)
            list(results)
    return times


def rows(count: int) -> Iterator[tuple[str, float, float, float]]:
    variants: list[tuple[str, Callable[[int], list[float]]]] = [
        ("plait.map, a new map each time (warm workers)", plait_maps),
        ("multiprocessing.Pool (fork), a new pool each time", pool_maps),
        ("multiprocessing.Pool (fork), one pool kept open", open_pool_maps),
    ]
    for name, run in variants:
        times = run(count + 1)
        later = sorted(times[1:])
        p90 = later[int(0.9 * (len(later) - 1))]
        yield name, times[0], statistics.median(later), p90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    # Imports outside the timing, as the other cases do.
    importlib.import_module("plait._api")
    importlib.import_module("plait._backends.process._dispatcher")

    count = 20 if args.quick else 200
    print(f"Maps of 2 items on 2 processes, {count} after the first; first result after the call.")
    print()
    print("| Variant | first map | next maps, median | next maps, p90 |")
    print("|---|---|---|---|")
    for name, first, median, p90 in rows(count):
        print(f"| {name} | {first * 1e3:.2f} ms | {median * 1e3:.2f} ms | {p90 * 1e3:.2f} ms |")


if __name__ == "__main__":
    main()
