"""The study's scatters: the Pareto front (metric against throughput or speedup) and metric
against peak memory.

Points carry their trial number in ``customdata`` so a click on a point selects the trial.
More than `WEBGL_ABOVE` points draw with WebGL (`go.Scattergl`): 5,000 SVG markers take
seconds to draw and to hover, WebGL milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from app.charts._values import continuous, label, number, present, scaled, sort_key, versus_of
from app.safe import html
from tuner.report import delta_cell, knob_cells, speedup_cell
from tuner.results import KNOBS
from tuner.targets import SpeedObjective

#: Above this many points a scatter draws with WebGL.
WEBGL_ABOVE = 1000

FRONT = "#1f77b4"
DOMINATED = "#b4b4b4"
INFEASIBLE = "#d62728"
NOT_BETTER = "#ff7f0e"
WITHIN_NOISE = "#9467bd"
#: Legend names of the two verdicts on front points that do not beat the baseline.
WORSE_NAME = "! worse than the baseline"
WITHIN_NAME = "≈ within the noise of the baseline"
BASELINE = "#2ca02c"
SELECTED = "#000000"

XAxis = Literal["throughput", "speedup"]
_X_TITLES = {"throughput": "throughput (samples/s)", "speedup": "speedup over the baseline (×)"}


def front_figure(
    frame: pd.DataFrame,
    *,
    metric_name: str,
    x: XAxis = "throughput",
    color_by: str | None = None,
    selected: int | None = None,
    speed: SpeedObjective | None = None,
) -> Any:
    """Metric against throughput (or speedup) of every complete trial. `speed` is the
    study's choice of objective 1 (`StudyView.speed`), which titles the throughput axis.

    The Pareto front is drawn in colour and joined by a line in throughput order, dominated
    trials in grey (or faded in their knob's colour with `color_by`), trials over the memory
    budget as x marks, the baseline as a labelled star, and front trials that do not beat the
    baseline by more than the noise ringed: orange when worse than it by more than the noise,
    purple when within the noise.
    """
    done = frame[frame["state"] == "COMPLETE"]
    # Points are WebGL for big studies, and WebGL draws above every SVG trace: the markers
    # that must stay visible (front, baseline, flags, selection) use the same trace type as
    # the cloud, drawn after it. The front line stays SVG, with small markers, along the
    # cloud's edge: a page (or a browser test) sees the chart drawn once its points exist.
    scatter = go.Scattergl if len(done) > WEBGL_ABOVE else go.Scatter
    fig = go.Figure()
    front = done[done["role"] == "front"].sort_values("throughput")
    dominated = done[done["role"] == "dominated"]
    fig.add_trace(
        go.Scatter(
            x=front[x],
            y=front["metric"],
            mode="lines+markers",
            name="Pareto front",
            line={"color": FRONT, "width": 1.5},
            marker={"color": FRONT, "size": 4},
            hoverinfo="skip",
        )
    )
    if color_by is None:
        fig.add_trace(_points(scatter, dominated, x, metric_name, "dominated", DOMINATED))
        fig.add_trace(_points(scatter, front, x, metric_name, "front", FRONT, size=10))
    else:
        for trace in _coloured(scatter, dominated, front, x, metric_name, color_by):
            fig.add_trace(trace)
    infeasible = done[done["role"] == "infeasible"]
    fig.add_trace(
        _points(
            scatter, infeasible, x, metric_name, "over the memory budget", INFEASIBLE, symbol="x"
        )
    )
    worse = front["worse"].astype(bool)
    for part, name, colour in (
        (front[worse], WORSE_NAME, NOT_BETTER),
        (front[front["not_better"].astype(bool) & ~worse], WITHIN_NAME, WITHIN_NOISE),
    ):
        fig.add_trace(
            _points(
                scatter,
                part,
                x,
                metric_name,
                name,
                colour,
                symbol="circle-open",
                size=18,
                line_width=3,
            )
        )
    baseline = done[done["baseline"].astype(bool)]
    star = _points(scatter, baseline, x, metric_name, "baseline", BASELINE, symbol="star", size=20)
    star.update(mode="markers+text", text=["baseline"] * len(baseline), textposition="top center")
    fig.add_trace(star)
    if selected is not None:
        chosen = done[done["trial"] == selected]
        fig.add_trace(
            _points(
                scatter,
                chosen,
                x,
                metric_name,
                f"trial {selected}",
                SELECTED,
                symbol="circle-open",
                size=24,
                line_width=2,
            )
        )
    _zoom(fig, done, front)
    fig.update_layout(
        xaxis_title=(speed or SpeedObjective()).axis_title if x == "throughput" else _X_TITLES[x],
        yaxis_title=html(metric_name),
        legend_title_text=html(color_by or ""),
        margin={"t": 30},
        clickmode="event+select",
        dragmode="pan",
    )
    return fig


def _zoom(fig: Any, done: pd.DataFrame, front: pd.DataFrame) -> None:
    """Start on where the trade-off is: the middle 90% of metrics, the whole front and the
    baseline. A few chance-level runs (accuracy 0.1 among 0.95s) would otherwise squash the
    front into a flat line. A note says how many trials are outside; a double-click on the
    chart shows them all."""
    metrics = done["metric"].dropna()
    if len(metrics) < 20:
        return
    baseline = done.loc[done["baseline"].astype(bool), "metric"]
    keep = pd.concat([metrics.quantile([0.05, 0.95]), front["metric"], baseline])
    low, high = float(keep.min()), float(keep.max())
    pad = 0.05 * (high - low) or 0.01 * abs(high) or 0.01
    low, high = low - pad, high + pad
    hidden = int(((metrics < low) | (metrics > high)).sum())  # outside what the view shows
    if not hidden:
        return
    fig.update_yaxes(range=[low, high])
    fig.add_annotation(
        text=f"{hidden} trial{'s' if hidden != 1 else ''} outside this view: double-click to "
        "show all",
        xref="paper",
        yref="paper",
        x=0.0,
        y=1.0,
        xanchor="left",
        yanchor="bottom",
        showarrow=False,
        font={"size": 11, "color": "#777777"},
    )


def memory_figure(frame: pd.DataFrame, *, metric_name: str) -> Any:
    """Metric against peak memory of every complete trial: what a memory budget costs."""
    done = frame[(frame["state"] == "COMPLETE") & frame["peak_memory_mb"].notna()]
    scatter = go.Scattergl if len(done) > WEBGL_ABOVE else go.Scatter
    fig = go.Figure()
    for role, colour, symbol in (
        ("dominated", DOMINATED, "circle"),
        ("front", FRONT, "circle"),
        ("infeasible", INFEASIBLE, "x"),
    ):
        part = done[done["role"] == role]
        fig.add_trace(_points(scatter, part, "peak_memory_mb", metric_name, role, colour, symbol))
    fig.update_layout(
        xaxis_title="peak memory (MB)", yaxis_title=html(metric_name), margin={"t": 30}
    )
    return fig


def _points(
    scatter: Any,
    part: pd.DataFrame,
    x: str,
    metric_name: str,
    name: str,
    colour: Any,
    symbol: str = "circle",
    *,
    size: int = 8,
    line_width: float = 0,
    opacity: float = 1.0,
) -> Any:
    marker = {"color": colour, "symbol": symbol, "size": size, "opacity": opacity}
    if line_width:
        marker["line"] = {"color": colour, "width": line_width}
    return scatter(
        x=part[x],
        y=part["metric"],
        mode="markers",
        name=html(name),
        marker=marker,
        customdata=part[["trial"]].to_numpy(dtype="int64"),
        hovertext=part["hover"] if "hover" in part else hover_texts(part, metric_name),
        hoverinfo="text",
    )


def _coloured(
    scatter: Any,
    dominated: pd.DataFrame,
    front: pd.DataFrame,
    x: str,
    metric_name: str,
    knob: str,
) -> list[Any]:
    """Dominated (faded) and front trials coloured by one knob's value; a continuous scale
    for a numeric knob of many values, one colour per value otherwise."""
    both = pd.concat([dominated, front])
    values = both[knob] if knob in both else pd.Series(None, index=both.index, dtype=object)
    values = values.rename(knob)
    if continuous(values):
        held = present(values)
        scale, title = scaled(values[held])
        common = {"colorscale": "Viridis", "cmin": scale.min(), "cmax": scale.max()}
        d, f = dominated[held[dominated.index]], front[held[front.index]]
        faded = _points(scatter, d, x, metric_name, "dominated", scale[d.index], opacity=0.35)
        sharp = _points(
            scatter, f, x, metric_name, "front", scale[f.index], size=11, line_width=1.5
        )
        faded.marker.update(common)
        sharp.marker.update(common, colorbar={"title": {"text": html(title)}}, showscale=True)
        sharp.marker.line.color = SELECTED
        traces = [faded, sharp]
        missing = both[~held]
        if not missing.empty:
            traces.append(_points(scatter, missing, x, metric_name, "n/a", DOMINATED))
        return traces
    labels = values.map(label)
    traces = []
    for i, value in enumerate(sorted(labels.unique(), key=sort_key)):
        colour = qualitative.Plotly[i % len(qualitative.Plotly)]
        mine = labels == value
        part_d, part_f = dominated[mine[dominated.index]], front[mine[front.index]]
        faded = _points(scatter, part_d, x, metric_name, value, colour, opacity=0.35)
        sharp = _points(scatter, part_f, x, metric_name, value, colour, size=11, line_width=1.5)
        sharp.marker.line.color = SELECTED
        faded.update(legendgroup=value, showlegend=part_f.empty)
        sharp.update(legendgroup=value)
        traces += [faded, sharp]
    return traces


def with_hover(
    frame: pd.DataFrame, metric_name: str, speed: SpeedObjective | None = None
) -> pd.DataFrame:
    """`frame` with each trial's hover text in a ``hover`` column. Building 5,000 hover texts
    takes a third of a second, so the app builds them once per study state (and caches
    this frame) instead of on every rerun."""
    return frame.assign(hover=hover_texts(frame, metric_name, speed))


def hover_texts(
    part: pd.DataFrame, metric_name: str, speed: SpeedObjective | None = None
) -> list[str]:
    """Each trial's hover: number, metric and Δ, speed (as the study scores it, `speed`) and
    speedup, and its key knobs in `tuner show`'s cells. Kept short: 5,000 hovers are sent
    with every draw of the chart."""
    speed = speed or SpeedObjective()
    texts = []
    for row in part.to_dict("records"):
        versus = versus_of(row)
        role = f" ({row['role']})" if row.get("role") else ""
        knobs = {k: row[k] for k in KNOBS if k in row and label(row[k]) != "n/a"}
        texts.append(
            f"<b>trial {row['trial']}</b>{' (baseline)' if row.get('baseline') else ''}{role}<br>"
            f"{html(metric_name)} {label(row['metric'])}  Δ {delta_cell(versus)}<br>"
            f"{speed.with_unit(number(row.get('throughput')))}  "
            f"speedup {speedup_cell(versus)}<br>{html(_knob_line(knobs))}"
        )
    return texts


def selected_trial(points: Sequence[Mapping[str, Any]]) -> int | None:
    """The trial number of the first selected point of a `front_figure` (None for none).

    A point's ``customdata`` is its row of the figure's customdata: ``[12]`` from a list, or
    ``{"0": 12}`` from the typed array plotly sends for a numpy column.
    """
    for point in points:
        data = point.get("customdata")
        if isinstance(data, Mapping):
            data = next(iter(data.values()), None)
        elif isinstance(data, list | tuple):
            data = data[0] if data else None
        if isinstance(data, int | float) and not isinstance(data, bool):
            return int(data)
    return None


def _knob_line(knobs: dict[str, Any]) -> str:
    """The knob cells of a hover, without the placeholder of an empty cell."""
    return " · ".join(cell for cell in knob_cells(knobs).values() if cell != "-")
