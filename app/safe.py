"""Stored strings rendered as text, never as markup.

A study's name, a failure reason or a metric name is whatever the storage holds. Streamlit
renders alerts, captions and labels as Markdown (links, images, ``:red[...]`` directives,
LaTeX) and plotly renders hover text and titles with a subset of HTML, so every stored string
that reaches one of those goes through `md` or `html` first.
"""

from __future__ import annotations

import html as _html
import string

_PUNCTUATION = frozenset(string.punctuation)


def md(text: object) -> str:
    r"""`text` as Markdown that displays exactly `text`.

    CommonMark lets a backslash escape any ASCII punctuation, so escaping all of it leaves no
    link, emphasis, HTML, directive or formula behind, whatever the input.

    Example:
        >>> print(md("*bold* [link](x)"))
        \*bold\* \[link\]\(x\)
    """
    return "".join(f"\\{c}" if c in _PUNCTUATION else c for c in str(text)).replace("\n", "  \n")


def html(text: object) -> str:
    """`text` as plotly label text (plotly reads ``<b>``, ``<a href>``, ``<br>`` in labels)."""
    return _html.escape(str(text), quote=True)
