"""What the frames carry (see ``_frames`` for the frames), each encode beside its decode:

    INIT   encode_init      (parent)  ──►  decode_init       (worker)
    DEF    encode_function  (parent)  ──►  decode_function   (worker)
    RUN    Sent.encode      (parent)  ──►  decode_items      (worker)
    DONE   encode_result    (worker)  ──►  decode_result     (parent)  ──►  Sent.outcome
           encode_error     (worker)  ──►  decode_error      (parent)

Each direction pickles by its own rule. Towards a worker: ``pickle`` first (fastest), cloudpickle
for what pickle cannot do and for anything that names ``__main__`` (a worker does not import the
user's script: its classes and functions travel by value). Towards the parent: ``pickle`` first,
cloudpickle for what pickle cannot do, which sends a class the worker received by value back as
the very class the parent has.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from types import CodeType, FunctionType
from typing import Any, overload

from ..._errors import RemoteError, RemoteTraceback, note
from ..._retry import Retry
from ..._task import Job, Outcome, Task, failed, stop_iteration_behind
from ..._worker_spec import Workers
from ._frames import pack, split, unpack

# The key, in a DONE's errors, of an error that failed the whole batch before any item ran: the
# worker could not read the items, or had no function to run them with.
WHOLE_BATCH = -1

# -- pickling, one rule per direction ------------------------------------------------------


def pickle_for_worker(obj: object, buffer_callback: Callable[[Any], object] | None = None) -> bytes:
    """pickle, or cloudpickle for what pickle cannot do (lambdas, local classes) and for what
    pickle would send as a reference to ``__main__``, which a worker does not import.

    Whether a pickle names ``__main__`` is read off its bytes: a module name is written out
    whole, and a search through a batch's pickle costs nothing next to making it (a string
    that happens to contain the word just costs a cloudpickle).
    """
    return _dumps(obj, buffer_callback, refuse=lambda data: b"__main__" in data)


def pickle_for_parent(obj: object, buffer_callback: Callable[[Any], object] | None = None) -> bytes:
    """pickle, or cloudpickle for what pickle cannot do: above all an object of a class the
    worker received by value, which cloudpickle sends back as the very class the parent has.
    (pickle cannot mistake such a class for a reference: it finds no ``__main__.Foo`` in the
    worker, or another object under that name, and refuses.)"""
    return _dumps(obj, buffer_callback, refuse=lambda data: False)


def _dumps(
    obj: object,
    buffer_callback: Callable[[Any], object] | None,
    refuse: Callable[[bytes], bool],
) -> bytes:
    buffers: list[pickle.PickleBuffer] = []  # passed on only from the attempt that succeeds
    collect = None if buffer_callback is None else buffers.append
    try:
        data = pickle.dumps(obj, protocol=5, buffer_callback=collect)
    except Exception:
        data = None
    if data is None or refuse(data):
        import cloudpickle

        buffers.clear()
        data = cloudpickle.dumps(obj, protocol=5, buffer_callback=collect)
    if buffer_callback is not None:
        for buffer in buffers:
            buffer_callback(buffer)
    return data


# -- INIT: sys.path, then the initializer ---------------------------------------------------


def encode_init(spec: Workers) -> bytes:
    """The parent's ``sys.path`` (so its modules import) and the initializer, pickled on its
    own: the worker unpickles it only once that ``sys.path`` is in place."""
    global _plain_init
    if spec.initializer is None:  # the same for every pool while sys.path stays as it is
        if _plain_init is None or _plain_init[0] != sys.path:
            _plain_init = (list(sys.path), pickle.dumps((sys.path, pickle_for_worker(Workers()))))
        return _plain_init[1]
    initializer = Workers(initializer=spec.initializer, initargs=spec.initargs)
    try:
        blob = pickle_for_worker(initializer)
    except BaseException as exc:  # (a __reduce__ is the user's code: it may raise anything)
        if not might_be_ctrl_c(exc):
            note(exc, unsendable_init_note(spec))
        raise
    return pickle.dumps((sys.path, blob))


def unsendable_init_note(spec: Workers) -> str:
    """What would not pickle, the initializer or one of its arguments, and what to do."""
    try:
        pickle_for_worker(spec.initializer)
    except BaseException:
        return (
            "plait: the worker's initializer could not be pickled for a worker process; make "
            "it picklable (e.g. a module-level function); each task of the pool fails with "
            "this error"
        )
    return (
        "plait: the worker's initargs could not be pickled for a worker process; pass "
        "picklable values, or create the object in the initializer itself (it runs in the "
        "worker); each task of the pool fails with this error"
    )


_plain_init: tuple[list[str], bytes] | None = None  # (sys.path, INIT) of pools with no initializer


def decode_init(payload: memoryview) -> tuple[list[str], Callable[[], Workers]]:
    """The parent's ``sys.path``, and how to load the initializer once it is applied."""
    sys_path, blob = pickle.loads(payload)
    return sys_path, partial(pickle.loads, blob)


