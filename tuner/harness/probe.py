"""The probe: one small batch through a workload before a study starts.

Data of the wrong kind or shape would otherwise fail every trial, one by one, with an
AttributeError deep in the loop and a study full of failures. The probe loads the data, draws
two examples, collates them, and runs the model, the loss and the score once in eval mode, so
the user gets one line naming what is wrong before anything is stored. What it sees (Datasets
or tensors, the rank of the inputs, checkpointable blocks) decides which knobs the space keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import IterableDataset, default_collate

from tuner.text import one_line, shown
from tuner.workload import Data, Datasets, Workload, WorkloadError, WorkloadTraits

#: Examples the probe collates: two, so a batch dimension is real but any model runs it.
_PROBE_EXAMPLES = 2


def probe(workload: Workload) -> WorkloadTraits:
    """Check that `workload`'s data and model fit together; describe it for the space.

    Raises:
        WorkloadError: one line naming the field at fault, what it holds and what was expected.
    """
    data = _call("load_data()", workload.load_data)
    if isinstance(data, Datasets):
        batch, val_batch = _dataset_batch(data, "train"), _dataset_batch(data, "val")
    elif isinstance(data, Data):
        batch, val_batch = _tensor_batch(data, "train"), _tensor_batch(data, "val")
    else:
        raise WorkloadError(
            f"workload.load_data: returned a {type(data).__name__}; return "
            "tuner.workload.Data (tensors) or tuner.workload.Datasets (torch Datasets)"
        )
    model = _call("build_model()", workload.build_model)
    if not isinstance(model, torch.nn.Module):
        raise WorkloadError(
            f"workload.build_model: returned a {type(model).__name__}; return a torch.nn.Module"
        )
    model.eval()
    with torch.no_grad():
        for inputs, targets in (batch, val_batch):
            _check_model(workload, model, inputs, targets)
    inputs = batch[0]
    return WorkloadTraits(
        datasets=isinstance(data, Datasets),
        input_rank=inputs.dim() if isinstance(inputs, torch.Tensor) else None,
        checkpointable=workload.checkpoint_blocks is not None,
    )


def _call(what: str, function: Callable[[], Any]) -> Any:
    try:
        return function()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        raise WorkloadError(f"workload.{what}: failed: {_error(exc)}; fix it there") from None


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {shown(one_line(exc), str, limit=300)}"


def _tensor_batch(data: Data, split: str) -> tuple[Any, Any]:
    fields = (f"{split}_inputs", f"{split}_targets")
    values = [getattr(data, name) for name in fields]
    for name, value in zip(fields, values, strict=True):
        if not isinstance(value, torch.Tensor):
            fix = (
                "return tuner.workload.Datasets(train, val) for torch Datasets"
                if isinstance(value, torch.utils.data.Dataset)
                else "convert it with torch.as_tensor"
            )
            raise WorkloadError(
                f"workload.load_data: Data.{name} is a {type(value).__name__}, expected a "
                f"torch.Tensor; {fix}"
            )
        if value.dim() == 0 or len(value) == 0:
            raise WorkloadError(
                f"workload.load_data: Data.{name} has shape {tuple(value.shape)}, expected "
                "examples along its first dimension; return at least one example"
            )
    if len(values[0]) != len(values[1]):
        raise WorkloadError(
            f"workload.load_data: Data.{fields[0]} has {len(values[0])} examples but "
            f"{fields[1]} has {len(values[1])}; give every input its target"
        )
    return values[0][:_PROBE_EXAMPLES], values[1][:_PROBE_EXAMPLES]


def _dataset_batch(data: Datasets, split: str) -> tuple[Any, Any]:
    where = f"workload.load_data: Datasets.{split}"
    dataset = getattr(data, split)
    if isinstance(dataset, IterableDataset) or not (
        hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")
    ):
        raise WorkloadError(
            f"{where} is a {type(dataset).__name__}, expected a map-style Dataset "
            "(__getitem__ and __len__); wrap the data in a torch.utils.data.Dataset"
        )
    try:
        size = len(dataset)
        examples = [dataset[i] for i in range(min(size, _PROBE_EXAMPLES))]
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        raise WorkloadError(f"{where}: reading an example failed: {_error(exc)}") from None
    if not examples:
        raise WorkloadError(f"{where} is empty; give it at least one example")
    first = examples[0]
    if not (isinstance(first, tuple | list) and len(first) == 2):
        what = f"a {len(first)}-tuple" if isinstance(first, tuple | list) else type(first).__name__
        raise WorkloadError(
            f"{where}[0] is {what}, expected an (input, target) pair; return input, target "
            "from __getitem__"
        )
    collate = data.collate_fn or default_collate
    try:
        batch = collate(examples)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        raise WorkloadError(
            f"{where}: collating two examples failed: {_error(exc)}; return tensors (or "
            "tuples/dicts of them) from __getitem__, or pass a collate_fn"
        ) from None
    if not (isinstance(batch, tuple | list) and len(batch) == 2):
        raise WorkloadError(
            f"{where}: a collated batch is {type(batch).__name__}, expected an (input, "
            "target) pair; make collate_fn return inputs, targets"
        )
    for part, value in zip(("input", "target"), batch, strict=True):
        stray = _not_a_tensor(value)
        if stray is not None:
            raise WorkloadError(
                f"{where}: a batch's {part} holds {stray}, expected a tensor or a tuple/dict "
                "of tensors; return tensors (or numbers) from __getitem__, or pass a collate_fn"
            )
    return batch[0], batch[1]


def _not_a_tensor(value: Any) -> str | None:
    """What in a collated value is not a tensor ("a str", "an empty dict"), or None."""
    if isinstance(value, torch.Tensor):
        return None
    if isinstance(value, dict | tuple | list):
        parts = list(value.values()) if isinstance(value, dict) else list(value)
        if not parts:
            return f"an empty {type(value).__name__}"
        return next((found for v in parts if (found := _not_a_tensor(v))), None)
    return f"a {type(value).__name__}"


def _check_model(workload: Workload, model: torch.nn.Module, inputs: Any, targets: Any) -> None:
    shapes = f"inputs {_shape(inputs)}, targets {_shape(targets)}"
    try:
        outputs = model(inputs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        raise WorkloadError(
            f"workload.build_model: the model failed on a batch of {shapes}: {_error(exc)}; "
            "make the model accept the data's inputs"
        ) from None
    for name, function, scalar in (
        ("loss", workload.loss, True),
        ("score", workload.score, False),
    ):
        try:
            value = function(outputs, targets)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            raise WorkloadError(
                f"workload.{name}: failed on outputs {_shape(outputs)} and targets "
                f"{_shape(targets)}: {_error(exc)}; make {name}(outputs, targets) fit the data"
            ) from None
        if not isinstance(value, torch.Tensor) or (scalar and value.numel() != 1):
            expected = "a scalar tensor (the batch mean)" if scalar else "a tensor of scores"
            raise WorkloadError(f"workload.{name}: returned {_shape(value)}, expected {expected}")


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{list(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shape(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_shape(v) for v in value) + ")"
    return type(value).__name__
