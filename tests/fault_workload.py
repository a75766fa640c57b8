"""Workloads that fail the way real training code does when it takes the process down:
a hang, a native crash, an exit from user code, DataLoader worker processes. Loaded by path,
like a user's file, by the supervisor and runner reliability tests.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tuner.workload import Data

# Loaded by path like a user's file, so the repository root is not importable by default.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.toy_workload import WORKLOAD, build_model, load_data

#: Training forward calls after which a faulty model misbehaves: past warm-up (3 steps) and
#: into the timed windows, so the supervisor has heard a speed by then.
_AFTER_CALLS = 8


class _Faulty(nn.Module):
    """The toy model, misbehaving in training after `_AFTER_CALLS` forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = build_model()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls > _AFTER_CALLS:
                self.fault()
        return self.inner(x)

    def fault(self) -> None:
        raise NotImplementedError


class _Hang(_Faulty):
    def fault(self) -> None:
        time.sleep(600)


class _Exit(_Faulty):
    def fault(self) -> None:
        print("about to leave", file=sys.stderr, flush=True)
        os._exit(3)


class _Segfault(_Faulty):
    def fault(self) -> None:
        print("reading address 0", file=sys.stderr, flush=True)
        ctypes.string_at(0)


class _SysExit(_Faulty):
    def fault(self) -> None:
        sys.exit(4)


class _SlowWhenAsked(nn.Module):
    """The toy model, slowed to half a second a step while TUNER_TEST_SLOW is set, so a test
    can catch a trial mid-training and then re-run the same spec at full speed."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = build_model()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and os.environ.get("TUNER_TEST_SLOW"):
            time.sleep(0.5)
        return self.inner(x)


def _through_a_loader() -> Data:
    """The toy data, read through a DataLoader with two worker processes: a trial's process
    must be allowed children of its own."""
    data = load_data()
    loader = DataLoader(
        TensorDataset(data.train_inputs, data.train_targets), batch_size=64, num_workers=2
    )
    parts = list(loader)
    pids = DataLoader(range(2), num_workers=2, collate_fn=lambda _: os.getpid())
    assert len(set(pids)) == 2  # two distinct worker processes really ran
    return Data(
        torch.cat([x for x, _ in parts]),
        torch.cat([y for _, y in parts]),
        data.val_inputs,
        data.val_targets,
    )


HANG = replace(WORKLOAD, name="hang", build_model=_Hang)
EXIT = replace(WORKLOAD, name="exit", build_model=_Exit)
SEGFAULT = replace(WORKLOAD, name="segfault", build_model=_Segfault)
SYS_EXIT = replace(WORKLOAD, name="sys-exit", build_model=_SysExit)
SLOW_WHEN_ASKED = replace(WORKLOAD, name="slow-when-asked", build_model=_SlowWhenAsked)
LOADER = replace(WORKLOAD, name="loader", load_data=_through_a_loader)
