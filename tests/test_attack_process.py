"""Attacks on the process backend: results and exceptions that do not survive the trip back."""

from __future__ import annotations

import os

import pytest

import plait


class NeedsTwoArgs(Exception):
    """An exception whose __init__ takes other arguments than it passes to Exception: it
    pickles in the worker but cannot be unpickled (TypeError in __init__)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


def error_as_value(x: int) -> object:
    """A common "errors as values" style: item 3 *returns* an exception object."""
    return NeedsTwoArgs(404, "not found") if x == 3 else x


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


def raise_broken_str(x: int) -> int:
    if x == 3:
        raise BrokenStr("x")
    return x


@pytest.mark.timeout(60)
def test_result_that_cannot_be_unpickled_fails_alone_and_does_not_hang_the_map() -> None:
    """README: "a result that will not [pickle] fails alone ... the rest of its batch goes on".
    A result that pickles in the worker but cannot be rebuilt in the parent kills the
    dispatcher thread instead: its task is lost and the map waits forever (bounded here by
    Pool.map's timeout, which raises TimeoutError)."""
    with plait.Pool("process", workers=1) as pool:
        results = list(pool.map(error_as_value, range(6), chunksize=1, errors="return", timeout=20))
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5]
    assert isinstance(results[3], Exception)


@pytest.mark.timeout(60)
def test_pool_survives_a_result_that_cannot_be_unpickled() -> None:
    """One bad result must not kill the pool: later submits still run."""
    with plait.Pool("process", workers=1) as pool:
        bad = pool.submit(error_as_value, 3)
        assert bad.exception(timeout=20) is not None  # TimeoutError here: the future is lost
        assert pool.submit(error_as_value, 1).result(timeout=20) == 1


@pytest.mark.timeout(60)
def test_exception_with_broken_str_is_delivered_not_a_worker_crash() -> None:
    """An exception whose __str__ raises kills the worker process (encode_error calls
    str(exc) unguarded): the user's exception is replaced by WorkerCrashed and, in a batch,
    every item before it runs twice."""
    results = list(
        plait.map(raise_broken_str, range(6), backend="process", workers=1, errors="return")
    )
    assert results[:3] == [0, 1, 2]
    assert results[4:] == [4, 5]
    assert not isinstance(results[3], plait.WorkerCrashed), results[3]
    assert isinstance(results[3], BrokenStr | plait.RemoteError)


def exit_on_sevens(x: int) -> int:
    if x % 50 == 7:
        import os

        os._exit(3)
    return x


@pytest.mark.timeout(120)
@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("crash_retries", [False, True])
def test_guard_crashing_batches_rerun_item_by_item_deliver_every_outcome_once(
    ordered: bool, crash_retries: bool
) -> None:
    """Guard (passes today): batches of 25 with crashing items, re-run item by item, with or
    without Retry(crashes=True), ordered or not: every item's outcome arrives exactly once,
    only the crashing items fail."""
    retry = plait.Retry(retries=1, crashes=True) if crash_retries else None
    results = list(
        plait.map(
            exit_on_sevens,
            range(200),
            backend="process",
            workers=2,
            chunksize=25,
            ordered=ordered,
            errors="return",
            retries=retry,
        )
    )
    assert len(results) == 200
    values = sorted(r for r in results if isinstance(r, int))
    assert values == [x for x in range(200) if x % 50 != 7]
    crashed = [r for r in results if not isinstance(r, int)]
    assert len(crashed) == 4
    assert all(isinstance(r, plait.WorkerCrashed) for r in crashed)
    if ordered:
        assert [i for i, r in enumerate(results) if not isinstance(r, int)] == [7, 57, 107, 157]


class HereOnly:
    """An item that pickles here and is rebuilt only here: its ``__setstate__`` refuses any
    other process (a resource only this one can reopen)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __getstate__(self) -> dict[str, int]:
        return {"value": self.value, "made_in": os.getpid()}

    def __setstate__(self, state: dict[str, int]) -> None:
        if os.getpid() != state["made_in"]:
            raise LookupError("cannot be rebuilt in another process")
        self.value = state["value"]


def double_value(x: int | HereOnly) -> int:
    return 2 * (x.value if isinstance(x, HereOnly) else x)


@pytest.mark.timeout(60)
def test_an_item_the_worker_cannot_rebuild_fails_alone() -> None:
    """The batch travels as one pickle: one item the worker could not rebuild failed its 16
    to 32 batch-mates with its error, unrun (their own errors hidden). The batch is read
    again item by item (none of it ran): that item fails alone, with its own error."""
    items: list[int | HereOnly] = list(range(40))
    items[20] = HereOnly(5)
    results = list(
        plait.map(double_value, items, backend="process", workers=2, chunksize=8, errors="return")
    )
    assert [i for i, r in enumerate(results) if isinstance(r, BaseException)] == [20]
    assert isinstance(results[20], LookupError), repr(results[20])
    assert [r for i, r in enumerate(results) if i != 20] == [2 * i for i in range(40) if i != 20]
