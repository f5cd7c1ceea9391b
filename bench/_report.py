"""Markdown for the benchmark report: a summary of targets, then one table per scenario."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _scenarios import SAMPLE_EVERY, Outcome, Table
from _tasks import IO_LATENCY

PEERLESS = ("plait", "plait-fork", "serial")


@dataclass(frozen=True)
class Verdict:
    """plait against the scenario's target."""

    plait: float | None
    best_peer: Outcome | None
    met: bool | None
    detail: str


def render(tables: Sequence[Table], *, repeat: int, started: float, quick: bool) -> str:
    """The whole report."""
    by_name = {table.scenario.name: table for table in tables}
    lines = [
        "# plait benchmark results",
        "",
        *_header(tables, repeat=repeat, started=started, quick=quick),
        "",
        "## Summary",
        "",
        "| Scenario | plait | fastest peer | plait / fastest peer | target | met |",
        "|---|---|---|---|---|---|",
    ]
    verdicts = {table.scenario.name: verdict(table) for table in tables}
    for table in tables:
        v = verdicts[table.scenario.name]
        peer = v.best_peer
        lines.append(
            f"| {table.scenario.title} | {_secs(v.plait)} | "
            f"{f'{peer.label} {_secs(peer.seconds)}' if peer else '-'} | "
            f"{_ratio(v.plait, peer.seconds if peer else None)} | "
            f"{table.scenario.target} ({v.detail}) | {_yes(v.met)} |"
        )
    analysis = Path(__file__).with_name("ANALYSIS.md")
    if analysis.exists():  # the hand-written reading of the misses, kept beside the runner
        lines += ["", analysis.read_text(encoding="utf-8").rstrip()]
    for table in tables:
        lines += ["", *_scenario_section(table, by_name)]
    return "\n".join(lines) + "\n"


def verdict(table: Table) -> Verdict:
    """Whether plait met `table.scenario`'s target, and the figure it was judged on."""
    sc, outcomes = table.scenario, table.outcomes
    plait = outcomes["plait"].seconds if "plait" in outcomes else None
    peers = [o for o in outcomes.values() if o.lib not in PEERLESS and o.seconds is not None]
    best = min(peers, key=lambda o: o.seconds or 0.0, default=None)
    if plait is None:
        why = outcomes["plait"].failure if "plait" in outcomes else None
        return Verdict(None, best, None, f"plait {why or 'did not run'}")
    if sc.goal == "vs_serial":
        ratio = plait / s if (s := outcomes["serial"].seconds) else None
        return Verdict(plait, best, _le(ratio, sc.limit), f"{_ratio(plait, s)} serial")
    if sc.goal == "vs_best_peer":
        peer = best.seconds if best else None
        ratio = plait / peer if peer else None
        return Verdict(plait, best, _le(ratio, sc.limit), _ratio(plait, peer))
    if sc.goal == "of_ideal":
        share = _of_ideal(table, plait)
        met = None if share is None else share >= sc.limit
        return Verdict(plait, best, met, f"{_pct(share)} of ideal")
    run = _worst(outcomes["plait"])
    growth_mib = run["rss_growth_kib"] / 1024
    bounded = _bounded(run)
    detail = f"read-ahead {run['read_ahead']:,}, RSS +{growth_mib:.1f} MiB"
    return Verdict(plait, best, bounded and growth_mib <= sc.limit, detail)


def _header(tables: Sequence[Table], *, repeat: int, started: float, quick: bool) -> list[str]:
    versions = sorted(
        {
            f"{o.lib} {o.runs[0]['version']}"
            for t in tables
            for o in t.outcomes.values()
            if o.runs and o.runs[0].get("version")
        }
    )
    elapsed = time.time() - started
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"Command: `{shlex.join(sys.orig_argv)}` (took {elapsed:.0f} s)",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()} ({platform.python_implementation()}); "
        f"load average at the end {load}; {when}.",
        "",
        f"Libraries: {', '.join(versions) or '-'}.",
        "",
        f"Each case runs in a fresh process; time is the median of {repeat} run(s) and includes "
        "pool start and teardown, not imports. `x plait` is a library's time over plait's "
        "(above 1: slower than plait); spread is (slowest - fastest run) / median. Peers use "
        "tuned settings (shown); plait its defaults.",
    ]
    if quick:
        lines += ["", "**Quick run**: small sizes, not representative; use a full run to judge."]
    return lines


