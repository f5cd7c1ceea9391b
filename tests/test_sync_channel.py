"""Channel: bounded FIFO, close semantics, timeouts, many producers and consumers."""

from __future__ import annotations

import threading
from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from plait import sync


def start(body: object) -> threading.Thread:
    t = threading.Thread(target=body)  # type: ignore[arg-type]
    t.start()
    return t


def join(*threads: threading.Thread) -> None:
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)


def test_fifo_and_capacity() -> None:
    ch = sync.Channel[int](2)
    ch.send(1)
    ch.send(2)
    assert len(ch) == 2
    with pytest.raises(TimeoutError):
        ch.send(3, timeout=0.01)
    assert ch.recv() == 1
    ch.send(3, timeout=0)
    assert [ch.recv(), ch.recv()] == [2, 3]
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.01)


def test_bad_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        sync.Channel[int](0)


def test_close_drains_then_ends_iteration_and_refuses_sends() -> None:
    ch = sync.Channel[str](3)
    ch.send("a")
    ch.send("b")
    ch.close()
    ch.close()  # idempotent
    assert ch.closed
    with pytest.raises(sync.ChannelClosed, match="send on closed"):
        ch.send("c")
    assert list(ch) == ["a", "b"]
    with pytest.raises(sync.ChannelClosed, match="closed and empty"):
        ch.recv()


def test_close_wakes_blocked_senders_and_receivers() -> None:
    full = sync.Channel[int](1)
    full.send(0)
    empty = sync.Channel[int](1)
    errors: list[BaseException] = []

    def send() -> None:
        try:
            full.send(1, timeout=5)
        except sync.ChannelClosed as exc:
            errors.append(exc)

    def recv() -> None:
        try:
            empty.recv(timeout=5)
        except sync.ChannelClosed as exc:
            errors.append(exc)

    threads = [start(send), start(recv)]
    while full.statistics().senders_waiting + empty.statistics().receivers_waiting < 2:
        threading.Event().wait(0.001)
    full.close()
    empty.close()
    join(*threads)
    assert len(errors) == 2
    assert full.recv() == 0  # what was buffered before close is still delivered


def test_with_closes_and_for_loop_consumes() -> None:
    ch = sync.Channel[int](4)
    got: list[int] = []
    consumer = start(lambda: got.extend(ch))
    with ch:
        for i in range(10):
            ch.send(i, timeout=5)
    join(consumer)
    assert got == list(range(10))


def test_many_producers_many_consumers_lose_and_duplicate_nothing() -> None:
    ch = sync.Channel[int](8)
    producers_done = sync.WaitGroup()
    received: list[list[int]] = [[] for _ in range(4)]

    def produce(base: int) -> None:
        try:
            for i in range(500):
                ch.send(base + i, timeout=5)
        finally:
            producers_done.done()

    def consume(box: list[int]) -> None:
        box.extend(ch)

    producers_done.add(4)
    consumers = [start(lambda box=box: consume(box)) for box in received]
    producers = [start(lambda b=b: produce(b * 1000)) for b in range(4)]
    assert producers_done.wait(10)
    ch.close()
    join(*producers, *consumers)
    everything = sorted(x for box in received for x in box)
    assert everything == sorted(b * 1000 + i for b in range(4) for i in range(500))
    for box in received:  # each consumer sees each producer's items in order
        for b in range(4):
            mine = [x for x in box if x // 1000 == b]
            assert mine == sorted(mine)
    stats = ch.statistics()
    assert (stats.sent, stats.received, stats.buffered) == (2000, 2000, 0)


class ChannelMachine(RuleBasedStateMachine):
    """A model deque against the real channel; blocking steps use a helper thread, joined."""

    def __init__(self) -> None:
        super().__init__()
        self.capacity = 3
        self.ch = sync.Channel[int](self.capacity)
        self.model: deque[int] = deque()
        self.closed = False

    @rule(item=st.integers())
    def send(self, item: int) -> None:
        if self.closed:
            with pytest.raises(sync.ChannelClosed):
                self.ch.send(item, timeout=0)
        elif len(self.model) == self.capacity:
            with pytest.raises(TimeoutError):
                self.ch.send(item, timeout=0)
        else:
            self.ch.send(item, timeout=0)
            self.model.append(item)

    @rule()
    def recv(self) -> None:
        if self.model:
            assert self.ch.recv(timeout=0) == self.model.popleft()
        elif self.closed:
            with pytest.raises(sync.ChannelClosed):
                self.ch.recv(timeout=0)
        else:
            with pytest.raises(TimeoutError):
                self.ch.recv(timeout=0)

    @precondition(lambda self: not self.closed and len(self.model) == self.capacity)
    @rule(item=st.integers())
    def blocked_send_completes_after_a_recv(self, item: int) -> None:
        sender = start(lambda: self.ch.send(item, timeout=5))
        while self.ch.statistics().senders_waiting == 0:
            threading.Event().wait(0.001)
        assert self.ch.recv(timeout=5) == self.model.popleft()
        join(sender)
        self.model.append(item)

    @rule()
    def close(self) -> None:
        self.ch.close()
        self.closed = True

    @invariant()
    def matches_model(self) -> None:
        stats = self.ch.statistics()
        assert stats.buffered == len(self.model) == len(self.ch)
        assert stats.buffered <= self.capacity
        assert stats.sent - stats.received == stats.buffered
        assert stats.closed == self.closed
        assert stats.waiting == 0


ChannelMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_channel_state_machine = ChannelMachine.TestCase
