"""Producers and consumers over a Channel, paced by a RateLimiter, counted by a WaitGroup."""

from __future__ import annotations

import threading

from plait import sync

jobs = sync.Channel[int](capacity=4, name="jobs")
api = sync.RateLimiter(200, burst=5, name="api")  # at most 200 calls a second
db = sync.CapacityLimiter(2, name="db")  # at most 2 connections at once
producers = sync.WaitGroup(name="producers")
results: list[int] = []
results_lock = sync.Lock(name="results")


def produce(start: int) -> None:
    try:
        for n in range(start, start + 20):
            jobs.send(n, timeout=5)
    finally:
        producers.done()


def consume() -> None:
    for n in jobs:  # ends when the channel is closed and drained
        api.acquire()
        with db, results_lock:
            results.append(n * n)


if __name__ == "__main__":
    producers.add(2)
    threads = [threading.Thread(target=produce, args=(s,)) for s in (0, 100)]
    threads += [threading.Thread(target=consume) for _ in range(3)]
    for t in threads:
        t.start()
    producers.wait()
    jobs.close()
    for t in threads:
        t.join()
    print(f"processed {len(results)} jobs")
    print(f"api: {api.statistics().acquisitions} calls, {api.statistics().contended} waited")
    print(f"jobs channel: sent {jobs.statistics().sent}, received {jobs.statistics().received}")
