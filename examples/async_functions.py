"""Async functions with plait: in plain code, and inside async code without blocking the loop.

- plait.map takes an `async def` function and runs it on an event loop thread of its own, at
  most `workers` coroutines at once, so synchronous code gets concurrent async I/O in one line.
- plait.run and plait.TaskGroup mix async and plain functions in one group.
- Inside async code, `await plait.amap(...)` (or `async for ... in plait.amap(...)`) runs
  async functions concurrently on the caller's loop, and plain functions on a plait pool,
  so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import time

import plait


async def fetch(n: int) -> int:
    await asyncio.sleep(0.05)  # stands in for an HTTP request
    return n * n


def parse(n: int) -> str:
    time.sleep(0.01)  # blocking work: it must not run on the event loop
    return f"page-{n}"


def from_plain_code() -> None:
    started = time.perf_counter()
    squares = list(plait.map(fetch, range(200), workers=100))
    took = time.perf_counter() - started
    print(f"plait.map: 200 async fetches of 50 ms each in {took:.2f}s, sum {sum(squares)}")

    async def greet() -> str:
        await asyncio.sleep(0.01)
        return "hello from a coroutine"

    print("plait.run:", plait.run(greet, lambda: "hello from a thread"))


async def from_async_code() -> None:
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    pages = await plait.amap(parse, range(40), workers=8)  # blocking work, on threads
    squares = [s async for s in plait.amap(fetch, range(50), workers=25)]  # on this loop
    beat.cancel()
    print(f"plait.amap: {len(pages)} pages parsed and {len(squares)} fetches done")
    print(f"the event loop kept running meanwhile: {ticks} heartbeats")


if __name__ == "__main__":
    from_plain_code()
    asyncio.run(from_async_code())
