"""How a stored value becomes a colour, an axis position or a label in a chart."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from tuner.relative import Versus
from tuner.report import number

#: A numeric knob with more distinct values than this is coloured on a continuous scale.
MAX_CATEGORIES = 10


def present(values: pd.Series) -> pd.Series:
    """Which entries hold a value (not None, not NaN)."""
    return values.map(lambda v: label(v) != "n/a")


def continuous(values: pd.Series) -> bool:
    """Whether a knob reads best on a colour scale: numbers only, and many distinct ones."""
    held = values[present(values)]
    numeric = held.map(lambda v: number(v) is not None)
    return bool(len(held)) and bool(numeric.all()) and held.nunique() > MAX_CATEGORIES


def scaled(values: pd.Series) -> tuple[pd.Series, str]:
    """Numeric positions and an axis title; log10 where positive values span over two decades
    (a learning rate from 1e-5 to 1e-1 reads nowhere on a linear axis)."""
    numeric = values.map(number).astype(float)
    name = str(values.name)
    low, high = numeric.min(), numeric.max()
    if low > 0 and high / low > 100:
        return numeric.map(math.log10), f"log10({name})"
    return numeric, name


def label(value: Any) -> str:
    """A knob value as a short label ("n/a" where the knob does not apply)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value is pd.NA or value is pd.NaT:
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def sort_key(value: str) -> tuple[int, float, str]:
    """Labels in reading order: numbers numerically (32 before 128), then words, "n/a" last."""
    if value == "n/a":
        return 2, 0.0, value
    try:
        return 0, float(value), value
    except ValueError:
        return 1, 0.0, value


def versus_of(row: Any) -> Versus:
    """The baseline comparison a row of `tuner.tables.trials_frame` holds (a Series or dict)."""
    return Versus(
        number(row.get("speedup")),
        number(row.get("delta")),
        bool(row.get("not_better")),
        bool(row.get("worse")),
    )