# -- RESET: a warm worker starts again where the program is ---------------------------------


def encode_surroundings() -> bytes:
    """The program's current directory (None if it was removed) and environment: a worker
    kept warm is reset to them as a new pool takes it, whatever the last pool's tasks did."""
    try:
        cwd: str | None = os.getcwd()
    except OSError:
        cwd = None
    return pickle.dumps((cwd, dict(os.environ)))


def decode_surroundings(payload: memoryview) -> tuple[str | None, dict[str, str]]:
    cwd, environ = pickle.loads(payload)
    return cwd, environ


# -- DEF: a job's function, sent once to each worker ---------------------------------------


def encode_function(job: Job) -> bytes:
    """The function (cloudpickle, so lambdas and closures travel), where it was defined, and its
    retry policy (retries run in the worker)."""
    import cloudpickle  # imported here: thread-only users never pay for it

    return cloudpickle.dumps(  # type: ignore[no-any-return]
        (job.fn, source_files(job.fn), job.retry), protocol=5
    )


def decode_function(payload: memoryview) -> tuple[Callable[..., Any], Retry | None]:
    fn, files, retry = pickle.loads(payload)
    restore_filenames(fn, files)
    return fn, retry


def source_files(fn: Callable[..., Any]) -> dict[str, str]:
    """Where the function's module lives. cloudpickle drops the file name of functions it
    sends by value (lambdas, ``__main__``); the worker puts it back so tracebacks show code."""
    module = getattr(fn, "__module__", None)
    file = getattr(sys.modules.get(module or ""), "__file__", None)
    return {module: file} if module and file else {}


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


# -- RUN: a batch of items, and the outcome it comes back as --------------------------------

OUT_OF_BAND_BYTES = 64 * 1024  # smaller bytes are cheaper to copy than to describe


