"""Realistic tuner studies written without torch: thousands of trials in seconds.

The app, the CLI's readers and their benchmarks need studies far larger than a test can train.
`write_study` writes one exactly as `tuner run` stores it (see `tuner.runner`): the same
directions and metric names, every study attribute, a baseline trial first, configs sampled from
the built-in ``quick`` space with the parameter names `tuner.space.sample_config` suggests, and
every trial attribute of a completed, failed or pruned trial. tests/test_synthetic.py compares
the keys with a study the real runner wrote, so this module cannot drift from the schema
silently.

The numbers model the digits CNN on one CPU thread as measured on this project's machines:
accuracy 0.9-0.99 (multiples of 1/360) with a few chance-level (0.1) runs; throughput rising with
batch size, bf16 faster at large batches and slower at 32, fp16 2.5-10x slower (pruned as
too_slow where that projects past the 30 s time limit), torch.compile slower in steady state
plus 1-14 s of compilation; peak RSS past a 560 MB memory budget for some compiled large-batch
trials (a constraint, so those are infeasible). About 84% of trials complete, 10% fail
(diverged, error, out_of_memory) and 6% are pruned (too_slow, unsupported).

Example:
    >>> write_study("sqlite:////tmp/big.db", "big", 5000)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import random
import statistics
from collections.abc import Sequence
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

import tuner
from tuner.attrs import FailureKind, StudyAttr, TrialAttr
from tuner.budget import Budget
from tuner.config import DEFAULT_BASELINE, CompileMode, OptimizerName, Precision, TrialConfig
from tuner.failure_state import failure_state
from tuner.hardware import Capabilities
from tuner.pruning.keys import performance_key
from tuner.space import (
    Choice,
    Dropped,
    SearchSpace,
    config_params,
    load_space,
    restrict,
    sample_config,
    suggest_params,
)
from tuner.spec import StudySpec
from tuner.storage import open_storage

__all__ = ["DEVICE", "write_study"]

#: What `tuner.hardware.describe_device` reports for this project's CPU machines with one
#: torch thread (DeviceInfo.to_dict()).
DEVICE: dict[str, Any] = {
    "type": "cpu",
    "name": "Intel(R) Xeon(R) Processor",
    "torch_version": "2.13.0+cpu",
    "cuda_capability": None,
    "torch_threads": 1,
    "cpu_count": 2,
}

_EPOCHS = 10
_TIME_LIMIT_S = 30.0
_BUDGET = Budget(
    epochs=_EPOCHS, evaluations=4, warmup_steps=3, windows=8, time_limit_s=_TIME_LIMIT_S
)
_MEMORY_BUDGET_MB = 560.0
#: The runner process that asked for every synthetic trial.
OWNER: dict[str, Any] = {"host": "bench", "pid": 4242, "start": "123456", "pids": "boot/1"}
_METRIC_NOISE = 0.01
_TRAIN_EXAMPLES = 1437  # digits: 1437 training and 360 validation images
_VAL_EXAMPLES = 360
_BATCH = 500  # trials per transaction
_START = datetime.datetime(2026, 1, 5, 9, 0, 0)


def write_study(
    storage_url: str,
    name: str,
    n_trials: int,
    *,
    seed: int = 0,
    direction: str = "maximize",
    metric_name: str = "accuracy",
    fast: bool = True,
) -> None:
    """Write a finished tuner study of `n_trials` trials on the digits workload.

    The same `seed` writes the same study. With ``direction="minimize"`` the metric looks
    like bits per character (about 1.9-2.4, chance level 6.3) instead of accuracy.

    Args:
        storage_url: Any storage URL `tuner.storage.open_storage` accepts; a SQLite file is
            created if missing.
        name: The study name; it must not exist in the storage yet.
        n_trials: Trials to write, the baseline (trial 0) included; at least 1.
        seed: Seed of every random choice.
        direction: The metric's direction, "maximize" or "minimize".
        metric_name: The metric's name (objective 0).
        fast: Insert the trials of an RDB storage in one transaction per 500 trials (seconds
            for 5,000) instead of `study.add_trials` (minutes); both store the same rows.

    Raises:
        ValueError: `n_trials` < 1 or an unknown `direction`.
        optuna.exceptions.DuplicatedStudyError: the study already exists.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials: must be >= 1, got {n_trials!r}")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction: must be maximize or minimize, got {direction!r}")
    space, dropped = _cpu_space()
    spec = StudySpec(
        name=name,
        objective="digits",
        space="quick",
        budget=_BUDGET,
        storage=storage_url,
        n_trials=n_trials,
        timeout_s=None,
        seed=seed,
        memory_budget_mb=_MEMORY_BUDGET_MB,
    )
    storage = open_storage(storage_url, create=True)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=[StudyDirection[direction.upper()], StudyDirection.MAXIMIZE],
    )
    study.set_metric_names([metric_name, "throughput"])
    attrs: dict[str, Any] = {
        StudyAttr.SPEC: spec.to_dict(),
        StudyAttr.SPACE: space.to_dict(),
        StudyAttr.DROPPED: [d.to_dict() for d in dropped],
        StudyAttr.OBJECTIVE: spec.objective,
        StudyAttr.METRIC_NAME: metric_name,
        StudyAttr.METRIC_DIRECTION: direction,
        StudyAttr.METRIC_NOISE: _METRIC_NOISE,
        StudyAttr.METRIC_FLOOR: None,  # as the toy workload, which declares no chance level
        StudyAttr.SPEED: {"objective": "throughput", "target": None},
        StudyAttr.DEVICE: dict(DEVICE),
        StudyAttr.TUNER_VERSION: tuner.__version__,
        StudyAttr.CREATED: True,
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)

    rng = random.Random(seed)
    clock = _START
    trials: list[FrozenTrial] = []
    for number in range(n_trials):
        trial = _trial(number, seed, space, rng, direction == "minimize")
        trial.datetime_start = clock + datetime.timedelta(seconds=rng.uniform(0.02, 0.3))
        duration = trial.user_attrs.get(TrialAttr.TRIAL_S) or rng.uniform(0.5, 8.0)
        trial.datetime_complete = trial.datetime_start + datetime.timedelta(seconds=duration)
        clock = trial.datetime_complete
        trials.append(trial)
    for start in range(0, n_trials, _BATCH):
        batch = trials[start : start + _BATCH]
        if fast and isinstance(storage, optuna.storages.RDBStorage):
            _insert(storage, storage.get_study_id_from_name(name), start, batch)
        else:
            study.add_trials(batch)


