"""plait.map on every backend: results, order, laziness, errors, abandoning."""

from __future__ import annotations

import itertools
import os
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

import plait
from conftest import on
from plait._chunking import max_batch
from plait._scheduler import max_items_in_flight


def double(x: int) -> int:
    return x * 2


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


class Counted:
    """An endless input that counts how many items were read from it."""

    def __init__(self) -> None:
        self.read = 0

    def __iter__(self) -> Iterator[int]:
        for i in itertools.count():
            self.read = i + 1
            yield i


def test_results_in_input_order(any_backend: str) -> None:
    results = plait.map(on(any_backend, double), range(1000), backend=any_backend)
    assert list(results) == [x * 2 for x in range(1000)]


def test_empty_input(any_backend: str) -> None:
    assert list(plait.map(on(any_backend, double), [], backend=any_backend)) == []


def test_several_iterables_call_fn_with_one_item_of_each(any_backend: str) -> None:
    results = plait.map(on(any_backend, pow), [2, 3, 4], [5, 2, 0], backend=any_backend)
    assert list(results) == [32, 9, 1]


def test_unordered_yields_every_result_once(any_backend: str) -> None:
    results = plait.map(on(any_backend, double), range(5000), backend=any_backend, ordered=False)
    assert sorted(results) == [x * 2 for x in range(5000)]


def test_unordered_yields_in_completion_order() -> None:
    release_first = threading.Event()

    def wait_for_release(x: int) -> int:
        if x == 0:
            assert release_first.wait(10)
        return x

    with plait.map(wait_for_release, range(4), workers=4, chunksize=1, ordered=False) as results:
        later = [next(results) for _ in range(3)]  # item 0 is still blocked
        release_first.set()
        assert sorted(later) == [1, 2, 3]
        assert list(results) == [0]


def test_lambdas_and_closures_run_on_processes() -> None:
    offset = 10
    assert list(plait.map(lambda x: x + offset, range(5), backend="process")) == list(range(10, 15))


def test_workers_run_in_other_processes() -> None:
    pids = set(plait.map(lambda _: os.getpid(), range(50), backend="process", chunksize=1))
    assert os.getpid() not in pids


def test_explicit_chunksize(any_backend: str) -> None:
    results = plait.map(on(any_backend, double), range(100), backend=any_backend, chunksize=7)
    assert list(results) == [x * 2 for x in range(100)]


def test_endless_input_is_read_a_bounded_window_ahead(any_backend: str) -> None:
    source = Counted()
    consumed = 0
    worst_lead = 0
    with plait.map(on(any_backend, double), source, backend=any_backend) as results:
        for value in itertools.islice(results, 200_000):
            assert value == consumed * 2
            consumed += 1
            worst_lead = max(worst_lead, source.read - consumed)
    assert consumed == 200_000
    assert worst_lead <= max_items_in_flight(any_backend) + max_batch(any_backend)


def test_input_is_not_read_while_the_consumer_pauses(any_backend: str) -> None:
    source = Counted()
    with plait.map(on(any_backend, double), source, backend=any_backend, chunksize=1) as results:
        assert next(results) == 0
        read_after_first = source.read
        assert next(results) == 2  # one more result may read at most one more batch
        assert source.read <= read_after_first + 1


def test_input_is_read_lazily_nothing_before_the_first_result() -> None:
    source = Counted()
    results = plait.map(double, source)
    assert source.read == 0
    results.close()


def test_error_reaches_the_caller_as_its_own_type_with_item_note(any_backend: str) -> None:
    results = plait.map(on(any_backend, fail_on_three), range(10), backend=any_backend, chunksize=2)
    assert next(results) == 0
    with pytest.raises(ValueError, match="bad item 3") as info:
        list(results)
    assert any("item 3: 3" in note for note in info.value.__notes__)
    text = "".join(traceback.format_exception(info.value))
    assert 'raise ValueError(f"bad item {x}")' in text  # the worker's frame is in the story


def test_error_from_a_process_carries_the_worker_traceback_as_cause() -> None:
    with pytest.raises(ValueError, match="bad item 3") as info:
        list(plait.map(fail_on_three, range(10), backend="process"))
    cause = info.value.__cause__
    assert isinstance(cause, plait.RemoteTraceback)
    assert "fail_on_three" in str(cause)
    assert "Traceback (most recent call last)" in str(cause)


def test_errors_return_puts_the_exception_in_the_items_place(any_backend: str) -> None:
    results = list(
        plait.map(on(any_backend, fail_on_three), range(6), backend=any_backend, errors="return")
    )
    assert results[:3] == [0, 1, 2]
    assert results[4:] == [4, 5]
    assert isinstance(results[3], ValueError)
    assert str(results[3]) == "bad item 3"


def test_exception_that_cannot_be_rebuilt_arrives_as_remote_error() -> None:
    class Picky(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a}/{b}")  # args no longer match __init__: unpickling fails

    def raise_picky(x: int) -> int:
        raise Picky(x, 2)

    with pytest.raises(plait.RemoteError, match="Picky") as info:
        list(plait.map(raise_picky, [1], backend="process"))
    assert info.value.type_name.endswith("Picky")
    assert "raise Picky(x, 2)" in info.value.traceback


def test_unpicklable_result_fails_only_that_item() -> None:
    def make(x: int) -> object:
        return threading.Lock() if x == 2 else x

    results = list(plait.map(make, range(4), backend="process", errors="return", chunksize=4))
    assert results[:2] == [0, 1]
    assert results[3] == 3
    assert isinstance(results[2], TypeError)
    assert any("could not be pickled" in note for note in results[2].__notes__)


