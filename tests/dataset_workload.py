"""A Dataset workload for tests: images behind a map-style Dataset with per-sample augmentation.

Loaded by path like a user's file. `AUGMENT_CALLS` counts `__getitem__` calls in this process,
so a test can tell the DataLoader (not in-memory tensors) fed the training.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.data import Dataset

from tuner.workload import Datasets, Direction, Metric, Workload

AUGMENT_CALLS = [0]


class Blobs(Dataset[tuple[torch.Tensor, int]]):
    """Two classes of 3x12x12 images: a bright blob top-left or bottom-right, jittered."""

    def __init__(self, n: int, seed: int, augment: bool) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 2, (n,), generator=generator)
        self.noise = 0.3 * torch.randn(n, 3, 12, 12, generator=generator)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        label = int(self.labels[index])
        image = self.noise[index].clone()
        corner = slice(1, 5) if label == 0 else slice(7, 11)
        image[:, corner, corner] += 1.0
        if self.augment:
            AUGMENT_CALLS[0] += 1
            shift = int(torch.randint(-1, 2, ()))  # torch's RNG: seeded per worker
            image = image.roll(shift, dims=2)
        return image, label


@functools.lru_cache(maxsize=1)
def load_data() -> Datasets:
    return Datasets(Blobs(384, seed=0, augment=True), Blobs(128, seed=1, augment=False))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
                nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            ]
        )
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean((2, 3)))


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (outputs.argmax(-1) == targets).float()


WORKLOAD = Workload(
    name="blobs",
    metric=Metric("accuracy", Direction.MAXIMIZE),
    build_model=Net,
    load_data=load_data,
    loss=nn.functional.cross_entropy,
    score=accuracy,
    description="two-class blobs behind a Dataset",
    checkpoint_blocks=lambda model: model.blocks,  # type: ignore[return-value]
)
