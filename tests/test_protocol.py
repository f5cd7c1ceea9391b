"""The process protocol: frames on a real socket pair (never lost at EOF, read whole however the
bytes arrive), each encode beside its decode, and results rebuilt one by one when a batch of
them will not load as a whole."""

from __future__ import annotations

import gc
import os
import pickle
import socket
import sys
import threading
import weakref

import pytest

import plait
from plait._backends.process import _codec, _salvage
from plait._backends.process import _frames as wire
from plait._backends.process._frames import Tag
from plait._task import Job, Kind, Outcome, Task, failed


def frame_bytes(tag: Tag, task: int, payload: bytes) -> bytes:
    return b"".join(bytes(piece) for piece in wire.frame(tag, task=task, payload=payload))


def heads(frames: list[bytearray]) -> list[tuple[int, int]]:
    return [(head.tag, head.task) for head, _ in map(wire.parse, frames)]


def test_a_complete_frame_and_eof_in_one_read_are_both_reported() -> None:
    reader_end, writer_end = socket.socketpair()
    with reader_end:
        reader_end.setblocking(False)
        writer_end.sendall(frame_bytes(Tag.DONE, 7, b"result"))
        writer_end.close()  # the worker sent its result and exited before we read
        frames, closed = wire.FrameReader().read(reader_end)
    assert closed
    assert heads(frames) == [(Tag.DONE, 7)]
    assert bytes(wire.parse(frames[0])[1]) == b"result"


def test_frames_then_a_partial_frame_then_eof() -> None:
    reader_end, writer_end = socket.socketpair()
    with reader_end:
        reader_end.setblocking(False)
        writer_end.sendall(frame_bytes(Tag.DONE, 1, b"a") + frame_bytes(Tag.DONE, 2, b"bb"))
        writer_end.sendall(frame_bytes(Tag.DONE, 3, b"never finished")[:-3])
        writer_end.close()
        frames, closed = wire.FrameReader().read(reader_end)
    assert closed
    assert [task for _, task in heads(frames)] == [1, 2]


def test_eof_after_the_worker_left_data_unread_still_delivers_its_frames() -> None:
    # A worker that exits with bytes it never read makes the parent's next read fail with
    # ECONNRESET once the queued data is drained: the frames before it still count.
    reader_end, writer_end = socket.socketpair()
    with reader_end:
        reader_end.setblocking(False)
        reader_end.sendall(b"a batch the worker never read")
        writer_end.sendall(frame_bytes(Tag.DONE, 9, b"done"))
        writer_end.close()
        frames, closed = wire.FrameReader().read(reader_end)
    assert closed
    assert [task for _, task in heads(frames)] == [9]


def test_frames_delivered_in_tiny_pieces() -> None:
    reader_end, writer_end = socket.socketpair()
    data = frame_bytes(Tag.DONE, 4, b"x" * 50) + frame_bytes(Tag.READY, 0, b"")
    reader = wire.FrameReader()
    got: list[bytearray] = []
    with reader_end, writer_end:
        reader_end.setblocking(False)
        for i in range(0, len(data), 3):
            writer_end.sendall(data[i : i + 3])
            frames, closed = reader.read(reader_end)
            assert not closed
            got.extend(frames)
        assert heads(got) == [(Tag.DONE, 4), (Tag.READY, 0)]
        assert bytes(wire.parse(got[0])[1]) == b"x" * 50
        writer_end.close()
        frames, closed = reader.read(reader_end)
    assert (frames, closed) == ([], True)


# -- results the parent cannot rebuild: the batch is loaded element by element --------------


