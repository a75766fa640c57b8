"""The results app, page by page, with Streamlit's AppTest against real SQLite storages.

Navigation: `AppTest.switch_page("views/<page>.py")` (pages are file pages routed by
`st.navigation`); the study comes from the environment (`TUNER_APP_STUDY`), the URL
(`at.query_params["study"]`) or the sidebar box. Selection: the Pareto front's "trial" box
(a click on a point sets the same box). Downloads are read from Streamlit's media file
manager, which receives exactly the bytes a browser downloads.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from app.charts import WITHIN_NAME, WORSE_NAME
from tests.synthetic import write_study
from tuner.attrs import StudyAttr, TrialAttr
from tuner.config import DEFAULT_BASELINE
from tuner.handoff import export_text
from tuner.pick import Condition, Pick, PickKind, Quantity, parse_pick, select
from tuner.results import StudyView, TrialRecord, read_study
from tuner.storage import open_storage
from tuner.tables import trials_frame

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "app" / "main.py"
PAGES = ("studies", "overview", "front", "pick", "compare", "diagnostics", "trials")
TITLES = ("Studies", "Overview", "Pareto front", "Pick", "Compare", "Diagnostics", "Trials")


@dataclass(frozen=True)
class Stores:
    url: str  # digits (maximize), charlm (minimize) and the odd studies below
    empty: str  # a storage with no study
    missing: str  # no file there


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    root = tmp_path_factory.mktemp("app")
    url = f"sqlite:///{root / 'studies.db'}"
    write_study(url, "digits", 160, seed=0)
    write_study(url, "charlm", 60, seed=1, direction="minimize", metric_name="bpc")
    plain = optuna.create_study(study_name="plain", storage=url)
    plain.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    _pending(url)
    _odd(url)
    _failed_baseline(url)
    empty = f"sqlite:///{root / 'empty.db'}"
    open_storage(empty, create=True)
    return Stores(url, empty, f"sqlite:///{root / 'missing.db'}")


def _tuner_study(url: str, name: str, **attrs: Any) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=url, directions=["maximize"] * 2)
    defaults = {
        StudyAttr.METRIC_NAME: "accuracy",
        StudyAttr.METRIC_DIRECTION: "maximize",
        StudyAttr.METRIC_NOISE: 0.01,
        StudyAttr.OBJECTIVE: "digits",
    }
    for key, value in (defaults | attrs).items():
        study.set_user_attr(key, value)
    return study


def _complete(metric: float, throughput: float, **attrs: Any) -> optuna.trial.FrozenTrial:
    user = {
        TrialAttr.CONFIG: DEFAULT_BASELINE.to_dict(),
        TrialAttr.THROUGHPUT_WINDOWS: [throughput * f for f in (0.97, 1.0, 1.02)],
        TrialAttr.CURVE: [
            {"step": s, "samples": 32 * s, "train_s": s / 10, "metric": metric} for s in (10, 20)
        ],
        TrialAttr.PEAK_MEMORY_BYTES: 400 * 2**20,
    }
    return create_trial(
        state=TrialState.COMPLETE, values=[metric, throughput], user_attrs=user | attrs
    )


def _failed(kind: Any, reason: Any, **attrs: Any) -> optuna.trial.FrozenTrial:
    user = {TrialAttr.FAILURE_KIND: kind, TrialAttr.FAILURE_REASON: reason, **attrs}
    return create_trial(state=TrialState.FAIL, user_attrs=user)


def _pending(url: str) -> None:
    """A tuner study with no complete trial: two failures and one still running."""
    study = _tuner_study(url, "pending")
    study.add_trial(_failed("diverged", "loss became nan by optimizer step 3"))
    study.add_trial(_failed("out_of_memory", "RuntimeError: DefaultCPUAllocator"))
    study.ask()


def _odd(url: str) -> None:
    """Attributes of the wrong type everywhere a reader looks."""
    study = _tuner_study(
        url,
        "odd",
        **{
            StudyAttr.SPEC: "not a mapping",
            StudyAttr.SPACE: 42,
            StudyAttr.DROPPED: ["weird", {"knob": "compile_mode"}],
            StudyAttr.OBJECTIVE: ["a", "list"],
            StudyAttr.METRIC_DIRECTION: "sideways",
            StudyAttr.METRIC_NOISE: "abc",
            StudyAttr.DEVICE: "a string",
        },
    )
    study.add_trial(
        _complete(
            0.9,
            1000.0,
            baseline=True,
            curve="nope",
            throughput_windows=[1000, "x", None],
            peak_memory_bytes="lots",
            compile_s="fast",
        )
    )
    study.add_trial(_complete(0.95, 2000.0, config="adam lr=1e-3", curve=[{"step": 1}, "junk"]))
    study.add_trial(_complete(0.8, 3000.0, config={"optimizer": "adam"}))
    study.add_trial(_failed(5, None))


def _failed_baseline(url: str) -> None:
    study = _tuner_study(url, "nobase")
    study.add_trial(_failed("out_of_memory", "RuntimeError: out of memory", baseline=True))
    for metric, throughput in ((0.97, 1500.0), (0.95, 2500.0), (0.9, 4000.0), (0.85, 3000.0)):
        study.add_trial(_complete(metric, throughput))


def trial(view: StudyView, number: int) -> TrialRecord:
    record = view.trial(number)
    assert record is not None, f"no trial {number}"
    return record


def app(monkeypatch: pytest.MonkeyPatch, storage: str, study: str | None = None) -> AppTest:
    """The app as `tuner app --storage STORAGE [--study STUDY]` starts it, after its first run."""
    monkeypatch.setenv("TUNER_APP_STORAGE", storage)
    if study is None:
        monkeypatch.delenv("TUNER_APP_STUDY", raising=False)
    else:
        monkeypatch.setenv("TUNER_APP_STUDY", study)
    return AppTest.from_file(MAIN, default_timeout=60).run()


def goto(at: AppTest, page: str) -> AppTest:
    return at.switch_page(f"views/{page}.py").run()


def clean(at: AppTest) -> AppTest:
    """`at`, asserting the run raised nothing (a traceback is never a user-facing error)."""
    assert not at.exception, [e.value for e in at.exception]
    return at


def plain(markdown: str) -> str:
    """Markdown the app escaped (`app.safe.md`) as it reads on the page."""
    return re.sub(r"\\(.)", r"\1", markdown)


def texts(at: AppTest) -> str:
    """Everything the run showed as text, in one string, as it reads on the page."""
    kinds = (
        "title",
        "subheader",
        "caption",
        "markdown",
        "text",
        "code",
        "error",
        "warning",
        "info",
        "text_input",
        "expander",
    )
    values = (
        getattr(e, "label" if kind == "expander" else "value")
        for kind in kinds
        for e in at.get(kind)
    )
    return plain("\n".join(str(v) for v in values))


def figure(at: AppTest, key: str) -> dict[str, Any]:
    charts = [c for c in at.get("plotly_chart") if c.key == key]
    assert charts, f"no chart {key!r}; charts: {[c.key for c in at.get('plotly_chart')]}"
    return dict(json.loads(charts[0].proto.spec))


def traces(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t.get("name", ""): t for t in spec["data"]}


def array(trace: dict[str, Any], axis: str) -> list[float]:
    """A trace's coordinates, which plotly may store as a base64 typed array."""
    data = trace.get(axis, [])
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return np.asarray(data).ravel().tolist()


