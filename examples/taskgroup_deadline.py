"""A deadline for a whole TaskGroup, and long loops that stop by themselves when it passes.

``plait.TaskGroup(timeout=0.3)``: 0.3 s after entering the block its tasks are cancelled, and
leaving the block raises TimeoutError. A thread cannot be killed, so a task has to cooperate:
``plait.sleep`` wakes up at once, ``plait.checkpoint()`` raises ``plait.Cancelled`` (which
ends the task quietly), and ``plait.cancelled()`` lets a loop stop and keep what it has.
"""

from __future__ import annotations

import time

import plait


def slow_download() -> bytes:
    plait.sleep(5)  # a slow server; cancellation interrupts the wait
    return b"payload"


def count_primes(limit: int) -> int:
    """A long computation that stops with plait.Cancelled when the group is cancelled."""
    found = 0
    for n in range(2, limit):
        if n % 1000 == 0:
            plait.checkpoint()  # raises plait.Cancelled once the deadline has passed
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            found += 1
    return found


def sum_squares() -> tuple[int, int]:
    """A long loop that notices cancellation and returns what it has so far."""
    total = n = 0
    while not plait.cancelled():
        total += n * n
        n += 1
    return n, total


if __name__ == "__main__":
    start = time.monotonic()
    try:
        with plait.TaskGroup(timeout=0.3) as tg:
            download = tg.submit(slow_download)
    except TimeoutError as error:
        print(f"TimeoutError: {error}")
    print(f"download cancelled: {download.cancelled()}, after {time.monotonic() - start:.2f} s")

    start = time.monotonic()
    try:
        with plait.TaskGroup(timeout=0.3) as tg:
            primes = tg.submit(count_primes, 10**9)
            squares = tg.submit(sum_squares)
    except TimeoutError:
        print(f"both loops stopped after {time.monotonic() - start:.2f} s")
    print(f"count_primes cancelled: {primes.cancelled()}")
    steps, _ = squares.result()  # it returned normally, with its partial result
    print(f"sum_squares kept its partial result: {steps:,} squares summed")
