"""Structured concurrency: plait.run and plait.TaskGroup."""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from pathlib import Path

import pytest

import plait
import plait._cancel as plait_cancel


def fail(message: str) -> None:
    raise ValueError(message)


def nap_forever() -> str:
    plait.sleep(60)  # wakes up at once when cancelled
    return "slept"


def process_nap(marker: str) -> str:
    Path(marker).write_text("running")
    time.sleep(60)  # not cooperative: only termination stops it
    return "slept"


def fail_after(marker: str) -> None:
    deadline = time.monotonic() + 20  # another process: a file is the signal
    while not Path(marker).exists():
        assert time.monotonic() < deadline, "the sibling never started"
        time.sleep(0.01)
    raise ValueError("crash")


def test_run_returns_results_in_argument_order() -> None:
    order = threading.Barrier(2, timeout=10)

    def first() -> str:
        order.wait()  # both run at once, or this never returns
        return "numbers"

    def second() -> int:
        order.wait()
        return 26

    assert plait.run(first, second) == ("numbers", 26)


def test_run_with_no_functions() -> None:
    assert plait.run() == ()


def test_run_passes_arguments_with_partial() -> None:
    assert plait.run(functools.partial(pow, 2, 8), functools.partial(divmod, 7, 2)) == (256, (3, 1))


def test_run_raises_the_one_failure_and_cancels_the_sibling() -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match="boom"):
        plait.run(nap_forever, functools.partial(fail, "boom"))
    assert time.monotonic() - started < 10  # the sibling did not sleep its 60 s


def test_run_raises_a_group_when_several_fail() -> None:
    both_running = threading.Barrier(2, timeout=10)

    def fail_together(message: str) -> None:
        both_running.wait()  # neither is cancelled before it fails
        raise ValueError(message)

    with pytest.raises(ExceptionGroup) as info:
        plait.run(functools.partial(fail_together, "a"), functools.partial(fail_together, "b"))
    assert sorted(str(e) for e in info.value.exceptions) == ["a", "b"]


def look_up() -> None:
    known: dict[str, int] = {}
    try:
        known["missing"]
    except KeyError as error:
        raise ValueError("lookup failed") from error


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_run_raises_the_one_failure_with_its_cause(backend: str) -> None:
    """The user's ``raise ... from ...`` (on threads), the worker's traceback (on processes):
    as a TaskGroup's member keeps it."""
    with pytest.raises(ValueError, match="lookup failed") as caught:
        plait.run(look_up, backend=backend)
    cause = caught.value.__cause__
    if backend == "thread":
        assert isinstance(cause, KeyError)
    else:
        assert isinstance(cause, plait.RemoteTraceback)
        assert "KeyError" in str(cause)
        assert "look_up" in str(cause)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["thread", "auto"])
def test_a_map_a_task_runs_stops_when_its_group_fails(backend: str) -> None:
    """As a nested TaskGroup does: the map's consumer raises Cancelled, its running items are
    told to stop (plait.sleep wakes), the rest never start. (It ran on: the block waited for
    every item, here 20 x 30 s.)"""
    started = threading.Event()

    def item(x: int) -> int:
        started.set()
        plait.sleep(30)
        return x

    def run_the_map() -> int:
        return sum(plait.map(item, range(20), backend=backend, workers=2))

    def fail_once_it_runs() -> None:
        assert started.wait(30)
        raise ValueError("a sibling failed")

    began = time.monotonic()
    with pytest.raises(ExceptionGroup) as caught, plait.TaskGroup(workers=2) as group:
        group.submit(run_the_map)
        group.submit(fail_once_it_runs)
    assert [type(error) for error in caught.value.exceptions] == [ValueError]
    assert time.monotonic() - began < 20


def test_a_map_made_in_a_task_that_ended_is_not_held_by_it() -> None:
    """The map watches its task's token while it runs, and lets go once it ends."""
    token = plait_cancel.CancelToken()
    plait_cancel.set_current_token(token)
    try:
        assert list(plait.map(abs, [-1, -2], backend="thread")) == [1, 2]
    finally:
        plait_cancel.set_current_token(None)
    assert not token._callbacks


def test_run_on_processes() -> None:
    assert plait.run(os.getpid, os.getpid, backend="process")[0] != os.getpid()


def test_results_by_handle() -> None:
    with plait.TaskGroup() as tg:
        a = tg.submit(pow, 2, 10)
        b = tg.submit(str.upper, "plait")
    assert a.done()
    assert b.done()
    assert (a.result(), b.result()) == (1024, "PLAIT")
    assert a.exception() is None


