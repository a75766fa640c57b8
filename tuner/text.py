"""Stored text and user input made safe to print: a terminal obeys what it prints.

A study name, a failure reason or a device string is whatever the storage holds: a clear-screen
or window-title escape, a BEL, a NUL or a newline that fakes a line of the report. Everything
tuner prints or writes as a comment from a storage goes through one of these, and every value
or key an error message quotes from a user's file goes through `shown`, `shown_toml` or
`key_name`, so the message stays the one line the CLI promises.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable


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


def shown(value: object, form: Callable[[object], str] = repr, limit: int = 80) -> str:
    """A user's value as an error message quotes it: one line and short, however hostile.

    ``form`` writes the value (`repr`, or `json.dumps` for TOML-like text); both escape control
    characters, so a value cannot break the line. An integer past 10^21 is shown by its size:
    writing one of over 4300 digits raises ValueError, and one of 400 digits drowns the message.
    Anything longer than ``limit`` characters is cut, its length noted.

    Example:
        >>> shown(10**400), shown("a\\nb"), shown("x" * 100, limit=5)
        ('about 10^400', "'a\\\\nb'", "'xxxx... (102 characters)")
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**21:
        return f"about {'-' if value < 0 else ''}10^{round(math.log10(abs(value)))}"
    try:
        text = form(value)
    except ValueError:  # a huge integer inside a list or table
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def shown_toml(value: object) -> str:
    """A value from a TOML file, as `shown` writes it in TOML's own notation (TOML and JSON agree
    on scalars and lists; a date is written as text)."""
    return shown(value, functools.partial(json.dumps, default=str))


def key_name(key: str) -> str:
    """A TOML key as an error message names it: bare when printable and short, else quoted
    and escaped (as TOML would write it), so a key holding a newline cannot break the line."""
    return key if key.isprintable() and len(key) <= 80 else shown_toml(key)
