"""The process protocol: what crosses the socket between the dispatcher and a worker process.

    parent process                                                   worker process (_child)
    ──────────────                                                   ───────────────────────
    ProcessBackend (_dispatcher)                                     serve(): one frame at a time
      on start ───────── INIT   sys.path + initializer ────────────►  initialize()
                ◄─────── READY ──────────────────────────────────────  (then it may get tasks)
      first task of a job ── DEF  the function (once per worker) ──►  jobs[job] = fn
      submit(task) ───── RUN  a batch of items ────────────────────►  execute(fn, kind, items)
                ◄─────── STARTED  (TIMED tasks: the clock starts) ──
                ◄─────── DONE  values + errors + elapsed ────────────
      release(job) ───── FORGET ───────────────────────────────────►  del jobs[job]
      pool ends ──────── PARK  (kept warm for the next pool: _warm) ►  exits if idle that long
      next pool takes it  RESET  directory + environment (then INIT) ►  reset()
      close the socket ─ (EOF) ────────────────────────────────────►  exits

A frame is ``<u64 length><head><payload>``. The head is a fixed struct (``Head``), so a payload
that cannot be unpickled still leaves its task id readable. Frames of each direction arrive in
the order they were sent; the worker runs its tasks in that order too.

    tag      direction         head fields          payload (encoded and decoded in _codec)
    INIT     parent → worker   -                    sys.path, the initializer (encode_init)
    DEF      parent → worker   job                  fn, its source file, retry (encode_function)
    RUN      parent → worker   task, job, kind      the items (Sent.encode / decode_items)
    FORGET   parent → worker   job                  -
    PARK     parent → worker   job: idle seconds    -
    RESET    parent → worker   -                    the program's directory and environment
                                                    (encode_surroundings)
    READY    worker → parent   -                    -
    STARTED  worker → parent   task                 -
    DONE     worker → parent   task, job: elapsed   [errors, (elapsed, retries), *values]
                               ns, kind: CLEAN or   (encode_result)
                               UNREAD

``kind`` is the job's ``Kind``, with ``TIMED`` or-ed in when the task has a deadline; in a DONE,
``CLEAN`` says that every item succeeded, so the parent may leave the values packed until they
are handed out (it needs only the elapsed time, in the head, to size the next batches);
``UNREAD`` that the items could not be unpickled in the worker, and none ran. Task ids
are the dispatcher's own counter; job ids are ``Job.id``. A payload is a pickle with its large
buffers after it, out of band (``pack``): they go from their own memory to the socket and are
read into one buffer of the frame's exact size, never copied into a bigger one.
"""

from __future__ import annotations

import enum
import pickle
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

LENGTH = struct.Struct("<Q")
HEAD = struct.Struct("<BQQB")  # Head: tag, task id, job id, kind


class Tag(enum.IntEnum):
    """What a frame says; see the table above."""

    INIT = 0
    DEF = 1
    RUN = 2
    FORGET = 3
    DONE = 4
    READY = 5
    STARTED = 6
    PARK = 7
    RESET = 8


TIMED = 0x80  # or-ed into a RUN frame's kind: the task has a deadline, say when it starts
CLEAN = 1  # a DONE frame's kind: no item failed (the errors in its payload are empty)
UNREAD = 2  # a DONE frame's kind: the worker could not unpickle the items: none ran


class Head(NamedTuple):
    """A frame's fixed head; a field a tag does not use is 0."""

    tag: int
    task: int = 0
    job: int = 0
    kind: int = 0


def frame(
    tag: Tag, *, task: int = 0, job: int = 0, kind: int = 0, payload: bytes | list[Any] = b""
) -> list[Any]:
    """The buffers of one frame, to be written in order (``payload`` may come in pieces)."""
    pieces: list[Any] = payload if isinstance(payload, list) else [payload] if payload else []
    size = sum(memoryview(p).nbytes for p in pieces)
    return [LENGTH.pack(HEAD.size + size) + HEAD.pack(tag, task, job, kind), *pieces]


def parse(body: bytes | bytearray | memoryview) -> tuple[Head, memoryview]:
    """A frame's head and its payload (a view: never copied)."""
    return Head._make(HEAD.unpack_from(body)), memoryview(body)[HEAD.size :]


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

    @property
    def between_frames(self) -> bool:
        """Nothing of a frame read yet: the stream may change hands here."""
        return self._body is None and self._head_filled == 0

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


# -- payloads: pickle protocol 5 with large buffers out of band -----------------------------
# A payload is <u32 n><u64 size of each of n buffers><u64 size of the pickle><pickle>
# <buffer 0>...<buffer n-1>: bytearrays, NumPy arrays and large bytes travel from their own
# memory to the socket, never copied into the pickle.

COUNT = struct.Struct("<I")
SIZE = struct.Struct("<Q")


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
