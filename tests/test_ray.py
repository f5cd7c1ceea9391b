"""backend="ray": what only Ray has (where Ray comes from, and what plait leaves of it). The
semantics every cluster backend shares are tested in ``test_cluster.py``, on Dask and on Ray.

Each test runs a script of its own: a program with no Ray running, so that plait starts one
(and must shut it down), or one that connects to a Ray started apart. Without ``ray``
installed these tests skip, except where ``PLAIT_REQUIRE_EXTRAS=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from engine_scripts import LIVING, run_script

if os.environ.get("PLAIT_REQUIRE_EXTRAS") != "1":
    pytest.importorskip("ray")

pytestmark = [pytest.mark.timeout(240)]

PLAIT_STARTS_RAY = LIVING + textwrap.dedent(
    """
    import psutil
    import ray
    import plait

    def square(x):
        return x * x

    # No main guard, no Ray running: plait starts one for the map and shuts it down after.
    me = psutil.Process()
    results = plait.map(square, range(100), backend="ray")
    first = next(results)
    seen = [child.pid for child in me.children(recursive=True)]
    rest = list(results)
    print("results", [first, *rest] == [x * x for x in range(100)])
    print("ray processes", len(seen) >= 2)
    print("ray still initialized", ray.is_initialized())
    import time
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and living(seen):
        time.sleep(0.1)
    print("left running", living(seen))
    """
)


def test_without_ray_running_plait_starts_it_and_shuts_it_down(tmp_path: Path) -> None:
    assert run_script(tmp_path, PLAIT_STARTS_RAY) == [
        "results True",
        "ray processes True",
        "ray still initialized False",
        "left running []",
    ]


A_RAY_OF_ITS_OWN = textwrap.dedent(
    """
    import ray
    import plait

    def square(x):
        return x * x

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    with plait.Pool("ray") as pool:
        print("results", list(pool.map(square, range(5))))
    # plait did not start this Ray: it is not plait's to shut down.
    print("still initialized", ray.is_initialized())
    print("still works", ray.get(ray.put("yes")))
    ray.shutdown()
    """
)


def test_a_ray_the_program_started_is_used_and_left_running(tmp_path: Path) -> None:
    assert run_script(tmp_path, A_RAY_OF_ITS_OWN) == [
        "results [0, 1, 4, 9, 16]",
        "still initialized True",
        "still works yes",
    ]


AN_ADDRESS = textwrap.dedent(
    """
    import sys
    import ray
    import plait

    def square(x):
        return x * x

    # Connects to the cluster at the address, or without one to the cluster `ray start` runs
    # on this machine (as ray.init() finds it): plait's connection, closed after; the cluster
    # itself is not plait's and runs on.
    address = sys.argv[1] if len(sys.argv) > 1 else None
    with plait.Pool("ray", plait.Workers(address=address)) as pool:
        print("results", list(pool.map(square, range(5))))
    print("disconnected", not ray.is_initialized())
    """
)


def test_a_cluster_started_apart_is_joined_and_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By its address; and with none, as ``ray.init()`` joins the cluster ``ray start`` runs on
    this machine (plait asked Ray for a local cluster of its size, which Ray refuses once one
    runs: "When connecting to an existing cluster, num_cpus ... must not be provided")."""
    # (A cluster started apart wants its token from those who connect: not this test's matter.)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    # Where `ray start` says which cluster runs here: a directory of this test's, so that no
    # other program's ray.init() (another test run's) joins this cluster meanwhile. (Short:
    # Ray's sockets are under it.)
    ray_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    monkeypatch.setenv("RAY_TMPDIR", str(ray_dir))
    ray_cli = Path(sys.executable).parent / "ray"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run(
        [
            str(ray_cli),
            "start",
            "--head",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--port=0",
            "--disable-usage-stats",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert started.returncode == 0, started.stderr
    try:
        found = re.search(r"--address='([^']+)'", started.stdout + started.stderr)
        assert found is not None, started.stdout + started.stderr
        address = found.group(1)
        # (Each connects to the cluster the one before left running.)
        for args in ([address], [], [address]):
            assert run_script(tmp_path, AN_ADDRESS, *args) == [
                "results [0, 1, 4, 9, 16]",
                "disconnected True",
            ]
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(ray_dir, ignore_errors=True)
