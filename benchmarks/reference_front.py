"""Brute-force reference front for digits: train every point of a small categorical grid.

Every config of `benchmarks/data/digits_grid.toml` (64: optimizer x learning rate x schedule x
batch size x precision, all categorical) runs through tuner's own runner, at the budget of
`studies/quick.toml`, in one study: the baseline first, as in every study, then every grid
point, queued in a seeded random order with `study.enqueue_trial` (the sampler never
chooses). Pruning, the throughput cache and the final re-measurement are off, so every point
is fully trained and timed once. One torch thread, one trial at a time.

The result, `benchmarks/data/digits_reference_front.json`, holds every point (its parameters,
metric, throughput, speedup over this study's baseline, state), the front (tuner's
`pareto_front`), its hypervolume in `benchmarks._search`'s fixed normalisation, the machine,
the date and the command. `search_efficiency.py --reference` measures how much of that
hypervolume tuner's search reaches in 30 trials, and how soon.

Each point's speed is one measurement, like a search trial's, so the front holds the luckiest
draws of the host's noise (on a loaded 2-core host the same config's speedup spreads by
+-30%). Because lr and schedule never change the speed, the grid measures each performance key
(`tuner.pruning.keys`) 6-9 times; ``hypervolume_robust`` is the front's hypervolume with every
speed, the baseline's included, taken as its key's median: the front without that luck.
Three runs of this script on this host (load average 2-3 from other jobs) gave hypervolumes
0.30, 0.36 and 0.25 (robust: 0.29 and 0.24 in the last two): the baseline's one measurement
scales every speedup of its run, so a share of this reference is only as exact as that
spread allows.

    python -m benchmarks.reference_front [--out benchmarks/data/digits_reference_front.json]

About 3-5 minutes on one core of a 2-core host whose CPU runs bf16 natively (AVX-512 BF16),
about 10 where it does not (bf16 then trains 5-10x slower than fp32). The grid's front differs
between those hosts, so the reference records the CPU's low-precision features and
`search_efficiency.py --reference` warns when the host it runs on differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Also runs as a file, `python benchmarks/reference_front.py`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._search import (
    SCALES,
    cpu_features,
    front_hypervolume,
    hypervolume,
    quiet,
    study_points,
)
from tuner.pruning.keys import performance_key
from tuner.relative import baseline_of
from tuner.results import StudyView, TrialRecord, read_study
from tuner.space import SearchSpace, sample_config
from tuner.spec import SamplerName, StudySpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = "studies/quick.toml"
SPACE = "benchmarks/data/digits_grid.toml"
OUT = "benchmarks/data/digits_reference_front.json"


class _GridTrial:
    """A stand-in for an Optuna trial that answers each categorical suggestion with the
    choice `path` names (the first choice past its end), and records what was asked: walking
    `path` like an odometer visits every config of a define-by-run space once."""

    def __init__(self, path: list[int]) -> None:
        self.path = path
        self.taken: list[int] = []
        self.sizes: list[int] = []
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        index = self.path[len(self.taken)] if len(self.taken) < len(self.path) else 0
        self.taken.append(index)
        self.sizes.append(len(choices))
        self.params[name] = choices[index]
        return choices[index]

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        raise ValueError(f"a grid space has only categorical knobs; {name} is a range")

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        raise ValueError(f"a grid space has only categorical knobs; {name} is a range")


def grid(space: SearchSpace) -> list[dict[str, Any]]:
    """The Optuna parameters of every config of a categorical `space`, in odometer order."""
    points: list[dict[str, Any]] = []
    path: list[int] = []
    while True:
        trial = _GridTrial(path)
        sample_config(trial, space)
        points.append(trial.params)
        path = trial.taken
        while path and path[-1] + 1 >= trial.sizes[len(path) - 1]:
            path.pop()
        if not path:
            return points
        path[-1] += 1


def robust_speedups(view: StudyView) -> dict[int, float]:
    """Each complete trial's speedup with both speeds taken as the median over every complete
    trial of the same performance key (`tuner.pruning.keys`: lr and schedule do not change
    the speed): the grid measures each key 6-9 times, so this front is not the luckiest
    draw of the host's noise. Empty without a baseline."""
    baseline = next((t for t in view.completed() if t.is_baseline), None)
    complete = [t for t in view.trials if t.state == "COMPLETE" and t.throughput is not None]
    keys = {t.number: performance_key(t.config or {}) for t in complete}
    speeds: dict[str, list[float]] = {}
    for trial in complete:
        speeds.setdefault(keys[trial.number], []).append(trial.throughput or 0.0)
    if baseline is None:
        return {}
    reference = statistics.median(speeds[keys[baseline.number]])
    return {n: statistics.median(speeds[key]) / reference for n, key in keys.items()}


