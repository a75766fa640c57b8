"""tuner: joint hyperparameter and performance search for PyTorch training."""

from __future__ import annotations

__version__ = "0.1.0"
