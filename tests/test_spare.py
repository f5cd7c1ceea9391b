"""Spare threads: a pool's finished dispatcher thread serves the next pool's dispatcher."""

from __future__ import annotations

import threading

import pytest

import plait
from plait._backends import _spare

pytestmark = pytest.mark.timeout(60)


def run_and_wait(target: object = None, name: str = "plait-test-service") -> _spare.Service:
    ran = threading.Event()

    def service() -> None:
        ran.set()
        if callable(target):
            target()

    started = _spare.start(service, name)
    assert started.join(30)
    assert ran.is_set()
    return started


def test_a_finished_service_thread_serves_the_next_one() -> None:
    names: list[str] = []
    first = run_and_wait(lambda: names.append(threading.current_thread().name))
    second = run_and_wait(lambda: names.append(threading.current_thread().name), "plait-other")
    assert first.thread is second.thread
    assert names == ["plait-test-service", "plait-other"]
    assert first.thread is not None
    assert first.thread.name == _spare.SPARE_NAME


def test_the_next_process_pool_dispatches_on_the_last_ones_thread() -> None:
    threads = []
    for _ in range(2):
        with plait.Pool("process", 1) as pool:
            assert pool.submit(abs, -1).result(timeout=30) == 1
            threads.append(pool._backend._thread.thread)  # type: ignore[attr-defined]
    assert threads[0] is threads[1]
    assert threads[0].name == _spare.SPARE_NAME


def test_discard_all_ends_every_waiting_thread() -> None:
    # Two services at once: two threads, both waiting once done.
    inside = threading.Barrier(3)
    services = [_spare.start(lambda: inside.wait(30), f"plait-test-{i}") for i in range(2)]
    inside.wait(30)
    assert all(service.join(30) for service in services)
    threads = [service.thread for service in services]
    assert threads[0] is not threads[1]
    _spare.discard_all()
    for thread in threads:
        assert thread is not None
        thread.join(30)
        assert not thread.is_alive()


def test_a_spare_ends_by_itself_after_its_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_spare, "SPARE_SECONDS", 0.01)
    thread = run_and_wait().thread
    assert thread is not None
    thread.join(30)
    assert not thread.is_alive()


def test_a_service_that_raises_is_reported_and_its_thread_serves_no_more() -> None:
    reported: list[threading.ExceptHookArgs] = []
    hook = threading.excepthook
    threading.excepthook = reported.append
    try:

        def broken() -> None:
            raise RuntimeError("a bug")

        service = _spare.start(broken, "plait-broken")
        assert service.join(30)
        assert service.thread is not None
        service.thread.join(30)
        assert not service.thread.is_alive()
    finally:
        threading.excepthook = hook
    assert [(type(args.exc_value), str(args.exc_value)) for args in reported] == [
        (RuntimeError, "a bug")
    ]
    assert reported[0].thread is service.thread


def test_a_service_joined_from_its_own_thread_is_current() -> None:
    seen: list[bool] = []
    service: list[_spare.Service] = []
    ready = threading.Event()

    def target() -> None:
        ready.wait(30)
        seen.append(service[0].is_current())

    service.append(_spare.start(target, "plait-test-self"))
    ready.set()
    assert service[0].join(30)
    assert seen == [True]
    assert not service[0].is_current()
