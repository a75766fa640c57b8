"""`tuner profile` end to end, through the installed command, on a real study and real specs."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.test_cli import SPACE, SPEC, cli_and_torch, db, tuner
from tuner.attrs import TrialAttr
from tuner.config import (
    DEFAULT_BASELINE,
    CompileMode,
    LoaderConfig,
    OptimizerImpl,
    Precision,
    TrialConfig,
)
from tuner.export import Provenance, render
from tuner.profiling import OpTime, Phase, Profile, advice, format_profile, verdict

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("data loading", "forward", "backward", "optimizer")

# A Dataset whose examples take 2 ms each: a batch of 32 waits 64 ms for its data, against
# well under a millisecond of training for the small model.
SLOW_WORKLOAD = """
import time

import torch
from torch import nn

from tuner.workload import Datasets, Direction, Metric, Workload


class SlowDataset(torch.utils.data.Dataset):
    def __init__(self, n):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 16, generator=generator)
        self.y = (self.x.sum(1) > 0).long()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        time.sleep(0.002)
        return self.x[i], self.y[i]


WORKLOAD = Workload(
    name="slow-data",
    metric=Metric("accuracy", Direction.MAXIMIZE),
    build_model=lambda: nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2)),
    load_data=lambda: Datasets(SlowDataset(256), SlowDataset(64)),
    loss=nn.functional.cross_entropy,
    score=lambda out, y: (out.argmax(-1) == y).float(),
)
"""


def spec_for(folder: Path, objective: str) -> Path:
    spec = folder / "profiled.toml"
    spec.write_text(f'[study]\nname = "profiled"\nobjective = "{objective}"\n[budget]\nsteps = 5\n')
    return spec


def exported(folder: Path, config: TrialConfig, name: str = "config.yaml") -> Path:
    """A config file as `tuner export` writes it."""
    path = folder / name
    path.write_text(
        render(config, Provenance("profiled", 0, "accuracy", None, None, "cpu"), "yaml")
    )
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-trial digits study, plus a third trial that failed before it had a config."""
    folder = tmp_path_factory.mktemp("profile")
    spec = folder / "prof.toml"
    spec.write_text(
        SPEC.replace('name = "e2e"', 'name = "prof"').replace("n_trials = 3", "n_trials = 2")
    )
    (folder / "e2e_space.toml").write_text(SPACE)
    result = tuner("run", str(spec), cwd=folder)
    assert result.returncode == 0, result.stderr
    stored = optuna.load_study(study_name="prof", storage=db(spec))
    configless = stored.ask()
    configless.set_user_attr(TrialAttr.FAILURE_KIND, "surplus")
    configless.set_user_attr(TrialAttr.FAILURE_REASON, "not run")
    stored.tell(configless, state=TrialState.FAIL)
    return spec


def phase_shares(stdout: str) -> dict[str, float]:
    """Each phase's `% of step` from the report's phase table."""
    shares = {}
    for phase in PHASES:
        found = re.search(rf"^{phase}\s+[\d.]+\s+([\d.]+)%$", stdout, re.MULTILINE)
        assert found, f"no row for {phase}:\n{stdout}"
        shares[phase] = float(found.group(1))
    return shares


