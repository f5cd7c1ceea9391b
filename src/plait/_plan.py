"""What ``backend="auto"`` decides, and why: pure functions of what the first items measured.

The rule every tutorial teaches (threads for I/O-bound work, processes for CPU-bound work) is
applied here to measurements rather than guesses:

- a function that spends most of its time waiting (its thread's CPU time is a small share of
  its wall time) runs on threads: they wait side by side at no cost;
- one that computes, and releases the GIL while it does (hashlib, zlib, NumPy), runs on
  threads too, one per core: two of them really use two cores, and nothing is pickled;
- one that computes while holding the GIL runs on processes, one per core, when its function
  and items can travel to a process and there is more than one core to use;
- work so small per item that handing it to anything costs more than doing it runs inline, in
  the thread that iterates over the results (the builtin ``map``, batched);
- on a free-threaded build with the GIL off, threads compute in parallel: never processes.

Nothing here starts a thread or reads a clock: ``_auto`` measures and applies.
"""

from __future__ import annotations

from dataclasses import dataclass

# A function is waiting, not computing, when its thread's CPU time is below this share of its
# wall time, measured alone (no thread of ours held the GIL meanwhile). Waiting work (I/O,
# sleeps) stays under a few per cent; computing work stays above this even on a machine so
# busy that it gets a third of a core.
WAITING_BELOW = 0.3
# Two threads started together compute more than this many cores' worth only if the work
# releases the GIL: holding it, they take turns, one asleep while the other computes. (Counted
# from the time each slept, not the CPU time each got: a busy machine that lends them one core
# between them does not make work that releases the GIL look as if it held it.)
PARALLEL_ABOVE = 1.2
# Per item, below this, the hand-off to another thread or process costs more than the work:
# run inline. (A batch costs threads about 10 µs, processes about 0.3 µs an item in the parent.)
INLINE_BELOW = 5e-6
# ... and below this when each item travels alone (a task_timeout gives each its own task):
# then every item pays a hand-off of its own, 10-20 µs to a thread, more to a process.
ALONE_TINY_BELOW = 5e-5
# Work left below this (when the input's length is known) does not pay for starting processes.
PROCESS_START_PAYS_ABOVE = 0.1
# Threads for waiting work at first; then the adaptive limit (``_width``) decides.
WAITING_THREADS = 32


@dataclass(frozen=True)
class Plan:
    """Where a map runs (``backend``: "thread", "process", "inline" or "async"), how wide
    (``workers``), and why (``reason``), in words a person reads. ``adaptive``: the width
    follows the work's throughput and latency (``_width``); ``workers`` is the present one."""

    backend: str
    workers: int
    reason: str
    adaptive: bool = False

    def __str__(self) -> str:
        where = "inline" if self.backend == "inline" else f"{self.backend} x {self.workers}"
        if self.adaptive:
            where += " (adapting)"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Measured:
    """What the probe saw of the function on threads.

    ``share``: the thread's CPU time over its wall time, for batches run alone;
    ``per_item``: wall seconds per item, alone; ``parallel``: the cores' worth that two threads
    computed, running a batch each from the same moment: 2 less the share of the time they
    overlapped that one of them slept (None if not measured: waiting work, one core). Times a
    thread waited for a core (a busy machine) are left out of all three.
    """

    items: int
    share: float
    per_item: float
    parallel: float | None = None


@dataclass(frozen=True)
class Situation:
    """What the decision depends on besides the measurements."""

    cores: int
    gil: bool  # False on a free-threaded build running with the GIL off
    travels: bool  # the function and the first items pickle for a worker process
    why_not: str = ""  # if they do not: what would not pickle
    remaining: int | None = None  # items left, when the input's length is known
    process_workers: int | None = None  # the number a process pool would start
    can_inline: bool = True  # False when an item has a task_timeout: inline cannot stop it
    items_travel_alone: bool = False  # True when an item has a task_timeout: a task each


def _tiny_below(situation: Situation) -> float:
    return ALONE_TINY_BELOW if situation.items_travel_alone else INLINE_BELOW


