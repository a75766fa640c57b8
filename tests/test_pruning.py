"""Early stopping, cached throughput, learned constraints and the re-timed front.

The rules are pure and tested on values; the judge is tested against a real (in-memory)
Optuna study holding stored trials; stopping is tested through the real harness, the real
supervised worker and a real SQLite study.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from tests.test_runner import write_spec
from tests.toy_workload import WORKLOAD
from tuner.attrs import FailureKind, StudyAttr, TrialAttr
from tuner.budget import Budget
from tuner.config import DEFAULT_BASELINE, Precision
from tuner.harness import Checkpoint, TrialFailure, run_trial
from tuner.harness.trial import _check_loss_scale
from tuner.judging import Rules, TrialJudge
from tuner.pruning import Pruning
from tuner.pruning.fidelity import Finished, dominated_on_speed, optimistic_final
from tuner.pruning.keys import memory_key, performance_key
from tuner.pruning.memory import Measured, predict_peak
from tuner.pruning.rungs import Point, front_ranks, halving
from tuner.report import study_report
from tuner.results import read_study
from tuner.runner import prepare, run_study
from tuner.spec import SpecError, load_spec
from tuner.speed_noise import within_noise
from tuner.supervisor import Job, TrialProcess
from tuner.workload import Direction

MAX, MIN = Direction.MAXIMIZE, Direction.MINIMIZE


# --- rungs: successive halving by non-dominated rank ---------------------------------------


def test_front_ranks_sort_points_into_pareto_fronts_with_the_metric_direction() -> None:
    points = [Point(0, 0.9, 100), Point(1, 0.8, 200), Point(2, 0.7, 50), Point(3, 0.6, 40)]
    assert front_ranks(points, MAX) == [0, 0, 1, 2]
    # minimizing, low metric is good: 3 is best on metric, 1 on speed
    assert front_ranks(points, MIN) == [1, 0, 0, 0]


def test_a_rung_keeps_everyone_until_min_trials_have_reached_it() -> None:
    peers = [Point(1, 0.9, 1000), Point(2, 0.95, 900)]
    worst = Point(9, 0.1, 10)
    kwargs: dict[str, Any] = dict(rung=1, evaluation=1, reduction_factor=2, direction=MAX)
    assert halving(worst, peers, min_trials=4, **kwargs) is None
    reason = halving(worst, peers, min_trials=3, **kwargs)
    assert reason is not None and "rung 1 (evaluation 1)" in reason and "#1" in reason


def test_a_rung_keeps_its_first_front_and_the_best_third() -> None:
    peers = [Point(n, 0.5 + n / 100, 1000 - n) for n in range(8)]  # all one front
    kwargs: dict[str, Any] = dict(
        rung=1, evaluation=1, reduction_factor=3, min_trials=2, direction=MAX
    )
    # non-dominated by any peer: goes on, however many share the front
    assert halving(Point(20, 0.99, 10), peers, **kwargs) is None
    # dominated by every peer: behind 8 of 9, only ceil(9/3) = 3 go on
    reason = halving(Point(21, 0.1, 1), peers, **kwargs)
    assert reason is not None and "front 2 of the 9 trials there, where only the best 3" in reason


def test_pruning_rungs_grow_by_the_reduction_factor_and_never_include_the_end() -> None:
    assert Pruning(reduction_factor=3, min_evaluations=1).rungs(4) == (1, 3)
    assert Pruning(reduction_factor=2, min_evaluations=1).rungs(8) == (1, 2, 4)
    assert Pruning(reduction_factor=2, min_evaluations=2).rungs(2) == ()


# --- asymmetric fidelity --------------------------------------------------------------------


FAST_GOOD = Finished(1, metric=0.95, throughput=5000, curve={1: 0.80, 2: 0.95})
SLOW_POOR = Finished(2, metric=0.70, throughput=1000, curve={1: 0.50, 2: 0.70})


def test_the_optimistic_bound_comes_from_trials_whose_curve_was_no_better() -> None:
    poorer = Finished(3, metric=0.75, throughput=800, curve={1: 0.45, 2: 0.75})
    finished = [FAST_GOOD, SLOW_POOR, poorer]
    kwargs: dict[str, Any] = dict(direction=MAX, noise=0.01, margin=0.05)
    # at 0.55 on evaluation 1 trials 2 and 3 were as poor: the better reached 0.75
    assert optimistic_final(finished, 1, 0.55, 3000, **kwargs) == pytest.approx(0.76)
    # at 0.47 only trial 3 was as poor: one curve bounds nothing
    assert optimistic_final(finished, 1, 0.47, 3000, **kwargs) is None
    # worse than every finished curve: nothing bounds it
    assert optimistic_final(finished, 1, 0.30, 3000, **kwargs) is None


def test_before_any_curve_the_bound_comes_from_trials_as_slow_or_slower() -> None:
    poorer = Finished(3, metric=0.75, throughput=800, curve={1: 0.45, 2: 0.75})
    finished = [FAST_GOOD, SLOW_POOR, poorer]
    kwargs: dict[str, Any] = dict(direction=MAX, noise=0.01, margin=0.05)
    # trials 2 and 3 were as slow as 1,000/s or slower; the better reached 0.75, no noise added
    assert optimistic_final(finished, 0, None, 1000, **kwargs) == 0.75
    # only trial 3 is as slow as 850/s (trial 2 is beyond the margin): one trial bounds nothing
    assert optimistic_final(finished, 0, None, 850, **kwargs) is None
    # as fast as every finished trial: all three bound it
    assert optimistic_final(finished, 0, None, 5000, **kwargs) == 0.95


def test_a_slow_trial_is_dominated_on_speed_before_its_first_evaluation() -> None:
    kwargs: dict[str, Any] = dict(direction=MAX, noise=0.01, margin=0.05)
    poorer = Finished(3, metric=0.75, throughput=800, curve={1: 0.45, 2: 0.75})
    # the two trials as slow as it reached 0.75 at best; trial 1 reached 0.95 at 2.5x the speed
    reason = dominated_on_speed(2000, 0, None, [FAST_GOOD, SLOW_POOR, poorer], **kwargs)
    assert reason is not None and "trial #1" in reason and "before its first evaluation" in reason
    assert "as slow as it reached at best 0.75" in reason
    # with one slower trial finished, slowness has not been tried enough to rule it out
    assert dominated_on_speed(2000, 0, None, [FAST_GOOD, SLOW_POOR], **kwargs) is None
    # a slow trial once reached the best metric: slower configs may pay, so it goes on
    slow_best = Finished(4, metric=0.96, throughput=700, curve={1: 0.6, 2: 0.96})
    assert dominated_on_speed(2000, 0, None, [FAST_GOOD, SLOW_POOR, slow_best], **kwargs) is None
    # faster than every finished trial: it might be the new fast end of the front
    assert dominated_on_speed(6000, 0, None, [FAST_GOOD], **kwargs) is None
    # within the throughput margin of trial 1: not dominated on speed
    assert dominated_on_speed(4900, 0, None, [FAST_GOOD], **kwargs) is None


def test_dominance_on_speed_respects_a_minimized_metric() -> None:
    fast = Finished(1, metric=1.5, throughput=5000, curve={1: 2.0})
    slow = Finished(2, metric=1.9, throughput=800, curve={1: 2.6})
    slower = Finished(3, metric=2.0, throughput=700, curve={1: 2.7})
    kwargs: dict[str, Any] = dict(direction=MIN, noise=0.03, margin=0.05)
    # at 2.5 bits after evaluation 1, as poor as trials 2 and 3: its best hope is 1.87,
    # which trial 1 beats at 5x the speed
    reason = dominated_on_speed(1000, 1, 2.5, [fast, slow, slower], **kwargs)
    assert reason is not None and "trial #1" in reason and "evaluation 1" in reason
    # as good a curve as trial 1's: it may end as good, so it goes on
    assert dominated_on_speed(1000, 1, 1.8, [fast, slow, slower], **kwargs) is None


# --- performance key and memory model -------------------------------------------------------


def test_the_performance_key_ignores_the_mathematics_and_keeps_the_speed_knobs() -> None:
    base = DEFAULT_BASELINE.to_dict()
    key = performance_key(base)
    tweaked = json.loads(json.dumps(base))
    tweaked["optimizer"]["lr"] = 0.5
    tweaked["optimizer"]["weight_decay"] = 0.1
    tweaked["schedule"] = {"name": "cosine"}
    assert performance_key(tweaked) == key
    for field, value in [("batch_size", 64), ("precision", "bf16"), ("channels_last", True)]:
        assert performance_key({**base, field: value}) != key
    assert (
        performance_key({**base, "grad_clip_norm": 1.0})
        == performance_key({**base, "grad_clip_norm": 5.0})
        != key
    )
    assert performance_key({**base, "optimizer": {**base["optimizer"], "name": "sgd"}}) != key
    assert memory_key({**base, "batch_size": 256}) == memory_key(base)


def test_the_memory_model_fits_a_line_through_measured_micro_batches() -> None:
    mib = 2**20
    measured = [Measured(1, 16, 116 * mib), Measured(2, 32, 132 * mib)]
    prediction = predict_peak(measured, 128)
    assert prediction is not None and prediction.peak_bytes == pytest.approx(228 * mib, rel=1e-6)
    assert prediction.fitted_on == (1, 2)
    assert predict_peak(measured[:1], 128) is None  # one batch size: no slope


# --- the judge against a stored study -------------------------------------------------------


def _stored(study: optuna.Study, config: dict[str, Any], **attrs: Any) -> None:
    values = [attrs.get(TrialAttr.METRIC, 0.9), attrs.get(TrialAttr.THROUGHPUT, 1000.0)]
    trial = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        values=values,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs={
            TrialAttr.CONFIG: config,
            TrialAttr.PERF_KEY: performance_key(config),
            TrialAttr.DEVICE: {"type": "cpu"},
            TrialAttr.METRIC: values[0],
            TrialAttr.THROUGHPUT: values[1],
            TrialAttr.CURVE: [{"metric": values[0]}],
            **attrs,
        },
    )
    study.add_trial(trial)


def _judge(
    study: optuna.Study, config: dict[str, Any], budget_mb: float | None = None
) -> tuple[optuna.Trial, TrialJudge]:
    trial = study.ask()
    trial.set_user_attr(TrialAttr.DEVICE, {"type": "cpu"})
    rules = Rules(Pruning(), 2, MAX, 0.01, budget_mb, metric_floor=0.1)
    return trial, TrialJudge(study, trial, config, rules)


def slow_key_study() -> tuple[optuna.Study, dict[str, Any]]:
    """A study where a bf16 trial out-ran and out-scored two fp32 ones, and an fp32 config
    with another lr: its key's speed is known, and beaten."""
    study = optuna.create_study(directions=["maximize", "maximize"])
    fast = {**DEFAULT_BASELINE.to_dict(), "precision": "bf16"}
    slow = DEFAULT_BASELINE.to_dict()
    _stored(study, fast, metric=0.97, throughput=5000.0)
    _stored(study, slow, metric=0.90, throughput=1000.0)
    _stored(
        study,
        {**slow, "optimizer": {**slow["optimizer"], "lr": 0.1}},
        metric=0.85,
        throughput=1000.0,
    )
    return study, {**slow, "optimizer": {**slow["optimizer"], "lr": 0.01}}


