"""tuner.export: YAML/JSON round trips, the Python snippet against tuner.knobs, safety."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import io
import json
import math
import re
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import yaml
from torch import nn

from tests.test_knobs import lr_sequence
from tuner import knobs
from tuner.batch_scaling import BatchScaling, LrScaling
from tuner.config import (
    DEFAULT_BASELINE,
    CompileMode,
    ConfigError,
    LoaderConfig,
    MatmulPrecision,
    OptimizerConfig,
    OptimizerImpl,
    OptimizerName,
    Precision,
    ScheduleConfig,
    ScheduleName,
    TrialConfig,
    optimizer_kwargs,
)
from tuner.errors import UserError
from tuner.export import ExportFormat, Provenance, load_config, render
from tuner.knobs import build_training

#: Every knob added with the input pipeline and performance flags, set off its default (no
#: pin_memory: these tests run on CPU machines, where torch only warns about it).
EVERY_KNOB = TrialConfig(
    OptimizerConfig(OptimizerName.ADAMW, lr=3e-3, weight_decay=0.01, betas=(0.9, 0.99)),
    ScheduleConfig(ScheduleName.COSINE),
    batch_size=16,
    accumulation_steps=2,
    loader=LoaderConfig(
        num_workers=2, pin_memory=False, persistent_workers=True, prefetch_factor=4
    ),
    channels_last=True,
    optimizer_impl=OptimizerImpl.FUSED,
    matmul_precision=MatmulPrecision.MEDIUM,
    cudnn_benchmark=True,
    activation_checkpointing=True,
)
NEW_KNOBS = (
    "loader",
    "channels_last",
    "optimizer_impl",
    "matmul_precision",
    "cudnn_benchmark",
    "activation_checkpointing",
)

CONFIGS = {
    "sgd-constant": TrialConfig(
        OptimizerConfig(OptimizerName.SGD, lr=0.1, momentum=0.0, nesterov=False),
        ScheduleConfig(ScheduleName.CONSTANT),
        batch_size=16,
    ),
    "sgd-nesterov-step-clip": TrialConfig(
        OptimizerConfig(
            OptimizerName.SGD, lr=0.1 + 0.2, weight_decay=5e-4, momentum=0.9, nesterov=True
        ),
        ScheduleConfig(ScheduleName.STEP, step_every=0.3, step_gamma=0.1),
        batch_size=32,
        accumulation_steps=2,
        grad_clip_norm=1.0,
        precision=Precision.BF16,
        compile_mode=CompileMode.MAX_AUTOTUNE,
    ),
    "adam-cosine-fp16": TrialConfig(
        OptimizerConfig(OptimizerName.ADAM, lr=1e-05, betas=(0.9, 0.999)),
        ScheduleConfig(ScheduleName.COSINE),
        batch_size=8,
        accumulation_steps=4,
        grad_clip_norm=0.5,
        precision=Precision.FP16,
        compile_mode=CompileMode.DEFAULT,
    ),
    "adamw-one-cycle": TrialConfig(
        OptimizerConfig(OptimizerName.ADAMW, lr=3e-3, weight_decay=0.05, betas=(0.85, 0.95)),
        ScheduleConfig(ScheduleName.ONE_CYCLE, pct_start=0.25),
        batch_size=64,
        compile_mode=CompileMode.MAX_AUTOTUNE_NO_CUDAGRAPHS,
    ),
    "rmsprop-warmup-cosine-clip": TrialConfig(
        OptimizerConfig(
            OptimizerName.RMSPROP, lr=2.5e-4, weight_decay=1e-6, momentum=0.5, alpha=0.95
        ),
        ScheduleConfig(ScheduleName.WARMUP_COSINE, warmup_fraction=0.07),
        batch_size=4,
        accumulation_steps=3,
        grad_clip_norm=2.0,
        compile_mode=CompileMode.REDUCE_OVERHEAD,
        loader=LoaderConfig(num_workers=1, pin_memory=True, prefetch_factor=2),
        optimizer_impl=OptimizerImpl.FOREACH,
        matmul_precision=MatmulPrecision.HIGH,
    ),
    "adamw-every-knob": EVERY_KNOB,
    # An lr scaled to the effective batch: the config holds the lr it trained with.
    "adam-sqrt-scaled": TrialConfig(
        OptimizerConfig(OptimizerName.ADAM, lr=1e-3 * 2.0, betas=(0.9, 0.999)),
        ScheduleConfig(ScheduleName.CONSTANT),
        batch_size=16,
        accumulation_steps=8,
        batch_scaling=BatchScaling(LrScaling.SQRT, 32, 2.0, 1e-3),
    ),
}
PROVENANCE = Provenance("cifar", 12, "accuracy", 0.9134, 4523.1, "NVIDIA H200")
EVIL = 'x"\nimport os; os.system("rm -rf /")#'


def test_configs_cover_every_value_of_every_knob() -> None:
    configs = CONFIGS.values()
    assert {c.optimizer.name for c in configs} == set(OptimizerName)
    assert {c.schedule.name for c in configs} == set(ScheduleName)
    assert {c.precision for c in configs} == set(Precision)
    assert {c.compile_mode for c in configs} == set(CompileMode)
    assert {c.optimizer_impl for c in configs} == set(OptimizerImpl)
    assert {c.matmul_precision for c in configs} == set(MatmulPrecision)
    for knob in ("channels_last", "cudnn_benchmark", "activation_checkpointing"):
        assert {getattr(c, knob) for c in configs} == {False, True}, knob
    for knob in ("pin_memory", "persistent_workers"):
        assert {getattr(c.loader, knob) for c in configs} == {False, True}, knob
    assert {c.loader.num_workers > 0 for c in configs} == {False, True}


def test_every_knob_config_sets_each_new_knob_off_its_default() -> None:
    defaults = TrialConfig(EVERY_KNOB.optimizer, EVERY_KNOB.schedule, EVERY_KNOB.batch_size)
    for knob in NEW_KNOBS:
        assert getattr(EVERY_KNOB, knob) != getattr(defaults, knob), knob
    for field in ("num_workers", "persistent_workers", "prefetch_factor"):
        assert getattr(EVERY_KNOB.loader, field) != getattr(defaults.loader, field), field


@pytest.fixture(autouse=True)
def _restore_backend_flags() -> Iterator[None]:
    """The snippet and build_training set process-wide torch flags; put them back."""
    precision, benchmark = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    yield
    torch.set_float32_matmul_precision(precision)
    torch.backends.cudnn.benchmark = benchmark


def blocks(config: TrialConfig, model: nn.Module) -> dict[str, Any]:
    """The snippet's checkpoint_blocks argument, which it takes when checkpointing is on."""
    return {"checkpoint_blocks": [model]} if config.activation_checkpointing else {}


