"""Backends: where tasks run. Each is a small lifecycle object chosen by name, imported lazily.

A backend takes Tasks (batches of one Job's items) and calls each task's ``finish`` when it ends.
It knows nothing of ordering, windows or chunk sizes: that is the scheduler's business. The
protocol it follows, and what backends share, is in ``_base``.

A backend plugs in by a line in ``REGISTRY``: its name and where its class lives. The module is
imported on first use only, so a backend's engine (a process dispatcher, Dask's client) costs
nothing to a program that never asks for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import _auto  # noqa: F401  (the default: every map but a few asks for it at once)
from ._base import Backend as Backend

if TYPE_CHECKING:
    from .._worker_spec import Workers

# name -> "module:Class", the module relative to this package
REGISTRY = {
    "auto": "._auto:AutoBackend",
    "thread": "._thread:ThreadBackend",
    "process": ".process._dispatcher:ProcessBackend",
    "async": "._async:AsyncBackend",
    "dask": "._dask:DaskBackend",
    "ray": "._ray:RayBackend",
}
BACKENDS = tuple(REGISTRY)  # the valid names, in the order the docs give them


def create_backend(name: str, spec: Workers) -> Backend:
    try:
        target = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}") from None  # validated earlier: a guard
    module, _, cls = target.partition(":")
    backend: Backend = getattr(importlib.import_module(module, __name__), cls)(spec)
    return backend
