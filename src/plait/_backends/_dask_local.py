"""The Dask cluster plait starts when there is none: Dask's own command line programs.

A ``dask scheduler`` and a ``dask worker`` per core (a nanny, which starts the worker process
and starts it again if it dies), each a fresh interpreter started with ``subprocess``. Not a
``LocalCluster``: its workers start with multiprocessing's ``spawn``, which imports the
program's ``__main__`` again (a script without a main guard runs twice, and fails); and not
Dask's ``SubprocessCluster``: its nanny does not restart a worker that died, so a crash would
shrink the cluster for good.

Each program ends when its parent does (a thread that watches the parent's pid), so a program
killed outright leaves no cluster behind. A task whose worker died is not run again by the
scheduler (``allowed-failures`` 0): plait decides what runs again (see ``_dask``); and a worker
is sent only the task it runs (``worker-saturation`` 1.0), so that its death fails no other.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path

START_SECONDS = 60.0
STOP_SECONDS = 5.0
# A nanny told to stop, its worker idle, is gone in 0.2 s; one whose worker is busy takes
# seconds: past this, its group is told (the nanny, closing by then, starts no worker again).
NANNY_FIRST = 0.5
TRACKER_GRACE = 1.0  # after the SIGKILL, for the resource trackers to exit by themselves

# Run a dask command line program, ending it if its parent (this program) goes.
BOOTSTRAP = (
    "import os, sys, threading, time\n"
    "parent = os.getppid()\n"
    "def watch():\n"
    "    while os.getppid() == parent:\n"
    "        time.sleep(0.5)\n"
    "    os._exit(1)\n"
    "threading.Thread(target=watch, daemon=True).start()\n"
    "sys.argv = ['dask', *sys.argv[1:]]\n"
    "from dask.cli import run_cli\n"
    "run_cli()\n"
)


class LocalDaskCluster:
    """A scheduler and ``workers`` single-threaded workers on this machine (each allowed
    ``memory_limit``, e.g. "2GB", if given: past it, its nanny ends it; Dask's default else)."""

    def __init__(self, workers: int, *, memory_limit: str | None = None) -> None:
        self._processes: list[subprocess.Popen[bytes]] = []
        self._directory = tempfile.TemporaryDirectory(prefix="plait-dask-")
        scheduler_file = Path(self._directory.name) / "scheduler.json"
        environment = {
            **os.environ,
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
            # A worker holds only the task it runs (the rest wait at the scheduler): when it
            # dies, Dask fails that task alone, not one that waited behind it.
            "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
        }
        try:
            self._start(
                ["scheduler", "--scheduler-file", str(scheduler_file), "--port", "0"],
                environment,
            )
            self.address = self._wait_for(scheduler_file)
            for _ in range(workers):  # (a nanny each: one worker's death is its alone)
                self._start(
                    [
                        "worker",
                        self.address,
                        "--nthreads",
                        "1",
                        "--local-directory",
                        self._directory.name,
                        *(["--memory-limit", memory_limit] if memory_limit else []),
                    ],
                    environment,
                )
        except BaseException:
            self.close()
            raise

    def _start(self, arguments: list[str], environment: dict[str, str]) -> None:
        command = [
            sys.executable,
            "-c",
            BOOTSTRAP,
            *arguments,
            "--host",
            "127.0.0.1",
            "--no-dashboard",
        ]
        self._processes.append(
            subprocess.Popen(
                command,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # (a Ctrl-C is the program's to handle, not theirs)
            )
        )

    def _wait_for(self, scheduler_file: Path) -> str:
        deadline = time.monotonic() + START_SECONDS
        scheduler = self._processes[0]
        while time.monotonic() < deadline:
            if scheduler.poll() is not None:
                raise RuntimeError(
                    f"plait could not start a Dask scheduler (exit code {scheduler.returncode})"
                )
            with suppress(OSError, ValueError, KeyError):
                address: str = json.loads(scheduler_file.read_text())["address"]
                return address
            time.sleep(0.02)
        raise RuntimeError(f"plait's Dask scheduler did not start within {START_SECONDS} s")

    def close(self) -> None:
        """End every process of the cluster, and wait until they are gone.

        First each nanny alone: a nanny told to stop closes its worker process itself, and
        starts no other. Its whole process group only then (a busy worker holds its nanny's
        close up for seconds): a worker ended at the same moment as its nanny was now and then
        started again by it, which held the close up until the SIGKILL, and that ended the
        resource tracker of multiprocessing with it, before it could remove the new worker's
        semaphores from ``/dev/shm``. So a SIGKILL spares the trackers a moment, too: each
        exits by itself once the processes it cleans up after are gone."""
        nannies = self._processes[1:]  # (the first is the scheduler)
        for nanny in nannies:
            with suppress(ProcessLookupError):
                nanny.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + NANNY_FIRST
        for nanny in nannies:
            with suppress(subprocess.TimeoutExpired):
                nanny.wait(max(0.0, deadline - time.monotonic()))
        groups = [process.pid for process in self._processes]
        for group in reversed(groups):
            _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in self._processes:
            with suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
        for group in groups:
            # A worker process may outlive its nanny a moment. Not forever: past the grace it
            # is killed, and a process that has ended but that nobody reaps (an orphan's
            # zombie, where the machine's first process does not reap) counts as gone.
            while _group_runs(group):
                now = time.monotonic()
                if now > deadline:
                    _kill_group(group, trackers=now > deadline + TRACKER_GRACE)
                if now > deadline + STOP_SECONDS:
                    break  # (SIGKILL cannot be refused: what is left is not ours to wait for)
                time.sleep(0.02)
        for process in self._processes:
            process.wait()
        self._processes.clear()
        self._directory.cleanup()


def _signal_group(group: int, signum: int) -> bool:
    """Signal a process group; False once it has no process left."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True


def _kill_group(group: int, *, trackers: bool) -> None:
    """SIGKILL the group's processes; its resource trackers (multiprocessing's) too only if
    ``trackers``: else they exit by themselves, once what they clean up after has gone."""
    members = _members(group)
    if members is None or trackers:
        _signal_group(group, signal.SIGKILL)
        return
    for pid, _, command in members:
        if b"multiprocessing.resource_tracker" not in command:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _group_runs(group: int) -> bool:
    """Whether a process of the group still runs: a zombie does not (where ``/proc`` tells)."""
    if not _signal_group(group, 0):
        return False
    members = _members(group)
    return members is None or any(state not in ("Z", "X") for _, state, _ in members)


def _members(group: int) -> list[tuple[int, str, bytes]] | None:
    """The group's processes, as ``/proc`` tells: pid, state, command line (None: no
    ``/proc``)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group:
                members.append((int(entry.name), fields[0], (entry / "cmdline").read_bytes()))
        except (OSError, IndexError):  # (it ended while we looked)
            continue
    return members
