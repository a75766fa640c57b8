"""The app's pages, one script each, routed by `app/main.py` through `st.navigation`.

They are scripts, not importable helpers: Streamlit runs the selected one on every rerun.
"""