def one_line_error(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_profiles_the_baseline_and_writes_a_chrome_trace(study: Path, tmp_path: Path) -> None:
    result = tuner(
        "profile", "prof", "--trial", "0", "--steps", "5", "--storage", db(study), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "profile: study prof, trial 0 (baseline) on cpu" in out
    assert "config: adam lr=1.00e-03, constant, 32x1, fp32, off, clip off" in out
    assert re.search(r"^samples/s: [\d,]+ in the timed steps", out, re.MULTILINE), out
    shares = phase_shares(out)
    assert sum(shares.values()) == pytest.approx(100, abs=0.5)
    biggest = max(shares, key=lambda phase: shares[phase])
    assert re.search(rf"^verdict: {biggest} takes \d+% of each step: \S", out, re.MULTILINE), out
    assert re.search(r"^top \d+ ops by self CPU time:", out, re.MULTILINE), out
    assert "aten::" in out
    assert not result.stderr.strip(), result.stderr  # no stray profiler lines

    trace = tmp_path / "profile-prof-0.json"  # the default: here, named by study and trial
    assert f"trace: {trace}" in out
    events = json.loads(trace.read_text())["traceEvents"]
    names = {event.get("name") for event in events}
    for phase in Phase:
        assert phase.range_name in names
    forward = [e for e in events if e.get("name") == Phase.FORWARD.range_name]
    assert len(forward) == 5  # one range per micro-batch of the profiled steps


@pytest.mark.slow
def test_profiles_an_exported_config_with_its_spec(study: Path, tmp_path: Path) -> None:
    config = tmp_path / "best.yaml"
    export = tuner("export", str(study), "--pick", "trial=1", "-o", str(config), cwd=study.parent)
    assert export.returncode == 0, export.stderr
    trace = tmp_path / "t.json"
    result = tuner(
        "profile",
        "--spec",
        str(study),
        "--config",
        str(config),
        "--steps",
        "3",
        "--trace",
        str(trace),
    )
    assert result.returncode == 0, result.stderr
    assert f"profile: spec prof, config {config} on cpu" in result.stdout
    stored = optuna.load_study(study_name="prof", storage=db(study)).trials[1]
    batch = stored.user_attrs[TrialAttr.CONFIG]["batch_size"]
    assert re.search(rf"^config: .*, {batch}x1, ", result.stdout, re.MULTILINE), result.stdout
    assert sum(phase_shares(result.stdout).values()) == pytest.approx(100, abs=0.5)
    assert "traceEvents" in json.loads(trace.read_text())


@pytest.mark.slow
def test_slow_data_loading_is_named_the_biggest_phase(tmp_path: Path) -> None:
    (tmp_path / "slow_workload.py").write_text(SLOW_WORKLOAD)
    spec = spec_for(tmp_path, "slow_workload.py:WORKLOAD")
    config = exported(tmp_path, DEFAULT_BASELINE)
    result = tuner(
        "profile", "--spec", str(spec), "--config", str(config), "--steps", "4", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    shares = phase_shares(result.stdout)
    assert max(shares, key=lambda phase: shares[phase]) == "data loading", result.stdout
    assert re.search(
        r"^verdict: data loading takes \d+% of each step: raise data\.num_workers \(now 0\)",
        result.stdout,
        re.MULTILINE,
    ), result.stdout
    assert (tmp_path / "profile-profiled-config.json").is_file()


@pytest.mark.slow
def test_a_config_that_fails_when_run_is_one_line_and_exit_1(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, f"{ROOT / 'tests' / 'toy_workload.py'}:OOM_WORKLOAD")
    config = exported(tmp_path, replace(DEFAULT_BASELINE, batch_size=128))  # does not "fit"
    result = tuner("profile", "--spec", str(spec), "--config", str(config), cwd=tmp_path)
    one_line_error(result, 1, "the config failed when run (out_of_memory: OutOfMemoryError: CUDA")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--trial", "0", "--storage", "DB"], "STUDY: no study named 'nope'"),
        (
            ["prof", "--trial", "9", "--storage", "DB"],
            "--trial: study 'prof' has no trial 9 (its trials: 0-2)",
        ),
        (
            ["prof", "--trial", "2", "--storage", "DB"],
            "--trial: trial 2 has no stored config: it is FAIL (surplus: not run)",
        ),
        (["prof", "--storage", "DB"], "--trial: required with STUDY"),
        (
            ["prof", "--trial", "0", "--storage", "DB", "--trace", "DIR/no/such/t.json"],
            "--trace: cannot write",
        ),
        (["prof", "--trial", "0", "--storage", "DB", "--spec", "SPEC"], "not both"),
        (
            ["prof", "--trial", "0", "--storage", "DB", "--config", "DIR/c.yaml"],
            "--config: goes with --spec",
        ),
        (["SPEC", "--trial", "0", "--steps", "0"], "--steps: 0 is not in the range 1<=x<=10000"),
    ],
)
def test_study_mistakes_are_one_line_and_exit_2(
    study: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [
        a.replace("DB", db(study)).replace("SPEC", str(study)).replace("DIR", str(tmp_path))
        for a in args
    ]
    one_line_error(tuner("profile", *args, cwd=tmp_path), 2, message)
    assert not list(tmp_path.iterdir())  # nothing written, no trace left behind


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "STUDY: give a study and --trial N, or --spec SPEC --config FILE, not neither"),
        (["--spec", "SPEC"], "--config: required with --spec"),
        (["--spec", "SPEC", "--config", "DIR/bad.yaml"], "--config: DIR/bad.yaml: not valid YAML"),
        (
            ["--spec", "SPEC", "--config", "DIR/missing.yaml"],
            "--config: DIR/missing.yaml: cannot read",
        ),
        (
            ["--spec", "SPEC", "--config", "DIR/ok.yaml", "--trial", "0"],
            "--spec: --trial and --storage go with STUDY",
        ),
        (["--spec", "DIR/missing.toml", "--config", "DIR/ok.yaml"], "no such spec file"),
        (["--spec", "SPEC", "--config", "DIR/ok.yaml", "--trace", "DIR"], "is a directory"),
        (
            ["--spec", "SPEC", "--config", "DIR/ok.yaml", "--trace", "DIR/ok.yaml/t.json"],
            "--trace: cannot write DIR/ok.yaml/t.json: Not a directory",
        ),
        (
            ["--spec", "SPEC", "--config", "DIR/ok.yaml", "--steps", "0"],
            "--steps: 0 is not in the range",
        ),
    ],
)
def test_mistakes_are_one_line_exit_2_before_torch_is_imported(
    tmp_path: Path, args: list[str], message: str
) -> None:
    spec = spec_for(tmp_path, "digits")
    exported(tmp_path, DEFAULT_BASELINE, "ok.yaml")
    (tmp_path / "bad.yaml").write_text("config: [unclosed\n")
    before = sorted(tmp_path.iterdir())
    args = [a.replace("SPEC", str(spec)).replace("DIR", str(tmp_path)) for a in args]
    message = message.replace("DIR", str(tmp_path))
    result, imported = cli_and_torch("profile", *args)
    assert not imported
    one_line_error(result, 2, message)
    assert sorted(tmp_path.iterdir()) == before


