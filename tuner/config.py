"""The resolved training configuration of one trial: every knob, typed and validated.

This is the boundary object of tuner. The search space produces it, the harness consumes it,
the storage keeps its dict form, and export turns it back into code. It imports no torch, so
the CLI can read and validate stored configs instantly.

Schedule parameters are fractions of the training horizon, not step counts, so an exported
config transfers to a user's run of any length.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from tuner.batch_scaling import BatchScaling
from tuner.choices import (
    FUSED_OPTIMIZERS,
    CompileMode,
    MatmulPrecision,
    OptimizerImpl,
    OptimizerName,
    Precision,
    ScheduleName,
)
from tuner.errors import ConfigError

_E = TypeVar("_E", bound=StrEnum)


def _fail(field: str, message: str, value: Any) -> ConfigError:
    return ConfigError(f"{field}: {message}, got {value!r}")


#: Legal closed intervals of the bounded hyperparameters, by field name. TrialConfig validates
#: against them and space files are checked against the same table, so every config a space
#: can sample is valid.
LIMITS: dict[str, tuple[float, float]] = {
    "weight_decay": (0.0, 1.0),
    "momentum": (0.0, 0.999),
    "betas": (0.0, 0.99999),
    "alpha": (0.0, 0.99999),
    "step_every": (1e-6, 1.0),
    "step_gamma": (1e-6, 1.0),
    "warmup_fraction": (1e-6, 1.0),
    "pct_start": (0.01, 0.99),  # OneCycleLR needs both phases non-empty
}


def _positive(field: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise _fail(field, "must be a finite number > 0", value)


def _in_range(field: str, value: float | None, low: float, high: float) -> None:
    if not (isinstance(value, int | float) and low <= value <= high):
        raise _fail(field, f"must be a number in [{low}, {high}]", value)


def _absent(name: str, field: str, value: Any) -> None:
    if value is not None:
        raise _fail(field, f"does not apply to {name}; leave it out", value)


@dataclass(frozen=True)
class OptimizerConfig:
    """An optimizer and exactly the hyperparameters that apply to it.

    Fields that do not apply to the chosen optimizer must be None, so a stored config never
    carries a meaningless value (Adam has no momentum; SGD has no betas).
    """

    name: OptimizerName
    lr: float
    weight_decay: float = 0.0
    momentum: float | None = None  # sgd, rmsprop
    nesterov: bool | None = None  # sgd
    betas: tuple[float, float] | None = None  # adam, adamw
    alpha: float | None = None  # rmsprop smoothing constant

    def __post_init__(self) -> None:
        _positive("optimizer.lr", self.lr)
        _in_range("optimizer.weight_decay", self.weight_decay, *LIMITS["weight_decay"])
        name = self.name
        uses_momentum = name in (OptimizerName.SGD, OptimizerName.RMSPROP)
        uses_betas = name in (OptimizerName.ADAM, OptimizerName.ADAMW)
        if uses_momentum:
            _in_range("optimizer.momentum", self.momentum, *LIMITS["momentum"])
        else:
            _absent(name, "optimizer.momentum", self.momentum)
        if name is OptimizerName.SGD:
            if not isinstance(self.nesterov, bool):
                raise _fail("optimizer.nesterov", "must be true or false for sgd", self.nesterov)
            if self.nesterov and not self.momentum:
                raise _fail("optimizer.nesterov", "needs momentum > 0", self.momentum)
        else:
            _absent(name, "optimizer.nesterov", self.nesterov)
        if uses_betas:
            if not (isinstance(self.betas, tuple) and len(self.betas) == 2):
                raise _fail("optimizer.betas", "must be two numbers [beta1, beta2]", self.betas)
            for i, beta in enumerate(self.betas):
                _in_range(f"optimizer.betas[{i}]", beta, *LIMITS["betas"])
        else:
            _absent(name, "optimizer.betas", self.betas)
        if name is OptimizerName.RMSPROP:
            _in_range("optimizer.alpha", self.alpha, *LIMITS["alpha"])
        else:
            _absent(name, "optimizer.alpha", self.alpha)


@dataclass(frozen=True)
class ScheduleConfig:
    """An LR schedule; its parameters are fractions of the run, so they transfer across lengths."""

    name: ScheduleName
    step_every: float | None = None  # step: decay every this fraction of the run
    step_gamma: float | None = None  # step: multiply the lr by this at each decay
    pct_start: float | None = None  # one_cycle: fraction of the run spent rising
    warmup_fraction: float | None = None  # warmup_cosine: linear warm-up fraction

    def __post_init__(self) -> None:
        name = self.name
        expected = {
            ScheduleName.STEP: ("step_every", "step_gamma"),
            ScheduleName.ONE_CYCLE: ("pct_start",),
            ScheduleName.WARMUP_COSINE: ("warmup_fraction",),
        }.get(name, ())
        for field in ("step_every", "step_gamma", "pct_start", "warmup_fraction"):
            value = getattr(self, field)
            if field in expected:
                _in_range(f"schedule.{field}", value, *LIMITS[field])
            else:
                _absent(name, f"schedule.{field}", value)


@dataclass(frozen=True)
class LoaderConfig:
    """The DataLoader arguments of a Dataset workload (tensor workloads ignore them).

    ``persistent_workers`` and ``prefetch_factor`` exist only with workers, so with
    ``num_workers = 0`` they must be False and None: a stored config never carries a value
    that changed nothing.
    """

    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_factor: int | None = None

    def __post_init__(self) -> None:
        _int_at_least("loader.num_workers", self.num_workers, 0)
        for field in ("pin_memory", "persistent_workers"):
            if not isinstance(getattr(self, field), bool):
                raise _fail(f"loader.{field}", "must be true or false", getattr(self, field))
        if self.num_workers == 0:
            if self.persistent_workers:
                raise _fail("loader.persistent_workers", "needs num_workers > 0", True)
            _absent("num_workers = 0", "loader.prefetch_factor", self.prefetch_factor)
        else:
            _int_at_least("loader.prefetch_factor", self.prefetch_factor, 1)


@dataclass(frozen=True)
class TrialConfig:
    """Every knob of one training configuration, including those the space fixed."""

    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    batch_size: int
    accumulation_steps: int = 1
    grad_clip_norm: float | None = None
    precision: Precision = Precision.FP32
    compile_mode: CompileMode = CompileMode.OFF
    loader: LoaderConfig = dataclasses.field(default_factory=LoaderConfig)
    channels_last: bool = False  # 4-D inputs and the model in NHWC memory layout
    optimizer_impl: OptimizerImpl = OptimizerImpl.DEFAULT
    matmul_precision: MatmulPrecision = MatmulPrecision.HIGHEST
    cudnn_benchmark: bool = False
    activation_checkpointing: bool = False  # recompute the workload's declared blocks
    batch_scaling: BatchScaling | None = None  # how optimizer.lr was scaled; None: it was not

    def __post_init__(self) -> None:
        _int_at_least("batch_size", self.batch_size, 1)
        _int_at_least("accumulation_steps", self.accumulation_steps, 1)
        if self.grad_clip_norm is not None:
            _positive("grad_clip_norm", self.grad_clip_norm)
        for field in ("channels_last", "cudnn_benchmark", "activation_checkpointing"):
            if not isinstance(getattr(self, field), bool):
                raise _fail(field, "must be true or false", getattr(self, field))
        if self.optimizer_impl is OptimizerImpl.FUSED and self.optimizer.name not in (
            FUSED_OPTIMIZERS
        ):
            fused = ", ".join(sorted(FUSED_OPTIMIZERS))
            raise _fail(
                "optimizer_impl", f"fused exists only for {fused}", self.optimizer.name.value
            )
        if self.batch_scaling is not None:
            self.batch_scaling.check(self.effective_batch_size, self.optimizer.lr)

    @property
    def effective_batch_size(self) -> int:
        """Samples per optimizer step: what the mathematics of training sees."""
        return self.batch_size * self.accumulation_steps

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-safe nested dict; `from_dict` inverts it exactly.

        ``batch_scaling`` appears only when the lr was scaled, so an unscaled config's dict is
        what it was before scaling existed.
        """
        optimizer: dict[str, Any] = {
            "name": self.optimizer.name.value,
            "lr": self.optimizer.lr,
            "weight_decay": self.optimizer.weight_decay,
        }
        for field in ("momentum", "nesterov", "alpha"):
            value = getattr(self.optimizer, field)
            if value is not None:
                optimizer[field] = value
        if self.optimizer.betas is not None:
            optimizer["betas"] = list(self.optimizer.betas)
        schedule: dict[str, Any] = {"name": self.schedule.name.value}
        for field in ("step_every", "step_gamma", "pct_start", "warmup_fraction"):
            value = getattr(self.schedule, field)
            if value is not None:
                schedule[field] = value
        return {
            "optimizer": optimizer,
            "schedule": schedule,
            "batch_size": self.batch_size,
            "accumulation_steps": self.accumulation_steps,
            "grad_clip_norm": self.grad_clip_norm,
            "precision": self.precision.value,
            "compile_mode": self.compile_mode.value,
            "loader": {
                "num_workers": self.loader.num_workers,
                "pin_memory": self.loader.pin_memory,
                "persistent_workers": self.loader.persistent_workers,
                "prefetch_factor": self.loader.prefetch_factor,
            },
            "channels_last": self.channels_last,
            "optimizer_impl": self.optimizer_impl.value,
            "matmul_precision": self.matmul_precision.value,
            "cudnn_benchmark": self.cudnn_benchmark,
            "activation_checkpointing": self.activation_checkpointing,
        } | ({} if self.batch_scaling is None else {"batch_scaling": self.batch_scaling.to_dict()})

    @classmethod
    def from_dict(cls, data: Any) -> TrialConfig:
        """Parse and validate a dict from storage or an exported file.

        A key missing from the dict takes its default, so configs stored before a knob
        existed still read back (as the defaults they ran with).

        Raises:
            ConfigError: naming the first bad field, its value and what is allowed.
        """
        if not isinstance(data, dict):
            raise _fail("config", "must be a mapping", type(data).__name__)
        _no_unknown("config", data, _TOP_FIELDS)
        opt = _mapping("optimizer", data.get("optimizer"))
        _no_unknown("optimizer", opt, _OPTIMIZER_FIELDS)
        sched = _mapping("schedule", data.get("schedule"))
        _no_unknown("schedule", sched, _SCHEDULE_FIELDS)
        loader = _mapping("loader", data.get("loader", {}))
        _no_unknown("loader", loader, _LOADER_FIELDS)
        betas = opt.get("betas")
        if isinstance(betas, list):
            betas = tuple(betas)
        scaling = data.get("batch_scaling")
        try:
            return cls(
                optimizer=OptimizerConfig(
                    name=_enum("optimizer.name", OptimizerName, opt.get("name")),
                    lr=opt.get("lr"),  # type: ignore[arg-type]
                    weight_decay=opt.get("weight_decay", 0.0),
                    momentum=opt.get("momentum"),
                    nesterov=opt.get("nesterov"),
                    betas=betas,
                    alpha=opt.get("alpha"),
                ),
                schedule=ScheduleConfig(
                    name=_enum("schedule.name", ScheduleName, sched.get("name")),
                    step_every=sched.get("step_every"),
                    step_gamma=sched.get("step_gamma"),
                    pct_start=sched.get("pct_start"),
                    warmup_fraction=sched.get("warmup_fraction"),
                ),
                batch_size=data.get("batch_size"),  # type: ignore[arg-type]
                accumulation_steps=data.get("accumulation_steps", 1),
                grad_clip_norm=data.get("grad_clip_norm"),
                precision=_enum("precision", Precision, data.get("precision", "fp32")),
                compile_mode=_enum("compile_mode", CompileMode, data.get("compile_mode", "off")),
                loader=LoaderConfig(
                    num_workers=loader.get("num_workers", 0),
                    pin_memory=loader.get("pin_memory", False),
                    persistent_workers=loader.get("persistent_workers", False),
                    prefetch_factor=loader.get("prefetch_factor"),
                ),
                channels_last=data.get("channels_last", False),
                optimizer_impl=_enum(
                    "optimizer_impl", OptimizerImpl, data.get("optimizer_impl", "default")
                ),
                matmul_precision=_enum(
                    "matmul_precision", MatmulPrecision, data.get("matmul_precision", "highest")
                ),
                cudnn_benchmark=data.get("cudnn_benchmark", False),
                activation_checkpointing=data.get("activation_checkpointing", False),
                batch_scaling=None if scaling is None else BatchScaling.from_dict(scaling),
            )
        except TypeError as exc:  # a non-number where a number belongs, caught by comparisons
            raise ConfigError(f"config: {exc}") from None


