"""Where ``plait run``'s inputs come from, read lazily: an endless stdin starts jobs at once.

A source is a list of arguments (``::: a b``), a file of lines (``:::: file``, ``-a file``;
``-`` is stdin) or, when none is given, stdin. Several sources make every combination, the
first varying slowest (as nested loops); a source written ``:::+``/``::::+`` is linked to the
one before instead: their values pair up, as many pairs as the shorter has. Only the first
source is read as jobs go; the others are read once, whole.
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Generic, TypeVar

from ._usage import UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    values: list[str] | None = None  # ::: arguments
    path: str | None = None  # :::: or -a: a file of lines, "-" for stdin
    linked: bool = False  # :::+ / ::::+: paired with the source before


def records(stream: BinaryIO, separator: bytes) -> Iterator[str]:
    """The stream's records (lines, or NUL-separated with ``-0``), as they arrive."""
    if separator == b"\n":
        for line in stream:
            yield line.removesuffix(b"\n").decode(errors="surrogateescape")
        return
    pending = b""
    while chunk := stream.read1(65536):  # type: ignore[attr-defined]  # (a BufferedReader)
        pending += chunk
        *done, pending = pending.split(separator)
        for record in done:
            yield record.decode(errors="surrogateescape")
    if pending:
        yield pending.decode(errors="surrogateescape")


def _values(source: Source, separator: bytes) -> Iterator[str]:
    if source.values is not None:
        if separator != b"\n":
            yield from source.values
            return
        for value in source.values:  # (lines, as GNU parallel reads them: ::: $'a\nb' is two)
            yield from value.split("\n")
        return
    assert source.path is not None
    try:
        if source.path == "-":
            if sys.stdin is not None:  # (None: plait was started with its stdin closed)
                # (A reader of its own, not sys.stdin's: a thread may wait in it for a line
                # while plait exits, and Python's exit closes sys.stdin, which would then wait
                # too.)
                with open(sys.stdin.fileno(), "rb", closefd=False) as stream:
                    yield from records(stream, separator)
            return
        with open(source.path, "rb") as stream:
            yield from records(stream, separator)
    except OSError as error:  # (a read that fails midway: the device, a directory)
        name = "standard input" if source.path == "-" else source.path
        raise UsageError(f"cannot read {name}: {error.strerror or error}") from None


# What GNU parallel's --trim takes away: Perl's \s on bytes, ASCII white space only (not
# str.strip()'s default, which also takes \x1c-\x1f, \x85, a no-break space, an em space...).
WHITE_SPACE = " \t\n\v\f\r"


def arguments(
    sources: list[Source],
    *,
    separator: bytes = b"\n",
    colsep: str | None = None,
    trim: str = "n",
) -> Iterator[tuple[str, ...]]:
    """Each job's arguments, in order: one value per source (or its columns, with
    ``colsep``), trimmed of white space as ``trim`` says (GNU parallel's --trim: ``n`` none,
    ``l`` on the left, ``r`` on the right, ``lr`` or ``rl`` both)."""
    if not sources:
        sources = [Source(path="-")]
    groups: list[list[Source]] = []  # a source and those linked to it
    for source in sources:
        if source.linked and groups:
            groups[-1].append(source)
        else:
            groups.append([source])
    several = len(sources) > 1
    streams = [_linked(group, separator, several) for group in groups]
    rest = [list(stream) for stream in streams[1:]]  # (read once: they repeat)
    split = columns(colsep) if colsep is not None else None
    for first in streams[0]:
        for others in itertools.product(*rest):
            values = tuple(itertools.chain(first, *others))
            if split is not None:
                values = tuple(column for value in values for column in split(value))
            if trim != "n":
                values = tuple(_trimmed(value, trim) for value in values)
            yield values


# The POSIX classes of a bracket expression (``[[:space:]]+``), which Perl's regular expressions
# know and Python's do not (it read ``[:space:]`` as the characters ":space", with a warning).
POSIX_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r" \t\n\r\f\v",
    "blank": r" \t",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "xdigit": "0-9A-Fa-f",
    "word": "a-zA-Z0-9_",
    "cntrl": r"\x00-\x1f\x7f",
    "print": r"\x20-\x7e",
    "graph": r"\x21-\x7e",
}


