"""Pick: choose one trial by a rule, see it in full, download its config.

The controls build a `tuner.pick.Pick`; its text (`str(pick)`) is shown to paste into
``tuner export --pick``, and the trial is chosen by `tuner.pick.select`, the function the
command calls, so the app and the command always agree. The downloads are the command's
output byte for byte (`tuner.handoff.export_text`).
"""

from __future__ import annotations

import math
import shlex

import pandas as pd
import streamlit as st

from app import data, widgets
from app.safe import md
from tuner.errors import UserError
from tuner.pick import PICK_HELP, Condition, Pick, PickKind, Quantity, select
from tuner.targets import SpeedObjective
from tuner.workload import Direction

_LABELS = {
    PickKind.BEST_METRIC: "best metric",
    PickKind.MAX_THROUGHPUT: "max throughput",
    PickKind.KNEE: "knee",
    PickKind.FASTEST_WITHIN: "fastest within",
    PickKind.FASTEST_WITH: "fastest with (SLO)",
    PickKind.BEST_WITH: "best with (SLO)",
    PickKind.TRIAL: "trial number",
}


def bound(title: str, values: pd.Series, default: float, key: str) -> float:
    """A slider over `values`' range in round steps (a hundredth of the range's magnitude),
    so the rule reads ``metric>=0.97`` rather than ``metric>=0.9700000000000001``."""
    low, high = float(values.min()), float(values.max())
    span = high - low or abs(high) or 1.0
    step = 10.0 ** (math.floor(math.log10(span)) - 2)
    digits = max(0, -math.floor(math.log10(step)))
    low = round(math.floor(low / step) * step, digits)
    high = round(max(math.ceil(high / step) * step, low + step), digits)
    start = min(max(round(math.floor(default / step) * step, digits), low), high)
    value = st.slider(
        title, low, high, start, step=step, key=key, format=f"%.{digits}f" if digits else "%d"
    )
    return round(float(value), digits)


def memory_ceiling(done: pd.DataFrame) -> tuple[Condition, ...]:
    """An optional ``memory_mb<=X`` condition."""
    peaks = done["peak_memory_mb"].dropna()
    if peaks.empty or not st.checkbox("limit peak memory", key="pick_memory_on"):
        return ()
    ceiling = bound("peak memory at most (MB)", peaks, float(peaks.max()), "pick_memory")
    return (Condition(Quantity.MEMORY_MB, at_least=False, value=ceiling),)


def build(
    kind: PickKind,
    complete: pd.DataFrame,
    direction: Direction,
    metric_name: str,
    objective: SpeedObjective | None = None,
) -> Pick:
    """The pick the controls of `kind` describe, over the study's complete trials;
    `objective` says what their throughput is (samples/s, or runs to the target per hour)."""
    done = complete[complete["role"] != "infeasible"]  # what every rule but trial=N picks from
    front = done[done["role"] == "front"]
    if kind is PickKind.FASTEST_WITHIN:
        left, right = st.columns(2)
        tolerance = left.number_input(
            "tolerance", min_value=0.0, value=0.5, step=0.1, key="pick_tolerance"
        )
        units = {"%": "% of the best metric", "units": md(f"{metric_name} units")}
        unit = right.radio("of", list(units), format_func=units.__getitem__, key="pick_unit")
        relative = unit == "%"
        return Pick(kind, tolerance=float(tolerance or 0.0), relative=relative)
    if kind is PickKind.FASTEST_WITH:
        at_least = direction is Direction.MAXIMIZE
        title = f"{metric_name} at {'least' if at_least else 'most'}"
        default = float(front["metric"].median())
        floor = bound(md(title), done["metric"], default, "pick_metric")
        metric = Condition(Quantity.METRIC, at_least=at_least, value=floor)
        return Pick(kind, conditions=(metric, *memory_ceiling(done)))
    if kind is PickKind.BEST_WITH:
        default = float(front["throughput"].median())
        unit = (objective or SpeedObjective()).rate_label
        floor = bound(f"throughput at least ({unit})", done["throughput"], default, "pick_tp")
        speed = Condition(Quantity.THROUGHPUT, at_least=True, value=floor)
        return Pick(kind, conditions=(speed, *memory_ceiling(done)))
    if kind is PickKind.TRIAL:
        numbers = complete["trial"].tolist()
        number = st.selectbox("trial", numbers, key="pick_trial")
        return Pick(kind, trial=int(number if number is not None else numbers[0]))
    return Pick(kind)


study = data.current()
view = study.view
widgets.header("Pick", study)
data.require_complete(study)
frame = data.frame(study)
complete = frame[frame["state"] == "COMPLETE"]
kind = st.radio(
    "rule",
    list(_LABELS),
    format_func=_LABELS.__getitem__,
    horizontal=True,
    key="pick_kind",
    help=PICK_HELP,
)
pick = build(PickKind(kind), complete, view.direction, view.metric_name, view.speed)
rule = str(pick)
st.code(rule, language=None)
st.caption("the same pick from the command line (add --storage URL):")
st.code(f"tuner export {shlex.quote(view.name)} --pick {shlex.quote(rule)}", language="bash")
try:
    trial = select(view, pick)
except UserError as exc:
    st.warning(md(str(exc)))
    st.stop()
widgets.trial_detail(study, trial, key="pick", downloads=True)
