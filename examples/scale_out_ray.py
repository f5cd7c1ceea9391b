"""plait on Ray: the same map, the same errors, the same time limits.

With no Ray running in the program, ``backend="ray"`` starts a local Ray (a CPU per core, no
dashboard) and shuts it down when the pool ends. To use a Ray you already run, call
``ray.init(...)`` first (plait then leaves it running), set ``RAY_ADDRESS``, or give the
cluster's address: ``plait.Pool("ray", plait.Workers(address="ray://head:10001"))``.

Needs the extra: ``pip install 'plait[ray]'``. No main guard needed.
"""

from __future__ import annotations

import os

import plait


def collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def crash_on_three(n: int) -> int:
    if n == 3:
        os._exit(1)  # the worker process dies: only this item fails
    return n * 10


with plait.Pool("ray") as pool:  # Ray starts with the first batch
    steps = list(pool.map(collatz_steps, range(1, 50_001)))
    print(f"longest Collatz chain below 50,001: {max(steps)} steps, in {len(steps)} results")

    results = list(pool.map(crash_on_three, range(6), chunksize=3, errors="return"))
    for n, result in enumerate(results):
        print(f"item {n}: {type(result).__name__ if isinstance(result, Exception) else result}")