def test_a_trial_whose_key_is_known_slow_is_stopped_before_it_trains() -> None:
    study, other_lr = slow_key_study()
    _, judge = _judge(study, other_lr)
    failure = judge.before()
    assert failure is not None and failure.kind is FailureKind.STOPPED
    assert "not run" in failure.reason and "trial #0" in failure.reason
    assert study.trials[-1].user_attrs[TrialAttr.KEY_THROUGHPUT] == 1000.0


def test_a_key_that_ran_out_of_memory_is_not_run_again() -> None:
    study = optuna.create_study(directions=["maximize", "maximize"])
    config = {**DEFAULT_BASELINE.to_dict(), "batch_size": 1024}
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.PRUNED,
            user_attrs={
                TrialAttr.PERF_KEY: performance_key(config),
                TrialAttr.DEVICE: {"type": "cpu"},
                TrialAttr.FAILURE_KIND: FailureKind.OUT_OF_MEMORY.value,
                TrialAttr.FAILURE_REASON: "CUDA out of memory",
            },
        )
    )
    _, judge = _judge(study, {**config, "optimizer": {**config["optimizer"], "lr": 0.1}})
    failure = judge.before()
    assert failure is not None and failure.kind is FailureKind.OUT_OF_MEMORY
    assert "performance key failed in trial #0: CUDA out of memory" in failure.reason


