"""The messages between a supervisor and its worker process, in the order they are sent.

Parent -> child: `Job`. Child -> parent: `Started` (the trial's clock starts now: the
workload is imported), any number of `Progress` and `Reached`, then exactly one
`Finished`; a judged job's child waits after each `Reached` for the parent's `Verdict`.
Everything is a frozen dataclass of picklable values, so each direction is one
`multiprocessing` connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuner.budget import Budget
from tuner.config import TrialConfig

if TYPE_CHECKING:  # pickled across the pipe; the parent never needs the class itself
    from tuner.harness import Checkpoint, TrialResult


@dataclass(frozen=True)
class Job:
    """One trial to run: everything `tuner.harness.run_trial` takes, by value."""

    objective: str  # workload reference; imported once per worker and reused
    config: TrialConfig
    budget: Budget
    device: str
    seed: int
    size: str = "small"  # a built-in workload's size
    judged: bool = False  # the parent answers each Checkpoint with a Verdict


@dataclass(frozen=True)
class Started:
    """The worker has the workload and begins the trial: its time limit runs from here."""


@dataclass(frozen=True)
class Progress:
    """The speed the trial has reached, e.g. "1,234 samples/s in training"."""

    speed: str


@dataclass(frozen=True)
class Reached:
    """A judged trial reached a checkpoint and waits for the parent's Verdict."""

    checkpoint: Checkpoint


@dataclass(frozen=True)
class Verdict:
    """The parent's answer to a Reached: a reason stops the trial, None lets it go on."""

    stop: str | None


@dataclass(frozen=True)
class Finished:
    """The trial's end: a result or a failure (kind value, one-line reason).

    `reusable` is False when the failure may have left the worker unsound (an exception from
    user code, out of memory, a compile error): the supervisor then starts a fresh one.
    """

    result: TrialResult | None
    failure: tuple[str, str] | None
    reusable: bool
    rss_bytes: int | None