def _insert(
    storage: optuna.storages.RDBStorage, study_id: int, first: int, trials: list[FrozenTrial]
) -> None:
    """Store finished trials as numbers first, first + 1, ... in one transaction.

    The rows are those `study.add_trials` writes (tests/test_synthetic.py compares the two),
    inserted many at a time into Optuna's own tables. add_trials runs ~25 queries per trial,
    about 30 ms here, which makes a 5,000-trial study take minutes.
    """
    from optuna.storages._rdb import models

    def utc(moment: datetime.datetime | None) -> datetime.datetime | None:
        # RDBStorage keeps naive UTC (see models.TrialModel.datetime_start).
        return None if moment is None else moment.astimezone(datetime.UTC).replace(tzinfo=None)

    numbers = range(first, first + len(trials))
    values: list[dict[str, Any]] = []
    params: list[dict[str, Any]] = []
    user_attrs: list[dict[str, Any]] = []
    system_attrs: list[dict[str, Any]] = []
    with storage.engine.begin() as connection:
        connection.execute(
            sqlalchemy.insert(models.TrialModel.__table__),
            [
                {
                    "study_id": study_id,
                    "number": number,
                    "state": trial.state,
                    "datetime_start": utc(trial.datetime_start),
                    "datetime_complete": utc(trial.datetime_complete),
                }
                for number, trial in zip(numbers, trials, strict=True)
            ],
        )
        table = models.TrialModel.__table__
        query = sqlalchemy.select(table.c.number, table.c.trial_id).where(
            table.c.study_id == study_id, table.c.number.between(first, numbers[-1])
        )
        ids = {number: trial_id for number, trial_id in connection.execute(query)}
        for number, trial in zip(numbers, trials, strict=True):
            trial_id = ids[number]
            for objective, value in enumerate(trial.values or ()):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                values.append(
                    {
                        "trial_id": trial_id,
                        "objective": objective,
                        "value": stored,
                        "value_type": kind,
                    }
                )
            for name, value in trial.params.items():
                distribution = trial.distributions[name]
                params.append(
                    {
                        "trial_id": trial_id,
                        "param_name": name,
                        "param_value": distribution.to_internal_repr(value),
                        "distribution_json": distribution_to_json(distribution),
                    }
                )
            for rows, attrs in ((user_attrs, trial.user_attrs), (system_attrs, trial.system_attrs)):
                rows.extend(
                    {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                    for key, value in attrs.items()
                )
        for model, rows in (
            (models.TrialValueModel, values),
            (models.TrialParamModel, params),
            (models.TrialUserAttributeModel, user_attrs),
            (models.TrialSystemAttributeModel, system_attrs),
        ):
            if rows:
                connection.execute(sqlalchemy.insert(model.__table__), rows)


def _cpu_space() -> tuple[SearchSpace, tuple[Dropped, ...]]:
    """The quick space as a CPU run stores it. The user's space also listed reduce-overhead,
    which hardware awareness drops (CUDA graphs), so the study records one dropped value while
    the stored space equals ``quick``'s."""
    quick = load_space("quick")
    asked = dataclasses.replace(
        quick,
        compile_mode=Choice(("off", "default", CompileMode.REDUCE_OVERHEAD.value)),
    )
    caps = Capabilities(
        unsupported_compile_modes={
            CompileMode.REDUCE_OVERHEAD: "CUDA graphs need a CUDA device",
            CompileMode.MAX_AUTOTUNE: "CUDA graphs need a CUDA device",
        }
    )
    return restrict(asked, caps)


class _Recorder:
    """A `tuner.space.SuggestingTrial` that draws like Optuna's RandomSampler (or returns
    `fixed` values, as an enqueued trial does) and records params and distributions."""

    def __init__(self, rng: random.Random, fixed: dict[str, Any] | None = None) -> None:
        self._rng = rng
        self._fixed = fixed or {}
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, BaseDistribution] = {}

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        if log:
            drawn = math.exp(self._rng.uniform(math.log(low), math.log(high)))
        else:
            drawn = self._rng.uniform(low, high)
        value = float(self._fixed.get(name, min(max(drawn, low), high)))
        self._record(name, FloatDistribution(low, high, log=log, step=step), value)
        return value

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        value = int(self._fixed.get(name, self._rng.randrange(low, high + 1, step)))
        self._record(name, IntDistribution(low, high, log=log, step=step), value)
        return value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self._fixed.get(name, self._rng.choice(list(choices)))
        self._record(name, CategoricalDistribution(tuple(choices)), value)
        return value

    def _record(self, name: str, distribution: BaseDistribution, value: Any) -> None:
        self.params[name] = value
        self.distributions[name] = distribution