_TOP_FIELDS = frozenset(
    {
        "optimizer",
        "schedule",
        "batch_size",
        "accumulation_steps",
        "grad_clip_norm",
        "precision",
        "compile_mode",
        "loader",
        "channels_last",
        "optimizer_impl",
        "matmul_precision",
        "cudnn_benchmark",
        "activation_checkpointing",
        "batch_scaling",
    }
)
_LOADER_FIELDS = frozenset({"num_workers", "pin_memory", "persistent_workers", "prefetch_factor"})
_OPTIMIZER_FIELDS = frozenset(
    {"name", "lr", "weight_decay", "momentum", "nesterov", "betas", "alpha"}
)
_SCHEDULE_FIELDS = frozenset({"name", "step_every", "step_gamma", "pct_start", "warmup_fraction"})


def _int_at_least(field: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(field, f"must be an integer >= {low}", value)


def _mapping(field: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(field, "must be a mapping", value)
    return value


def _no_unknown(field: str, data: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{field}: unknown key {unknown[0]!r}; allowed keys are {', '.join(sorted(allowed))}"
        )


def _enum(field: str, enum: type[_E], value: Any) -> _E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise _fail(field, f"must be one of {allowed}", value) from None


# LinearLR's starting factor for warmup_cosine. knobs and the Python export share it.
WARMUP_START_FACTOR = 1e-3


def optimizer_kwargs(config: OptimizerConfig) -> dict[str, Any]:
    """The keyword arguments of the torch optimizer, as plain Python values.

    `tuner.knobs` and the Python export both use this, so they cannot drift apart. A field
    is passed exactly when it is set: OptimizerConfig leaves the ones that do not apply as None.

    Example:
        >>> optimizer_kwargs(OptimizerConfig(OptimizerName.ADAM, lr=0.001, betas=(0.9, 0.99)))
        {'lr': 0.001, 'betas': (0.9, 0.99), 'weight_decay': 0.0}
    """
    kwargs: dict[str, Any] = {"lr": float(config.lr)}
    if config.momentum is not None:
        kwargs["momentum"] = float(config.momentum)
    if config.nesterov is not None:
        kwargs["nesterov"] = bool(config.nesterov)
    if config.betas is not None:
        kwargs["betas"] = (float(config.betas[0]), float(config.betas[1]))
    if config.alpha is not None:
        kwargs["alpha"] = float(config.alpha)
    kwargs["weight_decay"] = float(config.weight_decay)
    return kwargs


#: What a user gets from plain PyTorch defaults; every study's first trial, unless the workload
#: declares its own baseline. Adam's betas and weight decay are torch's defaults.
DEFAULT_BASELINE = TrialConfig(
    optimizer=OptimizerConfig(OptimizerName.ADAM, lr=1e-3, betas=(0.9, 0.999)),
    schedule=ScheduleConfig(ScheduleName.CONSTANT),
    batch_size=32,
)


def implementation_kwargs(impl: OptimizerImpl) -> dict[str, Any]:
    """The torch optimizer keyword that selects `impl`; nothing for torch's own default.

    Example:
        >>> implementation_kwargs(OptimizerImpl.FUSED)
        {'fused': True}
    """
    return {} if impl is OptimizerImpl.DEFAULT else {impl.value: True}
