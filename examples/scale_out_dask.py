"""plait on a Dask cluster: the same map, the same errors, the same time limits.

With no ``distributed.Client`` in the program, ``backend="dask"`` starts a local cluster (a
scheduler and a worker process per core) and closes it when the pool ends. To use a cluster
you already run, create a ``distributed.Client`` first, or give its scheduler's address:
``plait.Pool("dask", plait.Workers(address="tcp://scheduler:8786"))``.

Needs the extra: ``pip install 'plait[dask]'``. No main guard needed.
"""

from __future__ import annotations

import time

import plait


def collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def slow_or_stuck(n: int) -> int:
    if n == 3:
        time.sleep(3600)  # stuck: task_timeout fails it, and its worker is restarted
    return n * 10


with plait.Pool("dask") as pool:  # the local cluster starts with the first batch
    steps = list(pool.map(collatz_steps, range(1, 50_001)))
    print(f"longest Collatz chain below 50,001: {max(steps)} steps, in {len(steps)} results")

    results = list(pool.map(slow_or_stuck, range(6), task_timeout=1, errors="return"))
    for n, result in enumerate(results):
        print(f"item {n}: {type(result).__name__ if isinstance(result, Exception) else result}")
