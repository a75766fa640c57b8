"""The workload protocol: what tuner needs to know to train and score a user's model.

A workload is a frozen record of five callables and a metric. Tuner owns everything about
*how* to train (optimizer, schedule, batch, precision, compile); the workload owns *what* is
trained and how it is judged. Keeping the protocol to plain callables means a user's existing
model and data code plugs in without subclassing anything.

Example (a file ``my_task.py``)::

    import torch
    from tuner.workload import Data, Direction, Metric, Workload

    def load_data() -> Data:
        x = torch.randn(1024, 8)
        y = (x.sum(1) > 0).long()
        return Data(x[:896], y[:896], x[896:], y[896:])

    WORKLOAD = Workload(
        name="toy",
        metric=Metric("accuracy", Direction.MAXIMIZE),
        build_model=lambda: torch.nn.Linear(8, 2),
        load_data=load_data,
        loss=torch.nn.functional.cross_entropy,
        score=lambda out, y: (out.argmax(-1) == y).float(),
    )

and then ``objective = "my_task.py:WORKLOAD"`` in a study spec.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.config import DEFAULT_BASELINE, TrialConfig
from tuner.errors import UserError
from tuner.text import one_line, shown

if TYPE_CHECKING:
    import torch
    from torch import nn


class WorkloadError(UserError):
    """A workload reference cannot be resolved to a Workload; the message says why and how."""


class Direction(StrEnum):
    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


@dataclass(frozen=True)
class Metric:
    """The validation metric: its name (shown everywhere) and which way is better.

    ``noise`` is how far the metric moves between seeds of one config (in metric units).
    A config whose metric beats the baseline's by no more than this has not shown that it
    trains any better, so readers flag it instead of recommending it silently.
    """

    name: str
    direction: Direction
    noise: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.noise, int | float) and self.noise >= 0):
            raise WorkloadError(f"metric.noise: must be a number >= 0, got {self.noise!r}")


@dataclass(frozen=True)
class Data:
    """In-memory tensors on the CPU; the harness moves them to the device once.

    The first dimension of inputs and targets indexes examples. Training batches are drawn by
    indexing, so the data must fit in memory; that keeps per-step overhead near zero, which
    matters when a whole trial lasts two seconds.
    """

    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    val_inputs: torch.Tensor
    val_targets: torch.Tensor


@dataclass(frozen=True)
class Workload:
    """A model, its data, its loss and its metric.

    Attributes:
        name: Short identifier, stored with every study.
        metric: The validation metric the study optimises alongside throughput.
        build_model: Returns a fresh, randomly initialised model (called once per trial,
            after the trial's seed is set, so initialisation is reproducible).
        load_data: Returns the train and validation tensors. Called once per trial.
        loss: ``loss(outputs, targets) -> scalar`` averaged over the batch.
        score: ``score(outputs, targets) -> tensor`` of per-example (or per-token) metric
            values; the metric is their mean over the whole validation set.
        description: One line for listings.
        eval_batch_size: Batch size for validation passes (not tuned: it changes no result).
        baseline: The config every study runs first and judges all others against; by
            default plain PyTorch defaults (`tuner.config.DEFAULT_BASELINE`). Declare your
            own when your current training recipe is the bar to beat.
    """

    name: str
    metric: Metric
    build_model: Callable[[], nn.Module]
    load_data: Callable[[], Data]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    description: str = ""
    eval_batch_size: int = 512
    baseline: TrialConfig = DEFAULT_BASELINE


#: Built-in workloads by short name; a spec may use these names instead of a reference.
BUILTIN: dict[str, str] = {
    "digits": "objectives.digits:WORKLOAD",
    "charlm": "objectives.charlm:WORKLOAD",
}


def load_workload(reference: str) -> Workload:
    """Resolve ``name``, ``package.module:attr`` or ``path/to/file.py:attr`` to a Workload.

    The attribute may be a Workload or a zero-argument callable returning one (so expensive
    set-up can wait until a study actually runs).

    Whatever the user's code raises while it is imported or called, ``sys.exit()`` included,
    becomes a WorkloadError naming it: a SystemExit would otherwise end tuner silently with the
    module's exit code. Only a KeyboardInterrupt passes through. What the code prints goes to
    stderr, since stdout carries tuner's own output (the front, an exported config).

    Raises:
        WorkloadError: the reference is malformed, the import fails, the attribute is missing,
            or it is not a Workload.
    """
    reference = BUILTIN.get(reference, reference)
    module_ref, sep, attr = reference.rpartition(":")
    known = ", ".join(sorted(BUILTIN))
    if not sep or not module_ref or not attr:
        raise WorkloadError(
            f"objective {reference!r}: expected a built-in name ({known}), "
            "'package.module:attr' or 'path/to/file.py:attr'"
        )
    if module_ref.split(".")[0] == "tuner" and not module_ref.endswith(".py"):
        # tuner.cli:main, say, would run tuner inside itself, each level printing its error
        raise WorkloadError(
            f"objective {reference!r}: tuner's own modules hold no workload; name your own "
            f"module or a built-in ({known})"
        )
    with contextlib.redirect_stdout(sys.stderr):
        module = _import(module_ref, reference)
        if not hasattr(module, attr):
            raise WorkloadError(f"objective {reference!r}: module has no attribute {attr!r}")
        value = getattr(module, attr)
        if not isinstance(value, Workload) and callable(value):
            try:
                value = value()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                raise WorkloadError(
                    f"objective {reference!r}: calling {attr}() {_failure(exc)}; make {attr} a "
                    "Workload or a function that returns one"
                ) from None
    if not isinstance(value, Workload):
        raise WorkloadError(
            f"objective {reference!r}: {attr} is a {type(value).__name__}, expected a "
            "tuner.workload.Workload (or a function returning one)"
        )
    return value


def _import(module_ref: str, reference: str) -> Any:
    name = ""
    try:
        if module_ref.endswith(".py"):
            path = Path(module_ref)
            if not path.is_file():
                raise WorkloadError(f"objective {reference!r}: file {module_ref} does not exist")
            name = f"_tuner_workload_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise WorkloadError(f"objective {reference!r}: cannot import {module_ref}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(module_ref)
    except (WorkloadError, KeyboardInterrupt):
        raise
    except BaseException as exc:
        if name:  # leave no half-run module for a later import to find
            sys.modules.pop(name, None)
        fix = (
            "remove the exit from module level (put it under if __name__ == '__main__')"
            if isinstance(exc, SystemExit)
            else "fix the error there"
        )
        raise WorkloadError(
            f"objective {reference!r}: importing {module_ref} {_failure(exc)}; {fix}"
        ) from None


def _failure(exc: BaseException) -> str:
    """What went wrong in a user's code, for one line: an exit by its code, an error by its
    type and (newlines collapsed, cut short) message."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({shown(exc.code)})"
    text = shown(one_line(exc), str, limit=300)
    return f"failed: {type(exc).__name__}{f': {text}' if text else ''}"
