"""The only code that runs inside a worker process.

The parent starts ``python -c BOOTSTRAP <fd>`` (or forks, see ``_launch``) with one end of a
socket pair. The worker reads frames in order (see ``_frames`` for the protocol), runs each batch
with ``plait._task.execute`` and writes one DONE frame per batch. It ends when the parent closes
the socket. It does not re-import the parent's ``__main__``: functions travel by value
(cloudpickle), so a script needs no ``if __name__ == "__main__"`` guard.

Its imports are kept lean (``tests/test_exports.py`` checks them): a worker starts for every
pool, and never needs the scheduler, the pool or ``plait.sync``.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import Any

from ... import _item_clock as item_clock
from ..._errors import note
from ..._retry import Retry
from ..._task import Kind, execute
from ..._worker_spec import Workers, start_worker
from . import _frames as frames
from ._codec import (
    decode_function,
    decode_init,
    decode_items,
    decode_surroundings,
    encode_failed_batch,
    encode_result,
)
from ._frames import CLEAN, TIMED, UNREAD, Tag, frame, parse

PARENT_CHECK_SECONDS = 0.5

# The directory that holds the plait package (src/), for the fresh interpreter's sys.path.
PLAIT_DIR = os.path.normpath(os.path.join(os.path.abspath(__file__), *[os.pardir] * 4))
BOOTSTRAP = (
    f"import sys; sys.path.insert(0, {PLAIT_DIR!r}); "
    "from plait._backends.process._child import main; main(int(sys.argv[1]))"
)


class Unloadable:
    """Stands in for a function the worker could not unpickle; every item gets the error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def main(fd: int) -> None:
    # Ctrl-C reaches the whole process group; the parent decides what to do with workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    threading.Thread(target=exit_with_parent, args=(parent,), daemon=True).start()
    sock = socket.socket(fileno=fd)
    code = 0
    try:
        with suppress(BrokenPipeError, ConnectionResetError):  # the parent is gone: so are we
            serve(sock)
    except BaseException:  # a bug in plait: say so, and still end
        traceback.print_exc()
        code = 1
    exit_now(code)


def exit_now(code: int) -> None:
    """End the worker now that the parent told it to (closed the socket). ``os._exit``, after
    flushing what tasks printed: a thread a task left running, even a non-daemon one, must not
    hold the worker (and the parent's shutdown) for as long as that thread likes."""
    for stream in (sys.stdout, sys.stderr):
        with suppress(BaseException):
            stream.flush()
    os._exit(code)


def exit_with_parent(parent: int) -> None:
    """End this worker if its parent dies, even in the middle of a long task: nobody is left
    to read the result, and an orphan would burn CPU. (A closed socket only shows between
    tasks.)"""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def serve(sock: socket.socket) -> None:
    jobs: dict[int, tuple[Any, Retry | None]] = {}
    init_error: BaseException | None = None
    start_path = list(sys.path)  # as it was when this worker started, before any pool's
    # frames.send_frame is looked up at each call: a test replaces it to end a worker mid-way.
    while (body := _next_frame(sock)) is not None:
        head, payload = parse(body)
        if head.tag == Tag.INIT:  # a new pool's: what a previous one left is forgotten
            sock.settimeout(None)  # no longer parked, if it was
            jobs.clear()
            sys.path[:] = start_path  # (a warm worker: what the last pool's tasks added goes)
            init_error = initialize(payload)
            frames.send_frame(sock, frame(Tag.READY))
        elif head.tag == Tag.RESET:  # a warm worker taken by a new pool (its INIT follows)
            reset(payload)
        elif head.tag == Tag.PARK:  # kept warm for the next pool, for so long at most
            sock.settimeout(head.job)  # (the next frame, a pool's INIT, sets it back)
        elif head.tag == Tag.DEF:
            try:
                jobs[head.job] = decode_function(payload)
            except BaseException as exc:
                note(exc, "plait: the function could not be loaded in the worker process")
                jobs[head.job] = (Unloadable(exc), None)
        elif head.tag == Tag.FORGET:
            jobs.pop(head.job, None)
        elif head.tag == Tag.RUN:
            fn, retry = jobs[head.job]
            # Only a timed task reports its start: an untimed batch pays nothing for it.
            started = (
                partial(frames.send_frame, sock, frame(Tag.STARTED, task=head.task))
                if head.kind & TIMED
                else None
            )
            result, clean, elapsed = run(
                Unloadable(init_error) if init_error else fn,
                retry,
                Kind(head.kind & ~TIMED),
                payload,
                started,
            )
            done = frame(Tag.DONE, task=head.task, job=elapsed, kind=clean, payload=result)
            frames.send_frame(sock, done)


def _next_frame(sock: socket.socket) -> bytearray | None:
    """The next frame; None at EOF, or when a parked worker waited its idle time out."""
    try:
        body = frames.recv_frame(sock)
    except TimeoutError:  # parked, and no pool came for it
        return None
    return body


def reset(payload: memoryview) -> None:
    """Go back to the program's directory and environment, as a worker started now would
    have: a task of the last pool may have changed them (os.chdir, os.environ)."""
    cwd, environ = decode_surroundings(payload)
    if cwd is not None:
        with suppress(OSError):  # removed since: stay here, as a fresh worker would
            os.chdir(cwd)
    if os.environ != environ:
        os.environ.clear()
        os.environ.update(environ)


def initialize(payload: memoryview) -> BaseException | None:
    """Apply the INIT frame; returns the initializer's error, if any."""
    sys_path, load_spec = decode_init(payload)
    sys.path[:0] = [p for p in sys_path if p not in sys.path]
    try:
        spec = load_spec()  # after sys.path: it may name the parent's modules
    except BaseException as exc:
        note(exc, "plait: the worker's initializer could not be loaded in the worker process")
        start_worker(Workers())
        return exc
    return start_worker(spec)


def run(
    fn: Any,
    retry: Retry | None,
    kind: Kind,
    payload: memoryview,
    started: Callable[[], object] | None = None,
) -> tuple[list[bytes | memoryview], int, int]:
    """Run one batch: its DONE payload, kind (``CLEAN``, ``UNREAD`` or 0) and elapsed
    nanoseconds.
    ``started`` (for a timed task) tells the parent its clock starts now, once the items are
    loaded: loading a slow module is not the item's time."""
    try:
        items = decode_items(payload)
    except BaseException as exc:
        note(exc, "plait: the items could not be unpickled in the worker process")
        return encode_failed_batch(exc), UNREAD, 0
    if isinstance(fn, Unloadable):  # nothing can run: the whole batch fails, unrun
        return encode_failed_batch(fn.error), 0, 0
    if started is not None:
        if getattr(fn, "waits_for_slots", False):  # once its rate= slot came: _item_clock
            item_clock.run_with(lambda running: started() if running else None)
        else:
            started()
    try:
        outcome = execute(fn, kind, items, retry)
    finally:
        item_clock.run_with(None)
    pieces, clean = encode_result(outcome)
    return pieces, CLEAN if clean else 0, int(outcome.elapsed * 1e9)
