"""Hardware and workload restriction: removing from a space the values that cannot run here.

A dropped value is recorded (`Dropped`) and stored with the study, so a reader sees what was
not searched and why, instead of wondering why fp16 never appears. Two things drop values: the
device (CUDA graphs on a CPU, pinned memory without a GPU) and the workload (channels_last
for inputs that are not images, DataLoader workers for in-memory tensors). A value the user
fixed, or a knob left with nothing to choose, is an error rather than a silent change of the
question.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tuner.config import CompileMode, MatmulPrecision, Precision
from tuner.hardware import Capabilities
from tuner.space.schema import (
    DATA_KNOBS,
    Categorical,
    Choice,
    Fixed,
    SearchSpace,
    SpaceError,
    Value,
)
from tuner.workload import WorkloadTraits


@dataclass(frozen=True)
class Dropped:
    """One value removed from the space: the knob (``precision``), the value and why."""

    knob: str
    value: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-safe dict ``{knob, value, reason}``."""
        return {"knob": self.knob, "value": self.value, "reason": self.reason}


_BOOLEANS: tuple[Value, ...] = (False, True)
#: Every value of each restricted knob, for saying what a user could write instead.
_DOMAINS: dict[str, tuple[Value, ...]] = {
    "precision": tuple(p.value for p in Precision),
    "compile_mode": tuple(m.value for m in CompileMode),
    "matmul_precision": tuple(m.value for m in MatmulPrecision),
    "num_workers": (0, 1, 2, 4, 8),
    "pin_memory": _BOOLEANS,
    "cudnn_benchmark": _BOOLEANS,
    "channels_last": _BOOLEANS,
    "activation_checkpointing": _BOOLEANS,
}


def restrict(
    space: SearchSpace, caps: Capabilities, traits: WorkloadTraits | None = None
) -> tuple[SearchSpace, tuple[Dropped, ...]]:
    """Remove the values ``caps`` (the device) and ``traits`` (the workload) rule out; report
    each removal.

    Raises:
        SpaceError: a knob is fixed to an unsupported value, or none of its choices is supported.
    """
    reasons = _reasons(space, caps, traits or WorkloadTraits())
    changes: dict[str, Any] = {}
    dropped: list[Dropped] = []
    for knob, why in reasons.items():
        kept, gone = _restrict(knob, getattr(space, knob), why)
        changes[knob] = kept
        dropped.extend(gone)
    return dataclasses.replace(space, **changes), tuple(dropped)


def _reasons(
    space: SearchSpace, caps: Capabilities, traits: WorkloadTraits
) -> dict[str, dict[Value, str]]:
    """knob -> {value that cannot run: why}, device first, then workload."""
    reasons: dict[str, dict[Value, str]] = {
        "precision": {p.value: why for p, why in caps.unsupported_precisions.items()},
        "compile_mode": {m.value: why for m, why in caps.unsupported_compile_modes.items()},
    }
    for knob, values in caps.unsupported_knobs.items():
        for value, why in values.items():
            reasons.setdefault(knob, {})[value] = why
    if not traits.datasets:
        why = "the workload's data are in-memory tensors (Data), batched without a DataLoader"
        for workers in _values(space.num_workers):
            if workers != 0:
                reasons.setdefault("num_workers", {})[workers] = why
        reasons.setdefault("pin_memory", {}).setdefault(True, why)
    if traits.input_rank != 4:
        shape = "not one tensor" if traits.input_rank is None else f"{traits.input_rank}-D"
        reasons["channels_last"] = {
            True: f"channels_last needs 4-D (N, C, H, W) inputs; this workload's are {shape}"
        }
    if not traits.checkpointable:
        reasons["activation_checkpointing"] = {True: "the workload declares no checkpoint_blocks"}
    return reasons


def _values(knob: Categorical) -> tuple[Value, ...]:
    return (knob.value,) if isinstance(knob, Fixed) else knob.values


def _path(knob: str) -> str:
    return f"{'data' if knob in DATA_KNOBS else 'performance'}.{knob}"


def _text(value: Value) -> str:
    """A value as a space file writes it."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _restrict(
    knob: str, value: Categorical, reasons: Mapping[Value, str]
) -> tuple[Categorical, tuple[Dropped, ...]]:
    values = _values(value)
    dropped = tuple(Dropped(knob, _text(v), reasons[v]) for v in values if v in reasons)
    kept = tuple(v for v in values if v not in reasons)
    path = _path(knob)
    supported: Sequence[str] = [_text(v) for v in _DOMAINS[knob] if v not in reasons]
    if isinstance(value, Fixed) and dropped:
        raise SpaceError(
            f"{path}: {knob}={_text(value.value)} cannot run here: "
            f"{dropped[0].reason}; set {path} to one of {', '.join(supported)}"
        )
    if not kept:
        why = "; ".join(f"{d.value}: {d.reason}" for d in dropped)
        raise SpaceError(
            f"{path}: none of {knob}={', '.join(map(_text, values))} can run here "
            f"({why}); add one of "
            f"{', '.join(supported)} to {path}"
        )
    if not dropped:
        return value, ()
    return (Fixed(kept[0]) if len(kept) == 1 else Choice(kept)), dropped