def test_a_config_predicted_past_the_memory_budget_is_skipped_with_its_prediction() -> None:
    study = optuna.create_study(directions=["maximize", "maximize"])
    mib = 2**20
    for batch, peak in [(16, 116), (32, 132)]:
        config = {**DEFAULT_BASELINE.to_dict(), "batch_size": batch}
        _stored(study, config, peak_memory_bytes=peak * mib)
    big = {**DEFAULT_BASELINE.to_dict(), "batch_size": 256}
    _, judge = _judge(study, big, budget_mb=200)
    failure = judge.before()
    assert failure is not None and failure.kind is FailureKind.OUT_OF_MEMORY
    assert "predicted peak 356 MiB > run.memory_budget_mb=200" in failure.reason
    assert study.trials[-1].user_attrs[TrialAttr.PREDICTED_PEAK_MEMORY_BYTES] == 356 * mib
    _, fits = _judge(study, {**big, "batch_size": 64}, budget_mb=200)
    assert fits.before() is None


def test_the_judge_records_each_rung_so_later_trials_rank_against_it() -> None:
    study = optuna.create_study(directions=["maximize", "maximize"])
    _, judge = _judge(study, DEFAULT_BASELINE.to_dict())
    assert judge(Checkpoint(evaluation=0, step=2, throughput=900.0, metric=None)) is None
    assert judge(Checkpoint(evaluation=1, step=6, throughput=950.0, metric=0.5)) is None
    attrs = study.trials[-1].user_attrs
    assert attrs[TrialAttr.KEY_THROUGHPUT] == 900.0
    assert attrs[TrialAttr.RUNGS] == {"1": [0.5, 950.0]}


