"""The performance key: which knobs set how fast a config trains, apart from how well.

Throughput depends on the batch, precision, compile mode, input pipeline, memory layout and
the optimizer's kind and kernels, never on lr, schedule or weight decay. Trials that share a
key (on the same device) share a speed, so one measurement serves them all. The key is the
config's dict with the "how well" knobs removed, so it never needs editing when a
performance knob is added.
"""

from __future__ import annotations

import json
from typing import Any

#: Optimizer fields that change only the mathematics (the name and kernel choice stay).
_MATH = frozenset({"lr", "weight_decay", "betas", "momentum", "nesterov", "alpha", "eps"})


def performance_key(config: dict[str, Any]) -> str:
    """A stable string naming `config`'s speed-relevant knobs (a stored TrialConfig dict).

    Gradient clipping stays in the key as on or off (it costs a norm over all gradients),
    not by its threshold.
    """
    key = {name: value for name, value in config.items() if name not in ("schedule", "optimizer")}
    optimizer = config.get("optimizer", {})
    key["optimizer"] = {k: v for k, v in optimizer.items() if k not in _MATH}
    key["grad_clip_norm"] = config.get("grad_clip_norm") is not None
    key.pop("batch_scaling", None)  # how lr was rescaled: mathematics only
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def memory_key(config: dict[str, Any]) -> str:
    """The performance key without the micro-batch and accumulation: trials sharing it differ
    in memory only through the micro-batch, which a peak-memory model fits."""
    rest = {k: v for k, v in config.items() if k not in ("batch_size", "accumulation_steps")}
    return performance_key(rest)
