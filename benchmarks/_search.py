"""Search efficiency: what `search_efficiency.py` and `reference_front.py` share.

A study's result is its front on (metric, throughput). To compare fronts across runs on a
noisy shared host, each trial becomes a point in a fixed normalised space:

* the metric on a fixed per-workload scale (`Scale`): the chance level maps to 0, a fixed
  "good" value to 1, whatever the direction;
* the throughput as a speedup over the same study's baseline trial. The baseline runs first in
  every study, so it is timed in the same minutes as the trials it judges (FACTS.md: the same
  config's throughput moved -65% to +190% between runs under load); the speedup is capped at
  `Scale.max_speedup` and divided by it.

The hypervolume is the area these points dominate above the reference point (0, 0): chance
metric, zero throughput. A hypervolume ratio depends on that reference point, but not on the
scales (stretching an axis multiplies every area by the same factor), so what the scales fix
is only that every figure is on one footing. Only complete, feasible trials count, as for
tuner's own front (`tuner.results.StudyView.completed`).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tuner.hardware import cpuinfo_field
from tuner.relative import baseline_of
from tuner.results import StudyView, read_study
from tuner.spec import SamplerName, StudySpec


@dataclass(frozen=True)
class Scale:
    """A workload's fixed normalisation: metric `worst` -> 0 (the reference point), `best` -> 1.

    `best < worst` for a minimised metric. Speedups above `max_speedup` count as
    `max_speedup`, so one mismeasured trial cannot dominate a run.
    """

    worst: float
    best: float
    max_speedup: float = 10.0

    def __post_init__(self) -> None:
        if self.worst == self.best or not self.max_speedup > 0:
            raise ValueError(f"a scale needs worst != best and max_speedup > 0, got {self}")

    def metric(self, value: float) -> float:
        return (value - self.worst) / (self.best - self.worst)

    def speedup(self, value: float) -> float:
        return min(value, self.max_speedup) / self.max_speedup


#: digits: accuracy over 10 classes (chance 0.1 -> 0, perfect 1.0 -> 1). charlm: bits per byte,
#: minimised; 8 bits (a uniform guess over 256 bytes) -> 0 and 1 bit/char (about the best
#: character-level models reach on English text, far beyond these budgets) -> 1.
SCALES = {"digits": Scale(worst=0.1, best=1.0), "charlm": Scale(worst=8.0, best=1.0)}


#: CPU features that set how fast bf16 and fp16 run: two hosts that both read "AMD EPYC"
#: can differ here by 2x in a bf16 trial's speedup, and so in a front's hypervolume.
LOW_PRECISION_FEATURES = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_features() -> list[str]:
    """The `LOW_PRECISION_FEATURES` this host's CPU has (empty where /proc/cpuinfo is not)."""
    flags = (cpuinfo_field("flags") or "").split()
    return [f for f in LOW_PRECISION_FEATURES if f in flags]


def hypervolume(points: Sequence[tuple[float, float]]) -> float:
    """Area dominated by `points` (both coordinates maximised) above the reference (0, 0).

    One sort and one sweep: walking from the largest x down, each point adds the strip
    between its y and the highest y seen so far. Dominated points add nothing; points at
    or below the reference on either axis are left out.
    """
    area, top = 0.0, 0.0
    for x, y in sorted(((x, y) for x, y in points if x > 0 and y > 0), reverse=True):
        if y > top:
            area += x * (y - top)
            top = y
    return area


@dataclass(frozen=True)
class Point:
    """One complete, feasible trial in normalised form, and when it finished."""

    number: int
    metric: float
    speedup: float
    elapsed_s: float  # from the start of the run to the trial's completion

    def normalised(self, scale: Scale) -> tuple[float, float]:
        return scale.metric(self.metric), scale.speedup(self.speedup)


def study_points(view: StudyView, start: datetime) -> list[Point]:
    """The study's complete, feasible trials as `Point`s, in completion order.

    Raises:
        ValueError: the study has no complete baseline trial to measure speedups against.
    """
    baseline = baseline_of(view)
    if baseline.trial is None:
        raise ValueError(f"study {view.name!r}: {baseline.note}")
    points = []
    for trial in view.completed():
        speedup = baseline.versus(trial).speedup
        if speedup is not None and trial.metric is not None and trial.completed is not None:
            elapsed = (trial.completed - start).total_seconds()
            points.append(Point(trial.number, trial.metric, speedup, elapsed))
    return sorted(points, key=lambda p: p.elapsed_s)


