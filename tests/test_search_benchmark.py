"""The search-efficiency benchmarks' pure parts: hypervolume, normalisation, time to a target,
the methods' specs and the reference grid; and one tiny real run (slow)."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from benchmarks._search import (
    SCALES,
    Method,
    Point,
    Scale,
    hypervolume,
    method_spec,
    study_points,
    time_to,
    trajectory,
)
from benchmarks.reference_front import SPACE, grid
from tuner.pruning import Pruning
from tuner.results import StudyView, TrialRecord
from tuner.space import load_space
from tuner.spec import SamplerName, StudySpec, load_spec
from tuner.workload import Direction

ROOT = Path(__file__).resolve().parents[1]


def test_hypervolume_of_known_fronts() -> None:
    assert hypervolume([]) == 0.0
    assert hypervolume([(1.0, 1.0)]) == 1.0
    # Two rectangles overlapping in [0, 0.5] x [0, 0.5]: 0.5 + 0.5 - 0.25.
    assert hypervolume([(1.0, 0.5), (0.5, 1.0)]) == pytest.approx(0.75)
    # Order does not matter; dominated and duplicate points add nothing.
    assert hypervolume([(0.5, 1.0), (0.4, 0.4), (1.0, 0.5), (1.0, 0.5)]) == pytest.approx(0.75)
    # Same x, different y: the higher one wins.
    assert hypervolume([(1.0, 0.2), (1.0, 0.7)]) == pytest.approx(0.7)


def test_points_at_or_beyond_the_reference_add_nothing() -> None:
    assert hypervolume([(-0.5, 2.0), (2.0, -1.0), (0.0, 3.0), (3.0, 0.0)]) == 0.0
    assert hypervolume([(-0.5, 2.0), (0.5, 0.5)]) == pytest.approx(0.25)


def test_hypervolume_agrees_with_optunas() -> None:
    from optuna._hypervolume import compute_hypervolume

    rng = random.Random(0)
    for _ in range(20):
        points = [(rng.uniform(0, 1), rng.uniform(0, 1)) for _ in range(rng.randint(1, 30))]
        losses = -np.array(points)  # Optuna minimises, from a reference above the points
        assert hypervolume(points) == pytest.approx(compute_hypervolume(losses, np.zeros(2)))


def test_metric_normalisation_in_both_directions() -> None:
    digits, charlm = SCALES["digits"], SCALES["charlm"]
    assert digits.metric(0.1) == 0.0
    assert digits.metric(1.0) == 1.0
    assert digits.metric(0.55) == pytest.approx(0.5)
    assert digits.metric(0.05) < 0  # worse than chance: below the reference point
    assert charlm.metric(8.0) == 0.0  # a uniform guess over 256 bytes
    assert charlm.metric(1.0) == 1.0
    assert charlm.metric(4.5) == pytest.approx(0.5)
    assert charlm.metric(9.0) < 0


def test_speedup_is_capped_and_scaled() -> None:
    scale = Scale(worst=0.1, best=1.0, max_speedup=4.0)
    assert scale.speedup(2.0) == 0.5
    assert scale.speedup(40.0) == 1.0
    assert Point(3, 0.55, 2.0, 1.0).normalised(scale) == pytest.approx((0.5, 0.5))
    with pytest.raises(ValueError, match="worst != best"):
        Scale(worst=1.0, best=1.0)


def test_time_to_a_share_of_the_reference_on_a_synthetic_trajectory() -> None:
    scale = Scale(worst=0.0, best=1.0, max_speedup=1.0)
    points = [
        Point(2, 0.5, 0.5, 30.0),  # completes after trial 1, though numbered earlier
        Point(1, 0.9, 0.2, 10.0),
        Point(3, 0.4, 0.4, 40.0),  # dominated: the hypervolume stays
        Point(4, 0.2, 1.0, 55.0),
    ]
    path = trajectory(points, scale)
    assert [t for t, _ in path] == [10.0, 30.0, 40.0, 55.0]
    areas = [hv for _, hv in path]
    assert areas == pytest.approx([0.18, 0.18 + 0.5 * 0.3, 0.33, 0.33 + 0.2 * 0.5])
    assert time_to(path, 0.18) == 10.0  # reached exactly counts
    assert time_to(path, 0.2) == 30.0
    assert time_to(path, 0.4) == 55.0
    assert time_to(path, 0.5) is None  # never reached
    assert time_to([], 0.1) is None


def test_only_complete_feasible_trials_count_and_speedups_use_the_baseline() -> None:
    start = datetime(2025, 1, 1, 12, 0, 0)

    def record(
        number: int, state: str, metric: float | None, feasible: bool = True, **attrs: object
    ) -> TrialRecord:
        throughput = None if metric is None else 100.0 * (number + 1)
        done = start + timedelta(seconds=10 * (number + 1))
        return TrialRecord(number, state, metric, throughput, feasible, dict(attrs), done)

    trials = (
        record(0, "COMPLETE", 0.9, baseline=True),
        record(1, "COMPLETE", 0.95),
        record(2, "COMPLETE", 0.99, feasible=False),  # over a constraint
        record(3, "PRUNED", None),
        record(4, "FAIL", None),
    )
    view = StudyView("s", "sqlite:///x.db", "accuracy", Direction.MAXIMIZE, {}, trials)
    points = study_points(view, start)
    assert [(p.number, p.speedup, p.elapsed_s) for p in points] == [(0, 1.0, 10.0), (1, 2.0, 20.0)]
    no_baseline = StudyView("s", "x", "accuracy", Direction.MAXIMIZE, {}, trials[1:])
    with pytest.raises(ValueError, match="no baseline"):
        study_points(no_baseline, start)


def test_each_method_is_the_shipped_spec_with_only_its_own_changes() -> None:
    shipped = load_spec(ROOT / "studies/quick.toml")

    def spec(method: Method) -> StudySpec:
        return method_spec(
            shipped, method, name="n", storage="sqlite:///x.db", seed=7, n_trials=99, timeout_s=5.0
        )

    tuner, motpe, rand = spec(Method.TUNER), spec(Method.MOTPE), spec(Method.RANDOM)
    assert (tuner.sampler, tuner.pruning) == (shipped.sampler, shipped.pruning)
    assert tuner.pruning.enabled and tuner.pruning.throughput_cache
    plain = Pruning(enabled=False, throughput_cache=False)
    assert (motpe.sampler, motpe.pruning) == (SamplerName.TPE, plain)
    assert (rand.sampler, rand.pruning) == (SamplerName.RANDOM, plain)
    for made in (tuner, motpe, rand):
        assert made.remeasure_rounds == 0
        assert (made.name, made.seed, made.n_trials, made.timeout_s) == ("n", 7, 99, 5.0)
        assert (made.budget, made.space, made.n_startup_trials) == (
            shipped.budget,
            shipped.space,
            shipped.n_startup_trials,
        )


def test_the_reference_grid_visits_every_config_once() -> None:
    points = grid(load_space(ROOT / SPACE))
    assert len(points) == 64
    assert len({tuple(sorted(p.items())) for p in points}) == 64
    # Conditional parameters: each point has exactly its own optimizer's learning rate.
    assert all(("adam.lr" in p) == (p["optimizer"] == "adam") for p in points)
    baseline = {
        "optimizer": "adam",
        "adam.lr": 0.001,
        "schedule": "constant",
        "batch_size": 32,
        "precision": "fp32",
    }
    assert baseline in points  # plain PyTorch defaults are a grid point


@pytest.mark.slow
def test_a_tiny_search_efficiency_run_prints_both_ratios() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.search_efficiency", "--seeds", "1", "--budget-s", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    for other in ("random", "motpe"):
        assert any(line.startswith(f"hypervolume ratio vs {other}: ") for line in lines)