def groups(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]


@pytest.mark.parametrize("fmt", [ExportFormat.YAML, ExportFormat.JSON])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_data_exports_round_trip(name: str, fmt: ExportFormat, tmp_path: Path) -> None:
    config = CONFIGS[name]
    path = tmp_path / f"best.{fmt.value}"
    path.write_text(render(config, PROVENANCE, fmt))
    loaded = load_config(path)
    assert loaded == config
    for knob in NEW_KNOBS:  # spelled out: a field lost on the way would read as its default
        assert getattr(loaded, knob) == getattr(config, knob), knob
    built = build_training(config, nn.Linear(4, 2), 50, checkpoint_blocks=lambda m: [m])
    rebuilt = build_training(loaded, nn.Linear(4, 2), 50, checkpoint_blocks=lambda m: [m])
    assert groups(rebuilt.optimizer) == groups(built.optimizer)


# What `tuner export` wrote before the input-pipeline and performance knobs existed.
OLD_EXPORT = """\
tuner_export: 1
provenance:
  study: cifar
  trial: 12
  metric_name: accuracy
  metric: 0.9134
  throughput: 4523.1
  device: NVIDIA H200
  baseline_trial: null
  speedup: null
  metric_delta: null
config:
  optimizer:
    name: sgd
    lr: 0.1
    weight_decay: 0.0005
    momentum: 0.9
    nesterov: true
  schedule:
    name: step
    step_every: 0.3
    step_gamma: 0.1
  batch_size: 32
  accumulation_steps: 2
  grad_clip_norm: 1.0
  precision: bf16
  compile_mode: max-autotune
"""


