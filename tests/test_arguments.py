"""Bad input is refused at the call, with a message that names the parameter and the fix."""

from __future__ import annotations

from typing import Any

import pytest

import plait


def ident(x: object) -> object:
    return x


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"workers": 0}, ValueError, "workers must be >= 1"),
        ({"workers": 2.5}, TypeError, "workers must be an int"),
        ({"backend": "gpu"}, ValueError, "unknown backend 'gpu'"),
        ({"chunksize": 0}, ValueError, "chunksize must be >= 1"),
        ({"errors": "ignore"}, ValueError, "errors must be 'raise' or 'return'"),
        ({"ordered": "yes"}, ValueError, "ordered must be True or False"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        plait.map(ident, [1], **kwargs)


def test_fn_must_be_callable() -> None:
    with pytest.raises(TypeError, match="fn must be callable"):
        plait.map(3, [1])  # type: ignore[call-overload]


def test_at_least_one_iterable() -> None:
    with pytest.raises(TypeError, match="at least one iterable"):
        plait.map(ident)


def test_input_must_be_iterable() -> None:
    with pytest.raises(TypeError, match="iterable #2 is a int"):
        plait.map(pow, [1], 5)  # type: ignore[call-overload]


def test_sized_iterables_of_different_lengths() -> None:
    with pytest.raises(ValueError, match=r"different lengths \[3, 2\]"):
        plait.map(pow, [1, 2, 3], [1, 2])


def test_pool_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        plait.Pool("cluster")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        plait.Pool(workers=-1)


def test_pool_map_timeout_must_be_positive() -> None:
    with plait.Pool() as pool, pytest.raises(ValueError, match="timeout must be >= 0"):
        pool.map(ident, [1], timeout=-1)


@pytest.mark.parametrize("seconds", [float("nan"), float("inf")])
def test_a_time_limit_must_be_finite(seconds: float) -> None:
    """NaN compares false to every bound: it passed the checks, meant no limit on threads and
    failed every item at once on processes (whose dispatcher an infinity crashed)."""
    finite = "must be a finite number of seconds"
    with pytest.raises(ValueError, match=f"task_timeout {finite}.*use None"):
        plait.map(ident, [1], task_timeout=seconds)
    with pytest.raises(ValueError, match=f"timeout {finite}"):
        plait.map(ident, [1], timeout=seconds)
    with pytest.raises(ValueError, match=f"task_timeout {finite}"):
        plait.Pool(task_timeout=seconds)
    with pytest.raises(ValueError, match=f"timeout {finite}"):
        plait.TaskGroup(timeout=seconds)
    with pytest.raises(ValueError, match="rate must be > 0"):
        plait.map(ident, [1], rate=float("nan"))


@pytest.mark.parametrize(
    ("rate", "says"),
    [(10**400, "too large to be a number of calls per second"), (1e-320, "too small")],
)
def test_a_rate_too_large_or_too_small_for_a_float_is_refused_naming_it(
    rate: float, says: str
) -> None:
    """(They passed the checks, then failed inside the limiter with OverflowError, or with
    "Invalid value NaN", naming nothing of plait's.)"""
    with pytest.raises(ValueError, match=f"plait.map: rate=.*{says}"):
        plait.map(ident, [1], rate=rate)
