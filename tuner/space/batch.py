"""The batch the mathematics sees: a space's ``[batch]`` section, sampled and mapped back.

Micro-batch and accumulation are not independent knobs. Their product, the effective batch,
is what an optimizer step averages over, so it changes the optimisation; the micro-batch alone
changes only speed and memory. A space may therefore search either

- ``batch_size`` and ``accumulation_steps`` (the original form), or
- ``effective_batch_size`` and ``batch_size`` (the micro-batch), with accumulation derived as
  effective // micro. A micro-batch larger than the effective batch is clamped to it, so
  accumulation is at least 1; both are powers of two, so micro x accumulation == effective.

and, with ``lr_scaling``, state its lr ranges for ``reference_batch`` and rescale each trial's
lr to its effective batch (`tuner.batch_scaling` has the rules). The Optuna parameters are
fixed categoricals (``batch_size``, ``effective_batch_size``) and the unscaled lr, so every
name keeps one distribution and the sampler learns the lr in the reference frame.

With ``extends``, a file may switch a base's form: where one file writes
``effective_batch_size`` and another ``accumulation_steps``, the extending file's wins (the
deep merge cannot delete a key). One file writing both is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tuner.batch_scaling import (
    DEFAULT_REFERENCE_BATCH,
    BatchScaling,
    LrScaling,
    lr_factor,
    resolve_rule,
)
from tuner.config import OptimizerName, TrialConfig
from tuner.space.schema import Categorical, Choice, Fixed, Knob, SearchSpace, Source, Value
from tuner.text import shown_toml

#: The most micro-batches one optimizer step may accumulate (the accumulation_steps domain).
MAX_ACCUMULATION = 64
#: The [batch] keys and the defaults of a file that omits them. ``effective_batch_size`` is
#: read only where written (without it, accumulation_steps is searched), and ``lr_scaling``
#: defaults to "auto" where effective_batch_size is searched: see `batch_knobs`.
BATCH_DEFAULTS: dict[str, Value] = {
    "batch_size": 32,
    "accumulation_steps": 1,
    "effective_batch_size": 32,
    "lr_scaling": LrScaling.OFF.value,
    "reference_batch": DEFAULT_REFERENCE_BATCH,
}

Suggest = Callable[[str, Knob], Any]


@dataclass(frozen=True)
class BatchKnobs:
    """The SearchSpace fields a ``[batch]`` section sets (SearchSpace documents each)."""

    batch_size: Categorical
    accumulation_steps: Knob
    effective_batch_size: Categorical | None
    lr_scaling: LrScaling
    reference_batch: int


def batch_knobs(
    source: Source,
    table: Mapping[str, Any],
    listed: Callable[[str], Categorical],
    knob: Callable[[str], Knob],
) -> BatchKnobs:
    """The SearchSpace fields of a ``[batch]`` table whose keys are known.

    ``listed`` and ``knob`` parse one dotted path of the section (validated against its
    domain, default filled in), as `tuner.space.parse` does for every section.

    The default rule is "auto" when the effective batch is searched: a range of effective
    batches under one unscaled lr range would make the sampler's lr mean a different step
    size at every batch. Without effective_batch_size it stays "off", the original behaviour.

    Raises:
        SpaceError: one file gives both effective_batch_size and accumulation_steps, an
            effective batch needs more than MAX_ACCUMULATION micro-batches, or lr_scaling or
            reference_batch lists several values.
    """
    micro = listed("batch.batch_size")
    reference = _one(source, "batch.reference_batch", listed("batch.reference_batch"))
    effective: Categorical | None = None
    accumulation: Knob = Fixed(1)
    if _derives_accumulation(source, table):
        effective = listed("batch.effective_batch_size")
        _check_accumulation(source, effective, micro)
    else:
        accumulation = knob("batch.accumulation_steps")
    rule = LrScaling.OFF if effective is None else LrScaling.AUTO
    if "lr_scaling" in table:
        rule = LrScaling(_one(source, "batch.lr_scaling", listed("batch.lr_scaling")))
    return BatchKnobs(micro, accumulation, effective, rule, reference)


def _one(source: Source, path: str, knob: Categorical) -> Any:
    """The value of a knob that is a setting of the space, never searched."""
    if isinstance(knob, Choice):
        raise source.error(
            path, f"{shown_toml(list(knob.values))} lists several values; write one value"
        )
    return knob.value


def _derives_accumulation(source: Source, table: Mapping[str, Any]) -> bool:
    """Whether the effective batch is searched (and accumulation derived)."""
    if "effective_batch_size" not in table:
        return False
    if "accumulation_steps" not in table:
        return True
    effective_by = source.origins.get("batch.effective_batch_size", "")
    accumulation_by = source.origins.get("batch.accumulation_steps", "")
    files = source.files
    if effective_by != accumulation_by and {effective_by, accumulation_by} <= set(files):
        return files.index(effective_by) < files.index(accumulation_by)
    raise source.error(
        "batch.effective_batch_size",
        "is given with batch.accumulation_steps, which it derives (effective_batch_size // "
        "batch_size); remove one of the two",
    )


def _values(knob: Categorical) -> tuple[Any, ...]:
    return (knob.value,) if isinstance(knob, Fixed) else knob.values


def _check_accumulation(source: Source, effective: Categorical, micro: Categorical) -> None:
    """Every (effective, micro) pair must need at most MAX_ACCUMULATION micro-batches."""
    largest, smallest = max(_values(effective)), min(_values(micro))
    if largest // smallest > MAX_ACCUMULATION:
        raise source.error(
            "batch.effective_batch_size",
            f"{largest} with batch_size down to {smallest} needs {largest // smallest} "
            f"accumulation steps, more than {MAX_ACCUMULATION}; raise the smallest batch_size "
            f"to at least {largest // MAX_ACCUMULATION} or lower the largest effective_batch_size",
        )


def split_batch(effective: int, micro: int) -> tuple[int, int]:
    """(micro-batch, accumulation steps) of an effective batch, the micro-batch clamped to it.

    Example:
        >>> split_batch(256, 64), split_batch(32, 64)
        ((64, 4), (32, 1))
    """
    micro = min(micro, effective)
    return micro, effective // micro


def suggest_batch(suggest: Suggest, space: SearchSpace) -> tuple[int, int]:
    """(batch_size, accumulation_steps) of a trial; ``suggest(name, knob)`` samples one
    parameter. `batch_params` is its inverse."""
    batch_size = suggest("batch_size", space.batch_size)
    if space.effective_batch_size is None:
        return batch_size, suggest("accumulation_steps", space.accumulation_steps)
    return split_batch(suggest("effective_batch_size", space.effective_batch_size), batch_size)


def scale_lr(
    space: SearchSpace, optimizer: OptimizerName, effective_batch: int, lr: float
) -> BatchScaling | None:
    """The scaling of a sampled `lr` at `effective_batch` by the space's rule; None when off."""
    rule = resolve_rule(space.lr_scaling, optimizer)
    if rule is LrScaling.OFF:
        return None
    return BatchScaling.build(rule, space.reference_batch, effective_batch, lr)


