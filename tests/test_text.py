"""Quoting user values in one-line messages: shown, shown_toml and key_name."""

from __future__ import annotations

import pytest

from tuner.text import key_name, shown, shown_toml


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10**400, "about 10^400"),
        (-(10**39), "about -10^39"),
        (2**63, "9223372036854775808"),
        ("a\nb\x1b[2J", "'a\\nb\\x1b[2J'"),
        ("x" * 200, "'" + "x" * 79 + "... (202 characters)"),
        ([int("9" * 4000) ** 2], "a list too large to show"),  # past the 4300-digit str limit
    ],
)
def test_shown_is_one_short_line(value: object, expected: str) -> None:
    assert shown(value) == expected


def test_shown_toml_writes_toml_notation() -> None:
    assert shown_toml([True, 1.5, "a\nb"]) == '[true, 1.5, "a\\nb"]'
    assert shown_toml(float("nan")) == "NaN"


@pytest.mark.parametrize(
    ("key", "expected"),
    [("lr", "lr"), ("a\nb", '"a\\nb"'), ("\x1b[2J", '"\\u001b[2J"'), ("k" * 81, '"' + "k" * 79)],
)
def test_key_name_quotes_only_what_would_break_the_line(key: str, expected: str) -> None:
    assert key_name(key).startswith(expected)
    assert key_name(key).isprintable()
