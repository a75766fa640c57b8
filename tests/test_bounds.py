"""Bound: the one check every number from a spec or space file passes."""

from __future__ import annotations

import math

import pytest

from tuner.bounds import SECONDS, Bound

SEED = Bound(0, 2**31 - 1, integer=True)


@pytest.mark.parametrize("value", [0, 1, 2**31 - 1])
def test_integers_inside_hold(value: int) -> None:
    assert SEED.holds(value)


@pytest.mark.parametrize(
    "value", [-1, 2**31, 2**32, 10**400, -(10**400), 1.0, True, False, "1", None, [1], math.nan]
)
def test_anything_else_fails_without_raising(value: object) -> None:
    assert not SEED.holds(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0, 0.0, -0.0, 10**7 + 1, 10**400])
def test_seconds_are_finite_positive_and_capped(value: object) -> None:
    assert not SECONDS.holds(value)


def test_seconds_edges_and_messages() -> None:
    assert SECONDS.holds(10**7) and SECONDS.holds(5e-324) and SECONDS.holds(1)
    assert str(SECONDS) == "a number in (0, 10000000]"
    assert str(SEED) == "an integer in [0, 2147483647]"
    assert Bound(1e-6, 0.999).interval == "[1e-06, 0.999]"
