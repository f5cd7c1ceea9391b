"""plait.Cancelled says why: one reason per way work is told to stop."""

from __future__ import annotations

import pickle
import threading

import pytest

import plait
from plait import CancelReason


def test_a_sibling_failure_is_the_reason() -> None:
    started = threading.Event()
    seen: list[plait.Cancelled] = []

    def waits() -> None:
        started.set()
        try:
            plait.sleep(30)
        except plait.Cancelled as exc:
            seen.append(exc)
            raise

    def fails() -> None:
        started.wait(30)
        raise ValueError("boom")

    with pytest.raises(ExceptionGroup), plait.TaskGroup() as tg:
        waiting = tg.submit(waits)
        tg.submit(fails)
    assert [exc.reason for exc in seen] == [CancelReason.SIBLING_FAILED]
    with pytest.raises(plait.Cancelled) as info:
        waiting.result()
    assert info.value.reason is CancelReason.SIBLING_FAILED
    assert "another task of its group failed" in str(info.value)


def test_a_group_deadline_is_the_reason() -> None:
    seen: list[CancelReason] = []

    def waits() -> None:
        try:
            plait.sleep(30)
        except plait.Cancelled as exc:
            seen.append(exc.reason)
            raise

    with pytest.raises(TimeoutError), plait.TaskGroup(timeout=0.05) as tg:
        tg.submit(waits)
    assert seen == [CancelReason.DEADLINE]


def test_cancelling_one_handle_is_the_reason() -> None:
    release = threading.Event()
    with plait.TaskGroup(workers=1) as tg:
        tg.submit(release.wait, 30)
        queued = tg.submit(int, "1")
        assert queued.cancel()
        release.set()
    with pytest.raises(plait.Cancelled) as info:
        queued.result()
    assert info.value.reason is CancelReason.CANCELLED


def test_an_abandoned_map_tells_its_tasks_why() -> None:
    seen: list[CancelReason] = []
    started = threading.Event()

    def waits(x: int) -> int:
        started.set()
        try:
            plait.sleep(30)
        except plait.Cancelled as exc:
            seen.append(exc.reason)
            told.set()
            raise
        return x

    told = threading.Event()  # (an aborted map does not wait for its running task to end)
    results = plait.map(waits, [1], workers=1)
    ended: list[BaseException] = []

    def read() -> None:
        try:
            list(results)
        except plait.Cancelled as exc:
            ended.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    assert started.wait(30)
    results.abort()
    reader.join(30)
    results.close()
    assert told.wait(30)
    assert seen == [CancelReason.ABANDONED]
    [error] = ended
    assert isinstance(error, plait.Cancelled)
    assert error.reason is CancelReason.ABANDONED


def test_a_pool_shut_down_under_a_map_gives_its_dropped_items_the_reason() -> None:
    started, release = threading.Event(), threading.Event()

    def first_blocks(x: int) -> int:
        if x == 1:
            started.set()
            release.wait(30)
        return x

    with plait.Pool("thread", 1) as pool:
        results = pool.map(first_blocks, [1, 2, 3], chunksize=1)
        got: list[int] = []
        first = threading.Thread(target=lambda: got.append(next(results)))
        first.start()
        assert started.wait(30)  # item 1 runs; item 2 waits in the queue
        pool.shutdown(wait=False, cancel_futures=True)
        release.set()
        first.join(30)
        assert got == [1]
        with pytest.raises(plait.Cancelled) as info:
            next(results)
        assert info.value.reason is CancelReason.SHUT_DOWN


def test_cancelled_survives_pickling_with_its_reason() -> None:
    error = plait.Cancelled(CancelReason.TERMINATED, "the item")
    copy = pickle.loads(pickle.dumps(error))
    assert copy.reason is CancelReason.TERMINATED
    assert str(copy) == str(error)
