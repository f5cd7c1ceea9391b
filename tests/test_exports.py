"""The public namespace: __all__ is sorted, complete, and every name exists."""

from __future__ import annotations

import plait


def test_all_is_sorted_and_unique() -> None:
    def kind_then_name(name: str) -> tuple[int, str]:  # constants, classes, then functions
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert list(plait.__all__) == sorted(set(plait.__all__), key=kind_then_name)


def test_every_public_name_is_exported() -> None:
    for name in plait.__all__:
        assert getattr(plait, name) is not None  # the lazy ones load on first use
    public = {name for name in vars(plait) if not name.startswith("_")}
    assert public - {"TYPE_CHECKING", "Any"} == set(plait.__all__)
    assert set(dir(plait)) >= set(plait.__all__)


def test_unknown_attribute_is_an_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = plait.nope


def test_a_worker_process_imports_little() -> None:
    import subprocess
    import sys

    code = (
        "import plait._backends.process._child, sys; "
        "print(sorted(m for m in sys.modules if 'plait' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "plait.sync" not in out.stdout
    assert "plait._pool" not in out.stdout


def test_the_engines_are_imported_only_when_asked_for() -> None:
    """plait[dask] and plait[ray] are extras: importing plait, and mapping on any other
    backend, never imports them (nor their slow imports: about a second each)."""
    import subprocess
    import sys

    code = (
        "import sys, plait; "
        "list(plait.map(abs, range(-50, 50))); "
        "list(plait.map(abs, range(-5, 5), backend='process')); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'ray')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