def test_a_trial_another_runner_stored_as_lost_stops_at_its_next_checkpoint() -> None:
    """A runner frozen past the heartbeat grace wakes to find its trial FAIL (lost): the
    judge cannot record the checkpoint, and stops the trial instead of raising mid-run."""
    study = optuna.create_study(directions=["maximize", "maximize"])
    trial, judge = _judge(study, DEFAULT_BASELINE.to_dict())
    study.tell(trial.number, state=TrialState.FAIL)  # as a sweep does, from another handle
    reason = judge(Checkpoint(evaluation=0, step=2, throughput=900.0, metric=None))
    assert reason == "stored as lost by another runner while it trained"
    assert judge(Checkpoint(evaluation=1, step=6, throughput=950.0, metric=0.5)) == reason
    assert TrialAttr.KEY_THROUGHPUT not in study.trials[-1].user_attrs


# --- the harness stops where the judge says ---------------------------------------------------


def test_the_harness_stops_at_the_checkpoint_its_judge_names() -> None:
    heard: list[Checkpoint] = []

    def judge(checkpoint: Checkpoint) -> str | None:
        heard.append(checkpoint)
        return "enough" if checkpoint.evaluation == 1 else None

    budget = Budget(steps=24, evaluations=4, windows=8)
    result = run_trial(WORKLOAD, DEFAULT_BASELINE, budget, torch.device("cpu"), 0, judge=judge)
    assert result.stopped == "enough"
    assert [c.evaluation for c in heard] == [0, 1]
    assert heard[0].metric is None and heard[1].metric == result.metric
    assert len(result.curve) == 1 and result.optimizer_steps == 6 < 24
    assert heard[0].throughput > 0


def test_a_judged_trial_in_the_worker_process_stops_and_returns_what_it_measured() -> None:
    process = TrialProcess(threads=1)
    try:
        job = Job(
            "tests.toy_workload:WORKLOAD",
            DEFAULT_BASELINE,
            Budget(steps=24, evaluations=4),
            "cpu",
            0,
            judged=True,
        )
        outcome = process.run(job, judge=lambda c: "slow" if c.evaluation == 0 else None)
    finally:
        process.close()
    assert outcome.result is not None and outcome.result.stopped == "slow"
    assert outcome.result.metric is None and outcome.result.curve == ()


def test_fp16_overflow_is_numerical_divergence() -> None:
    _check_loss_scale(torch.amp.GradScaler("cpu", enabled=False), 5)  # fp32: nothing to check
    with pytest.raises(TrialFailure) as failed:
        _check_loss_scale(torch.amp.GradScaler("cpu", init_scale=0.25), 5)
    assert failed.value.kind is FailureKind.DIVERGED and "fp16 overflow" in failed.value.reason
    assert Precision.FP16.value == "fp16"


# --- the spec -------------------------------------------------------------------------------


