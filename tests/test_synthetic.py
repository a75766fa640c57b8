"""The synthetic study generator against a study the real runner wrote.

Readers (CLI, app, benchmarks) are tested on synthetic studies of thousands of trials; these
tests keep those studies the shape `tuner run` stores, so a schema change in the runner breaks
here instead of leaving the readers tested against a stale format.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from tests.synthetic import write_study
from tests.test_runner import write_spec
from tuner.attrs import FailureKind, StudyAttr, TrialAttr
from tuner.config import DEFAULT_BASELINE, TrialConfig
from tuner.failure_state import failure_state
from tuner.results import read_study
from tuner.runner import prepare, run_study
from tuner.space import config_params, load_space, sample_config
from tuner.storage import open_storage


@pytest.fixture(scope="module")
def real_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two trials (the baseline and one sampled) of the toy workload, by the real runner."""
    spec = write_spec(
        tmp_path_factory.mktemp("real"), n_trials=2, extra="[run]\nmemory_budget_mb = 4096\n"
    )
    run_study(prepare(spec))
    return spec.storage


@pytest.fixture(scope="module")
def real(real_url: str) -> optuna.Study:
    study = optuna.load_study(study_name="toy", storage=real_url)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 2, f"the toy trials must complete, got {states}"
    return study


@pytest.fixture(scope="module")
def synthetic_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('synthetic') / 'synthetic.db'}"
    write_study(url, "synthetic", 1500, seed=3)
    return url


@pytest.fixture(scope="module")
def synthetic(synthetic_url: str) -> optuna.Study:
    return optuna.load_study(study_name="synthetic", storage=synthetic_url)


def study_system_attrs(url: str, name: str) -> dict[str, Any]:
    storage = open_storage(url, create=False)
    return storage.get_study_system_attrs(storage.get_study_id_from_name(name))