def perl_pattern(colsep: str) -> re.Pattern[bytes]:
    """``--colsep`` read as GNU parallel's Perl reads it, on bytes: ``\\s``, ``\\d`` and
    ``\\w`` are ASCII only (not a no-break space, nor Arabic-Indic digits), and the POSIX
    classes are known. Raises ``re.error``."""
    pattern = re.sub(r"\[:(\w+):\]", lambda match: POSIX_CLASSES.get(match[1], match[0]), colsep)
    return re.compile(pattern.encode(errors="surrogateescape"))


def columns(colsep: str) -> Callable[[str], list[str]]:
    """A value's columns, split as Perl's ``split`` does: its groups' text kept between them,
    and no empty match where the last match ended (at the start, no empty first column)."""
    pattern = perl_pattern(colsep)

    def split(value: str) -> list[str]:
        data = value.encode(errors="surrogateescape")
        fields: list[bytes] = []
        start = 0
        for match in pattern.finditer(data):
            begin, end = match.span()
            if begin == end and (begin == start or end == len(data)):
                continue
            fields.append(data[start:begin])
            fields.extend(group or b"" for group in match.groups())
            start = end
        fields.append(data[start:])
        return [field.decode(errors="surrogateescape") for field in fields]

    return split


def _trimmed(value: str, trim: str) -> str:
    if "l" in trim:
        value = value.lstrip(WHITE_SPACE)
    if "r" in trim:
        value = value.rstrip(WHITE_SPACE)
    return value


def _linked(group: list[Source], separator: bytes, several: bool) -> Iterable[tuple[str, ...]]:
    """The values of linked sources, paired (as many as the shortest has). Among ``several``
    sources, one that is empty has one empty value, as GNU parallel's (``::: a b :::`` runs
    a and b, with an empty second value; alone, it runs nothing)."""
    values = (_values(source, separator) for source in group)
    return zip(*(map(_or_one_empty, values) if several else values), strict=False)


def _or_one_empty(values: Iterator[str]) -> Iterator[str]:
    empty = True
    for value in values:
        empty = False
        yield value
    if empty:
        yield ""


def may_wait(sources: list[Source]) -> bool:
    """Whether reading the sources may wait on a writer: stdin (the default source), or a
    file that is not a regular one (a pipe, a FIFO, ``<(command)``)."""
    return not sources or any(
        source.path is not None and (source.path == "-" or not _regular(source.path))
        for source in sources
    )


def _regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # (the reading will say what is wrong)
        return True


class ReadOnAThread(Generic[T]):
    """An iterator's items, read on a thread of its own, a few ahead: whoever takes them never
    waits for the next (``take`` says when there is none yet), and can wait for one in a
    ``poll`` on ``fd``, which becomes readable as each is read.

    (plait run's loop must go on while a line is awaited: end the jobs whose time is up,
    write the outputs of those that ended.) The thread is a daemon: one waiting for a line
    at the end is left to the process's exit."""

    AHEAD = 256  # items read ahead at most (an endless input is not read into memory)

    def __init__(self, items: Iterator[T]) -> None:
        self._items = items
        self._queue: queue.Queue[T | _End] = queue.Queue(self.AHEAD)
        self.fd, self._wake = os.pipe()
        os.set_blocking(self.fd, False)
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="plait run: inputs", daemon=True)
        self._thread.start()

    def take(self) -> T | None:
        """The next item; None if it is not read yet; ``StopIteration`` after the last (or
        the error that ended the reading)."""
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return None
        if isinstance(item, _End):
            self._queue.put(item)  # (asked again, it says so again)
            if item.error is not None:
                raise item.error
            raise StopIteration
        return item

    def woken(self) -> None:
        """``fd`` was readable: empty it (the items are in the queue)."""
        while True:
            try:
                if not os.read(self.fd, 4096):
                    return
            except BlockingIOError:
                return

    def close(self) -> None:
        """Stop reading: the thread ends after the item it reads (at once if it waits to hand
        one over)."""
        self._closed = True
        while True:  # (a thread waiting for room in the queue gets it, and sees it is closed)
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        os.close(self.fd)
        if not self._thread.is_alive():
            self._thread.join()

    def _read(self) -> None:
        end = _End()
        try:
            for item in self._items:
                if self._closed:
                    return
                self._queue.put(item)
                self._woke()
        except BaseException as error:  # (handed to the taker, who raises it)
            end.error = error
        finally:
            if not self._closed:
                self._queue.put(end)
                self._woke()
            os.close(self._wake)

    def _woke(self) -> None:
        try:
            os.write(self._wake, b"!")
        except OSError:  # (closed: no one takes any more)
            pass


class _End:
    """The end of the items (and the error that ended them, if one did)."""

    error: BaseException | None = None
