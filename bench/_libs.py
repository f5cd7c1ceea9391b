"""One adapter per library: open a pool, map, hand back the results, tear the pool down.

Each adapter is a context manager around the whole life of its pool, so a case that times
`with open_map(...) as results: consume(results)` includes pool start and teardown. Libraries
are imported inside their adapter: a missing one raises `ModuleNotFoundError` in the case
process only, where it is reported as "not installed".
"""

from __future__ import annotations

import importlib
import importlib.metadata
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["thread", "process"]

LIBS = (
    "serial",
    "plait",
    "plait-fork",
    "concurrent.futures",
    "multiprocessing",
    "joblib",
    "mpire",
    "tqdm",
)
"""Every library a scenario may run, in table order. `plait-fork` is plait with the start
method the stdlib pools use on Linux (fork), which plait takes only when asked."""

READS_ALL_INPUT = frozenset({"concurrent.futures", "tqdm"})
"""Libraries whose map submits the whole input before yielding a result (no endless input)."""


class Unavailable(Exception):
    """The library is importable but lacks what the case needs (e.g. `plait.map`)."""


@dataclass(frozen=True)
class Job:
    """One map: `fn` over `items` on `kind` workers, with the peers' tuned `chunksize`."""

    fn: Callable[[Any], Any]
    items: Iterable[Any]
    kind: Kind
    workers: int | None
    chunksize: int


_MODULES = {
    "serial": "builtins",
    "plait": "plait",
    "plait-fork": "plait",
    "concurrent.futures": "concurrent.futures",
    "multiprocessing": "multiprocessing.pool",
    "joblib": "joblib",
    "mpire": "mpire",
    "tqdm": "tqdm.contrib.concurrent",
}


def preload(lib: str) -> str:
    """Import `lib` (outside the timing) and return its version; `ModuleNotFoundError` if absent."""
    importlib.import_module(_MODULES[lib])
    if lib.startswith("plait"):
        # plait imports its engine on first use (so its worker processes start fast); import it
        # here, outside the timing, as the peers' modules are.
        for module in (
            "plait._api",
            "plait._backends._thread",
            "plait._backends.process._dispatcher",
        ):
            importlib.import_module(module)
        importlib.import_module("cloudpickle")
        lib = "plait"
    try:
        return importlib.metadata.version(lib)
    except importlib.metadata.PackageNotFoundError:
        return ""  # part of the standard library


def label(lib: str, kind: Kind) -> str:
    """The name of `lib`'s map on `kind` workers, as shown in the tables."""
    names = {
        "serial": "builtin map (serial)",
        "plait": "plait.map",
        "plait-fork": "plait.map (fork, asked for)",
        "concurrent.futures": f"{'Thread' if kind == 'thread' else 'Process'}PoolExecutor.map",
        "multiprocessing": f"multiprocessing {'ThreadPool' if kind == 'thread' else 'Pool'}.imap",
        "joblib": f"joblib Parallel ({'threading' if kind == 'thread' else 'loky'})",
        "mpire": f"mpire WorkerPool.imap ({'threading' if kind == 'thread' else 'fork'})",
        "tqdm": f"tqdm {kind}_map",
    }
    return names[lib]


def describe(lib: str, kind: Kind, workers: int | None, chunksize: int) -> str:
    """The settings `lib` runs with, as shown in the tables."""
    cpus = os.cpu_count() or 1
    if lib == "serial":
        return "-"
    if lib == "plait":
        return "defaults" if workers is None else f"defaults, workers={workers}"
    if lib == "plait-fork":
        return f"Workers({workers}, start_method='fork'), otherwise defaults"
    thread_default = min(32, cpus + 4)
    uses_executor = lib in ("concurrent.futures", "tqdm") and kind == "thread"
    n = workers if workers is not None else (thread_default if uses_executor else cpus)
    parts = [f"workers={n}"]
    if kind == "process" or lib in ("multiprocessing", "mpire", "joblib"):
        name = {"joblib": "batch_size", "mpire": "chunk_size"}.get(lib, "chunksize")
        parts.append(f"{name}={chunksize}")
    if kind == "process" and lib != "joblib":  # joblib runs loky's own start method
        start = "fork" if lib == "mpire" else multiprocessing.get_start_method()
        parts.append(f"start={start}")
    if lib == "tqdm":
        parts.append("bar to stderr")
    return ", ".join(parts)


