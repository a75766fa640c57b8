"""Re-timing the final front against the baseline, interleaved, to measure the noise.

A study's throughputs come from trials run minutes apart on a host whose speed drifts, so two
front points 5% apart may well be one speed. When a study reaches its trial count, the
front's configs and the baseline run again as short supervised trials, in rounds that
alternate them; each point's speed is stored as its ratios to the baseline's speed in the same
rounds. The spread of those ratios is the noise: readers (`tuner.speed_noise`) mark front
points whose ranges overlap.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import optuna

from tuner.attrs import StudyAttr, TrialAttr
from tuner.budget import Budget
from tuner.config import TrialConfig
from tuner.results import pareto_front, record_of
from tuner.spec import StudySpec
from tuner.supervisor import Job, TrialProcess
from tuner.workload import Direction

#: Seconds each re-timing trains: long enough for three steady windows of a fast config.
_SECONDS = 1.0


def remeasure_front(
    study: optuna.Study,
    spec: StudySpec,
    device: str,
    process: TrialProcess,
    direction: Direction,
) -> dict[str, Any] | None:
    """Re-time the front (baseline included) in `spec.remeasure_rounds` interleaved rounds
    and store the ratios; None when there is nothing new to re-time."""
    records = [record_of(t) for t in study.get_trials(deepcopy=False)]
    done = [r for r in records if r.state == "COMPLETE" and r.feasible]
    front = pareto_front(done, direction)
    baseline = next((r for r in done if r.is_baseline), None)
    if baseline is None or spec.remeasure_rounds == 0:
        return None
    numbers = sorted({baseline.number, *(r.number for r in front)})
    stored = study.user_attrs.get(StudyAttr.FRONT_REMEASURE)
    if isinstance(stored, dict) and stored.get("trials") == numbers:
        return None
    by_number = {r.number: r for r in records}
    rates: dict[int, list[float]] = {n: [] for n in numbers}
    for _ in range(spec.remeasure_rounds):
        for number in numbers:
            record = by_number[number]
            config = TrialConfig.from_dict(record.attrs[TrialAttr.CONFIG])
            job = Job(
                spec.objective,
                config,
                _short(spec.budget, config, record.throughput or 1.0),
                device,
                int(record.attrs.get(TrialAttr.SEED, spec.seed)),
                spec.size,
            )
            outcome = process.run(job)
            if outcome.result is not None:
                rates[number].append(outcome.result.throughput)
    base = rates[baseline.number]
    if not base:
        return None
    ratios = {str(n): [rate / b for rate, b in zip(rates[n], base, strict=False)] for n in numbers}
    stored = {
        "trials": numbers,
        "baseline": baseline.number,
        "rounds": spec.remeasure_rounds,
        "throughputs": {str(n): rates[n] for n in numbers},
        "ratios": ratios,
    }
    study.set_user_attr(StudyAttr.FRONT_REMEASURE, stored)
    return stored


def _short(budget: Budget, config: TrialConfig, throughput: float) -> Budget:
    """A budget of about `_SECONDS` of training at the trial's speed, in three windows and
    one evaluation (the metric is not what is measured)."""
    per_step = config.batch_size * config.accumulation_steps
    steps = max(6, math.ceil(_SECONDS * throughput / per_step))
    return dataclasses.replace(
        budget, epochs=None, seconds=None, steps=steps, evaluations=1, windows=3
    )
