"""plait.sync against threading: uncontended lock cost and RateLimiter accuracy.

    python bench/bench_sync.py            # full run (about 10 s)
    python bench/bench_sync.py --quick    # smoke run (about 3 s)

Lock timings interleave the variants round by round and keep each one's best round, so a burst
of load on the machine cannot favour one side. Prints a markdown table of ratios and targets.
"""

from __future__ import annotations

import argparse
import threading
import time
import timeit
from collections.abc import Callable

from plait import sync

FORMS = {
    "`with lock:`": "with lock: pass",
    "`acquire()` + `release()`": "lock.acquire(); lock.release()",
}


def best_times(
    makers: dict[str, Callable[[], object]], stmt: str, rounds: int, n: int
) -> dict[str, float]:
    best = dict.fromkeys(makers, float("inf"))
    locks = {name: make() for name, make in makers.items()}
    for _ in range(rounds):
        for name, lock in locks.items():
            seconds = timeit.timeit(stmt, globals={"lock": lock}, number=n)
            best[name] = min(best[name], seconds / n)
    return best


def lock_rows(quick: bool) -> list[tuple[str, str, str, str]]:
    makers: dict[str, Callable[[], object]] = {
        "threading": threading.Lock,
        "on": sync.Lock,
        "off": lambda: sync.Lock(detect=False),
    }
    rows = []
    for form, stmt in FORMS.items():
        t = best_times(makers, stmt, rounds=5 if quick else 15, n=50_000 if quick else 200_000)
        base = t["threading"]
        for mode, limit in (("on", 5.0), ("off", 2.0)):
            ratio = t[mode] / base
            rows.append(
                (
                    f"Lock {form}, detection {mode} (threading: {base * 1e9:.0f} ns)",
                    f"{t[mode] * 1e9:.0f} ns = {ratio:.2f}x",
                    f"<= {limit:g}x",
                    "yes" if ratio <= limit else "NO",
                )
            )
    return rows


def rate_row(quick: bool) -> tuple[str, str, str, str]:
    rate, threads, seconds = 1000.0, 8, 1.0 if quick else 5.0
    limiter = sync.RateLimiter(rate)
    start_line = threading.Barrier(threads + 1)
    counts = [0] * threads
    box: list[float] = []

    def work(i: int) -> None:
        start_line.wait()
        end = box[0] + seconds
        while limiter.acquire() and time.monotonic() < end:
            counts[i] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    box.append(time.monotonic())
    start_line.wait()
    for w in workers:
        w.join()
    achieved = sum(counts) / seconds
    error = abs(achieved - rate) / rate
    return (
        f"RateLimiter({rate:g}/s), {threads} threads, {seconds:g} s",
        f"{achieved:.1f}/s (error {error:.2%})",
        "within 2 %",
        "yes" if error <= 0.02 else "NO",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, a 1 s rate run")
    args = parser.parse_args()
    rows = [*lock_rows(args.quick), rate_row(args.quick)]
    print("| measure | plait.sync | target | met |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
