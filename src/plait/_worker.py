"""The only code that runs inside a worker process.

The parent starts ``python -c BOOTSTRAP <fd>`` with one end of a socket pair. The worker reads
frames in order (functions, batches of items, "forget" notes), runs each batch with
``plait._task.execute`` and writes one DONE frame per batch. It ends when the parent closes the
socket. It does not re-import the parent's ``__main__``: functions travel by value (cloudpickle),
so a script needs no ``if __name__ == "__main__"`` guard.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from types import CodeType, FunctionType
from typing import Any

from . import _wire as wire
from ._retry import Retry
from ._task import Kind, execute
from ._worker_spec import Workers, start_worker

PARENT_CHECK_SECONDS = 0.5

PLAIT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOTSTRAP = (
    f"import sys; sys.path.insert(0, {PLAIT_DIR!r}); "
    "from plait._worker import main; main(int(sys.argv[1]))"
)


def dumps(obj: object, buffer_callback: Any = None) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(  # type: ignore[no-any-return]
        obj, protocol=5, buffer_callback=buffer_callback
    )


def pack_result(
    values: list[Any], errors: dict[int, Any], elapsed: float
) -> list[bytes | memoryview]:
    # One flat list, so that the parent can rebuild the values one by one if it must (see
    # _encoding.decode_result).
    return wire.pack([errors, elapsed, *wire.out_of_band(values)], dumps)


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
    jobs: dict[int, Any] = {}
    init_error: BaseException | None = None
    while (body := wire.recv_frame(sock)) is not None:
        tag, a, b, kind, payload = wire.parse(body)
        if tag == wire.INIT:  # the parent's sys.path (so its modules import), the initializer
            init_error = initialize(payload)
            wire.send_frame(sock, wire.frame(wire.READY))
        elif tag == wire.DEF:
            try:
                fn, files, retry = pickle.loads(payload)
                restore_filenames(fn, files)
                jobs[a] = (fn, retry)
            except BaseException as exc:
                note(exc, "plait: the function could not be loaded in the worker process")
                jobs[a] = (Unloadable(exc), None)
        elif tag == wire.FORGET:
            jobs.pop(a, None)
        elif tag == wire.RUN:
            fn, retry = jobs[b]
            started = partial(wire.send_frame, sock, wire.frame(wire.STARTED, a))
            result = run(
                Unloadable(init_error) if init_error else fn,
                retry,
                Kind(kind & ~wire.TIMED),
                payload,
                started if kind & wire.TIMED else None,
            )
            wire.send_frame(sock, wire.frame(wire.DONE, a, payload=result))


def initialize(payload: memoryview) -> BaseException | None:
    """Apply the INIT frame; returns the initializer's error, if any."""
    sys_path, spec_blob = pickle.loads(payload)
    sys.path[:0] = [p for p in sys_path if p not in sys.path]
    try:
        spec = pickle.loads(spec_blob)  # after sys.path: it may name the parent's modules
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
) -> list[bytes | memoryview]:
    """Run one batch; ``started`` (for a timed task) tells the parent its clock starts now,
    once the items are loaded: loading a slow module is not the item's time."""
    try:
        items = wire.unpack(payload)
    except BaseException as exc:
        note(exc, "plait: the items could not be unpickled in the worker process")
        return pack_result([], {-1: encode_error(exc)}, 0.0)
    if started is not None:
        started()
    if isinstance(fn, Unloadable):  # nothing can run: the whole batch fails, unrun
        return pack_result([], {-1: encode_error(fn.error)}, 0.0)
    outcome = execute(fn, kind, items, retry)
    errors = {offset: encode_error(exc) for offset, exc in outcome.errors.items()}
    try:
        return pack_result(outcome.values, errors, outcome.elapsed)
    except BaseException:  # a value's __reduce__ is user code: it may raise anything
        pass
    # Some value would not pickle: find which, and fail only those items.
    values = outcome.values
    for offset, value in enumerate(values):
        if offset in errors:
            continue
        try:
            dumps(value)
        except BaseException as exc:
            note(exc, f"plait: the result ({type(value).__name__}) could not be pickled")
            errors[offset] = encode_error(exc)
            values[offset] = None
    return pack_result(values, errors, outcome.elapsed)


def encode_error(exc: BaseException) -> tuple[bytes | None, str, str, str]:
    """The exception pickled (when it survives a round trip) plus its type, text and traceback.

    Each step runs the exception's own code (``__str__``, ``__repr__``, ``__reduce__``, the
    class's constructor on the round trip), and any of it may raise: a failure there costs that
    part of the report, never the worker (which would take the whole batch down with it).
    """
    name = guarded(lambda: f"{type(exc).__module__}.{type(exc).__qualname__}", "<unknown type>")
    message = guarded(lambda: str(exc), f"<str() of this {type(exc).__name__} failed>")
    tb = guarded(
        lambda: "".join(traceback.format_exception(type(exc), exc, user_frames(exc))),
        f"<the traceback of this {name} could not be formatted>\n{name}: {message}\n",
    )
    blob: bytes | None
    try:
        blob = dumps(exc)
        pickle.loads(blob)  # an exception whose __init__ needs other arguments fails here
    except BaseException:
        blob = None
    return blob, name, message, tb


def guarded(text: Callable[[], str], fallback: str) -> str:
    try:
        result = text()
    except BaseException:
        return fallback
    return result if type(result) is str else fallback


def note(exc: BaseException, text: str) -> None:
    """``exc.add_note(text)``, which fails if the exception's ``__notes__`` is not a list."""
    with suppress(BaseException):
        exc.add_note(text)


def user_frames(exc: BaseException) -> Any:
    """The traceback without plait's own frames at the top (``execute`` and its helpers)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("plait."):
        tb = tb.tb_next
    return tb or exc.__traceback__


def restore_filenames(fn: object, files: dict[str, str], seen: set[int] | None = None) -> None:
    """Give functions sent by value their source file back, so tracebacks show their lines."""
    seen = set() if seen is None else seen
    if not isinstance(fn, FunctionType) or id(fn) in seen:
        return
    seen.add(id(fn))
    file = files.get(fn.__module__)
    if file is None or fn.__code__.co_filename != "<dynamic-code>":
        return
    fn.__code__ = with_filename(fn.__code__, file)
    for cell in fn.__closure__ or ():
        with suppress(ValueError):  # an empty cell
            restore_filenames(cell.cell_contents, files, seen)
    for value in list(fn.__globals__.values()):
        restore_filenames(value, files, seen)


def with_filename(code: CodeType, file: str) -> CodeType:
    consts = tuple(with_filename(c, file) if isinstance(c, CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=file, co_consts=consts)
