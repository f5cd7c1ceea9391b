"""The opt-in lock-order checker warns about an inversion on a run where nothing deadlocked."""

from __future__ import annotations

import warnings

from plait import sync

cache = sync.Lock(name="cache")
index = sync.Lock(name="index")

if __name__ == "__main__":
    sync.enable_lock_order_checks()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cache, index:  # one code path: cache, then index
            pass
        with index, cache:  # another path, later, same thread: index, then cache
            pass
    sync.disable_lock_order_checks()
    for warning in caught:
        print(f"{warning.category.__name__}: {warning.message}")
    print(f"{len(caught)} inversion reported")
