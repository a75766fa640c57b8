"""Pareto front and export picks over stored-trial records (pure functions, real records)."""

from __future__ import annotations

import re

import pytest

from tuner.errors import UserError
from tuner.pick import Pick, PickKind, parse_pick, select
from tuner.results import StudyView, TrialRecord, pareto_front
from tuner.workload import Direction


def record(
    number: int,
    metric: float | None,
    throughput: float | None,
    state: str = "COMPLETE",
    feasible: bool = True,
) -> TrialRecord:
    return TrialRecord(number, state, metric, throughput, feasible, {})


def view(trials: list[TrialRecord], direction: Direction = Direction.MAXIMIZE) -> StudyView:
    return StudyView("s", "sqlite:///x.db", "accuracy", direction, {}, tuple(trials))


TRIALS = [
    record(0, 0.980, 1000.0),  # dominated by 1
    record(1, 0.986, 3000.0),  # within 0.5% of the best, 6x faster
    record(2, 0.955, 5000.0),
    record(3, 0.940, 4000.0),  # dominated by 2
    record(4, 0.990, 500.0),  # best metric
    record(5, None, None, state="FAIL"),
    record(6, 0.999, 9000.0, feasible=False),  # over the memory budget: never picked
]


def test_front_is_the_non_dominated_set_best_metric_first() -> None:
    front = pareto_front(view(TRIALS).completed(), Direction.MAXIMIZE)
    assert [t.number for t in front] == [4, 1, 2]


def test_front_for_a_minimized_metric() -> None:
    trials = [record(0, 2.0, 100.0), record(1, 1.5, 50.0), record(2, 2.5, 90.0)]
    assert [t.number for t in pareto_front(trials, Direction.MINIMIZE)] == [1, 0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max-metric", 4),
        ("max-throughput", 2),
        ("fastest-within=0.5%", 1),
        ("fastest-within=1%", 1),
        ("fastest-within=4%", 2),
        ("fastest-within=0%", 4),
        ("trial=3", 3),
    ],
)
def test_picks(text: str, expected: int) -> None:
    assert select(view(TRIALS), parse_pick(text)).number == expected


def test_fastest_within_for_a_minimized_metric() -> None:
    trials = [record(0, 2.00, 100.0), record(1, 2.01, 300.0), record(2, 2.2, 900.0)]
    assert select(view(trials, Direction.MINIMIZE), parse_pick("fastest-within=1%")).number == 1


def test_parse() -> None:
    assert parse_pick("fastest-within=0.5%") == Pick(PickKind.FASTEST_WITHIN, tolerance=0.005)
    assert parse_pick("trial=12") == Pick(PickKind.TRIAL, trial=12)


@pytest.mark.parametrize("text", ["best", "fastest-within=0.5", "trial=x", "fastest-within=-1%"])
def test_bad_pick_text(text: str) -> None:
    with pytest.raises(UserError, match="--pick"):
        parse_pick(text)


def test_picking_a_failed_trial_names_its_reason() -> None:
    failed = TrialRecord(
        5,
        "FAIL",
        None,
        None,
        True,
        {"failure_kind": "diverged", "failure_reason": "loss became nan"},
    )
    with pytest.raises(UserError, match=re.escape("trial 5 is FAIL (diverged: loss became nan)")):
        select(view([*TRIALS[:5], failed]), parse_pick("trial=5"))
    with pytest.raises(UserError, match="no trial 42"):
        select(view(TRIALS), parse_pick("trial=42"))


def test_no_complete_trial() -> None:
    with pytest.raises(UserError, match="no complete trial"):
        select(view([record(0, None, None, state="FAIL")]), parse_pick("max-metric"))
