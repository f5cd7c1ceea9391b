"""The bookkeeping of one map, with no threads and no I/O: what was read, what is out, what is
ready to hand out, and in which order.

    input ──► take() ──► a batch (seq, first_index, items) ──► the driver runs it
                                                                     │
    values ◄── (with_errors) ◄── pop() ◄── done(batch, outcome)

Two drivers share it. ``MapRun`` (``_scheduler``) runs batches on a backend's threads or
processes, and guards ``done`` and ``pop`` with its condition variable. amap's coroutine driver
(``_amap``) runs one-item batches as coroutines on the caller's event loop. Each driver calls
from one thread at a time, so the window needs no lock of its own and is tested step by step
(``tests/test_window.py``). The one exception: while ``take`` waits for the input, another
thread may send the items it read so far to run (``send_in_hand``, see ``_in_hand``): the two
share a lock.

The window is what keeps memory flat: ``take`` reads the input only while fewer than
``max_batches`` batches (and ``max_items`` items) are between "read" and "handed out". In order
mode a batch that finishes early waits in a reorder buffer keyed by its sequence number, bounded
by the same window.
"""

from __future__ import annotations

import reprlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from ._chunking import ChunkSizer
from ._errors import note
from ._task import Outcome, copy_error

# A read of the input that took this long while results waited, at this long an item or more
# (a few hundred items a second at most: lines from tail -f, messages, not a slow cursor that
# gives thousands), means an input that trickles in.
SLOW_INPUT, SLOW_ITEM = 0.05, 0.005
# A batch's read ends once it took this long, with what it read: its results wait for its
# whole read (a batch run inline runs none before), so an input slower than that (a stream
# of a thousand items a second) makes smaller batches, not 4,096 items' wait for a result.
READ_AT_MOST = 0.02

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


class Batch(Protocol):
    """What the window needs of a batch: ``Task`` is one, amap's one-item batches another."""

    @property
    def seq(self) -> int: ...
    @property
    def first_index(self) -> int: ...
    @property
    def items(self) -> Sequence[Any]: ...


B = TypeVar("B", bound=Batch)


class Taken(NamedTuple):
    """Items just read from the input: the ``seq``-th batch, starting at item ``first_index``.
    A list, unless ``take`` was asked for a slice (``sliced``): then a range's batch is a
    range, a tuple's a tuple."""

    seq: int
    first_index: int
    items: Sequence[Any]


