"""The trial harness: trains one configuration and measures it. Imports torch; no Optuna."""

from __future__ import annotations

from tuner.harness.failures import TrialFailure
from tuner.harness.trial import Checkpoint, Evaluation, Judge, TrialResult, evaluate, run_trial

__all__ = [
    "Checkpoint",
    "Evaluation",
    "Judge",
    "TrialFailure",
    "TrialResult",
    "evaluate",
    "run_trial",
]
