"""A probe batch as it runs on its thread, and the watcher's verdict on batches that run long.

``backend="auto"`` looks at a probe batch still running after ``WATCH_AFTER`` seconds (see
``_auto``): its thread's CPU time, its wait for a core and its wall time since it began
(``Watched.look``). Batches that compute are left to run; batches whose threads slept are
waiting work (``judge`` says ``Waits``), unless the program's other threads kept the GIL
meanwhile (``Watched.starved``): a thread kept from the GIL sleeps too, and is looked at again,
for ``STARVED_AT_MOST`` seconds at most.
"""

from __future__ import annotations

import math
import threading
import time
from typing import NamedTuple

from .._cpu_wait import (
    Clocks,
    Thread,
    read_clocks,
    this_thread,
    waited_between,
    waited_for_cpu,
    waited_for_cpu_holding_gil,
)
from .._plan import WAITING_BELOW
from .._task import Task

# A probe batch still running after this long is looked at, and again every this long: waiting
# work is not made to wait for its slowest first item.
WATCH_AFTER = 0.02

# Unless the program's other threads computed for this share of the time the batch's thread
# neither ran nor waited for a core: then the batch may have been kept from the GIL rather than
# waiting, and the verdict waits, this long at most (after that it is threads: a batch that
# waits for another item must not wait on).
STARVED_BY = 0.5
STARVED_AT_MOST = 1.0


class Watched:
    """A probe batch running on its thread: when it started, and its thread's CPU clock."""

    __slots__ = ("base", "began", "clocks", "mark", "process", "since", "task", "thread")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.thread = this_thread()  # (read by the thread itself, as it starts the batch)
        # (Its wait for a core first: reading it lets go of the GIL; and without ctypes, which
        # only a watcher that looks at the batch needs, not every map.)
        waited = waited_for_cpu()
        self.clocks: Clocks | None = Clocks(time.perf_counter(), time.thread_time(), waited)
        self.began = self.since = self.base = time.perf_counter()
        self.process = time.process_time()
        # At its last look, if one was taken since ``base``: see ``starved``.
        self.mark: Mark | None = None

    def alone_from_now(self) -> None:
        """The batch it ran together with ended: from now on it is judged on its own. (Up to
        now the two took turns with the GIL, each off while the other ran; on a busy machine,
        where handing the GIL over waits for a core too, each ran a quarter of the time:
        judged alone on that, computing work looked as if it waited.)"""
        clocks = read_clocks(self.thread)  # (not letting go of the GIL: see _cpu_wait)
        if clocks is not None:
            self.clocks = clocks
            self.process = time.process_time()
            self.since = self.base = clocks.wall  # (looked at once it ran alone WATCH_AFTER)
            self.mark = None

    def others_computed(self, cpu: float, off: float) -> bool:
        """Whether the program's other threads (those of the batches judged with it aside:
        ``cpu`` is their CPU time and its own) computed for ``STARVED_BY`` of the ``off``
        seconds its thread neither ran nor waited for a core: then it may have been kept
        from the GIL rather than waiting. (Seconds of their CPU against seconds of its being
        off, not cores' worth over the wall time: on a busy machine the thread holding the
        GIL waits for a core too, so a program's threads that take turns with it each get a
        small share of the wall time, and one kept from the GIL by another looked idle.)"""
        return time.process_time() - self.process - cpu >= STARVED_BY * off

    def starved(self, look: Look, judged: list[Thread], judged_cpu: float) -> bool:
        """Whether, since its last look, the program's other threads (not those of the
        batches ``judged`` with it, whose CPU time is ``judged_cpu``) computed, or waited for
        a core, for ``STARVED_BY`` of the time its thread was off: then it may have been kept
        from the GIL rather than waiting. (Their waits count: on a busy machine a thread that
        holds the GIL waits for a core while it holds it, and its convoy of GIL hand-overs
        kept computing work off most of the time.) At the first look nothing is known of the
        others' waits: it is looked at again."""
        mark = Mark(look.off, time.process_time(), judged_cpu, waited_by_others(judged))
        last, self.mark = self.mark, mark
        if last is None:
            return True
        others = (mark.process - last.process) - (mark.judged_cpu - last.judged_cpu)
        others += max(0.0, mark.others_waited - last.others_waited)  # (threads end meanwhile)
        return others >= STARVED_BY * (mark.off - last.off)

    def look(self, now: float) -> Look | None:
        """What its thread did since it began (None where another thread's CPU clock cannot
        be read). Over its whole run, not since it was last looked at: computing work has
        moments without the GIL (another thread imports a module, say), and it must not look
        like waiting work then."""
        self.since = now
        clocks = read_clocks(self.thread)
        if clocks is None or self.clocks is None:
            return None
        wall = clocks.wall - self.clocks.wall
        return Look(clocks.cpu - self.clocks.cpu, waited_between(self.clocks, clocks), wall)


