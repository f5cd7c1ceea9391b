"""``plait run``'s standard output and error, as bytes: nowhere when plait was started with
one of them closed (Python then has none: ``sys.stdout`` is None), as a shell's ``>&-``
leaves it. The jobs still run; what they write there is dropped."""

from __future__ import annotations

from typing import Protocol, TextIO


class Output(Protocol):
    def write(self, data: bytes | bytearray, /) -> int: ...

    def flush(self) -> None: ...


class Nowhere:
    """A standard stream plait has none of."""

    def write(self, data: bytes | bytearray, /) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def binary(stream: TextIO | None) -> Output:
    """The stream's bytes, or nowhere if there is no stream."""
    return Nowhere() if stream is None else stream.buffer
