"""The learning-rate range test (`tuner lr-find`, torch-lr-finder) and ``lr = "auto"``.

Real range tests run on the digits workload (tensors) and on a Dataset workload, kept short
(20-30 steps); ``lr = "auto"`` is checked through the CLI on a real study, and its resolution
rules with a stand-in test where training would prove nothing more.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from tests import dataset_workload
from tests.test_cli import cli_and_torch
from tuner.attrs import StudyAttr
from tuner.batch_scaling import LrScaling
from tuner.config import OptimizerConfig, OptimizerName, Precision
from tuner.errors import UserError
from tuner.lrfind import (
    LrFindError,
    RangeTest,
    RangeTestFailed,
    RangeTestResult,
    load_auto_space,
    planned_test,
    representative_optimizer,
    resolve_space,
    run_range_test,
)
from tuner.lrfind_command import LrFindRequest, lr_find
from tuner.runner import open_prepared, prepare
from tuner.space import SearchSpace, SpaceError, load_space, sample_config
from tuner.space.auto_lr import ABOVE, BELOW, AutoSpace, auto_paths, auto_range
from tuner.space.load import read_space
from tuner.space.schema import FloatRange, Source
from tuner.spec import load_spec
from tuner.storage import open_storage
from tuner.workload import load_workload

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
MIN_STEPS = 17  # torch-lr-finder's plot needs skip_start + skip_end + 2 points
CPU = torch.device("cpu")

SPEC = """
[study]
name = "lrf"
objective = "digits"
space = "auto_space.toml"
n_trials = 2
seed = 0

[budget]
epochs = 1
"""
# sgd's lr is left to the range test; adamw keeps the quick space's range.
AUTO_SPACE = """
extends = "quick"
[optimizer]
choices = ["sgd", "adamw"]
[optimizer.sgd]
lr = "auto"
"""


def tuner(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, exactly as a user runs it."""
    script = Path(sys.executable).with_name("tuner")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def db(folder: Path) -> str:
    return f"sqlite:///{folder / 'studies' / 'tuner.db'}"


def write_spec(folder: Path, spec: str = SPEC, space: str = AUTO_SPACE) -> Path:
    (folder / "auto_space.toml").write_text(space)
    path = folder / "lrf.toml"
    path.write_text(spec)
    return path


