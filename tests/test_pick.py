"""Pareto front, baseline-relative figures and pick rules over stored-trial records."""

from __future__ import annotations

import random
import re

import pytest

from tuner.errors import UserError
from tuner.pick import Condition, Pick, PickKind, Quantity, knee, parse_pick, select
from tuner.relative import baseline_of
from tuner.results import StudyView, TrialRecord, pareto_front
from tuner.workload import Direction


def record(
    number: int,
    metric: float | None,
    throughput: float | None,
    state: str = "COMPLETE",
    feasible: bool = True,
    **attrs: object,
) -> TrialRecord:
    return TrialRecord(number, state, metric, throughput, feasible, dict(attrs))


def view(
    trials: list[TrialRecord], direction: Direction = Direction.MAXIMIZE, noise: float = 0.0
) -> StudyView:
    attrs = {"metric_noise": noise}
    return StudyView("s", "sqlite:///x.db", "accuracy", direction, attrs, tuple(trials))


TRIALS = [
    record(0, 0.980, 1000.0, baseline=True),  # dominated by 1
    record(1, 0.986, 3000.0),  # within 0.5% of the best, 6x faster
    record(2, 0.955, 5000.0),
    record(3, 0.940, 4000.0),  # dominated by 2
    record(4, 0.990, 500.0, peak_memory_bytes=3 * 2**20),  # best metric
    record(5, None, None, state="FAIL"),
    record(6, 0.999, 9000.0, feasible=False),  # over the memory budget: never picked
]


def test_front_is_the_non_dominated_set_best_metric_first() -> None:
    front = pareto_front(view(TRIALS).completed(), Direction.MAXIMIZE)
    assert [t.number for t in front] == [4, 1, 2]


def test_front_for_a_minimized_metric() -> None:
    trials = [record(0, 2.0, 100.0), record(1, 1.5, 50.0), record(2, 2.5, 90.0)]
    assert [t.number for t in pareto_front(trials, Direction.MINIMIZE)] == [1, 0]


def test_front_keeps_identical_points_and_drops_ties_that_are_dominated() -> None:
    trials = [
        record(0, 0.9, 100.0),
        record(1, 0.9, 100.0),  # identical to 0: neither dominates the other
        record(2, 0.9, 90.0),  # same metric, slower: dominated by 0 and 1
        record(3, 0.8, 100.0),  # same speed, worse metric: dominated
    ]
    assert [t.number for t in pareto_front(trials, Direction.MAXIMIZE)] == [0, 1]


@pytest.mark.parametrize("direction", list(Direction))
def test_front_matches_the_definition_on_random_studies(direction: Direction) -> None:
    rng = random.Random(7)
    trials = [
        record(i, rng.choice([0.5, 0.6, 0.7, rng.random()]), float(rng.randint(1, 40)))
        for i in range(300)
    ]
    better = 1.0 if direction is Direction.MAXIMIZE else -1.0

    def dominates(a: TrialRecord, b: TrialRecord) -> bool:
        (ma, ta), (mb, tb) = a.values(), b.values()
        ma, mb = better * ma, better * mb
        return ma >= mb and ta >= tb and (ma > mb or ta > tb)

    expected = {t.number for t in trials if not any(dominates(o, t) for o in trials)}
    assert {t.number for t in pareto_front(trials, direction)} == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("best-metric", 4),
        ("max-metric", 4),
        ("max-throughput", 2),
        ("fastest-within=0.5%", 1),
        ("fastest-within=1%", 1),
        ("fastest-within=4%", 2),
        ("fastest-within=0%", 4),
        ("fastest-within=0.004", 1),
        ("fastest-within=0.05", 2),
        ("fastest-with=metric>=0.98", 1),
        ("fastest-with=accuracy>=0.95", 2),
        ("best-with=throughput>=2000", 1),
        ("best-with=speedup>=4", 2),
        ("best-with=memory_mb<=3", 4),
        ("fastest-with=metric>=0.9,throughput<=3500", 1),
        ("knee", 1),
        ("trial=3", 3),
    ],
)
def test_picks(text: str, expected: int) -> None:
    assert select(view(TRIALS), parse_pick(text, "accuracy")).number == expected


def test_fastest_within_for_a_minimized_metric() -> None:
    trials = [record(0, 2.00, 100.0), record(1, 2.01, 300.0), record(2, 2.2, 900.0)]
    assert select(view(trials, Direction.MINIMIZE), parse_pick("fastest-within=1%")).number == 1
    assert select(view(trials, Direction.MINIMIZE), parse_pick("fastest-within=0.2")).number == 2