@pytest.mark.parametrize("fmt", [ExportFormat.YAML, ExportFormat.JSON])
def test_an_export_from_before_the_new_knobs_loads_them_as_defaults(
    fmt: ExportFormat, tmp_path: Path
) -> None:
    document = yaml.safe_load(OLD_EXPORT)
    assert not set(NEW_KNOBS) & set(document["config"])
    path = tmp_path / f"old.{fmt.value}"
    path.write_text(OLD_EXPORT if fmt == ExportFormat.YAML else json.dumps(document, indent=2))
    loaded = load_config(path)
    assert loaded == TrialConfig(
        OptimizerConfig(OptimizerName.SGD, lr=0.1, weight_decay=5e-4, momentum=0.9, nesterov=True),
        ScheduleConfig(ScheduleName.STEP, step_every=0.3, step_gamma=0.1),
        batch_size=32,
        accumulation_steps=2,
        grad_clip_norm=1.0,
        precision=Precision.BF16,
        compile_mode=CompileMode.MAX_AUTOTUNE,
    )
    # What the old run used: torch's defaults, no workers, nothing recomputed.
    assert {knob: getattr(loaded, knob) for knob in NEW_KNOBS} == {
        "loader": LoaderConfig(
            num_workers=0, pin_memory=False, persistent_workers=False, prefetch_factor=None
        ),
        "channels_last": False,
        "optimizer_impl": OptimizerImpl.DEFAULT,
        "matmul_precision": MatmulPrecision.HIGHEST,
        "cudnn_benchmark": False,
        "activation_checkpointing": False,
    }


@pytest.mark.parametrize("fmt", [ExportFormat.YAML, ExportFormat.JSON])
def test_data_export_document_layout(fmt: ExportFormat) -> None:
    config = CONFIGS["adam-cosine-fp16"]
    text = render(config, PROVENANCE, fmt)
    document = json.loads(text) if fmt == ExportFormat.JSON else yaml.safe_load(text)
    assert list(document) == ["tuner_export", "provenance", "config"]
    assert document["tuner_export"] == 1
    expected = dataclasses.asdict(PROVENANCE)
    del expected["note"]  # written only when there is something to say
    assert document["provenance"] == expected
    assert document["config"] == config.to_dict()


def test_provenance_carries_the_baseline_comparison_in_every_format() -> None:
    provenance = dataclasses.replace(
        PROVENANCE, baseline_trial=0, speedup=1.5, metric_delta=-0.25, note="no better"
    )
    config = CONFIGS["sgd-constant"]
    for fmt in (ExportFormat.YAML, ExportFormat.JSON):
        text = render(config, provenance, fmt)
        document = json.loads(text) if fmt == ExportFormat.JSON else yaml.safe_load(text)
        assert document["provenance"] == dataclasses.asdict(provenance)
    source = render(config, provenance, "python")
    assert "# Against the baseline (trial 0): 1.50x its throughput, accuracy -0.25" in source
    assert "# Note: no better" in source


def test_data_exports_keep_odd_provenance_as_data_and_unknown_figures_as_null() -> None:
    provenance = Provenance(EVIL, 3, "acc\r\nx", math.nan, None, "cpu\u2028x")
    document = yaml.safe_load(render(CONFIGS["sgd-constant"], provenance, "yaml"))
    assert document["provenance"]["study"] == EVIL
    assert document["provenance"]["metric"] is None
    assert json.loads(render(CONFIGS["sgd-constant"], provenance, "json"))["provenance"][
        "device"
    ] == ("cpu\u2028x")


