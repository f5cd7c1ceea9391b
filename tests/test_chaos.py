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
from collections.abc import Iterable, Iterator

import pytest

import plait
from conftest import child_pids

ITEMS = 10_000
TIMED_ITEMS = 4_000  # one at a time (a round trip each): fewer of them
TIMEOUT = 0.5
# A worker is killed each time this many more results have arrived: as many kills however fast
# the machine runs (kills every so many seconds would kill more on a slower machine, slow the
# map further, and kill more again).
KILL_EVERY = 50


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


class Killer:
    """A thread that kills a random worker process each time it is kicked."""

    def __init__(self) -> None:
        self.killed: list[int] = []
        self._kicks = threading.Semaphore(0)
        self._stop = False
        self._rng = random.Random(1234)
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._kicks.release()
        self._thread.join()

    def results(self, results: Iterable[object]) -> Iterator[object]:
        """``results``, kicking the killer every KILL_EVERY of them."""
        for count, result in enumerate(results, 1):
            if count % KILL_EVERY == 0:
                self._kicks.release()
            yield result

    def _run(self) -> None:
        while True:
            self._kicks.acquire()
            if self._stop:
                return
            pids = sorted(child_pids())
            if pids:
                victim = self._rng.choice(pids)
                try:
                    os.kill(victim, signal.SIGKILL)
                    self.killed.append(victim)
                except ProcessLookupError:
                    pass


@pytest.mark.timeout(240)
def test_every_outcome_arrives_exactly_once_while_workers_die() -> None:
    policy = plait.Retry(retries=50, on=(), crashes=True)  # crashes only: errors are data here
    outcomes: list[object] = []
    with Killer() as killer:
        results = plait.map(
            chaotic,
            range(TIMED_ITEMS),
            backend="process",
            workers=4,
            task_timeout=TIMEOUT,
            retries=policy,
            errors="return",
        )
        outcomes.extend(killer.results(results))
    assert killer.killed, "the chaos thread never killed a worker"
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
    outcomes: list[object] = []
    with Killer() as killer:
        results = plait.map(batched_chaos, range(ITEMS), backend="process", errors="return")
        outcomes.extend(killer.results(results))
    killed = killer.killed
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
