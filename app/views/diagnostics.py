"""Diagnostics: is the search still improving (hypervolume), which knobs matter for each
objective (importances, computed on request: fANOVA on thousands of trials takes a while),
and how knobs and objectives go together (parallel coordinates)."""

from __future__ import annotations

import streamlit as st

from app import charts, data, widgets
from app.charts._values import label
from app.safe import md
from tuner.diagnostics import Evaluator
from tuner.results import KNOBS

_REQUESTED = "importance_requested"
#: The knobs parallel coordinates start with: the ones that move throughput and the metric
#: most in practice (all of them at once is unreadable).
_FIRST_KNOBS = (
    "optimizer",
    "lr",
    "schedule",
    "batch_size",
    "accumulation_steps",
    "grad_clip_norm",
    "precision",
    "compile_mode",
    "num_workers",
    "channels_last",
    "optimizer_impl",
)

study = data.current()
view = study.view
widgets.header("Diagnostics", study)
data.require_complete(study)
frame = data.frame(study)

st.subheader("Hypervolume over trials")
st.plotly_chart(charts.hypervolume_figure(data.hypervolume(study)), key="diag_hypervolume")

st.subheader("Parameter importance")
evaluator = Evaluator(
    st.selectbox("evaluator", [e.value for e in Evaluator], key="importance_evaluator")
)
if st.button("Compute importances", key="importance_compute"):
    st.session_state[_REQUESTED] = view.name
if st.session_state.get(_REQUESTED) == view.name:
    try:
        with st.spinner(f"{evaluator.value} importances of {len(view.completed())} trials..."):
            importances = {
                view.metric_name: data.importances(study, 0, evaluator),
                "throughput": data.importances(study, 1, evaluator),
            }
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        st.warning(md(f"importances could not be computed: {type(exc).__name__}: {exc}"))
    else:
        if any(importances.values()):
            st.plotly_chart(charts.importance_figure(importances), key="diag_importance")
        else:
            st.info("importances need two or more complete trials whose knobs vary")

st.subheader("Parallel coordinates")
varying = [k for k in KNOBS if k in frame and frame[k].map(label).nunique() > 1]
shown = st.multiselect(
    "knobs",
    varying,
    default=[k for k in _FIRST_KNOBS if k in varying],
    key="diag_knobs",
    placeholder="choose knobs",
)
figure = charts.parallel_figure(frame, metric_name=view.metric_name, knobs=shown, speed=view.speed)
st.plotly_chart(figure, key="diag_parallel")
