"""Where ``plait run``'s inputs come from, read lazily: an endless stdin starts jobs at once.

A source is a list of arguments (``::: a b``), a file of lines (``:::: file``, ``-a file``;
``-`` is stdin) or, when none is given, stdin. Several sources make every combination, the
first varying slowest (as nested loops); a source written ``:::+``/``::::+`` is linked to the
one before instead: their values pair up, as many pairs as the shorter has. Only the first
source is read as jobs go; the others are read once, whole.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO


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
        yield from source.values
        return
    assert source.path is not None
    if source.path == "-":
        if sys.stdin is not None:  # (None: plait was started with its stdin closed)
            yield from records(sys.stdin.buffer, separator)
        return
    with open(source.path, "rb") as stream:
        yield from records(stream, separator)


def arguments(
    sources: list[Source], *, separator: bytes = b"\n", colsep: str | None = None
) -> Iterator[tuple[str, ...]]:
    """Each job's arguments, in order: one value per source (or its columns, with
    ``colsep``)."""
    if not sources:
        sources = [Source(path="-")]
    groups: list[list[Source]] = []  # a source and those linked to it
    for source in sources:
        if source.linked and groups:
            groups[-1].append(source)
        else:
            groups.append([source])
    streams = [_linked(group, separator) for group in groups]
    rest = [list(stream) for stream in streams[1:]]  # (read once: they repeat)
    split = re.compile(colsep) if colsep is not None else None
    for first in streams[0]:
        for others in itertools.product(*rest):
            values = tuple(itertools.chain(first, *others))
            if split is not None:
                values = tuple(column for value in values for column in split.split(value))
            yield values


def _linked(group: list[Source], separator: bytes) -> Iterable[tuple[str, ...]]:
    """The values of linked sources, paired (as many as the shortest has)."""
    return zip(*(_values(source, separator) for source in group), strict=False)