class Rebuilt:
    """Pickles as ``rebuild(tag)``, which fails for the tag "bad"."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rebuilt) and other.tag == self.tag

    def __hash__(self) -> int:
        return hash(self.tag)

    def __reduce__(self) -> tuple[object, ...]:
        return (rebuild, (self.tag,))


def rebuild(tag: str) -> Rebuilt:
    if tag == "bad":
        raise LookupError("no way to rebuild this one here")
    return Rebuilt(tag)


def load_each(values: list[object]) -> tuple[list[object], dict[int, BaseException]]:
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(values, protocol=5, buffer_callback=buffers.append)
    return _salvage.load_each(memoryview(data), [memoryview(b.raw()) for b in buffers])


def test_each_element_that_loads_is_delivered_and_each_that_does_not_is_named() -> None:
    shared = ["shared", "by", "two"]
    built_after_the_failure = {"key": "value"}
    big = bytearray(b"x" * 100_000)  # out of band, after the failing element
    values: list[object] = [
        1,
        Rebuilt("a"),
        [shared, Rebuilt("bad"), built_after_the_failure],
        shared,  # built before the failure: it loads, and is still shared
        pickle.PickleBuffer(big),
        [built_after_the_failure],  # refers to what the failed element never built
        list(range(3000)),  # frames, and APPENDS batches inside an element
        *range(2500),  # the top-level list in several APPENDS batches
        Rebuilt("bad"),
    ]
    loaded, errors = load_each(values)
    assert sorted(errors) == [2, 5, len(values) - 1]
    assert loaded[:2] == [1, Rebuilt("a")]
    assert loaded[3] == shared
    assert loaded[4] == big
    assert loaded[6] == list(range(3000))
    assert loaded[7:-1] == list(range(2500))
    assert [loaded[i] for i in errors] == [None, None, None]
    failure = errors[2]
    assert isinstance(failure, plait.RemoteError)
    assert "could not be rebuilt in the parent process" in str(failure)
    assert "no way to rebuild this one here" in str(failure)
    assert isinstance(failure.__cause__, LookupError)
    assert "shares an object with another result" in errors[5].__notes__[0]


def test_shared_objects_stay_shared_when_loaded_one_by_one() -> None:
    shared = {"one": 1}
    loaded, errors = load_each([shared, Rebuilt("bad"), [shared], shared])
    assert list(errors) == [1]
    assert loaded[0] is loaded[3] is loaded[2][0]  # type: ignore[index]


def test_load_each_of_a_single_element_and_of_none() -> None:
    loaded, errors = load_each([Rebuilt("bad")])
    assert loaded == [None]
    assert list(errors) == [0]
    assert load_each([]) == ([], {})


# -- frames: heads with names, bytes arriving one at a time --------------------------------


def test_a_frame_head_keeps_every_field() -> None:
    body = b"".join(bytes(p) for p in wire.frame(Tag.RUN, task=2**40, job=7, kind=wire.TIMED))
    head, payload = wire.parse(body[wire.LENGTH.size :])
    assert head == wire.Head(Tag.RUN, task=2**40, job=7, kind=wire.TIMED)
    assert bytes(payload) == b""


def test_frames_delivered_one_byte_at_a_time() -> None:
    payload = [b"in ", memoryview(b"pieces")]
    data = b"".join(bytes(p) for p in wire.frame(Tag.DONE, task=3, payload=payload))
    data += frame_bytes(Tag.STARTED, 4, b"")
    reader = wire.FrameReader()
    got: list[bytearray] = []
    reader_end, writer_end = socket.socketpair()
    with reader_end, writer_end:
        reader_end.setblocking(False)
        for byte in data:
            writer_end.sendall(bytes([byte]))
            frames, closed = reader.read(reader_end)
            assert not closed
            got.extend(frames)
    assert heads(got) == [(Tag.DONE, 3), (Tag.STARTED, 4)]
    assert bytes(wire.parse(got[0])[1]) == b"in pieces"


# -- each encode beside its decode --------------------------------------------------------


def outcome_of(task: Task, payload: list[bytes | memoryview]) -> Outcome:
    sent = _codec.Sent.encode(task)
    values, errors, elapsed, retries = _codec.decode_result(
        memoryview(b"".join(map(bytes, payload)))
    )
    outcome = sent.outcome(values, errors, elapsed)
    outcome.retries = retries
    return outcome


def a_task(items: list[object]) -> Task:
    return Task(Job(abs, Kind.MAP), items, start=lambda: True, finish=lambda t, o: None)


def test_items_and_results_round_trip_with_large_bytes_out_of_band() -> None:
    big = b"y" * (_codec.OUT_OF_BAND_BYTES + 1)
    sent = _codec.Sent.encode(a_task([1, big]))
    assert sent.blob is not None
    assert _codec.decode_items(memoryview(b"".join(map(bytes, sent.blob)))) == [1, big]
    result, clean = _codec.encode_result(Outcome([big, 2], {1: ValueError("no")}, 0.5))
    assert not clean
    outcome = outcome_of(a_task([1, big]), result)
    assert outcome.values[0] == big
    assert isinstance(outcome.errors[1], ValueError)
    assert isinstance(outcome.errors[1].__cause__, plait.RemoteTraceback)
    assert outcome.elapsed == 0.5


def test_a_batch_whose_items_were_retried_says_how_often_and_is_not_clean() -> None:
    answered = Outcome([1, 2], {}, 0.25)
    answered.retries = 3
    result, clean = _codec.encode_result(answered)
    assert not clean  # (a clean answer is left packed: its retries would go unread)
    outcome = outcome_of(a_task([1, 2]), result)
    assert (outcome.values, outcome.errors, outcome.retries) == ([1, 2], {}, 3)


class Item:
    """An item whose freeing a weak reference can watch."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Item) and other.n == self.n

    __hash__ = None  # type: ignore[assignment]