def _trial(
    number: int, seed: int, space: SearchSpace, rng: random.Random, minimize: bool
) -> FrozenTrial:
    """One finished trial (start and end times are set by the caller)."""
    system_attrs: dict[str, Any] = {}
    user_attrs: dict[str, Any] = {
        TrialAttr.OWNER: dict(OWNER),
        TrialAttr.SEED: seed + number,
        TrialAttr.DEVICE: dict(DEVICE),
    }
    if number == 0:
        config = DEFAULT_BASELINE
        fixed = config_params(config, space)
        recorder = _Recorder(rng, fixed)
        suggest_params(recorder, config, space)
        user_attrs[TrialAttr.BASELINE] = True
        system_attrs["fixed_params"] = fixed  # what study.enqueue_trial stores
    else:
        recorder = _Recorder(rng)
        config = sample_config(recorder, space)
    user_attrs[TrialAttr.CONFIG] = config.to_dict()
    user_attrs[TrialAttr.PERF_KEY] = performance_key(config.to_dict())

    outcome = _Outcome(config, rng, baseline=number == 0, minimize=minimize)
    user_attrs[TrialAttr.WORKER_RSS_BYTES] = int(rng.uniform(450, 600) * 2**20)
    if outcome.failure is not None:
        kind, reason = outcome.failure
        user_attrs[TrialAttr.FAILURE_KIND] = kind.value
        user_attrs[TrialAttr.FAILURE_REASON] = reason
        state, constraints = failure_state(kind, _MEMORY_BUDGET_MB)
        return optuna.trial.create_trial(
            state=state,
            params=recorder.params,
            distributions=recorder.distributions,
            user_attrs=user_attrs,
            system_attrs=system_attrs,
            constraints=constraints or None,
        )
    user_attrs |= outcome.result
    peak_mb = user_attrs[TrialAttr.PEAK_MEMORY_BYTES] / 2**20
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        values=[user_attrs[TrialAttr.METRIC], user_attrs[TrialAttr.THROUGHPUT]],
        params=recorder.params,
        distributions=recorder.distributions,
        user_attrs=user_attrs,
        system_attrs=system_attrs,
        constraints={"memory_mb": peak_mb - _MEMORY_BUDGET_MB},  # as trial.set_constraint
    )


