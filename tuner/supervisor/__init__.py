"""Trials in a supervised child process: a hang is killed, a crash is a stored failure.

The runner hands a `Job` to a `TrialProcess`, a warm worker (torch and the workload imported
once, reused across trials) that it replaces after a crash, a hang or any failure that may
have left its state unsound. The child speaks to its parent through one pipe of pickled
messages (`protocol`); nothing else is shared.
"""

from __future__ import annotations

from tuner.supervisor.process import Abandoned, Outcome, TrialProcess
from tuner.supervisor.protocol import Job

__all__ = ["Abandoned", "Job", "Outcome", "TrialProcess"]
