"""How a failure is stored: its trial state and the constraints the sampler learns from.

Torch-free, so tests that write synthetic studies store failures exactly as the runner does.
`tuner.telling` explains why each constraint exists.
"""

from __future__ import annotations

from optuna.trial import TrialState

from tuner.attrs import FailureKind

#: A trial ending with one of these kinds is PRUNED; any other failure is FAIL.
_PRUNED_KINDS = frozenset(
    {
        FailureKind.UNSUPPORTED,
        FailureKind.TOO_SLOW,
        FailureKind.OUT_OF_MEMORY,
        FailureKind.DIVERGED,
        FailureKind.STOPPED,
    }
)


def failure_state(
    kind: FailureKind, memory_budget_mb: float | None = None, violation: float = 1.0
) -> tuple[TrialState, dict[str, float]]:
    """The state and constraints a failure of `kind` is stored with."""
    constraints: dict[str, float] = {}
    if kind is FailureKind.OUT_OF_MEMORY:
        # Past the budget by at least the budget again: a crash is no near miss.
        constraints["memory_mb"] = memory_budget_mb or 1.0
    elif kind is FailureKind.DIVERGED:
        constraints["numerics"] = 1.0
    elif kind is FailureKind.STOPPED:
        constraints["stopped"] = violation
    return (TrialState.PRUNED if kind in _PRUNED_KINDS else TrialState.FAIL), constraints