class MapWindow(Generic[B]):
    """The state of one map's input and results (see the module's docstring)."""

    def __init__(
        self,
        source: Iterator[Any],
        sizer: ChunkSizer,
        *,
        ordered: bool,
        raise_errors: bool,
        max_batches: int,
        max_items: int,
        sliceable: bool = False,
        watch: Callable[[list[Any] | None], None] | None = None,
    ) -> None:
        """``sliceable``: ``source`` is plait's own iterator over a list, a tuple or a range
        (``read_slice``), which no other thread can read meanwhile. ``watch(items)`` is told
        as a read of more than one item begins, and ``watch(None)`` as it ends: while it waits,
        another thread may send the items read so far to run (``send_in_hand``)."""
        self._source = source
        self._watch = watch
        self._hand: list[Any] | None = None  # the items of a watched read, as it reads them
        self._sent = 0  # how many of them send_in_hand sent
        self._hand_lock = threading.Lock()
        self._sliceable = sliceable
        self._trickles = False  # the input was seen to trickle in: a batch is one item
        self._sizer = sizer
        self._ordered = ordered
        self._raise = raise_errors
        self._max_batches = max_batches
        self._max_items = max_items
        self._ready: dict[int, tuple[B, Outcome]] = {}  # ordered: by seq
        self._ready_unordered: deque[tuple[B, Outcome]] = deque()
        self._exhausted = False
        self._input_error: BaseException | None = None
        self._batches_out = 0  # read and not yet handed out
        self._items_out = 0
        self._next_seq = 0
        self._next_index = 0
        self._next_to_yield = 0

    def set_limits(self, max_batches: int, max_items: int) -> None:
        """Widen (or narrow) the window: the map moved to other workers (``backend="auto"``).
        Batches already out stay out; a narrower window takes no more until they are back."""
        self._max_batches = max_batches
        self._max_items = max_items

    # -- the input side ----------------------------------------------------------------------

    def take(
        self, waited: Callable[[float, int], bool] | None = None, *, sliced: bool = False
    ) -> Taken | None:
        """The next batch to run, read from the input; None when the window is full or the
        input has ended. An input that raises ends the input: its error is raised by
        ``finished`` once every batch read before it was handed out.

        ``waited(seconds, items)``, for an input that may wait for its next item: the batch
        is read in doubling parts, and once a part that took ``seconds`` to read makes
        ``waited`` True (results wait meanwhile), the input trickles in (``trickles``): the
        batch is what was read so far, and every later one is a single item.

        ``sliced``: a batch of a range, a tuple or a list may be a slice of it, not a list
        (``read_slice``): a batch run lazily reads a range's items only as it runs."""
        if (
            self._exhausted
            or self._batches_out >= self._max_batches
            or self._items_out >= self._max_items
        ):
            return None
        size = self._sizer.next_size()
        items: Sequence[Any] = []
        if (
            self._sliceable
            and not self._trickles
            and (part := read_slice(self._source, size)) is not None
        ):
            items = part if sliced or type(part) is list else list(part)
            if len(items) < size:
                self._exhausted = True
        else:
            items = self._read(size, waited)
        if not items:
            return None  # (the input ended; or what it gave was sent as it waited for more)
        return self._taken(items)

    def _taken(self, items: Sequence[Any]) -> Taken:
        self._sizer.taken(len(items))
        taken = Taken(self._next_seq, self._next_index, items)
        self._next_seq += 1
        self._next_index += len(items)
        self._batches_out += 1
        self._items_out += len(items)
        return taken

    def _read(self, size: int, waited: Callable[[float, int], bool] | None) -> list[Any]:
        """Up to ``size`` items, read one by one (``take``), less those sent meanwhile."""
        items: list[Any] = []
        error: BaseException | None = None
        # A read of one item has nothing else in hand as it waits; a longer one may wait with
        # items in hand that the input waits for (a crawler's queue): it is watched.
        watched = self._watch is not None and size > 1 and not self._trickles
        if watched:
            self._hold(items)
        try:
            if self._trickles:
                self._read_one(items)
            elif waited is None or size == 1:
                items.extend(islice(self._source, size))  # keeps what was read before a failure
                if len(items) < size:
                    self._exhausted = True
            else:
                self._read_watching(items, size, waited)
        except (KeyboardInterrupt, SystemExit):
            raise  # (Ctrl-C in a read ends the map at once, as in any loop)
        except BaseException as exc:  # (any other is the input's error, raised in its turn)
            error = exc
        finally:
            sent = self._let_go() if watched else 0
        if error is not None:
            read = self._next_index + len(items) - sent  # (those sent are counted in)
            note(error, f"plait: raised by the input after {read} items")
            self._input_error = error
            self._exhausted = True
        return items[sent:] if sent else items

    def _hold(self, items: list[Any]) -> None:
        with self._hand_lock:
            self._hand, self._sent = items, 0
        assert self._watch is not None
        self._watch(items)

    def _let_go(self) -> int:
        """The watched read is over: how many of its items ``send_in_hand`` sent."""
        assert self._watch is not None
        self._watch(None)
        with self._hand_lock:
            self._hand = None
            return self._sent

    def send_in_hand(self) -> Taken | None:
        """From any thread, while ``take`` waits for the input: the items it read so far and
        not yet sent, taken as a batch of their own, ahead of the rest of its batch; None if
        it has none (or no watched read is under way). An input may wait for one of them to
        run (a crawler's queue, which each item fills): held, they would wait for good."""
        with self._hand_lock:
            if self._hand is None:
                return None
            # (``list.extend`` appends each item as the input gives it, so what a read that
            # waits has read is in its list; it only grows: a slice is what it held as we looked.)
            items = self._hand[self._sent :]
            if not items:
                return None
            self._sent += len(items)
            return self._taken(items)

    def _read_watching(
        self, items: list[Any], size: int, waited: Callable[[float, int], bool]
    ) -> None:
        """Read up to ``size`` items into ``items``, in parts of 1, 2, 4, ... items, until a
        part shows the input trickling in (``take``). (Reading a batch of 16 at once, an input
        that gives an item only once the consumer had a result waited for 16 items, each late.)
        A read that took ``READ_AT_MOST`` ends with what it has: the batch is smaller."""
        part = 1
        read_began = time.perf_counter()
        while len(items) < size:
            want = min(part, size - len(items))
            began, before = time.perf_counter(), len(items)
            items.extend(islice(self._source, want))
            if len(items) - before < want:
                self._exhausted = True
                return
            ended = time.perf_counter()
            if len(items) < size and waited(ended - began, want):
                self._trickles = True
                return
            if ended - read_began >= READ_AT_MOST:
                return
            part *= 2

    def _read_one(self, items: list[Any]) -> None:
        """The next item alone: reading on past it could wait for the input for as long as
        another item takes to come, and the results ready meanwhile with it."""
        for item in self._source:
            items.append(item)
            return
        self._exhausted = True

    def trickles(self) -> None:
        """The input was seen to trickle in (a read took long while results waited): from now
        on each batch is one item, so that the results ready meanwhile are handed out. (The
        consumer's thread reads the input: while it waits for an item the results wait too,
        but for that item only, not for a batch of them.)"""
        self._trickles = True

    @property
    def trickling(self) -> bool:
        return self._trickles

    def has_room(self) -> bool:
        """Whether ``take`` would read now: the input goes on, and the window is not full."""
        return (
            not self._exhausted
            and self._batches_out < self._max_batches
            and self._items_out < self._max_items
        )

    def out(self) -> bool:
        """Whether batches were read and not yet handed out."""
        return self._batches_out > 0

    def batches_out(self) -> int:
        """How many batches were read and not yet handed out."""
        return self._batches_out

    def ready(self) -> bool:
        """Whether a batch is ready to hand out."""
        if not self._ordered:
            return bool(self._ready_unordered)
        return self._next_to_yield in self._ready

    def unsent(self, taken: Taken, error: Exception) -> None:
        """The last batch taken could not be run (its pool shut down): the map ends after the
        batches before it, with ``error``."""
        self._next_seq -= 1
        self._next_index -= len(taken.items)
        self._batches_out -= 1
        self._items_out -= len(taken.items)
        first, last = self._next_index, self._next_index + len(taken.items) - 1
        read = f"item {first} was" if first == last else f"items {first}-{last} were"
        error.add_note(
            f"plait: the map stopped after {self._next_index} items ({read} read from the "
            "input and not run)"
        )
        self._input_error = error
        self._exhausted = True

    # -- the results side --------------------------------------------------------------------

    def done(self, batch: B, outcome: Outcome) -> bool:
        """A batch ended (from whichever thread saw it: the driver holds its lock). True if a
        batch is now ready to hand out: one ending ahead of its turn gives the reader nothing."""
        if outcome.measured:
            held = outcome.sent_bytes or _held_bytes(batch.items)
            self._sizer.observe(len(batch.items), outcome.elapsed, held)
        if self._ordered:
            self._ready[batch.seq] = (batch, outcome)
            return batch.seq == self._next_to_yield
        self._ready_unordered.append((batch, outcome))
        return True

    def pop(self) -> tuple[B, Outcome] | None:
        """The next batch to hand out, if it is ready: in input order, or as they ended."""
        if not self._ordered:
            entry = self._ready_unordered.popleft() if self._ready_unordered else None
        else:
            entry = self._ready.pop(self._next_to_yield, None)
            if entry is not None:
                self._next_to_yield += 1
        if entry is not None:
            self._batches_out -= 1
            self._items_out -= len(entry[0].items)
        return entry

    def finished(self) -> bool:
        """True when every batch was handed out and the input has ended; raises the input's
        own error (after the last batch read before it) if it ended with one."""
        if not self._exhausted or self._batches_out:
            return False
        if self._input_error is not None:
            raise self._input_error
        return True

    def clear(self) -> None:
        """Forget the results not yet handed out (the map was closed)."""
        self._ready.clear()
        self._ready_unordered.clear()

    def with_errors(self, batch: Batch, outcome: Outcome) -> Iterator[Any]:
        """The values of a batch that holds failures, one by one (a batch without any hands
        out ``outcome.values`` as they are). A failed item's exception gets a note naming the
        item, and is raised (``errors="raise"``) or handed out in the value's place. Values
        leave the batch as they are handed out (see ``_scheduler.stream``)."""
        values = outcome.values
        values.reverse()
        items = _ItemsShown(batch.items)
        for offset in range(len(values)):
            exc = outcome.errors.get(offset)
            if exc is None:
                yield values.pop()
                continue
            values.pop()  # the failed item's placeholder
            index = batch.first_index + offset
            if any(note.startswith("plait: ") for note in getattr(exc, "__notes__", ())):
                copied = copy_error(exc)  # one exception object raised for several items
                if copied is not exc:
                    exc = copied
                    exc.__notes__ = [n for n in exc.__notes__ if not n.startswith("plait: raised")]
            item = items.describe(offset)
            note(
                exc,
                f"plait: raised by item {index}: {item}"
                if outcome.ran
                else f"plait: item {index} was not run: {item}",
            )
            # (Ctrl-C or SystemExit from an item is never a value: it ends the map here.)
            if self._raise or isinstance(exc, KeyboardInterrupt | SystemExit):
                raise exc
            yield exc