def test_the_pruning_section_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[study]\nname = "x"\nobjective = "digits"\nremeasure_rounds = 0\nmetric_floor = 0.5\n'
        "[budget]\nepochs = 1\n[pruning]\nenabled = false\nreduction_factor = 4\nmargin = 0\n"
    )
    spec = load_spec(path)
    assert spec.pruning == Pruning(enabled=False, reduction_factor=4, margin=0.0)
    assert (spec.remeasure_rounds, spec.metric_floor) == (0, 0.5)
    for bad, message in [
        ("enabled = 1", "pruning.enabled: must be true or false"),
        ("reduction_factor = 1", "pruning.reduction_factor: must be an integer in [2, 100]"),
        ("patience = 3", "pruning.patience: unknown key"),
    ]:
        path.write_text(
            f'[study]\nname = "x"\nobjective = "digits"\n[budget]\nsteps = 9\n[pruning]\n{bad}\n'
        )
        with pytest.raises(SpecError, match=message.replace("[", r"\[")):
            load_spec(path)


# --- real studies ---------------------------------------------------------------------------


def test_stopped_trials_are_pruned_with_their_curve_reason_and_a_constraint(
    tmp_path: Path,
) -> None:
    spec = write_spec(
        tmp_path,
        pruning=True,
        n_trials=10,
        n_startup_trials=10,
        extra="windows = 4\n",
    )
    run_study(prepare(spec))
    study = optuna.load_study(study_name="toy", storage=spec.storage)
    assert not [t for t in study.trials if t.state is TrialState.RUNNING]
    stopped = [
        t for t in study.trials if t.user_attrs.get(TrialAttr.FAILURE_KIND) == FailureKind.STOPPED
    ]
    assert stopped, "ten toy trials with a baseline to out-run: some must be stopped"
    for trial in stopped:
        attrs = trial.user_attrs
        assert trial.state is TrialState.PRUNED
        assert 0 < trial.constraints["stopped"] <= 1  # the sampler ranks it as infeasible
        assert "dominated" in attrs[TrialAttr.FAILURE_REASON]
        assert "#" in attrs[TrialAttr.FAILURE_REASON]
        assert attrs[TrialAttr.PERF_KEY] and attrs[TrialAttr.KEY_THROUGHPUT] > 0
        if not attrs[TrialAttr.FAILURE_REASON].startswith("not run"):
            assert attrs[TrialAttr.THROUGHPUT] > 0 and TrialAttr.CURVE in attrs
    baseline = study.trials[0]
    assert baseline.state is TrialState.COMPLETE  # the yardstick is never stopped


def test_a_metric_floor_makes_untrained_results_infeasible(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, n_trials=2, metric_floor=1.5)  # accuracy never clears 1.5
    run_study(prepare(spec))
    view = read_study("toy", spec.storage)
    complete = [t for t in view.trials if t.state == "COMPLETE"]
    assert complete and all(t.violated == ("metric_floor",) for t in complete)
    assert view.front() == []


def test_the_front_is_re_timed_against_the_baseline_and_show_marks_the_noise(
    tmp_path: Path,
) -> None:
    spec = write_spec(tmp_path, n_trials=4, remeasure_rounds=2)
    run_study(prepare(spec))
    study = optuna.load_study(study_name="toy", storage=spec.storage)
    stored = study.user_attrs[StudyAttr.FRONT_REMEASURE]
    view = read_study("toy", spec.storage)
    assert stored["baseline"] == 0 and 0 in stored["trials"]
    assert set(stored["trials"]) == {0, *(t.number for t in view.front())}
    assert stored["ratios"]["0"] == [1.0, 1.0]  # the baseline against itself
    assert all(len(r) == 2 and all(x > 0 for x in r) for r in stored["ratios"].values())
    # re-running a finished study re-times nothing new
    run_study(prepare(spec))
    assert (
        optuna.load_study(study_name="toy", storage=spec.storage).user_attrs[
            StudyAttr.FRONT_REMEASURE
        ]
        == stored
    )
    retimed_shown = "re-timed against the baseline in 2 interleaved rounds" in study_report(view)
    assert retimed_shown == any(not t.is_baseline for t in view.front())


def test_front_points_whose_re_timed_speeds_overlap_are_within_noise(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, n_trials=3)
    run_study(prepare(spec))
    view = read_study("toy", spec.storage)
    numbers = [t.number for t in view.completed()]
    ratios = {str(n): [1.0 + i, 1.05 + i] for i, n in enumerate(numbers)}
    ratios[str(numbers[-1])] = [1.0 + len(numbers) - 2, 1.2 + len(numbers) - 2]  # overlaps
    attrs = {**view.attrs, StudyAttr.FRONT_REMEASURE: {"ratios": ratios, "rounds": 2}}
    marked = within_noise(dataclasses.replace(view, attrs=attrs), view.completed())
    assert marked == {numbers[-1]: numbers[-2]}
