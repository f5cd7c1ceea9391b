"""Two threads take two locks in opposite orders: plait names the cycle instead of hanging."""

from __future__ import annotations

import threading

from plait import sync

accounts = sync.Lock(name="accounts")
audit_log = sync.Lock(name="audit_log")
both_hold_one = threading.Barrier(2)


def transfer() -> None:
    with accounts:
        both_hold_one.wait()
        with audit_log:
            print("transfer done")


def audit() -> None:
    with audit_log:
        both_hold_one.wait()
        with accounts:
            print("audit done")


refusals: list[str] = []


def run(body: object, name: str) -> threading.Thread:
    def guarded() -> None:
        try:
            body()  # type: ignore[operator]
        except sync.DeadlockError as exc:
            refusals.append(f"{name}: DeadlockError\n{exc}")

    thread = threading.Thread(target=guarded, name=name)
    thread.start()
    return thread


if __name__ == "__main__":
    threads = [run(transfer, "transfer"), run(audit, "audit")]
    for thread in threads:
        thread.join()
    print(*refusals, sep="\n")
    print("no hang: one thread was refused, the other finished")