def _held_bytes(items: Sequence[Any]) -> int:
    """About what a batch's items take in memory, as ``sys.getsizeof`` sees its first (a
    buffer's bytes, a container's shell): so that quick work on large items (``len`` of
    100 KB chunks) does not grow batches of thousands of them, held at once (224 MB for what
    the builtin ``map`` holds in 8). A process map measures what it sent instead."""
    if not items or not isinstance(items, list | tuple | range):  # (no pickles unpickled)
        return 0
    try:
        return sys.getsizeof(items[0]) * len(items)
    except Exception:  # (a __sizeof__ of the user's that fails: the item is not counted)
        return 0


# The iterators of what is in memory already: taking an item from one never waits.
_INSTANT: frozenset[type] = frozenset(
    map(
        type,
        (
            iter([]),
            iter(()),
            iter(range(0)),
            iter(range(1 << 64)),
            iter({}),
            iter({}.values()),
            iter({}.items()),
            iter(set()),
            iter(""),
            iter(b""),
            iter(bytearray()),
            reversed([]),
        ),
    )
)


# The iterators of a list, a tuple or a range: their pickle protocol (``__reduce__`` and
# ``__setstate__``) says what they iterate over and where they are, and moves them on.
_SLICEABLE: frozenset[type] = frozenset(
    map(type, (iter([]), iter(()), iter(range(0)), iter(range(1 << 64))))
)


