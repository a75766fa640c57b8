"""Search spaces as typed values: what a study may vary, knob by knob.

A `SearchSpace` is what a space file means once its ``extends`` chain is merged, its defaults
filled in and every value validated; `tuner.space.parse` documents the file format and builds
it. Its dict form is itself a complete space file, so the space stored in a study is readable
and a worker rebuilds it through the same validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tuner.batch_scaling import DEFAULT_REFERENCE_BATCH, LrScaling
from tuner.errors import UserError

Value = str | int | float | bool


class SpaceError(UserError):
    """A space is invalid; the one-line message names the file, field path, value and fix."""


class Clipping(StrEnum):
    """Gradient clipping modes.

    TrialConfig stores only ``grad_clip_norm`` (None when off), so this choice lives in the space.
    """

    OFF = "off"
    NORM = "norm"  # clip the global gradient norm to clipping.max_norm


@dataclass(frozen=True)
class Fixed:
    """A knob held at one value: it appears in every config but is never an Optuna parameter."""

    value: Value

    def to_raw(self) -> Any:
        """The knob as written in a space file."""
        return self.value


@dataclass(frozen=True)
class Choice:
    """A categorical knob; values are plain str/int/float/bool, as Optuna's storage requires."""

    values: tuple[Value, ...]

    def to_raw(self) -> Any:
        """The knob as written in a space file."""
        return list(self.values)


@dataclass(frozen=True)
class FloatRange:
    """A continuous knob, sampled uniformly or (``log``) log-uniformly in [low, high]."""

    low: float
    high: float
    log: bool = False

    def to_raw(self) -> Any:
        """The knob as written in a space file."""
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class IntRange:
    """An integer knob in [low, high]; ``high - low`` is a multiple of ``step``."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def to_raw(self) -> Any:
        """The knob as written in a space file."""
        return {"low": self.low, "high": self.high, "step": self.step, "log": self.log}


Knob = Fixed | Choice | FloatRange | IntRange
Categorical = Fixed | Choice


@dataclass(frozen=True)
class Branch:
    """One optimizer or schedule and the knobs that exist only when it is chosen."""

    name: str
    params: tuple[tuple[str, Knob], ...]


#: The knobs of a space file's [data] and [performance] sections, in file order.
DATA_KNOBS = ("num_workers", "pin_memory", "persistent_workers", "prefetch_factor")
PERFORMANCE_KNOBS = (
    "precision",
    "compile_mode",
    "channels_last",
    "optimizer_impl",
    "matmul_precision",
    "cudnn_benchmark",
    "activation_checkpointing",
)


@dataclass(frozen=True)
class SearchSpace:
    """Everything a study may vary. Built by `load_space` or `from_dict`, which validate it.

    ``optimizers`` and ``schedules`` hold one branch per choice, in the file's order; a single
    branch means the choice is fixed. With ``effective_batch_size`` (`tuner.space.batch`),
    ``batch_size`` is the micro-batch, accumulation is derived and ``accumulation_steps`` is
    unused (Fixed(1)).
    """

    optimizers: tuple[Branch, ...]
    schedules: tuple[Branch, ...]
    batch_size: Categorical
    accumulation_steps: Knob
    clipping: Categorical
    max_norm: Knob
    precision: Categorical
    compile_mode: Categorical
    num_workers: Categorical = Fixed(0)
    pin_memory: Categorical = Fixed(False)
    persistent_workers: Categorical = Fixed(False)  # searched only when num_workers > 0
    prefetch_factor: Categorical = Fixed(2)  # searched only when num_workers > 0
    channels_last: Categorical = Fixed(False)
    optimizer_impl: Categorical = Fixed("default")  # per optimizer: fused where it exists
    matmul_precision: Categorical = Fixed("highest")
    cudnn_benchmark: Categorical = Fixed(False)
    activation_checkpointing: Categorical = Fixed(False)
    effective_batch_size: Categorical | None = None  # None: accumulation_steps is searched
    lr_scaling: LrScaling = LrScaling.OFF  # the lr ranges are stated for reference_batch
    reference_batch: int = DEFAULT_REFERENCE_BATCH

    def to_dict(self) -> dict[str, Any]:
        """The space as a self-contained space file (JSON-safe): no extends, every knob explicit."""
        return {
            "optimizer": _group_raw(self.optimizers),
            "schedule": _group_raw(self.schedules),
            "batch": {
                "batch_size": self.batch_size.to_raw(),
                **(
                    {"accumulation_steps": self.accumulation_steps.to_raw()}
                    if self.effective_batch_size is None
                    else {"effective_batch_size": self.effective_batch_size.to_raw()}
                ),
                "lr_scaling": self.lr_scaling.value,
                "reference_batch": self.reference_batch,
            },
            "clipping": {"choices": self.clipping.to_raw(), "max_norm": self.max_norm.to_raw()},
            "data": {name: getattr(self, name).to_raw() for name in DATA_KNOBS},
            "performance": {name: getattr(self, name).to_raw() for name in PERFORMANCE_KNOBS},
        }

    @classmethod
    def from_dict(cls, data: Any) -> SearchSpace:
        """Rebuild a space from `to_dict` output (a worker reads it from the study), validated.

        Raises:
            SpaceError: the dict is not a valid space.
        """
        from tuner.space.parse import parse_space  # parse builds SearchSpace: import it late

        return parse_space(data, Source("stored space"))


def _group_raw(branches: tuple[Branch, ...]) -> dict[str, Any]:
    names = [branch.name for branch in branches]
    raw: dict[str, Any] = {"choices": names[0] if len(names) == 1 else names}
    for branch in branches:
        raw[branch.name] = {name: knob.to_raw() for name, knob in branch.params}
    return raw


@dataclass(frozen=True)
class Source:
    """Where a raw space came from: ``origins`` maps dotted paths to the file that wrote them.

    With ``extends``, one merged space mixes several files; an error names the one to edit.
    ``files`` is the chain's labels, the loaded file first: where two files write rival keys
    (``effective_batch_size`` and ``accumulation_steps``), the earlier one extends the later
    one, and wins.
    """

    top: str
    origins: Mapping[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def error(self, path: str, message: str) -> SpaceError:
        """A SpaceError for ``path``, prefixed with the file that wrote it or its nearest table."""
        owner = path
        while owner and owner not in self.origins:
            owner = owner.rpartition(".")[0]
        return SpaceError(f"{self.origins.get(owner, self.top)}: {path}: {message}")
