"""``--joblog``: a line per finished job in GNU parallel's nine tab-separated columns, written
(and flushed) as the job's output is (with ``--keep-order``, in the jobs' order), so that a
``plait run`` killed outright loses no job it wrote; ``--resume`` and ``--resume-failed`` read
it back to skip what ran."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from ._job import Job
    from ._options import RunOptions
    from ._streams import Output

HEADER = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"


class JobLog:
    def __init__(self, stream: Output, skip: frozenset[int], file: BinaryIO | None) -> None:
        self._stream = stream
        self._file = file  # (the log's file, closed at the end; None: standard output, not ours)
        self.skip = skip  # the jobs (by number) not to run again

    @classmethod
    def open(cls, options: RunOptions, stdout: Output) -> JobLog:
        assert options.joblog is not None
        path = options.joblog
        if path == "-":  # standard output, between the jobs' outputs, as GNU parallel's
            stdout.write(HEADER.encode())
            stdout.flush()
            return cls(stdout, frozenset(), None)
        skip = cls.skipped(options)
        resuming = options.resume or options.resume_failed
        stream = open(path, "ab" if resuming else "wb")  # noqa: SIM115 (closed by close())
        if stream.tell() == 0:
            stream.write(HEADER.encode())
            stream.flush()
        return cls(stream, skip, stream)

    @staticmethod
    def skipped(options: RunOptions) -> frozenset[int]:
        """The jobs (by number) that ``--resume`` (``--resume-failed``) skips: those the log
        says ran (succeeded)."""
        path = options.joblog
        if path is None or path == "-" or not (options.resume or options.resume_failed):
            return frozenset()
        if not os.path.exists(path):
            return frozenset()
        return _finished(path, succeeded_only=options.resume_failed)

    def write(self, job: Job) -> None:
        runtime = job.runtime
        command = job.command.replace("\n", "\0")  # (as GNU parallel's: one line a job)
        line = (
            f"{job.seq}\t:\t{job.started:.3f}\t{runtime:10.3f}\t0\t{job.received}\t"
            f"{job.exitval}\t{job.signal}\t{command}\n"
        )
        self._stream.write(line.encode(errors="surrogateescape"))
        self._stream.flush()  # (a kill -9 of plait loses no finished job)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _finished(path: str, *, succeeded_only: bool) -> frozenset[int]:
    done: set[int] = set()
    with open(path, "rb") as stream:
        for line in stream:
            columns = line.split(b"\t")
            if len(columns) < 9 or not columns[0].isdigit():
                continue  # (the header, or a line cut short by a kill)
            if succeeded_only and (columns[6] != b"0" or columns[7] != b"0"):
                continue
            done.add(int(columns[0]))
    return frozenset(done)
