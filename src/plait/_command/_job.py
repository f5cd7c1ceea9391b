"""One job of ``plait run``: its input, its process, its output so far, how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Job:
    seq: int
    args: tuple[str, ...]
    command: str
    tries: int = 0
    slot: int = 0
    pid: int = 0
    started: float = 0.0  # time.time(), for the job log
    began: float = 0.0  # time.monotonic()
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    received: int = 0  # bytes of output on stdout, for the job log
    pipes: dict[int, bool] = field(default_factory=dict)  # open read ends: fd -> is stdout
    pidfd: int = -1
    exitval: int = 0
    signal: int = 0
    ended: bool = False
    killing: float = 0.0  # when SIGKILL follows the SIGTERM sent (0: none sent)
    runtime: float = 0.0  # seconds from its start to its end, for the job log
    timed_out: bool = False
    halted: bool = False  # ended by --halt now

    @property
    def failed(self) -> bool:
        return self.exitval != 0 or self.signal != 0

    @property
    def status(self) -> int:
        """Its exit status, as a shell would say it: its exit value (a job --timeout ended
        has -1, and exit(-1) is 255), or 128 + the signal that ended it; 0 if it succeeded."""
        if self.exitval:
            return self.exitval % 256
        return 128 + self.signal if self.signal else 0