def exec_snippet(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "exported_snippet"}
    exec(compile(source, "<exported snippet>", "exec"), namespace)
    return namespace


def conv_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 2))


def channels_last(model: nn.Module) -> bool:
    """Whether every 4-D weight of `model` is in channels_last layout, and only that."""
    weights = [p for p in model.parameters() if p.dim() == 4]
    assert weights
    layouts = {
        p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in weights
    }
    assert len(layouts) == 1
    return layouts.pop()


@pytest.mark.parametrize("total_steps", [1, 3, 20])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_python_snippet_builds_what_build_training_builds(name: str, total_steps: int) -> None:
    config = CONFIGS[name]
    namespace = exec_snippet(render(config, PROVENANCE, "python"))
    assert namespace["BATCH_SIZE"] == config.batch_size
    assert namespace["ACCUMULATION_STEPS"] == config.accumulation_steps

    # Start from the other values, so the snippet must set both flags itself.
    other = "high" if config.matmul_precision is MatmulPrecision.HIGHEST else "highest"
    torch.set_float32_matmul_precision(other)
    torch.backends.cudnn.benchmark = not config.cudnn_benchmark
    model = conv_net()
    model_to_train, eager, optimizer, scheduler, scaler, autocast = namespace["make_training"](
        model, total_steps, **blocks(config, model)
    )
    flags = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    assert flags == (config.matmul_precision.value, config.cudnn_benchmark)
    setup = build_training(config, conv_net(), total_steps, "cpu", lambda m: [m])
    assert eager is model
    assert channels_last(model) == channels_last(setup.eager_model) == config.channels_last
    assert (model_to_train is model) == (setup.model is setup.eager_model)
    assert type(optimizer) is type(setup.optimizer)
    assert groups(optimizer) == groups(setup.optimizer)
    implementation = {key: optimizer.defaults.get(key) for key in ("foreach", "fused")}
    assert implementation == {key: setup.optimizer.defaults.get(key) for key in implementation}
    if config.optimizer_impl is not OptimizerImpl.DEFAULT:
        assert implementation[config.optimizer_impl.value] is True
    assert type(scheduler) is type(setup.scheduler)
    assert scaler.is_enabled() == setup.scaler.is_enabled()
    dtype = {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}.get(config.precision)
    for context in (autocast(), setup.autocast()):
        with context:
            assert torch.is_autocast_enabled("cpu") is (dtype is not None)
            assert dtype is None or torch.get_autocast_dtype("cpu") == dtype
    assert lr_sequence(optimizer, scheduler, total_steps) == lr_sequence(
        setup.optimizer, setup.scheduler, total_steps
    )
    assert groups(optimizer) == groups(setup.optimizer)  # momentum/betas not cycled either


LOADER_ATTRS = (
    "batch_size",
    "drop_last",
    "num_workers",
    "pin_memory",
    "persistent_workers",
    "prefetch_factor",
)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_python_snippet_make_loader_builds_what_knobs_builds(name: str) -> None:
    config = CONFIGS[name]
    make_loader = exec_snippet(render(config, PROVENANCE, "python"))["make_loader"]
    data = torch.utils.data.TensorDataset(torch.randn(40, 4), torch.randn(40, 2))
    generator = torch.Generator()
    collate = torch.utils.data.default_collate
    ours = make_loader(data, generator=generator, collate_fn=collate)
    theirs = knobs.make_loader(config, data, generator=torch.Generator())
    for attr in LOADER_ATTRS:
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert isinstance(ours.sampler, torch.utils.data.RandomSampler)  # training: shuffled
    assert ours.generator is generator and ours.collate_fn is collate
    assert ours.worker_init_fn is None and theirs.worker_init_fn is None  # torch seeds them


