"""What ``plait.trace`` costs: the tiny-task map with no trace open and with one, side by side.

    python bench/bench_trace.py            # full run (about a minute)
    python bench/bench_trace.py --quick    # smoke run

Each case runs in a fresh process (``python bench/bench_trace.py --case BACKEND on|off N``),
the cases interleaved (off, on, off, on, ...) so that a noisy moment on the machine is spread
over both; the report shows the medians. The clock covers the map from the call until its last
result; with a trace on, also the ``with`` block's end, which does not write a file here (no
path given: the records are kept in memory), and then ``summary()`` is timed apart, as is
writing the JSON file.

Targets (issue: trace): with tracing on, at most 5 % slower on the tiny-task map (a record per
batch, never per item) and at most 1 µs per event. The map's difference is within the noise of
a run (a few hundred batches), so the cost of an event is also measured directly: a batch made
and finished in a loop, with and without a trace open.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def double(x: int) -> int:
    return 2 * x


def case(backend: str, mode: str, count: int) -> dict[str, float]:
    import plait

    workers = 2
    if mode == "off":
        start = time.perf_counter()
        total = sum(plait.map(double, range(count), backend=backend, workers=workers))
        took = time.perf_counter() - start
        assert total == count * (count - 1)
        return {"seconds": took}
    start = time.perf_counter()
    with plait.trace() as trace:
        total = sum(plait.map(double, range(count), backend=backend, workers=workers))
    took = time.perf_counter() - start
    assert total == count * (count - 1)
    began = time.perf_counter()
    trace.summary()
    summary = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        trace.write(Path(folder, "run.json"))
        written = time.perf_counter() - began
    return {
        "seconds": took,
        "batches": float(len(trace.batches)),
        "summary": summary,
        "write": written,
    }


def per_event(count: int = 200_000) -> tuple[float, float]:
    """Microseconds that one batch costs the trace (its record made as the batch is made,
    kept as it ends) over the same batch's finish without a trace: (off, on)."""
    import plait
    from plait import _trace
    from plait._task import Job, Kind, Outcome, Task

    job = Job(double, Kind.MAP)
    outcome = Outcome([0, 2], began=time.perf_counter(), elapsed=1e-4)
    outcome.where = ("this process", "plait-thread-0 [1]")

    def finish(task: Task, outcome: Outcome) -> None:
        pass

    def batches(traced: bool) -> float:  # (as a map's scheduler makes and finishes them)
        start = time.perf_counter()
        for _ in range(count):
            task = Task(job, [0, 1], start=bool, finish=finish)
            if _trace.active:
                task.queued = _trace.clock()
            if task.queued:
                _trace.keep(task, outcome, "thread")
            task.finish(task, outcome)
        return (time.perf_counter() - start) / count * 1e6

    off = min(batches(False) for _ in range(3))
    with plait.trace():
        on = min(batches(True) for _ in range(3))
    return off, on


def timeline(batches: int = 100_000) -> dict[str, str] | None:
    """A timeline of ``batches`` batches (8 lanes) opened in headless Chromium: its size, and
    the page's own clock from its start to the end of its first drawing, and for that
    drawing alone (None without Chromium)."""
    import re
    import shutil

    from plait._trace import Trace

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return None
    trace = Trace()
    now = time.perf_counter()
    for k in range(batches):
        start = now + k * 1e-4
        where = ("this process", f"plait-thread-{k % 8}")
        errors = {"ValueError": 1} if k % 1000 == 0 else None
        raw = ("work", "thread", where, start, start, 7e-4, start + 7e-4, 4, 4 * k, 1, False)
        trace._raw.append((*raw, errors, True, False, 0))
    with tempfile.TemporaryDirectory() as folder:
        page = trace.write(Path(folder, "big.html"))
        size = page.stat().st_size
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={folder}/profile", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
    body = re.search(r"<body([^>]*)>", dom)
    found = dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(1) if body else ""))
    found["size"] = f"{size / 1e6:.1f} MB"
    return found


def run(backend: str, mode: str, count: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--case", backend, mode, str(count)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--case", nargs=3, metavar=("BACKEND", "MODE", "N"))
    args = parser.parse_args()
    if args.case:
        backend, mode, count = args.case
        print(json.dumps(case(backend, mode, int(count))))
        return
    count = 100_000 if args.quick else 1_000_000
    repeat = args.repeat or (1 if args.quick else 7)
    print(f"`python bench/bench_trace.py{' --quick' if args.quick else ''}`: {count:,} tiny")
    print(f"items (`x * 2`) on 2 workers, median of {repeat} fresh processes, off and on")
    print("interleaved.\n")
    print("| backend | trace off | trace on | on / off | batches | summary | JSON written |")
    print("|---|---|---|---|---|---|---|")
    for backend in ("thread", "process"):
        runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        for _ in range(repeat):
            for mode in ("off", "on"):
                runs[mode].append(run(backend, mode, count))
        off = statistics.median(r["seconds"] for r in runs["off"])
        on = statistics.median(r["seconds"] for r in runs["on"])
        batches = statistics.median(r["batches"] for r in runs["on"])
        summary = statistics.median(r["summary"] for r in runs["on"])
        write = statistics.median(r["write"] for r in runs["on"])
        print(
            f"| {backend} | {off:.3f} s | {on:.3f} s | {on / off:.3f}x | {batches:,.0f} | "
            f"{summary * 1e3:.1f} ms | {write * 1e3:.1f} ms |"
        )
    page = timeline()
    if page is None:
        print("\nThe 100,000-batch timeline: Chromium is not installed, not measured.")
    else:
        print(
            f"\nA timeline of 100,000 batches on 8 lanes: {page['size']}; in headless Chromium, "
            f"{page.get('load-ms')} ms from the page's start to the end of its first drawing "
            f"(the drawing alone {page.get('draw-ms')} ms), errors: {page.get('errors') or 'none'}."
        )
    off, on = per_event()
    print(
        f"\nOne batch made and finished, in this process (best of 3 x 200,000): {off:.2f} µs "
        f"without a trace, {on:.2f} µs with one: {on - off:.2f} µs per event."
    )


if __name__ == "__main__":
    main()
