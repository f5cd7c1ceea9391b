"""The adaptive thread limit for waiting work (``_width``), driven by a simulated server.

The server serves ``slots`` requests at a time, each for ``service`` seconds give or take a
tenth (``jitter``: a real server's requests do not all take the same time, and finish out of
step; some take nearly the same time, and a queued request then waits a whole one), and
queues the rest in order; the client keeps ``width.limit`` requests in flight, one item per
batch. Time is simulated and the jitter seeded: these tests are exact and instant.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plait._width import MAXIMUM, Width

pytestmark = pytest.mark.timeout(60)


@dataclass
class Server:
    slots: int
    service: float
    jitter: float = 0.1  # each request takes service x uniform(1 - jitter, 1 + jitter)
    # ... or, if set, service x a lognormal factor of this sigma (mean 1): a long tail, as a
    # real server's latencies have (a few requests take several times the median)
    tail: float = 0.0
    fail_every: int = 0  # refuse every n-th request (a rate limit), 0: never
    # A busy machine: the server is starved of CPU now and then, for several requests in a
    # row (each request begins a stall with chance ``stall_begins``, a stall goes on with
    # ``stall_goes_on``); its requests take ``stall_factor`` times as long meanwhile.
    stall_begins: float = 0.0
    stall_goes_on: float = 0.0
    stall_factor: float = 1.0
    seed: int = 7
    random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    busy: int = 0
    stalled: bool = False
    queue: deque[float] = field(default_factory=deque)  # start times of queued requests
    served: int = 0


@dataclass
class Round:
    at: float
    limit: int
    latency: float
    state: str


def simulate(
    server: Server,
    width: Width,
    until: float,
    *,
    slow_down_at: float | None = None,
    slow_down: str = "service",
) -> tuple[list[Round], list[tuple[float, float]]]:
    """Run the client against the server until ``until``; the rounds (when the limit was
    reconsidered) and every request's (end time, latency). At ``slow_down_at`` the server
    gets twice slower: each request takes twice as long (``slow_down="service"``), or it
    serves half as many at a time (``"slots"``)."""
    now = 0.0
    events: list[tuple[float, int, float]] = []  # (done at, sequence, began)
    delivered_at: dict[float, int] = {}  # width.delivered when each request was sent
    seq = 0
    in_flight = 0
    rounds: list[Round] = []
    done: list[tuple[float, float]] = []

    def serve() -> float:
        if server.tail:
            factor = math.exp(server.random.gauss(0, server.tail) - server.tail**2 / 2)
        else:
            factor = server.random.uniform(1 - server.jitter, 1 + server.jitter)
        took = server.service * factor
        if server.stall_begins:
            chance = server.stall_goes_on if server.stalled else server.stall_begins
            server.stalled = server.random.random() < chance
            took *= server.stall_factor if server.stalled else 1.0
        return took

    def send(began: float) -> None:
        nonlocal seq, in_flight
        in_flight += 1
        delivered_at[began] = width.delivered
        if server.busy < server.slots:
            server.busy += 1
            seq += 1
            heapq.heappush(events, (began + serve(), seq, began))
        else:
            server.queue.append(began)

    while now < until:
        while in_flight < width.limit:
            send(now)
        now, _, began = heapq.heappop(events)
        if slow_down_at is not None and now >= slow_down_at:
            if slow_down == "service":
                server.service *= 2
            else:
                server.slots //= 2
            slow_down_at = None
        in_flight -= 1
        server.busy -= 1
        server.served += 1
        if server.queue and server.busy < server.slots:
            waiting = server.queue.popleft()
            server.busy += 1
            seq += 1
            heapq.heappush(events, (now + serve(), seq, waiting))
        failed = bool(server.fail_every) and server.served % server.fail_every == 0
        done.append((now, now - began))
        before = width.rounds
        width.finished(
            now,
            began=began,
            items=1,
            elapsed=now - began,
            errors=int(failed),
            delivered=delivered_at[began],
        )
        if width.rounds != before:
            rounds.append(Round(now, width.limit, width.latency, width.state))
    return rounds, done


def p99(done: list[tuple[float, float]], *, after: float) -> float:
    settled = sorted(latency for at, latency in done if at >= after)
    return settled[int(0.99 * (len(settled) - 1))]


def throughput(done: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(1 for at, _ in done if start <= at < end) / (end - start)


@pytest.mark.parametrize("seed", range(8))
def test_it_finds_a_server_s_slots_within_two_seconds_and_keeps_latency_low(seed: int) -> None:
    server = Server(slots=16, service=0.020, seed=seed)
    rounds, done = simulate(server, Width(0.0, latency=0.020), until=6.0)
    peak = 16 / 0.020
    reached = next(at for at, _ in done if throughput(done, at - 0.2, at) >= 0.9 * peak)
    assert reached <= 2.0
    assert p99(done, after=2.0) <= 1.6 * 0.020  # (and 1.5x in most runs: see the next test)
    assert throughput(done, 2.0, 6.0) >= 0.9 * peak
    # (Near the slots: a noisy round may cut it by a few, for a while.)
    assert all(12 <= r.limit <= 24 for r in rounds if r.at >= 2.0 and r.state != "measuring")


@pytest.mark.parametrize(
    ("jitter", "slots"), [(0.1, 16), (0.02, 8), (0.02, 16), (0.02, 64), (0.05, 16)]
)
def test_once_settled_p99_latency_stays_within_one_and_a_half_times_unloaded(
    jitter: float, slots: int
) -> None:
    """Over twenty servers (seeds), the median p99 and the throughput. A server whose requests
    all take nearly the same time (2 %) is the hard one: a queued request waits a whole
    request's time there, so a limit held even one above the slots makes p99 near 2x (it was
    1.68x when the limit held within TOLERANCE of the reference latency, whatever the noise)."""
    ratios, shares = [], []
    for seed in range(20):
        server = Server(slots, 0.020, jitter=jitter, seed=seed)
        _, done = simulate(server, Width(0.0, latency=0.020), until=6.0)
        ratios.append(p99(done, after=2.0) / 0.020)
        shares.append(throughput(done, 2.0, 6.0) / (slots / 0.020))
    assert statistics.median(ratios) <= 1.5
    assert min(shares) >= 0.9


@pytest.mark.parametrize(("tail", "slots"), [(0.3, 8), (0.3, 16), (0.6, 8), (0.6, 16), (0.6, 64)])
def test_a_server_with_a_long_tail_keeps_its_throughput(tail: float, slots: int) -> None:
    """A server whose requests take several times the median now and then: rounds of a few
    requests are noisy, and a width that took each slow round for a queue cut itself down to
    a few threads (34-65 % of the peak over these servers; one at 8 slots down to 1 thread).
    A cut that did not lower the latency was noise: the width grows back."""
    shares = []
    for seed in range(10):
        server = Server(slots, 0.020, tail=tail, seed=seed)
        _, done = simulate(server, Width(0.0, latency=0.020, start=32), until=6.0)
        shares.append(throughput(done, 2.0, 6.0) / (slots / 0.020))
    assert statistics.median(shares) >= 0.85
    assert min(shares) >= 0.5  # (the old rule: 12-38 % at worst)


@pytest.mark.parametrize("seed", range(8))
def test_it_cuts_in_flight_when_the_server_serves_half_as_many_and_settles_there(seed: int) -> None:
    server = Server(slots=16, service=0.020, seed=seed)
    rounds, done = simulate(
        server, Width(0.0, latency=0.020), 8.0, slow_down_at=4.0, slow_down="slots"
    )
    before = [r.limit for r in rounds if r.at < 4.0][-1]
    # The rounds that began after the server slowed down (not the one it slowed down in):
    after = [r.limit for last, r in pairwise(rounds) if last.at >= 4.0]
    assert min(after[:2]) <= 0.7 * before  # within two of them: at least 30 % fewer
    assert throughput(done, 5.0, 8.0) >= 0.9 * 8 / 0.020
    assert 7 <= statistics.median(after[-20:]) <= 12


@pytest.mark.parametrize("seed", range(8))
def test_when_each_request_takes_twice_as_long_it_keeps_the_server_s_slots_full(seed: int) -> None:
    """Not a queue: the latency that doubled does not cut the limit for good."""
    server = Server(slots=16, service=0.020, seed=seed)
    _, done = simulate(server, Width(0.0, latency=0.020), 8.0, slow_down_at=4.0)
    assert throughput(done, 5.0, 8.0) >= 0.9 * 16 / 0.040
    # (The issue asks p99 <= 1.5x for a server that keeps its pace; here, just after the
    # change, it stays close.)
    assert p99(done, after=5.0) <= 1.6 * 0.040


@pytest.mark.parametrize("seed", range(30))
def test_on_a_busy_machine_the_limit_stays_near_the_server_s_slots(seed: int) -> None:
    """Stalls of the server (its machine busy) make a round's throughput and latency noise:
    a stall that ends seems to be throughput that grew with the limit (start-up doubled
    this to 256 at an 8-slot server), and a stall in a round after a cut seems to be the
    work's own latency (the limit then held at 30-40, four times the slots). Auto starts
    waiting work at 32 threads, and the probe's latency is the reference at first."""

    def busy_server() -> Server:
        server = Server(slots=8, service=0.010, seed=seed)
        server.stall_begins, server.stall_goes_on, server.stall_factor = 0.02, 0.97, 3.0
        return server

    rounds, done = simulate(busy_server(), Width(0.0, latency=0.012, start=32), until=3.0)
    late = [r.limit for r in rounds if r.at >= 1.5 and r.state != "measuring"]
    assert max(late) <= 4 * 8
    assert statistics.median(late) <= 16
    # Not by cutting too deep either: against twice the slots held fixed on the same server.
    fixed = Width(0.0, latency=0.012, start=16, minimum=16, maximum=16)
    _, at_16 = simulate(busy_server(), fixed, until=3.0)
    assert throughput(done, 1.5, 3.0) >= 0.7 * throughput(at_16, 1.5, 3.0)