def open_map(lib: str, job: Job) -> AbstractContextManager[Iterator[Any]]:
    """Start `lib`'s pool, map `job`, and shut the pool down when the block exits."""
    adapters: dict[str, Callable[[Job], AbstractContextManager[Iterator[Any]]]] = {
        "serial": _serial,
        "plait": _plait,
        "plait-fork": _plait_fork,
        "concurrent.futures": _futures,
        "multiprocessing": _multiprocessing,
        "joblib": _joblib,
        "mpire": _mpire,
        "tqdm": _tqdm,
    }
    return adapters[lib](job)


@contextmanager
def _serial(job: Job) -> Iterator[Iterator[Any]]:
    yield map(job.fn, job.items)


@contextmanager
def _plait(job: Job) -> Iterator[Iterator[Any]]:
    import plait

    if not hasattr(plait, "map"):  # an engine-less checkout
        raise Unavailable("plait.map not available")
    with plait.map(job.fn, job.items, workers=job.workers, backend=job.kind) as results:
        yield results


@contextmanager
def _plait_fork(job: Job) -> Iterator[Iterator[Any]]:
    import warnings

    import plait

    workers = plait.Workers(job.workers, start_method="fork")
    with warnings.catch_warnings():  # Python 3.12+ warns about fork beside threads
        warnings.simplefilter("ignore", DeprecationWarning)
        with plait.map(job.fn, job.items, workers=workers, backend=job.kind) as results:
            yield results


@contextmanager
def _futures(job: Job) -> Iterator[Iterator[Any]]:
    from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

    executor: Executor
    if job.kind == "thread":
        executor = ThreadPoolExecutor(job.workers)
        with executor:
            yield executor.map(job.fn, job.items)
    else:
        executor = ProcessPoolExecutor(job.workers)
        with executor:
            yield executor.map(job.fn, job.items, chunksize=job.chunksize)


@contextmanager
def _multiprocessing(job: Job) -> Iterator[Iterator[Any]]:
    from multiprocessing.pool import Pool, ThreadPool

    pool = ThreadPool(job.workers) if job.kind == "thread" else Pool(job.workers)
    try:
        yield pool.imap(job.fn, job.items, chunksize=job.chunksize)
    finally:
        pool.terminate()
        pool.join()


@contextmanager
def _joblib(job: Job) -> Iterator[Iterator[Any]]:
    from joblib import Parallel, delayed

    backend = "threading" if job.kind == "thread" else "loky"
    parallel = Parallel(
        n_jobs=job.workers or -1,
        backend=backend,
        batch_size=job.chunksize,
        return_as="generator",
    )
    results = parallel(delayed(job.fn)(item) for item in job.items)
    try:
        yield results
    finally:
        results.close()
        if backend == "loky":  # loky keeps its workers for the next call: stop them too
            loky: Any = importlib.import_module("joblib.externals.loky")
            loky.get_reusable_executor(reuse=True).shutdown(wait=True)


@contextmanager
def _mpire(job: Job) -> Iterator[Iterator[Any]]:
    from mpire.pool import WorkerPool

    start_method = "threading" if job.kind == "thread" else "fork"
    with WorkerPool(n_jobs=job.workers, start_method=start_method) as pool:
        yield pool.imap(job.fn, job.items, chunk_size=job.chunksize)


@contextmanager
def _tqdm(job: Job) -> Iterator[Iterator[Any]]:
    from tqdm.contrib.concurrent import process_map, thread_map

    if job.kind == "thread":
        results = thread_map(job.fn, job.items, max_workers=job.workers, chunksize=1)
    else:
        results = process_map(job.fn, job.items, max_workers=job.workers, chunksize=job.chunksize)
    yield iter(results)