def needs_parallel_probe(measured: Measured, situation: Situation) -> bool:
    """Whether the decision needs two threads run at once: only for computing work that is
    not tiny, on more than one core, with the GIL on (does it release the GIL?), and with
    enough of it left to be worth starting processes for."""
    return (
        measured.share >= WAITING_BELOW
        and measured.per_item >= _tiny_below(situation)
        and situation.cores > 1
        and situation.gil
        and not _little_left(measured, situation)
    )


def _little_left(measured: Measured, situation: Situation) -> bool:
    """Whether the work left (when the input's length is known) is too little to pay for
    starting processes."""
    if situation.remaining is None:
        return False
    return situation.remaining * measured.per_item < PROCESS_START_PAYS_ABOVE


def tiny_plan(measured: Measured, *, can_inline: bool, alone: bool) -> Plan | None:
    """The plan of work so small per item that nothing else matters (the machine's cores
    neither: reading a cgroup's quota would cost a map of tiny items much of its time), or
    None. An item over in microseconds gains nothing from running beside others, whatever it
    does meanwhile. (And a tiny batch is easily kept from the GIL by other threads for longer
    than it runs: its share of CPU says little, its time per item more.)"""
    if measured.per_item >= (ALONE_TINY_BELOW if alone else INLINE_BELOW):
        return None
    per_item = _duration(measured.per_item)
    if not can_inline:
        return Plan(
            "thread",
            1,
            f"{per_item} an item, too little to hand to several workers; one thread, not "
            "yours: task_timeout (or timeout) needs a worker it can give up on",
        )
    return Plan(
        "inline",
        1,
        f"{per_item} an item: handing items to other workers would cost more than "
        "running them here",
    )


def decide(measured: Measured, situation: Situation) -> Plan:
    """Where the rest of the map runs. See the module's docstring for the rules."""
    tiny = tiny_plan(measured, can_inline=situation.can_inline, alone=situation.items_travel_alone)
    if tiny is not None:
        return tiny
    cores = situation.cores
    per_item = _duration(measured.per_item)
    share = f"{measured.share:.0%} of its time on CPU"
    if measured.share < WAITING_BELOW:
        return Plan(
            "thread",
            WAITING_THREADS,
            f"it waits: {share} ({per_item} an item), so threads wait side by side, as many "
            "as raise throughput without raising latency",
            adaptive=True,
        )
    if not situation.gil:
        return Plan("thread", cores, f"it computes ({share}), and the GIL is off: threads")
    if cores < 2:
        return Plan("thread", 1, f"it computes ({share}) and one core is usable")
    if measured.parallel is not None and measured.parallel >= PARALLEL_ABOVE:
        return Plan(
            "thread",
            cores,
            f"it computes and releases the GIL: two threads computed {measured.parallel:.1f} "
            "cores' worth at once",
        )
    if not situation.travels:
        return Plan(
            "thread",
            cores,
            f"it computes holding the GIL, but cannot go to a process: {situation.why_not}",
        )
    if situation.remaining is not None and _little_left(measured, situation):
        left = _duration(situation.remaining * measured.per_item)
        return Plan(  # (one thread: more would only take turns with the GIL, if it holds it)
            "thread",
            1,
            f"it computes, but only about {left} of work is left: not worth starting processes",
        )
    workers = situation.process_workers or cores
    together = (
        ""
        if measured.parallel is None
        else f"; two threads computed {measured.parallel:.1f} cores' worth at once"
    )
    return Plan(
        "process",
        workers,
        f"it computes holding the GIL ({share}, {per_item} an item{together}): one process per "
        "core",
    )


def waiting_plan(share: float | None, running: float) -> Plan:
    """The plan for work whose first batch is still running after ``running`` seconds, its
    thread waiting (``share``: its CPU time over that while; None: not measurable here)."""
    why = f"its first batch is still running after {_duration(running)}"
    if share is not None:
        why += f", {share:.0%} of the time on CPU"
    return Plan(
        "thread",
        WAITING_THREADS,
        f"it waits: {why}, so threads wait side by side, as many as raise throughput "
        "without raising latency",
        adaptive=True,
    )


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.1f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"