class Mark(NamedTuple):
    """A watched batch at a look: its thread's seconds off, the program's CPU seconds, the CPU
    seconds of the batches judged with it, and the seconds the program's other threads have
    waited for a core."""

    off: float
    process: float
    judged_cpu: float
    others_waited: float


def waited_by_others(judged: list[Thread]) -> float:
    """The seconds the program's threads other than ``judged`` have waited for a core, since
    each started (read holding the GIL: see ``_cpu_wait``). Python's threads only: a thread
    that holds the GIL runs Python."""
    excluded = {thread.native_id for thread in judged}
    return sum(
        waited_for_cpu_holding_gil(thread.native_id)
        for thread in threading.enumerate()
        if thread.native_id is not None and thread.native_id not in excluded
    )


class Look(NamedTuple):
    """A probe batch's thread, since the batch began: its CPU seconds, the seconds it waited
    for a core, and the seconds that took."""

    cpu: float
    waited: float
    wall: float

    @property
    def off(self) -> float:
        """The seconds it neither ran nor waited for a core: it slept (on I/O, a lock, the
        GIL)."""
        return max(0.0, self.wall - self.waited - self.cpu)


def share(looks: list[Look]) -> float:
    """The CPU time of batches judged together over the time they ran or slept: their CPU
    seconds over their wall time less the seconds each waited for a core. (Together, not the
    sum of each one's share: two batches that hold the GIL take turns with it, and while one
    of them holds it waiting for a core, as on a busy machine, the other sleeps; the first's
    wait is left out of both, so they compute all the time left, as one thread alone would.)"""
    cpu = sum(look.cpu for look in looks)
    time_left = max(look.wall for look in looks) - sum(look.waited for look in looks)
    return math.inf if time_left <= 0 else cpu / time_left


class Waits(NamedTuple):
    """The verdict on a route's probe batches: the work waits. Their CPU time over the time
    they ran or slept (None where no thread's CPU clock could be read), and the seconds since
    the first of them began."""

    share: float | None
    running: float


def judge(batches: list[Watched], now: float) -> Waits | float:
    """Look at a route's running probe batches once each has run ``WATCH_AFTER`` seconds since
    its last look: ``Waits`` if their threads slept, else ``perf_counter()`` when to look again.
    The batches running together are judged together: two that hold the GIL take turns, and
    either may get little of it for a while."""
    if not all(now - watched.since >= WATCH_AFTER for watched in batches):
        return max(watched.since for watched in batches) + WATCH_AFTER
    looks = [(watched, watched.look(now)) for watched in batches]
    known = [(watched, look) for watched, look in looks if look is not None]
    # (Where a thread's CPU clock cannot be read, a batch that runs this long is taken for
    # waiting work: threads are the safe choice for it.)
    computed = share([look for _, look in known]) if known else None
    if computed is not None and computed >= WAITING_BELOW:
        return now + WATCH_AFTER
    # A thread gets little CPU when it waits, but also when the program's other threads keep
    # the GIL (the other batch of two run together, too, before it is watched): then it is
    # looked at again, for a while.
    if known and now - max(watched.base for watched in batches) < STARVED_AT_MOST:
        first, look = known[0]
        judged = [watched.thread for watched, _ in known]
        if first.starved(look, judged, sum(look.cpu for _, look in known)):
            return now + WATCH_AFTER
    return Waits(computed, now - min(watched.began for watched in batches))