def read_slice(source: Iterator[Any], size: int) -> Sequence[Any] | None:
    """The next ``size`` items (fewer at the end) of a list's, a tuple's or a range's
    iterator, as one slice of what it iterates over, the iterator moved past them; None for
    any other iterator. What reading them one by one would give, at a fraction of the cost: a
    list's or a tuple's slice copies pointers, a range's makes no item at all (200,000 tiny
    items run inline took 10 % longer than the builtin ``map``, read item by item).

    Only for an iterator no other thread reads: its position is read, then set, and a read
    by another thread between the two would be given out twice (or, a range's on Python
    3.12+, skipped). Reading item by item (``islice`` into a list) runs no Python code, so no
    other thread runs in the middle of a batch's read."""
    if type(source) not in _SLICEABLE:
        return None
    reduced = source.__reduce__()
    sequence, state = reduced[1][0], reduced[2] if len(reduced) > 2 else None
    if type(sequence) not in (list, tuple, range) or not isinstance(state, int | None):
        return None  # (not the protocol this was written for: read item by item)
    # The state is the index into the sequence (list, tuple; a range before Python 3.12)
    # or None: the sequence is what remains (a range since 3.12, which moves on relatively).
    start = state or 0
    items: Sequence[Any] = sequence[start : start + size]
    if items:
        moved = start + len(items) if state is not None else len(items)
        source.__setstate__(moved)  # type: ignore[attr-defined]
    # At the end, read on item by item: it ends the iterator for good (a list's would
    # otherwise give what the list gains later), and takes what a list gained meanwhile.
    if len(items) < size and (more := list(islice(source, size - len(items)))):
        items = [*items, *more]
    return items


