"""Pareto front: metric against throughput (or speedup over the baseline), every trial placed;
failed and pruned trials beside it; the front as a table; a selected trial in full below.

A trial is selected by clicking its point (the chart's selection callback reads the trial
number the point carries) or with the "trial" box, which the click also sets.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts, data, widgets
from app.charts._values import label
from app.safe import md
from tuner.relative import baseline_of
from tuner.report import (
    baseline_line,
    failure_lines,
    flag_lines,
    speed_lines,
    trial_headers,
    trial_row,
)
from tuner.results import KNOBS, StudyView

_CHART = "front_chart"
_TRIAL = "front_trial"


def chart_selected() -> None:
    """A click on a point selects its trial in the "trial" box (cleared selection: kept)."""
    event = st.session_state.get(_CHART) or {}
    number = charts.selected_trial(event.get("selection", {}).get("points", []))
    if number is not None:
        st.session_state[_TRIAL] = number


def front_table(view: StudyView, numbers: list[int]) -> pd.DataFrame:
    """The front as `tuner show` prints it: the same cells, best metric first."""
    baseline = baseline_of(view)
    trials = [view.trial(number) for number in numbers]
    rows = [
        trial_row(baseline, t)
        for t in trials
        if t is not None and t.metric is not None and t.throughput is not None
    ]
    return pd.DataFrame(rows, columns=trial_headers(view))


study = data.current()
view = study.view
widgets.header("Pareto front", study)
data.require_complete(study)
frame = data.chart_frame(study)
baseline = baseline_of(view)
st.caption(md(baseline_line(baseline, view.metric_name)))

controls = st.columns([1, 1, 2])
speed = view.speed  # what objective 1 is: samples/s, or runs to the target per hour
_AXIS_NAMES = {"throughput": "runs per hour" if speed.to_target else "throughput"}
chosen_axis = controls[0].radio(
    "x axis",
    ["throughput", "speedup"],
    horizontal=True,
    key="front_x",
    format_func=lambda option: _AXIS_NAMES.get(option, option),
    help=speed.speedup_note,
)
colourable = [k for k in KNOBS if k in frame and frame[k].map(label).nunique() > 1]
colour_by = controls[1].selectbox(
    "colour by", colourable, index=None, key="front_colour", placeholder="front / dominated"
)
axis: charts.XAxis = "speedup" if chosen_axis == "speedup" else "throughput"
if axis == "speedup" and baseline.trial is None:
    st.warning(md(f"speedup needs the baseline, but {baseline.note}; showing throughput"))
    axis = "throughput"
elif axis == "speedup" and baseline.trial and speed.seconds(baseline.trial.throughput) is None:
    st.warning("speedup needs the baseline's time to target, but it never reached the target")
    axis = "throughput"

complete = frame.loc[frame["state"] == "COMPLETE", "trial"].tolist()
selected = st.session_state.get(_TRIAL)
selected = selected if selected in complete else None

chart, side = st.columns([3, 1])
with chart:
    # Only the open tab is drawn: each chart of a 5,000-trial study is 5,000 points to send.
    tab_front, tab_memory = st.tabs(
        ["metric vs throughput", "metric vs peak memory"], key="front_view", on_change="rerun"
    )
    if tab_front.open is not False:
        figure = charts.front_figure(
            frame,
            metric_name=view.metric_name,
            x=axis,
            color_by=colour_by,
            selected=selected,
            speed=speed,
        )
        tab_front.plotly_chart(
            figure,
            key=_CHART,
            on_select=chart_selected,
            selection_mode="points",
        )
    if tab_memory.open:
        memory = charts.memory_figure(frame, metric_name=view.metric_name)
        tab_memory.plotly_chart(memory, key="front_memory")
with side:
    # As `tuner show` lists them; the Trials page filters every one. Text, not a table
    # widget: the page draws sooner without the grid's script (see benchmarks/app_load.py).
    st.markdown("**Failed and pruned**")
    st.text("\n".join(failure_lines(view)) or "none")

numbers = data.front(study)
st.subheader(f"The front: {len(numbers)} of {len(view.completed())} complete trials")
st.table(front_table(view, numbers), hide_index=True)
front_trials = [t for t in (view.trial(n) for n in numbers) if t is not None]
for line in flag_lines(view, baseline, front_trials):
    (st.warning if line.startswith("!") else st.info)(md(line))
for line in speed_lines(view, front_trials):
    st.info(md(line))

st.selectbox(
    "trial", complete, index=None, key=_TRIAL, placeholder="click a point or choose a trial"
)
if selected is not None:
    trial = view.trial(int(selected))
    if trial is not None:
        widgets.trial_detail(study, trial, key="front", downloads=False)
        if st.button("Pick this trial (downloads)", key="front_to_pick"):
            st.session_state["pick_kind"] = "trial"
            st.session_state["pick_trial"] = trial.number
            st.switch_page("views/pick.py", query_params={"study": view.name})
