"""One trial's (or a few trials') measurements: learning curves and throughput windows.

The stored attributes are read defensively: a curve point or a window that is not a number
is left out rather than failing the page, since a study may come from an older tuner or be
edited by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd
import plotly.graph_objects as go

from app.charts._values import number
from app.safe import html

CurveX = Literal["step", "samples", "train_s"]
_CURVE_COLUMNS = ("step", "samples", "train_s", "metric")
_CURVE_TITLES = {"step": "optimizer step", "samples": "training samples", "train_s": "seconds"}


def curves_frame(curves: Mapping[str, Any]) -> pd.DataFrame:
    """Stored ``curve`` attributes (lists of {step, samples, train_s, metric}) by label, as one
    long frame: label, step, samples, train_s, metric. Points without a numeric step and
    metric are left out."""
    rows = []
    for name, curve in curves.items():
        for point in curve if isinstance(curve, list) else []:
            if not isinstance(point, dict):
                continue
            values = {k: number(point.get(k)) for k in _CURVE_COLUMNS}
            if values["step"] is not None and values["metric"] is not None:
                rows.append({"label": name, **values})
    return pd.DataFrame(rows, columns=["label", *_CURVE_COLUMNS])


def curve_figure(frame: pd.DataFrame, *, metric_name: str, x: CurveX = "step") -> Any:
    """Validation metric after each evaluation, one line per label (overlaid to compare)."""
    fig = go.Figure()
    for name, part in frame.groupby("label", sort=False):
        fig.add_trace(
            go.Scatter(
                x=part[x],
                y=part["metric"],
                mode="lines+markers",
                name=html(name),
                hovertemplate=f"{html(name)}<br>%{{x:.4g}}: %{{y:.4g}}<extra></extra>",
            )
        )
    fig.update_layout(
        xaxis_title=_CURVE_TITLES[x],
        yaxis_title=html(metric_name),
        margin={"t": 30},
        showlegend=frame["label"].nunique() > 1,
    )
    return fig


def windows_frame(windows: Mapping[str, Any]) -> pd.DataFrame:
    """Stored ``throughput_windows`` by label as label, window (1-based), samples_per_s."""
    rows = [
        {"label": name, "window": i, "samples_per_s": value}
        for name, stored in windows.items()
        for i, value in enumerate(
            (number(v) for v in (stored if isinstance(stored, list) else [])), start=1
        )
        if value is not None
    ]
    return pd.DataFrame(rows, columns=["label", "window", "samples_per_s"])


def windows_figure(frame: pd.DataFrame) -> Any:
    """One dot per timed window, a row per label, the median marked: how noisy the figure
    that ranks the trial is (the stored throughput is the median of these windows)."""
    fig = go.Figure()
    for name, part in frame.groupby("label", sort=False):
        fig.add_trace(
            go.Scatter(
                x=part["samples_per_s"],
                y=[html(name)] * len(part),
                mode="markers",
                name=html(name),
                marker={"size": 10, "opacity": 0.7},
                customdata=part["window"],
                hovertemplate="window %{customdata}: %{x:,.0f} samples/s<extra></extra>",
            )
        )
        median = float(part["samples_per_s"].median())
        fig.add_trace(
            go.Scatter(
                x=[median],
                y=[html(name)],
                mode="markers",
                showlegend=False,
                marker={
                    "symbol": "line-ns-open",
                    "size": 26,
                    "color": "black",
                    "line": {"width": 2},
                },
                hovertemplate=f"median: {median:,.0f} samples/s<extra></extra>",
            )
        )
    fig.update_layout(
        xaxis_title="samples/s per timed window",
        showlegend=False,
        margin={"t": 30},
        height=120 + 40 * frame["label"].nunique(),
    )
    return fig
