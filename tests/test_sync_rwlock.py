"""RWLock: shared reads, exclusive writes, writers first, re-entry and upgrade refused loudly."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from plait import sync


class Worker:
    """A thread that runs the calls it is given, one at a time, and hands back each outcome."""

    def __init__(self, name: str) -> None:
        self.calls: queue.SimpleQueue[Callable[[], Any] | None] = queue.SimpleQueue()
        self.outcomes: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=name)
        self.thread.start()

    def _loop(self) -> None:
        while (call := self.calls.get()) is not None:
            try:
                self.outcomes.put((True, call()))
            except Exception as exc:
                self.outcomes.put((False, exc))

    def run(self, call: Callable[[], Any]) -> tuple[bool, Any]:
        self.calls.put(call)
        return self.outcomes.get(timeout=5)

    def submit(self, call: Callable[[], Any]) -> None:
        self.calls.put(call)

    def stop(self) -> None:
        self.calls.put(None)
        self.thread.join(5)
        assert not self.thread.is_alive()


def test_readers_share_and_writers_exclude() -> None:
    rw = sync.RWLock(name="rw")
    a, b = Worker("a"), Worker("b")
    try:
        assert a.run(lambda: rw.acquire_read(blocking=False)) == (True, True)
        assert b.run(lambda: rw.acquire_read(blocking=False)) == (True, True)
        assert rw.acquire_write(blocking=False) is False
        assert rw.acquire_write(timeout=0.02) is False
        a.run(rw.release_read)
        b.run(rw.release_read)
        with rw.write():
            assert a.run(lambda: rw.acquire_read(blocking=False)) == (True, False)
            assert a.run(lambda: rw.acquire_write(timeout=0.01)) == (True, False)
            with rw.read(), rw.write():  # the writer may nest reads and writes
                pass
        assert rw.statistics().writer is None
    finally:
        a.stop()
        b.stop()


def test_waiting_writer_goes_before_new_readers() -> None:
    rw = sync.RWLock()
    reader, writer, late = Worker("reader"), Worker("writer"), Worker("late")
    order: list[str] = []
    try:
        reader.run(rw.acquire_read)

        def write() -> None:
            assert rw.acquire_write(timeout=5)
            order.append("writer")

        def read() -> None:
            assert rw.acquire_read(timeout=5)
            order.append("late reader")

        writer.submit(write)
        while rw.statistics().writers_waiting == 0:
            time.sleep(0.001)
        # a reader arriving now must queue behind the writer
        assert late.run(lambda: rw.acquire_read(blocking=False)) == (True, False)
        late.submit(read)
        while rw.statistics().waiting < 2:
            time.sleep(0.001)
        # the first reader may still re-enter: refusing would deadlock it behind the writer
        assert reader.run(lambda: rw.acquire_read(blocking=False)) == (True, True)
        reader.run(rw.release_read)
        reader.run(rw.release_read)
        assert writer.outcomes.get(timeout=5)[0]
        assert order == ["writer"]
        writer.run(rw.release_write)
        assert late.outcomes.get(timeout=5)[0]
        assert order == ["writer", "late reader"]
        late.run(rw.release_read)
    finally:
        for w in (reader, writer, late):
            w.stop()


def test_upgrade_raises_deadlock_error_instead_of_hanging() -> None:
    rw = sync.RWLock(name="cfg")
    with rw.read(), pytest.raises(sync.DeadlockError, match="cfg"):
        rw.acquire_write()
    with rw.write():
        pass


def test_release_without_holding_is_runtime_error() -> None:
    rw = sync.RWLock()
    with pytest.raises(RuntimeError):
        rw.release_read()
    with pytest.raises(RuntimeError):
        rw.release_write()
    with pytest.raises(ValueError, match="non-blocking"):
        rw.acquire_read(False, 1)


def test_writers_do_not_starve_under_a_stream_of_readers() -> None:
    rw = sync.RWLock()
    stop = threading.Event()
    wrote = threading.Event()

    def read_forever() -> None:
        while not stop.is_set():
            with rw.read():
                time.sleep(0.0005)

    readers = [threading.Thread(target=read_forever) for _ in range(6)]
    for t in readers:
        t.start()
    try:
        start = time.monotonic()
        with rw.write():
            wrote.set()
        assert time.monotonic() - start < 1.0
    finally:
        stop.set()
        for t in readers:
            t.join(5)
    assert wrote.is_set()


class RWLockMachine(RuleBasedStateMachine):
    """Three threads try non-blocking reads and writes; a model predicts every answer."""

    def __init__(self) -> None:
        super().__init__()
        self.rw = sync.RWLock()
        self.workers = [Worker(f"w{i}") for i in range(3)]
        self.reads = [0, 0, 0]
        self.writes = [0, 0, 0]

    def teardown(self) -> None:
        for w in self.workers:
            w.stop()

    def writer(self) -> int | None:
        return next((i for i in range(3) if self.writes[i]), None)

    @rule(i=st.integers(0, 2))
    def try_read(self, i: int) -> None:
        ok, got = self.workers[i].run(lambda: self.rw.acquire_read(blocking=False))
        expected = self.writer() in (None, i)
        assert ok
        assert got == expected
        self.reads[i] += int(expected)

    @rule(i=st.integers(0, 2))
    def try_write(self, i: int) -> None:
        ok, got = self.workers[i].run(lambda: self.rw.acquire_write(blocking=False))
        if self.reads[i] and not self.writes[i]:
            assert not ok
            assert isinstance(got, sync.DeadlockError)
            return
        others_read = any(self.reads[j] for j in range(3) if j != i)
        expected = self.writer() in (None, i) and not others_read
        assert ok
        assert got == expected
        self.writes[i] += int(expected)

    @rule(i=st.integers(0, 2))
    def release_read(self, i: int) -> None:
        ok, _got = self.workers[i].run(self.rw.release_read)
        assert ok == bool(self.reads[i])
        self.reads[i] = max(0, self.reads[i] - 1)

    @rule(i=st.integers(0, 2))
    def release_write(self, i: int) -> None:
        ok, _got = self.workers[i].run(self.rw.release_write)
        assert ok == bool(self.writes[i])
        self.writes[i] = max(0, self.writes[i] - 1)

    @invariant()
    def one_writer_or_readers(self) -> None:
        stats = self.rw.statistics()
        writer = self.writer()
        assert sum(bool(w) for w in self.writes) <= 1
        if writer is not None:
            assert all(self.reads[j] == 0 for j in range(3) if j != writer)
            assert stats.writer == f"w{writer}"
        else:
            assert stats.writer is None
        assert stats.readers == sum(self.reads)
        assert stats.waiting == 0


RWLockMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
test_rwlock_state_machine = RWLockMachine.TestCase


def held_by_a_thread_that_ended(side: str, name: str) -> sync.RWLock:
    rw = sync.RWLock(name="cfg")
    take = rw.acquire_read if side == "read" else rw.acquire_write
    holder = threading.Thread(target=take, name=name)
    holder.start()
    holder.join(10)
    return rw


@pytest.mark.timeout(30)
def test_an_untimed_wait_for_a_side_whose_holder_exited_raises_deadlock_error() -> None:
    """Only a holder releases its side: a writer waiting for a reader that ended (and readers
    for a writer that did) waited for ever, silently."""
    rw = held_by_a_thread_that_ended("read", "reader")
    assert rw.acquire_write(timeout=0.01) is False  # (timed: it times out, as it would)
    with pytest.raises(sync.DeadlockError, match="'reader', which exited") as caught:
        rw.acquire_write()
    assert caught.value.cycle[0].holder_exited
    rw = held_by_a_thread_that_ended("write", "writer")
    with pytest.raises(sync.DeadlockError, match="'writer', which exited without releasing"):
        rw.acquire_read()