def numbers(trace: dict[str, Any]) -> set[int]:
    """The trial numbers a trace's points carry (its customdata)."""
    return {int(n) for n in array(trace, "customdata")}


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bytes]]:
    """File name -> bytes of every download button of the latest run."""
    captured: dict[str, bytes] = {}
    original = MediaFileManager.add

    def add(
        self: MediaFileManager,
        data: Any,
        mimetype: str,
        coordinates: str,
        file_name: str | None = None,
        is_for_static_download: bool = False,
    ) -> str:
        if is_for_static_download and file_name:
            captured[file_name] = data
        return original(self, data, mimetype, coordinates, file_name, is_for_static_download)

    monkeypatch.setattr(MediaFileManager, "add", add)
    yield captured


# -- every page, a normal study ----------------------------------------------------------------


@pytest.mark.parametrize(("page", "title"), list(zip(PAGES, TITLES, strict=True)))
def test_every_page_draws_a_normal_study(
    monkeypatch: pytest.MonkeyPatch, stores: Stores, page: str, title: str
) -> None:
    at = clean(goto(app(monkeypatch, stores.url, "digits"), page))
    assert at.title[0].value == title
    assert not at.error
    assert at.query_params["study"] == "digits"
    if page != "studies":
        assert "study digits" in at.caption[0].value