class _LargeBytes:
    """Pickles a bytes object as an out-of-band buffer; it loads as bytes again."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:
        return (bytes, (pickle.PickleBuffer(self.data),))


def out_of_band(values: Sequence[Any]) -> Sequence[Any]:
    """``values`` with its large bytes marked to travel out of band."""
    # The values of a batch are nearly always of one type: look further only if the first is
    # bytes, so a batch of thousands of small values pays nothing for this.
    if values and type(values[0]) is bytes:
        return [
            _LargeBytes(x) if type(x) is bytes and len(x) >= OUT_OF_BAND_BYTES else x
            for x in values
        ]
    return values


def encode_items(items: Sequence[Any]) -> list[bytes | memoryview]:
    return pack(out_of_band(items), pickle_for_worker)


def decode_items(payload: memoryview) -> list[Any]:
    items: list[Any] = unpack(payload)
    return items


class SentItems(Sequence[Any]):
    """A sent task's items, kept as the pickle they were sent as.

    While a batch is in flight the parent needs its items only if something goes wrong (its
    worker dies and the batch runs again item by item; an item failed and its error names it).
    A pickle of small objects is several times smaller than the objects (an int: 5 bytes
    against 36), so a map of tiny items holds far less memory for the same work in flight;
    the items are rebuilt, from the very bytes the worker got, only when asked for.
    """

    __slots__ = ("_size", "blob")

    def __init__(self, blob: list[bytes | memoryview], size: int) -> None:
        self.blob = blob
        self._size = size

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return self._load()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._load())

    def _load(self) -> list[Any]:
        return decode_items(memoryview(b"".join(self.blob)))


@dataclass(slots=True)
class Sent:
    """A task as it went to a worker: the items that pickled, and errors for those that did not."""

    task: Task
    blob: list[bytes | memoryview] | None  # the RUN payload, in pieces
    offsets: list[int] | None = None  # where each sent item sits in the task; None: all of them
    unsent: dict[int, BaseException] = field(default_factory=dict)

    @classmethod
    def encode(cls, task: Task) -> Sent:
        """The RUN payload of ``task``. Once all its items are pickled, the task keeps them
        only as those bytes (see ``SentItems``)."""
        if isinstance(task.items, SentItems):  # sent before, to a worker that was lost
            return cls(task, task.items.blob)
        # An item's __reduce__ is the user's code, and may raise anything (SystemExit, a
        # BaseException of its own): that item fails alone, with its error; escaping, it ended
        # the dispatcher's thread, and the map waited for good.
        try:
            whole = encode_items(task.items)
        except BaseException as exc:
            if might_be_ctrl_c(exc):
                raise
        else:
            task.items = SentItems(whole, len(task.items))
            return cls(task, whole)
        offsets: list[int] = []
        unsent: dict[int, BaseException] = {}
        for offset, item in enumerate(task.items):
            try:
                pickle_for_worker(item)
            except BaseException as exc:
                if might_be_ctrl_c(exc):
                    raise
                note(exc, "plait: this item could not be pickled to send it to a worker")
                unsent[offset] = exc
            else:
                offsets.append(offset)
        blob = encode_items([task.items[o] for o in offsets]) if offsets else None
        return cls(task, blob, offsets, unsent)

    def outcome(
        self, values: list[Any], errors: dict[int, BaseException], elapsed: float
    ) -> Outcome:
        """The task's outcome from the worker's answer about the items it was sent."""
        size = len(self.task.items)
        sent_bytes = sum(memoryview(piece).nbytes for piece in self.blob or ())
        if WHOLE_BATCH in errors:
            return failed(size, errors[WHOLE_BATCH], ran=False, owner_loads=self.task.owner_loads)
        if self.offsets is None:
            return Outcome(values, errors, elapsed, sent_bytes)
        full: list[Any] = [None] * size
        merged = dict(self.unsent)
        for position, offset in enumerate(self.offsets):
            full[offset] = values[position]
            if position in errors:
                merged[offset] = errors[position]
        return Outcome(full, merged, elapsed, sent_bytes, unsent=tuple(self.unsent))

    def answer(self, payload: memoryview, *, clean: bool, elapsed: float) -> Outcome:
        """The task's outcome from a worker's DONE payload (``clean``: no item failed, as
        the worker said; ``elapsed``: its seconds for the batch). A clean batch of a task
        whose owner loads its outcomes stays packed: the owner unpacks it in its own thread,
        as it hands the values out (the thread that received it stays free), and holds bytes
        until then."""
        if clean and self.offsets is None and self.task.owner_loads:
            outcome = self.outcome([], {}, elapsed)
            outcome.packed = partial(decode_values, payload)
            return outcome
        values, errors, elapsed, retries = decode_result(payload)  # never raises: see there
        outcome = self.outcome(values, errors, elapsed)
        outcome.retries = retries
        return outcome


# -- DONE: one flat list [errors, (elapsed, retries), *values] -----------------------------
# Flat, so that the parent can rebuild the values one by one when the whole will not load.

# (the pickle, or None; type name; message; traceback; the StopIteration it stands for)
EncodedError = tuple[bytes | None, str, str, str, "EncodedError | None"]


def encode_result(outcome: Outcome) -> tuple[list[bytes | memoryview], bool]:
    """The DONE payload of ``outcome``, and whether it is clean: no item failed, here or in
    pickling its value."""
    errors = {offset: encode_error(exc) for offset, exc in outcome.errors.items()}
    try:
        clean = not errors and not outcome.retries  # (a retry's count is in the full answer)
        return _pack_result(outcome.values, errors, outcome.elapsed, outcome.retries), clean
    except BaseException:  # a value's __reduce__ is user code: it may raise anything
        pass
    # Some value would not pickle: find which, and fail only those items.
    values = outcome.values
    for offset, value in enumerate(values):
        if offset in errors:
            continue
        try:
            pickle_for_parent(value)
        except BaseException as exc:
            note(exc, f"plait: the result ({type(value).__name__}) could not be pickled")
            errors[offset] = encode_error(exc)
            values[offset] = None
    return _pack_result(values, errors, outcome.elapsed, outcome.retries), False


def encode_failed_batch(error: BaseException) -> list[bytes | memoryview]:
    """A DONE for a batch none of whose items could run."""
    return _pack_result([], {WHOLE_BATCH: encode_error(error)}, 0.0)


def _pack_result(
    values: list[Any], errors: dict[int, EncodedError], elapsed: float, retries: int = 0
) -> list[bytes | memoryview]:
    return pack([errors, (elapsed, retries), *out_of_band(values)], pickle_for_parent)


def decode_values(payload: memoryview) -> tuple[list[Any], dict[int, BaseException]]:
    """A clean DONE payload's values (and the errors of those the parent could not rebuild)."""
    values, errors, _, _ = decode_result(payload)
    return values, errors


