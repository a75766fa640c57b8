"""Space files: their format, defaults and validation, turned into a SearchSpace.

A space file (TOML) has five sections. Each knob in them is written one of three ways: one value
(``lr = 0.01``: fixed, not searched), a list (``batch_size = [32, 64]``: a categorical choice; a
one-element list is the same as one value), or a range table (``{ low = 1e-4, high = 0.1, log =
true }``; integer knobs also take ``step``). ``[optimizer]`` and ``[schedule]`` hold ``choices``
plus one sub-table per choice (``[optimizer.sgd]``) with the parameters only that choice has, so
Optuna never samples a momentum for Adam. A parameter written directly under ``[optimizer]`` (or
``[schedule]``) is a shared default for every choice that has it; a sub-table's value wins.

A knob no file mentions takes the default below: PyTorch's own default where it has one, so an
omitted knob is fixed, never silently searched.

==============================  ===========================================================
knob                            default
==============================  ===========================================================
optimizer.choices               "adamw"
sgd                             lr 1e-3, weight_decay 0, momentum 0, nesterov false
adam                            lr 1e-3, weight_decay 0, beta1 0.9, beta2 0.999
adamw                           lr 1e-3, weight_decay 0.01, beta1 0.9, beta2 0.999
rmsprop                         lr 1e-2, weight_decay 0, momentum 0, alpha 0.99
schedule.choices                "constant" (cosine and constant have no parameters)
step                            step_every 0.3, step_gamma 0.1 (fractions of the run)
one_cycle                       pct_start 0.3
warmup_cosine                   warmup_fraction 0.05
batch.batch_size                32 (the micro-batch where effective_batch_size is searched)
batch.accumulation_steps        1 (derived instead where effective_batch_size is searched)
batch.effective_batch_size      not searched (powers of two; see tuner.space.batch)
batch.lr_scaling                "off"; "auto" with effective_batch_size ("linear", "sqrt")
batch.reference_batch           32 (the effective batch the lr ranges are stated for)
clipping.choices                "off" ("norm" clips the gradient norm to max_norm)
clipping.max_norm               1.0
performance.precision           "fp32"
performance.compile_mode        "off"
performance.channels_last       false (true: NHWC memory layout; 4-D inputs only)
performance.optimizer_impl      "default" ("foreach", or "fused" for sgd, adam and adamw)
performance.matmul_precision    "highest" ("high": TF32 on Ampere+ GPUs; "medium": bf16)
performance.cudnn_benchmark     false (CUDA only)
performance.activation_         false (only for workloads that declare checkpoint_blocks)
  checkpointing
data.num_workers                0 (DataLoader worker processes; Dataset workloads only)
data.pin_memory                 false (CUDA only)
data.persistent_workers         false (only searched where num_workers > 0)
data.prefetch_factor            2 (batches each worker loads ahead; where num_workers > 0)
==============================  ===========================================================

Values this machine or workload cannot run (pinned memory without CUDA, channels_last for
inputs that are not images) are dropped when a study is created, with the reason stored.

Legal values are those TrialConfig accepts, so every sampled config is valid: lr in (0, 100],
max_norm in (0, 1e6], weight_decay in [0, 1], momentum in [0, 0.999], beta1/beta2/alpha in
[0, 0.99999], schedule fractions in [1e-6, 1], pct_start in [0.01, 0.99], batch sizes powers of
two up to 2**20, accumulation 1..64. The upper bounds on lr, max_norm and batch size are sanity
caps (TrialConfig has none): past them a value is a typo that would fail every trial.
Because SGD with nesterov needs momentum > 0, a space where nesterov may be true must keep the
lowest momentum above 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tuner.batch_scaling import LrScaling
from tuner.bounds import Bound
from tuner.config import (
    LIMITS,
    CompileMode,
    MatmulPrecision,
    OptimizerImpl,
    OptimizerName,
    Precision,
    ScheduleName,
)
from tuner.space.batch import BATCH_DEFAULTS, MAX_ACCUMULATION, batch_knobs
from tuner.space.checks import check_fused, check_nesterov
from tuner.space.schema import (
    DATA_KNOBS,
    PERFORMANCE_KNOBS,
    Branch,
    Categorical,
    Choice,
    Clipping,
    Fixed,
    FloatRange,
    IntRange,
    Knob,
    SearchSpace,
    Source,
    Value,
)
from tuner.text import key_name, shown_toml


@dataclass(frozen=True)
class _Domain:
    """The legal values of one knob: ``check`` returns "<problem>; <fix>" or None."""

    kind: type
    check: Callable[[Any], str | None]
    ranges: bool = True


def _within(bound: Bound) -> Callable[[Any], str | None]:
    """A check that a value (of the knob's kind, not yet converted) lies in ``bound``."""

    def check(value: Any) -> str | None:
        if bound.holds(value):
            return None
        return f"is outside {bound.interval}; use a value in {bound.interval}"

    return check


_BATCH_SIZES = _within(Bound(1, 2**20, integer=True))


def _power_of_two(value: Any) -> str | None:
    problem = _BATCH_SIZES(value)
    if problem or value & (value - 1) == 0:
        return problem
    return "is not a power of two; use values like 32, 64"


def _member(names: Sequence[str], what: str) -> _Domain:
    def check(value: Any) -> str | None:
        return None if value in names else f"is not {what}; use one of {', '.join(names)}"

    return _Domain(object, check, ranges=False)


def _enum_domain(enum: type[StrEnum], what: str) -> _Domain:
    return _member([member.value for member in enum], what)


_DOMAINS: dict[str, _Domain] = {
    "lr": _Domain(float, _within(Bound(0, 100, low_open=True))),
    "nesterov": _Domain(bool, lambda value: None, ranges=False),
    "beta1": _Domain(float, _within(Bound(*LIMITS["betas"]))),
    "beta2": _Domain(float, _within(Bound(*LIMITS["betas"]))),
    **{
        name: _Domain(float, _within(Bound(*LIMITS[name])))
        for name in (
            "weight_decay",
            "momentum",
            "alpha",
            "step_every",
            "step_gamma",
            "warmup_fraction",
            "pct_start",
        )
    },
}
#: The most values one knob may list: a sanity cap (a list of 100000 learning rates would be
#: stored with the study and offered to the sampler whole).
_MAX_VALUES = 1000
_KIND_WORDS = {
    float: "a number; write e.g. 0.01",
    int: "an integer; write e.g. 4",
    bool: "a boolean; write true or false",
}

# The sections besides [optimizer] and [schedule]: their keys and defaults, and the domains.
_SECTIONS: dict[str, dict[str, Value]] = {
    "batch": BATCH_DEFAULTS,
    "clipping": {"choices": "off", "max_norm": 1.0},
    "data": {
        "num_workers": 0,
        "pin_memory": False,
        "persistent_workers": False,
        "prefetch_factor": 2,
    },
    "performance": {
        "precision": "fp32",
        "compile_mode": "off",
        "channels_last": False,
        "optimizer_impl": "default",
        "matmul_precision": "highest",
        "cudnn_benchmark": False,
        "activation_checkpointing": False,
    },
}
_BOOLEAN = _Domain(bool, lambda value: None, ranges=False)
_SECTION_DOMAINS: dict[str, _Domain] = {
    "batch.batch_size": _Domain(int, _power_of_two, ranges=False),
    "batch.accumulation_steps": _Domain(int, _within(Bound(1, MAX_ACCUMULATION, integer=True))),
    "batch.effective_batch_size": _Domain(int, _power_of_two, ranges=False),
    "batch.lr_scaling": _enum_domain(LrScaling, "an lr scaling rule"),
    "batch.reference_batch": _Domain(int, _BATCH_SIZES, ranges=False),
    "clipping.choices": _enum_domain(Clipping, "a clipping mode"),
    "clipping.max_norm": _Domain(float, _within(Bound(0, 10**6, low_open=True))),
    "performance.precision": _enum_domain(Precision, "a precision"),
    "performance.compile_mode": _enum_domain(CompileMode, "a compile mode"),
    "performance.channels_last": _BOOLEAN,
    "performance.optimizer_impl": _enum_domain(OptimizerImpl, "an optimizer implementation"),
    "performance.matmul_precision": _enum_domain(MatmulPrecision, "a matmul precision"),
    "performance.cudnn_benchmark": _BOOLEAN,
    "performance.activation_checkpointing": _BOOLEAN,
    "data.num_workers": _Domain(int, _within(Bound(0, 64, integer=True)), ranges=False),
    "data.pin_memory": _BOOLEAN,
    "data.persistent_workers": _BOOLEAN,
    "data.prefetch_factor": _Domain(int, _within(Bound(1, 64, integer=True)), ranges=False),
}

# Per-branch parameters in canonical order, with their defaults (PyTorch's where it has one).
_OPTIMIZERS: dict[str, dict[str, Value]] = {
    "sgd": {"lr": 1e-3, "weight_decay": 0.0, "momentum": 0.0, "nesterov": False},
    "adam": {"lr": 1e-3, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999},
    "adamw": {"lr": 1e-3, "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999},
    "rmsprop": {"lr": 1e-2, "weight_decay": 0.0, "momentum": 0.0, "alpha": 0.99},
}
_SCHEDULES: dict[str, dict[str, Value]] = {
    "constant": {},
    "step": {"step_every": 0.3, "step_gamma": 0.1},
    "cosine": {},
    "one_cycle": {"pct_start": 0.3},
    "warmup_cosine": {"warmup_fraction": 0.05},
}


def parse_space(raw: Any, source: Source) -> SearchSpace:
    """Validate a raw space (a parsed file, extends already merged) and build the SearchSpace.

    Raises:
        SpaceError: at the first invalid field, naming it, its value and the fix.
    """
    top = _table(source, "", raw, ["optimizer", "schedule", *_SECTIONS])
    sections = {
        name: _table(source, name, top.get(name, {}), list(defaults))
        for name, defaults in _SECTIONS.items()
    }

    def written(path: str) -> Any:
        section, key = path.split(".")
        return sections[section].get(key, _SECTIONS[section][key])

    def knob(path: str) -> Knob:
        return _knob(source, path, written(path), _SECTION_DOMAINS[path])

    def listed(path: str) -> Categorical:
        return _listed(source, path, written(path), _SECTION_DOMAINS[path])

    optimizer_names = _enum_domain(OptimizerName, "an optimizer")
    schedule_names = _enum_domain(ScheduleName, "a schedule")
    optimizers = _group(source, "optimizer", top, optimizer_names, "adamw", _OPTIMIZERS)
    implementations = listed("performance.optimizer_impl")
    check_fused(source, optimizers, implementations)
    batch = batch_knobs(source, sections["batch"], listed, knob)
    return SearchSpace(
        optimizers=optimizers,
        schedules=_group(source, "schedule", top, schedule_names, "constant", _SCHEDULES),
        batch_size=batch.batch_size,
        accumulation_steps=batch.accumulation_steps,
        effective_batch_size=batch.effective_batch_size,
        lr_scaling=batch.lr_scaling,
        reference_batch=batch.reference_batch,
        clipping=listed("clipping.choices"),
        max_norm=knob("clipping.max_norm"),
        optimizer_impl=implementations,
        **{name: listed(f"data.{name}") for name in DATA_KNOBS},
        **{
            name: listed(f"performance.{name}")
            for name in PERFORMANCE_KNOBS
            if name != "optimizer_impl"
        },
    )


def _table(source: Source, path: str, raw: Any, allowed: Sequence[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        fix = f"write [{path}] and its keys" if path else "a space is a table of sections"
        raise source.error(path or "space", f"{shown_toml(raw)} is not a table; {fix}")
    for key in raw:
        if key not in allowed:
            where = f"{path}.{key_name(key)}" if path else key_name(key)
            raise source.error(where, f"unknown key; allowed here: {', '.join(allowed)}")
    return raw


def _group(
    source: Source,
    group: str,
    top: dict[str, Any],
    names: _Domain,
    default: str,
    branches: dict[str, dict[str, Value]],
) -> tuple[Branch, ...]:
    """Parse ``[optimizer]`` or ``[schedule]``: choices, shared defaults and per-choice tables.

    Every branch table present is validated, chosen or not, so a typo never waits for the day
    its branch is chosen.
    """
    shared = list(dict.fromkeys(param for params in branches.values() for param in params))
    table = _table(source, group, top.get(group, {}), ["choices", *shared, *branches])
    choices = _listed(source, f"{group}.choices", table.get("choices", default), names)
    chosen = [choices.value] if isinstance(choices, Fixed) else list(choices.values)
    built = {
        name: _branch(source, group, name, table, defaults)
        for name, defaults in branches.items()
        if name in chosen or name in table
    }
    return tuple(built[str(name)] for name in chosen)


def _branch(
    source: Source, group: str, name: str, table: dict[str, Any], defaults: dict[str, Value]
) -> Branch:
    own = _table(source, f"{group}.{name}", table.get(name, {}), list(defaults))
    params: dict[str, Knob] = {}
    paths: dict[str, str] = {}
    for param, default in defaults.items():
        if param in own or param not in table:
            paths[param] = f"{group}.{name}.{param}"
            raw = own.get(param, default)
        else:
            paths[param] = f"{group}.{param}"
            raw = table[param]
        params[param] = _knob(source, paths[param], raw, _DOMAINS[param])
    if name == OptimizerName.SGD:
        check_nesterov(source, paths["momentum"], params["momentum"], params["nesterov"])
    return Branch(name, tuple(params.items()))


def _knob(source: Source, path: str, raw: Any, domain: _Domain) -> Knob:
    if isinstance(raw, dict) and domain.ranges:
        return _range(source, path, raw, domain)
    return _listed(source, path, raw, domain)


def _listed(source: Source, path: str, raw: Any, domain: _Domain) -> Categorical:
    if isinstance(raw, dict):
        raise source.error(
            path,
            f"{shown_toml(raw)} is a range, but this knob takes one value or a list; list them",
        )
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise source.error(path, "[] is an empty list; list at least one value")
    if len(items) > _MAX_VALUES:
        raise source.error(path, f"lists {len(items)} values; list at most {_MAX_VALUES}")
    values = tuple(_value(source, path, item, domain) for item in items)
    if len(set(values)) < len(values):
        raise source.error(path, f"{shown_toml(raw)} lists a value twice; list each value once")
    return Fixed(values[0]) if len(values) == 1 else Choice(values)


def _value(source: Source, path: str, raw: Any, domain: _Domain) -> Value:
    is_bool = isinstance(raw, bool)
    if domain.kind is float and (is_bool or not isinstance(raw, int | float)):
        raise source.error(path, f"{shown_toml(raw)} is not {_KIND_WORDS[float]}")
    if domain.kind is int and (is_bool or not isinstance(raw, int)):
        raise source.error(path, f"{shown_toml(raw)} is not {_KIND_WORDS[int]}")
    if domain.kind is bool and not is_bool:
        raise source.error(path, f"{shown_toml(raw)} is not {_KIND_WORDS[bool]}")
    problem = domain.check(raw)  # before float(): float(10**400) raises OverflowError
    if problem:
        raise source.error(path, f"{shown_toml(raw)} {problem}")
    return float(raw) if domain.kind is float else raw


def _range(source: Source, path: str, raw: dict[str, Any], domain: _Domain) -> Knob:
    is_int = domain.kind is int
    _table(source, path, raw, ["low", "high", "log", "step"] if is_int else ["low", "high", "log"])
    if "low" not in raw or "high" not in raw:
        raise source.error(
            path, f"{shown_toml(raw)} needs both low and high; add the missing bound"
        )
    low = float(_value(source, f"{path}.low", raw["low"], domain))
    high = float(_value(source, f"{path}.high", raw["high"], domain))
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise source.error(
            f"{path}.log", f"{shown_toml(log)} is not a boolean; write true or false"
        )
    if low > high:
        raise source.error(path, f"low = {low:g} is greater than high = {high:g}; swap them")
    if log and low <= 0:
        raise source.error(path, f"low = {low:g} with log = true; a log range needs low > 0")
    if not is_int:
        return FloatRange(low, high, log)
    step = raw.get("step", 1)
    steps = Bound(1, max(1, high - low), integer=True)
    if not steps.holds(step):
        raise source.error(f"{path}.step", f"{shown_toml(step)} is not {steps}; write e.g. 1")
    if log and step != 1:
        raise source.error(path, f"step = {step} with log = true; Optuna needs step = 1 for log")
    if (high - low) % step:
        raise source.error(path, f"high - low is not a multiple of step = {step}; adjust high")
    return IntRange(int(low), int(high), step, log)
