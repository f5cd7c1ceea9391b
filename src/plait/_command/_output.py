"""What ``plait run`` writes of a job's output: whole when it ends (``--group``, the default),
whole lines as they come (``--line-buffer``), or nothing (``--ungroup``: the job wrote to
plait's own output itself); each line after the job's input with ``--tag``."""

from __future__ import annotations

import sys

from ._job import Job
from ._streams import Output as BinaryOutput
from ._streams import binary


class Output:
    def __init__(self, mode: str, tag: bool) -> None:
        self.mode = mode  # "group", "line-buffer" or "ungroup"
        self._tag = tag
        self.stdout = binary(sys.stdout)  # (nowhere if plait was started with it closed)
        self.stderr = binary(sys.stderr)

    def whole(self, job: Job) -> None:
        """What the job wrote and is not written yet (with --line-buffer, its last line if
        unended, and with --keep-order all that came before its turn)."""
        if self.mode == "ungroup":
            return
        for data, stream in ((job.out, self.stdout), (job.err, self.stderr)):
            if data:
                self._write(stream, job, data, len(data))
                data.clear()

    def lines(self, job: Job, is_out: bool, new: int | None = None) -> None:
        """The whole lines the job wrote so far on stdout (``is_out``) or stderr; ``new``: only
        its last ``new`` bytes are new (a line's end is looked for in them alone: looked for in
        all that waited, a 200 MB line took 27 s)."""
        data = job.out if is_out else job.err
        end = data.rfind(b"\n", 0 if new is None else max(0, len(data) - new)) + 1
        if end:
            self._write(self.stdout if is_out else self.stderr, job, data, end)
            del data[:end]

    def _write(self, stream: BinaryOutput, job: Job, data: bytearray, end: int) -> None:
        """Write ``data[:end]``, tagged: untagged, as it is, not copied first (a copy, and
        another of a slice, held two more of a job's output at its end: 600 MB for a job's
        200 MB with --line-buffer)."""
        if self._tag:
            stream.write(self.tagged(job, data[:end]))
        else:
            with memoryview(data) as view, view[:end] as part:
                stream.write(part)
        stream.flush()

    def tagged(self, job: Job, data: bytes | bytearray) -> bytes:
        if not self._tag:
            return bytes(data)
        tag = " ".join(job.args).encode(errors="surrogateescape") + b"\t"
        lines = bytes(data).splitlines(keepends=True)
        return b"".join(tag + line for line in lines)

    def warn(self, message: str) -> None:
        self.stderr.write(f"plait run: warning: {message}\n".encode())
        self.stderr.flush()
