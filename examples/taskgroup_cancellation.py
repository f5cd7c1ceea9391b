"""When one task of a TaskGroup fails, its siblings are cancelled and the block raises.

The sibling here would wait a minute with ``plait.sleep``, which wakes up at once when its
group is cancelled, so the whole block ends as soon as the failure happens.
"""

from __future__ import annotations

import time

import plait


def wait_for_a_minute() -> str:
    plait.sleep(60)  # unlike time.sleep, interrupted by cancellation (it raises plait.Cancelled)
    return "slept a whole minute"


def check_config(path: str) -> None:
    time.sleep(0.1)  # a little work first
    raise ValueError(f"{path}: missing key 'workers'")


if __name__ == "__main__":
    start = time.monotonic()
    try:
        with plait.TaskGroup() as tg:
            sleeper = tg.submit(wait_for_a_minute)
            tg.submit(check_config, "settings.toml")
    except* ValueError as group:  # every failure of the group arrives in an ExceptionGroup
        for error in group.exceptions:
            print(f"a task failed: {error}")
    elapsed = time.monotonic() - start
    print(f"the sleeping sibling was cancelled: {sleeper.cancelled()}")
    print(f"the group ended after {elapsed:.2f} s, not 60 s")
