"""A peak-memory model fitted on finished trials, to skip configs that would not fit.

Within a memory key (everything that sets memory but the micro-batch), peak memory is close
to affine in the micro-batch: weights, optimizer state and workspace are fixed, activations
grow with it. Two or more measured micro-batches fit the line; a prediction outside the
measured range is an extrapolation, which is what skipping a too-large batch needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    number: int
    batch_size: int
    peak_bytes: int


@dataclass(frozen=True)
class Prediction:
    peak_bytes: int
    fitted_on: tuple[int, ...]  # trial numbers


def predict_peak(measured: Sequence[Measured], batch_size: int) -> Prediction | None:
    """Least-squares line through (micro-batch, peak) of trials sharing a memory key; None
    with fewer than two distinct micro-batches (no slope to trust)."""
    sizes = {m.batch_size for m in measured}
    if len(sizes) < 2:
        return None
    n = len(measured)
    mean_x = sum(m.batch_size for m in measured) / n
    mean_y = sum(m.peak_bytes for m in measured) / n
    sxx = sum((m.batch_size - mean_x) ** 2 for m in measured)
    sxy = sum((m.batch_size - mean_x) * (m.peak_bytes - mean_y) for m in measured)
    slope = max(0.0, sxy / sxx)  # memory never shrinks as the batch grows
    peak = mean_y + slope * (batch_size - mean_x)
    return Prediction(int(peak), tuple(sorted(m.number for m in measured)))
