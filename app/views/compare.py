"""Compare: two or more trials side by side, the knobs and figures that differ highlighted,
their learning curves and throughput windows overlaid."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app import charts, data, widgets
from app.charts._values import label, versus_of
from tuner.attrs import TrialAttr
from tuner.report import delta_cell, figure_cell, speedup_cell
from tuner.results import KNOBS
from tuner.targets import SpeedObjective

CURVE_AXES: list[charts.CurveX] = ["step", "samples", "train_s"]
_HIGHLIGHT = "background-color: rgba(255, 193, 7, 0.25)"


def side_by_side(
    frame: pd.DataFrame,
    numbers: list[int],
    metric_name: str,
    speed: SpeedObjective | None = None,
) -> pd.DataFrame:
    """Rows: figures then knobs; one text column per trial; ``differs`` marks rows whose
    values are not all the same. Speed reads as the study scores it (`StudyView.speed`)."""
    speed = speed or SpeedObjective()
    rows = frame.set_index("trial").loc[numbers]
    table: dict[str, list[str]] = {}
    for number_, row in rows.iterrows():
        versus = versus_of(row)
        cells: dict[str, Any] = {
            "state": row["state"],
            "role": row["role"] or "—",
            metric_name: figure_cell(row["metric"], ".4f"),
            "Δ metric": delta_cell(versus),
            speed.header: speed.cell(row["throughput"]),
            "speedup": speedup_cell(versus),
            "peak memory (MB)": figure_cell(row["peak_memory_mb"], ",.0f"),
            "compile (s)": figure_cell(row["compile_s"], ".3g"),
            "trial (s)": figure_cell(row["trial_s"], ".3g"),
            **{k: label(row[k]) for k in KNOBS if k in row.index},
        }
        table[f"trial {number_}"] = [str(v) for v in cells.values()]
        index = list(cells)
    out = pd.DataFrame(table, index=index)
    out["differs"] = out.nunique(axis=1) > 1
    return out[~(out.drop(columns="differs") == "n/a").all(axis=1)]


def highlight(row: pd.Series) -> list[str]:
    return [_HIGHLIGHT if row["differs"] else ""] * len(row)


study = data.current()
view = study.view
widgets.header("Compare", study)
data.require_complete(study)
frame = data.frame(study)
complete = frame.loc[frame["state"] == "COMPLETE", "trial"].tolist()
# The baseline and the best-metric trial: "what did tuning buy?" at a glance.
defaults = [*frame.loc[frame["baseline"], "trial"], *data.front(study)[:1]]
chosen = st.multiselect(
    "trials",
    complete,
    default=[n for n in dict.fromkeys(defaults) if n in complete],
    key="compare_trials",
    placeholder="choose two or more complete trials",
)
if len(chosen) < 2:
    st.info("Choose two or more trials to compare.")
    st.stop()
numbers = [int(n) for n in chosen]
table = side_by_side(frame, numbers, view.metric_name, view.speed)
st.dataframe(table.style.apply(highlight, axis=1), height="content")

records = {f"trial {n}": view.trial(n) for n in numbers}
curves = charts.curves_frame(
    {name: t.attrs.get(TrialAttr.CURVE) for name, t in records.items() if t is not None}
)
st.subheader("Learning curves")
if curves.empty:
    st.text("no stored learning curves")
else:
    x: charts.CurveX = st.radio("x axis", CURVE_AXES, horizontal=True, key="compare_x") or "step"
    figure = charts.curve_figure(curves, metric_name=view.metric_name, x=x)
    st.plotly_chart(figure, key="compare_curves")
windows = charts.windows_frame(
    {name: t.attrs.get(TrialAttr.THROUGHPUT_WINDOWS) for name, t in records.items() if t}
)
st.subheader("Throughput windows")
if windows.empty:
    st.text("no stored throughput windows")
else:
    st.plotly_chart(charts.windows_figure(windows), key="compare_windows")