def test_profile_has_help_without_importing_torch() -> None:
    result, imported = cli_and_torch("profile", "--help")
    assert result.returncode == 0 and not imported, result.stderr
    assert "Usage: tuner profile [OPTIONS] [STUDY]" in result.stdout
    assert "--steps" in result.stdout and "--trace" in result.stdout


def made_profile(config: TrialConfig, biggest: Phase, **fields: object) -> Profile:
    """A Profile as `run_profile` fills it, with `biggest` taking 70% of each step."""
    phases = {phase: 0.1 for phase in Phase} | {biggest: 0.7}
    values: dict[str, object] = {
        "label": "study s, trial 3",
        "config": config,
        "device": "cpu (a CPU, 1 thread), torch 2",
        "device_type": "cpu",
        "warmup_steps": 3,
        "steps": 10,
        "samples": 320,
        "wall_s": sum(phases.values()),
        "profiled_s": 1.5,
        "phases": phases,
        "ops": (OpTime("aten::mm", 40, 0.25, None),),
        "datasets": True,
        "input_rank": 4,
        "trace": Path("t.json"),
    }
    return Profile(**(values | fields))  # type: ignore[arg-type]


WORKERS = replace(DEFAULT_BASELINE, loader=LoaderConfig(2, False, False, 2))
TUNED = replace(
    DEFAULT_BASELINE,
    precision=Precision.BF16,
    compile_mode=CompileMode.DEFAULT,
    channels_last=True,
    optimizer_impl=OptimizerImpl.FUSED,
    grad_clip_norm=1.0,
)


@pytest.mark.parametrize(
    ("config", "phase", "fields", "expected", "absent"),
    [
        (DEFAULT_BASELINE, Phase.DATA, {}, ["raise data.num_workers (now 0)"], ["pin_memory"]),
        (
            WORKERS,
            Phase.DATA,
            {"device_type": "cuda"},
            ["data.persistent_workers = true", "(now 2)", "data.pin_memory = true"],
            ["(now 0)"],
        ),
        (DEFAULT_BASELINE, Phase.DATA, {"datasets": False}, ["tensors in memory"], ["num_workers"]),
        (
            DEFAULT_BASELINE,
            Phase.FORWARD,
            {},
            ["precision = bf16 (now fp32)", "compile_mode = default", "channels_last = true"],
            [],
        ),
        (
            TUNED,
            Phase.BACKWARD,
            {"input_rank": 2},
            ["batch_size (now 32)"],
            ["precision", "compile"],
        ),
        (DEFAULT_BASELINE, Phase.OPTIMIZER, {}, ["optimizer_impl = fused (now default)"], []),
        (TUNED, Phase.OPTIMIZER, {}, ["clipping off", "accumulation_steps (now 1)"], ["fused"]),
    ],
)
def test_the_verdict_names_the_biggest_phase_and_knobs_that_apply(
    config: TrialConfig,
    phase: Phase,
    fields: dict[str, object],
    expected: list[str],
    absent: list[str],
) -> None:
    profile = made_profile(config, phase, **fields)
    line = verdict(profile)
    assert line.startswith(f"{phase.heading} takes 70% of each step: ")
    for text in expected:
        assert text in line
    for text in absent:
        assert text not in line
    assert advice(phase, profile) == line.split(": ", 1)[1].split("; ")


def test_the_report_reads_top_to_bottom() -> None:
    report = format_profile(made_profile(DEFAULT_BASELINE, Phase.FORWARD, study_throughput=400.0))
    lines = report.splitlines()
    assert lines[0] == "profile: study s, trial 3 on cpu (a CPU, 1 thread), torch 2"
    assert lines[1] == "config: adam lr=1.00e-03, constant, 32x1, fp32, off, clip off"
    assert (
        lines[3]
        == "samples/s: 320 in the timed steps (213 under the profiler; the study measured 400)"
    )
    assert phase_shares(report) == {
        "data loading": 10.0,
        "forward": 70.0,
        "backward": 10.0,
        "optimizer": 10.0,
    }
    assert re.search(r"^aten::mm\s+250\.00\s+16\.7%\s+40$", report, re.MULTILINE), report
    assert lines[-1] == "trace: t.json (open it in ui.perfetto.dev)"
