"""ChunkSizer on its own: pure decisions, fed measurements by hand."""

from __future__ import annotations

from plait._chunking import GROWTH, MAX_BATCH_BYTES, ChunkSizer, max_batch

FAST = 1e-9  # seconds per batch: so cheap that only the caps decide


def grown(sizer: ChunkSizer, times: int) -> list[int]:
    """The sizes asked for while each batch of that size reports itself nearly free."""
    sizes = []
    for _ in range(times):
        size = sizer.next_size()
        sizes.append(size)
        sizer.observe(size, FAST)
    return sizes


def test_it_starts_at_one_and_grows_by_at_most_growth_per_measurement() -> None:
    assert grown(ChunkSizer("thread", 4), 4) == [1, GROWTH, GROWTH**2, GROWTH**3]


def test_growth_stops_at_max_batch_and_at_the_backends_limit() -> None:
    assert grown(ChunkSizer("thread", 4), 12)[-1] == max_batch("thread")
    assert grown(ChunkSizer("process", 4), 12)[-1] == max_batch("process") > max_batch("thread")
    limited = ChunkSizer("process", 4, limit=5)
    assert grown(limited, 5)[-1] == 5
    assert limited.max_size == 5


def test_slow_items_keep_batches_small() -> None:
    sizer = ChunkSizer("process", 4)
    sizer.observe(1, 1.0)  # a second per item: far over the target per batch
    assert sizer.next_size() == 1


def test_the_bytes_sent_cap_a_batch_near_a_megabyte() -> None:
    sizer = ChunkSizer("process", 4)
    sizer.observe(1, FAST, sent_bytes=MAX_BATCH_BYTES // 8)  # 8 such items fill a megabyte
    assert sizer.next_size() == GROWTH
    sizer.observe(GROWTH, FAST, sent_bytes=GROWTH * MAX_BATCH_BYTES // 8)
    assert sizer.next_size() == 8
    sizer.observe(1, FAST, sent_bytes=2 * MAX_BATCH_BYTES)  # one item over the cap: alone
    assert sizer.next_size() == 1


def test_near_the_end_of_a_known_input_batches_shrink_to_share_the_tail() -> None:
    sizer = ChunkSizer("process", 2, total=100)
    for size in (1, 4, 16):  # a millisecond an item: 25 items a batch (25 ms), at most
        sizer.observe(size, size * 0.001)
    assert sizer.next_size() == 25  # 100 left, over 2 workers, twice over: 25 again
    sizer.taken(90)
    assert sizer.next_size() == 3
    sizer.taken(9)
    assert sizer.next_size() == 2  # 1 left: (a process's trip costs more than an item's work)


def test_a_tail_of_tiny_items_is_not_split_into_trips_that_cost_more_than_its_work() -> None:
    sizer = ChunkSizer("thread", 2, total=1000)
    sizes = grown(sizer, 4)
    assert sizes == [1, GROWTH, GROWTH**2, GROWTH**3]
    sizer.taken(sum(sizes))
    assert sizer.next_size() == GROWTH**4  # 915 left, but splitting them would not pay


def test_a_fixed_size_never_changes() -> None:
    sizer = ChunkSizer("process", 4, fixed=10, total=12)
    sizer.observe(10, 100.0)
    sizer.taken(10)
    assert sizer.next_size() == 10
    assert sizer.max_size == 10


def test_async_batches_are_as_large_as_the_backend_allows() -> None:
    sizer = ChunkSizer("async", 8, limit=32)
    sizer.observe(32, 5.0)  # concurrent items: a batch's time says nothing of its size
    assert sizer.next_size() == 32
    assert sizer.max_size == 32


def test_a_batch_measured_at_no_time_at_all_does_not_break_the_sizing() -> None:
    """A batch none of whose items could be sent (none pickled) is measured at 0 seconds;
    near the end of a known input the next size was divided by that (ZeroDivisionError ended
    the map, where each such item was to fail alone)."""
    sizer = ChunkSizer("process", 2, total=101)
    sizer.taken(1)
    sizer.observe(1, 0.0)
    assert sizer.next_size() >= 1
