"""Studies: every study in the storage, what it tunes and how far it got; open one."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import data, widgets
from app.safe import md
from tuner.storage import masked

widgets.header("Studies")
storage = data.storage_url()
st.caption(md(f"storage {masked(storage)}"))
summaries = data.require_studies(storage)
rows = pd.DataFrame([data.study_row(storage, s) for s in summaries])
st.dataframe(rows, hide_index=True)
names = [s.name for s in summaries]
current = st.session_state.get(data.STUDY)
choice = st.selectbox(
    "Open a study",
    names,
    index=names.index(current) if current in names else None,
    key="studies_open",
    placeholder="choose a study",
)
opened = st.button(
    "Open its Pareto front", disabled=choice is None, type="primary", key="studies_open_button"
)
if opened and choice:
    st.session_state[data.STUDY] = choice
    st.switch_page("views/front.py", query_params={"study": choice})
