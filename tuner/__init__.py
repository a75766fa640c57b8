"""tuner: joint hyperparameter and performance search for PyTorch training.

The public surface for library use. `build_training` needs torch and is imported on first
use, so `import tuner` (and the CLI's read-only commands) stay instant.

Example:
    >>> from tuner import load_config, build_training  # doctest: +SKIP
    >>> setup = build_training(load_config("best.yaml"), model, total_steps=1000)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner.config import TrialConfig
from tuner.export import load_config
from tuner.workload import Data, Direction, Metric, Workload, load_workload

if TYPE_CHECKING:
    from tuner.knobs import TrainingSetup, build_training

__version__ = "0.1.0"
__all__ = [
    "Data",
    "Direction",
    "Metric",
    "TrainingSetup",
    "TrialConfig",
    "Workload",
    "__version__",
    "build_training",
    "load_config",
    "load_workload",
]


def __getattr__(name: str) -> Any:
    if name in ("build_training", "TrainingSetup"):
        from tuner import knobs

        return getattr(knobs, name)
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")
