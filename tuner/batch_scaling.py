"""Learning-rate scaling with the effective batch: the rules, and the record a trial keeps.

The effective batch (micro-batch x accumulation steps) is the batch the mathematics sees: it
sets the gradient noise of every optimizer step, so the good learning rate moves with it. A
space may state its lr ranges for a reference effective batch and let each trial rescale the
sampled lr to its own effective batch:

- linear (Goyal et al. 2017, "Accurate, Large Minibatch SGD"): lr x (effective / reference),
  for SGD, whose update is the gradient itself;
- square root (Krizhevsky 2014, "One weird trick"; Malladi et al. 2022, "On the SDEs and
  Scaling Rules for Adaptive Gradient Algorithms"): lr x sqrt(effective / reference), for the
  adaptive optimizers (Adam, AdamW, RMSprop), whose update is normalised by the gradient's
  second moment;
- auto: linear for sgd, square root for the others.

The sampler keeps learning in the reference frame (the Optuna parameter is the unscaled lr),
and the config records what was done (`BatchScaling`), so every reader and export sees the lr
the trial actually trained with. This module imports no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tuner.choices import OptimizerName
from tuner.errors import ConfigError

#: The reference effective batch of a space that names none: the default micro-batch and the
#: default baseline's batch, so a space's lr ranges mean what they meant before scaling existed.
DEFAULT_REFERENCE_BATCH = 32


class LrScaling(StrEnum):
    """How a trial's lr follows its effective batch; a space's ``[batch] lr_scaling``."""

    AUTO = "auto"  # LINEAR for sgd, SQRT for adam, adamw, rmsprop
    LINEAR = "linear"
    SQRT = "sqrt"
    OFF = "off"


def resolve_rule(rule: LrScaling, optimizer: OptimizerName) -> LrScaling:
    """The rule `rule` means for `optimizer`: AUTO resolved, the others as they are.

    Example:
        >>> resolve_rule(LrScaling.AUTO, OptimizerName.SGD).value
        'linear'
    """
    if rule is not LrScaling.AUTO:
        return rule
    return LrScaling.LINEAR if optimizer is OptimizerName.SGD else LrScaling.SQRT


def lr_factor(rule: LrScaling, effective_batch: int, reference_batch: int) -> float:
    """The factor a resolved `rule` multiplies the lr by at `effective_batch`.

    Example:
        >>> lr_factor(LrScaling.SQRT, 128, 32)
        2.0
    """
    ratio = effective_batch / reference_batch
    match rule:
        case LrScaling.LINEAR:
            return ratio
        case LrScaling.SQRT:
            return math.sqrt(ratio)
        case LrScaling.OFF:
            return 1.0
    raise ValueError(f"resolve {rule.value!r} for an optimizer first (resolve_rule)")


@dataclass(frozen=True)
class BatchScaling:
    """What a trial did to its lr: ``lr = unscaled_lr x factor``, with ``factor`` the `rule` of
    effective batch / `reference_batch`.

    ``unscaled_lr`` is the lr as the space states it (the Optuna parameter); it is kept rather
    than recomputed as lr / factor, which may differ from it in the last bit, so a config maps
    back to exactly the parameters that made it. `TrialConfig` checks that the record agrees
    with its own lr and effective batch.
    """

    rule: LrScaling  # LINEAR or SQRT: AUTO is resolved per optimizer, OFF records nothing
    reference_batch: int
    factor: float
    unscaled_lr: float

    def __post_init__(self) -> None:
        if self.rule not in (LrScaling.LINEAR, LrScaling.SQRT):
            raise _fail("batch_scaling.rule", "must be linear or sqrt", self.rule)
        reference = self.reference_batch
        if isinstance(reference, bool) or not isinstance(reference, int) or reference < 1:
            raise _fail("batch_scaling.reference_batch", "must be an integer >= 1", reference)
        for field in ("factor", "unscaled_lr"):
            value = getattr(self, field)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and value > 0):
                raise _fail(f"batch_scaling.{field}", "must be a finite number > 0", value)

    @classmethod
    def build(
        cls, rule: LrScaling, reference_batch: int, effective_batch: int, unscaled_lr: float
    ) -> BatchScaling:
        """The record for an lr of `unscaled_lr` scaled by resolved `rule` to `effective_batch`."""
        factor = lr_factor(rule, effective_batch, reference_batch)
        return cls(rule, reference_batch, factor, unscaled_lr)

    @property
    def lr(self) -> float:
        """The lr the trial trains with."""
        return self.unscaled_lr * self.factor

    def check(self, effective_batch: int, lr: float) -> None:
        """Raise ConfigError unless this record describes a config of `effective_batch` and `lr`.

        A stored or exported config therefore never claims a scaling it did not apply.
        """
        expected = lr_factor(self.rule, effective_batch, self.reference_batch)
        if not math.isclose(self.factor, expected, rel_tol=1e-9):
            raise _fail(
                "batch_scaling.factor",
                f"must be the {self.rule.value} rule of effective batch {effective_batch} / "
                f"reference {self.reference_batch} = {expected!r}",
                self.factor,
            )
        if not math.isclose(lr, self.lr, rel_tol=1e-9):
            raise _fail(
                "optimizer.lr",
                f"must be batch_scaling.unscaled_lr x factor = {self.lr!r}",
                lr,
            )

    def describe(self) -> str:
        """A short phrase for a reader, e.g. ``0.001 (for batch 32) x 2 (sqrt rule)``."""
        return (
            f"{self.unscaled_lr:.6g} (for batch {self.reference_batch}) x {self.factor:.4g} "
            f"({self.rule.value} rule)"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-safe dict; `from_dict` inverts it exactly."""
        return {
            "rule": self.rule.value,
            "reference_batch": self.reference_batch,
            "factor": self.factor,
            "unscaled_lr": self.unscaled_lr,
        }

    @classmethod
    def from_dict(cls, data: Any) -> BatchScaling:
        """Parse and validate a stored record.

        Raises:
            ConfigError: naming the first bad field and its value.
        """
        if not isinstance(data, dict):
            raise _fail("batch_scaling", "must be a mapping", type(data).__name__)
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            allowed = ", ".join(sorted(_FIELDS))
            raise ConfigError(
                f"batch_scaling: unknown key {unknown[0]!r}; allowed keys are {allowed}"
            )
        rule = data.get("rule")
        if rule not in (LrScaling.LINEAR.value, LrScaling.SQRT.value):
            raise _fail("batch_scaling.rule", "must be linear or sqrt", rule)
        fields: dict[str, Any] = {key: data.get(key) for key in _FIELDS if key != "rule"}
        return cls(rule=LrScaling(rule), **fields)


_FIELDS = frozenset({"rule", "reference_batch", "factor", "unscaled_lr"})


def _fail(field: str, message: str, value: Any) -> ConfigError:
    return ConfigError(f"{field}: {message}, got {value!r}")
