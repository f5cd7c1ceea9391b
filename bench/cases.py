"""One benchmark case, run in a fresh process by `run.py`; reports one JSON line on stdout.

    python bench/cases.py MODE LIB PARAMS_JSON

MODE is `map` (map a task over a finite input and consume every result) or `endless` (map the
tiny task over an endless counting input, consume the first `n` results, stop). The line starts
with `RESULT_MARK`, so anything a library prints on stdout cannot be mistaken for it.
"""

from __future__ import annotations

import gc
import itertools
import json
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import _tasks
from _libs import READS_ALL_INPUT, Job, Kind, Unavailable, open_map, preload

RESULT_MARK = "BENCH-RESULT "

TASKS: dict[str, Callable[[Any], int]] = {
    "double": _tasks.double,
    "sleep": _tasks.sleep_io,
    "spin": _tasks.spin,
    "payload": _tasks.payload_len,
}


def main(argv: list[str]) -> int:
    mode, lib, raw = argv
    params: dict[str, Any] = json.loads(raw)
    try:
        version = preload(lib)
    except ModuleNotFoundError as exc:
        return _report({"status": "not installed", "error": str(exc)})
    try:
        result = run_endless(lib, params) if mode == "endless" else run_map(lib, params)
    except Unavailable as exc:
        return _report({"status": "unavailable", "error": str(exc)})
    except Exception as exc:
        traceback.print_exc()
        return _report({"status": "error", "error": f"{type(exc).__name__}: {exc}"})
    return _report({"status": "ok", "version": version, **result})


def run_map(lib: str, params: dict[str, Any]) -> dict[str, Any]:
    """Time pool start + map + consume + teardown over a finite input; check the results."""
    task, n = params["task"], params["n"]
    items, expected = _inputs(task, n, params)
    job = _job(TASKS[task], items, params)
    gc.collect()
    start = time.perf_counter()
    with open_map(lib, job) as results:
        total = sum(results)
    seconds = time.perf_counter() - start
    if total != expected:
        raise AssertionError(f"wrong results: sum {total}, expected {expected}")
    return {"seconds": seconds}


def run_endless(lib: str, params: dict[str, Any]) -> dict[str, Any]:
    """Consume the first `n` results of the tiny task over an endless input, then stop.

    Samples how far reading ran ahead of consumption every `sample_every` results, and the
    growth of peak RSS over a baseline taken after imports and a warm-up map.
    """
    n, every = params["n"], params["sample_every"]
    with open_map(lib, _job(_tasks.double, _tasks.CountingSource(1_000), params)) as warm:
        sum(warm)
    gc.collect()
    baseline = _peak_rss_kib()
    finite = lib in READS_ALL_INPUT
    source = _tasks.CountingSource(n if finite else 2 * n + 100_000)
    ahead: list[int] = []
    total = consumed = 0
    start = time.perf_counter()
    with open_map(lib, _job(_tasks.double, source, params)) as results:
        while consumed < n:  # take the results in blocks, at C speed, sampling between blocks
            block = min(every, n - consumed)
            total += sum(itertools.islice(results, block))
            consumed += block
            ahead.append(source.read - consumed)
    seconds = time.perf_counter() - start
    if total != n * (n - 1):
        raise AssertionError(f"wrong results: sum {total}, expected {n * (n - 1)}")
    half = len(ahead) // 2
    return {
        "seconds": seconds,
        "finite": finite,
        "cap_hit": not finite and source.read >= source.limit,
        "read_ahead": max(ahead, default=0),
        "read_ahead_first_half": max(ahead[:half], default=0),
        "read_ahead_second_half": max(ahead[half:], default=0),
        "rss_growth_kib": _peak_rss_kib() - baseline,
    }


def _job(fn: Callable[[Any], int], items: Iterable[Any], params: dict[str, Any]) -> Job:
    kind: Kind = params["kind"]
    return Job(fn, items, kind, params["workers"], params["chunksize"])


def _inputs(task: str, n: int, params: dict[str, Any]) -> tuple[Iterable[Any], int]:
    """The input of `task` (built before the clock starts) and the sum its results must have."""
    if task == "double":
        return range(n), n * (n - 1)
    if task == "sleep":
        return range(n), n * (n - 1) // 2
    if task == "spin":
        loops = params["loops"]
        return [loops] * n, n * _tasks.spin(loops)
    size = params["payload_bytes"]
    return [bytes([i % 256]) * size for i in range(n)], n * size


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _report(result: dict[str, Any]) -> int:
    sys.stdout.flush()
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