def test_a_sent_task_keeps_its_items_only_as_the_bytes_it_sent() -> None:
    items = [Item(n) for n in range(3)]
    refs = [weakref.ref(item) for item in items]
    task = a_task(list(items))
    sent = _codec.Sent.encode(task)
    del items
    gc.collect()
    assert all(ref() is None for ref in refs)  # the task no longer holds them
    assert isinstance(task.items, _codec.SentItems)
    assert len(task.items) == 3
    assert list(task.items) == [Item(0), Item(1), Item(2)]  # rebuilt when asked for
    assert task.items[1] == Item(1)
    again = _codec.Sent.encode(task)  # to another worker, after the first was lost
    assert again.blob is sent.blob


def fail_with_the_item(x: int) -> int:
    raise ValueError(x)


def test_a_batch_of_failures_loads_the_items_it_kept_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each failed item's note shows its item, which the parent kept only as the pickle it was
    sent as: that pickle is loaded once per batch, not once per failed item (a batch of n
    failures took n loads of n items, and errors="return" over many failures was quadratic)."""
    parent, loads = os.getpid(), []
    decode = _codec.decode_items

    def counted(payload: memoryview) -> list[object]:
        if os.getpid() == parent:  # (a worker forked after this patch counts its own)
            loads.append(len(payload))
        return decode(payload)

    monkeypatch.setattr(_codec, "decode_items", counted)
    results = plait.map(
        fail_with_the_item, range(40), backend="process", workers=1, chunksize=10, errors="return"
    )
    for index, error in enumerate(results):
        assert isinstance(error, ValueError)
        assert error.args == (index,)
        assert f"plait: raised by item {index}: {index}" in error.__notes__
    assert len(loads) == 4  # one per batch


def test_a_task_with_an_item_that_will_not_pickle_keeps_its_items() -> None:
    lock = threading.Lock()
    task = a_task([1, lock, 3])
    sent = _codec.Sent.encode(task)
    assert sent.offsets == [0, 2]
    assert task.items == [1, lock, 3]


class InterruptsAsItPickles:
    def __reduce__(self) -> tuple[object, ...]:
        raise KeyboardInterrupt


def test_a_keyboard_interrupt_from_pickling_fails_its_item_except_on_the_main_thread() -> None:
    """A __reduce__ may raise anything, and its item fails alone with it; but on the main
    thread, where Python raises the program's Ctrl-C, a KeyboardInterrupt may be that, and is
    not taken for the item's. (The first batch of a pool may be sent from the caller's
    thread: ``ProcessBackend._send_early``.)"""
    with pytest.raises(KeyboardInterrupt):
        _codec.Sent.encode(a_task([1, InterruptsAsItPickles(), 3]))
    sent: list[_codec.Sent] = []
    elsewhere = threading.Thread(
        target=lambda: sent.append(_codec.Sent.encode(a_task([1, InterruptsAsItPickles(), 3])))
    )
    elsewhere.start()
    elsewhere.join(30)
    assert sent[0].offsets == [0, 2]
    assert isinstance(sent[0].unsent[1], KeyboardInterrupt)


def test_a_failed_batch_fails_every_item_unrun() -> None:
    outcome = outcome_of(a_task([1, 2]), _codec.encode_failed_batch(KeyError("gone")))
    assert outcome.ran is False
    assert all(isinstance(outcome.errors[i], KeyError) for i in range(2))


class NeedsTwo(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


def test_an_exception_that_cannot_make_the_round_trip_comes_back_as_remote_error() -> None:
    error = _codec.decode_error(*_codec.encode_error(NeedsTwo(1, 2)))
    assert isinstance(error, plait.RemoteError)
    assert "1 and 2" in str(error)


def test_functions_and_init_round_trip() -> None:
    fn, retry = _codec.decode_function(memoryview(_codec.encode_function(Job(abs, Kind.MAP))))
    assert (fn, retry) == (abs, None)
    spec = plait.Workers(2, initializer=print, initargs=("hi",), max_tasks=3)
    sys_path, load = _codec.decode_init(memoryview(_codec.encode_init(spec)))
    assert sys_path == sys.path
    assert load() == plait.Workers(initializer=print, initargs=("hi",))


def test_a_failed_batch_of_a_map_makes_its_errors_only_when_they_are_read() -> None:
    """An abandoned map's batches fail by the thousand items as its workers are stopped, and
    nobody reads them: their exceptions are made only if the owner loads the outcome."""
    made: list[int] = []

    def error() -> BaseException:
        made.append(1)
        return KeyError("stopped")

    outcome = failed(50_000, error, owner_loads=True)
    assert made == []
    outcome.load()
    assert len(made) == 50_000
    assert len(outcome.values) == 50_000
    assert all(isinstance(outcome.errors[i], KeyError) for i in (0, 49_999))
    assert failed(2, error).errors.keys() == {0, 1}  # a call's owner reads it at once
