"""tuner.export: YAML/JSON round trips, the Python snippet against build_training, safety."""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import math
import re
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

from tests.test_knobs import lr_sequence
from tuner.config import (
    CompileMode,
    ConfigError,
    OptimizerConfig,
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
    ),
}
PROVENANCE = Provenance("cifar", 12, "accuracy", 0.9134, 4523.1, "NVIDIA H200")
EVIL = 'x"\nimport os; os.system("rm -rf /")#'


def test_configs_cover_every_optimizer_schedule_precision_and_compile_mode() -> None:
    configs = CONFIGS.values()
    assert {c.optimizer.name for c in configs} == set(OptimizerName)
    assert {c.schedule.name for c in configs} == set(ScheduleName)
    assert {c.precision for c in configs} == set(Precision)
    assert {c.compile_mode for c in configs} == set(CompileMode)


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
    built = build_training(config, nn.Linear(4, 2), total_steps=50)
    rebuilt = build_training(loaded, nn.Linear(4, 2), total_steps=50)
    assert groups(rebuilt.optimizer) == groups(built.optimizer)


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


@pytest.mark.parametrize("total_steps", [1, 3, 20])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_python_snippet_builds_what_build_training_builds(name: str, total_steps: int) -> None:
    config = CONFIGS[name]
    namespace = exec_snippet(render(config, PROVENANCE, "python"))
    assert namespace["BATCH_SIZE"] == config.batch_size
    assert namespace["ACCUMULATION_STEPS"] == config.accumulation_steps

    model = nn.Linear(4, 2)
    model_to_train, eager, optimizer, scheduler, scaler, autocast = namespace["make_training"](
        model, total_steps
    )
    setup = build_training(config, nn.Linear(4, 2), total_steps, "cpu")
    assert eager is model
    assert (model_to_train is model) == (setup.model is setup.eager_model)
    assert type(optimizer) is type(setup.optimizer)
    assert groups(optimizer) == groups(setup.optimizer)
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
    trained = namespace["train_steps"](model, loader, nn.functional.mse_loss, 3)
    assert trained is model and not trained.training  # handed back ready to evaluate
    assert torch.isfinite(model.weight).all() and not torch.equal(model.weight, before)


@pytest.mark.slow
def test_python_snippet_run_as_a_script_trains_a_toy_model(tmp_path: Path) -> None:
    path = tmp_path / "tuned.py"
    config = dataclasses.replace(
        CONFIGS["adamw-one-cycle"], precision=Precision.BF16, compile_mode=CompileMode.OFF
    )
    path.write_text(render(config, PROVENANCE, "python"))
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    before, after = map(float, re.findall(r"(\d+\.\d+)", result.stdout.split("loss")[1]))
    assert after < before


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


def test_python_snippet_floats_round_trip_exactly() -> None:
    source = render(CONFIGS["sgd-nesterov-step-clip"], PROVENANCE, "python")
    assert "lr=0.30000000000000004" in source


def test_provenance_cannot_inject_code() -> None:
    provenance = Provenance(
        study=EVIL,
        trial=7,
        metric_name='acc\r\nimport os  # "',
        metric=0.5,
        throughput=10.0,
        device="cpu\u2028import os\x00\x1b[2J\x0bos.system('x')",
    )
    source = render(CONFIGS["sgd-nesterov-step-clip"], provenance, "python")
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        assert not isinstance(node, ast.ImportFrom)
        assert not (isinstance(node, ast.Name) and node.id == "os")
        assert not (isinstance(node, ast.Attribute) and node.attr == "system")
    assert imported == {"functools", "torch"}
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
