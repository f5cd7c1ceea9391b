"""The public namespace: __all__ is sorted, complete, and every name exists."""

from __future__ import annotations

import plait


def test_all_is_sorted_and_unique() -> None:
    assert list(plait.__all__) == sorted(set(plait.__all__))


def test_every_public_name_is_exported() -> None:
    public = {name for name in vars(plait) if not name.startswith("_")}
    assert public == set(plait.__all__)
    for name in plait.__all__:
        assert getattr(plait, name) is not None
