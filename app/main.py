"""The results app's entry script: the sidebar (storage, study, refresh) and page routing.

`tuner app` passes the storage URL and the optional study in the environment
(``TUNER_APP_STORAGE``, ``TUNER_APP_STUDY``; see `tuner.app_server`) so no password shows in
`ps`. The selected study lives in ``st.session_state`` and in the URL (``?study=NAME``), so
``/front?study=NAME`` opens that study's front directly and a page URL can be shared. Every
page has a fixed URL path (`PAGES`); ``/`` opens the front when a study was given, else the
list of studies.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from app import data
from tuner.app_server import STORAGE_ENV, STUDY_ENV
from tuner.errors import UserError
from tuner.spec import default_storage, resolve_storage
from tuner.storage import masked

#: (script, title, URL path, icon) of every page, in menu order.
PAGES = (
    ("views/studies.py", "Studies", "studies", ":material/list:"),
    ("views/overview.py", "Overview", "overview", ":material/info:"),
    ("views/front.py", "Pareto front", "front", ":material/scatter_plot:"),
    ("views/pick.py", "Pick", "pick", ":material/check_circle:"),
    ("views/compare.py", "Compare", "compare", ":material/compare_arrows:"),
    ("views/diagnostics.py", "Diagnostics", "diagnostics", ":material/monitoring:"),
    ("views/trials.py", "Trials", "trials", ":material/table:"),
)
_STORAGE_INPUT = "storage_input"
_STUDY_SELECT = "study_select"


def _storage_changed() -> None:
    """Take a newly typed storage URL (the box then shows it masked); a relative SQLite path
    is relative to the folder the app runs in, as on the command line."""
    state = st.session_state
    typed = str(state[_STORAGE_INPUT] or "").strip()
    if typed and typed != masked(state[data.STORAGE]):
        state[data.STORAGE] = resolve_storage(typed, Path.cwd())
        state[data.STUDY] = None
        st.query_params.pop("study", None)
    state[_STORAGE_INPUT] = masked(state[data.STORAGE])


def _study_chosen() -> None:
    chosen = st.session_state[_STUDY_SELECT]
    st.session_state[data.STUDY] = chosen
    if chosen:
        st.query_params["study"] = chosen


def _sync_study(env_study: str | None) -> None:
    """The URL names the study when it names one (a bookmark, a shared link); otherwise the
    session keeps its choice, and a new session starts at `env_study`."""
    wanted = st.query_params.get("study")
    if wanted and wanted != st.session_state.get(data.STUDY):
        st.session_state[data.STUDY] = wanted
    elif data.STUDY not in st.session_state:
        st.session_state[data.STUDY] = env_study


def _sidebar() -> None:
    state = st.session_state
    storage = state[data.STORAGE]
    state.setdefault(_STORAGE_INPUT, masked(storage))
    st.text_input(
        "Storage",
        key=_STORAGE_INPUT,
        on_change=_storage_changed,
        help="Optuna storage URL: sqlite:///file.db, postgresql://..., journal:file.log",
    )
    try:
        names = [s.name for s in data.studies(storage)]
    except UserError:
        names = []  # the page says why
    chosen = state.get(data.STUDY)
    state[_STUDY_SELECT] = chosen if chosen in names else None
    st.selectbox(
        "Study",
        names,
        key=_STUDY_SELECT,
        on_change=_study_chosen,
        placeholder="choose a study",
        disabled=not names,
    )
    if st.button("Refresh", help="Read new and finished trials"):
        data.clear()
    if st.toggle("Auto-refresh", key="auto_refresh"):
        every = st.number_input("every (s)", 2, 600, 10, key="refresh_every")
        _poll(float(every or 10))


def _poll(seconds: float) -> None:
    """Every `seconds`, read the selected study (only new and unfinished trials are fetched)
    and rerun the page only when a trial was added or finished."""

    @st.fragment(run_every=seconds)
    def poll() -> None:
        state = st.session_state
        name = state.get(data.STUDY)
        if not name:
            return
        try:
            key = data.read(state[data.STORAGE], str(name)).key
        except UserError:
            return
        if key != state.get(data.SEEN):
            state[data.SEEN] = key
            data.clear()
            st.rerun(scope="app")

    poll()


def _home() -> None:
    """``/``: the front of the study the app was started with, else the list of studies."""
    study = st.session_state.get(data.STUDY)
    target = "views/front.py" if os.environ.get(STUDY_ENV) else "views/studies.py"
    st.switch_page(target, query_params={"study": study} if study else None)


st.set_page_config(page_title="tuner", layout="wide")
st.session_state.setdefault(data.STORAGE, os.environ.get(STORAGE_ENV) or default_storage())
_sync_study(os.environ.get(STUDY_ENV) or None)
with st.sidebar:
    _sidebar()
pages = [
    st.Page(script, title=title, url_path=path, icon=icon) for script, title, path, icon in PAGES
]
home = st.Page(_home, title="tuner", url_path="home", default=True, visibility="hidden")
page = st.navigation([home, *pages])
if st.session_state.get(data.STUDY):
    st.query_params["study"] = str(st.session_state[data.STUDY])
page.run()
