"""``plait run``'s standard output and error, as bytes, and ``plait map``'s output, as text:
nowhere when plait was started with one of them closed (Python then has none: ``sys.stdout``
is None), as a shell's ``>&-`` leaves it. The work still runs; what it writes there is
dropped."""

from __future__ import annotations

from typing import Protocol, TextIO


class Output(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...

    def flush(self) -> None: ...


class TextOutput(Protocol):
    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class NowhereText:
    """A standard stream plait has none of, written text."""

    def write(self, text: str, /) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class Nowhere:
    """A standard stream plait has none of."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def binary(stream: TextIO | None) -> Output:
    """The stream's bytes, or nowhere if there is no stream."""
    return Nowhere() if stream is None else stream.buffer


def text(stream: TextIO | None) -> TextOutput:
    """The stream, or nowhere if there is no stream."""
    return NowhereText() if stream is None else stream
