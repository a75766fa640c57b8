"""What a range test runs and what it found: frozen records that import no torch.

The result's dict form is what a study stores under ``lr_find`` (one per optimizer), so a
later ``lr = "auto"`` can reuse it without training again: `RangeTest.same_run` says when.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tuner.config import ConfigError, OptimizerConfig, OptimizerName, Precision
from tuner.errors import UserError
from tuner.space.schema import Branch, Choice, Fixed, FloatRange, Knob

#: torch-lr-finder's own defaults for its plot, which picks the suggestion: the first steps'
#: loss is still the initial one and the last ones are diverging, so both ends are left out.
SKIP_START = 10
SKIP_END = 5
#: Fewer steps leave no point to suggest (torch-lr-finder needs skip_start + skip_end + 2).
MIN_ITERATIONS = SKIP_START + SKIP_END + 2
#: The range swept by default: fastai's, from far below any useful lr to far above, in 200
#: steps, twice fastai's 100. The loss is smoothed over about 20 steps (SMOOTHING in _run), so
#: the smoothed curve lags the lr, the more so the fewer steps each decade gets, and the
#: suggestion lands high: on digits over six seeds, 100 steps suggested 0.35-0.61 for SGD and
#: 0.010-0.51 for AdamW; 200 steps 0.17-0.43 and 0.0032-0.0088.
DEFAULT_START_LR = 1e-7
DEFAULT_END_LR = 10.0
DEFAULT_ITERATIONS = 200
#: Sanity caps: an lr above this is a typo (the space's lr domain), as are more steps.
MAX_LR = 100.0
MAX_ITERATIONS = 100_000


class LrFindError(UserError):
    """A range test cannot be run as asked; one line naming the option and the fix."""


class RangeTestFailed(UserError):
    """The range test ran and failed (out of memory, a precision the device lacks, a loss
    that diverged before anything could be suggested). Not a mistake in the command line,
    hence exit code 1, but still one line."""

    exit_code = 1


@dataclass(frozen=True)
class RangeTest:
    """One learning-rate range test: the lr grows exponentially from `start_lr` to `end_lr`
    over `iterations` optimizer steps of `optimizer` (whose own lr is ignored), each step
    `accumulation_steps` micro-batches of `batch_size` in `precision`.

    Raises:
        LrFindError: a value out of range, named by its command-line option.
    """

    optimizer: OptimizerConfig
    batch_size: int
    accumulation_steps: int = 1
    precision: Precision = Precision.FP32
    start_lr: float = DEFAULT_START_LR
    end_lr: float = DEFAULT_END_LR
    iterations: int = DEFAULT_ITERATIONS

    def __post_init__(self) -> None:
        for option, value in (("--start-lr", self.start_lr), ("--end-lr", self.end_lr)):
            if not (_number(value) and 0 < value <= MAX_LR):
                raise LrFindError(
                    f"{option}: {value!r} is not an lr in (0, {MAX_LR:g}]; write e.g. 1e-7"
                )
        if self.end_lr <= self.start_lr:
            raise LrFindError(
                f"--end-lr: {self.end_lr:g} is not above --start-lr {self.start_lr:g}; the test "
                "sweeps upward, so raise --end-lr or lower --start-lr"
            )
        for option, value, low, high in (
            ("--iterations", self.iterations, MIN_ITERATIONS, MAX_ITERATIONS),
            ("--batch-size", self.batch_size, 1, 2**20),
            ("--accumulation", self.accumulation_steps, 1, 64),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise LrFindError(f"{option}: {value!r} is not an integer in [{low}, {high}]")

    @property
    def effective_batch(self) -> int:
        """Samples per optimizer step: the batch the suggested lr belongs to."""
        return self.batch_size * self.accumulation_steps

    def params(self) -> dict[str, Any]:
        """The optimizer's hyperparameters besides lr, JSON-safe (as a stored config has them)."""
        optimizer = self.optimizer
        params: dict[str, Any] = {"weight_decay": optimizer.weight_decay}
        for name in ("momentum", "nesterov", "alpha"):
            if getattr(optimizer, name) is not None:
                params[name] = getattr(optimizer, name)
        if optimizer.betas is not None:
            params["betas"] = list(optimizer.betas)
        return params

    def same_run(self, other: RangeTest) -> bool:
        """Whether `other` trains what this test trains, so its suggestion holds here: the
        same optimizer and hyperparameters, batch, accumulation and precision. The swept range
        and the number of steps may differ: a user who chose them chose them on purpose."""
        return (
            self.optimizer.name == other.optimizer.name
            and self.params() == other.params()
            and (self.batch_size, self.accumulation_steps, self.precision)
            == (other.batch_size, other.accumulation_steps, other.precision)
        )


