"""Checks across knobs of one space: combinations no sampled config could run.

Each is a one-line SpaceError naming the field and the fix, raised while the space is parsed
(`tuner.space.parse`), so a space that could sample a config torch refuses never loads.
"""

from __future__ import annotations

from tuner.choices import FUSED_OPTIMIZERS, OptimizerImpl, OptimizerName
from tuner.space.schema import Branch, Categorical, Choice, Fixed, Knob, Source, Value
from tuner.text import shown_toml


def check_fused(source: Source, optimizers: tuple[Branch, ...], impl: Categorical) -> None:
    """An optimizer without a fused kernel needs another implementation to choose."""
    values = (impl.value,) if isinstance(impl, Fixed) else impl.values
    if values != (OptimizerImpl.FUSED.value,):
        return
    lacking = [b.name for b in optimizers if OptimizerName(b.name) not in FUSED_OPTIMIZERS]
    if lacking:
        raise source.error(
            "performance.optimizer_impl",
            f'"fused" is the only choice, but {lacking[0]} has no fused implementation; '
            'add "default" or "foreach", or drop that optimizer',
        )


def check_nesterov(source: Source, path: str, momentum: Knob, nesterov: Knob) -> None:
    """SGD rejects nesterov without momentum, so no sample may pair nesterov=true with 0."""
    lowest = min(float(value) for value in _extremes(momentum))
    if True in _extremes(nesterov) and lowest <= 0:
        raise source.error(
            path,
            f"{shown_toml(momentum.to_raw())} allows momentum = {lowest:g} while nesterov may be "
            "true, and sgd needs momentum > 0 for nesterov; raise the lowest momentum above 0 "
            "or set nesterov = false",
        )


def _extremes(knob: Knob) -> tuple[Value, ...]:
    """Every value a categorical knob can take; the two ends of a range."""
    if isinstance(knob, Fixed):
        return (knob.value,)
    if isinstance(knob, Choice):
        return knob.values
    return (knob.low, knob.high)