def shape(value: Any) -> Any:
    """The structure of a stored value: dict keys and leaf types, lists by their first item."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def keys(value: Any) -> Any:
    """Like `shape`, but leaves are not compared (a study's spec differs in its values)."""
    if isinstance(value, dict):
        return {key: keys(item) for key, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [keys(value[0])]
    return "*"


def trial_shape(trial: FrozenTrial) -> tuple[Any, set[str]]:
    attrs = {k: v for k, v in trial.user_attrs.items() if k != TrialAttr.CONFIG}
    return shape(attrs) | {TrialAttr.CONFIG: "dict"}, set(trial.system_attrs)


def test_study_carries_every_study_attribute_the_runner_writes(
    real: optuna.Study, synthetic: optuna.Study, real_url: str, synthetic_url: str
) -> None:
    assert set(synthetic.user_attrs) == set(real.user_attrs)
    # written only by what a study may never do: re-time its front, run the lr finder
    optional = {StudyAttr.FRONT_REMEASURE, StudyAttr.LR_FIND, StudyAttr.AUTO_LR}
    assert set(synthetic.user_attrs) == {attr.value for attr in set(StudyAttr) - optional}
    for attr in (StudyAttr.SPEC, StudyAttr.DROPPED):
        assert keys(synthetic.user_attrs[attr]) == keys(real.user_attrs[attr]), attr
    assert set(synthetic.user_attrs[StudyAttr.SPACE]) == set(real.user_attrs[StudyAttr.SPACE])
    for attr in set(StudyAttr) - {StudyAttr.SPEC, StudyAttr.DROPPED, StudyAttr.SPACE} - optional:
        assert shape(synthetic.user_attrs[attr]) == shape(real.user_attrs[attr]), attr
    assert synthetic.metric_names == real.metric_names == ["accuracy", "throughput"]
    assert synthetic.directions == real.directions
    assert set(study_system_attrs(synthetic_url, "synthetic")) == set(
        study_system_attrs(real_url, "toy")
    )


def test_trials_carry_the_attributes_the_runner_writes(
    real: optuna.Study, synthetic: optuna.Study
) -> None:
    real_baseline, real_sampled = real.trials
    baseline, *others = synthetic.get_trials(deepcopy=False)
    assert trial_shape(baseline) == trial_shape(real_baseline)
    complete = [t for t in others if t.state is TrialState.COMPLETE]
    for trial in complete:
        assert trial_shape(trial) == trial_shape(real_sampled), trial.number
    # A trial that failed in its worker carries what every trial gets before it trains, the
    # worker's memory, and the failure's kind and reason (tell_failure).
    before_training = {
        TrialAttr.OWNER,
        TrialAttr.SEED,
        TrialAttr.DEVICE,
        TrialAttr.CONFIG,
        TrialAttr.PERF_KEY,
    }
    for trial in others:
        if trial.state is not TrialState.COMPLETE:
            assert set(trial.user_attrs) == before_training | {
                TrialAttr.WORKER_RSS_BYTES,
                TrialAttr.FAILURE_KIND,
                TrialAttr.FAILURE_REASON,
            }
            assert trial.values is None
            assert "\n" not in trial.user_attrs[TrialAttr.FAILURE_REASON]
            kind = FailureKind(trial.user_attrs[TrialAttr.FAILURE_KIND])
            # what the sampler learns from: out of memory and divergence are constraints
            assert trial.state is failure_state(kind)[0]
            assert bool(trial.system_attrs) == (
                kind in (FailureKind.OUT_OF_MEMORY, FailureKind.DIVERGED)
            )


def test_configs_round_trip_and_match_the_params(synthetic: optuna.Study) -> None:
    space = load_space("quick")
    baseline, *others = synthetic.get_trials(deepcopy=False)
    assert baseline.user_attrs[TrialAttr.BASELINE] is True
    assert baseline.user_attrs[TrialAttr.CONFIG] == DEFAULT_BASELINE.to_dict()
    assert baseline.params == config_params(DEFAULT_BASELINE, space)
    for trial in others:
        stored = trial.user_attrs[TrialAttr.CONFIG]
        config = TrialConfig.from_dict(stored)
        assert config.to_dict() == stored
        # The params are exactly what sample_config suggests for this config.
        fixed = optuna.trial.FixedTrial(trial.params)
        assert sample_config(fixed, space) == config
        assert fixed.params == trial.params
        assert TrialAttr.BASELINE not in trial.user_attrs


def test_results_are_consistent_and_realistic(synthetic: optuna.Study) -> None:
    trials = synthetic.get_trials(deepcopy=False)
    states = Counter(t.state for t in trials)
    assert 0.80 <= states[TrialState.COMPLETE] / len(trials) <= 0.90, states
    # out of memory and divergence are PRUNED with a constraint, so most failures are PRUNED
    assert 0.005 <= states[TrialState.FAIL] / len(trials) <= 0.05, states
    assert 0.10 <= states[TrialState.PRUNED] / len(trials) <= 0.20, states
    kinds = {t.user_attrs.get(TrialAttr.FAILURE_KIND) for t in trials}
    assert {"diverged", "error", "out_of_memory", "too_slow", "unsupported"} <= kinds
    times = [(t.datetime_start, t.datetime_complete) for t in trials]
    stamps = [moment for pair in times for moment in pair if moment is not None]
    assert len(stamps) == 2 * len(trials)
    assert all(a < b for a, b in itertools.pairwise(stamps))  # one worker, one trial at a time
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    infeasible = 0
    for trial in complete:
        attrs = trial.user_attrs
        assert trial.values == [attrs[TrialAttr.METRIC], attrs[TrialAttr.THROUGHPUT]]
        assert attrs[TrialAttr.THROUGHPUT] == statistics.median(attrs[TrialAttr.THROUGHPUT_WINDOWS])
        assert len(attrs[TrialAttr.THROUGHPUT_WINDOWS]) == 8
        curve = attrs[TrialAttr.CURVE]
        assert len(curve) == 4 and curve[-1]["metric"] == attrs[TrialAttr.METRIC]
        assert curve[-1]["step"] == attrs[TrialAttr.OPTIMIZER_STEPS]
        assert curve[-1]["samples"] == attrs[TrialAttr.SAMPLES]
        assert attrs[TrialAttr.TRIAL_S] <= 30  # budget.time_limit_s: slower ones are pruned
        peak_mb = attrs[TrialAttr.PEAK_MEMORY_BYTES] / 2**20
        assert trial.constraints == {"memory_mb": pytest.approx(peak_mb - 560)}
        infeasible += trial.constraints["memory_mb"] > 0
    assert 0.02 <= infeasible / len(complete) <= 0.2
    metrics = [t.values[0] for t in complete]
    assert sum(0.9 <= m <= 0.99 for m in metrics) / len(metrics) > 0.75
    assert any(m < 0.15 for m in metrics)  # a few runs stay at chance level


def test_bf16_is_faster_at_large_batches(synthetic: optuna.Study) -> None:
    def median_speed(precision: str, batch: int) -> float:
        return statistics.median(
            t.values[1]
            for t in synthetic.get_trials(deepcopy=False)
            if t.state is TrialState.COMPLETE
            and t.params.get("precision") == precision
            and t.params.get("batch_size") == batch
        )

    assert median_speed("bf16", 256) > 1.3 * median_speed("fp32", 256)
    assert median_speed("fp32", 256) > 1.5 * median_speed("fp32", 32)


def test_fast_insert_stores_what_add_trials_stores(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'both.db'}"
    write_study(url, "fast", 60, seed=5)
    write_study(url, "slow", 60, seed=5, fast=False)
    fast = optuna.load_study(study_name="fast", storage=url).trials
    slow = optuna.load_study(study_name="slow", storage=url).trials
    for a, b in zip(fast, slow, strict=True):
        for field in (
            "number",
            "state",
            "values",
            "params",
            "distributions",
            "user_attrs",
            "system_attrs",
            "intermediate_values",
            "datetime_start",
            "datetime_complete",
        ):
            assert getattr(a, field) == getattr(b, field), (a.number, field)


def test_same_seed_same_study_and_minimize(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    write_study(url, "a", 30, seed=1)
    write_study(url, "b", 30, seed=1)
    write_study(url, "bpc", 200, seed=1, direction="minimize", metric_name="bpc")
    a = optuna.load_study(study_name="a", storage=url).trials
    b = optuna.load_study(study_name="b", storage=url).trials
    assert [(t.values, t.user_attrs) for t in a] == [(t.values, t.user_attrs) for t in b]
    bpc = optuna.load_study(study_name="bpc", storage=url)
    assert bpc.metric_names == ["bpc", "throughput"]
    assert bpc.user_attrs[StudyAttr.METRIC_DIRECTION] == "minimize"
    assert [d.name for d in bpc.directions] == ["MINIMIZE", "MAXIMIZE"]
    best = min(t.values[0] for t in bpc.trials if t.values)
    assert 1.5 < best < 2.2
    assert len(read_study("bpc", url).trials) == 200


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ValueError, match="n_trials"):
        write_study(url, "x", 0)
    with pytest.raises(ValueError, match="direction"):
        write_study(url, "x", 5, direction="up")
