"""The parent ↔ worker framing, tested on a real socket pair: frames are never lost at EOF."""

from __future__ import annotations

import socket

from plait import _wire as wire


def frame_bytes(tag: int, a: int, payload: bytes) -> bytes:
    return b"".join(bytes(piece) for piece in wire.frame(tag, a, payload=payload))


def test_a_complete_frame_and_eof_in_one_read_are_both_reported() -> None:
    reader_end, writer_end = socket.socketpair()
    with reader_end:
        reader_end.setblocking(False)
        writer_end.sendall(frame_bytes(wire.DONE, 7, b"result"))
        writer_end.close()  # the worker sent its result and exited before we read
        frames, closed = wire.FrameReader().read(reader_end)
    assert closed
    assert [wire.parse(body)[:2] for body in frames] == [(wire.DONE, 7)]
    assert bytes(wire.parse(frames[0])[4]) == b"result"


def test_frames_then_a_partial_frame_then_eof() -> None:
    reader_end, writer_end = socket.socketpair()
    with reader_end:
        reader_end.setblocking(False)
        writer_end.sendall(frame_bytes(wire.DONE, 1, b"a") + frame_bytes(wire.DONE, 2, b"bb"))
        writer_end.sendall(frame_bytes(wire.DONE, 3, b"never finished")[:-3])
        writer_end.close()
        frames, closed = wire.FrameReader().read(reader_end)
    assert closed
    assert [wire.parse(body)[1] for body in frames] == [1, 2]


def test_eof_after_the_worker_left_data_unread_still_delivers_its_frames() -> None:
    # A worker that exits with bytes it never read makes the parent's next read fail with
    # ECONNRESET once the queued data is drained: the frames before it still count.
    reader_end, writer_end = socket.socketpair()
    with reader_end:
        reader_end.setblocking(False)
        reader_end.sendall(b"a batch the worker never read")
        writer_end.sendall(frame_bytes(wire.DONE, 9, b"done"))
        writer_end.close()
        frames, closed = wire.FrameReader().read(reader_end)
    assert closed
    assert [wire.parse(body)[1] for body in frames] == [9]


def test_frames_delivered_in_tiny_pieces() -> None:
    reader_end, writer_end = socket.socketpair()
    data = frame_bytes(wire.DONE, 4, b"x" * 50) + frame_bytes(wire.READY, 0, b"")
    reader = wire.FrameReader()
    got: list[bytearray] = []
    with reader_end, writer_end:
        reader_end.setblocking(False)
        for i in range(0, len(data), 3):
            writer_end.sendall(data[i : i + 3])
            frames, closed = reader.read(reader_end)
            assert not closed
            got.extend(frames)
        assert [wire.parse(body)[:2] for body in got] == [(wire.DONE, 4), (wire.READY, 0)]
        assert bytes(wire.parse(got[0])[4]) == b"x" * 50
        writer_end.close()
        frames, closed = reader.read(reader_end)
    assert (frames, closed) == ([], True)