def front_hypervolume(points: Sequence[Point], scale: Scale) -> float:
    return hypervolume([p.normalised(scale) for p in points])


def trajectory(points: Sequence[Point], scale: Scale) -> list[tuple[float, float]]:
    """(elapsed seconds, hypervolume of the front so far) after each trial's completion."""
    ordered = sorted(points, key=lambda p: p.elapsed_s)
    return [
        (point.elapsed_s, front_hypervolume(ordered[: i + 1], scale))
        for i, point in enumerate(ordered)
    ]


def time_to(path: Sequence[tuple[float, float]], target: float) -> float | None:
    """The first elapsed time at which the hypervolume reaches `target`; None if never."""
    return next((t for t, hv in path if hv >= target), None)


class Method(StrEnum):
    TUNER = "tuner"  # the spec as shipped: its sampler, pruning and throughput cache
    MOTPE = "motpe"  # multi-objective TPE alone: no pruning, no throughput cache
    RANDOM = "random"  # Optuna's RandomSampler, no pruning, no throughput cache


def method_spec(
    spec: StudySpec,
    method: Method,
    *,
    name: str,
    storage: str,
    seed: int,
    n_trials: int,
    timeout_s: float | None,
) -> StudySpec:
    """The one place a method becomes a spec. Every method gets the shipped spec's workload,
    space, budget and start-up trials; none re-measures its front at the end
    (`remeasure_rounds = 0`), so the compared time is search time only. The generic methods
    also lose tuner's metric floor (a floor past any metric stands for none): their samplers
    learn nothing from untrained results, as plain Optuna would."""
    if method is not Method.TUNER:
        scale = SCALES.get(spec.objective, SCALES["digits"])
        spec = dataclasses.replace(
            spec,
            sampler=SamplerName.RANDOM if method is Method.RANDOM else SamplerName.TPE,
            pruning=dataclasses.replace(spec.pruning, enabled=False, throughput_cache=False),
            metric_floor=-1e12 if scale.best > scale.worst else 1e12,
        )
    return dataclasses.replace(
        spec,
        name=name,
        storage=storage,
        seed=seed,
        n_trials=n_trials,
        timeout_s=timeout_s,
        remeasure_rounds=0,
    )


@dataclass(frozen=True)
class Run:
    """One method's study: its points and what happened to its trials."""

    method: Method
    seed: int
    points: tuple[Point, ...]
    wall_s: float
    states: dict[str, int]
    view: StudyView = dataclasses.field(repr=False)
    prepare_s: float = 0.0  # resolving the spec before the clock starts (lr range tests)

    def within(self, seconds: float) -> list[Point]:
        """The points of trials that completed within `seconds` of the start."""
        return [p for p in self.points if p.elapsed_s <= seconds]

    def summary(self) -> str:
        """Trial states, why trials failed or were pruned, and the run's wall time."""
        counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(self.states.items()))
        kinds = ", ".join(f"{len(t)} {kind}" for kind, t in sorted(self.view.failures().items()))
        return f"{counts}{f' ({kinds})' if kinds else ''}; {self.wall_s:.0f} s"


def quiet() -> None:
    """Keep Optuna's per-trial log lines and experimental-feature warnings off the output."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def run_method(spec: StudySpec, method: Method) -> Run:
    """Run `spec` (built by `method_spec`) to its end, in this process, one worker."""
    from tuner.runner import prepare, run_study

    quiet()
    clock = time.perf_counter()
    prepared = prepare(spec)  # runs the lr range tests of a space with lr = "auto"
    prepare_s = time.perf_counter() - clock
    start, clock = datetime.now(), time.perf_counter()  # Optuna stamps trials with now()
    run_study(prepared, workers=1)
    wall = time.perf_counter() - clock
    view = read_study(spec.name, spec.storage)
    points = tuple(study_points(view, start))
    return Run(method, spec.seed, points, wall, view.state_counts(), view, prepare_s)


def spread(values: Sequence[float], digits: int = 3) -> str:
    """The "mean ± std (min..max, n)" of the finite values; "n/a" with none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "n/a"
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    f = f".{digits}f"
    return (
        f"{statistics.fmean(finite):{f}} ± {std:{f}} "
        f"(min..max {min(finite):{f}}..{max(finite):{f}}, n={len(finite)})"
    )
