"""app.charts and app.safe: the figures as data, without Streamlit or a browser."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pandas as pd
import pytest

from app import charts
from app.safe import md
from tests.synthetic import write_study
from tuner.diagnostics import hypervolume_history
from tuner.results import StudyView, read_study
from tuner.tables import trials_frame


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> StudyView:
    url = f"sqlite:///{tmp_path_factory.mktemp('charts') / 'charts.db'}"
    write_study(url, "digits", 120, seed=2)
    return read_study("digits", url)


@pytest.fixture(scope="module")
def frame(view: StudyView) -> pd.DataFrame:
    return trials_frame(view)


def by_name(figure: object) -> dict[str, object]:
    return {trace.name: trace for trace in figure.data}  # type: ignore[attr-defined]


def test_front_figure_places_every_complete_trial_once(
    view: StudyView, frame: pd.DataFrame
) -> None:
    traces = by_name(charts.front_figure(frame, metric_name="accuracy"))
    drawn = [
        int(n)
        for name in ("front", "dominated", "over the memory budget")
        for (n,) in traces[name].customdata  # type: ignore[attr-defined]
    ]
    assert sorted(drawn) == sorted(t.number for t in view.trials if t.state == "COMPLETE")
    assert traces["front"].type == "scatter"  # type: ignore[attr-defined]


def test_many_points_draw_with_webgl(frame: pd.DataFrame) -> None:
    complete = int((frame["state"] == "COMPLETE").sum())
    copies = -(-(charts.WEBGL_ABOVE + 1) // complete)
    big = pd.concat([frame] * copies, ignore_index=True)
    big["trial"] = range(len(big))
    figure = charts.front_figure(big, metric_name="accuracy", selected=3)
    lines = [t for t in figure.data if t.type == "scatter"]
    assert [t.name for t in lines] == ["Pareto front"], "points are WebGL, the front line SVG"
    assert len([t for t in figure.data if t.type == "scattergl"]) == len(figure.data) - 1


def test_colour_by_a_categorical_or_a_numeric_knob(frame: pd.DataFrame) -> None:
    traces = by_name(charts.front_figure(frame, metric_name="accuracy", color_by="batch_size"))
    sizes = [name for name in traces if name.isdigit()]
    assert sizes == sorted(sizes, key=int), "batch sizes in numeric order"
    lr = charts.front_figure(frame, metric_name="accuracy", color_by="lr")
    bar = by_name(lr)["front"].marker.colorbar.title.text  # type: ignore[attr-defined]
    assert bar == "log10(lr)"
    momentum = by_name(charts.front_figure(frame, metric_name="accuracy", color_by="momentum"))
    assert "n/a" in momentum, "trials without momentum (Adam) get their own grey trace"


def test_outliers_are_outside_the_first_view_and_said_so(frame: pd.DataFrame) -> None:
    figure = charts.front_figure(frame, metric_name="accuracy")
    low, high = figure.layout.yaxis.range
    metrics = frame.loc[frame["state"] == "COMPLETE", "metric"]
    hidden = int(((metrics < low) | (metrics > high)).sum())
    assert hidden > 0, "the synthetic study has chance-level trials"
    assert figure.layout.annotations[0].text.startswith(f"{hidden} trial")
    front = frame.loc[frame["role"] == "front", "metric"]
    assert low < front.min() and front.max() < high


def test_hover_escapes_stored_strings(frame: pd.DataFrame) -> None:
    odd = frame.head(3).copy()
    odd["optimizer"] = '<a href="javascript:x">adam</a>'
    hover = charts.hover_texts(odd, "<b>acc</b>")[0]
    assert "<a href" not in hover and "&lt;a href=&quot;javascript:x&quot;&gt;" in hover
    assert "&lt;b&gt;acc&lt;/b&gt;" in hover
    assert hover.startswith(f"<b>trial {odd['trial'].iloc[0]}</b>")


@pytest.mark.parametrize(
    ("customdata", "expected"),
    [([12], 12), ({"0": 7}, 7), (5, 5), (None, None), ([], None), (True, None)],
)
def test_selected_trial_reads_every_customdata_shape(customdata: object, expected: int) -> None:
    assert charts.selected_trial([{"x": 1.0, "customdata": customdata}]) == expected


def test_selected_trial_of_no_points() -> None:
    assert charts.selected_trial([]) is None


def test_memory_figure_by_role(frame: pd.DataFrame) -> None:
    traces = by_name(charts.memory_figure(frame, metric_name="accuracy"))
    assert set(traces) == {"dominated", "front", "infeasible"}
    assert traces["infeasible"].marker.symbol == "x"  # type: ignore[attr-defined]


def test_curves_and_windows_skip_what_is_not_a_number() -> None:
    curves = charts.curves_frame(
        {
            "a": [{"step": 1, "samples": 32, "train_s": 0.1, "metric": 0.5}, "junk", {"step": 2}],
            "b": "not a list",
            "c": [{"step": 3, "metric": float("nan")}, {"step": 4, "metric": 0.9}],
        }
    )
    assert list(zip(curves["label"], curves["step"], strict=True)) == [("a", 1.0), ("c", 4.0)]
    figure = charts.curve_figure(curves, metric_name="accuracy", x="samples")
    assert [t.name for t in figure.data] == ["a", "c"]
    windows = charts.windows_frame({"t": [100.0, "x", None, 120.0, True], "u": 5})
    assert list(windows["samples_per_s"]) == [100.0, 120.0]
    assert list(windows["window"]) == [1, 4]
    strip = charts.windows_figure(windows)
    assert strip.data[1].x == (110.0,), "the median is marked"


def test_hypervolume_and_importance(view: StudyView) -> None:
    history = charts.hypervolume_frame(hypervolume_history(view))
    assert len(history) == len(view.completed())
    figure = charts.hypervolume_figure(history)
    assert list(figure.data[0].y) == list(history["hypervolume"])
    bars = charts.importance_figure({"accuracy": {"lr": 0.7, "batch_size": 0.3}, "tp": {}})
    assert [t.name for t in bars.data] == ["accuracy", "tp"]
    assert list(bars.data[1].x) == [0.0, 0.0]


def test_parallel_coordinates_encode_categories_and_missing_values(frame: pd.DataFrame) -> None:
    knobs = ["optimizer", "lr", "momentum", "batch_size", "compile_mode"]
    figure = charts.parallel_figure(frame, metric_name="accuracy", knobs=knobs)
    dims = {d.label: d for d in figure.data[0].dimensions}
    assert list(dims)[-2:] == ["accuracy", "samples/s"]
    assert list(dims["optimizer"].ticktext) == sorted(set(frame["optimizer"].dropna()))
    assert list(dims["batch_size"].ticktext) == ["32", "64", "128", "256"]
    assert "log10(lr)" in dims
    assert dims["momentum"].ticktext[0] == "n/a"
    done = frame[frame["state"] == "COMPLETE"]
    assert len(dims["accuracy"].values) == len(done)


def test_md_leaves_no_markup() -> None:
    text = "[x](http://e.vil) *b* <script> :red[y] $x$ `c` # h\nnext"
    escaped = md(text)
    assert re.sub(r"\\(.)", r"\1", escaped).replace("  \n", "\n") == text
    unescaped = re.sub(r"\\.", "", escaped)
    assert not set(unescaped) & set(string.punctuation)


def test_charts_import_no_streamlit() -> None:
    source = "".join(p.read_text() for p in Path(charts.__file__).parent.glob("*.py"))
    assert "streamlit" not in source
