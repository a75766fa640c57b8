"""The Streamlit results app that `tuner app` serves: studies, Pareto fronts, picks, exports.

It only reads: every figure, pick and export comes from the read-only functions in `tuner`
(results, relative, pick, report, handoff, tables, diagnostics), so the app never disagrees
with `tuner show` or `tuner export`. `main.py` is the entry script; `views/` holds one file
per page; `charts.py` turns frames into plotly figures without Streamlit, so it is testable
on its own.
"""
