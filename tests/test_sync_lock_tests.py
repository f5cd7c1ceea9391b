"""CPython's own lock tests (``test.lock_tests``), run against plait.sync's drop-ins."""

from __future__ import annotations

from typing import Any

import pytest

from plait import sync

lock_tests: Any = pytest.importorskip("test.lock_tests")


class TestLock(lock_tests.LockTests):  # type: ignore[misc]
    locktype = staticmethod(sync.Lock)


class TestRLock(lock_tests.RLockTests):  # type: ignore[misc]
    locktype = staticmethod(sync.RLock)


class TestEvent(lock_tests.EventTests):  # type: ignore[misc]
    eventtype = staticmethod(sync.Event)


class TestCondition(lock_tests.ConditionTests):  # type: ignore[misc]
    condtype = staticmethod(sync.Condition)


class TestSemaphore(lock_tests.SemaphoreTests):  # type: ignore[misc]
    semtype = staticmethod(sync.Semaphore)


class TestBoundedSemaphore(lock_tests.BoundedSemaphoreTests):  # type: ignore[misc]
    semtype = staticmethod(sync.BoundedSemaphore)


class TestBarrier(lock_tests.BarrierTests):  # type: ignore[misc]
    barriertype = staticmethod(sync.Barrier)
