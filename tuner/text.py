"""Stored text made safe to print: a storage is input, and a terminal obeys what it prints.

A study name, a failure reason or a device string is whatever the storage holds: a clear-screen
or window-title escape, a BEL, a NUL or a newline that fakes a line of the report. Everything
tuner prints or writes as a comment from a storage goes through one of these.
"""

from __future__ import annotations


def one_line(text: object) -> str:
    """`text` on one line: whitespace runs (newlines included) become one space, and anything
    else unprintable (NUL, ESC and so terminal escapes, Unicode line separators) is dropped.

    Example:
        >>> one_line("a\\n b\\x1b[2J\\x07")
        'a b[2J'
    """
    return "".join(ch for ch in " ".join(str(text).split()) if ch.isprintable())


def printable(text: str) -> str:
    """`text` with every unprintable character but the newline dropped."""
    return "".join(ch for ch in text if ch == "\n" or ch.isprintable())