def test_a_failure_cancels_siblings_and_unstarted_tasks_never_run() -> None:
    ran: list[int] = []
    with pytest.raises(ExceptionGroup) as info, plait.TaskGroup(workers=2) as tg:
        sleeper = tg.submit(nap_forever)
        tg.submit(fail, "first")
        later = [tg.submit(ran.append, i) for i in range(5)]  # queued behind the two
    assert [str(e) for e in info.value.exceptions] == ["first"]
    assert isinstance(info.value.exceptions[0], ValueError)
    assert sleeper.cancelled()
    assert all(handle.cancelled() for handle in later)
    assert ran == []
    with pytest.raises(plait.Cancelled):
        sleeper.result()


def test_every_failure_is_in_the_group() -> None:
    gate = threading.Barrier(3, timeout=10)

    def fail_together(message: str) -> None:
        gate.wait()  # all three fail, none is cancelled before it does
        raise KeyError(message)

    with pytest.raises(ExceptionGroup) as info, plait.TaskGroup() as tg:
        for name in "xyz":
            tg.submit(fail_together, name)
    assert sorted(e.args[0] for e in info.value.exceptions) == ["x", "y", "z"]
    assert str(info.value).startswith("plait.TaskGroup: 3 task(s) failed")


def test_cancellation_is_not_swallowed_by_except_exception() -> None:
    swallowed: list[BaseException] = []
    sleeping = threading.Event()

    def stubborn() -> None:
        try:
            sleeping.set()
            plait.sleep(60)
        except Exception as exc:  # the classic mistake: it must not catch Cancelled
            swallowed.append(exc)

    def fail_once_it_sleeps() -> None:
        assert sleeping.wait(10)
        raise ValueError("go")

    with pytest.raises(ExceptionGroup), plait.TaskGroup() as tg:
        handle = tg.submit(stubborn)
        tg.submit(fail_once_it_sleeps)
    assert swallowed == []
    assert handle.cancelled()


def test_nested_groups_are_cancelled_with_their_parent() -> None:
    inner_started = threading.Event()
    inner: list[plait.TaskHandle[str]] = []

    def parent_task() -> None:
        with plait.TaskGroup() as nested:
            inner.append(nested.submit(nap_forever))
            inner_started.set()

    def fail_when_inner_runs() -> None:
        assert inner_started.wait(10)
        raise ValueError("outer")

    with pytest.raises(ExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.submit(parent_task)
        tg.submit(fail_when_inner_runs)
    assert [str(e) for e in info.value.exceptions] == ["outer"]
    assert inner[0].cancelled()


def test_a_nested_group_failure_fails_its_parent_task() -> None:
    def parent_task() -> None:
        with plait.TaskGroup() as nested:
            nested.submit(fail, "deep")

    with pytest.raises(ExceptionGroup) as info, plait.TaskGroup() as tg:
        tg.submit(parent_task)
    inner = info.value.exceptions[0]
    assert isinstance(inner, ExceptionGroup)
    assert str(inner.exceptions[0]) == "deep"


def test_group_deadline_cancels_and_raises_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"within 0\.2s"), plait.TaskGroup(timeout=0.2) as tg:
        handle = tg.submit(nap_forever)
    assert handle.cancelled()
    assert time.monotonic() - started < 10


def test_the_blocks_own_exception_cancels_the_tasks_and_propagates() -> None:
    with pytest.raises(KeyError, match="body"), plait.TaskGroup() as tg:
        handle = tg.submit(nap_forever)
        raise KeyError("body")
    assert handle.cancelled()


def test_cancel_one_handle() -> None:
    with plait.TaskGroup() as tg:
        sleeper = tg.submit(nap_forever)
        other = tg.submit(pow, 3, 2)
        assert sleeper.cancel()
    assert sleeper.cancelled()
    assert other.result() == 9
    assert not sleeper.cancel()  # already done


