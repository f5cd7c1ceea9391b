"""Where this process's cgroup keeps a controller's files: a container's CPU quota (``_cores``)
and memory limit (``_backends._local_cluster``) are read there.

``/proc/self/cgroup`` names the cgroup of this process in each hierarchy. cgroup v2 has one,
a line ``0::/path`` under ``/sys/fs/cgroup``; v1 has one per controller (or group of them), a
line ``N:cpu,cpuacct:/path`` mounted under ``/sys/fs/cgroup/cpu,cpuacct`` (or ``.../cpu``).
A leaf: it reads files and imports nothing of plait.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
MEMBERSHIP = Path("/proc/self/cgroup")


def directories(
    controller: str, root: Path = ROOT, membership: Path = MEMBERSHIP
) -> Iterator[tuple[int, Path]]:
    """The directories where ``controller`` ("cpu", "memory") keeps this process's files, as
    (cgroup version, directory), in the order ``membership`` lists them; none if it cannot be
    read (not Linux). The caller reads its files there and, if they are not, tries the next."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return
    for line in lines:
        if line.count(":") < 2:
            continue  # (not a cgroup line)
        hierarchy, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if hierarchy == "0" and controllers == "":  # v2: one unified hierarchy
            yield 2, root / relative
        elif controller in controllers.split(","):  # v1: mounted by its controllers' names
            joined = root / controllers / relative
            yield 1, joined if joined.exists() else root / controller / relative
