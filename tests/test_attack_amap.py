"""Attacks on plait.amap of a plain function: what it borrows from the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading

import pytest

import plait


@pytest.mark.timeout(60)
def test_amap_does_not_starve_the_loops_default_executor() -> None:
    """plait.amap runs a plain function on a plait pool, "each result handed back without
    blocking the loop" -- but each waiting fetch sits in the loop's *default executor*
    (_amap._from_blocking: loop.run_in_executor(None, next, ...)). As many slow amaps as that
    executor has threads (min(32, cores + 4) by default) leave nothing for asyncio.to_thread or
    loop.getaddrinfo (every asyncio.open_connection), so a task that needs one stalls until
    some item finishes; if the items wait for that task, nothing ever moves."""
    release = threading.Event()

    def slow(x: int) -> int:
        release.wait(30)
        return x

    async def main() -> float | None:
        loop = asyncio.get_running_loop()
        executor = concurrent.futures.ThreadPoolExecutor()  # the default size
        loop.set_default_executor(executor)
        maps = [plait.amap(slow, [i], workers=1) for i in range(executor._max_workers)]
        gathered = asyncio.gather(*(m._collect() for m in maps))
        await asyncio.sleep(0.5)  # every amap is now waiting for its item
        try:
            await asyncio.wait_for(asyncio.to_thread(int, "1"), 5)
            stalled = False
        except TimeoutError:
            stalled = True
        finally:
            release.set()
            await gathered
        return stalled

    assert asyncio.run(main()) is False, "asyncio.to_thread stalled behind waiting amaps"


@pytest.mark.timeout(60)
def test_cancelling_an_amap_leaves_no_unretrieved_error_behind() -> None:
    """A cancelled amap aborts its waiting fetch, which then ends with plait.Cancelled: that
    error is of no interest, and asyncio reported it at collection as "Future exception was
    never retrieved"."""
    release = threading.Event()
    reported: list[dict[str, object]] = []

    def blocked(x: int) -> int:
        release.wait(30)
        return x

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda _, context: reported.append(context)
        )
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(plait.amap(blocked, range(4), backend="thread"), 0.1)
        release.set()
        gc.collect()
        await asyncio.sleep(0)  # (a report is called soon, from the future's __del__)

    try:
        asyncio.run(main())
    finally:
        release.set()
    assert reported == []
