"""Built-in workload ``digits32``: a small ResNet on augmented 32x32 digits, fed by a DataLoader.

The images are scikit-learn's 8x8 digits (no download), in the same fixed, stratified split as
``digits`` (1437 train / 360 validation), upsampled once to 32x32. Unlike ``digits``, the data
comes the way most training code holds it: map-style torch Datasets (`tuner.workload.Datasets`)
whose training ``__getitem__`` augments each image on the CPU, every time it is read. So the
input pipeline costs a third to two thirds as much as the training step, and the DataLoader's
workers, precision, memory layout and batch size trade against each other: that is what this
workload is for.

Augmentation (`augment`), fresh on every read: a random affine map (rotation up to 12 degrees,
scale and shear up to 10 % and 0.15, shift up to 3 px) and an elastic distortion (Simard et al.
2003: sigma 4 px, alpha 34) combined into one sampling grid, rendered at twice the resolution
and averaged down, then random erasing of 2-12 % of the image half the time. The validation set
is not augmented. Model: ResNet-8 (`build_model`; 78k parameters, BatchNorm).

Measured on a 2-core Xeon (AVX-512, AMX) shared with other work, torch 2.13, one torch thread
in the training process; medians of 8 interleaved rounds, their range in brackets:

* augmentation: 0.51 ms per image (0.48-0.60);
* one training step at batch 64, per image: fp32 1.8 ms (1.6-2.0), channels_last 1.4 ms, bf16
  autocast 1.0 ms, bf16 with channels_last 0.75 ms (0.67-0.99). Augmenting an image costs a
  third of its fp32 step and two thirds of its fastest one;
* the DataLoader alone (batch 64, shuffled): 1.75k images/s with ``num_workers`` 0, 1.4k with 1
  (one process augments either way, and the batches cross processes), 2.1k with 2;
* training fed by that DataLoader, images/s at ``num_workers`` 0 / 1 / 2: fp32 380 / 420 / 460
  (340-400 / 390-530 / 380-530); bf16 with channels_last 730 / 870 / 880 (410-800 / 620-1090
  / 650-1140). Workers gain most where the step is fast; on two cores, a second worker adds
  little over one;
* 3 epochs at batch 64, fp32, ``num_workers`` 0: about 11 s of training.

Accuracy, AdamW lr 5e-3 with a one-cycle schedule, batch 64, fp32: 0.86-0.88 after 3 epochs
(3 seeds), 0.89-0.95 after 4 (5 seeds), 0.958-0.964 after 5 (3 seeds), 0.981 after 10 (2
seeds). The baseline (Adam lr 1e-3, constant, batch 32): 0.73-0.93 after 4 epochs (5 seeds),
0.93-0.96 after 6 (3 seeds). With a constant learning rate the accuracy jumps between
evaluations: the running BatchNorm statistics it is evaluated with trail weights that are still
moving fast (AdamW lr 3e-3, 4 epochs, 2 seeds: 0.81 and 0.91 with them, 0.947 and 0.956 with
statistics recomputed after training). Schedules that anneal settle it.

``studies/digits32.toml`` (5 epochs a trial), run with 24 trials, took 7.5 minutes. The
baseline reached 0.903 at 428 images/s; every front trial was bf16 with DataLoader workers,
from 0.961 accuracy at 1.6x the baseline's speed to 0.933 at 2.2x; compiled (inductor) bf16
trials were the fastest, after 15-20 s of compilation.

The ``gpu`` size (``GPU_WORKLOAD``) passes `GPU_REPEATS` times over the training images per
epoch, each read augmented afresh, and trains a ResNet-18-wide network (`build_gpu_model`;
widths 64-512, 11.2M parameters). A data-centre GPU should train it far faster than one CPU
process augments (about 2k images/s above), so there the DataLoader's workers would decide the
throughput; its figures are not measured here.

Example::

    from tuner.workload import load_workload

    workload = load_workload("digits32")
    data = workload.load_data()  # Datasets: 1437 train (augmented), 360 validation images
    image, label = data.train[0]  # float32 [1, 32, 32] in [0, 1], int
"""

from __future__ import annotations

import dataclasses
import functools
import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from objectives import digits
from tuner.workload import Datasets, Direction, Metric, Workload

