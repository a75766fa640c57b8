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

and then ``objective = "my_task.py:WORKLOAD"`` in a study spec. The file's folder is importable
while it loads, so it may import its sibling modules (``from helpers import make_model``).

Data the way most training code holds it, as map-style torch Datasets, goes in `Datasets`;
tuner then builds the DataLoader from each trial's config (workers, pinning, prefetching) and
measures throughput with the input pipeline included::

    def load_data() -> Datasets:
        return Datasets(ImageFolderish("train", augment=True), ImageFolderish("val"))
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
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

    ``chance`` is what a model that learned nothing scores (1/classes for accuracy, 8 bits
    per character for bytes). A trial not better than it by more than the noise did not
    train: it is infeasible, so it never sits on the front for its speed alone.
    """

    name: str
    direction: Direction
    noise: float = 0.0
    chance: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.noise, int | float) and self.noise >= 0):
            raise WorkloadError(f"metric.noise: must be a number >= 0, got {self.noise!r}")
        if self.chance is not None and not isinstance(self.chance, int | float):
            raise WorkloadError(f"metric.chance: must be a number or None, got {self.chance!r}")


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
class Datasets:
    """Map-style torch Datasets: ``dataset[i]`` returns ``(input, target)``.

    The input may be a tensor or a tuple or dict of tensors; the model is called with it as
    it comes (``model(input)``), after collation and the move to the device. Targets are
    collated and moved the same way. Per-sample work in ``__getitem__`` (decoding,
    augmentation) runs in the DataLoader's worker processes when a trial has workers, and is
    part of the measured throughput.

    Randomness: the sampler draws from a generator seeded by the trial's seed, so a seed
    fixes the sample order. Random draws in ``__getitem__`` are seeded too: with
    ``num_workers = 0`` by the trial's seed (torch, ``random`` and NumPy), and in each worker
    by torch's per-worker seed (drawn from that generator, plus the worker id), which torch
    gives Python's ``random`` and NumPy in each worker as well. So a seed fixes the
    augmentation for a given ``num_workers``; a different number of workers deals the random
    draws out differently.

    Attributes:
        train: Training examples; the last partial batch of each epoch is dropped, so every
            micro-batch has one shape.
        val: Validation examples, all of them evaluated, in order.
        collate_fn: How a list of examples becomes a batch; torch's default when None.
    """

    train: Any  # torch.utils.data.Dataset; Any so the CLI need not import torch
    val: Any
    collate_fn: Callable[[list[Any]], Any] | None = None


@dataclass(frozen=True)
class Workload:
    """A model, its data, its loss and its metric.

    Attributes:
        name: Short identifier, stored with every study.
        metric: The validation metric the study optimises alongside throughput.
        build_model: Returns a fresh, randomly initialised model (called once per trial,
            after the trial's seed is set, so initialisation is reproducible).
        load_data: Returns the train and validation data: `Data` (tensors) or `Datasets`.
            Called once per trial.
        loss: ``loss(outputs, targets) -> scalar`` averaged over the batch.
        score: ``score(outputs, targets) -> tensor`` of per-example (or per-token) metric
            values; the metric is their mean over the whole validation set.
        description: One line for listings.
        eval_batch_size: Batch size for validation passes (not tuned: it changes no result).
        baseline: The config every study runs first and judges all others against; by
            default plain PyTorch defaults (`tuner.config.DEFAULT_BASELINE`). Declare your
            own when your current training recipe is the bar to beat.
        checkpoint_blocks: Returns the submodules of a built model whose activations may be
            recomputed in the backward pass instead of stored (activation checkpointing, the
            out-of-memory remedy), e.g. ``lambda model: model.blocks``. When None, the
            ``activation_checkpointing`` knob is dropped from the space.
    """

    name: str
    metric: Metric
    build_model: Callable[[], nn.Module]
    load_data: Callable[[], Data | Datasets]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    description: str = ""
    eval_batch_size: int = 512
    baseline: TrialConfig = DEFAULT_BASELINE
    checkpoint_blocks: Callable[[nn.Module], Iterable[nn.Module]] | None = None


@dataclass(frozen=True)
class WorkloadTraits:
    """What probing a workload found: which knobs can mean anything for it.

    The default (all unknown) drops nothing; `tuner.harness.probe` measures the real ones.
    """

    datasets: bool = True  # Datasets, so the DataLoader knobs apply (not in-memory Data)
    input_rank: int | None = 4  # dimensions of a batch of inputs; None if not one tensor
    checkpointable: bool = True  # the workload declares checkpoint_blocks


#: Built-in workloads by short name; a spec may use these names instead of a reference.
#: Each module holds ``WORKLOAD`` (small) and ``GPU_WORKLOAD`` (a Workload or a function
#: returning one).
BUILTIN: dict[str, str] = {
    "digits": "objectives.digits:WORKLOAD",
    "charlm": "objectives.charlm:WORKLOAD",
    "digits32": "objectives.digits32:WORKLOAD",
}
#: Sizes of the built-in workloads: ``small`` trains in seconds on a CPU; ``gpu`` is a model
#: sized for a data-centre GPU (a deeper, wider network and bigger batches of work).
SIZES = ("small", "gpu")


def load_workload(reference: str, size: str = "small") -> Workload:
    """Resolve ``name``, ``package.module:attr`` or ``path/to/file.py:attr`` to a Workload.

    The attribute may be a Workload or a zero-argument callable returning one (so expensive
    set-up can wait until a study actually runs). `size` picks a built-in workload's size;
    a user's workload has one size, its own.

    Whatever the user's code raises while it is imported or called, ``sys.exit()`` included,
    becomes a WorkloadError naming it: a SystemExit would otherwise end tuner silently with the
    module's exit code. Only a KeyboardInterrupt passes through. What the code prints goes to
    stderr, since stdout carries tuner's own output (the front, an exported config).

    Raises:
        WorkloadError: the reference is malformed, the import fails, the attribute is missing,
            or it is not a Workload.
    """
    if size not in SIZES:
        raise WorkloadError(f"size {size!r}: not a workload size; use one of {', '.join(SIZES)}")
    if reference in BUILTIN and size != "small":
        reference = f"{BUILTIN[reference].partition(':')[0]}:{_SIZED[size]}"
    elif size != "small":
        raise WorkloadError(
            f"size {size!r}: sizes apply to the built-in workloads ({', '.join(sorted(BUILTIN))}); "
            "remove size, or make a second workload of your own"
        )
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


#: The attribute each built-in module holds its sized workload in.
_SIZED = {"gpu": "GPU_WORKLOAD"}


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
            # Sibling modules (`from helpers import ...`) import as they would if the user
            # ran the file; the folder stays on the path, since they may import lazily.
            folder = str(path.resolve().parent)
            if folder not in sys.path:
                sys.path.insert(0, folder)
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
