"""Study data for the pages: one open reader per study, derived data cached by what changed.

Every rerun (a click, a refresh, the auto-refresh timer) reads the study again, and that read
is cheap: the `StudyReader` lives in `st.cache_resource`, Optuna's cached storage fetches only
new and unfinished trials, and finished trials are flattened once. Everything derived (the
trials frame, the front, the hypervolume history, importances) is in `st.cache_data` keyed by
`StudyKey`, so a 5,000-trial study is re-processed only when a trial was added or finished.

A user's mistake (a missing database, a mistyped study name, a study tuner did not write)
arrives as a `UserError`; the pages show it as one line and stop, never as a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import pandas as pd
import streamlit as st

from app.charts import hypervolume_frame, with_hover
from app.safe import md
from tuner.attrs import StudyAttr
from tuner.diagnostics import Evaluator, hypervolume_history, param_importances
from tuner.errors import UserError
from tuner.report import device_line
from tuner.results import StudyReader, StudySummary, StudyView, list_studies
from tuner.storage import masked
from tuner.tables import trials_frame

#: Session-state keys that main.py sets before a page runs: the storage URL (unmasked, never
#: displayed) and the selected study's name.
STORAGE = "storage"
STUDY = "study"
#: The state of the selected study that the page last showed (auto-refresh compares it).
SEEN = "seen_key"

_STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")

#: One state of a study: trials, finished trials, latest completion (ISO, "" before any).
StudyKey = tuple[int, int, str]


@dataclass(frozen=True)
class Loaded:
    """A study as read on this rerun, with the key its derived data is cached under."""

    storage: str
    reader: StudyReader
    view: StudyView
    key: StudyKey

    @property
    def name(self) -> str:
        return self.view.name


def fail(message: str) -> NoReturn:
    """Show `message` as one error line and end this rerun."""
    st.error(md(message))
    st.stop()


def storage_url() -> str:
    """The storage main.py chose for this session."""
    return str(st.session_state[STORAGE])


@st.cache_data(ttl=10, show_spinner=False)
def studies(storage: str) -> list[StudySummary]:
    """Every study in `storage` (a UserError if it cannot be opened); re-listed every 10 s
    or on Refresh."""
    return list_studies(storage)


def require_studies(storage: str) -> list[StudySummary]:
    """The studies of `storage`; a missing storage or an empty one ends the page with why."""
    try:
        found = studies(storage)
    except UserError as exc:
        fail(str(exc))
    if not found:
        st.info(md(f"no studies in {masked(storage)} yet: `tuner run SPEC` writes one there"))
        st.stop()
    return found


@st.cache_resource(show_spinner=False, max_entries=64)
def _reader(storage: str, name: str) -> StudyReader:
    return StudyReader(name, storage)


def key_of(view: StudyView) -> StudyKey:
    finished = sum(1 for t in view.trials if t.state not in ("RUNNING", "WAITING"))
    last = view.last_update()
    return len(view.trials), finished, "" if last is None else last.isoformat()


def read(storage: str, name: str) -> Loaded:
    """The study as stored now (a UserError if it cannot be read as a tuner study)."""
    reader = _reader(storage, name)
    view = reader.read()
    return Loaded(storage, reader, view, key_of(view))


def load(storage: str, name: str) -> Loaded:
    """`read`, ending the page with the reason when it fails."""
    try:
        return read(storage, name)
    except UserError as exc:
        fail(str(exc))


def current() -> Loaded:
    """The selected study, or the page ends saying what to do."""
    storage = storage_url()
    name = st.session_state.get(STUDY)
    if not name:
        require_studies(storage)
        st.info("Choose a study in the sidebar or on the Studies page.")
        st.stop()
    study = load(storage, str(name))
    st.session_state[SEEN] = study.key
    return study


def require_complete(study: Loaded) -> None:
    """End the page unless the study has a complete, feasible trial to show."""
    view = study.view
    if view.completed():
        return
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(view.state_counts().items()))
    over = len(view.infeasible())
    why = f"; {over} infeasible (over the memory budget or no better than chance)" if over else ""
    st.info(
        md(
            f"study {view.name} has no complete trial within budget yet ({counts or 'no trials'}"
            f"{why}); the Overview page lists what happened to each"
        )
    )
    st.stop()


@st.cache_data(show_spinner=False, max_entries=32)
def _frame(storage: str, name: str, key: StudyKey, _view: StudyView) -> pd.DataFrame:
    return trials_frame(_view)


def frame(study: Loaded) -> pd.DataFrame:
    """`tuner.tables.trials_frame` of the study: one row per trial."""
    return _frame(study.storage, study.name, study.key, study.view)


@st.cache_data(show_spinner=False, max_entries=32)
def _chart_frame(storage: str, name: str, key: StudyKey, _view: StudyView) -> pd.DataFrame:
    return with_hover(_frame(storage, name, key, _view), _view.metric_name, _view.speed)


def chart_frame(study: Loaded) -> pd.DataFrame:
    """`frame` with each trial's hover text (``hover``), for the front and memory charts."""
    return _chart_frame(study.storage, study.name, study.key, study.view)


@st.cache_data(show_spinner=False, max_entries=32)
def _front(storage: str, name: str, key: StudyKey, _view: StudyView) -> list[int]:
    return [t.number for t in _view.front()]


def front(study: Loaded) -> list[int]:
    """Numbers of the Pareto-front trials, best metric first."""
    return _front(study.storage, study.name, study.key, study.view)


@st.cache_data(show_spinner=False, max_entries=32)
def _hypervolume(storage: str, name: str, key: StudyKey, _view: StudyView) -> pd.DataFrame:
    return hypervolume_frame(hypervolume_history(_view))


def hypervolume(study: Loaded) -> pd.DataFrame:
    """The front's hypervolume after each complete trial (trial, hypervolume)."""
    return _hypervolume(study.storage, study.name, study.key, study.view)


@st.cache_data(show_spinner=False, max_entries=64)
def _importances(
    storage: str, name: str, key: StudyKey, objective: int, evaluator: str, _reader: StudyReader
) -> dict[str, float]:
    return dict(param_importances(_reader.study, objective, Evaluator(evaluator)))


def importances(study: Loaded, objective: int, evaluator: Evaluator) -> dict[str, float]:
    """Each knob's importance for objective 0 (metric) or 1 (throughput); computed once per
    study state and evaluator."""
    key = study.key
    return _importances(study.storage, study.name, key, objective, evaluator.value, study.reader)


def study_row(storage: str, summary: StudySummary) -> dict[str, object]:
    """One line of the Studies page: what the study tunes and how far it got, or why it
    cannot be read (not a tuner study, odd attributes)."""
    row: dict[str, object] = {
        "study": summary.name,
        "objective": str(summary.objective),
        "metric": str(summary.metric_name),
        "trials": summary.n_trials,
    }
    try:
        study = read(storage, summary.name)
    except UserError as exc:
        return row | {"note": str(exc)}
    return row | _progress(storage, summary.name, study.key, study.view)


@st.cache_data(show_spinner=False, max_entries=256)
def _progress(storage: str, name: str, key: StudyKey, _view: StudyView) -> dict[str, object]:
    counts = _view.state_counts()
    last = _view.last_update()
    return {
        "device": device_line(_view.attrs.get(StudyAttr.DEVICE)),
        **{state.lower(): counts.get(state, 0) for state in _STATES},
        "front": len(_view.front()),
        "last update": "" if last is None else last.strftime("%Y-%m-%d %H:%M:%S"),
        "note": "",
    }


def clear() -> None:
    """Forget the study list (Refresh): a study created since shows up at once."""
    studies.clear()
