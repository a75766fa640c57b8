"""Trials: every trial as a sortable table, filtered by state, role and knob text, and the
filtered table as CSV (the metric column named as the study names its metric).

The table shows the columns a reader scans first; more can be added. Every re-read (Refresh,
auto-refresh) sends the shown table to the browser again, so 5,000 rows of 40 columns would
make each refresh slow; the CSV always has every column.
"""

from __future__ import annotations

import streamlit as st

from app import data, widgets
from tuner.results import KNOBS

_NO_ROLE = "(no result)"
#: Columns shown until the user picks others (the metric's own column is added).
_SHOWN = (
    "trial",
    "state",
    "role",
    "baseline",
    "delta",
    "throughput",
    "speedup",
    "time_to_target_s",  # a study that scores speed as time to a target has it
    "optimizer",
    "lr",
    "schedule",
    "batch_size",
    "accumulation_steps",
    "precision",
    "compile_mode",
    "num_workers",
    "channels_last",
    "optimizer_impl",
    "peak_memory_mb",
    "failure_kind",
)

study = data.current()
view = study.view
widgets.header("Trials", study)
frame = data.frame(study)
if frame.empty:
    st.info("no trials yet")
    st.stop()

left, middle, right = st.columns(3)
states = sorted(frame["state"].unique())
chosen_states = left.multiselect("state", states, default=states, key="trials_state")
roles = sorted({r or _NO_ROLE for r in frame["role"]})
chosen_roles = middle.multiselect("role", roles, default=roles, key="trials_role")
text = right.text_input("knobs contain", key="trials_text", placeholder="e.g. adamw, bf16")

roles_in = {"" if r == _NO_ROLE else r for r in chosen_roles}
shown = frame[frame["state"].isin(chosen_states) & frame["role"].isin(roles_in)]
if text.strip():
    knobs = [k for k in KNOBS if k in shown]
    cells = shown[knobs].astype(str)
    hit = cells.apply(lambda column: column.str.contains(text.strip(), case=False, regex=False))
    shown = shown[hit.any(axis=1)]
metric_column = (
    view.metric_name if view.metric_name not in frame else f"{view.metric_name} (metric)"
)
shown = shown.rename(columns={"metric": metric_column})

columns = list(shown.columns)
default = [c for c in _SHOWN if c in columns] + [metric_column]
chosen = st.multiselect(
    "columns", columns, default=sorted(default, key=columns.index), key="trials_columns"
)
st.caption(f"{len(shown)} of {len(frame)} trials")
st.dataframe(shown[chosen or columns], hide_index=True)
st.download_button(
    "Download CSV",
    data=shown.to_csv(index=False),
    file_name=f"{widgets.safe_name(view.name)}-trials.csv",
    mime="text/csv",
    key="trials_csv",
    on_click="ignore",
)