@pytest.fixture(scope="module")
def found(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`tuner lr-find` for sgd, 30 steps, on a spec whose space has sgd's lr = "auto": it
    creates the study, whose space takes its sgd range from this very test."""
    folder = tmp_path_factory.mktemp("lrfind")
    spec = write_spec(folder)
    result = tuner("lr-find", str(spec), "--optimizer", "sgd", "--iterations", "30", cwd=folder)
    return spec, result


def stored(spec: Path) -> optuna.Study:
    return optuna.load_study(study_name="lrf", storage=db(spec.parent))


def no_training(*args: Any, **kwargs: Any) -> RangeTestResult:
    raise AssertionError("no range test should run here")


# --- the command ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_lr_find_prints_the_suggestion_and_the_minimum(found: tuple[Path, Any]) -> None:
    _, result = found
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("range test: lrf (digits), sgd (weight_decay 0.000316, momentum")
    assert "batch 32 x 1, fp32, on cpu" in lines[0]
    assert " steps from lr 1e-07 to 10; " in lines[1]
    labels = [line.split("  ")[0] for line in lines[2:7]]
    assert labels == ["suggested lr", "min-loss lr", 'lr = "auto"', "plot", "stored"]
    assert "lr_find.sgd in created study lrf" in lines[6]
    assert lines[7].startswith('lr = "auto" for sgd: ')  # what the new study's space holds
    assert len(lines) == 8
    assert result.stderr == ""


@pytest.mark.slow
def test_lr_find_writes_a_png_next_to_the_spec(found: tuple[Path, Any]) -> None:
    spec, result = found
    plot = spec.parent / "lrf-lr-sgd.png"
    assert plot.read_bytes()[:8] == PNG
    assert "plot          lrf-lr-sgd.png\n" in result.stdout  # relative to where it ran


@pytest.mark.slow
def test_the_study_holds_the_result_and_its_auto_range(found: tuple[Path, Any]) -> None:
    spec, _ = found
    study = stored(spec)
    record = study.user_attrs[StudyAttr.LR_FIND]["sgd"]
    assert record["optimizer"] == "sgd"
    assert (record["batch_size"], record["accumulation"], record["precision"]) == (32, 1, "fp32")
    assert (record["start_lr"], record["end_lr"], record["iterations"]) == (1e-7, 10.0, 30)
    assert record["plot"] == str(spec.parent / "lrf-lr-sgd.png")
    assert 1e-7 <= record["suggested_lr"] <= 10 and 1e-7 <= record["min_loss_lr"] <= 10
    assert record["steps"] <= 30
    assert record["params"]["momentum"] == pytest.approx(0.745)  # the space's centre
    assert RangeTestResult.from_dict(record) is not None
    # The study was created as `tuner run` creates it, its "auto" resolved from this test.
    suggested = record["suggested_lr"]
    lr = study.user_attrs[StudyAttr.SPACE]["optimizer"]["sgd"]["lr"]
    assert lr == {"low": suggested / BELOW, "high": suggested * ABOVE, "log": True}
    assert study.user_attrs[StudyAttr.SPACE]["optimizer"]["adamw"]["lr"]["low"] == 1e-4
    used = study.user_attrs[StudyAttr.AUTO_LR]["sgd"]
    assert used["found"] == record and (used["low"], used["high"]) == (lr["low"], lr["high"])
    assert "auto" not in json.dumps(study.user_attrs[StudyAttr.SPACE])
    assert study.user_attrs[StudyAttr.CREATED] is True
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.WAITING]  # the baseline


@pytest.mark.slow
def test_a_later_run_resumes_the_study_without_a_new_test(
    found: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_path, _ = found
    monkeypatch.chdir(spec_path.parent)
    monkeypatch.setattr("tuner.lrfind._run.run_range_test", no_training)
    spec = load_spec(spec_path)
    prepared = prepare(spec)
    assert prepared.space.to_dict() == stored(spec_path).user_attrs[StudyAttr.SPACE]
    open_prepared(prepared, open_storage(spec.storage, create=False))  # the same experiment


@pytest.mark.slow
def test_lr_find_adds_to_an_existing_study(
    found: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_path, _ = found
    monkeypatch.chdir(spec_path.parent)
    spec = load_spec(spec_path)
    before = stored(spec_path).user_attrs
    plot = tmp_path / "adamw.png"
    request = LrFindRequest(optimizer="adamw", precision="bf16", iterations=20, plot=str(plot))
    report = lr_find(spec, request)
    assert not report.created and plot.read_bytes()[:8] == PNG
    after = stored(spec_path).user_attrs
    assert after[StudyAttr.LR_FIND]["sgd"] == before[StudyAttr.LR_FIND]["sgd"]
    assert after[StudyAttr.LR_FIND]["adamw"]["precision"] == "bf16"
    assert after[StudyAttr.AUTO_LR] == before[StudyAttr.AUTO_LR]  # the space never changes
    assert after[StudyAttr.SPACE] == before[StudyAttr.SPACE]


@pytest.mark.slow
def test_lr_find_refuses_a_study_of_another_experiment_before_training(
    found: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_path, _ = found
    monkeypatch.chdir(spec_path.parent)
    monkeypatch.setattr("tuner.lrfind._run.run_range_test", no_training)
    spec = dataclasses.replace(load_spec(spec_path), seed=7)
    with pytest.raises(UserError, match="'lrf' already exists with a different seed"):
        lr_find(spec, LrFindRequest(optimizer="sgd"))


ERRORS = [
    (["--optimizer", "nadam"], "error: --optimizer: 'nadam' is not one of"),
    (["--precision", "fp8"], "error: --precision: 'fp8' is not one of"),
    (["--iterations", "5"], "error: --iterations: 5 is not in the range 17<=x<=100000"),
    (["--start-lr", "nan"], "error: --start-lr: nan is not a learning rate"),
    (["--start-lr", "1", "--end-lr", "0.5"], "error: --end-lr: 0.5 is not above --start-lr 1;"),
    (["--plot", "/nonexistent/folder/x.png"], "error: --plot: the folder /nonexistent/folder"),
]


@pytest.mark.parametrize(("args", "message"), ERRORS)
def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    spec = write_spec(tmp_path)
    result = tuner("lr-find", str(spec), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert not (tmp_path / "studies").exists()  # nothing stored, not even a storage


def test_a_missing_spec_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = tuner("lr-find", str(tmp_path / "absent.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'absent.toml'}: no such spec file\n"


def test_an_auto_that_applies_to_nothing_is_one_line_and_exit_2(tmp_path: Path) -> None:
    space = 'extends = "quick"\n[optimizer]\nlr = "auto"\n'  # quick gives each its own lr
    result = tuner("lr-find", str(write_spec(tmp_path, space=space)), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert 'optimizer.lr: "auto" applies to no optimizer' in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("args", [["--help"], ["lr-find", "--help"]])
def test_help_never_imports_torch(args: list[str]) -> None:
    result, imported = cli_and_torch(*args)
    assert result.returncode == 0, result.stderr
    assert not imported
    assert "lr-find" in result.stdout


def test_lr_find_has_help_and_is_in_the_readme() -> None:
    result = tuner("lr-find", "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout
    readme = (ROOT / "README.md").read_text()
    assert "tuner lr-find" in readme and 'lr = "auto"' in readme


# --- the range test itself ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("precision", [Precision.BF16, Precision.FP16])
def test_a_dataset_workload_runs_with_amp_and_accumulation(
    tmp_path: Path, precision: Precision
) -> None:
    workload = dataset_workload.WORKLOAD
    calls = dataset_workload.AUGMENT_CALLS[0]
    optimizer = OptimizerConfig(OptimizerName.ADAMW, lr=1e-3, betas=(0.9, 0.999))
    test = RangeTest(optimizer, 16, 2, precision, start_lr=1e-5, end_lr=1.0, iterations=20)
    plot = tmp_path / "blobs.png"
    result = run_range_test(workload, test, CPU, seed=0, plot=plot)
    assert MIN_STEPS <= result.steps <= 20
    # every step drew two micro-batches of 16 through the Dataset's __getitem__
    assert dataset_workload.AUGMENT_CALLS[0] - calls >= result.steps * 2 * 16
    assert 1e-5 <= result.suggested_lr <= 1.0 and plot.read_bytes()[:8] == PNG
    assert result.to_dict()["precision"] == precision.value


@pytest.mark.slow
def test_the_test_trains_the_seeded_model_on_the_seeded_batches() -> None:
    workload = load_workload("digits")
    test = planned_test(workload.baseline, load_auto_space("quick"), "adamw", iterations=20)
    first, again = (run_range_test(workload, test, CPU, seed=3) for _ in range(2))
    other = run_range_test(workload, test, CPU, seed=4)
    assert first.history == again.history
    assert first.history != other.history
    assert first.plot is None


@pytest.mark.slow
def test_a_loss_that_diverges_at_once_is_a_failure_exit_1() -> None:
    workload = load_workload("digits")
    test = planned_test(
        workload.baseline, load_auto_space("quick"), "adamw", start_lr=1, end_lr=100
    )
    with pytest.raises(RangeTestFailed, match=r"the loss diverged at lr .* after \d+ steps") as exc:
        run_range_test(workload, test, CPU, seed=0)
    assert exc.value.exit_code == 1


def test_range_test_values_are_checked_with_their_option_names() -> None:
    adam = OptimizerConfig(OptimizerName.ADAM, lr=1e-3, betas=(0.9, 0.999))
    with pytest.raises(LrFindError, match="--start-lr: 0 is not an lr in"):
        RangeTest(adam, 32, start_lr=0)
    with pytest.raises(LrFindError, match="--end-lr: 1e-08 is not above --start-lr 1e-07"):
        RangeTest(adam, 32, end_lr=1e-8)
    with pytest.raises(LrFindError, match=r"--iterations: 16 is not an integer in \[17, "):
        RangeTest(adam, 32, iterations=16)
    with pytest.raises(LrFindError, match="--accumulation: 0 is not"):
        RangeTest(adam, 32, accumulation_steps=0)


def test_a_result_round_trips_and_a_foreign_record_is_ignored() -> None:
    sgd = OptimizerConfig(OptimizerName.SGD, lr=1e-7, momentum=0.9, nesterov=True)
    test = RangeTest(sgd, 64, 2, Precision.BF16, iterations=50)
    result = RangeTestResult(test, 0.2, 0.4, 44, 1.5, "cpu", "/x.png")
    back = RangeTestResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back is not None and back.to_dict() == result.to_dict()
    assert back.test.same_run(test)
    assert not dataclasses.replace(test, batch_size=32).same_run(test)
    assert dataclasses.replace(test, iterations=300).same_run(test)  # a chosen sweep still holds
    for foreign in ({}, {"optimizer": "lion"}, [], None, {**result.to_dict(), "suggested_lr": -1}):
        assert RangeTestResult.from_dict(foreign) is None


def test_the_tested_optimizer_sits_at_the_centre_of_the_space() -> None:
    sgd, _, adamw, _ = load_space("default").optimizers
    optimizer = representative_optimizer(sgd, lr=1e-3)
    assert optimizer.momentum == pytest.approx(0.745)  # the middle of 0.5..0.99
    assert optimizer.weight_decay == pytest.approx(math.sqrt(1e-6 * 0.1))  # log range: geometric
    assert optimizer.nesterov is True  # a list's first value
    assert representative_optimizer(adamw, lr=1e-3).betas == pytest.approx((0.875, 0.97495))


# --- lr = "auto" ----------------------------------------------------------------------------------


def write(folder: Path, text: str) -> Path:
    path = folder / "space.toml"
    path.write_text(text)
    return path


def test_auto_parses_with_every_other_knob_final(tmp_path: Path) -> None:
    path = write(tmp_path, AUTO_SPACE)
    auto = AutoSpace.parse(*read_space(path))
    assert auto.auto == ("sgd",)
    assert [b.name for b in auto.space.optimizers] == ["sgd", "adamw"]
    space = auto.resolve({"sgd": FloatRange(0.01, 0.3, log=True)})
    params = dict(space.optimizers[0].params)
    assert params["lr"] == FloatRange(0.01, 0.3, log=True)
    assert params["momentum"] == FloatRange(0.5, 0.99)  # the rest as the file says
    assert space.optimizers[1] == load_space("quick").optimizers[2]
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space


def test_a_shared_auto_applies_to_every_optimizer_without_its_own_lr() -> None:
    raw = {"optimizer": {"choices": ["sgd", "adam"], "lr": "auto", "adam": {"lr": 0.001}}}
    auto = AutoSpace.parse(raw, Source("s.toml"))
    assert auto.auto == ("sgd",)
    assert auto_paths(raw) == ("optimizer.lr",)
    space = auto.resolve({"sgd": FloatRange(0.02, 0.6, log=True)})
    assert dict(space.optimizers[0].params)["lr"] == FloatRange(0.02, 0.6, log=True)
    assert "auto" not in json.dumps(space.to_dict())
    assert raw["optimizer"]["lr"] == "auto"  # the caller's raw space is left as it was


def test_the_builtin_auto_lr_space_leaves_every_lr_to_the_test() -> None:
    auto = load_auto_space("auto_lr")
    assert auto.auto == ("sgd", "adam", "adamw", "rmsprop")
    quick = load_space("quick")
    assert auto.space.batch_size == quick.batch_size
    for mine, theirs in zip(auto.space.optimizers, quick.optimizers, strict=True):
        assert dict(mine.params) | {"lr": None} == dict(theirs.params) | {"lr": None}


def test_the_resolved_auto_lr_space_round_trips_and_samples_valid_configs() -> None:
    auto = load_auto_space("auto_lr")
    ranges = {name: auto_range(0.01, 32, name, auto.space) for name in auto.auto}
    space = auto.resolve(ranges)
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(50):
        trial = study.ask()
        config = sample_config(trial, space)  # TrialConfig validates every field
        name = config.optimizer.name.value
        assert ranges[name].low <= trial.params[f"{name}.lr"] <= ranges[name].high


def test_auto_where_nothing_can_resolve_it_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(SpaceError) as exc:
        load_space(write(tmp_path, AUTO_SPACE))
    message = str(exc.value)
    assert message.startswith(f'{tmp_path / "space.toml"}: optimizer.sgd.lr: "auto" needs')
    assert "\n" not in message
    with pytest.raises(SpaceError, match=r'auto_lr.toml \(built-in\): optimizer.sgd.lr: "auto"'):
        load_space("auto_lr")
    stored = load_space("quick").to_dict()
    stored["optimizer"]["sgd"]["lr"] = "auto"  # a stored space is concrete: never "auto"
    with pytest.raises(SpaceError, match=r"optimizer\.sgd\.lr"):
        SearchSpace.from_dict(stored)


def test_an_auto_every_optimizer_overrides_is_an_error() -> None:
    raw = {"optimizer": {"choices": "sgd", "lr": "auto", "sgd": {"lr": 0.1}}}
    with pytest.raises(SpaceError, match=r's\.toml: optimizer\.lr: "auto" applies to no optimizer'):
        AutoSpace.parse(raw, Source("s.toml"))


def test_the_auto_range_spans_below_and_above_the_suggestion() -> None:
    quick = load_space("quick")
    assert auto_range(0.2, 32, "sgd", quick) == FloatRange(0.2 / 10, 0.2 * 3, log=True)
    # a space that scales the lr with the effective batch states it for its reference batch
    scaled = dataclasses.replace(quick, lr_scaling=LrScaling.AUTO, reference_batch=128)
    assert auto_range(0.2, 32, "sgd", scaled).high == pytest.approx(0.2 * 4 * 3)  # linear
    assert auto_range(0.2, 32, "adam", scaled).high == pytest.approx(0.2 * 2 * 3)  # sqrt
    capped = auto_range(60, 32, "sgd", quick)
    assert capped.high == 100 and capped.high / capped.low == pytest.approx(30)


def fake_result(test: RangeTest, suggested: float) -> RangeTestResult:
    return RangeTestResult(test, suggested, suggested * 2, test.iterations, None, "cpu")


def test_auto_runs_the_baseline_test_when_nothing_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = load_spec(write_spec(tmp_path))
    ran: list[RangeTest] = []

    def stand_in(workload: Any, test: RangeTest, device: Any, seed: int) -> RangeTestResult:
        ran.append(test)
        return fake_result(test, 0.25)

    monkeypatch.setattr("tuner.lrfind._run.run_range_test", stand_in)
    resolved = resolve_space(spec, load_auto_space(spec.space), load_workload("digits"), CPU)
    (test,) = ran  # only sgd is "auto"
    assert (test.batch_size, test.accumulation_steps, test.precision) == (32, 1, Precision.FP32)
    assert (test.optimizer.name, test.iterations) == (OptimizerName.SGD, 200)
    assert dict(resolved.space.optimizers[0].params)["lr"] == FloatRange(0.025, 0.75, log=True)
    assert resolved.attrs[StudyAttr.AUTO_LR]["sgd"]["suggested_lr"] == 0.25
    assert not (tmp_path / "studies").exists()  # resolving stores nothing


def test_auto_uses_a_matching_test_and_ignores_one_at_another_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = load_spec(write_spec(tmp_path))
    workload = load_workload("digits")
    planned = planned_test(workload.baseline, load_auto_space(spec.space), "sgd")
    other_batch = fake_result(dataclasses.replace(planned, batch_size=128), 9.0)
    matching = fake_result(dataclasses.replace(planned, iterations=40), 0.1)
    monkeypatch.setattr("tuner.lrfind._run.run_range_test", no_training)
    auto = load_auto_space(spec.space)
    resolved = resolve_space(spec, auto, workload, CPU, found=(other_batch, matching))
    assert dict(resolved.space.optimizers[0].params)["lr"] == auto_range(
        0.1, 32, "sgd", resolved.space
    )
    assert resolved.attrs[StudyAttr.LR_FIND]["sgd"]["iterations"] == 40
