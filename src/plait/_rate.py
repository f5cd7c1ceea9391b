"""``rate=`` on a map: the function is called at most that many times a second.

The limit wraps the function, so it holds wherever the function runs: threads share one token
bucket (an exact limit across them); each process worker gets its own bucket with an equal share
of the rate; async functions await their slot instead of blocking the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .sync import RateLimiter


class RateLimited:
    """``fn``, rate-limited; pickled (to a process) it starts a bucket of its own."""

    def __init__(self, fn: Callable[..., Any], rate: float) -> None:
        self.fn = fn
        self.rate = rate
        self._limiter = RateLimiter(rate)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._limiter.acquire()
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.fn, self.rate))


class AsyncRateLimited(RateLimited):
    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self._limiter.reserve())
        return await self.fn(*args, **kwargs)


def rate_limited(fn: Callable[..., Any], rate: float, backend: str, workers: int) -> RateLimited:
    if backend == "async":
        return AsyncRateLimited(fn, rate)
    if backend == "process":
        return RateLimited(fn, rate / workers)  # every worker process takes its share
    return RateLimited(fn, rate)
