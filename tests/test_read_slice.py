"""Reading a list's, a tuple's or a range's iterator a slice at a time (``read_slice``) gives
exactly what reading it item by item gives, and leaves the iterator exactly where that would:
whatever the sequence, however it was read before, on every Python this runs on."""

from __future__ import annotations

from itertools import islice
from operator import length_hint
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import plait
from plait._window import read_slice

pytestmark = pytest.mark.timeout(60)

RANGES = st.builds(
    range,
    st.integers(-(1 << 70), 1 << 70),
    st.integers(-(1 << 70), 1 << 70),
    st.integers(1, 1 << 66) | st.integers(-(1 << 66), -1),
)
SMALL_RANGES = st.builds(
    range, st.integers(-50, 50), st.integers(-50, 50), st.integers(-7, 7).filter(bool)
)
SEQUENCES = st.lists(st.integers()) | st.lists(st.integers()).map(tuple) | SMALL_RANGES | RANGES
# How the iterator is read: ("next", 0) takes one item; ("slice", n) n items at once.
STEPS = st.lists(st.tuples(st.sampled_from(["next", "slice"]), st.integers(0, 40)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(sequence=SEQUENCES, steps=STEPS)
def test_a_slice_is_what_reading_item_by_item_gives(sequence: Any, steps: list[Any]) -> None:
    ours, reference = iter(sequence), iter(sequence)
    for how, size in steps:
        if how == "next":
            assert next(ours, None) == next(reference, None)
            continue
        part = read_slice(ours, size)
        assert part is not None
        assert list(part) == list(islice(reference, size))
    # ... and the iterator is left where it should be (a range's may be too long to list)
    assert list(islice(ours, 100)) == list(islice(reference, 100))
    try:
        left = length_hint(reference)
    except OverflowError:  # (a range of more than sys.maxsize items)
        return
    assert length_hint(ours) == left


def test_a_list_that_grows_between_slices_is_read_as_a_for_loop_would() -> None:
    items = [0, 1, 2]
    source = iter(items)
    assert read_slice(source, 2) == [0, 1]
    items.extend([3, 4])
    assert read_slice(source, 10) == [2, 3, 4]
    assert read_slice(source, 10) == []
    items.append(5)  # (an iterator that reached the end of a list stays there, as ever)
    assert list(source) == []


def test_a_slice_of_a_list_is_its_own_copy() -> None:
    items: list[Any] = [0, 1, 2, 3]
    part = read_slice(iter(items), 3)
    items[0] = "changed"
    assert part == [0, 1, 2]


@pytest.mark.parametrize(
    ("source", "items"),
    [
        (iter({1: 2, 3: 4}), [1, 3]),
        (iter("ab"), ["a", "b"]),
        (iter(b"ab"), [97, 98]),
        ((x for x in range(3)), [0, 1, 2]),
        (reversed([1, 2]), [2, 1]),
    ],
    ids=["dict", "str", "bytes", "generator", "reversed"],
)
def test_other_iterators_are_read_item_by_item(source: Any, items: list[Any]) -> None:
    assert read_slice(source, 2) is None
    assert list(source) == items  # (untouched)


@pytest.mark.parametrize(
    "make", [list, tuple, lambda r: r, iter], ids=["list", "tuple", "range", "range iterator"]
)
@pytest.mark.parametrize("backend", ["auto", "thread"])
def test_maps_over_sliced_inputs_keep_every_item_in_place(make: Any, backend: str) -> None:
    """Batches read as slices, run at once (threads) or lazily (auto, inline: a range's batch
    is a range), with failures among them: each item once, each error in its item's place,
    naming it."""

    def odd_fails(x: int) -> int:
        if x % 1000 == 999:
            raise ValueError(x)
        return x * 2

    results = list(plait.map(odd_fails, make(range(20_000)), backend=backend, errors="return"))
    assert len(results) == 20_000
    for index, value in enumerate(results):
        if index % 1000 == 999:
            assert isinstance(value, ValueError)
            assert value.args == (index,)
            assert f"plait: raised by item {index}: {index}" in value.__notes__
        else:
            assert value == index * 2


def test_an_iterator_given_to_a_map_is_left_where_the_map_stopped_reading() -> None:
    source = iter(range(10))
    assert list(plait.map(abs, source)) == list(range(10))
    assert next(source, "ended") == "ended"


@pytest.mark.parametrize("make", [lambda r: r, iter], ids=["range", "range iterator"])
def test_a_range_longer_than_sys_maxsize_maps_as_the_builtin_map_does(make: Any) -> None:
    """(``len()`` of one raises OverflowError: its length is then not known.)"""
    huge = range(-(1 << 70), 0)
    with plait.map(abs, make(huge)) as results:
        assert list(islice(results, 3)) == list(islice(map(abs, huge), 3))


@pytest.mark.parametrize("make", [list, tuple, lambda r: r], ids=["list", "tuple", "range"])
@pytest.mark.parametrize("backend", ["thread", "auto"])
def test_an_iterator_another_thread_reads_too_gives_each_item_to_one_reader(
    make: Any, backend: str
) -> None:
    """An iterator the caller gave may be read by another thread meanwhile: it is read item by
    item (one batch at a time, with no Python code between two items), never sliced, whose
    read of its position and move past the slice another thread's read would fall between.
    (Threads switch every microsecond here: the race was seen in 1 trial of 10 at most.)"""
    import collections
    import sys
    import threading
    import time

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(6):
            source = iter(make(range(200_000)))
            other: list[int] = []

            def take(source: Any = source, other: list[int] = other) -> None:
                for x in source:
                    other.append(x)
                    if x % 16 == 0:
                        time.sleep(0)  # (lets the map's thread read in between)

            reader = threading.Thread(target=take)
            reader.start()
            mine = list(plait.map(abs, source, backend=backend))
            reader.join()
            seen = collections.Counter(mine + other)
            assert set(seen.values()) == {1}
            assert len(seen) == 200_000
    finally:
        sys.setswitchinterval(interval)