@pytest.mark.parametrize("name", list(CONFIGS))
def test_python_snippet_trains(name: str) -> None:
    # Compiling would take a while on CPU and is torch's business; the loop is what is tested.
    config = dataclasses.replace(CONFIGS[name], compile_mode=CompileMode.OFF)
    namespace = exec_snippet(render(config, PROVENANCE, "python"))
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(24, 4), torch.randn(24, 2))
    loader = torch.utils.data.DataLoader(data, batch_size=namespace["BATCH_SIZE"], shuffle=True)
    model = nn.Linear(4, 2)
    before = model.weight.detach().clone()
    trained = namespace["train_steps"](
        model, loader, nn.functional.mse_loss, 3, **blocks(config, model)
    )
    assert trained is model and not trained.training  # handed back ready to evaluate
    assert torch.isfinite(model.weight).all() and not torch.equal(model.weight, before)


# The two ends: plain PyTorch defaults, and every input-pipeline and performance knob tuned.
ENDS = {"baseline": DEFAULT_BASELINE, "every-knob": EVERY_KNOB}


def function_source(source: str, name: str) -> str:
    """The source of top-level function `name` of `source`, its comments included."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(source, node) or ""
    raise AssertionError(f"no function {name}")


def call_keywords(source: str, callee: str) -> dict[str, str]:
    """The keyword arguments, as source, of the one call to `callee` in `source` (``**``
    for a ``**mapping``)."""
    calls = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == callee
    ]
    assert len(calls) == 1, callee
    return {keyword.arg or "**": ast.unparse(keyword.value) for keyword in calls[0].keywords}


def code_names(source: str) -> set[str]:
    """The names in `source`'s code, not in its comments and strings."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {token.string for token in tokens if token.type == tokenize.NAME}


@pytest.mark.parametrize("name", list(ENDS))
def test_python_snippet_carries_the_tuned_loader_and_performance_knobs(name: str) -> None:
    config = ENDS[name]
    source = render(config, PROVENANCE, "python")
    compile(source, "tuned.py", "exec")
    loader = config.loader

    expected = {
        "batch_size": "BATCH_SIZE",
        "shuffle": "True",
        "drop_last": "True",
        "generator": "generator",
        "collate_fn": "collate_fn",
        "num_workers": repr(loader.num_workers),
        "pin_memory": repr(loader.pin_memory),
    }
    if loader.num_workers > 0:  # torch rejects these without workers
        expected |= {
            "persistent_workers": repr(loader.persistent_workers),
            "prefetch_factor": repr(loader.prefetch_factor),
        }
    make_loader = function_source(source, "make_loader")
    assert call_keywords(make_loader, "torch.utils.data.DataLoader") == expected

    make_training = function_source(source, "make_training")
    precision = config.matmul_precision.value
    assert f'torch.set_float32_matmul_precision("{precision}")' in make_training
    assert f"torch.backends.cudnn.benchmark = {config.cudnn_benchmark}" in make_training
    adam = {OptimizerName.ADAM: "Adam", OptimizerName.ADAMW: "AdamW"}[config.optimizer.name]
    optimizer = call_keywords(make_training, f"torch.optim.{adam}")
    assert {key: optimizer.get(key) for key in ("foreach", "fused")} == {
        "foreach": None,
        "fused": "True" if config.optimizer_impl is OptimizerImpl.FUSED else None,
    }

    train_steps = function_source(source, "train_steps")
    pin = loader.pin_memory
    assert f"inputs = inputs.to(device, non_blocking={pin})" in train_steps
    assert f"targets = targets.to(device, non_blocking={pin})" in train_steps
    to_nhwc = "inputs = inputs.contiguous(memory_format=torch.channels_last)"
    if config.channels_last:
        assert "model = model.to(memory_format=torch.channels_last)" in make_training
        tree = ast.parse(train_steps)
        branches = {
            (ast.unparse(n.test), *map(ast.unparse, n.body))
            for n in ast.walk(tree)
            if isinstance(n, ast.If)
        }
        assert ("inputs.dim() == 4", to_nhwc) in branches
    else:
        assert "channels_last" not in code_names(source)
        assert "# channels_last was off in the tuned run" in make_training

    demo = source[source.index('if __name__ == "__main__":') :]
    assert "loader = make_loader(torch.utils.data.TensorDataset(inputs, targets))" in demo

    if config.activation_checkpointing:
        assert "make_training(model, total_steps, checkpoint_blocks=model.blocks)" in make_training
        assert "checkpoint_blocks=None" in make_training.splitlines()[0]
        assert "checkpoint_blocks=None" in train_steps.splitlines()[0]
        recompute = function_source(source, "_recompute_in_backward")
        keywords = call_keywords(recompute, "torch.utils.checkpoint.checkpoint")
        assert keywords == {"use_reentrant": "False", "**": "kwargs"}
    else:
        assert "# Activation checkpointing was off in the tuned run." in make_training
        assert not {"checkpoint", "checkpoint_blocks", "_recompute_in_backward"} & code_names(
            source
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    "config",
    [
        DEFAULT_BASELINE,
        EVERY_KNOB,
        dataclasses.replace(
            CONFIGS["adamw-one-cycle"], precision=Precision.BF16, compile_mode=CompileMode.OFF
        ),
    ],
    ids=["baseline", "every-knob", "adamw-one-cycle-bf16"],
)
def test_python_snippet_run_as_a_script_trains_a_toy_model(
    config: TrialConfig, tmp_path: Path
) -> None:
    path = tmp_path / "tuned.py"
    path.write_text(render(config, PROVENANCE, "python"))
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("30 tuned optimizer steps on a toy task: loss "), result.stdout
    before, after = map(float, re.findall(r"(\d+\.\d+)", line.split("loss")[1]))
    assert after < before


