"""CPython's own tests of Executors (``Lib/test/test_concurrent_futures``) on ``plait.Pool``.

``plait.Pool`` is a ``concurrent.futures.Executor``: the standard library's tests of submit,
map, wait and as_completed must pass on it, on threads and on processes. The test package ships
with CPython's own builds (the 3.13 that CI runs has it); a Python without it has nothing to run
here, so this module is skipped there. One test is replaced: CPython's
``test_max_workers_negative`` matches the standard library's own error message.
"""

from __future__ import annotations

from typing import Any

import pytest

import plait

executor_tests = pytest.importorskip("test.test_concurrent_futures.executor")
wait_tests = pytest.importorskip("test.test_concurrent_futures.test_wait")
as_completed_tests = pytest.importorskip("test.test_concurrent_futures.test_as_completed")
util = pytest.importorskip("test.test_concurrent_futures.util")

pytestmark = pytest.mark.timeout(120)


def pool_of(backend: str) -> Any:
    def executor_type(max_workers: int | None = None, **kwargs: Any) -> plait.Pool:
        assert not kwargs, f"no plait equivalent for {kwargs}"
        return plait.Pool(backend, max_workers)

    return staticmethod(executor_type)


class PlaitWording:
    executor_type: Any

    def test_max_workers_negative(self) -> None:
        """CPython's version matches its own wording ("max_workers must be greater than 0");
        plait raises the same ValueError, in words that name its own parameter."""
        for number in (0, -1):
            with pytest.raises(ValueError, match=f"workers must be >= 1, got {number}"):
                self.executor_type(max_workers=number)


class ThreadMixin(PlaitWording, util.ExecutorMixin):  # type: ignore[misc,name-defined]
    executor_type = pool_of("thread")


class ProcessMixin(PlaitWording, util.ExecutorMixin):  # type: ignore[misc,name-defined]
    executor_type = pool_of("process")


class TestThreadExecutor(ThreadMixin, executor_tests.ExecutorTest, util.BaseTestCase):  # type: ignore[misc,name-defined]
    pass


class TestProcessExecutor(ProcessMixin, executor_tests.ExecutorTest, util.BaseTestCase):  # type: ignore[misc,name-defined]
    pass


class TestThreadWait(ThreadMixin, wait_tests.WaitTests, util.BaseTestCase):  # type: ignore[misc,name-defined]
    pass


class TestProcessWait(ProcessMixin, wait_tests.WaitTests, util.BaseTestCase):  # type: ignore[misc,name-defined]
    pass


class TestThreadAsCompleted(ThreadMixin, as_completed_tests.AsCompletedTests, util.BaseTestCase):  # type: ignore[misc,name-defined]
    pass


class TestProcessAsCompleted(ProcessMixin, as_completed_tests.AsCompletedTests, util.BaseTestCase):  # type: ignore[misc,name-defined]
    pass
