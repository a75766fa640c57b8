"""Small real workloads for harness and runner tests: real torch training, in milliseconds.

`WORKLOAD` learns a linearly separable task. `NAN_WORKLOAD` and `OOM_WORKLOAD` fail the way
real trials fail (a loss that turns NaN, an allocator out-of-memory error) so the failure
paths are exercised end to end. Loaded by path (`tests/toy_workload.py:WORKLOAD`) like a
user's own file.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import torch
from torch import nn

from tuner.config import (
    OptimizerConfig,
    OptimizerName,
    ScheduleConfig,
    ScheduleName,
    TrialConfig,
)
from tuner.workload import Data, Direction, Metric, Workload


@functools.lru_cache(maxsize=1)
def load_data() -> Data:
    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(640, 16, generator=generator)
    y = (x[:, :8].sum(1) > x[:, 8:].sum(1)).long()
    return Data(x[:512], y[:512], x[512:], y[512:])


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (outputs.argmax(-1) == targets).float()


WORKLOAD = Workload(
    name="toy",
    metric=Metric("accuracy", Direction.MAXIMIZE),
    build_model=build_model,
    load_data=load_data,
    loss=nn.functional.cross_entropy,
    score=accuracy,
    description="separable toy task",
)


class _Wrapped(nn.Module):
    """The toy model behind a forward that tests can instrument."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = build_model()


class _Counting(_Wrapped):
    """Counts forward calls, so a test can check micro-batches actually run."""

    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        return self.inner(x)


class _OutOfMemory(_Wrapped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] >= 128:  # large training batches "do not fit"
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 8.00 GiB total)"
            )
        return self.inner(x)


def _nan_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, targets) * float("nan")


COUNTING_WORKLOAD = replace(WORKLOAD, name="toy-counting", build_model=_Counting)
NAN_WORKLOAD = replace(WORKLOAD, name="toy-nan", loss=_nan_loss)
OOM_WORKLOAD = replace(WORKLOAD, name="toy-oom", build_model=_OutOfMemory)
#: A workload whose own recipe is the bar to beat; batch 16 lies outside the quick space.
OWN_BASELINE = TrialConfig(
    OptimizerConfig(OptimizerName.SGD, lr=0.05, momentum=0.9, nesterov=False),
    ScheduleConfig(ScheduleName.COSINE),
    batch_size=16,
)
BASELINE_WORKLOAD = replace(WORKLOAD, name="toy-baseline", baseline=OWN_BASELINE)