def test_the_front_opens_first_when_a_study_is_given(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    assert clean(app(monkeypatch, stores.url, "digits")).title[0].value == "Pareto front"
    assert clean(app(monkeypatch, stores.url)).title[0].value == "Studies"


def test_the_front_marks_baseline_front_flagged_and_infeasible_points(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    view = read_study("digits", stores.url)
    frame = trials_frame(view)
    at = clean(app(monkeypatch, stores.url, "digits"))
    spec = traces(figure(at, "front_chart"))
    assert numbers(spec["front"]) == {t.number for t in view.front()}
    assert spec["front"]["marker"]["color"] != spec["dominated"]["marker"]["color"]
    baseline = spec["baseline"]
    assert (numbers(baseline), baseline["marker"]["symbol"], baseline["text"]) == (
        {0},
        "star",
        ["baseline"],
    )
    on_front = frame["role"] == "front"
    worse = set(frame.loc[on_front & frame["worse"], "trial"])
    within = set(frame.loc[on_front & frame["not_better"] & ~frame["worse"], "trial"])
    assert worse, "the synthetic study should have a front trial worse than the baseline"
    assert numbers(spec[WORSE_NAME]) == worse
    assert numbers(spec[WITHIN_NAME]) == within
    infeasible = spec["over the memory budget"]
    assert numbers(infeasible) == {t.number for t in view.infeasible()}
    assert infeasible["marker"]["symbol"] == "x"
    assert any("worse than the baseline" in w.value for w in at.warning)
    listed = "\n".join(t.value for t in at.text)  # failed and pruned, as `tuner show` lists them
    assert view.failures() and all(
        f"{kind} ({len(trials)})" in listed for kind, trials in view.failures().items()
    )
    front_line = spec["Pareto front"]
    assert array(front_line, "x") == sorted(array(front_line, "x"))  # joined in throughput order
    assert f"{len(view.front())} of {len(view.completed())}" in at.subheader[0].value


def test_front_axis_colour_and_memory_views(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    at = clean(app(monkeypatch, stores.url, "digits"))
    at.radio(key="front_x").set_value("speedup").run()
    spec = traces(figure(clean(at), "front_chart"))
    assert array(spec["baseline"], "x") == [1.0]
    assert "speedup" in figure(at, "front_chart")["layout"]["xaxis"]["title"]["text"]
    at.selectbox(key="front_colour").select("precision").run()
    names = set(traces(figure(clean(at), "front_chart")))
    assert {"bf16", "fp32"} <= names
    assert "front_memory" not in [c.key for c in at.get("plotly_chart")], "drawn when opened"
    at.session_state["front_view"] = "metric vs peak memory"
    memory = traces(figure(clean(at.run()), "front_memory"))
    assert "front_chart" not in [c.key for c in at.get("plotly_chart")]
    assert set(memory) == {"dominated", "front", "infeasible"}


def test_selecting_a_trial_shows_its_config(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    view = read_study("digits", stores.url)
    number = view.front()[-1].number
    at = clean(app(monkeypatch, stores.url, "digits"))
    at.selectbox(key="front_trial").select(number).run()
    assert f"Trial {number}" in [s.value for s in clean(at).subheader]
    yaml = export_text(view, trial(view, number), "yaml")
    assert yaml.rstrip("\n") in [c.value.rstrip("\n") for c in at.code]
    assert numbers(traces(figure(at, "front_chart"))[f"trial {number}"]) == {number}
    at.button(key="front_to_pick").click().run()
    assert clean(at).title[0].value == "Pick"
    assert at.code[0].value == f"trial={number}"


# -- pick -------------------------------------------------------------------------------------


def test_pick_downloads_are_the_cli_export_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch, stores: Stores, downloads: dict[str, bytes], tmp_path: Path
) -> None:
    view = read_study("digits", stores.url)
    number = view.completed()[3].number
    at = goto(app(monkeypatch, stores.url, "digits"), "pick")
    at.radio(key="pick_kind").set_value(PickKind.TRIAL).run()
    at.selectbox(key="pick_trial").select(number).run()
    clean(at)
    assert at.code[0].value == f"trial={number}"
    assert [b.label for b in at.download_button] == [
        "Download YAML",
        "Download JSON",
        "Download Python",
    ]
    tuner = Path(sys.executable).with_name("tuner")
    for fmt, suffix in (("yaml", "yaml"), ("json", "json"), ("python", "py")):
        data = downloads[f"digits-trial{number}.{suffix}"]
        assert data == export_text(view, trial(view, number), fmt).encode()
        command = [
            str(tuner),
            "export",
            "digits",
            "--storage",
            stores.url,
            "--pick",
            f"trial={number}",
            "--format",
            fmt,
        ]
        out = subprocess.run(command, capture_output=True, check=True, cwd=tmp_path).stdout
        assert data == out


@pytest.mark.parametrize(
    ("study", "metric", "at_least", "value"),
    [("digits", "accuracy", True, 0.95), ("charlm", "bpc", False, 2.1)],
)
def test_the_slo_slider_writes_a_rule_parse_pick_reads_back(
    monkeypatch: pytest.MonkeyPatch,
    stores: Stores,
    study: str,
    metric: str,
    at_least: bool,
    value: float,
) -> None:
    view = read_study(study, stores.url)
    at = goto(app(monkeypatch, stores.url, study), "pick")
    at.radio(key="pick_kind").set_value(PickKind.FASTEST_WITH).run()
    at.slider(key="pick_metric").set_value(value + 1e-12).run()  # a slider's float noise
    expected = Pick(
        PickKind.FASTEST_WITH, conditions=(Condition(Quantity.METRIC, at_least, value),)
    )
    rule = clean(at).code[0].value
    assert rule == f"fastest-with=metric{'>=' if at_least else '<='}{value:g}"
    assert parse_pick(rule, metric) == expected
    assert f"--pick '{rule}'" in at.code[1].value
    assert at.subheader[0].value.startswith(f"Trial {select(view, expected).number}")

    at.checkbox(key="pick_memory_on").check().run()
    at.slider(key="pick_memory").set_value(520).run()
    rule = clean(at).code[0].value
    assert rule.endswith(",memory_mb<=520")
    assert parse_pick(rule, metric).conditions[1] == Condition(Quantity.MEMORY_MB, False, 520)


def test_best_with_throughput_floor_and_an_impossible_slo(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    view = read_study("digits", stores.url)
    at = goto(app(monkeypatch, stores.url, "digits"), "pick")
    at.radio(key="pick_kind").set_value(PickKind.BEST_WITH).run()
    at.slider(key="pick_tp").set_value(6000).run()
    rule = clean(at).code[0].value
    assert rule == "best-with=throughput>=6000"
    chosen = select(view, parse_pick(rule))
    assert at.subheader[0].value.startswith(f"Trial {chosen.number}")
    top = at.slider(key="pick_tp").max
    at.slider(key="pick_tp").set_value(top).run()
    at.checkbox(key="pick_memory_on").check().run()
    at.slider(key="pick_memory").set_value(at.slider(key="pick_memory").min).run()
    assert any("relax the condition" in w.value for w in clean(at).warning)
    assert not at.download_button


def test_pick_rules_without_sliders(monkeypatch: pytest.MonkeyPatch, stores: Stores) -> None:
    view = read_study("digits", stores.url)
    at = goto(app(monkeypatch, stores.url, "digits"), "pick")
    for kind, rule in ((PickKind.KNEE, "knee"), (PickKind.MAX_THROUGHPUT, "max-throughput")):
        at.radio(key="pick_kind").set_value(kind).run()
        assert clean(at).code[0].value == rule
        assert at.subheader[0].value.startswith(f"Trial {select(view, Pick(kind)).number}")
    at.radio(key="pick_kind").set_value(PickKind.FASTEST_WITHIN).run()
    at.number_input(key="pick_tolerance").set_value(0.02).run()
    at.radio(key="pick_unit").set_value("units").run()
    assert clean(at).code[0].value == "fastest-within=0.02"
    expected = select(view, Pick(PickKind.FASTEST_WITHIN, tolerance=0.02, relative=False))
    assert at.subheader[0].value.startswith(f"Trial {expected.number}")


# -- compare, diagnostics, trials ---------------------------------------------------------------


def test_compare_puts_configs_side_by_side(monkeypatch: pytest.MonkeyPatch, stores: Stores) -> None:
    view = read_study("digits", stores.url)
    chosen = [t.number for t in view.front()[:3]]
    at = goto(app(monkeypatch, stores.url, "digits"), "compare")
    at.multiselect(key="compare_trials").set_value(chosen).run()
    table = clean(at).dataframe[0].value
    assert list(table.columns) == [*(f"trial {n}" for n in chosen), "differs"]
    for knob in ("optimizer", "batch_size", "precision"):
        values = [trial(view, n).knobs[knob] for n in chosen]
        assert table.loc[knob, "differs"] == (len(set(values)) > 1)
    assert table.loc["accuracy", f"trial {chosen[0]}"] == f"{trial(view, chosen[0]).metric:.4f}"
    curves = traces(figure(at, "compare_curves"))
    assert set(curves) == {f"trial {n}" for n in chosen}
    at.multiselect(key="compare_trials").set_value(chosen[:1]).run()
    assert "two or more" in clean(at).info[0].value


def test_diagnostics_hypervolume_importance_parallel(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    at = clean(goto(app(monkeypatch, stores.url, "digits"), "diagnostics"))
    hypervolume = array(figure(at, "diag_hypervolume")["data"][0], "y")
    assert hypervolume == sorted(hypervolume) and 0 < hypervolume[-1] <= 1
    assert not [c for c in at.get("plotly_chart") if c.key == "diag_importance"]
    at.selectbox(key="importance_evaluator").select("mean-decrease-impurity").run()
    at.button(key="importance_compute").click().run()
    bars = traces(figure(clean(at), "diag_importance"))
    assert set(bars) == {"accuracy", "throughput"}
    assert sum(array(bars["accuracy"], "x")) == pytest.approx(1.0)
    dimensions = figure(at, "diag_parallel")["data"][0]["dimensions"]
    labels = [d["label"] for d in dimensions]
    assert labels[-2:] == ["accuracy", "samples/s"] and "optimizer" in labels


def test_trials_filters_and_csv(
    monkeypatch: pytest.MonkeyPatch, stores: Stores, downloads: dict[str, bytes]
) -> None:
    frame = trials_frame(read_study("digits", stores.url))
    at = goto(app(monkeypatch, stores.url, "digits"), "trials")
    shown = clean(at).dataframe[0].value
    assert len(shown) == len(frame) and "accuracy" in shown and "metric" not in shown
    assert "failure_reason" not in shown  # not by default: every refresh resends the table
    at.multiselect(key="trials_columns").select("failure_reason").run()
    assert "failure_reason" in clean(at).dataframe[0].value
    at.multiselect(key="trials_state").set_value(["FAIL"]).run()
    failed = frame[frame["state"] == "FAIL"].rename(columns={"metric": "accuracy"})
    assert list(clean(at).dataframe[0].value["trial"]) == list(failed["trial"])
    assert downloads["digits-trials.csv"] == failed.to_csv(index=False).encode()
    at.multiselect(key="trials_state").set_value(["COMPLETE"]).run()
    at.multiselect(key="trials_role").set_value(["front"]).run()
    assert set(clean(at).dataframe[0].value["role"]) == {"front"}
    at.multiselect(key="trials_role").set_value(["front", "dominated", "infeasible"]).run()
    at.text_input(key="trials_text").input("ADAMW").run()
    shown = clean(at).dataframe[0].value
    adamw = frame[(frame["state"] == "COMPLETE") & (frame["optimizer"] == "adamw")]
    assert list(shown["trial"]) == list(adamw["trial"])
    assert downloads["digits-trials.csv"].decode().splitlines()[0].split(",")[4] == "accuracy"


def test_overview_shows_context_failures_and_dropped(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    at = clean(goto(app(monkeypatch, stores.url, "digits"), "overview"))
    shown = texts(at)
    assert "device: cpu (Intel(R) Xeon(R) Processor, 1 thread), torch 2.13.0+cpu" in shown
    assert "baseline: trial 0 (adam lr=1.00e-03" in shown
    view = read_study("digits", stores.url)
    labels = [plain(e.label) for e in at.expander]
    assert sorted(labels) == sorted(f"{k} ({len(t)})" for k, t in view.failures().items())
    dropped = next(d for d in at.dataframe if "reason" in d.value and "knob" in d.value).value
    assert list(dropped["value"]) == ["reduce-overhead"]
    assert at.get("json"), "the spec and space are shown as JSON trees"


# -- studies, navigation, the URL ---------------------------------------------------------------


def test_studies_lists_every_study_and_opens_one(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    at = clean(app(monkeypatch, stores.url))
    rows = at.dataframe[0].value.set_index("study")
    assert set(rows.index) == {"charlm", "digits", "nobase", "odd", "pending", "plain"}
    digits = read_study("digits", stores.url).state_counts()
    assert rows.loc["digits", "complete"] == digits["COMPLETE"]
    assert rows.loc["digits", "fail"] == digits["FAIL"]
    assert rows.loc["digits", "metric"] == "accuracy"
    assert "1 objective(s)" in rows.loc["plain", "note"]
    at.selectbox(key="studies_open").select("charlm").run()
    at.button(key="studies_open_button").click().run()
    assert clean(at).title[0].value == "Pareto front"
    assert at.query_params["study"] == "charlm"
    assert "study charlm" in at.caption[0].value


def test_the_url_names_the_study_and_the_sidebar_changes_it(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    monkeypatch.setenv("TUNER_APP_STORAGE", stores.url)
    monkeypatch.setenv("TUNER_APP_STUDY", "digits")
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["study"] = "charlm"  # /?study=charlm, e.g. a shared link
    clean(at.run())
    assert "study charlm" in at.caption[0].value
    assert at.selectbox(key="study_select").value == "charlm"
    clean(goto(at, "trials"))
    assert "bpc" in at.dataframe[0].value
    at.selectbox(key="study_select").select("digits").run()
    assert at.query_params["study"] == "digits"
    assert "study digits" in clean(at).caption[0].value
    assert at.title[0].value == "Trials"


def test_an_unknown_study_in_the_url_says_which_exist(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    monkeypatch.setenv("TUNER_APP_STORAGE", stores.url)
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["study"] = "nope"
    clean(goto(clean(at.run()), "front"))
    assert "no study named 'nope'" in plain(at.error[0].value)
    assert "digits" in at.error[0].value


def test_refresh_reads_new_trials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    write_study(url, "live", 20, seed=3)
    at = goto(app(monkeypatch, url, "live"), "trials")
    assert len(clean(at).dataframe[0].value) == 20
    study = optuna.load_study(study_name="live", storage=url)
    done = next(t for t in study.trials if t.state is TrialState.COMPLETE)
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            values=done.values,
            params=done.params,
            distributions=done.distributions,
            user_attrs=done.user_attrs,
        )
    )
    next(b for b in at.sidebar.button if b.label == "Refresh").click().run()
    assert len(clean(at).dataframe[0].value) == 21
    at.toggle(key="auto_refresh").set_value(True).run()
    assert clean(at).number_input(key="refresh_every").value == 10


# -- edge cases ---------------------------------------------------------------------------------


def test_a_missing_storage_is_one_line(monkeypatch: pytest.MonkeyPatch, stores: Stores) -> None:
    at = clean(app(monkeypatch, stores.missing))
    assert len(at.error) == 1 and "no database at" in at.error[0].value
    assert at.selectbox(key="study_select").disabled
    assert not Path(stores.missing.removeprefix("sqlite:///")).exists()  # never created


def test_an_empty_storage(monkeypatch: pytest.MonkeyPatch, stores: Stores) -> None:
    at = clean(app(monkeypatch, stores.empty))
    assert "no studies in" in at.info[0].value and not at.error


@pytest.mark.parametrize("page", PAGES[1:])
def test_a_study_without_a_complete_trial(
    monkeypatch: pytest.MonkeyPatch, stores: Stores, page: str
) -> None:
    at = clean(goto(app(monkeypatch, stores.url, "pending"), page))
    assert not at.error
    if page in ("overview", "trials"):
        assert at.dataframe, "the failures and states are listed"
    else:
        assert "no complete trial" in at.info[0].value
        assert "1 running" in at.info[0].value


def test_a_single_objective_study_is_not_a_tuner_study(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    at = clean(app(monkeypatch, stores.url, "plain"))
    assert len(at.error) == 1 and "'plain' has 1 objective(s)" in plain(at.error[0].value)


@pytest.mark.parametrize("page", PAGES)
def test_odd_stored_values_never_break_a_page(
    monkeypatch: pytest.MonkeyPatch, stores: Stores, page: str
) -> None:
    at = clean(goto(app(monkeypatch, stores.url, "odd"), page))
    if page == "pick":  # the best metric is trial 1, whose stored config is a string
        assert len(at.error) == 1
        assert "trial 1: its stored config is not valid: config: must be a mapping" in plain(
            at.error[0].value
        )
    else:
        assert not at.error
    if page == "overview":
        assert "'not a mapping'" in [c.value for c in at.code]
        assert "unknown device" in texts(at)


def test_a_trial_whose_config_is_not_a_mapping_cannot_be_downloaded(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    at = goto(app(monkeypatch, stores.url, "odd"), "pick")
    at.radio(key="pick_kind").set_value(PickKind.TRIAL).run()
    at.selectbox(key="pick_trial").select(1).run()
    assert "stored config is not valid" in plain(clean(at).error[0].value)
    assert not at.download_button
    assert "'adam lr=1e-3'" in [c.value for c in at.code], "what is stored instead is shown"
    at.selectbox(key="pick_trial").select(0).run()
    assert not clean(at).error and len(at.download_button) == 3


def test_a_failed_baseline_is_said_not_divided_by(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    at = clean(app(monkeypatch, stores.url, "nobase"))
    assert "baseline trial 0 is FAIL" in plain(at.caption[1].value)
    front = at.table[-1].value
    assert set(front["speedup"]) == {"?"} and set(front["Δ"]) == {"?"}
    at.radio(key="front_x").set_value("speedup").run()
    assert "speedup needs the baseline" in plain(clean(at).warning[0].value)
    assert "throughput" in figure(at, "front_chart")["layout"]["xaxis"]["title"]["text"]
    clean(goto(at, "pick"))
    assert "baseline trial 0 is FAIL" in plain(at.info[0].value)


# -- safety -------------------------------------------------------------------------------------


def test_passwords_are_masked_everywhere(monkeypatch: pytest.MonkeyPatch, stores: Stores) -> None:
    at = clean(app(monkeypatch, "postgresql://alice:s3cret@127.0.0.1:9/tuner"))
    assert at.error and "alice:***@" in texts(at)
    assert "s3cret" not in texts(at)
    at.text_input(key="storage_input").input("postgresql://bob:hunter2@127.0.0.1:9/x").run()
    assert at.text_input(key="storage_input").value == "postgresql://bob:***@127.0.0.1:9/x"
    assert "hunter2" not in texts(clean(at))
    at.text_input(key="storage_input").input(stores.url).run()
    assert "digits" in clean(at).dataframe[0].value["study"].tolist()


def test_the_app_source_renders_no_raw_html_and_unpickles_nothing() -> None:
    for path in (ROOT / "app").rglob("*.py"):
        source = path.read_text()
        for banned in ("unsafe_allow_html", "pickle", "eval(", "exec(", "import torch"):
            assert banned not in source, f"{path.name} uses {banned}"


def test_the_app_never_imports_torch(stores: Stores) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(MAIN)!r}, default_timeout=60).run()
        for page in {list(PAGES)!r}:
            at.switch_page(f"views/{{page}}.py").run()
            assert not at.exception, [e.value for e in at.exception]
            if page == "diagnostics":
                at.button(key="importance_compute").click().run()
            if page == "front":
                at.selectbox(key="front_trial").select(0).run()
        print("torch" in sys.modules)
        """
    )
    env = {"TUNER_APP_STORAGE": stores.url, "TUNER_APP_STUDY": "digits"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**_environ(), **env},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TUNER_APP_")}