def decode_result(
    payload: memoryview,
) -> tuple[list[Any], dict[int, BaseException], float, int]:
    """A DONE payload as (values, errors, elapsed, retries). It never raises: a result the
    parent cannot rebuild (its class lives in a module only the worker can import, its
    ``__reduce__`` names a callable that fails here...) fails that item alone, as a
    ``RemoteError``."""
    data, buffers = split(payload)
    try:
        values = pickle.loads(data, buffers=buffers)  # the fast path: the whole batch at once
        broken: dict[int, BaseException] = {}
    except BaseException as exc:
        from ._salvage import load_each, unbuilt  # the slow path, and the parent's only

        try:
            values, broken = load_each(data, buffers)
        except BaseException as salvage_error:  # not a list we understand: a bug, say so
            error = unbuilt(exc, "the results of this batch")
            error.add_note(f"plait: rebuilding them one by one failed too: {salvage_error!r}")
            return [], {WHOLE_BATCH: error}, 0.0, 0
        if 0 in broken or 1 in broken:  # the errors and timings are plain data: a bug
            return [], {WHOLE_BATCH: broken.get(0) or broken[1]}, 0.0, 0
    encoded, (elapsed, retries) = values[0], values[1]
    del values[:2]
    errors = {offset: decode_error(*blob) for offset, blob in encoded.items()}
    for position, failure in broken.items():
        errors[position - 2] = failure
    return values, errors, elapsed, retries


# -- errors: pickled when they survive the trip, described always ---------------------------


def encode_error(exc: BaseException) -> EncodedError:
    """The exception pickled (when it survives a round trip) plus its type, text and traceback;
    and, for the RuntimeError a task's StopIteration became (``task_error``), that StopIteration,
    encoded on its own: a pickle keeps no ``__cause__``, and the parent must hand out the
    StopIteration as the cause, as threads do.

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
        blob = pickle_for_parent(exc)
        pickle.loads(blob)  # an exception whose __init__ needs other arguments fails here
    except BaseException:
        blob = None
    stop = stop_iteration_behind(exc)
    return blob, name, message, tb, None if stop is None else encode_error(stop)


def decode_error(
    blob: bytes | None, type_name: str, message: str, tb: str, stop: EncodedError | None
) -> BaseException:
    """Rebuild a worker's exception, its traceback as ``__cause__``; RemoteError if it can't be.
    The RuntimeError that stands for a StopIteration (``stop``) has that StopIteration as its
    cause instead, and the worker's traceback is the StopIteration's."""
    exc: BaseException | None = None
    if blob is not None:
        try:
            exc = pickle.loads(blob)
        except BaseException:  # its class's own code ran here, and failed
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(type_name, message, tb)
    exc.__cause__ = RemoteTraceback(tb) if stop is None else decode_error(*stop)
    return exc


def guarded(text: Callable[[], str], fallback: str) -> str:
    try:
        result = text()
    except BaseException:
        return fallback
    return result if type(result) is str else fallback


def might_be_ctrl_c(exc: BaseException) -> bool:
    """Whether ``exc``, raised by the user's code (a ``__reduce__``), may be the program's
    Ctrl-C instead: a KeyboardInterrupt in the main thread, where Python raises SIGINT's. Not
    an item's failure, then: it goes on up. (Elsewhere, an object's own code raised it.)"""
    return (
        isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread()
    )


def user_frames(exc: BaseException) -> Any:
    """The traceback without plait's own frames at the top (``execute`` and its helpers)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("plait."):
        tb = tb.tb_next
    return tb or exc.__traceback__
