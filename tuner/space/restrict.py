"""Hardware restriction: removing from a space the values this device cannot run.

A dropped value is recorded (`Dropped`) and stored with the study, so a reader sees what was
not searched and why, instead of wondering why fp16 never appears. A value the user fixed, or a
knob left with nothing to choose, is an error rather than a silent change of the question.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tuner.hardware import Capabilities
from tuner.space.schema import Categorical, Choice, Fixed, SearchSpace, SpaceError


@dataclass(frozen=True)
class Dropped:
    """One value removed from the space: the knob (``precision``), the value and why."""

    knob: str
    value: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-safe dict ``{knob, value, reason}``."""
        return {"knob": self.knob, "value": self.value, "reason": self.reason}


def restrict(space: SearchSpace, caps: Capabilities) -> tuple[SearchSpace, tuple[Dropped, ...]]:
    """Remove the precisions and compile modes ``caps`` says cannot run; report each removal.

    Raises:
        SpaceError: a knob is fixed to an unsupported value, or none of its choices is supported.
    """
    precision, dropped_precisions = _restrict(
        "precision",
        "performance.precision",
        space.precision,
        {p.value: reason for p, reason in caps.unsupported_precisions.items()},
        [p.value for p in caps.precisions],
    )
    compile_mode, dropped_modes = _restrict(
        "compile_mode",
        "performance.compile_mode",
        space.compile_mode,
        {m.value: reason for m, reason in caps.unsupported_compile_modes.items()},
        [m.value for m in caps.compile_modes],
    )
    restricted = dataclasses.replace(space, precision=precision, compile_mode=compile_mode)
    return restricted, dropped_precisions + dropped_modes


def _restrict(
    knob: str,
    path: str,
    value: Categorical,
    reasons: Mapping[str, str],
    supported: Sequence[str],
) -> tuple[Categorical, tuple[Dropped, ...]]:
    values = (value.value,) if isinstance(value, Fixed) else value.values
    dropped = tuple(Dropped(knob, str(v), reasons[str(v)]) for v in values if v in reasons)
    kept = tuple(v for v in values if v not in reasons)
    if isinstance(value, Fixed) and dropped:
        raise SpaceError(
            f"{path}: this device cannot run {knob}={value.value}: {dropped[0].reason}; "
            f"set {path} to one of {', '.join(supported)}"
        )
    if not kept:
        why = "; ".join(f"{d.value}: {d.reason}" for d in dropped)
        raise SpaceError(
            f"{path}: this device cannot run any of {knob}={', '.join(map(str, values))} "
            f"({why}); add one of {', '.join(supported)} to {path}"
        )
    if not dropped:
        return value, ()
    return (Fixed(kept[0]) if len(kept) == 1 else Choice(kept)), dropped
