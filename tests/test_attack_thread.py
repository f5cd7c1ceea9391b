"""Attacks on the thread backend: submit racing shutdown, exceptions shared between items."""

from __future__ import annotations

import threading
from queue import SimpleQueue
from typing import Any

import pytest

import plait
from plait._task import Task


class _PausingQueue:
    """Stands in for ThreadBackend._queue: a Task put by the thread named ``pause_in`` waits
    for ``go`` first. This holds submit() between its closed-check and its queue.put(), which
    a shutdown() in another thread once fell into (the put was outside the lock; it is under
    it now, so the shutdown below waits for the put instead)."""

    def __init__(self, real: SimpleQueue[Any], pause_in: str) -> None:
        self.real = real
        self.pause_in = pause_in
        self.entered = threading.Event()
        self.go = threading.Event()

    def put(self, item: Any) -> None:
        if isinstance(item, Task) and threading.current_thread().name == self.pause_in:
            self.entered.set()
            self.go.wait(30)
        self.real.put(item)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.real.get(*args, **kwargs)

    def get_nowait(self) -> Any:
        return self.real.get_nowait()


def _pause_submits(pool: plait.Pool, thread_name: str) -> _PausingQueue:
    backend = pool._backend
    queue = _PausingQueue(backend._queue, thread_name)  # type: ignore[attr-defined]
    backend._queue = queue  # type: ignore[attr-defined]
    return queue


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cancel_futures", [False, True])
def test_submit_racing_shutdown_never_leaves_a_future_pending(cancel_futures: bool) -> None:
    """Executor contract: once shutdown() returned, every future that submit() handed out is
    done (or cancelled). ThreadBackend.submit checks _closed under the lock but puts the task
    on the queue after releasing it; a shutdown() in between queues the exit sentinels first,
    the threads leave, and the task sits in the queue forever: result() never returns."""
    pool = plait.Pool("thread", workers=2)
    assert pool.submit(int, "1").result() == 1  # threads are up
    queue = _pause_submits(pool, "submitter")
    box: dict[str, Any] = {}

    def submitter() -> None:
        try:
            box["future"] = pool.submit(int, "42")
        except plait.PoolClosed as exc:
            box["closed"] = exc

    thread = threading.Thread(target=submitter, name="submitter")
    thread.start()
    assert queue.entered.wait(10)
    closer = threading.Thread(
        target=pool.shutdown, kwargs={"wait": True, "cancel_futures": cancel_futures}
    )
    closer.start()  # it races the paused submit
    queue.go.set()
    thread.join(10)
    closer.join(10)
    assert not closer.is_alive()
    if "closed" in box:
        return  # refused: fine
    future = box["future"]
    try:
        future.result(timeout=5)  # ran, or was cancelled: either way it is settled
    except plait.Cancelled:
        pass
    except TimeoutError:
        pytest.fail("a future submitted before shutdown() returned was never settled")
    except Exception:  # CancelledError and friends: settled
        pass


@pytest.mark.timeout(60)
def test_map_reader_racing_shutdown_ends_promptly() -> None:
    """README: shutdown(cancel_futures=True) from another thread ends the map's reader
    promptly. If the reader is inside submit() (between the closed-check and the put) the
    batch lands behind the exit sentinels and the reader waits for it forever (bounded here
    by Pool.map's timeout)."""
    pool = plait.Pool("thread", workers=1)
    assert pool.submit(int, "1").result() == 1
    queue = _pause_submits(pool, "reader")
    box: dict[str, Any] = {}

    def reader() -> None:
        try:
            box["results"] = list(pool.map(int, ["1", "2", "3"], chunksize=1, timeout=10))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=reader, name="reader")
    thread.start()
    assert queue.entered.wait(10)
    closer = threading.Thread(target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True})
    closer.start()  # it races the paused submit
    queue.go.set()
    thread.join(30)
    closer.join(10)
    assert not closer.is_alive()
    assert not thread.is_alive()
    error = box.get("error")
    assert not isinstance(error, TimeoutError), "the reader waited for a batch that never ran"


def _raise_shared(_: int) -> int:
    raise SHARED


SHARED = ValueError("one instance raised for every item")


@pytest.mark.timeout(30)
class SharedStateError(Exception):
    pass


def _rebuild_sharing(args: tuple[object, ...], state: dict[str, object]) -> SharedStateError:
    exc = SharedStateError(*args)
    exc.__dict__ = state  # the very dict of the original, as tblib's reducer does
    return exc


def _reduce_sharing(exc: SharedStateError) -> tuple[object, ...]:
    return (_rebuild_sharing, (exc.args, exc.__dict__))


SHARED_STATE = SharedStateError("one instance, raised for every item")


def _raise_shared_state(_: int) -> int:
    raise SHARED_STATE


def test_notes_stay_per_item_when_a_reducer_shares_the_exceptions_dict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tblib's pickling support (installed by importing Dask's distributed) registers a
    reducer for exceptions whose copies share the original's ``__dict__``: plait's copies of
    one exception raised for several items must still keep their notes apart."""
    import copyreg

    monkeypatch.setitem(copyreg.dispatch_table, SharedStateError, _reduce_sharing)
    try:
        results = list(plait.map(_raise_shared_state, range(3), chunksize=1, errors="return"))
        notes = [getattr(r, "__notes__", []) for r in results]
    finally:
        SHARED_STATE.__notes__ = []
    assert notes == [[f"plait: raised by item {index}: {index}"] for index in range(3)]


def test_notes_of_a_shared_exception_name_only_its_item() -> None:
    """README: an exception's notes name the failing item. A function that raises the same
    exception instance for every item (a module-level sentinel error) gets every item's note
    piled onto one object, so each returned error names all the items."""
    try:
        results = list(plait.map(_raise_shared, range(3), chunksize=1, errors="return"))
        notes = [getattr(r, "__notes__", []) for r in results]
    finally:
        SHARED.__notes__ = []
    for index, item_notes in enumerate(notes):
        assert item_notes == [f"plait: raised by item {index}: {index}"], item_notes