class _Block(nn.Module):
    """A conv block that counts its forward calls: a checkpointed one runs again in backward."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.relu(self.conv(x))


class _ConvNet(nn.Module):
    """A small image model with repeated blocks; it records whether its inputs are NHWC."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(_Block(3, 8), _Block(8, 8))
        self.head = nn.Linear(8, 2)
        self.nhwc_inputs: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.nhwc_inputs.append(x.is_contiguous(memory_format=torch.channels_last))
        return self.head(self.blocks(x).mean((2, 3)))


def import_snippet(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The export as a user's importable module: DataLoader workers started by spawn or
    forkserver unpickle its worker_init_fn by module name."""
    path = tmp_path / "tuned_snippet.py"
    path.write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = importlib.util.spec_from_file_location("tuned_snippet", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "tuned_snippet", module)
    spec.loader.exec_module(module)
    return module


def test_python_snippet_applies_every_knob_to_an_image_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EVERY_KNOB
    tuned = import_snippet(render(config, PROVENANCE, "python"), tmp_path, monkeypatch)
    torch.manual_seed(0)
    images = torch.randn(64, 3, 6, 6)
    data = torch.utils.data.TensorDataset(images, (images.mean((1, 2, 3)) > 0).long())

    loader = tuned.make_loader(data, generator=torch.Generator().manual_seed(0))
    assert (loader.batch_size, loader.drop_last) == (config.batch_size, True)
    assert loader.num_workers == config.loader.num_workers
    assert loader.persistent_workers == config.loader.persistent_workers
    assert loader.prefetch_factor == config.loader.prefetch_factor
    assert loader.pin_memory == config.loader.pin_memory

    model = _ConvNet()
    _, eager, optimizer, *_ = tuned.make_training(model, 4, checkpoint_blocks=model.blocks)
    assert eager is model
    assert optimizer.defaults["fused"] is True
    assert torch.get_float32_matmul_precision() == config.matmul_precision.value
    assert torch.backends.cudnn.benchmark is config.cudnn_benchmark
    for block in model.blocks:
        assert block.conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert not block.conv.weight.is_contiguous()
    with pytest.raises(ValueError, match="checkpoint_blocks"):
        tuned.make_training(_ConvNet(), 4)

    # The loop, through the workers: NHWC inputs, and each block run again in backward.
    model = _ConvNet()
    before = model.head.weight.detach().clone()
    trained = tuned.train_steps(
        model, loader, nn.functional.cross_entropy, 2, checkpoint_blocks=model.blocks
    )
    micro_batches = 2 * config.accumulation_steps
    assert model.nhwc_inputs == [True] * micro_batches
    assert [block.calls for block in model.blocks] == [2 * micro_batches] * 2
    assert torch.isfinite(model.head.weight).all()
    assert not torch.equal(model.head.weight, before)
    with torch.no_grad():
        trained(images[:4].contiguous(memory_format=torch.channels_last))
    assert [block.calls for block in model.blocks] == [2 * micro_batches + 1] * 2  # no recompute


def test_python_snippet_rejects_an_empty_loader_and_no_steps() -> None:
    namespace = exec_snippet(render(CONFIGS["sgd-constant"], PROVENANCE, "python"))
    with pytest.raises(ValueError, match="no batches"):
        namespace["train_steps"](nn.Linear(4, 2), [], nn.functional.mse_loss, 1)
    with pytest.raises(ValueError, match="total_steps"):
        namespace["make_training"](nn.Linear(4, 2), 0)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_python_snippet_shows_the_accumulation_loop(name: str) -> None:
    config = CONFIGS[name]
    source = render(config, PROVENANCE, "python")
    body = source[source.index("def train_steps") :]
    assert "scaler.scale(loss / ACCUMULATION_STEPS).backward()" in body
    assert "optimizer.zero_grad(set_to_none=True)" in body
    if config.grad_clip_norm is None:
        assert "clip_grad_norm_(" not in body
    else:
        assert body.index("scaler.unscale_(optimizer)") < body.index("clip_grad_norm_(")
        assert f"max_norm={config.grad_clip_norm!r}" in body
    assert body.index("scaler.step(optimizer)") < body.index("scheduler.step()")


def long_floats(config: TrialConfig) -> TrialConfig:
    """`config` with floats of 17 digits, as samplers draw them: the longest literals."""
    optimizer = config.optimizer
    scaling = config.batch_scaling
    if scaling is not None:
        scaling = dataclasses.replace(scaling, unscaled_lr=0.00012345678901234567)
    optimizer = dataclasses.replace(
        optimizer,
        lr=0.00012345678901234567 if scaling is None else scaling.lr,
        weight_decay=0.012345678901234567,
        momentum=None if optimizer.momentum is None else 0.8123456789012345,
        betas=None if optimizer.betas is None else (0.8512345678901234, 0.9912345678901234),
        alpha=None if optimizer.alpha is None else 0.9812345678901234,
    )
    fields = ("step_every", "step_gamma", "pct_start", "warmup_fraction")
    changes: dict[str, Any] = {
        field: 0.2512345678901234 for field in fields if getattr(config.schedule, field) is not None
    }
    schedule = dataclasses.replace(config.schedule, **changes)
    clip = None if config.grad_clip_norm is None else 1.2345678901234567
    return dataclasses.replace(
        config, optimizer=optimizer, schedule=schedule, grad_clip_norm=clip, batch_scaling=scaling
    )


@pytest.mark.parametrize("floats", ["short", "long"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_python_snippet_is_ruff_clean_in_100_columns(name: str, floats: str) -> None:
    config = long_floats(CONFIGS[name]) if floats == "long" else CONFIGS[name]
    source = render(config, PROVENANCE, "python")
    assert max(len(line) for line in source.splitlines()) <= 100
    options = ["--isolated", "--line-length", "100", "--target-version", "py311"]
    options += ["--stdin-filename", "tuned.py", "-"]
    for command in (["format", "--diff"], ["check", "--select", "E,F,W,I,B"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, *options],
            input=source,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_python_snippet_shows_how_the_lr_was_scaled() -> None:
    source = render(CONFIGS["adam-sqrt-scaled"], PROVENANCE, "python")
    header = source.split("\n\n")[0].splitlines()
    assert header[-2:] == [
        "# One optimizer step: 8 micro-batches x 16 samples = 128 samples.",
        "# lr = 0.001 (for batch 32) x 2 (sqrt rule) = 0.002.",
    ]
    assert "lr=0.002," in source
    assert "# lr = " not in render(CONFIGS["adamw-every-knob"], PROVENANCE, "python")


def test_python_snippet_floats_round_trip_exactly() -> None:
    source = render(CONFIGS["sgd-nesterov-step-clip"], PROVENANCE, "python")
    assert "lr=0.30000000000000004" in source


@pytest.mark.parametrize("name", ["sgd-nesterov-step-clip", "adamw-every-knob"])
def test_provenance_cannot_inject_code(name: str) -> None:
    provenance = Provenance(
        study=EVIL,
        trial=7,
        metric_name='acc\r\nimport os  # "',
        metric=0.5,
        throughput=10.0,
        device="cpu\u2028import os\x00\x1b[2J\x0bos.system('x')",
    )
    config = CONFIGS[name]
    source = render(config, provenance, "python")
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        assert not isinstance(node, ast.ImportFrom)
        assert not (isinstance(node, ast.Name) and node.id == "os")
        assert not (isinstance(node, ast.Attribute) and node.attr == "system")
    checkpointing = {"torch.utils.checkpoint"} if config.activation_checkpointing else set()
    assert imported == {"functools", "torch"} | checkpointing
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if "os.system" in token.string or token.string == "os":
            assert token.type in (tokenize.COMMENT, tokenize.STRING), token
    assert "\x00" not in source and "\x1b" not in source and "\u2028" not in source
    exec_snippet(source)  # still runs


def test_provenance_cannot_declare_a_source_encoding() -> None:
    # Python honours `coding: ...` in a comment on line 1 or 2 (utf-7 can smuggle newlines).
    provenance = dataclasses.replace(PROVENANCE, study="-*- coding: utf-7 -*-")
    source = render(CONFIGS["sgd-constant"], provenance, "python")
    assert all("coding" not in line for line in source.splitlines()[:2])
    compile(source.encode(), "<exported snippet>", "exec")  # bytes: cookies are honoured


def test_render_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="toml"):
        render(CONFIGS["sgd-constant"], PROVENANCE, "toml")


def test_optimizer_kwargs_pass_exactly_the_fields_that_apply() -> None:
    assert optimizer_kwargs(CONFIGS["rmsprop-warmup-cosine-clip"].optimizer) == {
        "lr": 2.5e-4,
        "momentum": 0.5,
        "alpha": 0.95,
        "weight_decay": 1e-6,
    }


def test_export_module_does_not_import_torch() -> None:
    code = "import sys, tuner.export; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


VALID = render(CONFIGS["sgd-constant"], PROVENANCE, "yaml")


@pytest.mark.parametrize(
    ("filename", "text", "expected"),
    [
        ("list.yaml", "- a\n- b\n", "must be a mapping"),
        ("empty.yml", "", "must be a mapping"),
        ("no-config.yaml", "tuner_export: 1\nprovenance: {}\n", "config: missing"),
        ("old.yaml", VALID.replace("tuner_export: 1", "tuner_export: 2"), "tuner_export"),
        ("bare.yaml", yaml.safe_dump(CONFIGS["sgd-constant"].to_dict()), "tuner_export"),
        ("lr.yaml", VALID.replace("lr: 0.1", "lr: -1"), "optimizer.lr"),
        ("key.yaml", VALID.replace("batch_size:", "batchsize:"), "unknown key 'batchsize'"),
        ("section.yaml", "tuner_export: 1\nconfig: [1, 2]\n", "config: must be a mapping"),
        ("syntax.yaml", "tuner_export: [1\nconfig:\n", "not valid YAML"),
        ("syntax.json", '{"tuner_export": 1,\n', "not valid JSON"),
        ("snippet.py", "x = 1\n", ".yaml, .yml or .json"),
    ],
)
def test_load_config_rejects_bad_files_in_one_line(
    filename: str, text: str, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / filename
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert expected in message and str(path) in message
    assert "\n" not in message
    assert isinstance(caught.value, UserError)


def test_load_config_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
