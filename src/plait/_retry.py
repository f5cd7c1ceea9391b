"""Retry policy: which failures get another attempt, how many, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ._errors import TaskTimeout, WorkerCrashed


@dataclass(frozen=True, slots=True)
class Retry:
    """Give failing items more attempts.

    ``retries`` extra attempts per item for exceptions that are instances of ``on``; a
    ``TaskTimeout`` is retried only with ``timeouts=True`` and a ``WorkerCrashed`` only with
    ``crashes=True``. Before attempt ``n + 1`` plait waits ``backoff * 2**(n - 1)`` seconds
    (at most ``max_backoff``), spread by ± ``jitter`` (a fraction) so that retries of many
    items do not arrive together. ``retries=3`` on a map means ``Retry(retries=3)``.
    """

    retries: int = 3
    on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,)
    timeouts: bool = False
    crashes: bool = False
    backoff: float = 0.0
    max_backoff: float = 30.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.on, type):  # on=OSError, as `except` takes it
            object.__setattr__(self, "on", (self.on,))
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise TypeError(f"Retry: retries must be an int >= 0, got {self.retries!r}")
        if self.retries < 0:
            raise ValueError(f"Retry: retries must be >= 0, got {self.retries}")
        if not isinstance(self.on, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in self.on
        ):
            raise TypeError(
                f"Retry: on must be an exception class or a tuple of them, got {self.on!r}"
            )
        for name in ("backoff", "max_backoff"):
            if getattr(self, name) < 0:
                raise ValueError(f"Retry: {name} must be >= 0 seconds")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Retry: jitter must be a fraction from 0 to 1, got {self.jitter}")

    def applies(self, error: BaseException, attempt: int) -> bool:
        """Whether an item that failed with ``error`` on attempt ``attempt`` gets another."""
        if attempt > self.retries:
            return False
        if isinstance(error, TaskTimeout):
            return self.timeouts
        if isinstance(error, WorkerCrashed):
            return self.crashes
        return isinstance(error, self.on)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1 for the first)."""
        if not self.backoff:
            return 0.0
        base: float = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return base * (1 + random.uniform(-self.jitter, self.jitter))


def as_retry(retries: int | Retry | None, where: str) -> Retry | None:
    """``retries=`` as given by the user: None or 0 (no retries), an int, or a Retry."""
    if retries is None or isinstance(retries, Retry):
        return retries if retries is None or retries.retries else None
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise TypeError(f"{where}: retries must be an int >= 0 or a plait.Retry, got {retries!r}")
    if retries < 0:
        raise ValueError(f"{where}: retries must be >= 0, got {retries}")
    return Retry(retries=retries) if retries else None
