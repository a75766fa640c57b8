"""Overview: what the study is (spec, space, device), what was dropped as unable to run here
and why, how its trials ended, and what every relative figure is relative to (the baseline)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app import data, widgets
from app.safe import md
from tuner.attrs import StudyAttr, TrialAttr
from tuner.relative import baseline_of
from tuner.report import baseline_line, device_line


def stored(value: Any) -> None:
    """A stored dict or list as a JSON tree; anything else (an odd stored type) as text."""
    if isinstance(value, dict | list):
        st.json(value, expanded=1)
    elif value is None:
        st.text("not stored")
    else:
        st.code(repr(value), language=None)


def dropped_rows(dropped: Any) -> pd.DataFrame:
    """The ``dropped`` attribute ([{knob, value, reason}]) as a table of text cells."""
    entries = dropped if isinstance(dropped, list) else []
    rows = [
        {k: str(d.get(k, "?")) for k in ("knob", "value", "reason")}
        if isinstance(d, dict)
        else {"knob": "?", "value": "?", "reason": str(d)}
        for d in entries
    ]
    return pd.DataFrame(rows, columns=["knob", "value", "reason"])


study = data.current()
view = study.view
attrs = view.attrs
widgets.header("Overview", study)
st.text(
    f"objective: {attrs.get(StudyAttr.OBJECTIVE, '?')}\n"
    f"metric: {view.metric_name} ({view.direction.value}), differences up to {view.noise:g} "
    "are seed noise\n"
    f"device: {device_line(attrs.get(StudyAttr.DEVICE))}\n"
    f"tuner version: {attrs.get(StudyAttr.TUNER_VERSION, '?')}"
)
st.text(baseline_line(baseline_of(view), view.metric_name))

st.subheader("Trials by state")
counts = view.state_counts()
if counts:
    st.dataframe(pd.DataFrame(sorted(counts.items()), columns=["state", "trials"]), hide_index=True)
else:
    st.info("no trials yet")
infeasible = [t.number for t in view.infeasible()]
if infeasible:
    st.text(f"over the memory budget (infeasible): trials {', '.join(map(str, infeasible))}")

failures = view.failures()
if failures:
    st.subheader("Failed and pruned, by kind")
    for kind, trials in sorted(failures.items(), key=lambda item: str(item[0])):
        with st.expander(md(f"{kind} ({len(trials)})")):
            reasons = [
                (t.number, t.state, str(t.attrs.get(TrialAttr.FAILURE_REASON, ""))) for t in trials
            ]
            st.dataframe(
                pd.DataFrame(reasons, columns=["trial", "state", "reason"]), hide_index=True
            )

st.subheader("Dropped: this device or workload cannot run them")
dropped = dropped_rows(attrs.get(StudyAttr.DROPPED))
if dropped.empty:
    st.text("nothing: every knob value of the space can run on this device")
else:
    st.dataframe(dropped, hide_index=True)

left, right = st.columns(2)
with left:
    st.subheader("Spec")
    stored(attrs.get(StudyAttr.SPEC))
with right:
    st.subheader("Search space (after dropping what cannot run)")
    stored(attrs.get(StudyAttr.SPACE))
