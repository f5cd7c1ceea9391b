"""What did each worker do? Trace a run, print its summary, and open the timeline.

    python examples/trace_a_run.py
    # then open the .html it names in any browser (or the .json in https://ui.perfetto.dev)

The run has something to see: threads that wait, worker processes that compute, an item that
fails, a worker process that dies, and an item past its time limit. (docs/timeline.png is a
screenshot of its timeline: chromium --headless --screenshot --window-size=1400,600 FILE.html)
"""

import hashlib
import os
import tempfile
import time
from pathlib import Path

import plait


def fetch(page: int) -> int:
    if page == 7:
        raise ConnectionError(f"page {page}: the server hung up")
    time.sleep(0.002)  # a request to a slow server
    return page


def digest(block: int) -> str:
    if block == 30:
        os._exit(1)  # the worker process dies (plait.WorkerCrashed, for this item alone)
    return hashlib.sha256(bytes(block % 256) * 100_000).hexdigest()[:8]


def slow(step: int) -> int:
    if step == 1:
        plait.sleep(5)  # past task_timeout: it fails with plait.TaskTimeout, and stops
    return step


def main() -> None:
    folder = Path(tempfile.gettempdir())
    with plait.trace(folder / "run-trace.html") as trace:
        pages = list(plait.map(fetch, range(200), backend="thread", workers=4, errors="return"))
        digests = list(plait.map(digest, range(100), backend="process", errors="return"))
        steps = list(plait.map(slow, range(4), task_timeout=0.2, errors="return"))
    trace.write(folder / "run-trace.json")
    failed = [r for r in pages + digests + steps if isinstance(r, BaseException)]
    print(f"{len(pages)} pages, {len(digests)} digests, {len(steps)} steps; {len(failed)} failed:")
    for error in failed:
        print(f"  {type(error).__name__}: {str(error).splitlines()[0][:70]}")
    print(trace.summary())
    print(f"timeline written to {folder / 'run-trace.html'} (open it in any browser)")
    print(f"trace events written to {folder / 'run-trace.json'} (https://ui.perfetto.dev)")


if __name__ == "__main__":
    main()