def release_once_the_block_waits(release: threading.Event, waiter: threading.Thread) -> None:
    """Set ``release`` once ``waiter`` waits in a group's ``_wait_all`` (leaving its block
    waits for the tasks); never, if it does not (the block ended them at once)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and waiter.is_alive():
        frame = sys._current_frames().get(waiter.ident or 0)
        while frame is not None:
            if frame.f_code.co_name == "_wait_all":
                release.set()
                return
            frame = frame.f_back
        time.sleep(0.005)


def test_a_block_left_by_the_result_of_a_task_its_handle_cancelled_waits_for_the_rest() -> None:
    """``handle.cancel()``, then ``handle.result()`` raises Cancelled out of the block: the
    block failed, as with any error (its tasks are told to stop, and waited for), and was not
    interrupted. (Taken for Ctrl-C, it ended every task at once: a sibling that never looks
    ran on past the block, and its handle said cancelled, its result lost.)"""
    release, running = threading.Event(), threading.Event()

    def never_looks() -> str:
        running.set()
        return "done" if release.wait(60) else "never released"

    releaser = threading.Thread(
        target=release_once_the_block_waits, args=(release, threading.current_thread())
    )
    releaser.start()
    try:
        with pytest.raises(plait.Cancelled), plait.TaskGroup() as tg:
            stubborn = tg.submit(never_looks)
            victim = tg.submit(nap_forever)
            assert running.wait(30)  # (a task not yet started when the block fails never starts)
            assert victim.cancel()
            victim.result()
        assert stubborn.result() == "done"  # (it ran to its end inside the block)
        assert victim.cancelled()
    finally:
        release.set()
        releaser.join(60)


def test_a_failing_process_task_terminates_a_running_sibling(tmp_path: Path) -> None:
    marker = str(tmp_path / "napping")
    started = time.monotonic()
    with pytest.raises(ExceptionGroup), plait.TaskGroup(workers=2, backend="process") as tg:
        sleeper = tg.submit(process_nap, marker)
        tg.submit(fail_after, marker)
    assert sleeper.cancelled()
    assert time.monotonic() - started < 20


def test_submit_outside_the_block_is_refused() -> None:
    group = plait.TaskGroup()
    with pytest.raises(RuntimeError, match="inside the group's `with` block"):
        group.submit(pow, 2, 2)
    with group:
        pass
    with pytest.raises(RuntimeError, match="inside the group's `with` block"):
        group.submit(pow, 2, 2)


def test_many_trivial_tasks() -> None:
    with plait.TaskGroup() as tg:
        handles = [tg.submit(abs, -i) for i in range(2000)]
    assert [h.result() for h in handles] == list(range(2000))


def fail_with(error: BaseException) -> None:
    raise error


def test_a_failure_the_block_re_raises_is_reported_once() -> None:
    """``handle.result()`` in the block raises the task's own error: the group holds it once
    (it held it twice, the block's and the task's), as asyncio.TaskGroup does."""
    error = ValueError("once")
    with pytest.raises(ExceptionGroup) as caught, plait.TaskGroup() as group:
        handle = group.submit(fail_with, error)
        handle.result()
    assert caught.value.exceptions == (error,)


def mark_then_wait(folder: str) -> str:
    Path(folder, "started").touch()
    deadline = time.monotonic() + 30
    while not Path(folder, "release").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "ran to the end"


def test_cancel_is_false_for_a_task_running_in_a_process(tmp_path: Path) -> None:
    """It cannot be told to stop: cancel() said True and did nothing."""
    with plait.TaskGroup(backend="process") as group:
        handle = group.submit(mark_then_wait, str(tmp_path))
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.01)
        assert handle.cancel() is False
        (tmp_path / "release").touch()
    assert handle.result() == "ran to the end"
    assert not handle.cancelled()


def sleep_until_told() -> str:
    plait.sleep(30)  # (raises plait.Cancelled once the group is cancelled)
    return "never"


def test_a_sibling_cancelled_for_a_failure_and_re_raised_by_the_block_keeps_the_failure() -> None:
    """The block takes the result of a task the group cancelled because another failed: the
    group still raises that failure (the Cancelled was taken for a Ctrl-C: it went up alone,
    and the ValueError was lost)."""
    error = ValueError("the real failure")
    with pytest.raises(ExceptionGroup) as caught, plait.TaskGroup() as group:
        group.submit(fail_with, error)
        other = group.submit(sleep_until_told)
        other.result()
    assert caught.value.exceptions == (error,)


class Boom(Exception):
    pass


def test_a_failure_a_sibling_waited_on_is_in_the_group_once() -> None:
    """A task that waits on a failed sibling (``handle.result()``) raises the sibling's error:
    it was counted twice, "2 task(s) failed", one object twice in the group."""
    failing = threading.Event()

    def fail() -> None:
        assert failing.wait(30)
        raise Boom("once")

    with pytest.raises(BaseExceptionGroup) as raised, plait.TaskGroup() as group:
        first = group.submit(fail)
        group.submit(first.result)
        failing.set()
    assert [type(error) for error in raised.value.exceptions] == [Boom]
    assert "1 task(s) failed" in str(raised.value)


def test_a_task_submits_to_its_group_after_the_body_has_ended() -> None:
    """The group still waits for the task, so what it submits is waited for too: it was
    refused ("use it inside the group's `with` block") once the body had ended."""
    box: list[plait.TaskGroup] = []

    def parent() -> int:
        group = box[0]
        deadline = time.monotonic() + 30
        while not group._exited:  # (the body has ended: the group waits for us)
            assert time.monotonic() < deadline
            time.sleep(0.001)
        return group.submit(lambda: 41).result() + 1

    with plait.TaskGroup() as group:
        box.append(group)
        handle = group.submit(parent)
    assert handle.result() == 42
    with pytest.raises(RuntimeError, match="inside the group's `with` block, or in one of its"):
        group.submit(lambda: 0)  # (from outside, once the block ended: refused)
