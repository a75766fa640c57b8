"""The trial harness: trains one configuration and measures it. Imports torch; no Optuna."""

from __future__ import annotations

from tuner.harness.failures import TrialFailure
from tuner.harness.trial import Evaluation, TrialResult, evaluate, run_trial

__all__ = ["Evaluation", "TrialFailure", "TrialResult", "evaluate", "run_trial"]
