"""Sampling: one Optuna trial's suggestions turned into a TrialConfig.

Parameter names are the study's schema, so they are stable and conditional: the top-level
choices are ``optimizer``, ``schedule``, ``batch_size``, ``accumulation_steps`` (or
``effective_batch_size``, `tuner.space.batch`), ``clipping``,
``num_workers``, ``pin_memory`` and every other [performance] knob by its name; a parameter
that exists only for one choice is prefixed by it (``sgd.momentum``, ``adamw.beta2``,
``step.step_gamma``, ``clipping.max_norm``, ``workers.prefetch_factor`` when num_workers > 0,
``sgd.optimizer_impl``: each optimizer offers only the implementations it has). Optuna's
samplers treat such define-by-run parameters as conditional, and a trial's params show exactly
the knobs that shaped it. Fixed knobs are not suggested at all: they are in the config, not in
``trial.params``. An lr parameter is the lr as the space states it: with lr scaling, the config
holds it rescaled to the trial's effective batch (``config.batch_scaling``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Protocol

from tuner.config import (
    FUSED_OPTIMIZERS,
    CompileMode,
    LoaderConfig,
    MatmulPrecision,
    OptimizerConfig,
    OptimizerImpl,
    OptimizerName,
    Precision,
    ScheduleConfig,
    ScheduleName,
    TrialConfig,
)
from tuner.space.batch import batch_params, scale_lr, suggest_batch, unscaled_lr
from tuner.space.schema import (
    Branch,
    Categorical,
    Choice,
    Clipping,
    Fixed,
    FloatRange,
    Knob,
    SearchSpace,
)


class SuggestingTrial(Protocol):
    """The part of Optuna's trial API the sampler uses; Optuna's Trial and FixedTrial fit it."""

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


def sample_config(trial: SuggestingTrial, space: SearchSpace) -> TrialConfig:
    """Suggest every searched knob of ``space`` on ``trial`` and build the validated config.

    Example:
        >>> import optuna
        >>> from tuner.space import load_space
        >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> config = sample_config(study.ask(), load_space("quick"))
        >>> config.batch_size in (32, 64, 128, 256)
        True

    Raises:
        ConfigError: only when a FixedTrial supplies values outside the space.
    """
    optimizer = _pick(trial, "optimizer", space.optimizers)
    optimizer_params = _suggest_branch(trial, optimizer)
    betas = None
    if "beta1" in optimizer_params:
        betas = (optimizer_params.pop("beta1"), optimizer_params.pop("beta2"))
    schedule = _pick(trial, "schedule", space.schedules)
    schedule_params = _suggest_branch(trial, schedule)
    batch_size, accumulation_steps = suggest_batch(functools.partial(_suggest, trial), space)
    name = OptimizerName(optimizer.name)
    scaling = scale_lr(space, name, batch_size * accumulation_steps, optimizer_params["lr"])
    if scaling is not None:
        optimizer_params["lr"] = scaling.lr
    clipping = _suggest(trial, "clipping", space.clipping)
    max_norm = None
    if clipping == Clipping.NORM:
        max_norm = _suggest(trial, "clipping.max_norm", space.max_norm)
    num_workers = _suggest(trial, "num_workers", space.num_workers)
    persistent, prefetch = False, None
    if num_workers > 0:
        persistent = _suggest(trial, "workers.persistent_workers", space.persistent_workers)
        prefetch = _suggest(trial, "workers.prefetch_factor", space.prefetch_factor)
    pin_memory = _suggest(trial, "pin_memory", space.pin_memory)
    return TrialConfig(
        optimizer=OptimizerConfig(name=name, betas=betas, **optimizer_params),
        schedule=ScheduleConfig(name=ScheduleName(schedule.name), **schedule_params),
        batch_size=batch_size,
        accumulation_steps=accumulation_steps,
        grad_clip_norm=max_norm,
        precision=Precision(_suggest(trial, "precision", space.precision)),
        compile_mode=CompileMode(_suggest(trial, "compile_mode", space.compile_mode)),
        loader=LoaderConfig(num_workers, pin_memory, persistent, prefetch),
        channels_last=_suggest(trial, "channels_last", space.channels_last),
        optimizer_impl=OptimizerImpl(
            _suggest(trial, f"{name}.optimizer_impl", implementations(space, name))
        ),
        matmul_precision=MatmulPrecision(
            _suggest(trial, "matmul_precision", space.matmul_precision)
        ),
        cudnn_benchmark=_suggest(trial, "cudnn_benchmark", space.cudnn_benchmark),
        activation_checkpointing=_suggest(
            trial, "activation_checkpointing", space.activation_checkpointing
        ),
        batch_scaling=scaling,
    )


def implementations(space: SearchSpace, optimizer: OptimizerName) -> Categorical:
    """The space's optimizer implementations that `optimizer` has (fused is not universal).

    The parser guarantees at least one is left.
    """
    knob = space.optimizer_impl
    values = (knob.value,) if isinstance(knob, Fixed) else knob.values
    kept = tuple(v for v in values if v != OptimizerImpl.FUSED or optimizer in FUSED_OPTIMIZERS)
    return Fixed(kept[0]) if len(kept) == 1 else Choice(kept)


def _pick(trial: SuggestingTrial, name: str, branches: tuple[Branch, ...]) -> Branch:
    if len(branches) == 1:
        return branches[0]
    by_name = {branch.name: branch for branch in branches}
    return by_name[trial.suggest_categorical(name, list(by_name))]


def _suggest_branch(trial: SuggestingTrial, branch: Branch) -> dict[str, Any]:
    return {name: _suggest(trial, f"{branch.name}.{name}", knob) for name, knob in branch.params}


def _suggest(trial: SuggestingTrial, name: str, knob: Knob) -> Any:
    if isinstance(knob, Fixed):
        return knob.value
    if isinstance(knob, Choice):
        return trial.suggest_categorical(name, list(knob.values))
    if isinstance(knob, FloatRange):
        return trial.suggest_float(name, knob.low, knob.high, log=knob.log)
    return trial.suggest_int(name, knob.low, knob.high, step=knob.step, log=knob.log)


def config_params(config: TrialConfig, space: SearchSpace) -> dict[str, Any]:
    """The Optuna parameters `sample_config` would suggest to produce `config` in `space`.

    Only the parameters whose value lies inside the space are given: the baseline (plain
    PyTorch defaults) may fall outside a user's space (batch 32 in a space of 64-256), and a
    sampler must never be told of a value its distributions cannot hold. Enqueue the result
    (`study.enqueue_trial`) and call `suggest_params` on the trial, and the sampler sees the
    config where the space can describe it.
    """
    return {name: value for name, knob, value in _config_knobs(config, space)}


def suggest_params(trial: SuggestingTrial, config: TrialConfig, space: SearchSpace) -> None:
    """Suggest `config_params(config, space)` on `trial`, so the trial records them.

    On a trial enqueued with those parameters every suggestion returns the enqueued value.
    """
    for name, knob, _ in _config_knobs(config, space):
        _suggest(trial, name, knob)


def _config_knobs(config: TrialConfig, space: SearchSpace) -> list[tuple[str, Knob, Any]]:
    """(parameter name, knob, value) of every searched knob of `space` that holds `config`'s
    value, in the order `sample_config` suggests them."""
    found: list[tuple[str, Knob, Any]] = []

    def add(name: str, knob: Knob, value: Any) -> bool:
        if _contains(knob, value):
            if not isinstance(knob, Fixed):
                found.append((name, knob, value))
            return True
        return False

    optimizer = config.optimizer
    values: dict[str, Any] = {
        "lr": unscaled_lr(config, space),
        "weight_decay": optimizer.weight_decay,
        "momentum": optimizer.momentum,
        "nesterov": optimizer.nesterov,
        "alpha": optimizer.alpha,
    }
    if optimizer.betas is not None:
        values |= {"beta1": optimizer.betas[0], "beta2": optimizer.betas[1]}
    schedule = config.schedule
    for chosen, branches, params in (
        ("optimizer", space.optimizers, values),
        ("schedule", space.schedules, vars(schedule)),
    ):
        name = optimizer.name.value if chosen == "optimizer" else schedule.name.value
        by_name = {branch.name: branch for branch in branches}
        if name not in by_name:
            continue
        if len(branches) > 1:
            add(chosen, Choice(tuple(by_name)), name)
        for param, knob in by_name[name].params:
            add(f"{name}.{param}", knob, params[param])
    for param_name, batch_knob, value in batch_params(config, space):
        add(param_name, batch_knob, value)
    clipping = Clipping.OFF if config.grad_clip_norm is None else Clipping.NORM
    if add("clipping", space.clipping, clipping.value) and clipping is Clipping.NORM:
        add("clipping.max_norm", space.max_norm, config.grad_clip_norm)
    loader = config.loader
    if add("num_workers", space.num_workers, loader.num_workers) and loader.num_workers > 0:
        add("workers.persistent_workers", space.persistent_workers, loader.persistent_workers)
        add("workers.prefetch_factor", space.prefetch_factor, loader.prefetch_factor)
    add("pin_memory", space.pin_memory, loader.pin_memory)
    add("precision", space.precision, config.precision.value)
    add("compile_mode", space.compile_mode, config.compile_mode.value)
    add("channels_last", space.channels_last, config.channels_last)
    add(
        f"{optimizer.name}.optimizer_impl",
        implementations(space, optimizer.name),
        config.optimizer_impl.value,
    )
    for name in ("matmul_precision", "cudnn_benchmark", "activation_checkpointing"):
        value = getattr(config, name)
        add(name, getattr(space, name), value.value if name == "matmul_precision" else value)
    return found


def _contains(knob: Knob, value: Any) -> bool:
    if isinstance(knob, Fixed):
        return bool(knob.value == value)
    if isinstance(knob, Choice):
        return value in knob.values
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    if isinstance(knob, FloatRange):
        return knob.low <= value <= knob.high
    return (
        isinstance(value, int)
        and knob.low <= value <= knob.high
        and ((value - knob.low) % knob.step == 0)
    )
