"""One job's probe under ``backend="auto"``: what its first batches measured, and whether that is
enough to decide.

A batch run alone tells its time per item and its CPU time over its wall time (``learn``);
``measured`` says when they add up to enough (``PROBE_SECONDS`` of work in
``PROBE_MIN_BATCHES`` batches, ``PROBE_ITEMS`` items, or fewer of clearly tiny work) and
what they say, as ``_plan.decide`` takes it. Work that may gain from two threads is then run
two batches at once, in rounds (``_together``), until their threads overlapped long enough to
tell whether the work lets go of the GIL (``rounds_over``, ``parallel``). ``_auto`` holds its
lock around all of it.
"""

from __future__ import annotations

from typing import Any

from .._plan import INLINE_BELOW, WAITING_BELOW, Measured
from .._task import Outcome
from ._together import THREADS as PROBE_THREADS
from ._together import Round, parallel
from ._watched import Watched

PROBE_SECONDS = 0.002  # measured work, batches run alone, before deciding
# ... in at least this many batches, unless they took PROBE_LONG: one batch can meet a pause
# that is not the work's (a garbage collection of a large heap takes milliseconds).
PROBE_MIN_BATCHES = 3
PROBE_LONG = 0.05
PROBE_ITEMS = 1024  # or this many items, for work too small to add up to PROBE_SECONDS
# ... or this many, in PROBE_MIN_BATCHES, if each took less than a quarter of INLINE_BELOW:
# clearly tiny work (a pause can make work look slower, never faster), which pays for each
# batch of its probe (10 of them were a fifth of a map of 200,000 x * 2 on Python 3.11; 64
# items, a round trip more than 16, a seventh of a map of 1,000). A batch of one item cannot
# show it: the batch's own cost is more than a quarter of INLINE_BELOW.
PROBE_TINY_ITEMS = 16
PROBE_BATCHES = 32  # a probe that could measure nothing by then (every batch failed) ends
# Two batches run together again, up to this many rounds, until both threads have had a core
# for this long while they overlapped (a busy machine lends one of them none for a while).
# (Not lost time: the rounds' batches are the map's, run on two threads.)
TOGETHER_SECONDS = 0.001
TOGETHER_ROUNDS = 8


class Probe:
    """What a job's probe measured so far (a new one for each probe: the work may change)."""

    def __init__(self) -> None:
        self.together = False  # the second phase: two batches at once
        self.started_together = 0
        self.items = 0
        self.busy = 0.0
        # Per batch run alone: its CPU time over its wall time, and its time per item. The
        # decision takes their medians: one batch that met a garbage collection, or another
        # thread's turn with the GIL, does not make tiny work look costly or computing work
        # look idle.
        self.shares: list[float] = []
        self.per_item: list[float] = []
        self.slowest = (0, 0.0)  # the slowest batch run alone: (items, seconds)
        self.collected = 0  # batches left out: a full garbage collection ran in them
        # A batch run alone waited for PROBE_SECONDS or more while the program's other threads
        # left the GIL free: the work waits, and that one batch says so (see ``learn``).
        self.clearly_waits = False
        # The batches run together (see ``_together``), round after round: how many of the
        # present round's ended, and over the rounds, how long both threads had a core while
        # their batches overlapped, and how long one of them slept meanwhile.
        self.round = Round()
        self.ended_together = 0
        self.rounds = 0
        self.informative = 0.0
        self.slept = 0.0
        self.sample: list[Any] | None = None  # the first batch's items: do they travel?
        self.batches = 0
        self.probed = 0  # items sent to the probe
        # Once the rounds run together are over: the cores' worth the two threads computed.
        self.rounds_done = False
        self.overlap: float | None = None

    def learn(self, outcome: Outcome, watched: Watched | None) -> None:
        """A probe batch ended (``watched``: as the watcher saw it run, if it did)."""
        self.batches += 1
        if self.together:
            self.ended_together += 1  # (its thread's clocks were read: see ``_auto._probed``)
            return
        if not outcome.measured or not outcome.values:
            return
        if outcome.collected and self.collected < PROBE_MIN_BATCHES:
            self.collected += 1  # (after a few, the work's own allocations collect: counted)
            return
        items = len(outcome.values)
        # Its time less the time it waited for a core: what it took on a machine that had one
        # free for it (and what its thread did meanwhile: computed, or slept).
        elapsed = max(outcome.elapsed - outcome.waited_for_cpu, 1e-9)
        self.items += items
        self.busy += elapsed
        share = min(1.0, outcome.cpu / elapsed)
        self.shares.append(share)
        # Work that waits shows it in one batch, as the watcher sees it in one that runs on:
        # more batches guard against a pause that makes work look costly (a collection), and
        # a pause makes no work look idle, but the program's other threads holding the GIL
        # would: then the probe goes on. (Three such batches of 10 ms sleeps cost a map of
        # them 20 ms more than one.)
        if (
            share < WAITING_BELOW
            and elapsed >= PROBE_SECONDS
            and watched is not None
            and not watched.others_computed(outcome.cpu, max(0.0, elapsed - outcome.cpu))
        ):
            self.clearly_waits = True
        self.per_item.append(elapsed / items)
        if elapsed > self.slowest[1]:
            self.slowest = (items, elapsed)

    def failed_throughout(self) -> bool:
        """Whether the probe measured nothing in ``PROBE_BATCHES`` batches: every one failed."""
        return self.items == 0 and self.batches >= PROBE_BATCHES

    def measured(self) -> Measured | None:
        """What the batches run alone say, once they are enough to decide on; else None."""
        enough = self.items >= PROBE_ITEMS or self.busy >= PROBE_LONG
        enough |= (
            self.items >= PROBE_TINY_ITEMS
            and len(self.shares) >= PROBE_MIN_BATCHES
            and self.per_item_time() < INLINE_BELOW / 4
        )
        enough |= self.busy >= PROBE_SECONDS and len(self.shares) >= PROBE_MIN_BATCHES
        enough |= self.clearly_waits
        if self.items == 0 or not enough:
            return None
        return Measured(self.items, share=median(self.shares), per_item=self.per_item_time())

    def rounds_over(self) -> bool:
        """Whether the rounds of two batches run together are over: the threads overlapped
        for ``TOGETHER_SECONDS``, or ``TOGETHER_ROUNDS`` ran. Called as a round's batch ends;
        once the round's last did, a round that fell short starts another."""
        if self.rounds_done:
            return True  # (asked again: the plan waited for its pickling check)
        if self.ended_together < PROBE_THREADS:
            return False
        informative, slept = self.round.measured()
        self.informative += informative
        self.slept += slept
        self.rounds += 1
        if self.informative < TOGETHER_SECONDS and self.rounds < TOGETHER_ROUNDS:
            self.round = Round()  # (another round)
            self.started_together = self.ended_together = 0
            return False
        self.rounds_done = True
        self.overlap = parallel(self.informative, self.slept, enough=TOGETHER_SECONDS)
        return True

    def per_item_time(self) -> float:
        """The work's time per item: all its items' time over their number (the largest
        batches weigh most: the smallest are the most easily swayed by a wait for the GIL, and
        a batch of one item is mostly the batch's own cost), less the slowest batch when there
        are others: one batch can meet a pause that is not the work's (a garbage collection of
        a large heap takes milliseconds)."""
        items, seconds = self.slowest
        if len(self.per_item) >= PROBE_MIN_BATCHES and items < self.items:
            return (self.busy - seconds) / (self.items - items)
        return self.busy / self.items


def median(values: list[float]) -> float:
    """``statistics.median``, without its import (decimal, fractions: 7 ms)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
