"""How many threads waiting work gets: a limit that follows what the work measures.

Work that waits (network requests, disk, sleeps) gains from more threads only until what it
waits on is saturated: a server that serves 16 requests at a time answers a 17th no sooner,
and it only queues there, adding latency for nobody's gain. No fixed number is right for every
server, so the limit is found by watching the work, round by round (a round ends when as many
batches as the limit, begun in it, have finished: each thread ran about one):

- **start-up**: double the limit each round while throughput grows by a quarter or more (as TCP
  BBR's start-up finds a link's bandwidth). After two rounds without that growth, the limit
  goes back to the best round's, and the queue the last doublings built drains. The lowest
  latency seen so far is the reference from then on. A round whose latency is ``QUEUED``
  times that lowest ends start-up at once, as TCP Vegas's slow start ends: the doublings
  built a queue, where more in flight cannot raise throughput, whatever a round's sample of
  it says (on a busy machine, a server starved of CPU in one round and not in the next
  seems to grow with the limit).
- **hold**: a round whose latency is above ``TOLERANCE`` times the reference cuts the limit in
  proportion (limit x reference x ``TOLERANCE`` / latency, at most halving: the idea of Vegas
  and of Netflix's Gradient limiter), when that is more than a step of growth (less is the
  edge of a queue, below). The next round tells whether the cut was right: if
  throughput fell with it, the limit goes back, and if throughput comes back with it, the
  latency was not a queue but the work's own (the server got slower, or our own threads take
  turns with the GIL): the latency at the lower limit becomes the reference. If throughput
  does not come back, the work changed meanwhile and the cut stands.
- **the edge of a queue**: a limit one or two above the server's slots raises a round's
  latency by only a few per cent (one request in 17 waits), but the request that waits, at a
  server whose requests take about the same time, waits a whole request's time: the slowest
  1 % of the requests are such waits. So a round whose latency is above the reference beyond
  its own noise (``NOISE_MARGIN`` standard errors of its mean, from the spread of one batch's
  latency: their median absolute deviation, which a queued request does not sway) and that
  holds a request ``EDGE_SLOW`` times the reference, two rounds running, cuts the limit by a
  step; and after a cut by a step, the limit grows again only after ``QUIET_ROUNDS`` rounds
  without a queue (more for a narrow limit): each step over the edge queues a request. But
  if the round after the cut shows no lower latency, the edge was noise (a server whose
  requests vary much: its rounds of a few requests do) and it grows on at once: held lower,
  the limit would only cost throughput. Otherwise a round grows the limit by a sixteenth
  (one at least).
- the reference falls to what a round shows beyond its noise (its latency plus
  ``REFERENCE_MARGIN`` standard errors), not to its mean: the lowest of many noisy rounds
  would be their luckiest, and every round after it would look queued.
- **a round at half the limit** now and then (every ``LOW_EVERY`` rounds) measures the latency
  without a queue, which a limit held above the server's capacity never sees: it becomes the
  reference (higher or lower), as TCP BBR's ProbeRTT does. It costs that round some
  throughput: about 1 % in all. A reference that rose by more than ``TOLERANCE`` is checked
  so again soon (``LOW_SOON`` rounds after): one round's latency on a busy machine may be
  the machine's (the server starved of CPU for a while), and a limit held to it would queue
  at the server for as long as no round at half the limit came.
- **errors** in a round (timeouts, refusals, rate limits) cut the limit by a quarter.
- never below ``minimum``, never above ``maximum``.

Pure bookkeeping: the caller reads the clock and passes it in, so tests drive it with a
simulated server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

START = 8  # threads at first, unless the caller says (auto starts at _plan.WAITING_THREADS, 32)
MAXIMUM = 256  # by default; the caller's maximum wins
GROWTH = 1.25  # start-up goes on while each round's throughput grows by this much
STALLED_ROUNDS = 2  # rounds without that growth that end start-up
QUEUED = 2.0  # a start-up round's latency this many times the lowest: a queue, start-up ends
TOLERANCE = 1.1  # latency up to this times the reference is not queueing, at most
TOLERANCE_FLOOR = 1.005  # ... and at least; in between, as the round's own noise says:
NOISE_MARGIN = 3  # this many times the standard error of its mean latency
REFERENCE_MARGIN = 2  # a round lowers the reference to its latency plus this many of them
EDGE_SLOW = 1.25  # ... and a request this many times the reference: the edge of a queue
SPREAD_SAMPLES = 4  # a round of fewer batches tells nothing of their spread
OWN_SPREAD_SAMPLES = 8  # ... and one of fewer too little to go by its own alone
# Rounds without a queue, after a cut at the queue's edge, before the limit grows again: each
# step over the edge queues a request or a few for a round or two, and they must stay well
# under 1 % of all (a narrow limit's rounds are few requests: it waits more rounds).
QUIET_ROUNDS, QUIET_REQUESTS = 32, 512
CUT_AT_MOST = 0.5  # one round cuts the limit at most to half
COSTLY_CUT = 0.9  # a cut after which throughput fell below this share of before is retried
CONFIRMED = 0.8  # and it cost throughput if the cut's was below this share of the retrial's
ERROR_CUT = 0.75
LOW_EVERY = 50  # rounds between two rounds at half the limit, to see the latency without a
LOW_FIRST = 3  # queue (the first soon after start-up, which may have seen none)
LOW_SOON = 3  # rounds to such a round after the reference rose


@dataclass
class _Round:
    """The batches that began in a round and have finished."""

    started: float
    batches: int = 0  # the round ends when as many as the limit have finished
    items: int = 0
    busy: float = 0.0  # their items' time, summed: the round's latency
    rates: list[float] = field(default_factory=list)  # each batch's delivery rate
    latencies: list[float] = field(default_factory=list)  # each batch's time per item
    errors: int = 0

    @property
    def throughput(self) -> float:
        """Items per second, from its batches' delivery rates: what all batches delivered
        while one ran, over its time, as TCP BBR samples a link's bandwidth. The mean of the
        later half: the batches that began just as the limit changed ran partly beside
        batches begun under the limit before. (Counting what ended between two moments, or
        dividing what runs by the latency, which a queue that is still growing keeps low,
        would mislead start-up after each change.)"""
        later = self.rates[len(self.rates) // 2 :]
        return sum(later) / len(later)


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
        self.delivered = 0  # items of every batch that finished: read it as a batch begins
        # The latency the limit holds to: at first the caller's, if it knows one (auto's probe
        # may have decided before an item ended), else the first round's.
        self.reference = latency or math.inf
        self._round = _Round(now)
        self._best = 0.0  # start-up: the best round's throughput, items per second
        self._best_limit = self.limit  # and its limit
        self._stalled = 0
        # The last round cut the limit: (the limit and throughput before the cut).
        self._trial: tuple[int, float] | None = None
        # The cut cost throughput, and the limit went back to see if that was the cut's doing:
        # (the limit, throughput and latency after the cut).
        self._retrial: tuple[int, float, float] | None = None
        self._low: int | None = None  # a round at half the limit: the limit to go back to
        self._quiet: int | None = None  # rounds held since a cut at the queue's edge
        self._cut_at = 0.0  # ... and the latency that made it
        self._spread: float | None = None  # one batch's latency: its relative spread
        self._edge = False  # the last round was a little above the reference (see _hold)
        self._since_low = LOW_EVERY - LOW_FIRST  # rounds since the last such round

    @property
    def held(self) -> int:
        """The limit it holds: the limit, but for a round at half of it."""
        return self._low or self.limit

    def finished(
        self,
        now: float,
        *,
        began: float,
        items: int,
        elapsed: float,
        errors: int = 0,
        delivered: int,
    ) -> bool:
        """A batch of ``items`` that began at ``began``, when ``delivered`` was what it was
        then, ran for ``elapsed`` seconds (``errors`` of its items failed). True when this
        ended a round and changed the limit. A batch that began before the round is not
        counted in it: it ran under the limit before."""
        self.delivered += items
        round_ = self._round
        if began < round_.started:
            return False
        round_.batches += 1
        round_.items += items
        round_.busy += elapsed
        round_.errors += errors
        rate = (self.delivered - delivered) / max(elapsed, 1e-9)
        round_.rates.append(rate)
        round_.latencies.append(elapsed / max(items, 1))
        if round_.batches < self.limit or round_.items == 0 or now <= round_.started:
            return False
        self._round = _Round(now)
        self.rounds += 1
        before = self.limit
        self._end_round(round_)
        return self.limit != before

    def _end_round(self, round_: _Round) -> None:
        latency = round_.busy / round_.items
        throughput = round_.throughput
        self.latency = latency
        trial, self._trial = self._trial, None
        retrial, self._retrial = self._retrial, None
        low, self._low = self._low, None
        noise = self._noise(round_.latencies, own=low is not None)
        # What the round says the latency is at most: a reference is set from this, not from
        # the round's mean (the lowest of many noisy rounds would be their luckiest one, and
        # every round after it would look queued).
        bound = latency * (1 + REFERENCE_MARGIN * noise) if noise < math.inf else latency
        self._since_low += 1
        reference = self.reference
        if round_.errors:
            self.state = "backing off"
            self._set(math.floor(self.limit * ERROR_CUT))
        elif low is not None:  # a round at half the limit: the latency without a queue
            self.reference, self.limit = bound, low
        elif self.state == "start-up":
            self._start_up(latency, bound, throughput)
        elif trial is not None and throughput < COSTLY_CUT * trial[1]:
            # The cut cost throughput, or the work changed meanwhile: back to the limit before,
            # to tell which.
            self._retrial = (self.limit, throughput, bound)
            self.limit = trial[0]
        elif retrial is not None and retrial[1] < CONFIRMED * throughput:
            # Back at the limit before, throughput is back too: the cut cost it. The latency
            # was the work's, not a queue; as it was at the lower limit, it is the reference.
            self.reference = retrial[2]
        elif retrial is not None:  # no better than the cut: the work changed, not the limit
            self.limit = retrial[0]
            self._hold(latency, bound, throughput, noise, max(round_.latencies))
        elif self._since_low >= LOW_EVERY and self.limit >= 2 * self.minimum:
            self._low, self._since_low = self.limit, 0
            self.state = "measuring"
            self.limit //= 2
        else:
            self._hold(latency, bound, throughput, noise, max(round_.latencies))
        if self.reference > TOLERANCE * reference:
            self._since_low = max(self._since_low, LOW_EVERY - LOW_SOON)

    def _start_up(self, latency: float, bound: float, throughput: float) -> None:
        self.reference = min(self.reference, bound)
        if latency >= QUEUED * self.reference:
            pass  # a queue: start-up ends
        elif throughput >= GROWTH * self._best:
            self._best, self._best_limit = throughput, self.limit
            self._stalled = 0
            if self.limit < self.maximum:
                self._set(self.limit * 2)
                return
        else:
            self._stalled += 1
            if self._stalled < STALLED_ROUNDS:
                return
        self.state = "holding"
        # The limit of the best round; holding then weighs its latency against the lowest
        # seen (alone, or in a round), and cuts it if a queue built up.
        self._set(self._best_limit)

    def _hold(
        self, latency: float, bound: float, throughput: float, noise: float, slowest: float
    ) -> None:
        self.state = "holding"
        self.reference = min(self.reference, bound)
        step = max(1, self.limit // 16)  # (growth is slow: by a sixteenth)
        gradient = TOLERANCE * self.reference / latency
        cut = math.floor(self.limit * max(CUT_AT_MOST, gradient)) if gradient < 1 else self.limit
        if self.limit - cut > step:  # a queue: cut in proportion (it may regrow at once)
            self._edge = False
            self._trial = (self.limit, throughput)
            self._set(cut)
            self._quiet = None
            return
        # The edge of a queue: the last step of growth passed the server's slots by a request
        # or two. The round's latency shows it only a little (beyond its own noise, a few per
        # cent), but a request queued behind a server whose requests take about the same time
        # waits a whole request's time more: the slowest 1 % of requests are such waits. Both
        # together mean the edge (a slow request alone may be the server's; a little more
        # latency alone, our own threads taking turns).
        beyond = latency > self.reference * max(TOLERANCE_FLOOR, 1 + NOISE_MARGIN * noise)
        if gradient < 1 or (beyond and slowest > EDGE_SLOW * self.reference):
            if not self._edge:  # (the next round tells: an edge stays)
                self._edge = True
                return
            self._edge = False
            self._trial = (self.limit, throughput)
            self._set(self.limit - step)
            self._quiet, self._cut_at = 0, latency  # and it is not stepped over for a while
            return
        self._edge = False
        if self._quiet is not None:
            # ... if the step down took the queue away: the latency fell with it, by about a
            # request's share. If it did not, the edge was noise (a server whose requests vary
            # much), and holding lower would only cost throughput.
            if self._quiet == 0 and latency > self._cut_at * (1 - 0.5 / (self.limit + step)):
                self._quiet = None
            else:
                self._quiet += 1
                if self._quiet < max(QUIET_ROUNDS, QUIET_REQUESTS // self.limit):
                    return
                self._quiet = None
        self._set(self.limit + step)

    def _noise(self, latencies: list[float], *, own: bool = False) -> float:
        """The standard error of the mean of a round's ``latencies``, relative to it: the
        spread of one batch's latency over the root of their number. The spread is learnt
        over the rounds so far (``own``: this round's alone, for a round known to have no
        queue, whose spread is the work's own), from each round's median absolute deviation,
        not a standard deviation: a request that queued is far from the rest, and must not
        count as noise."""
        spread = None
        if len(latencies) >= SPREAD_SAMPLES:
            ordered = sorted(latencies)
            median = max(ordered[len(ordered) // 2], 1e-12)
            spread = 1.4826 * sorted(abs(x - median) for x in ordered)[len(ordered) // 2] / median
            self._spread = spread if self._spread is None else (3 * self._spread + spread) / 4
        if not own or len(latencies) < OWN_SPREAD_SAMPLES:
            spread = self._spread
        if spread is None:
            return math.inf
        return spread / math.sqrt(len(latencies))

    def _set(self, limit: int) -> None:
        self.limit = min(max(limit, self.minimum), self.maximum)