def test_a_failing_input_raises_after_the_results_before_it(any_backend: str) -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("disk gone")

    results = plait.map(on(any_backend, double), source(), backend=any_backend)
    assert next(results) == 2
    assert next(results) == 4
    with pytest.raises(OSError, match="disk gone"):
        next(results)


def test_iterables_of_different_lengths_fail_when_it_shows(any_backend: str) -> None:
    results = plait.map(on(any_backend, pow), iter([1, 2, 3]), iter([1, 2]), backend=any_backend)
    with pytest.raises(ValueError, match="shorter"):
        list(results)


def test_break_stops_the_work_and_releases_workers(any_backend: str) -> None:
    for value in plait.map(on(any_backend, double), range(10**9), backend=any_backend):
        if value >= 100:
            break
    # The leak fixture checks that every worker thread and process is gone.


def test_close_stops_calling_fn() -> None:
    calls = 0
    lock = threading.Lock()

    def count(x: int) -> int:
        nonlocal calls
        with lock:
            calls += 1
        return x

    results = plait.map(count, range(10**9), chunksize=10, workers=2)
    assert next(results) == 0
    results.close()
    settled = calls
    assert settled <= max_items_in_flight("thread") + 100
    with pytest.raises(StopIteration):
        next(results)
    assert calls == settled


def test_dropping_the_iterator_releases_workers(backend: str) -> None:
    results = plait.map(double, range(10**9), backend=backend)
    assert next(results) == 0
    del results


def test_exception_in_the_consumer_releases_workers(backend: str) -> None:
    def consume() -> None:
        with plait.map(double, range(10**9), backend=backend) as results:
            for _ in results:
                raise KeyError("consumer failed")

    with pytest.raises(KeyError):
        consume()


def test_never_iterated_starts_nothing(backend: str) -> None:
    plait.map(double, range(10), backend=backend)
    assert threading.active_count() >= 1  # the leak fixture does the real check


def test_progress_bar_counts_items(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(plait.map(double, range(300), progress=True, chunksize=50)) == [
        x * 2 for x in range(300)
    ]
    assert "300/300" in capsys.readouterr().err


def test_progress_bar_without_length(capsys: pytest.CaptureFixture[str]) -> None:
    list(plait.map(double, iter(range(120)), progress=True))
    assert "120" in capsys.readouterr().err


def test_progress_takes_tqdm_s_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    """A generator whose length the caller knows gets its total; desc and unit as tqdm's."""
    pages = (x for x in range(120))
    progress = {"desc": "pages", "total": 120, "unit": "page"}
    assert len(list(plait.map(double, pages, progress=progress))) == 120
    err = capsys.readouterr().err
    assert "pages:" in err
    assert "120/120" in err
    assert "page/s" in err


def test_a_progress_option_tqdm_lacks_is_refused_at_the_call() -> None:
    with pytest.raises(TypeError, match=r"plait\.map: progress= has no tqdm option 'dsc'"):
        plait.map(double, range(3), progress={"dsc": "typo"})
    with pytest.raises(ValueError, match=r"progress=\{'iterable': ...\}: plait counts"):
        plait.map(double, range(3), progress={"iterable": [1]})
    with pytest.raises(ValueError, match="progress must be True, False or a dict of tqdm's"):
        plait.map(double, range(3), progress="yes")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="progress must be True, False or a dict of tqdm's"):
        plait.map(double, range(3), progress=1)  # type: ignore[call-overload]  # (== True)


def test_large_payloads_travel_intact_to_processes() -> None:
    blobs: list[object] = [
        bytes(range(256)) * 1024,  # 256 KiB of bytes: sent out of band
        bytearray(b"x" * 100_000),  # a bytearray: out of band natively
        b"small",
        ("a tuple", b"y" * 70_000),  # large bytes inside a tuple: in band
    ]
    digests = list(plait.map(repr, blobs, backend="process", chunksize=4))
    assert digests == [repr(b) for b in blobs]


def big_result(n: int) -> object:
    if n == 2:
        return "small"
    return bytes([n]) * (200_000 + n)  # out of band on the way back


def test_large_results_travel_intact_from_processes() -> None:
    results = list(plait.map(big_result, range(5), backend="process", chunksize=5))
    assert results == [big_result(n) for n in range(5)]


def test_items_that_wait_for_each_other_meet_with_chunksize_one() -> None:
    """Items that wait for each other, each its own batch, a thread for each that waits at
    once (batched together, see test_split.py)."""
    meet = threading.Barrier(4, timeout=10)

    def wait_for_the_others(x: int) -> int:
        if 100 <= x < 104:
            meet.wait()  # (items 100-103 meet: a BrokenBarrierError after 10 s if they cannot)
        return x

    results = plait.map(wait_for_the_others, range(200), backend="thread", chunksize=1, workers=8)
    assert list(results) == list(range(200))


@pytest.mark.parametrize("backend", ["auto", "thread"])
def test_quick_work_on_large_items_reads_a_megabyte_or_so_ahead_not_thousands(
    backend: str,
) -> None:
    """`len` of 100 KB chunks: quick work, so batches grew to thousands of items, each held
    until its batch ran (224 MB at once, inline; 330 MB on threads, where the builtin map
    holds 8): a batch now holds about a megabyte of items (as sys.getsizeof sees them)."""
    read = [0]

    def chunks(count: int) -> Iterator[bytes]:
        for _ in range(count):
            read[0] += 1
            yield bytes(100_000)

    kwargs: dict[str, Any] = {} if backend == "auto" else {"backend": backend, "workers": 2}
    ahead = 0
    with plait.map(len, chunks(3000), **kwargs) as results:
        for taken, size in enumerate(results, start=1):
            assert size == 100_000
            ahead = max(ahead, read[0] - taken)
    assert taken == 3000
    assert ahead < 200, ahead  # (2 batches a worker, each of about 10 items, and the first few)
