"""The study runner against real SQLite storage and real (toy) training."""

from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.toy_workload import OWN_BASELINE
from tuner.attrs import FailureKind, StudyAttr, TrialAttr
from tuner.config import DEFAULT_BASELINE
from tuner.errors import UserError
from tuner.progress import run_with_progress
from tuner.results import read_study
from tuner.runner import prepare, run_study
from tuner.space import config_params, load_space
from tuner.spec import StudySpec, load_spec

TOY = Path(__file__).with_name("toy_workload.py")

SPACE = """
extends = "quick"
[performance]
compile_mode = ["off", "reduce-overhead"]   # reduce-overhead needs CUDA graphs: dropped on CPU
"""


def write_spec(
    tmp_path: Path,
    workload: str = "WORKLOAD",
    extra: str = "",
    pruning: bool = False,
    **study: object,
) -> StudySpec:
    """A toy study. Early stopping is off and the front is not re-timed unless asked for:
    these tests count what trials did; tests/test_pruning.py covers stopping them."""
    (tmp_path / "space.toml").write_text(SPACE)
    fields = {
        "name": "toy",
        "n_trials": 4,
        "seed": 0,
        "n_startup_trials": 2,
        "storage": "sqlite:///tuner.db",
        "remeasure_rounds": 0,
        **study,
    }
    lines = [f"{k} = {v!r}".replace("'", '"') for k, v in fields.items()]
    text = (
        "[study]\n" + "\n".join(lines) + f'\nobjective = "{TOY}:{workload}"\nspace = "space.toml"\n'
    )
    text += "[budget]\nsteps = 12\nevaluations = 2\n" + extra
    if not pruning:
        text += "\n[pruning]\nenabled = false\n"
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return load_spec(path)