#: Side of the square images, in pixels.
SIZE = 32
#: Random affine ranges: rotation (radians), relative scale, shear, translation (pixels).
_ROTATION = math.radians(12)
_SCALE = 0.1
_SHEAR = 0.15
_SHIFT = 3.0
#: Elastic distortion (Simard et al. 2003, "Best practices for convolutional neural networks
#: applied to visual document analysis"): a uniform random displacement field smoothed by a
#: Gaussian of `_ELASTIC_SIGMA` pixels and scaled by `_ELASTIC_ALPHA` (their MNIST values).
_ELASTIC_SIGMA = 4.0
_ELASTIC_ALPHA = 34.0
#: The warp is rendered at this multiple of the resolution and averaged back down: each output
#: pixel averages 2x2 warped samples instead of interpolating one (an anti-aliased warp).
_SUPERSAMPLE = 2
#: Random erasing (Zhong et al. 2020, "Random Erasing Data Augmentation"): probability, and
#: area as a fraction of the image.
_ERASE_P = 0.5
_ERASE_AREA = (0.02, 0.12)
#: How many times the ``gpu`` size passes over the training images per epoch.
GPU_REPEATS = 8


@functools.lru_cache(maxsize=1)
def _images() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``digits`` split upsampled to 32x32: train images, labels, val images, labels."""
    small = digits.load_data()

    def upsample(images: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(images, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        return up.clamp_(0.0, 1.0).contiguous()

    return (
        upsample(small.train_inputs),
        small.train_targets,
        upsample(small.val_inputs),
        small.val_targets,
    )


@functools.lru_cache(maxsize=4)
def _gaussian(sigma: float) -> torch.Tensor:
    """A normalised 1-d Gaussian kernel of radius 2 sigma, shape [1, 1, 1, 2r + 1]."""
    radius = math.ceil(2 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).view(1, 1, 1, -1)


def augment(image: torch.Tensor) -> torch.Tensor:
    """A randomly warped and partly erased copy of a [1, 32, 32] image, values in [0, 1].

    One sampling grid combines a random affine map (rotation, scale, shear, translation) with
    an elastic distortion; the image is resampled once through it (bilinear, rendered at
    `_SUPERSAMPLE` times the resolution and averaged down), then a random rectangle is erased
    half the time. Every random number comes from torch's global generator, so
    ``torch.manual_seed`` (or a DataLoader worker's seed) fixes the result.
    """
    r = torch.rand(10).tolist()
    angle = (2 * r[0] - 1) * _ROTATION
    scale = 1 + (2 * r[1] - 1) * _SCALE
    shear = (2 * r[2] - 1) * _SHEAR
    shift_x, shift_y = ((2 * r[3] - 1) * _SHIFT * 2 / SIZE, (2 * r[4] - 1) * _SHIFT * 2 / SIZE)
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    theta = torch.tensor([[[cos, shear * cos - sin, shift_x], [sin, shear * sin + cos, shift_y]]])
    side = SIZE * _SUPERSAMPLE
    grid = F.affine_grid(theta, [1, 1, side, side], align_corners=False)

    # Elastic field: uniform noise on the render's grid, smoothed separably (x, then y; zero
    # padding). Smoothing white noise over s x s samples divides its spread by s, so on a grid
    # `_SUPERSAMPLE` times finer it is scaled up as much: Simard's amplitude in image pixels.
    kernel = _gaussian(_ELASTIC_SIGMA * _SUPERSAMPLE)
    pad = kernel.shape[-1] // 2
    field = torch.rand(2, 1, side, side) * 2 - 1
    field = F.conv2d(field, kernel, padding=(0, pad))
    field = F.conv2d(field, kernel.transpose(-1, -2), padding=(pad, 0))
    # The grid's unit is half the image side.
    grid = grid + field.permute(1, 2, 3, 0) * (_ELASTIC_ALPHA * _SUPERSAMPLE * 2 / SIZE)

    warped = F.grid_sample(image.unsqueeze(0), grid, mode="bilinear", align_corners=False)
    out = F.avg_pool2d(warped, _SUPERSAMPLE).squeeze(0)

    if r[5] < _ERASE_P:
        low, high = _ERASE_AREA
        area = (low + (high - low) * r[6]) * SIZE * SIZE
        aspect = math.exp((2 * r[7] - 1) * math.log(2))  # height / width in [1/2, 2]
        height = min(SIZE, max(1, round(math.sqrt(area * aspect))))
        width = min(SIZE, max(1, round(math.sqrt(area / aspect))))
        top, left = int(r[8] * (SIZE - height + 1)), int(r[9] * (SIZE - width + 1))
        out[:, top : top + height, left : left + width] = 0.0
    return out


class DigitImages(Dataset[tuple[torch.Tensor, int]]):
    """The images as they are: ``(float32 [1, 32, 32], int label)``; the validation set.

    Args:
        images: [N, 1, 32, 32] float32.
        labels: [N] int64.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


class AugmentedDigits(DigitImages):
    """Training images, freshly augmented (`augment`) on every read.

    Args:
        images: [N, 1, 32, 32] float32.
        labels: [N] int64.
        repeats: Passes over the images per epoch: index ``i`` reads image ``i % N``, so a
            longer epoch shows each image several times, each time differently augmented.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, repeats: int = 1) -> None:
        super().__init__(images, labels)
        if not (isinstance(repeats, int) and repeats >= 1):
            raise ValueError(f"repeats: must be an integer >= 1, got {repeats!r}")
        self.repeats = repeats

    def __len__(self) -> int:
        return len(self.labels) * self.repeats

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} examples")
        index %= len(self.labels)
        return augment(self.images[index]), int(self.labels[index])


@functools.lru_cache(maxsize=1)
def load_data() -> Datasets:
    """Augmented training images and plain validation images, 32x32 (cached per process)."""
    train_images, train_labels, val_images, val_labels = _images()
    return Datasets(
        AugmentedDigits(train_images, train_labels), DigitImages(val_images, val_labels)
    )


@functools.lru_cache(maxsize=1)
def load_gpu_data() -> Datasets:
    """As `load_data`, but each epoch passes `GPU_REPEATS` times over the training images."""
    train_images, train_labels, val_images, val_labels = _images()
    return Datasets(
        AugmentedDigits(train_images, train_labels, repeats=GPU_REPEATS),
        DigitImages(val_images, val_labels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm, added to the input (He et al. 2016, ResNet).

    When the block halves the resolution or changes the width, the shortcut is a strided 1x1
    convolution with BatchNorm, as in ResNet's projection shortcut.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, bn_momentum: float = 0.1
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, momentum=bn_momentum)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels, momentum=bn_momentum),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """A CIFAR-style ResNet for [B, 1, 32, 32] images: 3x3 stem at full resolution, stages
    of `BasicBlock` (each stage after the first halves the resolution), global average pool,
    linear classifier.

    Args:
        widths: Channels of each stage.
        blocks_per_stage: Residual blocks in each stage.
        classes: Output logits.
        bn_momentum: BatchNorm's running-statistics momentum (PyTorch's default 0.1).
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (16, 32, 64),
        blocks_per_stage: int = 1,
        classes: int = 10,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0], momentum=bn_momentum),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        channels = widths[0]
        for stage, width in enumerate(widths):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(channels, width, stride, bn_momentum))
                channels = width
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(channels, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images)
        for block in self.blocks:
            x = block(x)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build_model() -> ResNet:
    """ResNet-8 for the ``small`` size: one block per stage, widths 16/32/64 (78k parameters).

    BatchNorm's running statistics move at momentum 0.5, not PyTorch's 0.1: a trial lasts
    tens of steps, and at 0.1 the statistics used for evaluation still lag far behind the
    weights when it ends, so the metric would score the lag rather than the training. AdamW
    lr 3e-3, cosine, batch 128, 4 epochs (44 steps), 3 seeds: 0.19-0.43 accuracy at 0.1,
    0.74-0.81 at 0.5.
    """
    return ResNet((16, 32, 64), blocks_per_stage=1, bn_momentum=0.5)


