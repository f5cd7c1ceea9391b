"""Benchmark plait side by side with its peers; print and write a markdown report.

    .venv/bin/python bench/run.py                 # full run (a few minutes on 2 cores)
    .venv/bin/python bench/run.py --quick --output /tmp/quick.md
    .venv/bin/python bench/run.py --only tiny,io --repeat 3

Every case runs in a fresh `python bench/cases.py ...` process with a timeout; the runner keeps
the median of `--repeat` runs, interleaving the libraries so that a noisy moment on the machine
is spread over all of them. See bench/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _libs import describe, label
from _report import render
from _scenarios import (
    CPU_TASK_SECONDS,
    PAYLOAD_BYTES,
    SAMPLE_EVERY,
    Outcome,
    Scenario,
    Table,
    select,
)
from _tasks import IO_LATENCY, calibrate_spin
from cases import RESULT_MARK

BENCH_DIR = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        scenarios = select(args.only)
    except ValueError as exc:
        print(f"bench/run.py: {exc}", file=sys.stderr)
        return 2
    compile_plait()
    repeat = args.repeat or (1 if args.quick else 5)
    timeout = args.timeout or (30.0 if args.quick else 120.0)
    started = time.time()
    loops = calibrate_spin(CPU_TASK_SECONDS) if any(s.task == "spin" for s in scenarios) else 0
    libs = frozenset(args.libs.split(",")) if args.libs else None
    tables = [run_scenario(s, args.quick, repeat, timeout, loops, libs) for s in scenarios]
    for table in tables:
        table.note = _note(table.scenario, table.n, loops)
    report = render(tables, repeat=repeat, started=started, quick=args.quick)
    if not args.only:  # the whole report: the micro-benchmarks too, each with its own command
        report += micro_benchmarks(args.quick)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def compile_plait() -> None:
    """Bytecode for plait, as an installed package has. The peers come from wheels, compiled by
    pip at install; an editable plait (under PYTHONDONTWRITEBYTECODE, which some machines set)
    would otherwise compile its source again in every case process, and its cold start would
    count that."""
    import compileall

    import plait

    compileall.compile_dir(Path(plait.__file__).parent, quiet=1)


MICRO = ("bench_sync.py", "bench_structured.py", "bench_warm.py", "bench_auto.py")


def micro_benchmarks(quick: bool) -> str:
    """Run the micro-benchmarks (locks, task groups, async, warm workers) and return their
    tables."""
    parts = ["", "## Micro-benchmarks", ""]
    for script in MICRO:
        command = [sys.executable, str(BENCH_DIR / script), *(["--quick"] if quick else [])]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        parts += [f"### `{script}`", "", done.stdout.strip() or f"failed: {done.stderr[-500:]}", ""]
    return "\n".join(parts)


def run_scenario(
    scenario: Scenario,
    quick: bool,
    repeat: int,
    timeout: float,
    loops: int,
    libs: frozenset[str] | None = None,
) -> Table:
    """Run every library of `scenario` (of `libs`, if given) `repeat` times, round-robin,
    each in a fresh process."""
    n = scenario.size(quick)
    params = {
        "task": scenario.task,
        "n": n,
        "kind": scenario.kind,
        "workers": scenario.workers,
        "chunksize": scenario.peer_chunksize(quick),
        "loops": loops,
        "payload_bytes": PAYLOAD_BYTES,
        "sample_every": SAMPLE_EVERY,
    }
    outcomes = {
        lib: Outcome(
            lib,
            label(lib, scenario.kind),
            describe(lib, scenario.kind, scenario.workers, scenario.peer_chunksize(quick)),
        )
        for lib in scenario.libs
        if libs is None or lib in libs
    }
    for attempt in range(repeat):
        for outcome in outcomes.values():
            if outcome.failure:
                continue  # failures repeat; don't spend the timeout again
            result = run_case(scenario.mode, outcome.lib, params, timeout)
            if result["status"] == "ok":
                outcome.runs.append(result)
            else:
                outcome.failure = _failure(result)
            shown = f"{result['seconds']:.4f} s" if "seconds" in result else outcome.failure
            print(
                f"{scenario.name:<18} {outcome.label:<40} {attempt + 1}/{repeat}  {shown}",
                file=sys.stderr,
            )
    return Table(scenario, n, outcomes)


def run_case(mode: str, lib: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one case in a fresh process (its own session, so a hang takes its workers down too)."""
    command = [sys.executable, str(BENCH_DIR / "cases.py"), mode, lib, json.dumps(params)]
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.communicate()
            return {"status": "timeout", "error": f"timeout after {timeout:g} s"}
        finally:
            _kill_group(proc.pid)  # any worker the case left behind
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    last = stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}, no result"]
    return {"status": "error", "error": last[0]}


def _note(scenario: Scenario, n: int, loops: int) -> str:
    """What the reader needs to know about this machine to judge the scenario's figures."""
    if scenario.task == "spin":
        return f"The task is `spin({loops:,})`, calibrated in this run to about 5 ms."
    if scenario.task != "sleep" or not scenario.workers:
        return ""
    start = time.perf_counter()
    for _ in range(20):
        time.sleep(IO_LATENCY)
    sleep = (time.perf_counter() - start) / 20
    rounds = -(-n // scenario.workers)
    best = 100 * n * IO_LATENCY / scenario.workers / (rounds * sleep)
    return (
        f"`time.sleep({IO_LATENCY})` takes {sleep * 1000:.3f} ms here, and {n:,} items on "
        f"{scenario.workers} threads need {rounds} rounds: a perfect scheduler reaches "
        f"{best:.1f} % of ideal."
    )


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _failure(result: dict[str, Any]) -> str:
    status = str(result["status"])
    if status in ("not installed", "timeout"):
        return "not installed" if status == "not installed" else str(result["error"])
    return f"failed: {result.get('error', status)}"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repeat (~1 min)")
    parser.add_argument("--only", metavar="SCENARIO[,SCENARIO]", help="names or groups to run")
    parser.add_argument(
        "--libs", metavar="LIB[,LIB]", help="run only these libraries (a partial report)"
    )
    parser.add_argument("--repeat", type=int, metavar="N", help="runs per case (default 5)")
    parser.add_argument("--timeout", type=float, metavar="S", help="seconds per case")
    parser.add_argument(
        "--output",
        type=Path,
        default=BENCH_DIR / "RESULTS.md",
        metavar="PATH",
        help="where to write the report (default bench/RESULTS.md)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