#: log10 of the learning rate each optimizer trains the digits CNN best at.
_BEST_LOG_LR = {
    OptimizerName.SGD: math.log10(0.05),
    OptimizerName.ADAM: math.log10(2e-3),
    OptimizerName.ADAMW: math.log10(2e-3),
    OptimizerName.RMSPROP: math.log10(1e-3),
}
#: bf16 autocast speed-up by micro-batch size: a loss at 32, 1.4-1.8x at 256 (FACTS.md).
_BF16_SPEEDUP = {32: 0.85, 64: 1.1, 128: 1.45, 256: 1.65}


class _Outcome:
    """How one config fares: its measurements, and its failure if it has one."""

    def __init__(
        self, config: TrialConfig, rng: random.Random, *, baseline: bool, minimize: bool
    ) -> None:
        self.config = config
        self.rng = rng
        self.lr_distance = math.log10(config.optimizer.lr) - _BEST_LOG_LR[config.optimizer.name]
        self.hot = self.lr_distance > math.log10(3)  # well past the best learning rate
        self.speed = self._speed()
        per_epoch = _TRAIN_EXAMPLES // config.batch_size
        self.steps = _EPOCHS * per_epoch // config.accumulation_steps
        compiled = config.compile_mode is not CompileMode.OFF
        # A cold inductor cache compiles for ~10 s, a warm one for ~1.3 s (FACTS.md).
        cold = rng.random() < 0.3
        self.compile_s = (
            (rng.uniform(8, 14) if cold else rng.uniform(1.0, 1.6)) if compiled else 0.0
        )
        self.setup_s = rng.uniform(0.15, 0.35)
        self.result = self._result(minimize)
        self.failure = None if baseline else self._failure()

    def _speed(self) -> float:
        """Expected samples/s of training, before window-to-window noise."""
        config, rng = self.config, self.rng
        batch = config.batch_size
        speed = 9000.0 * batch / (batch + 48)
        if config.precision is Precision.BF16:
            speed *= _BF16_SPEEDUP.get(batch, 1.0)
        elif config.precision is Precision.FP16:
            speed /= math.exp(rng.uniform(math.log(2.5), math.log(10)))
        if config.compile_mode is not CompileMode.OFF:
            speed *= rng.uniform(0.65, 0.95)
        speed *= 1 - 0.025 * (config.accumulation_steps - 1)
        speed *= 1.04 if config.optimizer.name is OptimizerName.SGD else 1.0
        speed *= 0.96 if config.grad_clip_norm is not None else 1.0
        return speed * math.exp(rng.gauss(0, 0.08))  # the host's speed drifts between trials

    def _failure(self) -> tuple[FailureKind, str] | None:
        config, rng = self.config, self.rng
        fp16 = config.precision is Precision.FP16
        compiled = config.compile_mode is not CompileMode.OFF
        if fp16 and compiled and rng.random() < 0.05:
            return FailureKind.UNSUPPORTED, (
                "RuntimeError: \"addmm_impl_cpu_\" not implemented for 'Half'"
            )
        # The harness stops a trial as soon as its warm-up speed projects past the limit.
        step_s = config.effective_batch_size / self.speed
        elapsed = self.setup_s + self.compile_s + 2 * step_s
        projected = (_BUDGET.warmup_steps - 2) * step_s + self.steps * step_s
        if elapsed + projected > _TIME_LIMIT_S:
            return FailureKind.TOO_SLOW, (
                f"{elapsed:.1f} s elapsed + {projected:.1f} s projected would pass "
                f"budget.time_limit_s={_TIME_LIMIT_S:g} ({self.speed:,.0f} samples/s in warm-up)"
            )
        trial_s, rate = self.result[TrialAttr.TRIAL_S], self.result[TrialAttr.THROUGHPUT]
        if trial_s > _TIME_LIMIT_S:  # ... and checks again after every timed window
            return FailureKind.TOO_SLOW, (
                f"{trial_s:.1f} s elapsed + 0.0 s projected would pass "
                f"budget.time_limit_s={_TIME_LIMIT_S:g} ({rate:,.0f} samples/s in training)"
            )
        if rng.random() < (0.4 if self.hot else 0.025):
            step = rng.randrange(1, max(self.steps, 2))
            what = rng.choice(["loss", "loss", "validation metric"])
            value = rng.choice(["nan", "nan", "inf"])
            return FailureKind.DIVERGED, f"{what} became {value} by optimizer step {step}"
        if compiled and config.batch_size == 256 and rng.random() < 0.05:
            size = config.batch_size * rng.choice([2**20, 2**21])
            return FailureKind.OUT_OF_MEMORY, (
                "RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to "
                f"allocate {size} bytes. Error code 12 (Cannot allocate memory)"
            )
        if rng.random() < 0.012:
            return FailureKind.ERROR, rng.choice(
                [
                    "RuntimeError: mat1 and mat2 shapes cannot be multiplied (32x1024 and 512x128)",
                    "ValueError: Expected input batch_size (31) to match target batch_size (32).",
                    "OSError: [Errno 28] No space left on device",
                ]
            )
        return None

    def _metric(self) -> float:
        """Final validation accuracy: a multiple of 1/360 (digits' 360 validation images)."""
        config, rng = self.config, self.rng
        if self.hot and rng.random() < 0.3:  # trained into a constant prediction
            return round(rng.gauss(0.1, 0.01) * _VAL_EXAMPLES) / _VAL_EXAMPLES
        accuracy = 0.988 - 0.03 * self.lr_distance**2
        accuracy -= 0.009 * max(0.0, math.log2(config.effective_batch_size / 32)) ** 1.3
        accuracy -= 0.2 * config.optimizer.weight_decay
        if config.optimizer.momentum is not None and config.optimizer.name is OptimizerName.SGD:
            accuracy -= 0.03 * (0.99 - config.optimizer.momentum)
        if config.schedule.name.value != "constant":
            accuracy += 0.003
        if config.grad_clip_norm is not None and config.grad_clip_norm < 0.5:
            accuracy -= 0.01
        if config.precision is not Precision.FP32:
            accuracy -= 0.002
        accuracy = min(max(accuracy + rng.gauss(0, 0.004), 0.5), 0.997)
        return round(accuracy * _VAL_EXAMPLES) / _VAL_EXAMPLES

    def _result(self, minimize: bool) -> dict[str, Any]:
        """Every attribute `tuner.runner` stores for a completed trial."""
        config, rng = self.config, self.rng
        windows = [self.speed * math.exp(rng.gauss(0, 0.04)) for _ in range(_BUDGET.windows)]
        if rng.random() < 0.2:  # another process took the CPU for a moment
            windows[rng.randrange(len(windows))] *= rng.uniform(0.6, 0.85)
        throughput = statistics.median(windows)
        samples = self.steps * config.effective_batch_size
        train_s = samples / throughput * rng.uniform(1.01, 1.05)
        compiled = config.compile_mode is not CompileMode.OFF
        warmup_s = _BUDGET.warmup_steps * config.effective_batch_size / self.speed * 1.2
        warmup_s += self.compile_s
        evaluations_s = _BUDGET.evaluations * rng.uniform(0.01, 0.03)
        peak_mb = 372 + config.batch_size * 0.25 + rng.uniform(-3, 6)
        peak_mb += rng.uniform(110, 150) if compiled else 0
        peak_mb += 8 if config.precision is not Precision.FP32 else 0
        metric = self._metric()
        if minimize:  # accuracy 0.99 -> 1.9 "bits per character", chance 0.1 -> 6.35
            metric = 1.9 + (0.99 - metric) * 5
        curve = []
        start = 0.1 if not minimize else 6.35
        for i in range(1, _BUDGET.evaluations + 1):
            step = round(self.steps * i / _BUDGET.evaluations)
            done = i / _BUDGET.evaluations
            point = metric + (start - metric) * math.exp(-3 * done) * (1 - done) ** 0.5
            if not minimize:
                point = round(point * _VAL_EXAMPLES) / _VAL_EXAMPLES
            curve.append(
                {
                    "step": step,
                    "samples": step * config.effective_batch_size,
                    "train_s": train_s * step / self.steps,
                    "metric": metric if i == _BUDGET.evaluations else point,
                }
            )
        return {
            TrialAttr.METRIC: metric,
            TrialAttr.THROUGHPUT: throughput,
            TrialAttr.THROUGHPUT_WINDOWS: windows,
            TrialAttr.COMPILE_S: self.compile_s,
            TrialAttr.WARMUP_S: warmup_s,
            TrialAttr.LOADER_STARTUP_S: None,  # digits holds tensors: no loader to start
            TrialAttr.PEAK_MEMORY_BYTES: int(peak_mb * 2**20) // 4096 * 4096,
            TrialAttr.MEMORY_KIND: "cpu_peak_rss",
            TrialAttr.TRAIN_S: train_s,
            TrialAttr.TRIAL_S: self.setup_s + warmup_s + train_s + evaluations_s,
            TrialAttr.OPTIMIZER_STEPS: self.steps,
            TrialAttr.SAMPLES: samples,
            TrialAttr.CURVE: curve,
        }
