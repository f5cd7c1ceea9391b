"""backend="auto"'s decisions, as pure functions of what was measured (``plait._plan``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from plait._cpu_wait import Clocks, waited_between
from plait._plan import Measured, Plan, Situation, decide, needs_parallel_probe

pytestmark = pytest.mark.timeout(30)

TWO_CORES = Situation(cores=2, gil=True, travels=True, process_workers=2)


def test_waiting_work_goes_to_threads() -> None:
    plan = decide(Measured(items=1, share=0.01, per_item=0.010), TWO_CORES)
    assert plan.backend == "thread"
    assert "waits" in plan.reason


def test_computing_work_that_holds_the_gil_goes_to_one_process_per_core() -> None:
    plan = decide(Measured(items=3, share=0.99, per_item=0.005, parallel=1.0), TWO_CORES)
    assert plan == Plan("process", 2, plan.reason)
    assert plan.reason == (
        "it computes holding the GIL (99% of its time on CPU, 5.0 ms an item; two threads "
        "computed 1.0 cores' worth at once): one process per core"
    )


def test_computing_work_that_releases_the_gil_stays_on_threads_one_per_core() -> None:
    plan = decide(Measured(items=3, share=0.98, per_item=0.05, parallel=1.9), TWO_CORES)
    assert (plan.backend, plan.workers) == ("thread", 2)
    assert "releases the GIL" in plan.reason


def test_tiny_work_runs_inline() -> None:
    plan = decide(Measured(items=4096, share=1.0, per_item=1e-7), TWO_CORES)
    assert plan.backend == "inline"
    assert str(plan).startswith("inline: 0.1 µs an item")


def test_work_that_cannot_travel_stays_on_threads_and_says_why() -> None:
    situation = Situation(cores=2, gil=True, travels=False, why_not="TypeError: cannot pickle")
    plan = decide(Measured(items=3, share=1.0, per_item=0.005, parallel=1.0), situation)
    assert plan.backend == "thread"
    assert "cannot go to a process: TypeError: cannot pickle" in plan.reason


def test_free_threaded_python_computes_on_threads() -> None:
    situation = Situation(cores=4, gil=False, travels=True)
    plan = decide(Measured(items=3, share=1.0, per_item=0.005), situation)
    assert (plan.backend, plan.workers) == ("thread", 4)
    assert "GIL is off" in plan.reason


def test_one_core_never_starts_processes() -> None:
    situation = Situation(cores=1, gil=True, travels=True)
    plan = decide(Measured(items=3, share=1.0, per_item=0.005, parallel=1.0), situation)
    assert (plan.backend, plan.workers) == ("thread", 1)


def test_little_work_left_does_not_pay_for_starting_processes() -> None:
    situation = Situation(cores=2, gil=True, travels=True, remaining=4)
    plan = decide(Measured(items=3, share=1.0, per_item=0.005, parallel=1.0), situation)
    assert (plan.backend, plan.workers) == ("thread", 1)
    assert "20.0 ms of work is left" in plan.reason


def test_process_workers_follow_the_pool_size_given_by_the_environment() -> None:
    situation = Situation(cores=2, gil=True, travels=True, process_workers=3)
    plan = decide(Measured(items=3, share=1.0, per_item=0.005, parallel=1.0), situation)
    assert (plan.backend, plan.workers) == ("process", 3)


@pytest.mark.parametrize(
    ("share", "per_item", "cores", "gil", "expected"),
    [
        (1.0, 0.005, 2, True, True),  # computing, not tiny: does it release the GIL?
        (0.1, 0.005, 2, True, False),  # waiting: threads whatever the GIL does
        (1.0, 1e-7, 2, True, False),  # tiny: inline
        (1.0, 0.005, 1, True, False),  # one core: nothing to compare
        (1.0, 0.005, 2, False, False),  # no GIL: threads
    ],
)
def test_the_parallel_probe_runs_only_when_it_can_change_the_decision(
    share: float, per_item: float, cores: int, gil: bool, expected: bool
) -> None:
    measured = Measured(items=2, share=share, per_item=per_item)
    assert needs_parallel_probe(measured, Situation(cores, gil, travels=True)) is expected


def test_tiny_work_with_a_task_timeout_stays_on_a_thread_that_can_be_abandoned() -> None:
    situation = Situation(cores=2, gil=True, travels=True, can_inline=False)
    plan = decide(Measured(items=4096, share=1.0, per_item=1e-7), situation)
    assert (plan.backend, plan.workers) == ("thread", 1)
    assert "task_timeout" in plan.reason


def test_items_that_travel_alone_are_tiny_below_a_hand_off_each() -> None:
    """With a task_timeout each item is a task of its own: 20 µs of work is less than what
    handing it alone to a process costs, though batched it would be worth it."""
    alone = Situation(cores=2, gil=True, travels=True, can_inline=False, items_travel_alone=True)
    measured = Measured(items=100, share=1.0, per_item=2e-5)
    assert not needs_parallel_probe(measured, alone)
    assert decide(measured, alone).backend == "thread"
    batched = Situation(cores=2, gil=True, travels=True)
    assert needs_parallel_probe(measured, batched)
    assert decide(replace(measured, parallel=1.0), batched).backend == "process"


def test_a_wait_for_a_core_is_at_most_the_time_the_thread_did_not_run() -> None:
    """Linux can count a wait late: a reading may hold a wait from before the first one."""
    start = Clocks(wall=10.0, cpu=1.0, waited=0.5)
    assert waited_between(start, Clocks(wall=10.004, cpu=1.001, waited=0.502)) == pytest.approx(
        0.002
    )
    assert waited_between(start, Clocks(wall=10.002, cpu=1.002, waited=0.505)) == pytest.approx(0)
    assert waited_between(start, Clocks(wall=10.010, cpu=1.002, waited=0.509), wall=0.004) == (
        pytest.approx(0.002)
    )