def test_absolute_tolerance_works_where_the_best_metric_is_near_zero() -> None:
    # A log-likelihood-like metric: the relative form collapses at a best of 0.
    trials = [record(0, 0.0, 100.0), record(1, -0.004, 300.0), record(2, -0.5, 900.0)]
    assert select(view(trials), parse_pick("fastest-within=5%")).number == 0
    assert select(view(trials), parse_pick("fastest-within=0.01")).number == 1


def test_a_metric_exactly_x_percent_away_is_within() -> None:
    trials = [record(0, 0.99, 100.0), record(1, 0.9801, 200.0)]  # exactly 1% below
    assert 0.99 - 0.9801 > 0.99 * 0.01  # the float edge this guards against
    assert select(view(trials), parse_pick("fastest-within=1%")).number == 1
    assert select(view(trials), parse_pick("fastest-within=0.0099")).number == 1
    assert select(view(trials), parse_pick("fastest-with=metric>=0.9801")).number == 1


def test_ties_never_pick_a_dominated_trial() -> None:
    trials = [record(0, 0.90, 500.0), record(1, 0.95, 500.0), record(2, 0.95, 400.0)]
    assert select(view(trials), parse_pick("max-throughput")).number == 1
    assert select(view(trials), parse_pick("best-metric")).number == 1
    assert select(view(trials), parse_pick("fastest-within=10%")).number == 1
    assert select(view(trials), parse_pick("fastest-with=throughput>=400")).number == 1


def test_knee_is_the_point_farthest_from_the_extremes_line() -> None:
    # A convex front: (metric, speed) with a clear knee at trial 2.
    trials = [
        record(0, 1.00, 100.0),
        record(1, 0.99, 500.0),
        record(2, 0.98, 900.0),
        record(3, 0.90, 1000.0),
    ]
    front = pareto_front(trials, Direction.MAXIMIZE)
    assert knee(front, Direction.MAXIMIZE).number == 2
    assert select(view(trials), parse_pick("knee")).number == 2
    # Minimised, the same shape mirrored: still trial 2.
    mirrored = [record(t.number, 2 - t.values()[0], t.values()[1]) for t in trials]
    assert select(view(mirrored, Direction.MINIMIZE), parse_pick("knee")).number == 2


def test_knee_needs_three_front_points() -> None:
    with pytest.raises(UserError, match="knee needs a front of three"):
        select(view([record(0, 0.9, 100.0), record(1, 0.8, 200.0)]), parse_pick("knee"))


@pytest.mark.parametrize(
    ("text", "pick"),
    [
        ("fastest-within=0.5%", Pick(PickKind.FASTEST_WITHIN, tolerance=0.5)),
        ("fastest-within=0.01", Pick(PickKind.FASTEST_WITHIN, tolerance=0.01, relative=False)),
        ("trial=12", Pick(PickKind.TRIAL, trial=12)),
        ("max-metric", Pick(PickKind.BEST_METRIC)),
        (
            "fastest-with=metric>=0.97",
            Pick(PickKind.FASTEST_WITH, conditions=(Condition(Quantity.METRIC, True, 0.97),)),
        ),
        (
            "best-with=throughput>=12000,memory_mb<=2048",
            Pick(
                PickKind.BEST_WITH,
                conditions=(
                    Condition(Quantity.THROUGHPUT, True, 12000.0),
                    Condition(Quantity.MEMORY_MB, False, 2048.0),
                ),
            ),
        ),
    ],
)
def test_parse(text: str, pick: Pick) -> None:
    assert parse_pick(text) == pick


@pytest.mark.parametrize(
    "pick",
    [
        Pick(PickKind.BEST_METRIC),
        Pick(PickKind.KNEE),
        Pick(PickKind.TRIAL, trial=3),
        Pick(PickKind.FASTEST_WITHIN, tolerance=0.7),
        Pick(PickKind.FASTEST_WITHIN, tolerance=0.0123, relative=False),
        Pick(PickKind.FASTEST_WITH, conditions=(Condition(Quantity.METRIC, True, 0.9712345678),)),
        Pick(PickKind.BEST_WITH, conditions=(Condition(Quantity.SPEEDUP, True, 1.5),)),
    ],
)
def test_rule_text_reads_back_as_the_same_pick(pick: Pick) -> None:
    assert parse_pick(str(pick)) == pick