def test_work_that_only_waits_grows_to_the_maximum_in_a_few_rounds() -> None:
    server = Server(slots=10_000, service=0.010)  # sleeps: no limit on the other side
    rounds, _ = simulate(server, Width(0.0, latency=0.010), until=1.0)
    assert rounds[-1].limit == MAXIMUM
    assert next(i for i, r in enumerate(rounds) if r.limit == MAXIMUM) <= 6


def test_a_maximum_is_never_passed() -> None:
    rounds, _ = simulate(Server(10_000, 0.010), Width(0.0, latency=0.010, maximum=20), 1.0)
    assert max(r.limit for r in rounds) == 20


def test_errors_cut_the_limit() -> None:
    server = Server(slots=10_000, service=0.010, fail_every=5)
    width = Width(0.0, latency=0.010)
    rounds, _ = simulate(server, width, until=1.0)
    assert any(r.state == "backing off" for r in rounds)
    assert max(r.limit for r in rounds) < 32


def test_a_batch_that_began_before_the_round_is_not_counted() -> None:
    width = Width(0.0, latency=0.01, start=2)
    assert not width.finished(1.0, began=-0.5, items=1, elapsed=1.5, delivered=0)
    assert not width.finished(1.0, began=-0.5, items=1, elapsed=1.5, delivered=0)
    assert width.limit == 2
    assert width.finished(1.0, began=0.5, items=1, elapsed=0.01, delivered=0) is False  # one of two
    assert width.finished(1.01, began=0.5, items=1, elapsed=0.01, delivered=0)
    assert width.limit == 4


@settings(max_examples=60, deadline=None)
@given(
    slots=st.integers(1, 64),
    service=st.floats(0.001, 0.2),
    minimum=st.integers(1, 4),
    maximum=st.integers(4, 64),
    fail_every=st.sampled_from([0, 0, 3, 50]),
)
def test_the_limit_stays_within_its_bounds(
    slots: int, service: float, minimum: int, maximum: int, fail_every: int
) -> None:
    width = Width(0.0, latency=service, minimum=minimum, maximum=maximum)
    rounds, _ = simulate(Server(slots, service, fail_every), width, until=40 * service)
    assert all(minimum <= r.limit <= maximum for r in rounds)
