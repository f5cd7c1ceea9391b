"""Ctrl-C, SIGTERM and SIGHUP during ``plait run``: the first ends the run, and every job with it.

The jobs run in process groups of their own (a timeout ends a job's whole group), which no
signal to plait's own group reaches: plait ends them (``Runner._end_all``), every job it has in
its list of running jobs. A job started, and not yet in that list, was left running, orphaned,
when the signal came between the two (a run ended as it started its jobs, 1 in 5 times).
So a job's start holds the signal (``hold``/``let_go``): one that comes meanwhile is raised
as the job is in the list. Python runs a signal's handler in the main thread, between two of
its instructions, so nothing more is needed to keep the two apart.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_held = 0  # starts under way (in the main thread)
_came: int | None = None  # the ending signal that came while one was


class Terminated(Exception):
    """SIGTERM or SIGHUP ended the run (Ctrl-C is a KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def install() -> dict[int, Any]:
    """Handle the ending signals; returns the handlers to put back once the run is over."""
    return {signum: signal.signal(signum, _ending) for signum in ENDING}


def hold() -> None:
    """An ending signal that comes from now on is raised by ``let_go``."""
    global _held
    _held += 1


def let_go() -> None:
    """Raise the ending signal that came since ``hold``, if one did."""
    global _held, _came
    _held -= 1
    if not _held and _came is not None:
        signum, _came = _came, None
        _raise(signum)


def _ending(signum: int, frame: FrameType | None) -> None:
    # The first ending signal ends the run; the ones after it are let go by: a second one
    # (Ctrl-C pressed twice; `timeout`, which signals plait and then its whole group) must not
    # interrupt the ending of the jobs, which would leave them running. (run_command puts the
    # handlers back once the jobs are ended.)
    global _came
    for ending in ENDING:
        signal.signal(ending, _ending_already)
    if _held:
        _came = signum
        return
    _raise(signum)


def _raise(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def _ending_already(signum: int, frame: FrameType | None) -> None:
    """A signal that came while the jobs are being ended: they are, already."""
