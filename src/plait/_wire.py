"""Framing for the parent ↔ worker-process socket: length-prefixed frames, fixed binary heads.

A frame is ``<u64 length><head><payload>``. The head (tag, two ids, a kind) is a struct, so a
payload that cannot be unpickled still leaves its task id readable; the payload is pickled
separately, and a large one is written from its own buffer, never copied into a bigger one.
"""

from __future__ import annotations

import pickle
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

LENGTH = struct.Struct("<Q")
HEAD = struct.Struct("<BQQB")  # tag, task or job id, job id, kind

# parent → worker
INIT = 0  # the first frame; payload = the parent's sys.path
DEF = 1  # a = job id; payload = the function (cloudpickle)
RUN = 2  # a = task id, b = job id, kind; payload = the items
FORGET = 3  # a = job id
TIMED = 0x80  # or-ed into a RUN frame's kind: the task has a deadline, say when it starts
# worker → parent
READY = 5  # the worker is set up (INIT done)
STARTED = 6  # a = task id of a TIMED task: its function and items are loaded, it runs now
DONE = 4  # a = task id; payload = [errors, elapsed, *values]; errors[-1]: the whole batch


def frame(
    tag: int, a: int = 0, b: int = 0, kind: int = 0, payload: bytes | list[Any] = b""
) -> list[Any]:
    """The buffers of one frame, to be written in order (``payload`` may come in pieces)."""
    pieces: list[Any] = payload if isinstance(payload, list) else [payload] if payload else []
    size = sum(memoryview(p).nbytes for p in pieces)
    return [LENGTH.pack(HEAD.size + size) + HEAD.pack(tag, a, b, kind), *pieces]


def parse(body: bytes | bytearray | memoryview) -> tuple[int, int, int, int, memoryview]:
    tag, a, b, kind = HEAD.unpack_from(body)
    return tag, a, b, kind, memoryview(body)[HEAD.size :]


def send_frame(sock: socket.socket, buffers: list[Any]) -> None:
    """Blocking write, used by the worker (which has nothing else to do meanwhile)."""
    for buffer in buffers:
        sock.sendall(buffer)


def recv_exactly(sock: socket.socket, size: int) -> bytearray | None:
    """Blocking read of ``size`` bytes; None on a clean end of stream."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return buffer


def recv_frame(sock: socket.socket) -> bytearray | None:
    header = recv_exactly(sock, LENGTH.size)
    if header is None:
        return None
    return recv_exactly(sock, LENGTH.unpack(header)[0])


class FrameReader:
    """Non-blocking reads for the parent: returns the frames completed so far.

    Each frame's body is read straight into a buffer of its exact size, so a large result is
    copied once, from the socket, and never re-assembled from pieces.
    """

    def __init__(self) -> None:
        self._head = bytearray(LENGTH.size)
        self._head_filled = 0
        self._body: bytearray | None = None
        self._body_filled = 0
        self.closed = False  # the other end is gone (EOF or ECONNRESET): no more frames

    def read(self, sock: socket.socket) -> tuple[list[bytearray], bool]:
        """The frames completed by draining what the socket holds now, and whether the other
        end is gone. Frames that arrived before the end are delivered all the same: a worker
        may send its last result and exit before the dispatcher gets round to reading it."""
        frames: list[bytearray] = []
        for _ in range(256):  # then let the dispatcher serve the other workers
            try:
                if self._body is None:
                    got = sock.recv_into(memoryview(self._head)[self._head_filled :])
                else:
                    got = sock.recv_into(memoryview(self._body)[self._body_filled :])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ECONNRESET: the worker died with unread data
                got = 0
            if got == 0:
                self.closed = True
                break
            if self._body is None:
                self._head_filled += got
                if self._head_filled == LENGTH.size:
                    self._head_filled = 0
                    self._body = bytearray(LENGTH.unpack(self._head)[0])
                    self._body_filled = 0
            else:
                self._body_filled += got
            if self._body is not None and self._body_filled == len(self._body):
                frames.append(self._body)
                self._body = None
        return frames, self.closed


class FrameWriter:
    """Non-blocking writes for the parent: buffers queue up and leave as the socket allows."""

    def __init__(self) -> None:
        self._pending: deque[memoryview] = deque()
        self.closed = False  # the other end is gone (EPIPE, ECONNRESET)

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, buffers: list[Any]) -> None:
        self._pending.extend(memoryview(b).cast("B") for b in buffers)

    def flush(self, sock: socket.socket) -> bool:
        """Write what the socket takes now. False if the other end is gone (EPIPE, ECONNRESET)."""
        pending = self._pending
        while pending:
            try:
                sent = sock.send(pending[0])
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                pending.clear()
                self.closed = True
                return False
            if sent < len(pending[0]):
                pending[0] = pending[0][sent:]
                return True
            pending.popleft()
        return True


# -- items: pickle protocol 5 with large buffers out of band --------------------------------
# A RUN payload is <u32 n><u64 size of each of n buffers><u64 size of the pickle><pickle>
# <buffer 0>...<buffer n-1>: bytearrays, NumPy arrays and large bytes travel from their own
# memory to the socket, never copied into the pickle.

COUNT = struct.Struct("<I")
SIZE = struct.Struct("<Q")
OUT_OF_BAND_BYTES = 64 * 1024  # smaller bytes are cheaper to copy than to describe


class _LargeBytes:
    """Pickles a bytes object as an out-of-band buffer; it loads as bytes again."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:
        return (bytes, (pickle.PickleBuffer(self.data),))


def out_of_band(values: list[Any]) -> list[Any]:
    """``values`` with its large bytes marked to travel out of band."""
    # The values of a batch are nearly always of one type: look further only if the first is
    # bytes, so a batch of thousands of small values pays nothing for this.
    if values and type(values[0]) is bytes:
        return [
            _LargeBytes(x) if type(x) is bytes and len(x) >= OUT_OF_BAND_BYTES else x
            for x in values
        ]
    return values


def pack_items(items: list[Any], dumps: Callable[..., bytes]) -> list[bytes | memoryview]:
    return pack(out_of_band(items), dumps)


def pack(obj: object, dumps: Callable[..., bytes]) -> list[bytes | memoryview]:
    """The pieces of a payload; ``dumps(obj, buffer_callback=...)`` pickles."""
    buffers: list[pickle.PickleBuffer] = []
    data = dumps(obj, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    head = COUNT.pack(len(raws)) + b"".join(SIZE.pack(r.nbytes) for r in raws)
    return [head + SIZE.pack(len(data)), data, *raws]


def unpack(payload: memoryview) -> Any:
    data, buffers = split(payload)
    return pickle.loads(data, buffers=buffers)


def split(payload: memoryview) -> tuple[memoryview, list[memoryview]]:
    """A payload's pickle and its out-of-band buffers."""
    (count,) = COUNT.unpack_from(payload)
    sizes = [SIZE.unpack_from(payload, COUNT.size + SIZE.size * i)[0] for i in range(count + 1)]
    position = COUNT.size + SIZE.size * (count + 1)
    data = payload[position : position + sizes[-1]]
    position += sizes[-1]
    buffers = []
    for size in sizes[:-1]:
        buffers.append(payload[position : position + size])
        position += size
    return data, buffers
