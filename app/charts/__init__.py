"""The app's plotly figures: pure functions of `tuner.tables.trials_frame` frames (and of
stored trial attributes), with no Streamlit, so each is tested without a browser.

Stored strings (knob values, metric names, labels) reach plotly escaped, since plotly reads
a subset of HTML (``<a href>``, ``<b>``) in labels and hover text.
"""

from __future__ import annotations

from app.charts.front import (
    WEBGL_ABOVE,
    WITHIN_NAME,
    WORSE_NAME,
    XAxis,
    front_figure,
    hover_texts,
    memory_figure,
    selected_trial,
    with_hover,
)
from app.charts.study import (
    hypervolume_figure,
    hypervolume_frame,
    importance_figure,
    parallel_figure,
)
from app.charts.trial import CurveX, curve_figure, curves_frame, windows_figure, windows_frame

__all__ = [
    "WEBGL_ABOVE",
    "WITHIN_NAME",
    "WORSE_NAME",
    "CurveX",
    "XAxis",
    "curve_figure",
    "curves_frame",
    "front_figure",
    "hover_texts",
    "hypervolume_figure",
    "hypervolume_frame",
    "importance_figure",
    "memory_figure",
    "parallel_figure",
    "selected_trial",
    "windows_figure",
    "windows_frame",
    "with_hover",
]