def build_gpu_model() -> ResNet:
    """ResNet-18 widths for the ``gpu`` size: two blocks per stage, 64/128/256/512 (11M)."""
    return ResNet((64, 128, 256, 512), blocks_per_stage=2)


def residual_blocks(model: nn.Module) -> list[nn.Module]:
    """The residual blocks of a `ResNet`: the modules activation checkpointing recomputes."""
    return list(model.get_submodule("blocks").children())


WORKLOAD = Workload(
    name="digits32",
    # 360 validation images; after 5 epochs one config spreads by about 2 % between seeds.
    metric=Metric("accuracy", Direction.MAXIMIZE, noise=0.02, chance=0.1),  # 10 classes
    build_model=build_model,
    load_data=load_data,
    loss=F.cross_entropy,
    score=digits.accuracy,
    description="ResNet-8 on 32x32 digits augmented per sample in a DataLoader (1437 / 360)",
    eval_batch_size=512,
    checkpoint_blocks=residual_blocks,
)

# The same 360 validation images; the spread is the small size's (not measured on a GPU).
GPU_WORKLOAD = dataclasses.replace(
    WORKLOAD,
    name="digits32-gpu",
    build_model=build_gpu_model,
    load_data=load_gpu_data,
    description=(
        f"ResNet-18-wide on 32x32 digits, {GPU_REPEATS}x augmented passes per epoch (GPU size)"
    ),
)