def test_study_stores_every_result_and_the_study_context(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    summary = run_study(prepare(spec))
    assert (summary.ran, summary.total) == (4, 4)

    study = optuna.load_study(study_name="toy", storage=spec.storage)
    assert study.metric_names == ["accuracy", "throughput"]
    assert study.user_attrs[StudyAttr.SPEC]["budget"]["steps"] == 12
    assert study.user_attrs[StudyAttr.METRIC_DIRECTION] == "maximize"
    dropped = study.user_attrs[StudyAttr.DROPPED]
    assert {"knob": "compile_mode", "value": "reduce-overhead"}.items() <= dropped[0].items()
    assert "CUDA" in dropped[0]["reason"]
    assert "reduce-overhead" not in str(study.user_attrs[StudyAttr.SPACE]["performance"])

    for trial in study.trials:
        if trial.state is not TrialState.COMPLETE:
            assert trial.user_attrs[TrialAttr.FAILURE_REASON]
            continue
        attrs = trial.user_attrs
        assert trial.values == [attrs[TrialAttr.METRIC], attrs[TrialAttr.THROUGHPUT]]
        assert attrs[TrialAttr.CONFIG]["compile_mode"] == "off"  # fixed by hardware awareness
        assert attrs[TrialAttr.SEED] == trial.number
        assert attrs[TrialAttr.DEVICE]["type"] == "cpu"
        assert len(attrs[TrialAttr.THROUGHPUT_WINDOWS]) >= 3
        assert [p["step"] for p in attrs[TrialAttr.CURVE]][-1] == 12
        assert attrs[TrialAttr.PEAK_MEMORY_BYTES] > 0
        for key in (TrialAttr.COMPILE_S, TrialAttr.TRAIN_S, TrialAttr.TRIAL_S, TrialAttr.SAMPLES):
            assert key in attrs


def test_the_first_trial_is_the_baseline_enqueued_for_every_sampler(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, n_trials=3)
    run_study(prepare(spec))
    study = optuna.load_study(study_name="toy", storage=spec.storage)
    first, *rest = study.trials
    assert first.user_attrs[TrialAttr.BASELINE] is True
    assert first.user_attrs[TrialAttr.CONFIG] == DEFAULT_BASELINE.to_dict()
    # Optuna's queue ran it, and the sampler sees its values where the space holds them.
    assert first.system_attrs["fixed_params"] == first.params
    assert first.params["optimizer"] == "adam" and first.params["batch_size"] == 32
    assert first.params["precision"] == "fp32"
    assert all(TrialAttr.BASELINE not in t.user_attrs for t in rest)
    assert read_study("toy", spec.storage).trials[0].is_baseline


def test_a_workload_baseline_outside_the_space_runs_as_declared(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, workload="BASELINE_WORKLOAD", n_trials=2)
    run_study(prepare(spec))
    first = optuna.load_study(study_name="toy", storage=spec.storage).trials[0]
    assert first.user_attrs[TrialAttr.CONFIG] == OWN_BASELINE.to_dict()
    assert first.state is TrialState.COMPLETE
    assert "batch_size" not in first.params  # 16 is outside the space: never told to a sampler
    assert first.params["optimizer"] == "sgd"
    assert first.params["schedule"] == "cosine"


def test_config_params_keep_only_values_the_space_holds() -> None:
    # quick: batch 32-256 (16 is out), weight decay in [1e-6, 0.1] (torch's 0 is out).
    space = load_space("quick")
    assert config_params(OWN_BASELINE, space) == {
        "optimizer": "sgd",
        "sgd.lr": 0.05,
        "sgd.momentum": 0.9,
        "sgd.nesterov": False,
        "schedule": "cosine",
        "accumulation_steps": 1,
        "clipping": "off",
        "precision": "fp32",
        "compile_mode": "off",
    }
    assert config_params(DEFAULT_BASELINE, space) == {
        "optimizer": "adam",
        "adam.lr": 0.001,
        "adam.beta1": 0.9,
        "adam.beta2": 0.999,
        "schedule": "constant",
        "batch_size": 32,
        "accumulation_steps": 1,
        "clipping": "off",
        "precision": "fp32",
        "compile_mode": "off",
    }


def test_rerunning_a_spec_resumes_the_same_study(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    run_study(prepare(spec))
    again = run_study(prepare(spec))
    assert again.ran == 0
    more = run_study(prepare(spec), n_trials=6)
    assert (more.ran, more.total) == (2, 6)
    summaries = optuna.get_all_study_summaries(spec.storage)
    assert [s.study_name for s in summaries] == ["toy"]
    assert [
        t.number for t in optuna.load_study(study_name="toy", storage=spec.storage).trials
    ] == list(range(6))


def test_a_different_experiment_under_the_same_name_is_refused(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    run_study(prepare(spec))
    changed = write_spec(tmp_path, seed=1)
    with pytest.raises(UserError, match="already exists with a different seed"):
        run_study(prepare(changed))
    assert len(optuna.load_study(study_name="toy", storage=spec.storage).trials) == 4


def test_same_seed_samples_the_same_configs(tmp_path: Path) -> None:
    configs = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        spec = write_spec(tmp_path / folder, n_trials=2, n_startup_trials=5)
        run_study(prepare(spec))
        study = optuna.load_study(study_name="toy", storage=spec.storage)
        configs.append([t.user_attrs[TrialAttr.CONFIG] for t in study.trials])
    assert configs[0] == configs[1]


def test_diverging_trials_are_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, workload="NAN_WORKLOAD", n_trials=3)
    summary = run_study(prepare(spec))
    assert summary.total == 3
    view = read_study("toy", spec.storage)
    # PRUNED with a numerics constraint, so the sampler learns the region (FAIL it ignores)
    assert [t.state for t in view.trials] == ["PRUNED"] * 3
    assert list(view.failures()) == [FailureKind.DIVERGED]
    assert all("nan" in t.attrs[TrialAttr.FAILURE_REASON] for t in view.trials)
    study = optuna.load_study(study_name="toy", storage=spec.storage)
    assert all(t.constraints == {"numerics": 1.0} for t in study.trials)


def test_out_of_memory_fails_only_the_trials_that_hit_it(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, workload="OOM_WORKLOAD", n_trials=8, n_startup_trials=8)
    run_study(prepare(spec))
    view = read_study("toy", spec.storage)
    for trial in view.trials:
        big = trial.config["batch_size"] >= 128
        assert (trial.state == "PRUNED") == big  # with a memory constraint the sampler reads
        if big:
            assert trial.attrs[TrialAttr.FAILURE_KIND] == FailureKind.OUT_OF_MEMORY
            assert not trial.feasible
    assert view.completed(), "some trials should have used small batches"


def test_memory_budget_is_a_constraint_not_a_crash(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, extra="[run]\nmemory_budget_mb = 1\n", n_trials=2)
    run_study(prepare(spec))
    view = read_study("toy", spec.storage)
    assert view.completed() == []
    assert len(view.infeasible()) == 2
    study = optuna.load_study(study_name="toy", storage=spec.storage)
    assert all(t.constraints["memory_mb"] > 0 for t in study.trials)


def test_bad_workload_reference_creates_nothing(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, workload="MISSING")
    with pytest.raises(UserError, match="has no attribute 'MISSING'"):
        prepare(spec)
    assert not (tmp_path / "tuner.db").exists()


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random"])
def test_every_sampler_runs_a_study(tmp_path: Path, sampler: str) -> None:
    spec = write_spec(tmp_path, sampler=sampler, n_trials=5, n_startup_trials=2)
    assert run_study(prepare(spec)).total == 5
    study = optuna.load_study(study_name="toy", storage=spec.storage)
    assert study.user_attrs[StudyAttr.SPEC]["sampler"] == sampler
    assert sum(t.state is TrialState.COMPLETE for t in study.trials) >= 3


def test_a_changed_space_under_the_same_name_is_refused(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    run_study(prepare(spec))
    (tmp_path / "space.toml").write_text(SPACE + "[batch]\nbatch_size = [32]\n")
    with pytest.raises(UserError, match="already exists with a different space contents"):
        run_study(prepare(load_spec(tmp_path / "spec.toml")))


def test_timeout_stops_starting_new_trials(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, n_trials=50)
    summary = run_study(prepare(spec), timeout_s=1.0)
    assert summary.stopped_by_timeout
    assert 1 <= summary.ran < 50
    assert summary.total == summary.ran


@pytest.mark.parametrize("url", ["sqlite:///{dir}/other.db", "journal:{dir}/study.log"])
def test_any_optuna_storage_holds_the_study(tmp_path: Path, url: str) -> None:
    spec = dataclasses.replace(write_spec(tmp_path, n_trials=2), storage=url.format(dir=tmp_path))
    run_study(prepare(spec))
    view = read_study("toy", spec.storage)
    assert len(view.trials) == 2
    assert view.metric_name == "accuracy"
    assert run_study(prepare(spec)).ran == 0  # resumed from that storage, not a new study


def test_ctrl_c_mid_trial_is_recorded_as_interrupted(tmp_path: Path) -> None:
    spec_path = tmp_path / "spec.toml"
    write_spec(tmp_path, n_trials=2)
    spec_path.write_text(spec_path.read_text().replace("steps = 12", "steps = 200000"))
    script = Path(sys.executable).with_name("tuner")
    process = subprocess.Popen(
        [str(script), "run", str(spec_path), "--n-trials", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _training(storage):
        time.sleep(0.5)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()[-2000:]
    assert f"`tuner run {spec_path} --n-trials 2` again to resume".encode() in err
    (trial,) = read_study("toy", storage).trials
    assert trial.state == "FAIL"
    assert trial.attrs[TrialAttr.FAILURE_KIND] == FailureKind.INTERRUPTED


def _training(storage: str) -> bool:
    """Whether a trial of study "toy" has its config stored and is still running."""
    try:
        trials = read_study("toy", storage).trials
    except UserError:  # the database or the study is not created yet
        return False
    return any(t.state == "RUNNING" and TrialAttr.CONFIG in t.attrs for t in trials)


def test_the_progress_bar_front_covers_earlier_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, n_trials=2)
    run_study(prepare(spec))
    run_with_progress(
        spec, n_trials=2, timeout_s=None, storage=None, seed=None, resume_command="tuner run x"
    )
    err = capsys.readouterr().err
    assert "already has 2 trials" in err
    assert re.search(r"front \d+ \| best accuracy", err), err
