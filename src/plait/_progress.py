"""A tqdm progress bar that counts items (not batches), as an observer of a map."""

from __future__ import annotations

import sys
import threading
import warnings
from typing import Any, TextIO

from ._events import MapObserver

# While a bar is on screen, warnings are printed above it (tqdm.write) instead of through it.
_bars_lock = threading.Lock()
_bars_open = 0
_saved_showwarning: Any = None


def _show_above_bars(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    from tqdm.auto import tqdm

    text = warnings.formatwarning(message, category, filename, lineno, line)
    tqdm.write(text.rstrip("\n"), file=file or sys.stderr)


def _bar_opened() -> None:
    global _bars_open, _saved_showwarning
    with _bars_lock:
        if _bars_open == 0:
            _saved_showwarning = warnings.showwarning
            warnings.showwarning = _show_above_bars
        _bars_open += 1


def _bar_closed() -> None:
    global _bars_open, _saved_showwarning
    with _bars_lock:
        _bars_open -= 1
        if _bars_open == 0:
            if warnings.showwarning is _show_above_bars:  # nobody replaced it meanwhile
                warnings.showwarning = _saved_showwarning
            _saved_showwarning = None


# tqdm's options that plait sets itself, or that would break the count.
NOT_YOURS = {"iterable": "plait counts the items itself", "gui": "a terminal or notebook bar"}


class ProgressBar(MapObserver):
    """tqdm's bar: the notebook's in Jupyter (``tqdm.auto``), the terminal's elsewhere.
    ``options`` are tqdm's own (``desc``, ``total``, ``unit``...), checked at the call."""

    def __init__(self, *, where: str = "plait.map", **options: Any) -> None:
        try:
            import tqdm
        except ImportError:
            raise ImportError(
                "progress=True needs tqdm: pip install 'plait[progress]' (or pip install tqdm)"
            ) from None
        if options:
            import inspect

            known = set(inspect.signature(tqdm.tqdm.__init__).parameters) - {"self", "kwargs"}
            for name in options:
                if name in NOT_YOURS:
                    raise ValueError(f"{where}: progress={{{name!r}: ...}}: {NOT_YOURS[name]}")
                if name not in known:
                    raise TypeError(
                        f"{where}: progress= has no tqdm option {name!r}; tqdm takes "
                        f"{', '.join(sorted(known - set(NOT_YOURS)))}"
                    )
        self._options = {"unit": "item", "dynamic_ncols": True, **options}
        self._bar: Any = None

    def started(self, total: int | None) -> None:
        from tqdm.auto import tqdm

        class Bar(tqdm):  # type: ignore[misc]
            monitor_interval = 0  # tqdm's monitor thread would outlive the map

        self._bar = Bar(**{"total": total, **self._options})
        _bar_opened()

    def progressed(self, items: int) -> None:
        if self._bar is not None:
            self._bar.update(items)

    def finished(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            _bar_closed()
