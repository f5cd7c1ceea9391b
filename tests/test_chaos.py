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
# Timed items travel one at a time (a round trip each) while workers die every 0.2 s: fewer of
# them keep the test inside its time limit on a loaded 2-core machine.
TIMED_ITEMS = 4_000
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


@pytest.mark.timeout(240)
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
            range(TIMED_ITEMS),
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
    assert len(outcomes) == TIMED_ITEMS
    for x, outcome in enumerate(outcomes):
        kind = expected_kind(x)
        if kind is None:
            assert outcome == x * x, f"item {x}: {outcome!r}"
        elif kind is plait.TaskTimeout:  # a hanging item may also be killed more than 50 times
            assert isinstance(outcome, plait.TaskTimeout | plait.WorkerCrashed), (x, outcome)
        else:
            assert isinstance(outcome, kind), f"item {x}: {outcome!r}"


# -- the same, with automatic batches: a crash must cost only the item that caused it ------

PARENT = os.getpid()


def _rebuild_only_in_a_worker() -> str:
    if os.getpid() == PARENT:
        raise RuntimeError("this value can only be rebuilt in a worker")
    return "rebuilt"


class Unrebuildable:
    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_only_in_a_worker, ())


def batched_chaos(x: int) -> object:
    if x % 1999 == 11:
        os._exit(7)
    if x % 97 == 3:
        raise ValueError(f"item {x} is bad")
    if x % 89 == 5:
        raise StopIteration(x)
    if x % 83 == 7:
        return Unrebuildable()
    return x * x


def batched_expected_kind(x: int) -> type[BaseException] | None:
    if x % 1999 == 11:
        return plait.WorkerCrashed
    if x % 97 == 3:
        return ValueError
    if x % 89 == 5:
        return RuntimeError  # a StopIteration is raised as a RuntimeError (PEP 479)
    if x % 83 == 7:
        return plait.RemoteError
    return None


@pytest.mark.timeout(240)
def test_with_automatic_batches_every_outcome_arrives_once_while_workers_die() -> None:
    stop = threading.Event()
    killed: list[int] = []
    killer = threading.Thread(target=kill_workers_at_random, args=(stop, killed))
    outcomes: list[object] = []
    try:
        killer.start()
        outcomes.extend(plait.map(batched_chaos, range(ITEMS), backend="process", errors="return"))
    finally:
        stop.set()
        killer.join()
    assert killed, "the chaos thread never killed a worker"
    assert len(outcomes) == ITEMS
    # A healthy item fails only if the chaos thread killed its worker while it ran alone (a
    # batch that loses its worker runs again item by item): at most one item per kill, and
    # only with SIGKILL, never with another item's exit code.
    unlucky = 0
    for x, outcome in enumerate(outcomes):
        kind = batched_expected_kind(x)
        if isinstance(outcome, plait.WorkerCrashed) and outcome.exitcode == -signal.SIGKILL:
            unlucky += kind is not plait.WorkerCrashed
            continue
        if kind is None:
            assert outcome == x * x, f"item {x}: {outcome!r}"
        else:
            assert isinstance(outcome, kind), f"item {x}: {outcome!r}"
        if kind is plait.WorkerCrashed:
            assert isinstance(outcome, plait.WorkerCrashed)
            assert outcome.exitcode == 7, f"item {x}: {outcome!r}"
    assert unlucky <= len(killed)
