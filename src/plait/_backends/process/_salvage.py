"""The slow path of ``decode_result``: the results of a batch rebuilt one at a time, when the
batch will not load as a whole. Only the parent imports it, and only when it needs it."""

from __future__ import annotations

import io
import pickle
import pickletools
import traceback
from collections.abc import Callable
from typing import Any

from ..._errors import RemoteError


def unbuilt(exc: BaseException, what: str = "this item's result") -> RemoteError:
    """The error of a result the parent process could not rebuild; ``exc`` is why."""
    name = _safe(lambda: f"{type(exc).__module__}.{type(exc).__qualname__}", "<unknown type>")
    reason = _safe(lambda: str(exc), "<its str() failed>")
    message = (
        f"{what} could not be rebuilt in the parent process: {reason} (the worker pickled it, "
        "but unpickling it here failed; return values the parent can import and build, such "
        "as builtins or classes from modules on the parent's sys.path)"
    )
    tb = _safe(lambda: "".join(traceback.format_exception(exc)), "")
    error = RemoteError(name, message, tb)
    error.__cause__ = exc
    return error


def _safe(text: Callable[[], str], fallback: str) -> str:
    try:
        return text()
    except BaseException:
        return fallback


Op = tuple[pickletools.OpcodeInfo, Any, int]  # an opcode, its argument, its offset


def load_each(data: memoryview, buffers: list[memoryview]) -> tuple[list[Any], dict[int, Any]]:
    """Unpickle the elements of a pickled list one at a time: (values, {position: error}).

    The slow path, taken only when the whole list would not load. The pickle's opcodes are
    walked once (``pickletools``) to find where each element begins and ends, which out-of-band
    buffers it takes and which memo entries it makes and reads; each element is then loaded on
    its own, handed the memo its predecessors built, so objects shared between elements stay
    shared. An element that reads a memo entry a failed element should have made fails too.
    """
    raw = bytes(data)
    ops: list[Op] = [(op, arg, pos or 0) for op, arg, pos in pickletools.genops(raw)]
    spans = element_spans(ops)
    memo_count = 0  # MEMOIZE numbers entries in order: the count so far is the next index
    made: list[list[int]] = [[] for _ in spans]
    read: list[set[int]] = [set() for _ in spans]
    takes = [0] * len(spans)
    frames: list[int] = []  # FRAME opcodes: left out of each element's own pickle
    element = -1
    for op, arg, pos in ops:
        while element + 1 < len(spans) and pos >= spans[element + 1][0]:
            element += 1
        inside = element >= 0 and pos < spans[element][1]
        if op.name == "FRAME":
            frames.append(pos)
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            raise ValueError("PUT opcodes: not a protocol 4+ pickle")
        elif op.name == "MEMOIZE":
            if inside:
                made[element].append(memo_count)
            memo_count += 1
        elif op.name in ("GET", "BINGET", "LONG_BINGET") and inside:
            read[element].add(int(arg))
        elif op.name == "NEXT_BUFFER" and inside:
            takes[element] += 1
    # The pure-Python unpickler: its memo is a plain dict that every element's load shares
    # (the C one copies a memo handed to it, and loses its numbering).
    first = spans[0][0] if spans else len(raw)
    memo: dict[int, Any] = dict.fromkeys(  # the list's own entry: never read back
        range(sum(1 for op, _, pos in ops if op.name == "MEMOIZE" and pos < first))
    )
    poisoned: dict[int, BaseException] = {}  # memo entries a failed element did not make
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    next_buffer = 0
    for position, (start, end) in enumerate(spans):
        taken = buffers[next_buffer : next_buffer + takes[position]]
        next_buffer += takes[position]
        shared = [poisoned[index] for index in sorted(read[position]) if index in poisoned]
        if shared:
            errors[position] = unbuilt(shared[0])  # the other result's own reason
            errors[position].add_note(
                "plait: it shares an object with another result of its batch, which could not "
                "be rebuilt"
            )
        else:
            pieces = [b"\x80\x05"]  # PROTO 5, the element's opcodes but FRAMEs, then STOP
            at = start
            for frame in frames:
                if start <= frame < end:
                    pieces.append(raw[at:frame])
                    at = frame + 9  # the FRAME opcode and its 8-byte length
            pieces += [raw[at:end], b"."]
            unpickler = pickle._Unpickler(io.BytesIO(b"".join(pieces)), buffers=taken)
            unpickler.memo = memo  # type: ignore[attr-defined]
            try:
                values.append(unpickler.load())
                continue
            except BaseException as exc:
                errors[position] = unbuilt(exc)
        values.append(None)
        for index in made[position]:  # keep the numbering; whoever reads these fails too
            if index not in memo:
                memo[index] = None
                poisoned[index] = errors[position].__cause__ or errors[position]
    return values, errors


def element_spans(ops: list[Op]) -> list[tuple[int, int]]:
    """Where each element of a pickled top-level list lies: (start, end) byte offsets.

    The stack is simulated with each slot holding the offset of the first opcode that went
    into it; the elements are the slots the top-level list's APPENDS or APPEND consumes.
    """
    stack: list[int | None] = []  # None: a mark
    spans: list[tuple[int, int]] = []
    for op, _, pos in ops:
        before, after = op.stack_before, op.stack_after
        if not stack and after and op.name != "EMPTY_LIST":
            raise ValueError(f"not a pickled list: {op.name} at the top level")
        if pickletools.markobject in before:
            mark = len(stack) - 1 - stack[::-1].index(None)
            below = before.index(pickletools.markobject)
            popped = stack[mark - below : mark] + stack[mark + 1 :]
            if op.name == "APPENDS" and mark == 1:
                starts = [p for p in stack[2:] if p is not None]
                spans.extend(zip(starts, [*starts[1:], pos], strict=True))
            del stack[mark - below :]
        else:
            count = len(before)
            popped = stack[len(stack) - count :] if count else []
            if op.name == "APPEND" and len(stack) == 2 and stack[1] is not None:
                spans.append((stack[1], pos))
            if count:
                del stack[len(stack) - count :]
        starts = [p for p in popped if p is not None]
        slot = min(starts) if starts else pos
        stack.extend(None if item is pickletools.markobject else slot for item in after)
    return spans