def _scenario_section(table: Table, by_name: dict[str, Table]) -> list[str]:
    sc = table.scenario
    plait = table.outcomes["plait"].seconds if "plait" in table.outcomes else None
    head = ["Library", "Settings", "Median time", "Spread"]
    if sc.goal == "vs_serial":
        head.append("x serial")
    head.append("x plait")
    if sc.goal == "of_ideal":
        head.append("% of ideal")
    if sc.mode == "endless":
        head += ["Input", "x tiny-task time", "Max read-ahead", "Peak RSS growth"]
    lines = [
        f"## {sc.title} (`{sc.name}`)",
        "",
        f"{sc.what} N = {table.n:,}. Target: {sc.target}.",
        "",
        *([table.note, ""] if table.note else []),
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    serial = table.outcomes["serial"].seconds if "serial" in table.outcomes else None
    for o in table.outcomes.values():
        t = o.seconds
        cells = [o.label, o.settings, _secs(t) if o.failure is None else o.failure]
        cells.append("-" if o.spread is None else f"{100 * o.spread:.0f} %")
        if sc.goal == "vs_serial":
            cells.append(_ratio(t, serial))
        cells.append(_ratio(t, plait))
        if sc.goal == "of_ideal":
            cells.append(_pct(_of_ideal(table, t)))
        if sc.mode == "endless":
            cells += _endless_cells(o, table, by_name)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _endless_cells(o: Outcome, table: Table, by_name: dict[str, Table]) -> list[str]:
    if not o.runs:
        return ["-"] * 4
    run = _worst(o)
    tiny = by_name.get(table.scenario.name.replace("endless", "tiny"))
    tiny_t = tiny.outcomes[o.lib].seconds if tiny and tiny.n == table.n else None
    if run["finite"]:
        source = f"finite slice of {table.n:,} (reads all input up front)"
    else:
        source = "endless"
    ahead = f"{run['read_ahead']:,}"
    if run["cap_hit"]:
        ahead = f"≥ {ahead}: unbounded (hit the safety cap)"
    elif not run["finite"] and not _bounded(run):
        ahead += " (still growing)"
    return [source, _ratio(o.seconds, tiny_t), ahead, f"{run['rss_growth_kib'] / 1024:.1f} MiB"]


def _worst(o: Outcome) -> dict[str, int]:
    """The worst read-ahead and RSS growth over all of `o`'s runs."""
    keys = ("read_ahead", "read_ahead_first_half", "read_ahead_second_half", "rss_growth_kib")
    worst = {key: max(run[key] for run in o.runs) for key in keys}
    worst["finite"] = any(run["finite"] for run in o.runs)
    worst["cap_hit"] = any(run["cap_hit"] for run in o.runs)
    return worst


def _bounded(run: dict[str, int]) -> bool:
    """Read-ahead that stops growing: the second half's peak within 2x the first half's."""
    first, second = run["read_ahead_first_half"], run["read_ahead_second_half"]
    return not run["cap_hit"] and second <= 2 * first + SAMPLE_EVERY


def _of_ideal(table: Table, seconds: float | None) -> float | None:
    sc = table.scenario
    workers = sc.workers or os.cpu_count() or 1
    if sc.task == "sleep":
        ideal: float | None = table.n * IO_LATENCY / workers
    else:
        serial = table.outcomes["serial"].seconds if "serial" in table.outcomes else None
        ideal = serial / workers if serial else None
    return 100 * ideal / seconds if ideal and seconds else None


def _le(ratio: float | None, limit: float) -> bool | None:
    return None if ratio is None else ratio <= limit


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value is not None and base else "-"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share:.1f} %"


def _yes(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "**no**")
