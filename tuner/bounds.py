"""Bounds on every number a user writes: of the right kind, finite, within a sane interval.

A number from a spec or space file ends up in Optuna, torch or the OS. An absurd one (a seed
past 2**32, 10**39 steps, nan seconds, 100000 threads) must be refused where it is read, with
its field named, rather than crash deep inside a library or fail every trial later. Each field
declares one `Bound`, and spec, budget and space files all check through it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bound:
    """The legal values of one number: an integer or any number, in a closed interval (open
    at ``low`` with ``low_open``).

    Example:
        >>> seed = Bound(0, 2**31 - 1, integer=True)
        >>> seed.holds(7), seed.holds(2**32), seed.holds(7.0), seed.holds(True)
        (True, False, False, False)
        >>> str(Bound(0, 1e7, low_open=True))
        'a number in (0, 10000000]'
    """

    low: float
    high: float
    integer: bool = False
    low_open: bool = False

    def holds(self, value: object) -> bool:
        """Whether ``value`` is a legal number here. A TOML boolean is not a number.

        It compares without converting: Python ints are unbounded and ``float(10**400)`` raises
        OverflowError, so a check that converted first would crash on the values it exists to
        refuse. NaN fails every comparison and the interval is finite, so a value that holds
        is finite, and converting it afterwards is safe.
        """
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not isinstance(value, int):
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    @property
    def interval(self) -> str:
        """The interval as messages write it: ``(0, 100]``."""
        return f"{'(' if self.low_open else '['}{_figure(self.low)}, {_figure(self.high)}]"

    def __str__(self) -> str:
        return f"{'an integer' if self.integer else 'a number'} in {self.interval}"


def _figure(value: float) -> str:
    """A bound as a person writes it: whole numbers in full, others in short form."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


#: Any duration a user gives, in seconds (a timeout, a time budget): at most 10**7, 116 days.
SECONDS = Bound(0, 10**7, low_open=True)
