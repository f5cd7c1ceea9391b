"""Framing for the parent ↔ worker-process socket: length-prefixed frames, fixed binary heads.

A frame is ``<u64 length><head><payload>``. The head (tag, two ids, a kind) is a struct, so a
payload that cannot be unpickled still leaves its task id readable; the payload is pickled
separately, and a large one is written from its own buffer, never copied into a bigger one.
"""

from __future__ import annotations

import socket
import struct
from collections import deque

LENGTH = struct.Struct("<Q")
HEAD = struct.Struct("<BQQB")  # tag, task or job id, job id, kind

# parent → worker
INIT = 0  # the first frame; payload = the parent's sys.path
DEF = 1  # a = job id; payload = the function (cloudpickle)
RUN = 2  # a = task id, b = job id, kind; payload = the items
FORGET = 3  # a = job id
# worker → parent
READY = 5  # the worker is set up (INIT done): its clock for task deadlines can start
DONE = 4  # a = task id; payload = (values, errors, elapsed); errors[-1]: the whole batch


def frame(tag: int, a: int = 0, b: int = 0, kind: int = 0, payload: bytes = b"") -> list[bytes]:
    """The buffers of one frame, to be written in order."""
    head = LENGTH.pack(HEAD.size + len(payload)) + HEAD.pack(tag, a, b, kind)
    return [head, payload] if payload else [head]


def parse(body: bytes | bytearray | memoryview) -> tuple[int, int, int, int, memoryview]:
    tag, a, b, kind = HEAD.unpack_from(body)
    return tag, a, b, kind, memoryview(body)[HEAD.size :]


def send_frame(sock: socket.socket, buffers: list[bytes]) -> None:
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
    """Non-blocking reads for the parent: returns the frames completed so far."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def read(self, sock: socket.socket) -> list[bytes] | None:
        """Whatever frames are complete after draining the socket; None once it is closed."""
        for _ in range(64):
            try:
                data = sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ECONNRESET: the worker died with unread data
                return None
            if not data:
                return None
            self._buffer += data
        frames = []
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= LENGTH.size:
            (size,) = LENGTH.unpack_from(buffer, start)
            end = start + LENGTH.size + size
            if end > len(buffer):
                break
            frames.append(bytes(buffer[start + LENGTH.size : end]))
            start = end
        del buffer[:start]
        return frames


class FrameWriter:
    """Non-blocking writes for the parent: buffers queue up and leave as the socket allows."""

    def __init__(self) -> None:
        self._pending: deque[memoryview] = deque()

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, buffers: list[bytes]) -> None:
        self._pending.extend(memoryview(b) for b in buffers)

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
                return False
            if sent < len(pending[0]):
                pending[0] = pending[0][sent:]
                return True
            pending.popleft()
        return True
