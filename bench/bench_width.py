"""backend="auto" against a real server: how soon its thread limit fills the server, the
latency it keeps once settled, and how it answers a server that starts serving half as many.

    python bench/bench_width.py            # about 10 s
    python bench/bench_width.py --repeat 3 # three maps, each against a fresh server

A local HTTP server (``slot_server.py``, its own process) serves 16 requests at a time, 20 ms
each; more in flight only queue there. First its unloaded latency: 100 requests one after
another, on one connection. Then one ``plait.map`` at its defaults (no backend, no worker
count) over an endless input of requests, for 8 s; at 4 s the server starts serving 8 at a
time. Every request's start and end are taken on one clock. Reported, against the targets of
the backend="auto" issue:

- when the map first delivers 90 % of the server's peak (16 / 20 ms: 800 requests a second)
  over a 200 ms window: target, within 2 s of the map's start;
- the p99 latency of the requests that end from 2 s to 4 s (settled, the server unchanged),
  over the unloaded latency (its median): target, at most 1.5x;
- requests in flight (begun, not ended; sampled every 5 ms): their mean over the half second
  before the server slowed down, and how soon after it a 100 ms window holds 30 % fewer;
- the limit itself, round by round (a round of the limit ends when as many requests begun in
  it as the limit have ended: about one request's latency): the limit held before the
  slowdown, and the lowest of the first two rounds begun after it (target: 30 % lower). The
  rounds are read by wrapping ``plait._width.Width._end_round``, which only observes them;
- the throughput after the slowdown, against the server's new peak (400 a second).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import statistics
import time
from typing import Any

SLOTS, SLOT_SECONDS = 16, 0.020
SLOW_AT, END_AT = 4.0, 8.0  # seconds from the map's start
WINDOW = 0.2  # for throughput
FEWER_WINDOW = 0.1  # for requests in flight


def unloaded(port: int, count: int = 100) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", "/")
        connection.getresponse().read()
        latencies.append(time.perf_counter() - started)
    connection.close()
    return statistics.median(latencies)


def one_run() -> dict[str, Any]:
    import slot_server  # (this script's directory is on sys.path: it is run as a file)
    from _tasks import request

    import plait
    from plait import _width

    rounds: list[tuple[float, int]] = []  # (when a round ended, the limit after it)
    end_round = _width.Width._end_round

    def observed(width: _width.Width, round_: Any) -> None:
        end_round(width, round_)
        rounds.append((time.perf_counter(), width.held))

    _width.Width._end_round = observed  # type: ignore[method-assign,assignment]

    server, port = slot_server.start(SLOTS, SLOT_SECONDS)
    try:
        alone = unloaded(port)
        requests: list[tuple[float, float]] = []
        slowed = False
        began = time.perf_counter()
        with plait.map(request, itertools.repeat(port)) as results:
            for span in results:
                requests.append(span)
                now = time.perf_counter() - began
                if not slowed and now >= SLOW_AT:
                    slot_server.resize(server, SLOTS // 2)
                    slowed = True
                if now >= END_AT:
                    break
            plan = str(results.plan)
    finally:
        slot_server.stop(server)
        _width.Width._end_round = end_round  # type: ignore[method-assign]
    spans = [(start - began, end - began) for start, end in requests]
    limits = [(at - began, limit) for at, limit in rounds]
    before = [limit for at, limit in limits if at < SLOW_AT]
    # The rounds begun after the slowdown: those whose previous round ended after it.
    after = [limit for (last, _), (_, limit) in itertools.pairwise(limits) if last >= SLOW_AT]
    return measures(spans, alone) | {
        "plan": plan,
        "limit_before": before[-1] if before else None,
        "limit_after": min(after[:2]) if after else None,
        "rounds": len(limits),
    }


def measures(spans: list[tuple[float, float]], alone: float) -> dict[str, Any]:
    ends = sorted(end for _, end in spans)
    peak = SLOTS / SLOT_SECONDS

    def throughput(start: float, stop: float) -> float:
        return sum(1 for end in ends if start <= end < stop) / (stop - start)

    reached = next(
        (t for t in ends if t >= WINDOW and throughput(t - WINDOW, t) >= 0.9 * peak), None
    )
    settled = sorted(end - start for start, end in spans if 2.0 <= end < SLOW_AT)
    p99 = settled[int(0.99 * (len(settled) - 1))]

    def in_flight(at: float) -> int:
        return sum(1 for start, end in spans if start <= at < end)

    def mean_in_flight(start: float, stop: float) -> float:
        samples = [in_flight(start + i * 0.005) for i in range(int((stop - start) / 0.005))]
        return sum(samples) / len(samples)

    before = mean_in_flight(SLOW_AT - 0.5, SLOW_AT)
    fewer_at = None
    t = SLOW_AT
    while t + FEWER_WINDOW <= END_AT:
        if mean_in_flight(t, t + FEWER_WINDOW) <= 0.7 * before:
            fewer_at = t + FEWER_WINDOW - SLOW_AT
            break
        t += 0.01
    return {
        "alone": alone,
        "reached": reached,
        "p99": p99,
        "before": before,
        "fewer_at": fewer_at,
        "settled_after": mean_in_flight(END_AT - 1.0, END_AT),
        "throughput_after": throughput(SLOW_AT + 1.0, END_AT),
        "throughput_before": throughput(2.0, SLOW_AT),
    }


def render(runs: list[dict[str, Any]]) -> str:
    lines = [
        f"A server of {SLOTS} slots x {SLOT_SECONDS * 1e3:.0f} ms (peak "
        f"{SLOTS / SLOT_SECONDS:.0f}/s); at {SLOW_AT:.0f} s it serves {SLOTS // 2} at a time "
        f"(peak {SLOTS // 2 / SLOT_SECONDS:.0f}/s). plait.map at its defaults.",
        "",
        "| run | unloaded | 90 % of peak at | settled p99 (x unloaded) | throughput 2-4 s | "
        "in flight before | 30 % fewer in flight after | limit before, lowest of the next two "
        "rounds | in flight at the end | throughput after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, run in enumerate(runs, 1):
        reached = "never" if run["reached"] is None else f"{run['reached']:.2f} s"
        fewer = "never" if run["fewer_at"] is None else f"{run['fewer_at'] * 1e3:.0f} ms"
        limits = f"{run['limit_before']} -> {run['limit_after']}"
        if run["limit_before"] and run["limit_after"]:
            limits += f" ({run['limit_after'] / run['limit_before'] - 1:+.0%})"
        lines.append(
            f"| {i} | {run['alone'] * 1e3:.1f} ms | {reached} | {run['p99'] * 1e3:.1f} ms "
            f"({run['p99'] / run['alone']:.2f}x) | {run['throughput_before']:.0f}/s | "
            f"{run['before']:.1f} | {fewer} | {limits} | {run['settled_after']:.1f} | "
            f"{run['throughput_after']:.0f}/s |"
        )
    lines += ["", f"Plan at the end (last run): {runs[-1]['plan']}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    import plait._api  # noqa: F401  (imports outside the timing)

    runs = [one_run() for _ in range(args.repeat)]
    print(render(runs))


if __name__ == "__main__":
    main()