def instant(source: Iterator[Any]) -> bool:
    """Whether reading ``source`` never waits: it iterates over what is in memory (a list, a
    range...), not a generator, a file or a socket."""
    return type(source) in _INSTANT


def sliceable_input(iterables: tuple[Iterable[Any], ...]) -> bool:
    """Whether ``open_input`` makes an iterator that only plait reads over a list, a tuple
    or a range (not a subclass: its own ``__getitem__`` would not be what iteration gives),
    which ``read_slice`` may read: the caller gave the sequence, not an iterator of its own."""
    return len(iterables) == 1 and type(iterables[0]) in (list, tuple, range)


def open_input(iterables: tuple[Iterable[Any], ...], where: str) -> Iterator[Any]:
    """The items of a map: those of one iterable, or tuples of one item of each."""
    if len(iterables) == 1:
        return iter(iterables[0])
    return _zip_equal(iterables, where)


def _zip_equal(iterables: tuple[Iterable[Any], ...], where: str) -> Iterator[tuple[Any, ...]]:
    try:
        yield from zip(*iterables, strict=True)
    except ValueError as exc:
        # zip's own complaint is raised in this frame; an input's ValueError comes from deeper.
        tb = exc.__traceback__
        if tb is None or tb.tb_next is not None or not str(exc).startswith("zip() argument"):
            raise
        raise ValueError(
            f"{where}: the iterables have different lengths ({exc}); pass iterables of equal "
            "length (cut the longer ones with itertools.islice if that is what you mean)"
        ) from None


class _ItemsShown:
    """A batch's items, as its failed items' notes show them (``describe``).

    A batch that went to a process keeps its items as the pickle they were sent as
    (``SentItems``), and each index into that loads the whole batch again: a batch of n
    failures took n loads of n items. They are loaded once, at the first failure; a load that
    fails leaves every item unshown, for the same reason (loading runs the items' own code).
    """

    __slots__ = ("_items", "_loaded", "_unloadable")

    def __init__(self, items: Sequence[Any]) -> None:
        self._items = items
        self._loaded = type(items) in (list, tuple, range)  # indexed at no cost
        self._unloadable: str | None = None  # the error that loading them raised

    def describe(self, offset: int) -> str:
        """``describe_item`` of the item at ``offset``, whatever that raises: the item's repr
        is its own code, and so is loading it. A failure there costs the note its item, never
        the item its error."""
        if not self._loaded:
            self._load()
        if self._unloadable is not None:
            return f"<it could not be shown: {self._unloadable}>"
        try:
            return describe_item(self._items[offset])
        except KeyboardInterrupt:  # (perhaps the program's Ctrl-C: this is the consumer's thread)
            raise
        except BaseException as exc:
            return f"<it could not be shown: {type(exc).__name__}>"

    def _load(self) -> None:
        self._loaded = True
        try:
            self._items = list(self._items)
        except KeyboardInterrupt:  # (as above)
            raise
        except BaseException as exc:
            self._unloadable = type(exc).__name__


def describe_item(item: object) -> str:
    try:
        return _short.repr(item)
    except Exception:
        return f"<{type(item).__name__} object>"