def unscaled_lr(config: TrialConfig, space: SearchSpace) -> float:
    """The lr parameter from which `space` makes `config`'s lr: its own record where it was
    scaled by the same rule (exact), else lr / the factor the space would apply."""
    optimizer = config.optimizer
    rule = resolve_rule(space.lr_scaling, optimizer.name)
    if rule is LrScaling.OFF:
        return optimizer.lr
    recorded = config.batch_scaling
    if recorded is not None and (recorded.rule, recorded.reference_batch) == (
        rule,
        space.reference_batch,
    ):
        return recorded.unscaled_lr
    return optimizer.lr / lr_factor(rule, config.effective_batch_size, space.reference_batch)


def batch_params(config: TrialConfig, space: SearchSpace) -> list[tuple[str, Knob, Any]]:
    """(parameter, knob, value) of the batch knobs `suggest_batch` turns into `config`'s
    batch, in its order.

    A micro-batch equal to the effective batch may have been clamped from any larger choice:
    the config's own value where the space lists it, else the smallest choice above it.
    """
    if space.effective_batch_size is None:
        return [
            ("batch_size", space.batch_size, config.batch_size),
            ("accumulation_steps", space.accumulation_steps, config.accumulation_steps),
        ]
    micro, effective = config.batch_size, config.effective_batch_size
    choices = _values(space.batch_size)
    above = [value for value in choices if value >= effective]
    if config.accumulation_steps == 1 and micro not in choices and above:
        micro = min(above)
    return [
        ("batch_size", space.batch_size, micro),
        ("effective_batch_size", space.effective_batch_size, effective),
    ]
