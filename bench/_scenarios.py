"""The scenarios: what each maps, at which sizes, with which peers, and plait's target there."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

from _libs import LIBS, Kind
from _tasks import IO_LATENCY

Goal = Literal["vs_serial", "vs_best_peer", "of_ideal", "endless"]

NO_SERIAL = tuple(lib for lib in LIBS if lib != "serial")
THREAD_LIBS = tuple(lib for lib in LIBS if lib != "plait-fork")  # fork is about processes
THREAD_NO_SERIAL = tuple(lib for lib in THREAD_LIBS if lib != "serial")
POOL_MAP_CHUNKS = 0  # a Scenario's chunksize: Pool.map's heuristic, len / (4 x workers)


@dataclass(frozen=True)
class Scenario:
    """One table of the report: every library in `libs` runs the same map."""

    name: str
    title: str
    what: str
    mode: Literal["map", "endless"]
    kind: Kind
    task: str
    n: int
    quick_n: int
    workers: int | None
    chunksize: int
    """Chunk size given to the peers that take one (plait chooses its own); ``POOL_MAP_CHUNKS``:
    the one ``multiprocessing.Pool.map`` would choose by itself."""
    libs: tuple[str, ...]
    goal: Goal
    limit: float
    """The goal's number: a ratio for `vs_*`, a percentage for `of_ideal`, MiB for `endless`."""

    def size(self, quick: bool) -> int:
        return self.quick_n if quick else self.n

    def peer_chunksize(self, quick: bool) -> int:
        if self.chunksize != POOL_MAP_CHUNKS:
            return self.chunksize
        chunks, extra = divmod(self.size(quick), 4 * (self.workers or 1))  # as Pool.map does
        return chunks + bool(extra)

    @property
    def target(self) -> str:
        if self.goal == "vs_serial":
            return f"plait ≤ {self.limit:g}x serial"
        if self.goal == "vs_best_peer":
            if self.limit == 1:
                return "plait at least as fast as the fastest peer"
            return f"plait within {self.limit:g}x of the fastest peer"
        if self.goal == "of_ideal":
            return f"plait ≥ {self.limit:g} % of ideal"
        return f"read-ahead bounded, peak RSS growth ≤ {self.limit:g} MiB"


SCENARIOS = (
    Scenario(
        "tiny-threads",
        "Tiny tasks on threads",
        "`x * 2` per item: pure per-item overhead; builtin `map` is the baseline.",
        "map", "thread", "double", 200_000, 20_000, None, 1_000,
        THREAD_LIBS, "vs_serial", 3,
    ),
    Scenario(
        "tiny-processes",
        "Tiny tasks on processes",
        "`x * 2` per item on 2 processes: chunking and pickling overhead; the peers get the "
        "chunk size `Pool.map` picks by itself (N / 8).",
        "map", "process", "double", 1_000_000, 100_000, 2, POOL_MAP_CHUNKS,
        LIBS, "vs_best_peer", 1,
    ),
    Scenario(
        "io",
        "I/O-bound tasks on 64 threads",
        f"`time.sleep({IO_LATENCY})` per item; ideal = items x latency / workers.",
        "map", "thread", "sleep", 2_000, 640, 64, 1,
        THREAD_NO_SERIAL, "of_ideal", 97,
    ),
    Scenario(
        "cpu",
        "CPU-bound tasks on 2 processes",
        "~5 ms of pure Python per item; ideal = serial time (measured in this run) / 2.",
        "map", "process", "spin", 400, 60, 2, 1,
        LIBS, "of_ideal", 97,
    ),
    Scenario(
        "endless-threads",
        "Endless input on threads",
        "`x * 2` over an endless counting generator; take the first N results, then stop.",
        "endless", "thread", "double", 200_000, 20_000, None, 1_000,
        THREAD_LIBS, "endless", 5,
    ),
    Scenario(
        "endless-processes",
        "Endless input on processes",
        "`x * 2` over an endless counting generator on 2 processes; first N results, then stop.",
        "endless", "process", "double", 1_000_000, 100_000, 2, 10_000,
        LIBS, "endless", 5,
    ),
    Scenario(
        "payload",
        "1 MB payloads to 2 processes",
        "N `bytes` of 1 MB each (built before timing), the task returns `len(b)`.",
        "map", "process", "payload", 300, 40, 2, 1,
        NO_SERIAL, "vs_best_peer", 1,
    ),
    Scenario(
        "cold-processes",
        "Cold start + one task, processes",
        "Create a pool of 2 processes, run one trivial task, shut down (imports not timed).",
        "map", "process", "double", 1, 1, 2, 1,
        NO_SERIAL, "vs_best_peer", 2,
    ),
    Scenario(
        "cold-threads",
        "Cold start + one task, threads",
        "Create a pool of 2 threads, run one trivial task, shut down.",
        "map", "thread", "double", 1, 1, 2, 1,
        THREAD_NO_SERIAL, "vs_best_peer", 2,
    ),
)  # fmt: skip

GROUPS = {
    "tiny": ("tiny-threads", "tiny-processes"),
    "endless": ("endless-threads", "endless-processes"),
    "cold": ("cold-processes", "cold-threads"),
}

PAYLOAD_BYTES = 1_000_000
CPU_TASK_SECONDS = 0.005
SAMPLE_EVERY = 1_000


def select(only: str | None) -> list[Scenario]:
    """The scenarios named in `only` (comma-separated names or groups), or all of them."""
    if not only:
        return list(SCENARIOS)
    wanted: set[str] = set()
    for name in only.split(","):
        wanted.update(GROUPS.get(name.strip(), (name.strip(),)))
    known = {s.name for s in SCENARIOS}
    unknown = wanted - known
    if unknown:
        choices = ", ".join([*sorted(known), *GROUPS])
        raise ValueError(f"unknown scenario {', '.join(sorted(unknown))} (choose from {choices})")
    return [s for s in SCENARIOS if s.name in wanted]


@dataclass
class Outcome:
    """Every run of one library in one scenario."""

    lib: str
    label: str
    settings: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    failure: str | None = None

    @property
    def seconds(self) -> float | None:
        if self.failure or not self.runs:
            return None
        return statistics.median(float(run["seconds"]) for run in self.runs)

    @property
    def spread(self) -> float | None:
        """(slowest - fastest run) / median: how noisy the median is."""
        median = self.seconds
        if median is None or len(self.runs) < 2:
            return None
        times = [float(run["seconds"]) for run in self.runs]
        return (max(times) - min(times)) / median


@dataclass
class Table:
    """One scenario's outcomes, in the order of `scenario.libs`."""

    scenario: Scenario
    n: int
    outcomes: dict[str, Outcome]
    note: str = ""
