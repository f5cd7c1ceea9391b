"""How many items go in one batch: grow until a trip costs a few milliseconds of work.

Pure decisions, no threads: the scheduler reports each batch's measured time and asks for the
next size. Small batches first, so slow items are never hoarded by one worker; larger batches
once the per-item cost is known to be small, so tiny tasks do not pay a round trip each; and
smaller again near the end of an input of known length, so the tail stays balanced.
"""

from __future__ import annotations

import math

# How long one batch should run. A thread trip costs microseconds; a process trip costs the
# parent a few hundred (pickling, socket writes and reads, a wake-up of each thread on each
# side, measured: 0.3 ms of CPU), taken from the cores the workers use: hence the larger
# target, at which the trips cost the workers about 1 % of their time.
# (backend="auto" measures its first batches: they are kept as short as threads' batches, so
# that what they show comes soon.)
TARGET_SECONDS = {"thread": 0.002, "inline": 0.002, "auto": 0.002, "process": 0.025}
# The largest batch. Past it the gain is nil and the bounded window grows. A process map holds
# its items and results in flight as pickles (a few bytes for a small item), so its batches
# may be larger: its workers must each have several milliseconds of work queued, or they wait
# whenever the consumer holds the GIL (Python switches threads every 5 ms).
MAX_BATCH = {"process": 16384}
DEFAULT_MAX_BATCH = 4096


def max_batch(backend: str) -> int:
    return MAX_BATCH.get(backend, DEFAULT_MAX_BATCH)


# A batch's items are pickled, copied through a socket and unpickled: past a megabyte, a larger
# batch only delays the first result and holds more memory, it saves no round trip worth having.
MAX_BATCH_BYTES = 1 << 20
# Near the end of a known input, batches shrink to share the tail, but never below this much
# work: a trip costs a thread tens of microseconds (a wake-up on each side) and a process
# several hundred, so a tail of tiny items split in two dozen ever smaller batches took longer
# than running it in one (1,000 items of x * 2: 4 ms, against 0.05 ms for the builtin map).
TAIL_SECONDS = {"process": 0.002}
DEFAULT_TAIL_SECONDS = 0.0005
GROWTH = 4  # at most this factor per measurement: one odd batch must not swing the size


class ChunkSizer:
    """Adaptive batch size (or a fixed one, when the user gave ``chunksize``)."""

    def __init__(
        self,
        backend: str,
        workers: int,
        *,
        fixed: int | None = None,
        total: int | None = None,
        limit: int | None = None,
    ) -> None:
        if backend == "async" and fixed is None:
            fixed = limit  # async items run concurrently: a batch's time says nothing of its size
        self._fixed = fixed if fixed is None or limit is None else min(fixed, limit)
        most = max_batch(backend)
        self._given_limit = limit
        self._limit = min(most, limit or most)
        self._target = TARGET_SECONDS.get(backend, TARGET_SECONDS["process"])
        self._tail = TAIL_SECONDS.get(backend, DEFAULT_TAIL_SECONDS)
        self._workers = workers
        self._remaining = total
        self._size = fixed or 1
        self._per_item: float | None = None

    def retarget(self, backend: str, workers: int) -> None:
        """The map moved (``backend="auto"`` decided): size for ``backend`` from now on, with
        what was learnt of the items so far."""
        if self._fixed is not None:
            return
        most = max_batch(backend)
        self._limit = most if self._given_limit is None else min(most, self._given_limit)
        self._target = TARGET_SECONDS.get(backend, TARGET_SECONDS["process"])
        self._tail = TAIL_SECONDS.get(backend, DEFAULT_TAIL_SECONDS)
        self._workers = workers
        if self._per_item is not None:
            ideal = int(self._target / max(self._per_item, 1e-9))
            self._size = max(1, min(self._limit, ideal, self._size * GROWTH))

    def widen(self, workers: int) -> None:
        """The map's workers are now ``workers`` (an adaptive width changed)."""
        self._workers = workers

    @property
    def max_size(self) -> int:
        return self._fixed or self._limit

    def observe(self, items: int, elapsed: float, sent_bytes: int = 0) -> None:
        """Learn from a finished batch of ``items`` that took ``elapsed`` seconds of work and
        ``sent_bytes`` bytes to send."""
        if self._fixed is not None or items == 0:
            return
        per_item = elapsed / items
        self._per_item = per_item if self._per_item is None else (self._per_item + per_item) / 2
        ideal = self._target / max(self._per_item, 1e-9)
        by_bytes = MAX_BATCH_BYTES * items // sent_bytes if sent_bytes else self._limit
        self._size = max(1, min(self._limit, int(ideal), by_bytes, self._size * GROWTH))

    def next_size(self) -> int:
        """The size of the next batch; the caller reports what it really took with ``taken``."""
        size = self._size
        if self._fixed is None and self._remaining is not None:
            # Near the end of a known input, split what is left evenly over the workers (twice
            # over), so no worker ends up alone with a long last batch; but not into batches
            # whose trip would cost more than their work (see TAIL_SECONDS).
            share = math.ceil(self._remaining / (2 * self._workers))
            worth = (
                1 if self._per_item is None else math.ceil(self._tail / max(self._per_item, 1e-9))
            )
            size = min(size, max(1, share, worth))
        return size

    def taken(self, items: int) -> None:
        if self._remaining is not None:
            self._remaining -= items
