"""``plait run`` side by side with ``xargs -P`` and GNU parallel, in one run.

    python bench/bench_run.py            # full run (about two minutes)
    python bench/bench_run.py --quick    # smoke run

1. 1,000 trivial jobs (``true``) at 4 at a time: ``seq 1000 | xargs -P 4 -n 1 true``,
   ``seq 1000 | parallel -j 4 true``, ``seq 1000 | plait run -j 4 true``; the rounds
   interleaved (a noisy moment on the machine is spread over all three), medians reported.
2. Start-up: from the command's launch to its one job's start (the job prints the clock).
3. ``--keep-order`` over endless stdin (``yes``): the resident memory of ``plait run`` after
   10,000 jobs and after 100,000.
4. ``--line-buffer`` and one job writing one long line (50 and 200 MB): plait run and GNU
   parallel, the line's time growing with its length (a line's end looked for in all that
   waited, at each read, made 200 MB take 27 s).

Targets (issue: the plait command): 1 at most 1.3x the time of xargs and at least 3x faster
than GNU parallel; 2 at most 150 ms; 3 flat.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PLAIT = [sys.executable, "-m", "plait", "run"]


def timed(command: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, shell=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def trivial_jobs(count: int, rounds: int) -> dict[str, float]:
    plait = " ".join(PLAIT)
    commands = {
        "xargs -P 4": f"seq {count} | xargs -P 4 -n 1 true",
        "plait run -j 4": f"seq {count} | {plait} -j 4 true",
    }
    if shutil.which("parallel"):
        commands["GNU parallel -j 4"] = f"seq {count} | parallel --will-cite -j 4 true"
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            times[name].append(timed(command))
    return {name: statistics.median(values) for name, values in times.items()}


def start_up(rounds: int) -> float:
    """Milliseconds from launch to the job's start (median)."""
    took = []
    for _ in range(rounds):
        launched = time.time_ns()
        out = subprocess.run(
            [*PLAIT, "date +%s%N # {}", ":::", "x"], capture_output=True, text=True, check=True
        ).stdout
        took.append((int(out.split()[0]) - launched) / 1e6)
    return statistics.median(took)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def keep_order_memory(marks: tuple[int, ...]) -> list[tuple[int, int]]:
    """(jobs done, plait's RSS in KiB) at each mark, over endless input."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder, "log")
        yes = subprocess.Popen(["yes", "x"], stdout=subprocess.PIPE)
        plait = subprocess.Popen(
            [*PLAIT, "-k", "-j", "4", "--joblog", str(log), "true"],
            stdin=yes.stdout,
            stdout=subprocess.DEVNULL,
        )
        assert yes.stdout is not None
        yes.stdout.close()
        found = []
        try:
            for mark in marks:
                while not log.exists() or log.stat().st_size < mark * 49:  # (a line: ~49 B)
                    time.sleep(0.05)
                done = len(log.read_bytes().splitlines()) - 1
                found.append((done, rss_kib(plait.pid)))
        finally:
            plait.terminate()
            plait.wait()
            yes.kill()
            yes.wait()
    return found


def long_lines(sizes: tuple[int, ...], rounds: int) -> dict[str, dict[int, float]]:
    plait = " ".join(PLAIT)
    takes: dict[str, dict[int, float]] = {"plait run --lb": {}}
    if shutil.which("parallel"):
        takes["parallel --lb"] = {}
    for size in sizes:
        job = f"'head -c {size} /dev/zero; echo' ::: x"
        for name in takes:
            tool = plait if name.startswith("plait") else "parallel --will-cite"
            line = f"{tool} --lb {job}"
            takes[name][size] = statistics.median(timed(line) for _ in range(rounds))
    return takes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 2 if args.quick else 7
    jobs = trivial_jobs(200 if args.quick else 1000, rounds)
    started = start_up(3 if args.quick else 11)
    memory = keep_order_memory((2_000, 10_000) if args.quick else (10_000, 100_000))
    sizes = (5_000_000, 20_000_000) if args.quick else (50_000_000, 200_000_000)
    lines = long_lines(sizes, 1 if args.quick else 3)
    print(f"`python bench/bench_run.py`{' --quick' if args.quick else ''}: {os.cpu_count()} cores")
    print()
    print(f"{1000 if not args.quick else 200} jobs of `true`, medians of {rounds} interleaved:")
    print()
    print("| command | time | plait's ratio to it |")
    print("|---|---|---|")
    ours = jobs["plait run -j 4"]
    for name, took in jobs.items():
        print(f"| `{name}` | {took:.3f} s | {ours / took:.2f}x |")
    print()
    print(f"Start-up, launch to the job's start (median): {started:.0f} ms")
    print()
    print("`--keep-order` over endless stdin: " + ", ".join(
        f"{kib / 1024:.1f} MiB after {done:,} jobs" for done, kib in memory
    ))  # fmt: skip
    print()
    print("`--line-buffer`, one job writing one line (medians):")
    print()
    print("| command | " + " | ".join(f"{size / 1e6:.0f} MB" for size in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, times in lines.items():
        print(f"| `{name}` | " + " | ".join(f"{times[size]:.2f} s" for size in sizes) + " |")


if __name__ == "__main__":
    main()
