"""backend="auto" against every manual choice, on the workloads its issue names, in one run.

    python bench/bench_auto.py            # full run (about 3 minutes on 2 cores)
    python bench/bench_auto.py --quick    # smoke run (smaller inputs, one repeat)

Each workload runs with ``backend="auto"`` (no worker count given), then on threads x {2, 8,
32, 128} and on processes x the usable cores, each in a fresh process, ``--repeat`` times
round-robin; the median time of each is reported, with auto's ratio to the best manual
choice (target: at most 1.25x). The workloads:

- ``sleeps``: 2,000 x ``time.sleep(0.01)`` (target also: at most 0.25 s);
- ``http``: 600 requests to a local HTTP server (``slot_server.py``, its own process) that
  serves 16 at a time, 20 ms each (more in flight only queue), one keep-alive connection per
  thread; its p99 latency is reported too (target: within 1.5x of the unloaded latency);
- ``cpu``: 400 x 5 ms of pure-Python arithmetic, which holds the GIL;
- ``sha256``: 60 x sha256 of a 32 MB block, which releases the GIL (a process must be sent
  the block);
- ``tiny``: 200,000 x ``x * 2``, also against the builtin ``map`` (target: at most 1.25x).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
SLOTS, SLOT_SECONDS = 16, 0.020
BLOCK = 32 * 1024 * 1024
CPU_SECONDS = 0.005


def nap(_: int) -> None:
    time.sleep(0.01)


def digest(block: bytes) -> str:
    return hashlib.sha256(block).hexdigest()


def double(x: int) -> int:
    return x * 2


def fetch(port: int) -> float:
    from _tasks import request  # (this script's directory is on sys.path: it is run as a file)

    started, ended = request(port)
    return ended - started


def inputs(workload: str, quick: bool, extra: dict[str, Any]) -> tuple[Any, Iterator[Any]]:
    """The function and the inputs of ``workload``."""
    scale = 4 if quick else 1
    if workload == "sleeps":
        return nap, iter(range(2000 // scale))
    if workload == "http":
        return fetch, iter([extra["port"]] * (600 // scale))
    if workload == "cpu":
        from _tasks import spin  # (this script's directory is on sys.path: it is run as a file)

        return spin, iter([extra["loops"]] * (400 // scale))
    if workload == "sha256":
        block = bytes(BLOCK)
        return digest, (block for _ in range(60 // scale))
    if workload == "tiny":
        return double, iter(range(200_000 // scale))
    raise ValueError(workload)


def run_case(workload: str, config: str, quick: bool, extra: dict[str, Any]) -> dict[str, Any]:
    """One timed run, in this (fresh) process."""
    import plait
    import plait._api  # imports stay outside the timing, as in every other case of bench/

    fn, items = inputs(workload, quick, extra)
    started = time.perf_counter()
    if config == "serial":
        results = list(map(fn, items))
        plan = "the builtin map"
    else:
        backend, _, count = config.partition(" x ")
        workers = int(count) if count else None
        if config == "auto":  # plait at its defaults, nothing given (auto is the default)
            mapped = plait.map(fn, items)
        else:
            mapped = plait.map(fn, items, backend=backend, workers=workers)
        results = list(mapped)
        plan = str(mapped.plan)
    elapsed = time.perf_counter() - started
    out: dict[str, Any] = {"seconds": elapsed, "plan": plan}
    if workload == "http":
        latencies = sorted(results)
        out["p99"] = latencies[int(0.99 * (len(latencies) - 1))]
        out["p50"] = latencies[len(latencies) // 2]
    return out


def configs(workload: str, cores: int) -> list[str]:
    manual = [f"thread x {n}" for n in (2, 8, 32, 128)] + [f"process x {cores}"]
    return ["auto", *manual, *(["serial"] if workload == "tiny" else [])]


def measure(quick: bool, repeat: int, only: list[str]) -> list[dict[str, Any]]:
    sys.path.insert(0, str(BENCH_DIR))
    import slot_server
    from _tasks import calibrate_spin

    from plait._cores import usable_cores

    cores = usable_cores()
    extra: dict[str, Any] = {"loops": calibrate_spin(CPU_SECONDS)}
    server, extra["port"] = slot_server.start(SLOTS, SLOT_SECONDS)
    rows = []
    try:
        for workload in only:
            runs: dict[str, list[dict[str, Any]]] = {c: [] for c in configs(workload, cores)}
            for _ in range(repeat):
                for config in runs:  # round-robin: a noisy moment is spread over all of them
                    runs[config].append(_fresh(workload, config, quick, extra))
            rows.append({"workload": workload, "runs": runs})
    finally:
        slot_server.stop(server)
    return rows


def _fresh(workload: str, config: str, quick: bool, extra: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--case", json.dumps([workload, config, quick, extra])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        return {"seconds": float("nan"), "plan": f"failed: {done.stderr[-300:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def render(rows: list[dict[str, Any]], repeat: int) -> str:
    lines = [
        f"Each cell: the median of {repeat} runs, each in a fresh process, round-robin. auto's "
        "ratio is to the best manual choice (threads x 2, 8, 32, 128; processes x cores).",
        "",
        "| Workload | auto | best manual | auto / best | auto's plan (last run) |",
        "|---|---|---|---|---|",
    ]
    details = []
    for row in rows:
        medians = {
            config: statistics.median(r["seconds"] for r in runs)
            for config, runs in row["runs"].items()
        }
        manual = {c: t for c, t in medians.items() if c not in ("auto", "serial")}
        best = min(manual, key=lambda c: manual[c])
        auto = medians["auto"]
        plan = row["runs"]["auto"][-1]["plan"]
        lines.append(
            f"| {row['workload']} | {auto:.3f} s | {best}: {manual[best]:.3f} s | "
            f"{auto / manual[best]:.2f}x | {plan} |"
        )
        cells = ", ".join(f"{c} {t:.3f} s" for c, t in medians.items())
        details.append(f"- {row['workload']}: {cells}")
        if "serial" in medians:
            details.append(f"  - auto / the builtin map: {auto / medians['serial']:.2f}x")
        if row["workload"] == "http":
            for config in ("auto", "thread x 8", "thread x 32", "thread x 128"):
                runs = row["runs"][config]
                p50 = statistics.median(r["p50"] for r in runs) * 1e3
                p99 = statistics.median(r["p99"] for r in runs) * 1e3
                details.append(f"  - {config}: request p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    return "\n".join([*lines, "", "All medians:", "", *details])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--only", default="sleeps,http,cpu,sha256,tiny")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        workload, config, quick, extra = json.loads(args.case)
        print(json.dumps(run_case(workload, config, quick, extra)))
        return
    repeat = args.repeat or (1 if args.quick else 3)
    rows = measure(args.quick, repeat, args.only.split(","))
    print(render(rows, repeat))


if __name__ == "__main__":
    main()
