"""Chaos: a long map on processes while workers are killed at random and items misbehave.

Every item's outcome must arrive exactly once, in its place, and every healthy item's value
must be right, whatever was killed when.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

import plait
from conftest import child_pids

ITEMS = 10_000
TIMEOUT = 0.5


def chaotic(x: int) -> object:
    if x % 2500 == 7:
        time.sleep(60)  # hangs past its task_timeout
    if x % 97 == 3:
        raise ValueError(f"item {x} is bad")
    if x % 89 == 5:
        return threading.Lock()  # cannot be pickled back
    return x * x


def expected_kind(x: int) -> type[BaseException] | None:
    if x % 2500 == 7:
        return plait.TaskTimeout
    if x % 97 == 3:
        return ValueError
    if x % 89 == 5:
        return TypeError
    return None


def kill_workers_at_random(stop: threading.Event, killed: list[int]) -> None:
    rng = random.Random(1234)
    while not stop.wait(0.2):
        pids = sorted(child_pids())
        if pids:
            victim = rng.choice(pids)
            try:
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
            except ProcessLookupError:
                pass


@pytest.mark.timeout(120)
def test_every_outcome_arrives_exactly_once_while_workers_die() -> None:
    stop = threading.Event()
    killed: list[int] = []
    killer = threading.Thread(target=kill_workers_at_random, args=(stop, killed))
    policy = plait.Retry(retries=50, on=(), crashes=True)  # crashes only: errors are data here
    outcomes: list[object] = []
    try:
        killer.start()
        results = plait.map(
            chaotic,
            range(ITEMS),
            backend="process",
            workers=4,
            task_timeout=TIMEOUT,
            retries=policy,
            errors="return",
        )
        outcomes.extend(results)
    finally:
        stop.set()
        killer.join()
    assert killed, "the chaos thread never killed a worker"
    assert len(outcomes) == ITEMS
    for x, outcome in enumerate(outcomes):
        kind = expected_kind(x)
        if kind is None:
            assert outcome == x * x, f"item {x}: {outcome!r}"
        elif kind is plait.TaskTimeout:  # a hanging item may also be killed more than 50 times
            assert isinstance(outcome, plait.TaskTimeout | plait.WorkerCrashed), (x, outcome)
        else:
            assert isinstance(outcome, kind), f"item {x}: {outcome!r}"
