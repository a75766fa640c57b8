"""Search spaces: declared in TOML, validated, restricted to the hardware, sampled by Optuna.

Example:
    >>> import optuna
    >>> from tuner.space import load_space, sample_config
    >>> space = load_space("default")
    >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> config = sample_config(study.ask(), space)
"""

from __future__ import annotations

from tuner.space.load import builtin_spaces, load_space
from tuner.space.restrict import Dropped, restrict
from tuner.space.sample import SuggestingTrial, config_params, sample_config, suggest_params
from tuner.space.schema import (
    Branch,
    Categorical,
    Choice,
    Clipping,
    Fixed,
    FloatRange,
    IntRange,
    Knob,
    SearchSpace,
    SpaceError,
)

__all__ = [
    "Branch",
    "Categorical",
    "Choice",
    "Clipping",
    "Dropped",
    "Fixed",
    "FloatRange",
    "IntRange",
    "Knob",
    "SearchSpace",
    "SpaceError",
    "SuggestingTrial",
    "builtin_spaces",
    "config_params",
    "load_space",
    "restrict",
    "sample_config",
    "suggest_params",
]
