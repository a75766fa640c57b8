"""How long one trial trains, and how it is observed.

Kept free of torch so a study spec validates instantly. The harness turns a Budget into an
optimizer-step horizon; the LR schedule is laid over that horizon, so every budget kind runs
its schedule to completion.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuner.bounds import SECONDS, Bound
from tuner.errors import UserError
from tuner.text import shown


class BudgetError(UserError):
    """A budget is inconsistent; the message names the field."""


@dataclass(frozen=True)
class Budget:
    """Exactly one of epochs, steps or seconds sets the training length of a trial.

    Attributes:
        epochs: Passes over the training data, counted in micro-batches (drop-last), so the
            number of optimizer steps falls as accumulation rises.
        steps: Optimizer steps.
        seconds: Steady-state training seconds. The step horizon is estimated from the mean
            speed of steady warm-up steps, timed until they add up to a tenth of the budget
            (so the trial spends about 10% more), so training lasts what the budget says
            and faster configurations train for more steps: the metric then rewards speed,
            as a wall-clock budget should.
        evaluations: Validation passes spread evenly over training (the learning curve); the
            last one is the trial's metric.
        warmup_steps: Optimizer steps run before training to compile and warm caches. Their
            updates are discarded (the model is restored to its initial weights), so
            compilation never touches the result and every timed step is steady state.
        windows: Timing windows over training; throughput is the median of their rates.
        time_limit_s: Wall seconds a trial may take. A trial is stopped as soon as its
            warm-up speed projects past the limit (fp16 on a CPU can be 100x slower than
            fp32: one such trial must not eat a study's whole time), or when it runs past it.
    """

    epochs: int | None = None
    steps: int | None = None
    seconds: float | None = None
    evaluations: int = 4
    warmup_steps: int = 3
    windows: int = 8
    time_limit_s: float | None = None

    def __post_init__(self) -> None:
        given = [name for name in ("epochs", "steps", "seconds") if getattr(self, name) is not None]
        if len(given) != 1:
            raise BudgetError(
                "budget: give exactly one of epochs, steps or seconds, "
                f"got {', '.join(given) if given else 'none'}"
            )
        for name, bound in _BOUNDS.items():
            value = getattr(self, name)
            if value is not None and not bound.holds(value):
                raise BudgetError(f"budget.{name}: must be {bound}, got {shown(value)}")


# Sane bounds: past these a budget is a typo, and every trial would fail or never end.
_BOUNDS: dict[str, Bound] = {
    "epochs": Bound(1, 10**6, integer=True),
    "steps": Bound(1, 10**9, integer=True),
    "seconds": SECONDS,
    "evaluations": Bound(1, 1000, integer=True),
    "warmup_steps": Bound(2, 1000, integer=True),
    "windows": Bound(3, 1000, integer=True),
    "time_limit_s": SECONDS,
}
