"""A study as a pandas DataFrame: one row per trial, knobs flattened, figures relative to the
baseline. The app's trial table, its CSV download, its charts' data and its comparisons are
all this one frame, so every view agrees on every number.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tuner.attrs import TrialAttr
from tuner.relative import Versus, baseline_of
from tuner.report import number
from tuner.results import KNOBS, StudyView, TrialRecord, knobs_of


def trials_frame(view: StudyView) -> pd.DataFrame:
    """Every trial of `view`, one row each, ordered by trial number.

    Columns: trial, state, role (front / dominated / infeasible, or empty for a trial
    without a result), baseline (bool), metric, delta (gain over the baseline, + is better),
    throughput, speedup, not_better, worse, peak_memory_mb, compile_s, trial_s, the KNOBS,
    failure_kind, failure_reason, completed. A study that scores speed as time to a target
    (`StudyView.speed`; its throughput is then runs to the target per hour) also has
    time_to_target_s after speedup.
    """
    baseline = baseline_of(view)
    front = {t.number for t in view.front()}
    rows = [_row(t, baseline.versus(t), t.number in front) for t in view.trials]
    columns = _COLUMNS
    if view.speed.to_target:
        at = _COLUMNS.index("speedup") + 1
        columns = [*_COLUMNS[:at], "time_to_target_s", *_COLUMNS[at:]]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("trial", ignore_index=True)


_COLUMNS = [
    "trial",
    "state",
    "role",
    "baseline",
    "metric",
    "delta",
    "throughput",
    "speedup",
    "not_better",
    "worse",
    "peak_memory_mb",
    "compile_s",
    "trial_s",
    *KNOBS,
    "failure_kind",
    "failure_reason",
    "completed",
]


def _row(trial: TrialRecord, versus: Versus, on_front: bool) -> dict[str, Any]:
    attrs = trial.attrs
    peak = number(attrs.get(TrialAttr.PEAK_MEMORY_BYTES))
    if trial.state != "COMPLETE":
        role = ""
    elif not trial.feasible:
        role = "infeasible"
    else:
        role = "front" if on_front else "dominated"
    return {
        "trial": trial.number,
        "state": trial.state,
        "role": role,
        "baseline": trial.is_baseline,
        "metric": trial.metric,
        "delta": versus.delta,
        "throughput": trial.throughput,
        "speedup": versus.speedup,
        "time_to_target_s": number(attrs.get(TrialAttr.TIME_TO_TARGET_S)),
        "not_better": versus.not_better,
        "worse": versus.worse,
        "peak_memory_mb": None if peak is None else peak / 2**20,
        "compile_s": number(attrs.get(TrialAttr.COMPILE_S)),
        "trial_s": number(attrs.get(TrialAttr.TRIAL_S)),
        **knobs_of(trial.config),
        "failure_kind": attrs.get(TrialAttr.FAILURE_KIND),
        "failure_reason": attrs.get(TrialAttr.FAILURE_REASON),
        "completed": trial.completed,
    }
