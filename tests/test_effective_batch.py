"""The batch the mathematics sees: effective batch, derived accumulation and lr scaling, from
the space file through sampling, the stored config and the enqueued baseline to a real study."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from tests.test_cli import tuner
from tests.test_space import sample_many, write
from tuner.attrs import TrialAttr
from tuner.batch_scaling import BatchScaling, LrScaling, lr_factor, resolve_rule
from tuner.config import (
    DEFAULT_BASELINE,
    ConfigError,
    OptimizerConfig,
    OptimizerName,
    ScheduleConfig,
    ScheduleName,
    TrialConfig,
)
from tuner.runner import prepare, run_study
from tuner.space import (
    Choice,
    Fixed,
    SearchSpace,
    SpaceError,
    config_params,
    load_space,
    sample_config,
    suggest_params,
)
from tuner.space.batch import MAX_ACCUMULATION, split_batch
from tuner.spec import load_spec

TOY = Path(__file__).with_name("toy_workload.py")
#: Every optimizer at its default (fixed) lr, so a FixedTrial names only the batch knobs.
RULES_SPACE = """
[optimizer]
choices = ["sgd", "adam", "adamw", "rmsprop"]
[batch]
effective_batch_size = [32, 128, 256]
batch_size = [16, 64, 512]
"""
DEFAULT_LR = {"sgd": 1e-3, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-2}


def rules_space(tmp_path: Path, extra: str = "") -> SearchSpace:
    return load_space(write(tmp_path, "rules.toml", RULES_SPACE + extra))


def searched_lr(params: dict[str, Any], config: TrialConfig) -> float:
    return float(params[f"{config.optimizer.name.value}.lr"])


# --- the space file ----------------------------------------------------------------------------


def test_the_builtin_space_searches_effective_and_micro_batches_with_auto_scaling() -> None:
    space = load_space("effective_batch")
    assert space.effective_batch_size == Choice((32, 64, 128, 256))
    assert space.batch_size == Choice((16, 32, 64))
    assert space.accumulation_steps == Fixed(1)  # derived per trial, never a parameter
    assert (space.lr_scaling, space.reference_batch) == (LrScaling.AUTO, 32)
    assert "accumulation_steps" not in space.to_dict()["batch"]
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space


def test_old_spaces_keep_their_batch_knobs_and_never_scale() -> None:
    quick = load_space("quick")
    assert quick.effective_batch_size is None
    assert (quick.lr_scaling, quick.reference_batch) == (LrScaling.OFF, 32)
    for params, config in sample_many(quick, 50):
        assert config.batch_scaling is None
        assert "batch_scaling" not in config.to_dict()
        assert "effective_batch_size" not in params
        assert (config.batch_size, config.accumulation_steps) == (
            params["batch_size"],
            params.get("accumulation_steps", 1),
        )
        assert config.optimizer.lr == searched_lr(params, config)


def test_lr_scaling_defaults_to_auto_only_where_the_effective_batch_is_searched(
    tmp_path: Path,
) -> None:
    assert rules_space(tmp_path).lr_scaling is LrScaling.AUTO
    off = rules_space(tmp_path, 'lr_scaling = "off"\n')
    assert off.lr_scaling is LrScaling.OFF
    plain = load_space(write(tmp_path, "plain.toml", '[batch]\nlr_scaling = "linear"\n'))
    assert (plain.effective_batch_size, plain.lr_scaling) == (None, LrScaling.LINEAR)


def test_an_extending_file_switches_the_form_of_its_base(tmp_path: Path) -> None:
    # quick writes accumulation_steps; a file extending it searches the effective batch ...
    text = 'extends = "quick"\n[batch]\neffective_batch_size = [64, 128]\n'
    space = load_space(write(tmp_path, "effective.toml", text))
    assert space.effective_batch_size == Choice((64, 128))
    assert space.accumulation_steps == Fixed(1)
    # ... and a file extending that one goes back to accumulation steps.
    text = 'extends = "effective.toml"\n[batch]\naccumulation_steps = [1, 2]\n'
    space = load_space(write(tmp_path, "back.toml", text))
    assert space.effective_batch_size is None
    assert space.accumulation_steps == Choice((1, 2))


BAD_BATCH = [
    (
        "effective_batch_size = [64]\naccumulation_steps = 2",
        "batch.effective_batch_size: is given with batch.accumulation_steps, which it derives "
        "(effective_batch_size // batch_size); remove one of the two",
    ),
    ("effective_batch_size = [48]", "batch.effective_batch_size: 48 is not a power of two"),
    ("effective_batch_size = 0", "batch.effective_batch_size: 0 is outside [1, 1048576]"),
    (
        "effective_batch_size = { low = 32, high = 256 }",
        'batch.effective_batch_size: {"low": 32, "high": 256} is a range, but this knob takes',
    ),
    (
        "effective_batch_size = [64, 4096]\nbatch_size = [16, 32]",
        "batch.effective_batch_size: 4096 with batch_size down to 16 needs 256 accumulation "
        f"steps, more than {MAX_ACCUMULATION}; raise the smallest batch_size to at least 64 or "
        "lower the largest effective_batch_size",
    ),
    (
        'lr_scaling = "cubic"',
        'batch.lr_scaling: "cubic" is not an lr scaling rule; use one of auto, linear, sqrt, off',
    ),
    (
        'effective_batch_size = [64]\nlr_scaling = ["linear", "sqrt"]',
        'batch.lr_scaling: ["linear", "sqrt"] lists several values; write one value',
    ),
    ("reference_batch = 0", "batch.reference_batch: 0 is outside [1, 1048576]"),
    ("reference_batch = 32.0", "batch.reference_batch: 32.0 is not an integer"),
    ("reference_batch = [32, 64]", "batch.reference_batch: [32, 64] lists several values"),
    (
        "effective_batch = [64]",
        "batch.effective_batch: unknown key; allowed here: batch_size, accumulation_steps, "
        "effective_batch_size, lr_scaling, reference_batch",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_BATCH)
def test_bad_batch_sections_fail_in_one_line_naming_the_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, "bad.toml", f"[batch]\n{text}\n")
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {expected}")
    assert "\n" not in message


def test_both_forms_in_one_base_file_name_that_file(tmp_path: Path) -> None:
    text = "[batch]\neffective_batch_size = [64]\naccumulation_steps = [1, 2]\n"
    base = write(tmp_path, "base.toml", text)
    child = write(tmp_path, "child.toml", 'extends = "base.toml"\n[batch]\nbatch_size = [16]\n')
    with pytest.raises(SpaceError, match=f"^{base}: batch.effective_batch_size: is given with"):
        load_space(child)


def test_a_stored_space_with_both_forms_is_rejected() -> None:
    data = load_space("effective_batch").to_dict()
    data["batch"]["accumulation_steps"] = 2
    with pytest.raises(SpaceError, match=r"^stored space: batch\.effective_batch_size: is given"):
        SearchSpace.from_dict(data)


def test_a_spec_whose_space_gives_both_forms_exits_2_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "space.toml").write_text(
        'extends = "quick"\n[batch]\neffective_batch_size = [64]\naccumulation_steps = 2\n'
    )
    (tmp_path / "spec.toml").write_text(
        f'[study]\nname = "eb"\nobjective = "{TOY}:WORKLOAD"\nspace = "space.toml"\n'
        "n_trials = 2\n[budget]\nsteps = 4\n"
    )
    result = tuner("run", str(tmp_path / "spec.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'space.toml'}: batch.effective_batch_size: is given with "
        "batch.accumulation_steps, which it derives (effective_batch_size // batch_size); "
        "remove one of the two"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.toml", "spec.toml"]


# --- sampling ----------------------------------------------------------------------------------


def test_split_batch_derives_accumulation_and_clamps_the_micro_batch() -> None:
    assert split_batch(256, 16) == (16, 16)
    assert split_batch(64, 64) == (64, 1)
    assert split_batch(32, 512) == (32, 1)


@pytest.mark.parametrize(
    ("rule", "optimizer", "factor"),
    [
        ("auto", "sgd", 4.0),  # linear: 128 / 32
        ("auto", "adam", 2.0),  # square root: sqrt(128 / 32)
        ("auto", "adamw", 2.0),
        ("auto", "rmsprop", 2.0),
        ("linear", "adam", 4.0),
        ("sqrt", "sgd", 2.0),
        ("off", "sgd", None),
    ],
)
def test_each_rule_scales_the_sampled_lr_to_the_effective_batch(
    tmp_path: Path, rule: str, optimizer: str, factor: float | None
) -> None:
    space = rules_space(tmp_path, f'lr_scaling = "{rule}"\n')
    params = {"optimizer": optimizer, "effective_batch_size": 128, "batch_size": 16}
    config = sample_config(optuna.trial.FixedTrial(params), space)
    assert (config.batch_size, config.accumulation_steps) == (16, 8)
    unscaled = DEFAULT_LR[optimizer]
    if factor is None:
        assert config.batch_scaling is None
        assert config.optimizer.lr == unscaled
        return
    resolved = LrScaling.LINEAR if factor == 4.0 else LrScaling.SQRT
    assert config.batch_scaling == BatchScaling(resolved, 32, factor, unscaled)
    assert config.optimizer.lr == unscaled * factor


def test_the_reference_batch_sets_where_the_factor_is_one(tmp_path: Path) -> None:
    space = rules_space(tmp_path, 'lr_scaling = "linear"\nreference_batch = 128\n')
    for effective, factor in ((32, 0.25), (128, 1.0), (256, 2.0)):
        params = {"optimizer": "sgd", "effective_batch_size": effective, "batch_size": 16}
        config = sample_config(optuna.trial.FixedTrial(params), space)
        assert config.batch_scaling is not None
        assert (config.batch_scaling.factor, config.optimizer.lr) == (factor, 1e-3 * factor)


def test_a_micro_batch_above_the_effective_batch_is_clamped(tmp_path: Path) -> None:
    params = {"optimizer": "adam", "effective_batch_size": 32, "batch_size": 512}
    config = sample_config(optuna.trial.FixedTrial(params), rules_space(tmp_path))
    assert (config.batch_size, config.accumulation_steps) == (32, 1)


def test_scaling_applies_to_batch_times_accumulation_when_asked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.toml",
        '[batch]\nbatch_size = [32, 64]\naccumulation_steps = [1, 4]\nlr_scaling = "sqrt"\n',
    )
    params = {"batch_size": 32, "accumulation_steps": 4}
    config = sample_config(optuna.trial.FixedTrial(params), load_space(path))
    assert config.batch_scaling == BatchScaling(LrScaling.SQRT, 32, 2.0, 1e-3)
    assert config.optimizer.lr == 2e-3


def test_sampled_configs_hold_the_effective_batch_and_the_scaled_lr() -> None:
    space = load_space("effective_batch")
    seen: set[tuple[int, int]] = set()
    for params, config in sample_many(space, 200):
        effective = params["effective_batch_size"]
        assert config.batch_size * config.accumulation_steps == effective
        assert 1 <= config.accumulation_steps <= MAX_ACCUMULATION
        assert config.batch_size == min(params["batch_size"], effective)
        scaling = config.batch_scaling
        assert scaling is not None
        rule = resolve_rule(LrScaling.AUTO, config.optimizer.name)
        assert (scaling.rule, scaling.reference_batch) == (rule, 32)
        assert scaling.factor == lr_factor(rule, effective, 32)
        assert scaling.unscaled_lr == searched_lr(params, config)
        assert config.optimizer.lr == searched_lr(params, config) * scaling.factor
        seen.add((effective, config.accumulation_steps))
    assert {accumulation for _, accumulation in seen} == {1, 2, 4, 8, 16}


def test_same_seed_same_configs_and_each_parameter_keeps_one_distribution() -> None:
    space = load_space("effective_batch")
    assert sample_many(space, 30, seed=3) == sample_many(space, 30, seed=3)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    for _ in range(20):
        trial = study.ask()
        config = sample_config(trial, space)
        study.tell(trial, config.optimizer.lr)  # any value: TPE must accept every trial
    distributions: dict[str, set[str]] = {}
    for frozen in study.trials:
        for name, distribution in frozen.distributions.items():
            distributions.setdefault(name, set()).add(repr(distribution))
    assert all(len(kinds) == 1 for kinds in distributions.values()), distributions
    assert {"batch_size", "effective_batch_size"} <= set(distributions)


# --- the stored config -------------------------------------------------------------------------

SCALED = TrialConfig(
    OptimizerConfig(OptimizerName.SGD, lr=0.05 * 4.0, momentum=0.9, nesterov=False),
    ScheduleConfig(ScheduleName.COSINE),
    batch_size=32,
    accumulation_steps=4,
    batch_scaling=BatchScaling(LrScaling.LINEAR, 32, 4.0, 0.05),
)


def test_a_scaled_config_round_trips_through_its_dict_and_json() -> None:
    data = SCALED.to_dict()
    assert data["batch_scaling"] == {
        "rule": "linear",
        "reference_batch": 32,
        "factor": 4.0,
        "unscaled_lr": 0.05,
    }
    assert data["optimizer"]["lr"] == 0.2  # the lr actually used
    assert TrialConfig.from_dict(json.loads(json.dumps(data))) == SCALED


def test_a_config_stored_before_scaling_reads_back_unscaled() -> None:
    data = DEFAULT_BASELINE.to_dict()
    assert "batch_scaling" not in data
    assert TrialConfig.from_dict(data).batch_scaling is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"factor": 3.0}, "batch_scaling.factor: must be the linear rule of effective batch 128"),
        ({"unscaled_lr": 0.06}, "optimizer.lr: must be batch_scaling.unscaled_lr x factor"),
        ({"rule": "auto"}, "batch_scaling.rule: must be linear or sqrt, got 'auto'"),
        ({"reference_batch": 0}, "batch_scaling.reference_batch: must be an integer >= 1"),
        ({"factor": math.inf}, "batch_scaling.factor: must be a finite number > 0, got inf"),
        ({"unscaled_lr": "0.05"}, "batch_scaling.unscaled_lr: must be a finite number > 0"),
        ({"sqrt": True}, "batch_scaling: unknown key 'sqrt'; allowed keys are factor"),
    ],
)
def test_a_stored_scaling_that_disagrees_with_its_config_is_rejected(
    change: dict[str, Any], message: str
) -> None:
    data = SCALED.to_dict()
    data["batch_scaling"] |= change
    with pytest.raises(ConfigError) as info:
        TrialConfig.from_dict(data)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_a_stored_scaling_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"^batch_scaling: must be a mapping, got 'list'"):
        TrialConfig.from_dict(SCALED.to_dict() | {"batch_scaling": []})


# --- back to parameters: the enqueued baseline ------------------------------------------------


def enqueued(config: TrialConfig, space: SearchSpace) -> TrialConfig:
    """Enqueue `config_params(config)` and sample the trial Optuna hands back."""
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial(config_params(config, space))
    return sample_config(study.ask(), space)


def test_sampled_configs_come_back_from_their_parameters_exactly() -> None:
    space = load_space("effective_batch")
    for params, config in sample_many(space, 40, seed=1):
        # A clamped micro-batch maps back to the effective batch itself (a choice here).
        assert config_params(config, space) == params | {"batch_size": config.batch_size}
        assert enqueued(config, space) == config


def test_a_clamped_config_maps_to_a_micro_batch_that_clamps_to_it(tmp_path: Path) -> None:
    space = rules_space(tmp_path)
    params = {"optimizer": "adam", "effective_batch_size": 32, "batch_size": 512}
    config = sample_config(optuna.trial.FixedTrial(params), space)
    back = config_params(config, space)
    assert (back["batch_size"], back["effective_batch_size"]) == (64, 32)  # 64 clamps to 32 too
    assert enqueued(config, space) == config


def test_the_baseline_is_told_to_the_sampler_in_the_reference_frame(tmp_path: Path) -> None:
    space = load_space("effective_batch")
    params = config_params(DEFAULT_BASELINE, space)  # adam lr 1e-3, batch 32 = the reference
    assert {k: params[k] for k in ("adam.lr", "batch_size", "effective_batch_size")} == {
        "adam.lr": 1e-3,
        "batch_size": 32,
        "effective_batch_size": 32,
    }
    study = optuna.create_study()
    study.enqueue_trial(params)
    trial = study.ask()
    suggest_params(trial, DEFAULT_BASELINE, space)
    assert trial.params == params
    # A baseline of lr 1e-3 at an effective batch of 128 ran unscaled; in this space's frame
    # it is the lr that the square-root rule would double: 5e-4.
    wide = TrialConfig(DEFAULT_BASELINE.optimizer, DEFAULT_BASELINE.schedule, 32, 4)
    assert config_params(wide, space)["adam.lr"] == pytest.approx(5e-4, rel=1e-12)


# --- a real study ------------------------------------------------------------------------------


def test_a_study_trains_the_effective_batch_and_the_scaled_lr(tmp_path: Path) -> None:
    (tmp_path / "space.toml").write_text(
        'extends = "effective_batch"\n[performance]\nprecision = "fp32"\ncompile_mode = "off"\n'
    )
    (tmp_path / "spec.toml").write_text(
        '[study]\nname = "eb"\nn_trials = 4\nseed = 0\nn_startup_trials = 2\n'
        f'storage = "sqlite:///tuner.db"\nobjective = "{TOY}:WORKLOAD"\nspace = "space.toml"\n'
        "[budget]\nsteps = 8\nevaluations = 2\n"
    )
    spec = load_spec(tmp_path / "spec.toml")
    assert run_study(prepare(spec)).total == 4
    baseline, *trials = optuna.load_study(study_name="eb", storage=spec.storage).trials
    assert TrialConfig.from_dict(baseline.user_attrs[TrialAttr.CONFIG]) == DEFAULT_BASELINE
    assert baseline.params["effective_batch_size"] == 32
    for trial in trials:
        # Pruned or not, every trial trained (and stored) its config.
        assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED), trial.user_attrs
        config = TrialConfig.from_dict(trial.user_attrs[TrialAttr.CONFIG])
        effective = trial.params["effective_batch_size"]
        assert config.batch_size * config.accumulation_steps == effective
        scaling = config.batch_scaling
        assert scaling is not None
        assert scaling.unscaled_lr == searched_lr(trial.params, config)
        assert config.optimizer.lr == scaling.unscaled_lr * scaling.factor
        rule = resolve_rule(LrScaling.AUTO, config.optimizer.name)
        assert scaling.factor == lr_factor(rule, effective, 32)
