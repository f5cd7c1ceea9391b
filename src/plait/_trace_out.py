"""A trace's records laid out in rows, and what is made of them: Chrome/Perfetto trace events
and the summary in words (the HTML timeline is ``_timeline``'s).

The layout is where the rows' rule holds: a worker runs one batch at a time, so a batch on its
row never begins before the one before it ended (a batch placed by its answer's arrival may
seem to: a later answer's trip may have been shorter than an earlier one's); the event loop,
which runs coroutines side by side, gets a further row for each that ran beside others. One
exception, drawn as it ran: a map run inline inside a batch that ran inline, in the same thread,
so on the same row ("inline [its id]"). Its batches run within that batch, as a call within its
caller, and are placed within it (trace events nest so on a row; the timeline gives each depth
a lane of its own).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ._task import EVENT_LOOP, THIS_PROCESS
from ._trace import NO_WORKER, Batch


@dataclass(slots=True)
class Placed:
    batch: Batch
    row: int  # index into Layout.rows
    ts: float  # microseconds since the trace opened
    dur: float  # microseconds
    depth: int = 0  # how many batches of its row it ran within (a map inline inside one)


@dataclass(slots=True)
class Layout:
    places: list[str]  # "this process", "worker process 123", ...
    rows: list[tuple[int, str]]  # (index into places, the row's name)
    placed: list[Placed]  # by start
    queue: list[tuple[float, int]]  # (microseconds, batches waiting for a worker from then)


def lay_out(batches: list[Batch], opened: float) -> Layout:
    """Rows for ``batches`` (sorted by start), one per worker, none overlapping (but those
    that ran within another of their row, whole: nested in it)."""
    places: dict[str, int] = {}
    rows: dict[tuple[str, str], int] = {}
    # Per row: where the batches still running ended, the outermost first (a batch runs
    # within the others: see ``nests``). Its last is where the row's last batch ended.
    ends: list[list[float]] = []
    placed: list[Placed] = []

    def us(at: float) -> float:
        return round((at - opened) * 1e6, 3)

    def row_of(batch: Batch, ts: float) -> int:
        places.setdefault(batch.group, len(places))  # (places in the order they appear)
        lane = 0
        while True:
            name = batch.row if lane == 0 else f"{batch.row} #{lane + 1}"
            row = rows.get((batch.group, name))
            if row is None:
                row = rows[batch.group, name] = len(ends)
                ends.append([])
                return row
            if not ends[row] or ends[row][-1] <= ts or batch.row != EVENT_LOOP:
                return row
            lane += 1

    for batch in batches:
        ts = us(batch.start)
        row = row_of(batch, ts)
        dur = round(batch.elapsed * 1e6, 3)
        running = ends[row]
        nested = nests(batch)
        while running:
            end = running[-1]
            if end <= ts:  # it ended before this one began
                running.pop()
            elif nested and ts + dur <= end + 0.01:  # within it (to the rounding of both)
                dur = min(dur, end - ts)
                break
            else:  # it overlaps: this one is put after it (the rows' rule)
                ts = running.pop()
        running.append(ts + dur)
        placed.append(Placed(batch, row, ts, dur, len(running) - 1))
    if batches:
        places.setdefault(THIS_PROCESS, len(places))  # (the queue's counter lives there)
    queue: list[tuple[float, int]] = []
    waiting = 0
    for at, change in _queue_changes(batches):
        waiting += change
        if queue and queue[-1][0] == us(at):  # (a time has one value, its last: no blip)
            queue[-1] = (us(at), waiting)
        else:
            queue.append((us(at), waiting))
    return Layout(
        list(places),
        [(places[group], name) for group, name in rows],
        placed,
        queue,
    )


def nests(batch: Batch) -> bool:
    """Whether ``batch`` is drawn within a batch of its row that it ran within: it ran in
    this process, at the time that its own thread measured, on a row of one thread (the other
    rows' batches, placed by their answers' arrival, on the event loop or on no worker's row,
    overlap for other reasons than a call within a call)."""
    return batch.group == THIS_PROCESS and batch.row not in (EVENT_LOOP, NO_WORKER)


def trace_events(layout: Layout) -> list[dict[str, Any]]:
    """Chrome/Perfetto trace events: a process (``pid``) per place, a named row (``tid``) per
    worker, a complete event per batch (an instant one for a batch that never ran), and a
    counter of the batches waiting for a worker."""
    events: list[dict[str, Any]] = []
    for index, place in enumerate(layout.places):
        events.append(_meta("process_name", index + 1, 0, place))
        events.append(_meta("process_sort_index", index + 1, 0, index + 1, key="sort_index"))
    for index, (at, name) in enumerate(layout.rows):
        events.append(_meta("thread_name", at + 1, index + 1, name))
    for item in layout.placed:
        batch = item.batch
        args: dict[str, Any] = {"items": batch.items, "attempt": batch.attempt}
        if batch.call:
            args["call"] = True
        else:
            args["first item"] = batch.first
            args["last item"] = batch.first + batch.items - 1
        args["queued ms"] = round((batch.start - batch.queued) * 1e3, 3)
        if batch.errors:
            args["error"] = ", ".join(sorted(batch.errors))
            if failed := _failed(batch):
                args["errors"] = failed
        if cancelled := batch.errors.get(CANCELLED, 0):
            # The map or pool ended first (a break, a timeout, terminate()): no error of the
            # items', and items that did not run to their end.
            args["cancelled items"], args["items"] = cancelled, batch.items - cancelled
        if not batch.ran:
            args["ran"] = False
        if batch.again:
            # Its items are counted where they ran again, one by one: here, none ran to the end.
            args["run again"] = "its worker died: its items ran again one by one"
            args["lost items"], args["items"] = batch.items, 0
            args.pop("errors", None)
        if batch.retries:
            args["retries"] = batch.retries
        event: dict[str, Any] = {
            "name": batch.function,
            "cat": batch.backend,
            "pid": layout.rows[item.row][0] + 1,
            "tid": item.row + 1,
            "ts": item.ts,
            "args": args,
        }
        if item.dur > 0:
            event.update(ph="X", dur=item.dur)
        else:  # it never ran (or in no time): a mark
            event.update(ph="i", s="t")
        events.append(event)
    if layout.queue:
        pid = layout.places.index(THIS_PROCESS) + 1
        for ts, waiting in layout.queue:
            events.append(
                {
                    "name": "batches waiting for a worker",
                    "ph": "C",
                    "pid": pid,
                    "ts": ts,
                    "args": {"waiting": waiting},
                }
            )
    return events


def _meta(name: str, pid: int, tid: int, value: object, *, key: str = "name") -> dict[str, Any]:
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": {key: value}}


# -- the summary ----------------------------------------------------------------------------


def summary(batches: list[Batch], opened: float, closed: float) -> str:
    """Plain text: the run, then per worker its busy share, items and errors."""
    wall = max(closed - opened, 1e-9)
    # (A batch whose worker died and whose items ran again one by one is counted in those runs.)
    ran = [b for b in batches if b.ran and not b.again]
    items = sum(_ran(b) for b in batches)
    lines = [
        f"plait trace: {len(batches)} batches, {items:,} items in {wall:.3f} s "
        f"({items / wall:,.0f} items/s)"
    ]
    if not batches:
        return lines[0]
    per_item = [b.elapsed / b.items for b in ran if _ran(b) == b.items and b.elapsed > 0]
    if per_item:
        lines.append(
            f"item time: p50 {_ms(_quantile(per_item, 0.5))}, p99 {_ms(_quantile(per_item, 0.99))}"
            " (each batch's time over its items)"
        )
    waits = [b.start - b.queued for b in batches]
    lines.append(
        f"queue wait (made to begun): p50 {_ms(_quantile(waits, 0.5))}, "
        f"p99 {_ms(_quantile(waits, 0.99))}"
    )
    counts: dict[str, int] = defaultdict(int)  # the items' errors
    crashes = 0  # ... and the workers that died (one per batch that then ran again)
    for batch in batches:
        crashes += batch.again
        for name, count in batch.errors.items():
            counts[name] += 0 if batch.again else count
    cancelled = counts.pop(CANCELLED, 0)
    retried = sum(1 for b in batches if b.attempt > 1 or b.again)
    retries = sum(b.retries for b in batches)
    lines.append(
        f"errors {sum(counts.values())}, retries {retries}, timeouts "
        f"{counts.get('TaskTimeout', 0)}, crashes {crashes + counts.get('WorkerCrashed', 0)}, "
        f"batches run again {retried}"
        + (f", items cancelled {cancelled:,} (the map or pool ended first)" if cancelled else "")
    )
    rows: dict[tuple[str, str], list[Batch]] = defaultdict(list)
    for batch in batches:
        rows[batch.group, batch.row].append(batch)
    lines.append("workers:")
    busy_total = 0.0
    width = max(len(f"{group} / {row}") for group, row in rows)
    for (group, row), mine in rows.items():
        busy = _covered(mine)
        busy_total += busy
        failed = sum(_failed(b) for b in mine if not b.again)
        died = sum(b.again for b in mine)
        lines.append(
            f"  {f'{group} / {row}':<{width}}  busy {min(busy / wall, 1.0):4.0%}  "
            f"{sum(_ran(b) for b in mine):>9,} items  {failed:,} errors"
            + (
                f"  ({died} batch{'es' * (died > 1)} lost as it died: run again item by item)"
                if died
                else ""
            )
        )
    idle = 1 - busy_total / (wall * len(rows))
    if idle > 0.5 and _queued_share(batches, wall) < 0.25:
        lines.append(
            f"the workers sat idle {idle:.0%} of the time while no batch waited for one: the "
            "input (or the consumer of the results) was the bottleneck, not the workers"
        )
    return "\n".join(lines)


CANCELLED = "Cancelled"  # the error of items whose map or pool ended before they did


def _ran(batch: Batch) -> int:
    """How many of the batch's items ran to their end (and are counted here: not those of a
    batch lost with its worker, which are counted where they ran again)."""
    if not batch.ran or batch.again:
        return 0
    return batch.items - batch.errors.get(CANCELLED, 0)


def _failed(batch: Batch) -> int:
    """How many of its items failed: raised, ran out of time, lost their worker."""
    return sum(count for name, count in batch.errors.items() if name != CANCELLED)


def _covered(batches: list[Batch]) -> float:
    """How long at least one of ``batches`` ran: a worker runs one batch at a time, but the
    event loop runs coroutines side by side, and its busy time is not their sum."""
    total, reached = 0.0, -math.inf
    for batch in sorted(batches, key=lambda b: b.start):
        end = batch.start + batch.elapsed
        if end > reached:
            total += end - max(batch.start, reached)
            reached = end
    return total


def _queue_changes(batches: list[Batch]) -> list[tuple[float, int]]:
    """When a batch began to wait for a worker (+1) and stopped (-1), in order: at the same
    time, the waits begin first (a coroutine of amap is made as it starts: before, its -1 came
    first, and the count went below zero)."""
    changes = [(b.queued, 1) for b in batches] + [(b.start, -1) for b in batches]
    return sorted(changes, key=lambda change: (change[0], -change[1]))


def _queued_share(batches: list[Batch], wall: float) -> float:
    """The share of the time some batch waited for a worker."""
    waiting, since, total = 0, 0.0, 0.0
    for at, change in _queue_changes(batches):
        if waiting == 0 and change > 0:
            since = at
        waiting += change
        if waiting == 0:
            total += at - since
    return total / wall


def _quantile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"
