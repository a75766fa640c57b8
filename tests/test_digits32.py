"""Tests of the ``digits32`` workload (Datasets fed through a DataLoader) and of every
built-in's ``gpu`` size, which must build and train a step on a CPU even though it is meant
for a GPU."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
from torch.utils.data import DataLoader

from objectives import charlm, digits, digits32
from tuner.workload import BUILTIN, Data, Datasets, Workload, load_workload


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a CPU shared with other work, two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def seeded() -> Iterator[None]:
    """Leave torch's global generator as it was, since these tests reseed it."""
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)


def _data() -> Datasets:
    data = digits32.load_data()
    assert isinstance(data, Datasets)
    return data


# ---------------------------------------------------------------------------------------
# Data


def test_load_data_is_cached_datasets_of_the_digits_split() -> None:
    data = _data()
    assert digits32.load_data() is data
    assert (len(data.train), len(data.val)) == (1437, 360)
    small = digits.load_data()
    # The same images as digits, in the same order, upsampled: same labels, same mean shade.
    assert torch.equal(data.train.labels, small.train_targets)
    assert torch.equal(data.val.labels, small.val_targets)
    assert data.val.images.mean().item() == pytest.approx(small.val_inputs.mean().item(), abs=0.02)


def test_importing_digits32_loads_no_data() -> None:
    """Listing the built-ins imports this module; only a trial may pay for its data."""
    code = (
        "import sys; from objectives import digits32; "
        "assert 'sklearn' not in sys.modules, 'sklearn imported'; "
        "assert digits32.load_data.cache_info().currsize == 0, 'small loaded'; "
        "assert digits32.load_gpu_data.cache_info().currsize == 0, 'gpu loaded'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("split", ["train", "val"])
def test_examples_have_the_documented_shapes_and_types(split: str) -> None:
    dataset = getattr(_data(), split)
    for index in (0, 17, len(dataset) - 1):
        image, label = dataset[index]
        assert isinstance(image, torch.Tensor)
        assert image.shape == (1, digits32.SIZE, digits32.SIZE) == (1, 32, 32)
        assert image.dtype == torch.float32
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert float(image.max()) > 0.5  # a digit, not an empty frame
        assert isinstance(label, int) and 0 <= label < 10


@pytest.mark.usefixtures("seeded")
def test_augmentation_changes_every_read_and_follows_the_seed() -> None:
    train = _data().train
    torch.manual_seed(0)
    first, label = train[5]
    second, again = train[5]
    assert label == again
    assert not torch.equal(first, second)
    # Warped, not replaced: the augmented image still overlaps the stored one.
    stored = train.images[5]
    overlap = (first * stored).sum() / (stored.norm() * first.norm())
    assert float(overlap) > 0.5
    torch.manual_seed(0)
    assert torch.equal(train[5][0], first)
    assert torch.equal(train[5][0], second)


def test_augment_leaves_its_input_alone_and_uses_torch_generator() -> None:
    image = _data().train.images[3]
    before = image.clone()
    with torch.random.fork_rng():
        torch.manual_seed(1)
        out = digits32.augment(image)
        torch.manual_seed(1)
        assert torch.equal(digits32.augment(image), out)
    assert torch.equal(image, before)
    assert out.shape == image.shape and out.data_ptr() != image.data_ptr()


@pytest.mark.usefixtures("seeded")
def test_validation_is_deterministic_and_unaugmented() -> None:
    val = _data().val
    first, label = val[7]
    torch.manual_seed(123)
    second, again = val[7]
    assert torch.equal(first, second) and label == again
    assert torch.equal(first, val.images[7])


@pytest.mark.usefixtures("seeded")
def test_repeats_lengthen_the_epoch_by_index_modulo() -> None:
    gpu = digits32.load_gpu_data()
    n = len(_data().train)
    assert len(gpu.train) == digits32.GPU_REPEATS * n
    assert len(gpu.val) == 360
    last = len(gpu.train) - 1
    assert gpu.train[last][1] == int(gpu.train.labels[last % n])
    with pytest.raises(IndexError):
        gpu.train[len(gpu.train)]


def test_datasets_pickle_without_their_caches() -> None:
    """Worker processes under spawn or forkserver receive the datasets pickled."""
    data = _data()
    for dataset in (data.train, data.val):
        copy = pickle.loads(pickle.dumps(dataset))
        assert type(copy) is type(dataset) and len(copy) == len(dataset)
        assert torch.equal(copy.images, dataset.images)


def test_a_two_worker_dataloader_yields_batches() -> None:
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(
        _data().train,
        batch_size=64,
        shuffle=True,
        drop_last=True,
        num_workers=2,
        generator=generator,
    )
    batches = 0
    for images, labels in loader:
        assert images.shape == (64, 1, 32, 32) and images.dtype == torch.float32
        assert labels.shape == (64,) and labels.dtype == torch.int64
        batches += 1
        if batches == 4:
            break
    assert batches == 4


# ---------------------------------------------------------------------------------------
# Models


def test_builtin_name_resolves_to_the_small_workload() -> None:
    assert BUILTIN["digits32"] == "objectives.digits32:WORKLOAD"
    workload = load_workload("digits32")
    assert workload is digits32.WORKLOAD
    assert workload.name == "digits32"
    assert workload.eval_batch_size == 512
    assert load_workload("digits32", "small") is workload


def test_small_model_has_batchnorm_and_checkpointable_residual_blocks() -> None:
    workload = digits32.WORKLOAD
    torch.manual_seed(0)
    model = workload.build_model()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert workload.checkpoint_blocks is not None
    blocks = list(workload.checkpoint_blocks(model))
    assert blocks and all(isinstance(b, digits32.BasicBlock) for b in blocks)
    inside = {id(m) for m in model.modules() if m is not model}
    assert all(id(b) in inside for b in blocks)
    # One stage per width; every later stage halves the resolution.
    assert [b.conv1.stride for b in blocks] == [(1, 1), (2, 2), (2, 2)]


def test_small_model_trains_a_step_from_the_dataloader() -> None:
    workload = digits32.WORKLOAD
    torch.manual_seed(0)
    model = workload.build_model()
    images, labels = next(iter(DataLoader(_data().train, batch_size=32)))
    outputs = model(images.contiguous(memory_format=torch.channels_last))
    assert outputs.shape == (32, 10)
    loss = workload.loss(outputs, labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())
    scores = workload.score(outputs.detach(), labels)
    assert scores.shape == (32,)


@pytest.mark.parametrize("name", ["charlm", "digits32"])
def test_checkpoint_blocks_are_the_models_blocks(name: str) -> None:
    workload = load_workload(name)
    assert workload.checkpoint_blocks is not None
    model = workload.build_model()
    assert list(workload.checkpoint_blocks(model)) == list(model.get_submodule("blocks").children())


# ---------------------------------------------------------------------------------------
# Every built-in's gpu size, on a CPU


@dataclass(frozen=True)
class Gpu:
    """What one built-in's gpu size must look like."""

    name: str
    module: object
    output_shape: tuple[int, ...]  # of one example's output
    blocks: bool  # declares checkpoint_blocks


GPU = [
    Gpu("digits-gpu", digits, (10,), blocks=False),
    Gpu("digits32-gpu", digits32, (10,), blocks=True),
    Gpu("charlm-gpu", charlm, (charlm.GPU_BLOCK_SIZE, 256), blocks=True),
]


def _tiny_batch(workload: Workload, size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    data = workload.load_data()
    if isinstance(data, Data):
        return data.train_inputs[:size], data.train_targets[:size]
    images, labels = zip(*(data.train[i] for i in range(size)), strict=True)
    return torch.stack(images), torch.tensor(labels)


@pytest.mark.parametrize("expected", GPU, ids=lambda g: g.name)
def test_every_builtin_has_a_gpu_size_that_trains_a_step_on_cpu(expected: Gpu) -> None:
    short = expected.name.removesuffix("-gpu")
    workload = load_workload(short, "gpu")
    assert workload is expected.module.GPU_WORKLOAD  # type: ignore[attr-defined]
    assert workload.name == expected.name
    small = load_workload(short)
    assert (workload.metric.name, workload.metric.direction) == (
        small.metric.name,
        small.metric.direction,
    )
    assert workload.description and "\n" not in workload.description
    small_params = sum(p.numel() for p in small.build_model().parameters())
    torch.manual_seed(0)
    model = workload.build_model()
    assert sum(p.numel() for p in model.parameters()) > 20 * small_params
    inputs, targets = _tiny_batch(workload)
    outputs = model(inputs)
    assert outputs.shape == (2, *expected.output_shape)
    loss = workload.loss(outputs, targets)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(
        p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in model.parameters()
    )
    scores = workload.score(outputs.detach(), targets)
    assert scores.ndim == 1 and bool(torch.isfinite(scores).all())
    assert (workload.checkpoint_blocks is not None) is expected.blocks
    if workload.checkpoint_blocks is not None:
        assert list(workload.checkpoint_blocks(model))


def test_charlm_gpu_data_are_longer_windows_of_the_same_text() -> None:
    small, gpu = charlm.load_data(), charlm.load_gpu_data()
    assert gpu.train_inputs.shape[1] == charlm.GPU_BLOCK_SIZE
    assert small.train_inputs.shape[1] == charlm.BLOCK_SIZE
    assert torch.equal(gpu.train_inputs[:, 1:], gpu.train_targets[:, :-1])
    n = gpu.train_inputs.numel()
    assert torch.equal(gpu.train_inputs.flatten(), small.train_inputs.flatten()[:n])
    assert len(gpu.val_inputs) == 512


def test_fused_attention_computes_what_the_written_out_attention_does() -> None:
    torch.manual_seed(0)
    written = charlm.CharTransformer(width=32, layers=2, heads=4, block_size=16)
    fused = charlm.CharTransformer(width=32, layers=2, heads=4, block_size=16, fused_attention=True)
    fused.load_state_dict(written.state_dict())
    tokens = torch.randint(0, 256, (3, 16))
    torch.testing.assert_close(fused(tokens), written(tokens), rtol=1e-4, atol=1e-5)
    # Causal: changing a later byte changes no earlier prediction.
    changed = tokens.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 256
    torch.testing.assert_close(fused(changed)[:, :10], fused(tokens)[:, :10])