@pytest.mark.parametrize(
    "text",
    [
        "best",
        "trial=x",
        "fastest-within=-1%",
        "fastest-within=abc",
        "fastest-with=",
        "fastest-with=metric>0.9",
        "best-with=loss>=3",
        "fastest-with=metric>=0.9,",
    ],
)
def test_bad_pick_text(text: str) -> None:
    with pytest.raises(UserError, match="--pick"):
        parse_pick(text)


def test_slo_that_no_trial_meets_says_so() -> None:
    with pytest.raises(UserError, match=re.escape("no complete trial of 's' meets metric>=0.9999")):
        select(view(TRIALS), parse_pick("fastest-with=metric>=0.9999"))


def test_speedup_without_a_baseline_says_why() -> None:
    trials = [record(1, 0.9, 100.0)]
    with pytest.raises(UserError, match="speedup needs the baseline, but this study has no"):
        select(view(trials), parse_pick("best-with=speedup>=1"))


def test_picking_a_failed_trial_names_its_reason() -> None:
    failed = record(5, None, None, "FAIL", failure_kind="diverged", failure_reason="loss was nan")
    with pytest.raises(UserError, match=re.escape("trial 5 is FAIL (diverged: loss was nan)")):
        select(view([*TRIALS[:5], failed]), parse_pick("trial=5"))
    with pytest.raises(UserError, match="no trial 42"):
        select(view(TRIALS), parse_pick("trial=42"))


def test_no_complete_trial() -> None:
    with pytest.raises(UserError, match="no complete trial"):
        select(view([record(0, None, None, state="FAIL")]), parse_pick("max-metric"))


def test_relative_figures_read_the_same_way_for_both_directions() -> None:
    up = baseline_of(view([record(0, 0.90, 100.0, baseline=True)]))
    versus = up.versus(record(1, 0.95, 250.0))
    assert versus.speedup == pytest.approx(2.5)
    assert versus.delta == pytest.approx(0.05)
    down = baseline_of(view([record(0, 3.0, 100.0, baseline=True)], Direction.MINIMIZE))
    assert down.versus(record(1, 2.5, 50.0)).delta == pytest.approx(0.5)  # lower loss: better
    assert down.versus(record(1, 3.5, 50.0)).delta == pytest.approx(-0.5)
    assert str(down.versus(record(0, 3.0, 100.0, baseline=True)).delta) == "0.0"  # not -0.0


def test_a_fast_trial_at_chance_accuracy_is_flagged_not_silently_offered() -> None:
    trials = [record(0, 0.97, 8000.0, baseline=True), record(1, 0.103, 10000.0)]
    study = view(trials, noise=0.01)
    chosen = select(study, parse_pick("max-throughput"))
    assert chosen.number == 1
    assert baseline_of(study).versus(chosen).not_better
    assert baseline_of(study).versus(chosen).worse
    # Better than the baseline by less than the noise is still "not better", but not worse.
    within = baseline_of(study).versus(record(2, 0.975, 9000.0))
    assert within.not_better and not within.worse
    assert baseline_of(study).versus(record(2, 0.955, 9000.0)).worse
    assert not baseline_of(study).versus(record(3, 0.985, 9000.0)).not_better
    assert not baseline_of(study).versus(trials[0]).not_better  # the baseline itself


def test_a_failed_or_missing_baseline_gives_a_note_not_a_division() -> None:
    failed = record(0, None, None, "FAIL", baseline=True, failure_kind="error")
    judged = baseline_of(view([failed, record(1, 0.9, 100.0)]))
    assert judged.trial is None
    assert "baseline trial 0 is FAIL (error: )" in judged.note
    assert judged.versus(record(1, 0.9, 100.0)).speedup is None
    assert "no baseline trial" in baseline_of(view([record(1, 0.9, 100.0)])).note


def test_show_prints_nothing_from_the_storage_a_terminal_would_obey() -> None:
    from tuner.report import study_report

    evil = "x\x1b]0;pwned\x07\x1b[2J\x00\nfake line"
    trials = [
        record(0, 0.9, 100.0, baseline=True, config={"optimizer": {"name": evil, "lr": "odd"}}),
        record(1, None, None, "FAIL", failure_kind="error", failure_reason=evil),
    ]
    attrs = {"objective": evil, "device": {"name": evil}, "dropped": [{"knob": evil}, 5]}
    study = StudyView(evil, "sqlite:///x.db", evil, Direction.MAXIMIZE, attrs, tuple(trials))
    text = study_report(study)
    assert not any(ch in text for ch in "\x1b\x07\x00")
    assert "\nfake line" not in text  # a stored newline cannot start a line of its own
    assert "trial 1: x]0;pwned[2J fake line" in text
