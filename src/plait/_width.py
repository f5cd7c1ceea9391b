"""How many threads waiting work gets: a limit that follows what the work measures.

Work that waits (network requests, disk, sleeps) gains from more threads only until what it
waits on is saturated: a server that serves 16 requests at a time answers a 17th no sooner,
and it only queues there, adding latency for nobody's gain. No fixed number is right for every
server, so the limit is found by watching the work, round by round (a round ends when about
as many batches as the limit finished: each thread ran about one):

- **start-up**: double the limit each round while throughput grows by a quarter or more and
  latency stays near the lowest seen (as TCP BBR's start-up finds a link's bandwidth). When it
  stops growing, the limit drops to what the best throughput needs at the lowest latency
  (Little's law: throughput x latency), so the queue that start-up built drains.
- **hold**: a round whose latency stays within ``TOLERANCE`` of the lowest seen grows the
  limit by one; one above it cuts the limit in proportion (limit x lowest x
  ``TOLERANCE`` / latency, at most halving: the idea of Vegas and of Netflix's Gradient
  limiter). If two cuts in a row did not bring latency down, the work itself became slower
  (the server slowed, not queued): that latency becomes the new lowest, and cutting stops.
- **errors** in a round (timeouts, refusals, rate limits) cut the limit by a quarter.
- never below ``minimum``, never above ``maximum``.

Pure bookkeeping: the caller reads the clock and passes it in, so tests drive it with a
simulated server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

START = 8  # threads at first: more than enough for most work, few enough to start at once
MAXIMUM = 256  # by default; the caller's maximum wins
GROWTH = 1.25  # start-up goes on while each round's throughput grows by this much
STALLED_ROUNDS = 2  # rounds without that growth that end start-up
TOLERANCE = 1.1  # latency up to this times the lowest is not queueing
CUT_AT_MOST = 0.5  # one round cuts the limit at most to half
ERROR_CUT = 0.75


@dataclass
class _Round:
    started: float
    delivered: int = 0  # items that ended during the round: its throughput
    batches: int = 0  # of the batches that began in it: the round ends when the limit's did
    items: int = 0
    busy: float = 0.0  # their items' time, summed: its latency
    errors: int = 0


class Width:
    """The limit for one map's waiting work. ``finished()`` is told of every batch that ends;
    ``limit`` is how many may run at once; ``state`` and ``latency`` say why."""

    def __init__(
        self,
        now: float,
        *,
        latency: float,
        start: int = START,
        minimum: int = 1,
        maximum: int = MAXIMUM,
    ) -> None:
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum)
        self.limit = min(max(start, self.minimum), self.maximum)
        self.state = "start-up"
        self.latency = latency  # the last round's, per item
        self.rounds = 0
        self.lowest = latency  # the lowest round's latency (since the work last got slower)
        self._round = _Round(now)
        self._best = 0.0  # start-up: the best throughput so far, items per second
        self._stalled = 0
        self._cut_from: float | None = None  # the latency before the last cut
        self._cut_limit = self.limit  # and the limit
        self._futile = 0  # cuts in a row that did not bring latency down

    def finished(
        self, now: float, *, began: float, items: int, elapsed: float, errors: int = 0
    ) -> bool:
        """A batch of ``items`` that began at ``began`` ran for ``elapsed`` seconds (``errors``
        of its items failed); True when this ended a round and changed the limit. A batch that
        began before the round counts for its throughput only: it ran under the limit before."""
        round_ = self._round
        round_.delivered += items
        if began < round_.started:
            return False
        round_.batches += 1
        round_.items += items
        round_.busy += elapsed
        round_.errors += errors
        if round_.batches < self.limit or round_.items == 0 or now <= round_.started:
            return False
        self._round = _Round(now)
        self.rounds += 1
        before = self.limit
        self._end_round(round_, now)
        return self.limit != before

    def _end_round(self, round_: _Round, now: float) -> None:
        latency = round_.busy / round_.items
        throughput = round_.delivered / (now - round_.started)
        self.latency = latency
        if round_.errors:
            self._cut_from, self._futile = None, 0
            self.state = "backing off"
            self._set(math.floor(self.limit * ERROR_CUT))
            return
        if self._cut_from is not None:
            # Two cuts in a row that did not bring latency down: the work got slower (one
            # alone may have followed a round that was half before the change).
            self._futile = self._futile + 1 if self._slower(latency) else 0
            if self._futile >= 2:
                self.lowest, self._futile = latency, 0
        self._cut_from = None
        self.lowest = min(self.lowest, latency)
        if self.state == "start-up":
            self._start_up(latency, throughput)
        else:
            self._hold(latency)

    def _start_up(self, latency: float, throughput: float) -> None:
        queued = latency > TOLERANCE * self.lowest
        if throughput >= GROWTH * self._best and not queued:
            self._best = throughput
            self._stalled = 0
            self._set(self.limit * 2)
            return
        self._best = max(self._best, throughput)
        self._stalled += 1
        if queued or self._stalled >= STALLED_ROUNDS or self.limit >= self.maximum:
            self.state = "holding"
            # What the best throughput needs without a queue (Little's law), with headroom.
            self._set(math.ceil(self._best * self.lowest * TOLERANCE))

    def _hold(self, latency: float) -> None:
        self.state = "holding"
        gradient = TOLERANCE * self.lowest / latency
        if gradient >= 1:
            self._set(self.limit + 1)
            return
        self._cut_from, self._cut_limit = latency, self.limit
        self._set(math.floor(self.limit * max(CUT_AT_MOST, gradient)))

    def _slower(self, latency: float) -> bool:
        """Whether the latency after a cut says the work got slower rather than queued. A
        queue's latency falls with what is in flight: a cut to 60 % of the limit would take it
        to about 60 % of before. Less than half of that fall: not a queue. (A cut by less than
        a quarter says nothing: the round before it may have been half before the change.)"""
        assert self._cut_from is not None
        share = self.limit / self._cut_limit
        return share <= 0.75 and latency >= self._cut_from * (1 + share) / 2

    def _set(self, limit: int) -> None:
        self.limit = min(max(limit, self.minimum), self.maximum)
