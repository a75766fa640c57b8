"""Speed as time to a target metric: the curve reading, the spec, a real study and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from tests.test_app import _complete, _tuner_study, app, clean, figure, goto
from tests.test_pruning import _judge, slow_key_study
from tests.test_runner import write_spec
from tuner.attrs import FailureKind, StudyAttr, TrialAttr
from tuner.config import DEFAULT_BASELINE
from tuner.handoff import provenance_of
from tuner.judging import Rules, TrialJudge
from tuner.prepare import policies
from tuner.pruning import Pruning
from tuner.relative import baseline_of
from tuner.report import study_report, trial_headers, trial_row
from tuner.results import StudyView, TrialRecord, read_study
from tuner.runner import prepare, run_study
from tuner.spec import SpecError, load_spec
from tuner.study_open import stored_spec
from tuner.targets import (
    RUNS_PER_HOUR,
    Speed,
    SpeedObjective,
    target_gap,
    time_to_target,
)
from tuner.workload import Direction

MAX, MIN = Direction.MAXIMIZE, Direction.MINIMIZE


def curve(*points: tuple[float, float]) -> list[dict[str, float]]:
    """A stored learning curve from (train_s, metric) pairs."""
    return [{"step": i, "samples": i, "train_s": s, "metric": m} for i, (s, m) in enumerate(points)]


# --- reading the curve ----------------------------------------------------------------------


def test_the_time_is_interpolated_between_the_points_either_side_of_the_target() -> None:
    rising = curve((1.0, 0.5), (2.0, 0.8), (4.0, 0.96), (5.0, 0.97))
    # 0.8 at 2 s, 0.96 at 4 s: 0.95 is 15/16 of the way, at 2 + 2 * 15/16 s.
    assert time_to_target(rising, 0.95, MAX) == pytest.approx(3.875)
    falling = curve((2.0, 3.0), (4.0, 1.0), (6.0, 0.5))
    assert time_to_target(falling, 1.5, MIN) == pytest.approx(3.5)
    assert target_gap(rising, 0.95, MAX) == pytest.approx(-0.02)  # reached: <= 0


def test_reached_at_the_first_evaluation_is_that_evaluations_time() -> None:
    # Nothing before the first point was measured: no guess at an earlier time.
    assert time_to_target(curve((1.5, 0.97), (3.0, 0.99)), 0.95, MAX) == 1.5
    assert time_to_target(curve((1.5, 0.2), (3.0, 0.1)), 0.5, MIN) == 1.5


def test_an_exact_hit_is_that_points_time_and_a_later_dip_does_not_undo_it() -> None:
    assert time_to_target(curve((1.0, 0.9), (2.0, 0.95), (3.0, 0.97)), 0.95, MAX) == 2.0
    assert time_to_target(curve((1.0, 0.9), (2.0, 0.96), (3.0, 0.92)), 0.95, MAX) == (
        pytest.approx(1.0 + 5 / 6)
    )
    assert time_to_target(curve((1.0, 2.0), (2.0, 1.0)), 1.0, MIN) == 2.0


def test_a_curve_that_never_reaches_the_target_has_no_time_and_a_positive_gap() -> None:
    short = curve((1.0, 0.5), (2.0, 0.91), (3.0, 0.9))
    assert time_to_target(short, 0.95, MAX) is None
    assert target_gap(short, 0.95, MAX) == pytest.approx(0.04)  # from its best point
    high = curve((1.0, 3.0), (2.0, 2.5))
    assert time_to_target(high, 2.0, MIN) is None
    assert target_gap(high, 2.0, MIN) == pytest.approx(0.5)
    assert time_to_target([], 0.95, MAX) is None
    with pytest.raises(ValueError):
        target_gap([], 0.95, MAX)


def test_the_speed_objective_labels_rates_as_seconds_and_reads_old_studies_as_throughput() -> None:
    to_target = SpeedObjective(Speed.TIME_TO_TARGET, 0.95)
    assert SpeedObjective.from_attr(to_target.to_dict()) == to_target
    for old in (None, "throughput", {"objective": "fastest"}, {"objective": ["x"]}):
        assert SpeedObjective.from_attr(old) == SpeedObjective()
    assert (to_target.header, SpeedObjective().header) == ("s to target", "samples/s")
    assert to_target.cell(RUNS_PER_HOUR / 2.5) == "2.5"
    assert to_target.cell(RUNS_PER_HOUR / 1234.4) == "1,234"
    assert (to_target.cell(0.0), to_target.cell(None), to_target.cell(float("nan"))) == (
        "never",
        "?",
        "?",
    )
    assert to_target.with_unit(0.0) == "never reached the target"
    assert SpeedObjective().with_unit(9120.4) == "9,120 samples/s"


# --- the spec -------------------------------------------------------------------------------

SPEC = """
[study]
name = "s"
objective = "digits"
{study}
[budget]
steps = 50
"""


def _load(tmp_path: Path, study: str) -> Any:
    path = tmp_path / "s.toml"
    path.write_text(SPEC.format(study=study))
    return load_spec(path)


def test_speed_defaults_to_throughput_and_time_to_target_takes_a_target(tmp_path: Path) -> None:
    spec = _load(tmp_path, "")
    assert (spec.speed, spec.target) == (Speed.THROUGHPUT, None)
    spec = _load(tmp_path, 'speed = "time_to_target"\ntarget = 0.95')
    assert (spec.speed, spec.target) == (Speed.TIME_TO_TARGET, 0.95)
    # Speed and target are the experiment: a re-run may not change them.
    assert spec.identity()["speed"] == "time_to_target" and spec.identity()["target"] == 0.95
    other = _load(tmp_path, 'speed = "time_to_target"\ntarget = 0.9')
    assert spec.identity() != other.identity()


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ('speed = "time_to_target"', 'study.target: required with speed = "time_to_target"'),
        ("target = 0.95", 'study.target: only applies with speed = "time_to_target", got 0.95'),
        ('speed = "throughput"\ntarget = 1', "study.target: only applies with"),
        ('speed = "fastest"', "study.speed: must be one of throughput, time_to_target"),
        ("speed = 3", "study.speed: must be one of"),
        ('speed = "time_to_target"\ntarget = "high"', "study.target: must be a number"),
        ('speed = "time_to_target"\ntarget = nan', "study.target: must be a number"),
    ],
)
def test_speed_and_target_errors_are_one_line_naming_the_field(
    tmp_path: Path, study: str, message: str
) -> None:
    with pytest.raises(SpecError) as error:
        _load(tmp_path, study)
    assert message in str(error.value) and "\n" not in str(error.value)


# --- a real study ---------------------------------------------------------------------------


def test_a_time_to_target_study_scores_runs_per_hour_and_never_reaching_is_infeasible(
    tmp_path: Path,
) -> None:
    # The toy task after 12 steps: some configs pass 0.5 accuracy, some (the baseline among
    # them) never do.
    spec = write_spec(tmp_path, speed="time_to_target", target=0.5)
    prepared = prepare(spec)
    rules, _ = policies(prepared)
    assert not rules.speed_dominance  # samples/s does not rank a time to target
    run_study(prepared)

    study = optuna.load_study(study_name="toy", storage=spec.storage)
    assert study.metric_names == ["accuracy", "runs_to_target_per_hour"]
    assert study.user_attrs[StudyAttr.SPEED] == {"objective": "time_to_target", "target": 0.5}
    assert stored_spec(study, spec.storage)[0] == spec  # a worker joins with the same choice
    complete = [t for t in study.trials if t.state is TrialState.COMPLETE]
    reached, missed = [], []
    for trial in complete:
        seconds, points = trial.user_attrs[TrialAttr.TIME_TO_TARGET_S], trial.user_attrs["curve"]
        assert trial.values[0] == trial.user_attrs[TrialAttr.METRIC]
        if seconds is None:
            missed.append(trial.number)
            assert trial.values[1] == 0.0
            best = max(p["metric"] for p in points)
            assert trial.constraints["target"] == pytest.approx(0.5 - best) and best < 0.5
        else:
            reached.append(trial.number)
            assert trial.values[1] == pytest.approx(RUNS_PER_HOUR / seconds)
            assert "target" not in trial.constraints
            assert 0 < seconds <= points[-1]["train_s"]
    assert reached and 0 in missed  # both kinds, the baseline never reaching it

    view = read_study("toy", spec.storage)
    assert {t.number for t in view.front()} <= set(reached)
    report = study_report(view)
    assert "s to target" in trial_headers(view) and "samples/s" not in trial_headers(view)
    assert "and time to accuracy 0.5 (minimize; stored as runs per hour)" in report
    assert "@ never reached the target (no speedups: they need its time)" in report
    assert f"never reached study.target (infeasible): trials {', '.join(map(str, missed))}" in (
        report
    )
    baseline = baseline_of(view)
    assert all(trial_row(baseline, t)[4] == "-" for t in view.front())  # no baseline time


def _record(number: int, metric: float, rate: float, **attrs: Any) -> TrialRecord:
    return TrialRecord(number, "COMPLETE", metric, rate, rate > 0, attrs)


def test_show_reads_seconds_and_speedups_as_time_ratios() -> None:
    speed = SpeedObjective(Speed.TIME_TO_TARGET, 0.95)
    trials = (
        _record(
            0,
            0.96,
            RUNS_PER_HOUR / 4.0,
            baseline=True,
            config=DEFAULT_BASELINE.to_dict(),
            throughput=3000.0,
        ),
        _record(1, 0.97, RUNS_PER_HOUR / 2.0, throughput=1500.0),
        _record(2, 0.93, 0.0),
    )
    attrs = {StudyAttr.SPEED: speed.to_dict(), StudyAttr.OBJECTIVE: "digits"}
    view = StudyView("s", "sqlite:///x.db", "accuracy", MAX, attrs, trials)
    report = study_report(view)
    assert trial_headers(view)[3] == "s to target"
    assert "@ 4 s to target" in report
    row = next(line for line in report.splitlines() if line.startswith("1 "))
    assert row.split()[3:5] == ["2", "2.00×"]  # the baseline took twice as long
    assert baseline_of(view).versus(trials[2]).speedup is None
    assert "the baseline's time to target over the trial's" in report
    # An export states samples/s: the measured ones, not runs per hour.
    provenance = provenance_of(view, trials[1])
    assert (provenance.throughput, provenance.speedup) == (1500.0, 0.5)


def test_the_app_front_labels_speed_as_seconds_to_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    speed = SpeedObjective(Speed.TIME_TO_TARGET, 0.95)
    study = _tuner_study(url, "ttt", **{StudyAttr.SPEED: speed.to_dict()})
    study.add_trial(_complete(0.98, RUNS_PER_HOUR / 4.0, baseline=True, time_to_target_s=4.0))
    study.add_trial(_complete(0.97, RUNS_PER_HOUR / 2.0, time_to_target_s=2.0))
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            values=[0.9, 0.0],
            constraints={"target": 0.05},
            user_attrs={TrialAttr.CONFIG: DEFAULT_BASELINE.to_dict(), "time_to_target_s": None},
        )
    )
    at = clean(app(monkeypatch, url, "ttt"))
    table = at.table[0].value
    assert "s to target" in table.columns and list(table["s to target"]) == ["4", "2"]
    chart = figure(at, "front_chart")
    assert chart["layout"]["xaxis"]["title"]["text"].startswith("runs to target per hour")
    assert any("2 s to target" in str(t.get("hovertext")) for t in chart["data"])
    shown = clean(goto(at, "trials")).dataframe[0].value
    assert list(shown["time_to_target_s"].fillna(-1)) == [4.0, 2.0, -1]  # the last: never


# --- early stopping -------------------------------------------------------------------------


def test_time_to_target_turns_off_stopping_on_samples_per_second() -> None:
    study, other_lr = slow_key_study()
    trial, judge = _judge(study, other_lr)
    stopped = judge.before()
    assert stopped is not None and stopped.kind is FailureKind.STOPPED  # with throughput
    rules = Rules(Pruning(), 2, MAX, 0.01, None, metric_floor=0.1, speed_dominance=False)
    assert TrialJudge(study, trial, other_lr, rules).before() is None
