"""An input that comes steadily (a stream: an item a millisecond) and quick work on it: how long
until the first result, and the longest wait between two results.

    python bench/bench_steady.py            # full run (about 40 s)
    python bench/bench_steady.py --quick    # smoke run (about 10 s)

A consumer of a stream (messages, log lines, rows from a cursor) wants each result soon after
its item came, as the builtin ``map`` gives it. A concurrent map reads its input ahead, in
batches: one that reads a whole batch (or the whole input) before it runs any of it holds every
result back for as long as that read takes. Each case maps ``x * 2`` over 2,000 items that come
an item a millisecond (a generator that sleeps), in a fresh process, and records when each
result arrives: the time to the first, the longest gap between two, and the whole run. Peers:
the builtin ``map``; ``ThreadPoolExecutor.map`` (it submits the whole input first); joblib's
``Parallel(return_as="generator")`` on threads (it reads ``pre_dispatch`` ahead); mpire's
``imap`` on threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator

EVERY = 0.001  # seconds between two items of the input


def double(x: int) -> int:
    return 2 * x


def steady(count: int) -> Iterator[int]:
    for k in range(count):
        time.sleep(EVERY)
        yield k


def mapped(case: str, items: Iterator[int]) -> Iterable[int]:
    if case == "builtin map":
        return map(double, items)
    if case == "plait (auto)":
        import plait

        return plait.map(double, items)
    if case == "plait, 2 threads":
        import plait

        return plait.map(double, items, backend="thread", workers=2)
    if case == "ThreadPoolExecutor(2).map":
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(2).map(double, items)
    if case == "joblib, 2 threads":
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=2, prefer="threads", return_as="generator")
        return parallel(delayed(double)(x) for x in items)  # type: ignore[no-any-return]
    if case == "mpire, 2 threads":
        from mpire.pool import WorkerPool

        pool = WorkerPool(2, start_method="threading")
        results: Iterable[int] = pool.imap(double, items)
        return results
    raise ValueError(case)


def run_case(case: str, count: int) -> dict[str, float]:
    """One run, in this (fresh) process: when each result came."""
    import plait  # noqa: F401  (imports stay outside the timing, as elsewhere in bench/)

    items = steady(count)
    started = last = time.perf_counter()
    first, gap, taken = 0.0, 0.0, 0
    for value in mapped(case, items):
        now = time.perf_counter()
        if taken == 0:
            first = now - started
        gap = max(gap, now - last)
        last = now
        assert value == 2 * taken
        taken += 1
    assert taken == count
    return {"first": first, "gap": gap, "total": last - started}


CASES = [
    "builtin map",
    "plait (auto)",
    "plait, 2 threads",
    "ThreadPoolExecutor(2).map",
    "joblib, 2 threads",
    "mpire, 2 threads",
]


def _fresh(case: str, count: int) -> dict[str, float]:
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); import bench_steady as b; "
        f"print(json.dumps(b.run_case({case!r}, {count})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    count = 500 if args.quick else 2000
    runs: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}
    for _ in range(1 if args.quick else args.repeat):
        for case in CASES:  # round-robin: a noisy moment is spread over all of them
            runs[case].append(_fresh(case, count))
    print(f"{count} items, one every {EVERY * 1000:g} ms, x * 2 on each; medians of "
          f"{len(runs[CASES[0]])} runs, each in a fresh process\n")  # fmt: skip
    print("| Case | first result | longest gap | whole run |")
    print("|---|---|---|---|")
    for case, results in runs.items():
        row = {key: statistics.median(r[key] for r in results) for key in ("first", "gap", "total")}
        print(
            f"| {case} | {row['first'] * 1000:.0f} ms | {row['gap'] * 1000:.0f} ms "
            f"| {row['total']:.2f} s |"
        )


if __name__ == "__main__":
    main()
