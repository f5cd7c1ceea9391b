"""The dispatcher's wake-up pipe: how another thread interrupts its ``select()``."""

from __future__ import annotations

import os
import threading
from contextlib import suppress


class Wakeup:
    """A self-pipe: ``wake()`` from any thread makes the read end, ``fd``, readable.

    It is opened when the dispatcher starts (an unused pool holds no descriptor) and closed
    when it ends; from then on ``wake()`` does nothing, so a late one never writes to a
    descriptor number the process has since reused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # wake() never writes while close() closes
        self.fd = -1  # the read end, for select()
        self._write = -1

    def open(self) -> None:
        with self._lock:
            self.fd, self._write = os.pipe()
            os.set_blocking(self.fd, False)
            os.set_blocking(self._write, False)

    def wake(self) -> None:
        with self._lock:
            if self._write < 0:
                return  # the dispatcher has not started, or is gone
            try:
                os.write(self._write, b"!")
            except BlockingIOError:
                pass  # full: a wake-up is pending anyway

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        with self._lock:
            for fd in (self.fd, self._write):
                if fd >= 0:
                    os.close(fd)
            self.fd = self._write = -1

    def after_fork_in_child(self) -> None:
        """Close this fork's copies (another thread may have held the lock at the fork)."""
        self._lock = threading.Lock()
        for fd in (self.fd, self._write):
            if fd >= 0:
                with suppress(OSError):
                    os.close(fd)
        self.fd = self._write = -1