@dataclass(frozen=True)
class RangeTestResult:
    """What a range test found.

    Attributes:
        suggested_lr: The lr of the steepest loss descent, as torch-lr-finder's plot suggests
            it. It centres a range: trained at, it can diverge (SGD on digits did).
        min_loss_lr: The lr where the smoothed loss was lowest; above it the loss climbs.
        steps: Steps run; fewer than ``test.iterations`` when the loss diverged.
        diverged_at: The lr at which the loss passed 5x its best (or stopped being finite),
            ending the test; None when it ran to `end_lr`.
        plot: The loss-vs-lr PNG, if one was written.
        history: (lr, smoothed loss) of every step; not stored.
    """

    test: RangeTest
    suggested_lr: float
    min_loss_lr: float
    steps: int
    diverged_at: float | None
    device: str
    plot: str | None = None
    history: tuple[tuple[float, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe record a study stores under ``lr_find.<optimizer>``."""
        test = self.test
        return {
            "optimizer": test.optimizer.name.value,
            "params": test.params(),
            "batch_size": test.batch_size,
            "accumulation": test.accumulation_steps,
            "precision": test.precision.value,
            "start_lr": test.start_lr,
            "end_lr": test.end_lr,
            "iterations": test.iterations,
            "steps": self.steps,
            "suggested_lr": self.suggested_lr,
            "min_loss_lr": self.min_loss_lr,
            "diverged_at": self.diverged_at,
            "device": self.device,
            "plot": self.plot,
        }

    @classmethod
    def from_dict(cls, data: Any) -> RangeTestResult | None:
        """A stored record, or None where it cannot be read (written by another version):
        a record that cannot be trusted is one to measure again, not an error."""
        try:
            params = dict(data["params"])
            betas = params.pop("betas", None)
            optimizer = OptimizerConfig(
                OptimizerName(data["optimizer"]),
                lr=data["start_lr"],
                betas=None if betas is None else (betas[0], betas[1]),
                **params,
            )
            test = RangeTest(
                optimizer,
                data["batch_size"],
                data["accumulation"],
                Precision(data["precision"]),
                data["start_lr"],
                data["end_lr"],
                data["iterations"],
            )
            result = cls(
                test,
                float(data["suggested_lr"]),
                float(data["min_loss_lr"]),
                int(data["steps"]),
                None if data["diverged_at"] is None else float(data["diverged_at"]),
                str(data["device"]),
                data.get("plot"),
            )
        except (TypeError, KeyError, ValueError, IndexError, ConfigError):
            return None
        return result if _number(result.suggested_lr) and result.suggested_lr > 0 else None


def representative_optimizer(branch: Branch, lr: float) -> OptimizerConfig:
    """The optimizer of `branch` with each hyperparameter besides lr where the space centres
    it: a fixed value as it is, a list's first value, the middle of a range (geometric for a
    log range). The suggested lr depends on them (SGD's effective step is lr / (1 - momentum)),
    so the test trains the optimizer the study will search around, not torch's defaults.

    Example:
        >>> from tuner.space import load_space
        >>> sgd = load_space("default").optimizers[0]
        >>> representative_optimizer(sgd, lr=0.1).momentum
        0.745
    """
    values = {name: _centre(knob) for name, knob in branch.params if name != "lr"}
    betas = None
    if "beta1" in values:
        betas = (values.pop("beta1"), values.pop("beta2"))
    return OptimizerConfig(OptimizerName(branch.name), lr=lr, betas=betas, **values)


def _centre(knob: Knob) -> Any:
    if isinstance(knob, Fixed):
        return knob.value
    if isinstance(knob, Choice):
        return knob.values[0]
    if isinstance(knob, FloatRange):
        if knob.log:
            return math.sqrt(knob.low * knob.high)
        return (knob.low + knob.high) / 2
    return knob.low + (knob.high - knob.low) // (2 * knob.step) * knob.step


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
