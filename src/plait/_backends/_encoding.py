"""What crosses to a worker process and back: items pickled (and which would not be), outcomes
put back in place, exceptions rebuilt with their worker's traceback."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import _wire as wire
from .._errors import RemoteError, RemoteTraceback
from .._task import Outcome, Task


def dumps(obj: object, buffer_callback: Callable[[Any], object] | None = None) -> bytes:
    """pickle first (fastest); cloudpickle for what pickle cannot do (lambdas, local classes)
    and for what pickle would send as a reference to ``__main__``: a worker does not import the
    user's script, so its classes, functions and their instances travel by value instead.

    Whether a pickle names ``__main__`` is read off its bytes: a module name is written out
    whole, and a search through a batch's pickle costs nothing next to making it (a string
    that happens to contain the word just costs a cloudpickle).
    """
    buffers: list[pickle.PickleBuffer] = []  # passed on only from the attempt that succeeds
    collect = None if buffer_callback is None else buffers.append
    try:
        data = pickle.dumps(obj, protocol=5, buffer_callback=collect)
    except Exception:
        data = None
    if data is None or b"__main__" in data:
        import cloudpickle

        buffers.clear()
        data = cloudpickle.dumps(obj, protocol=5, buffer_callback=collect)
    if buffer_callback is not None:
        for buffer in buffers:
            buffer_callback(buffer)
    return data


def pack(items: list[Any]) -> list[bytes | memoryview]:
    return wire.pack_items(items, dumps)


@dataclass(slots=True)
class Sent:
    """A task as it went to a worker: the items that pickled, and errors for those that did not."""

    task: Task
    blob: list[bytes | memoryview] | None  # the payload, in pieces (see _wire.pack_items)
    offsets: list[int] | None = None  # where each sent item sits in the task; None: all of them
    unsent: dict[int, BaseException] = field(default_factory=dict)

    @classmethod
    def encode(cls, task: Task) -> Sent:
        try:
            return cls(task, pack(task.items))
        except Exception:
            pass
        offsets: list[int] = []
        unsent: dict[int, BaseException] = {}
        for offset, item in enumerate(task.items):
            try:
                dumps(item)
            except Exception as exc:
                exc.add_note("plait: this item could not be pickled to send it to a worker")
                unsent[offset] = exc
            else:
                offsets.append(offset)
        blob = pack([task.items[o] for o in offsets]) if offsets else None
        return cls(task, blob, offsets, unsent)

    def outcome(
        self, values: list[Any], errors: dict[int, BaseException], elapsed: float
    ) -> Outcome:
        """The task's outcome from the worker's answer about the items it was sent."""
        size = len(self.task.items)
        sent_bytes = sum(memoryview(piece).nbytes for piece in self.blob or ())
        if -1 in errors:  # the worker could not read the batch at all
            return Outcome([None] * size, dict.fromkeys(range(size), errors[-1]), elapsed)
        if self.offsets is None:
            return Outcome(values, errors, elapsed, sent_bytes)
        full: list[Any] = [None] * size
        merged = dict(self.unsent)
        for position, offset in enumerate(self.offsets):
            full[offset] = values[position]
            if position in errors:
                merged[offset] = errors[position]
        return Outcome(full, merged, elapsed, sent_bytes)


def decode_error(blob: bytes | None, type_name: str, message: str, tb: str) -> BaseException:
    """Rebuild a worker's exception, its traceback as ``__cause__``; RemoteError if it can't be."""
    exc: BaseException | None = None
    if blob is not None:
        try:
            exc = pickle.loads(blob)
        except BaseException:  # its class's own code ran here, and failed
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(type_name, message, tb)
    exc.__cause__ = RemoteTraceback(tb)
    return exc