def grid_spec(storage: str, seed: int) -> StudySpec:
    spec = load_spec(ROOT / SPEC)
    return dataclasses.replace(
        spec,
        name="digits-reference-grid",
        space=str(ROOT / SPACE),
        storage=storage,
        seed=seed,
        sampler=SamplerName.RANDOM,  # never asked: every trial is queued
        timeout_s=None,
        pruning=dataclasses.replace(spec.pruning, enabled=False, throughput_cache=False),
        remeasure_rounds=0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=OUT, help=f"where to write the front (default {OUT})")
    parser.add_argument("--seed", type=int, default=0, help="the study's seed (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N grid points")
    args = parser.parse_args()
    import optuna

    from tuner.runner import prepare, run_study

    quiet()
    scale = SCALES["digits"]
    with tempfile.TemporaryDirectory() as folder:
        spec = grid_spec(f"sqlite:///{folder}/reference.db", args.seed)
        prepared = prepare(spec)
        params = grid(prepared.space)[: args.limit]
        # In a seeded random order: in odometer order every Adam point would run before every
        # SGD point, and a drift in host load would pass for a difference between them.
        random.Random(args.seed).shuffle(params)
        print(f"{len(params)} grid points + the baseline, budget {spec.budget}", flush=True)

        def enqueue(study: optuna.Study, _remaining: int) -> None:
            for point in params:
                study.enqueue_trial(point, skip_if_exists=False)

        load = os.getloadavg()
        start, clock = datetime.now(), time.perf_counter()
        run_study(prepared, n_trials=1 + len(params), on_start=enqueue)
        wall = time.perf_counter() - clock
        view = read_study(spec.name, spec.storage)
        study = optuna.load_study(study_name=spec.name, storage=spec.storage)
        trial_params = {t.number: t.params for t in study.get_trials(deepcopy=False)}
    points = study_points(view, start)  # complete and feasible: what a front may hold
    counted = {p.number for p in points}
    reference_hv = front_hypervolume(points, scale)
    robust = robust_speedups(view)
    robust_hv = hypervolume(
        [(scale.metric(p.metric), scale.speedup(robust[p.number])) for p in points]
    )
    baseline = baseline_of(view)

    def entry(record: TrialRecord) -> dict[str, Any]:
        return {
            "trial": record.number,
            "baseline": record.is_baseline,
            "state": record.state,
            "feasible": record.feasible,
            "counted": record.number in counted,
            "params": trial_params.get(record.number, {}),
            "metric": record.metric,
            "throughput": record.throughput,
            "speedup": baseline.versus(record).speedup,
            "robust_speedup": robust.get(record.number),
            "failure": record.failure,
        }

    front = {t.number for t in view.front()}
    data = {
        "workload": "digits",
        "spec_file": SPEC,
        "space_file": SPACE,
        "space": prepared.space.to_dict(),
        "budget": dataclasses.asdict(spec.budget),
        "seed": args.seed,
        "scale": dataclasses.asdict(scale),
        "metric_name": view.metric_name,
        "hypervolume": reference_hv,
        "hypervolume_robust": robust_hv,
        "front": [entry(t) for t in view.trials if t.number in front],
        "points": [entry(t) for t in view.trials],
        "states": view.state_counts(),
        "wall_s": round(wall, 1),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "device": prepared.device_info.to_dict(),
            "cpu_features": cpu_features(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": load,
            "load_average_after": os.getloadavg(),
        },
        "command": shlex.join(["python", "-m", "benchmarks.reference_front", *sys.argv[1:]]),
        "made_by": "benchmarks/reference_front.py",
    }
    out = ROOT / args.out if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"states: {data['states']}; {wall:.0f} s")
    print(f"{'trial':>5} {'metric':>7} {'speedup':>7} {'robust':>7}  params")
    for e in data["front"]:
        print(
            f"{e['trial']:>5} {e['metric']:7.4f} {e['speedup']:7.2f}x "
            f"{e['robust_speedup']:6.2f}x  {e['params']}"
        )
    print(
        f"reference hypervolume: {reference_hv:.4f} ({len(front)} front points); with each "
        f"point's speed the median of its performance key's: {robust_hv:.4f}; {out}"
    )


if __name__ == "__main__":
    main()
