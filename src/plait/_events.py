"""Observer hooks the scheduler calls as a map runs. Every hook is a no-op by default.

Observers must never break a run: a hook that raises is reported once as a warning and the
observer is dropped (see ``Observers``). Hooks may be called from worker or dispatcher threads.
"""

from __future__ import annotations

import threading
import warnings


class MapObserver:
    """Subclass and override what you need."""

    def started(self, total: int | None) -> None:
        """The map began; ``total`` is the number of items when the input has a length."""

    def progressed(self, items: int) -> None:
        """``items`` more items finished (successfully or not)."""

    def finished(self) -> None:
        """The map ended: exhausted, failed or abandoned."""


class Observers(MapObserver):
    """Fans each event out to several observers, dropping any that raises."""

    def __init__(self, observers: list[MapObserver]) -> None:
        self._observers = list(observers)
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._observers)

    def _each(self, hook: str, *args: object) -> None:
        for observer in list(self._observers):
            try:
                getattr(observer, hook)(*args)
            except Exception as exc:
                with self._lock:
                    if observer in self._observers:
                        self._observers.remove(observer)
                warnings.warn(
                    f"plait: observer {observer!r} raised {exc!r} in {hook}(); it was removed",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def started(self, total: int | None) -> None:
        self._each("started", total)

    def progressed(self, items: int) -> None:
        self._each("progressed", items)

    def finished(self) -> None:
        self._each("finished")
