"""Whole-study diagnostics: hypervolume history, parameter importances, parallel coordinates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from app.charts._values import continuous, label, present, scaled, sort_key
from app.safe import html
from tuner.diagnostics import HypervolumePoint
from tuner.targets import SpeedObjective


def hypervolume_frame(history: Sequence[HypervolumePoint]) -> pd.DataFrame:
    """`tuner.diagnostics.hypervolume_history` as trial, hypervolume."""
    return pd.DataFrame(
        [(p.trial, p.hypervolume) for p in history], columns=["trial", "hypervolume"]
    )


def hypervolume_figure(frame: pd.DataFrame) -> Any:
    """The front's normalised hypervolume after each complete trial: flat for long means the
    search has stopped finding better trade-offs."""
    fig = go.Figure(
        go.Scatter(
            x=frame["trial"],
            y=frame["hypervolume"],
            mode="lines",
            line={"shape": "hv"},
            hovertemplate="after trial %{x}: %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis_title="trial",
        yaxis_title="hypervolume (1 = best of each objective)",
        yaxis_range=[0, 1.02],
        margin={"t": 30},
    )
    return fig


def importance_figure(importances: Mapping[str, Mapping[str, float]]) -> Any:
    """Horizontal bars of each knob's importance, one colour per objective."""
    fig = go.Figure()
    knobs = sorted({k for values in importances.values() for k in values})
    for objective, values in importances.items():
        fig.add_trace(
            go.Bar(
                y=[html(k) for k in knobs],
                x=[values.get(k, 0.0) for k in knobs],
                orientation="h",
                name=html(objective),
            )
        )
    fig.update_layout(
        barmode="group",
        xaxis_title="importance (sums to 1 per objective)",
        margin={"t": 30},
        height=160 + 28 * len(knobs) * max(len(importances), 1),
    )
    return fig


def parallel_figure(
    frame: pd.DataFrame,
    *,
    metric_name: str,
    knobs: Sequence[str],
    speed: SpeedObjective | None = None,
) -> Any:
    """Parallel coordinates of complete trials over `knobs` and both objectives (objective 1
    as the study scores it: `speed`), coloured by the metric. Categorical knobs get one tick
    per value; a knob that does not apply to a trial (momentum under Adam) sits on an "n/a"
    tick below the axis' values."""
    done = frame[frame["state"] == "COMPLETE"]
    dimensions = []
    for knob in knobs:
        if knob in done and done[knob].map(label).nunique() > 1:
            dimensions.append(_dimension(done[knob].rename(knob)))
    dimensions += [
        {"label": html(metric_name), "values": done["metric"]},
        {"label": (speed or SpeedObjective()).rate_label, "values": done["throughput"]},
    ]
    line = {
        "color": done["metric"],
        "colorscale": "Viridis",
        "showscale": True,
        "colorbar": {"title": {"text": html(metric_name)}},
    }
    fig = go.Figure(go.Parcoords(line=line, dimensions=dimensions))
    fig.update_layout(margin={"t": 60, "l": 60, "r": 60})
    return fig


def _dimension(values: pd.Series) -> dict[str, Any]:
    held = present(values)
    if continuous(values):
        numeric, title = scaled(values[held])
        low, high = float(numeric.min()), float(numeric.max())
        if held.all():
            return {"label": html(title), "values": numeric}
        missing = low - 0.1 * ((high - low) or 1.0)  # an "n/a" position below the values
        positions = numeric.reindex(values.index).fillna(missing)
        ticks = [missing, *(low + (high - low) * i / 4 for i in range(5))]
        text = ["n/a", *(f"{t:.3g}" for t in ticks[1:])]
        return {"label": html(title), "values": positions, "tickvals": ticks, "ticktext": text}
    labels = values.map(label)
    order = sorted(labels.unique(), key=sort_key)
    codes = {v: i for i, v in enumerate(order)}
    return {
        "label": html(values.name),
        "values": labels.map(codes),
        "tickvals": list(codes.values()),
        "ticktext": [html(v) for v in codes],
    }
