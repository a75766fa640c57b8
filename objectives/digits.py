"""Built-in workload ``digits``: a small CNN on scikit-learn's 8x8 handwritten digits.

The data ships inside scikit-learn (1797 images, no download), so a study runs anywhere.
The split is fixed (stratified 80/20, 1437 train / 360 validation, independent of any trial
seed), so every trial of every study is judged on the same images.

The CNN is sized for tuning, not for the task: it is wide enough (about 150k parameters,
convolutions on 32 and 64 channels) that batch size, bf16 autocast and ``torch.compile``
visibly change its CPU throughput, yet ten epochs at batch 64 take about 2 s on one CPU
thread. Measured on a 2-core Xeon (AVX-512, AMX), one thread, AdamW lr 3e-3 (constant),
batch 64, fp32, over 12 seeds: 10 epochs take 1.8-1.9 s and reach 96.9-98.6 % validation
accuracy; 15 epochs take about 2.7 s and reach 97.8-99.2 %. SGD with momentum 0.9, lr 0.05:
98.1-98.9 % after 10 epochs (3 seeds). Steady-state throughput on one thread: fp32 8.3k
images/s at batch 64 and 9.8k at batch 256; bf16 autocast 10.7k and 15.9k (1.3x and 1.6x);
``torch.compile`` (inductor, CPU) is slower than eager in fp32 (6.3k and 7.4k) and about
even in bf16, after 7-9 s of compilation.

The ``gpu`` size (``GPU_WORKLOAD``, ``size = "gpu"`` in a study) is the same network eight
times as wide (256 and 512 channels, a hidden layer of 1024; about 9.6M parameters) on the same
images, so that a data-centre GPU has enough work per step for precision, compile mode and batch
size to matter. Its figures are not measured here.

Example::

    from tuner.workload import load_workload

    workload = load_workload("digits")
    data = workload.load_data()  # 1437 train, 360 validation images of shape [1, 8, 8]
"""

from __future__ import annotations

import dataclasses
import functools

import torch
from torch import nn
from torch.nn import functional as F

from tuner.workload import Data, Direction, Metric, Workload

#: Fraction of the images held out for validation (360 of 1797).
_VAL_FRACTION = 0.2
#: Fixed seed of the split, so it never depends on a trial's seed.
_SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def load_data() -> Data:
    """Load the 8x8 digits as float32 images in [0, 1], shape [N, 1, 8, 8], int64 labels.

    Cached: every trial in one process shares the same tensors (the harness never mutates
    them), so only the first trial pays for importing scikit-learn and building the split.
    The split is stratified so each class is equally represented in validation, which keeps
    the accuracy of a 360-image validation set from drifting with the class mix.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target, dtype=torch.int64)
    train_idx, val_idx = train_test_split(
        range(len(labels)),
        test_size=_VAL_FRACTION,
        stratify=digits.target,
        random_state=_SPLIT_SEED,
    )
    train_idx, val_idx = torch.tensor(train_idx), torch.tensor(val_idx)
    return Data(images[train_idx], labels[train_idx], images[val_idx], labels[val_idx])


def build_model() -> nn.Module:
    """Two 3x3 convolutions at full 8x8 resolution, one pooling, a two-layer classifier.

    Convolving before pooling keeps most of the compute in the convolutions, where batch
    size, bf16 and compilation make a measurable difference; an MLP this small would be
    dominated by per-step overhead and get slower under bf16.
    """
    return _cnn(32, 64, 128)


def build_gpu_model() -> nn.Module:
    """The ``gpu`` size: the same layout, eight times as wide (256 and 512 channels, a
    hidden layer of 1024; about 9.6M parameters), so a data-centre GPU has work to do."""
    return _cnn(256, 512, 1024)


def _cnn(first: int, second: int, hidden: int) -> nn.Module:
    """Two 3x3 convolutions of `first` and `second` channels, a pooling, a `hidden` layer."""
    return nn.Sequential(
        nn.Conv2d(1, first, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(first, second, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(second * 4 * 4, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-image correctness (1.0 or 0.0); their mean over the validation set is accuracy."""
    return (outputs.argmax(-1) == targets).float()


WORKLOAD = Workload(
    name="digits",
    # 360 validation images: one config's accuracy spreads by 0.3-0.9% between seeds.
    metric=Metric("accuracy", Direction.MAXIMIZE, noise=0.01, chance=0.1),  # 10 classes
    build_model=build_model,
    load_data=load_data,
    loss=F.cross_entropy,
    score=accuracy,
    description="small CNN on scikit-learn's 8x8 digits (1437 train / 360 val images)",
    eval_batch_size=512,
)

# The same 360 validation images, so the small size's seed spread.
GPU_WORKLOAD = dataclasses.replace(
    WORKLOAD,
    name="digits-gpu",
    build_model=build_gpu_model,
    description="digits' CNN at 8x the width, on the same 8x8 digits (GPU size)",
)
