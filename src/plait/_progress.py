"""A tqdm progress bar that counts items (not batches), as an observer of a map."""

from __future__ import annotations

from typing import Any

from ._events import MapObserver


class ProgressBar(MapObserver):
    def __init__(self, description: str | None = None) -> None:
        try:
            import tqdm  # noqa: F401 - checked here so the error comes at the call
        except ImportError:
            raise ImportError(
                "progress=True needs tqdm: pip install 'plait[progress]' (or pip install tqdm)"
            ) from None
        self._description = description
        self._bar: Any = None

    def started(self, total: int | None) -> None:
        from tqdm.auto import tqdm

        class Bar(tqdm):  # type: ignore[misc]
            monitor_interval = 0  # tqdm's monitor thread would outlive the map

        self._bar = Bar(total=total, desc=self._description, unit="item", dynamic_ncols=True)

    def progressed(self, items: int) -> None:
        if self._bar is not None:
            self._bar.update(items)

    def finished(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
