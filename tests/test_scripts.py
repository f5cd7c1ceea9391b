"""Code defined in the user's script (its ``__main__``) on worker processes, which do not
import that script: its classes, functions and their instances travel by value."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    from dataclasses import dataclass
    import plait


    @dataclass
    class Point:
        x: int
        y: int


    def norm1(p: Point, scale: int = 1) -> int:
        return (abs(p.x) + abs(p.y)) * scale


    def remember(origin: Point) -> None:
        plait.worker_state()["origin"] = origin


    def shifted(x: int) -> Point:
        origin = plait.worker_state()["origin"]
        return Point(origin.x + x, origin.y)


    with plait.Pool("process", workers=2) as pool:
        print("items", list(pool.map(norm1, [Point(i, -i) for i in range(5)])))
        print("submit", pool.submit(norm1, Point(1, 2), scale=Point(3, 4).y).result())
        print("items in a tuple", list(pool.map(norm1, [Point(1, 1)], [10])))
    workers = plait.Workers(2, initializer=remember, initargs=(Point(100, 7),))
    points = list(plait.map(shifted, range(3), backend="process", workers=workers))
    print("results", points == [Point(100, 7), Point(101, 7), Point(102, 7)])
    print("result type", all(type(p) is Point for p in points))
    """
)

# The README's example of Workers(initializer=...), with a stand-in database.
README_EXAMPLE = textwrap.dedent(
    """
    import plait


    class Database:
        def __init__(self) -> None:
            self.rows = {"a": "apple", "b": "banana"}

        def get(self, key: str) -> str:
            return self.rows[key]


    def open_database() -> Database:
        return Database()


    def connect() -> None:
        plait.worker_state()["db"] = open_database()  # once per worker


    def lookup(key: str) -> str:
        return plait.worker_state()["db"].get(key)  # every task on that worker reuses it


    keys = ["a", "b", "a"]
    workers = plait.Workers(4, initializer=connect, max_tasks=10_000)
    values = list(plait.map(lookup, keys, backend="process", workers=workers))
    print(values)
    """
)


def run(tmp_path: Path, source: str) -> str:
    script = tmp_path / "script.py"
    script.write_text(source)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=50, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.timeout(60)
def test_classes_functions_and_objects_of_the_script_reach_worker_processes(
    tmp_path: Path,
) -> None:
    out = run(tmp_path, SCRIPT).splitlines()
    assert out == [
        "items [0, 2, 4, 6, 8]",
        "submit 12",
        "items in a tuple [20]",
        "results True",
        "result type True",  # the parent's own class, not a copy
    ]


@pytest.mark.timeout(60)
def test_the_readme_initializer_example_runs_as_a_script(tmp_path: Path) -> None:
    assert run(tmp_path, README_EXAMPLE) == "['apple', 'banana', 'apple']\n"
