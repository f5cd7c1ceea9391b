"""plait: concurrent execution made effortless.

Threads for waiting, processes for computing, one small API: ``plait.map`` for a lazy, ordered,
bounded concurrent map (``plait.amap`` inside async code), ``plait.Pool`` to keep workers across
many maps (a ``concurrent.futures.Executor``), ``plait.run`` and ``plait.TaskGroup`` for
structured concurrency, and ``plait.sync`` for locks that never hang silently.
"""

from typing import TYPE_CHECKING, Any

from ._cancel import cancelled as cancelled
from ._cancel import checkpoint as checkpoint
from ._cancel import sleep as sleep
from ._errors import Cancelled as Cancelled
from ._errors import CancelReason as CancelReason
from ._errors import PlaitError as PlaitError
from ._errors import PoolClosed as PoolClosed
from ._errors import RemoteError as RemoteError
from ._errors import RemoteTraceback as RemoteTraceback
from ._errors import TaskTimeout as TaskTimeout
from ._errors import WorkerCrashed as WorkerCrashed
from ._retry import Retry as Retry
from ._worker_spec import Workers as Workers
from ._worker_spec import worker_state as worker_state

if TYPE_CHECKING:
    from . import sync as sync
    from ._amap import AsyncMapIterator as AsyncMapIterator
    from ._amap import amap as amap
    from ._api import map as map
    from ._api import run as run
    from ._options import DEFAULT as DEFAULT
    from ._options import MapKeywords as MapKeywords
    from ._pool import Pool as Pool
    from ._stream import MapIterator as MapIterator
    from ._taskgroup import TaskGroup as TaskGroup
    from ._taskgroup import TaskHandle as TaskHandle
    from ._trace import Trace as Trace
    from ._trace import trace as trace
    from .sync import DeadlockError as DeadlockError

# Imported on first use: a worker process imports this package too, and should start fast.
_LAZY = {
    "AsyncMapIterator": "._amap",
    "amap": "._amap",
    "DEFAULT": "._options",
    "DeadlockError": ".sync",
    "MapKeywords": "._options",
    "MapIterator": "._stream",
    "Pool": "._pool",
    "map": "._api",
    "run": "._api",
    "TaskGroup": "._taskgroup",
    "TaskHandle": "._taskgroup",
    "Trace": "._trace",
    "trace": "._trace",
    "sync": ".sync",
}

__version__ = "0.1.0"

__all__ = [
    "DEFAULT",
    "AsyncMapIterator",
    "CancelReason",
    "Cancelled",
    "DeadlockError",
    "MapIterator",
    "MapKeywords",
    "PlaitError",
    "Pool",
    "PoolClosed",
    "RemoteError",
    "RemoteTraceback",
    "Retry",
    "TaskGroup",
    "TaskHandle",
    "TaskTimeout",
    "Trace",
    "WorkerCrashed",
    "Workers",
    "amap",
    "cancelled",
    "checkpoint",
    "map",
    "run",
    "sleep",
    "sync",
    "trace",
    "worker_state",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'plait' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_LAZY[name], __name__)
    value = module if name == "sync" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
