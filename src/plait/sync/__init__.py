"""Synchronization primitives that explain themselves and never hang silently.

Drop-in versions of threading's primitives (same methods, arguments and timeouts) that name
themselves, report ``statistics()``, and refuse a wait that would never end with DeadlockError
(or, where threading lets another thread end it, warn with StuckLockWarning);
plus RWLock, RateLimiter, CapacityLimiter, WaitGroup and Channel. A leaf: imports nothing above it.
"""

from ._barrier import Barrier as Barrier
from ._barrier import BrokenBarrierError as BrokenBarrierError
from ._channel import Channel as Channel
from ._condition import Condition as Condition
from ._errors import ChannelClosed as ChannelClosed
from ._errors import DeadlockError as DeadlockError
from ._errors import DeadlockLink as DeadlockLink
from ._errors import LockOrderWarning as LockOrderWarning
from ._errors import StuckLockWarning as StuckLockWarning
from ._event import Event as Event
from ._limiters import CapacityLimiter as CapacityLimiter
from ._limiters import RateLimiter as RateLimiter
from ._lock import Lock as Lock
from ._lock import RLock as RLock
from ._lockorder import disable_lock_order_checks as disable_lock_order_checks
from ._lockorder import enable_lock_order_checks as enable_lock_order_checks
from ._registry import deadlock_detection_enabled as deadlock_detection_enabled
from ._registry import set_deadlock_detection as set_deadlock_detection
from ._rwlock import RWLock as RWLock
from ._semaphore import BoundedSemaphore as BoundedSemaphore
from ._semaphore import Semaphore as Semaphore
from ._stats import BarrierStatistics as BarrierStatistics
from ._stats import CapacityLimiterStatistics as CapacityLimiterStatistics
from ._stats import ChannelStatistics as ChannelStatistics
from ._stats import ConditionStatistics as ConditionStatistics
from ._stats import EventStatistics as EventStatistics
from ._stats import LockStatistics as LockStatistics
from ._stats import RateLimiterStatistics as RateLimiterStatistics
from ._stats import RWLockStatistics as RWLockStatistics
from ._stats import SemaphoreStatistics as SemaphoreStatistics
from ._stats import Statistics as Statistics
from ._stats import WaitGroupStatistics as WaitGroupStatistics
from ._waitgroup import WaitGroup as WaitGroup

__all__ = [
    "Barrier",
    "BarrierStatistics",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "CapacityLimiter",
    "CapacityLimiterStatistics",
    "Channel",
    "ChannelClosed",
    "ChannelStatistics",
    "Condition",
    "ConditionStatistics",
    "DeadlockError",
    "DeadlockLink",
    "Event",
    "EventStatistics",
    "Lock",
    "LockOrderWarning",
    "LockStatistics",
    "RLock",
    "RWLock",
    "RWLockStatistics",
    "RateLimiter",
    "RateLimiterStatistics",
    "Semaphore",
    "SemaphoreStatistics",
    "Statistics",
    "StuckLockWarning",
    "WaitGroup",
    "WaitGroupStatistics",
    "deadlock_detection_enabled",
    "disable_lock_order_checks",
    "enable_lock_order_checks",
    "set_deadlock_detection",
]
