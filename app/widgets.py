"""What several pages show: the page header and one trial in full (figures against the
baseline, config, timings, learning curve, downloads).

The downloads are `tuner.handoff.export_text`, the function `tuner export` prints, so a
downloaded file is byte-identical to the command's output for the same trial and format.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import streamlit as st

from app import charts
from app.charts._values import number
from app.data import Loaded
from app.safe import md
from tuner.attrs import TrialAttr
from tuner.errors import UserError
from tuner.export import ExportFormat
from tuner.handoff import export_text
from tuner.relative import baseline_of
from tuner.report import (
    baseline_line,
    delta_cell,
    figure_cell,
    not_better_warning,
    speedup_cell,
)
from tuner.results import TrialRecord
from tuner.storage import masked

#: File suffix and MIME type of each export format.
_FILES = {
    ExportFormat.YAML: (".yaml", "application/x-yaml"),
    ExportFormat.JSON: (".json", "application/json"),
    ExportFormat.PYTHON: (".py", "text/x-python"),
}
#: The timings a trial stores, in the order a reader asks about them.
_TIMINGS = (
    ("compile (s)", TrialAttr.COMPILE_S, ".3g"),
    ("warm-up incl. compile (s)", TrialAttr.WARMUP_S, ".3g"),
    ("training loop (s)", TrialAttr.TRAIN_S, ".3g"),
    ("whole trial (s)", TrialAttr.TRIAL_S, ".3g"),
    ("optimizer steps", TrialAttr.OPTIMIZER_STEPS, ",.0f"),
    ("training samples", TrialAttr.SAMPLES, ",.0f"),
)


def header(title: str, study: Loaded | None = None) -> None:
    """The page title, and which study of which storage (password masked) it shows."""
    st.title(title)
    if study is not None:
        st.caption(md(f"study {study.name} · {masked(study.storage)}"))


def safe_name(study: str) -> str:
    """`study` fit for a file name: characters other than letters, digits, ``._-`` replaced."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", study).strip(".") or "study"


def file_name(study: str, trial: int, fmt: ExportFormat) -> str:
    """``<study>-trial<N>.yaml`` (.json, .py)."""
    return f"{safe_name(study)}-trial{trial}{_FILES[fmt][0]}"


def exports(study: Loaded, trial: TrialRecord) -> dict[ExportFormat, str] | None:
    """The trial's export in every format, or None (with the reason shown) when its stored
    config is not a valid one."""
    try:
        return {fmt: export_text(study.view, trial, fmt) for fmt in ExportFormat}
    except UserError as exc:
        st.error(md(str(exc)))
        return None


def trial_detail(study: Loaded, trial: TrialRecord, *, key: str, downloads: bool) -> None:
    """One trial: its figures against the baseline, warnings, config, timings and curves."""
    view = study.view
    baseline = baseline_of(view)
    versus = baseline.versus(trial)
    st.subheader(f"Trial {trial.number}{' (baseline)' if trial.is_baseline else ''}")
    cells = st.columns(4)
    cells[0].metric(md(view.metric_name), figure_cell(trial.metric, ".4f"))
    speed = view.speed
    title = "time to target (s)" if speed.to_target else "throughput (samples/s)"
    cells[1].metric(title, speed.cell(trial.throughput))
    cells[2].metric("speedup over the baseline", speedup_cell(versus))
    cells[3].metric("Δ metric (+ is better)", delta_cell(versus))
    warning = not_better_warning(view, baseline, trial)
    if warning:
        st.warning(md(warning))
    if baseline.trial is None:
        st.info(md(baseline_line(baseline, view.metric_name)))
    texts = exports(study, trial)
    left, right = st.columns(2)
    with left:
        st.markdown("**Config** (what `tuner export` writes)")
        if texts is not None:
            st.code(texts[ExportFormat.YAML], language="yaml")
        else:  # what is stored instead, as text
            st.code(repr(trial.attrs.get(TrialAttr.CONFIG)), language=None)
    with right:
        st.markdown("**Timings**")
        st.dataframe(timings(trial), hide_index=True)
        label = f"trial {trial.number}"
        windows = charts.windows_frame({label: trial.attrs.get(TrialAttr.THROUGHPUT_WINDOWS)})
        if not windows.empty:
            st.plotly_chart(charts.windows_figure(windows), key=f"{key}-windows")
        curve = charts.curves_frame({label: trial.attrs.get(TrialAttr.CURVE)})
        if not curve.empty:
            figure = charts.curve_figure(curve, metric_name=view.metric_name)
            st.plotly_chart(figure, key=f"{key}-curve")
    if downloads and texts is not None:
        buttons = st.columns(len(texts))
        for column, (fmt, text) in zip(buttons, texts.items(), strict=True):
            column.download_button(
                f"Download {fmt.value.upper() if fmt is not ExportFormat.PYTHON else 'Python'}",
                data=text,
                file_name=file_name(view.name, trial.number, fmt),
                mime=_FILES[fmt][1],
                key=f"{key}-download-{fmt.value}",
                on_click="ignore",
            )


def timings(trial: TrialRecord) -> pd.DataFrame:
    """Where the trial's time and memory went, as text cells ("?" for an odd stored value)."""
    attrs = trial.attrs
    rows = [(name, _stored(attrs, attr, spec)) for name, attr, spec in _TIMINGS]
    peak = number(attrs.get(TrialAttr.PEAK_MEMORY_BYTES))
    peak_mb = "?" if peak is None else format(peak / 2**20, ",.0f")
    kind = attrs.get(TrialAttr.MEMORY_KIND)
    rows.append((f"peak memory (MB{', ' + str(kind) if kind else ''})", peak_mb))
    return pd.DataFrame(rows, columns=["what", "value"])


def _stored(attrs: dict[str, Any], attr: str, spec: str) -> str:
    return figure_cell(attrs[attr], spec) if attr in attrs else "—"
