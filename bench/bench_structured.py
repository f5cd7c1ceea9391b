"""plait.TaskGroup and async plait.map against their standard-library baselines.

    python bench/bench_structured.py            # full run (about 15 s)
    python bench/bench_structured.py --quick    # smoke run (about 5 s)

What is measured, and why:

- Spawning 10,000 trivial tasks (``tg.submit(abs, -1)``) into a ``plait.TaskGroup`` against
  ``ThreadPoolExecutor.submit`` with the same worker count. A TaskGroup is meant to be the
  everyday way to start work, so starting a task must cost no more than with an Executor. Two
  clocks per variant: from the `with` line to the last submit returning ("submit"), and the
  whole block, waiting for the tasks included ("block"). A last pair compares each side's
  default: a TaskGroup's unbounded threads against ``ThreadPoolExecutor()``. Each cell also
  says how many threads were alive when the last submit returned (the most seen in any round).
- 10,000 concurrent ``asyncio.sleep(0.05)`` coroutines through
  ``plait.map(sleeper, items, workers=10_000)`` against ``asyncio.run`` of a bare
  ``asyncio.gather`` of the same coroutines: plait's event-loop plumbing should cost less than
  the sleep itself (target: within 2x). Until plait.map runs ``async def`` functions, the row
  says "not available yet".

Every round runs each variant once, plait and baseline alternating, and each keeps its best
round, so a burst of load on the machine cannot favour one side. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import plait

TASKS = 10_000
NAP = 0.05


@dataclass(frozen=True)
class Timing:
    submit: float  # seconds from entering the block to the last submit returning
    block: float  # seconds for the whole block, waiting for the tasks included
    threads: int  # threads alive, besides this one, when the last submit returned


def taskgroup_spawn(workers: int | None) -> Callable[[], Timing]:
    def run() -> Timing:
        start = time.perf_counter()
        with plait.TaskGroup(workers=workers) as tg:
            for _ in range(TASKS):
                tg.submit(abs, -1)
            submitted = time.perf_counter()
            threads = threading.active_count() - 1
        return Timing(submitted - start, time.perf_counter() - start, threads)

    return run


def executor_spawn(workers: int | None) -> Callable[[], Timing]:
    def run() -> Timing:
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            for _ in range(TASKS):
                pool.submit(abs, -1)
            submitted = time.perf_counter()
            threads = threading.active_count() - 1
        return Timing(submitted - start, time.perf_counter() - start, threads)

    return run


def best_of(variants: dict[str, Callable[[], Timing]], rounds: int) -> dict[str, Timing]:
    """Run every variant once per round, in turn; keep each one's best submit and block time."""
    best = {name: Timing(float("inf"), float("inf"), 0) for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            gc.collect()
            t = run()
            old = best[name]
            best[name] = Timing(
                min(old.submit, t.submit), min(old.block, t.block), max(old.threads, t.threads)
            )
    return best


def spawn_rows(rounds: int) -> list[tuple[str, ...]]:
    """Rows for both worker settings and both clocks, with the most threads seen alive."""
    pairs = [
        ("workers=8", "`ThreadPoolExecutor(8)`", taskgroup_spawn(8), executor_spawn(8)),
        (
            "default (unbounded threads)",
            "`ThreadPoolExecutor()`",
            taskgroup_spawn(None),
            executor_spawn(None),
        ),
    ]
    variants: dict[str, Callable[[], Timing]] = {}
    for label, _, plait_run, base_run in pairs:
        variants["plait " + label] = plait_run
        variants["base " + label] = base_run
    best = best_of(variants, rounds)
    rows: list[tuple[str, ...]] = []
    for label, base_label, _, _ in pairs:
        mine, base = best["plait " + label], best["base " + label]
        for clock in ("submit", "block"):
            p, b = getattr(mine, clock), getattr(base, clock)
            rows.append(
                (
                    f"TaskGroup {label}: {TASKS:,} `submit(abs, -1)`, {clock}",
                    f"{p / TASKS * 1e6:.1f} µs/task ({mine.threads} threads)",
                    f"{b / TASKS * 1e6:.1f} µs/task ({base_label}, {base.threads} threads)",
                    *verdict(p / b, 1.0),
                )
            )
    return rows


async def sleeper(x: int) -> int:
    await asyncio.sleep(NAP)
    return x


async def gather_all(n: int) -> list[int]:
    return list(await asyncio.gather(*(sleeper(i) for i in range(n))))


def plait_async(n: int) -> list[object]:
    return list(plait.map(sleeper, range(n), workers=n))


def async_unsupported() -> str | None:
    """Why plait.map cannot run ``async def`` functions yet, or None when it can."""
    try:
        probe = plait_async(2)
    except Exception as exc:  # a TypeError until async support lands, most likely
        return f"{type(exc).__name__}: {exc}"
    coroutines = [r for r in probe if asyncio.iscoroutine(r)]
    for coroutine in coroutines:
        coroutine.close()  # never awaited: close them quietly
    if coroutines:
        return "plait.map returned coroutine objects unawaited"
    if probe != [0, 1]:
        return f"plait.map returned {probe!r} for [0, 1]"
    return None


def async_row(rounds: int) -> tuple[str, ...]:
    measure = (
        f"`plait.map` of {TASKS:,} `async def` sleeping {NAP * 1000:.0f} ms, workers={TASKS:,}"
    )
    why = async_unsupported()
    best = {"plait": float("inf"), "gather": float("inf")}
    for _ in range(rounds):
        if why is None:
            gc.collect()
            start = time.perf_counter()
            results = plait_async(TASKS)
            best["plait"] = min(best["plait"], time.perf_counter() - start)
            if results != list(range(TASKS)):
                why = "plait.map returned wrong results"
        gc.collect()
        start = time.perf_counter()
        asyncio.run(gather_all(TASKS))
        best["gather"] = min(best["gather"], time.perf_counter() - start)
    baseline = f"{best['gather'] * 1000:.0f} ms (`asyncio.run` of `asyncio.gather`)"
    if why is not None:
        return (measure, f"not available yet ({why})", baseline, "", "<= 2x", "n/a")
    ratio = best["plait"] / best["gather"]
    return (measure, f"{best['plait'] * 1000:.0f} ms", baseline, *verdict(ratio, 2.0))


def verdict(ratio: float, limit: float) -> tuple[str, str, str]:
    return f"{ratio:.2f}x", f"<= {limit:g}x", "yes" if ratio <= limit else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    rows = [*spawn_rows(rounds), async_row(rounds)]
    print("| measure | plait | baseline | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    command = " ".join(["python", *sys.argv])
    print(f"`{command}`: best of {rounds} rounds, Python {sys.version.split()[0]}, ", end="")
    print(f"{os.cpu_count()} CPUs, plait {plait.__version__}")


if __name__ == "__main__":
    main()
