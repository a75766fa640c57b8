"""End to end through the installed `tuner` command: run a tiny digits study, show, export."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tuner.attrs import TrialAttr
from tuner.config import TrialConfig
from tuner.export import load_config

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["run", "show", "list", "export", "profile", "app"]

SPEC = """
[study]
name = "e2e"
objective = "digits"
space = "e2e_space.toml"
n_trials = 3
seed = 0

[budget]
epochs = 2
evaluations = 2
time_limit_s = 20
"""
# Seconds per trial: fp16 (100x slower on a CPU) and compilation are left to other tests.
SPACE = """
extends = "quick"
[performance]
precision = ["fp32", "bf16"]
compile_mode = "off"
"""


def tuner(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, exactly as a user runs it."""
    script = Path(sys.executable).with_name("tuner")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def cli_and_torch(*args: str) -> tuple[subprocess.CompletedProcess[str], bool]:
    """The CLI run in a fresh interpreter, and whether it imported torch (the last stderr line
    says; it is taken off the result). The read commands and every --help must not: torch
    takes seconds to import, and a reader's machine may not have it."""
    code = (
        "import sys\n"
        f"sys.argv = ['tuner', *{list(args)!r}]\n"
        "from tuner.cli import main\n"
        "try:\n    main()\n"
        "finally:\n    print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    *rest, last = result.stderr.strip().splitlines()
    assert last.startswith("torch imported: "), result.stderr
    result.stderr = "\n".join(rest)
    return result, last == "torch imported: True"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real three-trial study on the digits workload, in a fresh SQLite file."""
    folder = tmp_path_factory.mktemp("e2e")
    spec = folder / "e2e.toml"
    spec.write_text(SPEC)
    (folder / "e2e_space.toml").write_text(SPACE)
    result = tuner("run", str(spec), cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "Pareto front" in result.stdout
    return spec


def db(spec: Path) -> str:
    """The default storage of a study run from the spec's folder."""
    return f"sqlite:///{spec.parent / 'studies' / 'tuner.db'}"


@pytest.mark.slow
def test_run_stores_complete_trials(study: Path) -> None:
    stored = optuna.load_study(study_name="e2e", storage=db(study))
    assert len(stored.trials) == 3
    assert stored.trials[0].user_attrs[TrialAttr.BASELINE] is True
    complete = [t for t in stored.trials if t.state.name == "COMPLETE"]
    assert complete, [t.user_attrs.get(TrialAttr.FAILURE_REASON) for t in stored.trials]
    for trial in complete:
        assert 0.0 < trial.values[0] <= 1.0  # accuracy
        assert trial.values[1] > 0  # samples/s
        TrialConfig.from_dict(trial.user_attrs[TrialAttr.CONFIG])  # a valid, complete config


@pytest.mark.slow
def test_rerun_resumes_without_new_trials(study: Path) -> None:
    result = tuner("run", str(study), cwd=study.parent)
    assert result.returncode == 0, result.stderr
    assert "already has 3 trials" in result.stderr
    assert len(optuna.get_all_study_summaries(db(study))) == 1


@pytest.mark.slow
def test_show_by_spec_and_by_name(study: Path) -> None:
    by_spec = tuner("show", str(study), cwd=study.parent)
    by_name = tuner("show", "e2e", "--storage", db(study))
    by_name_here = tuner("show", "e2e", cwd=study.parent)  # the one default storage
    assert by_spec.returncode == 0, by_spec.stderr
    assert by_spec.stdout == by_name.stdout == by_name_here.stdout
    assert re.search(
        r"^baseline: trial 0 \(adam lr=1\.00e-03, constant, 32x1, fp32, off\)",
        by_spec.stdout,
        re.MULTILINE,
    ), by_spec.stdout
    assert "Pareto front" in by_spec.stdout
    counts = re.search(r"^trials: (.*)$", by_spec.stdout, re.MULTILINE)
    assert counts, by_spec.stdout
    assert sum(int(n) for n in re.findall(r"(\d+) \w+", counts.group(1))) == 3
    assert "complete" in counts.group(1)
    assert "accuracy" in by_spec.stdout and "samples/s" in by_spec.stdout


@pytest.mark.slow
def test_list(study: Path) -> None:
    result = tuner("list", "--storage", db(study))
    assert result.returncode == 0
    assert re.search(r"e2e\s+3\s+accuracy\s+digits", result.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_round_trips_the_stored_config(study: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"best.{fmt}"
    result = tuner(
        "export",
        str(study),
        "--pick",
        "max-metric",
        "--format",
        fmt,
        "-o",
        str(out),
        cwd=study.parent,
    )
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(out.read_text()) if fmt == "yaml" else json.loads(out.read_text())
    stored = optuna.load_study(study_name="e2e", storage=db(study))
    trial = stored.trials[document["provenance"]["trial"]]
    assert document["config"] == trial.user_attrs[TrialAttr.CONFIG]
    assert load_config(out) == TrialConfig.from_dict(trial.user_attrs[TrialAttr.CONFIG])


@pytest.mark.slow
def test_exported_python_snippet_runs(study: Path, tmp_path: Path) -> None:
    result = tuner(
        "export", str(study), "--pick", "max-throughput", "--format", "python", cwd=study.parent
    )
    assert result.returncode == 0, result.stderr
    namespace: dict[str, object] = {}
    exec(compile(result.stdout, "snippet.py", "exec"), namespace)
    import torch

    parts = namespace["make_training"](torch.nn.Linear(4, 2), 10)  # type: ignore[operator]
    assert isinstance(parts[2], torch.optim.Optimizer)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["list", "--help"],
        ["app", "--help"],
        ["show", "e2e"],
        ["export", "e2e", "--format", "json"],
    ],
)
def test_read_commands_never_import_torch(study: Path, args: list[str]) -> None:
    args = [*args, "--storage", db(study)] if "e2e" in args else args
    result, imported = cli_and_torch(*args)
    assert result.returncode == 0, result.stderr
    assert not imported


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_is_in_the_readme(command: str) -> None:
    result = tuner(command, "--help")
    assert result.returncode == 0
    assert "Usage:" in result.stdout
    assert f"tuner {command}" in (ROOT / "README.md").read_text()


BAD_SPEC = SPEC.replace("seed = 0", 'seed = 0\nsampler = "grid"')


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "SPEC_BAD"], "study.sampler: must be one of tpe, nsga2, random, got 'grid'"),
        (["run", "MISSING.toml"], "no such spec file"),
        (["show", "nope", "--storage", "sqlite:///DIR/none.db"], "no database at"),
        (["show", "nope", "--storage", "postgresql://me:s3cret@127.0.0.1:1/db"], "me:***@"),
        (["app", "--storage", "sqlite:///DIR/none.db"], "no database at"),
        (["run"], "SPEC: missing argument 'SPEC'; see `tuner run --help`"),
        (["run", "SPEC_BAD", "--n-trials", "0"], "--n-trials: 0 is not in the range 1<=x<=1000000"),
        (["export", "STUDY", "--format", "xml"], "--format: 'xml' is not one of"),
        (["frobnicate"], "no such command 'frobnicate'; see `tuner --help`"),
        (["list", "--storage", "journal:DIR/nosuch.log"], "no journal at"),
        (["run", "STUDY", "--storage", "sqlite:///DIR/ok.toml/x.db"], "cannot create the folder"),
        (["run", "STUDY", "--storage", "sqlite:///DIR/no/such/x.db"], "cannot create the folder"),
        (["run", "STUDY", "--storage", "journal:/dev/zero"], "/dev/zero is not a regular file"),
        (["run", "STUDY", "--timeout", "nan"], "--timeout: nan is not a number of seconds"),
        (["run", "STUDY", "--seed", str(2**32)], "--seed: 4294967296 is not in the range"),
        (["worker", "STUDY", "--workers", "0"], "--workers: 0 is not in the range 1<=x<=256"),
    ],
)
def test_user_errors_are_one_line_exit_2_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.toml").write_text(BAD_SPEC)
    (tmp_path / "ok.toml").write_text(SPEC)
    (tmp_path / "e2e_space.toml").write_text(SPACE)
    args = [
        a.replace("SPEC_BAD", str(tmp_path / "bad.toml"))
        .replace("MISSING", str(tmp_path / "missing"))
        .replace("DIR", str(tmp_path))
        .replace("STUDY", str(tmp_path / "ok.toml"))
        for a in args
    ]
    result = tuner(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml", "e2e_space.toml", "ok.toml"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pick", "message"),
    [
        ("best", "--pick: 'best' is not understood"),
        ("fastest-with=accuracy>=1.5", "no complete trial of 'e2e' meets metric>=1.5"),
        ("best-with=loss<=1", "unknown quantity 'loss'"),
    ],
)
def test_bad_picks_are_one_line_errors(study: Path, pick: str, message: str) -> None:
    result = tuner("export", "e2e", "--storage", db(study), "--pick", pick)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_export_names_the_metric_in_an_slo_and_shows_the_baseline(study: Path) -> None:
    result = tuner("export", "e2e", "--storage", db(study), "--pick", "best-with=accuracy>=0")
    assert result.returncode == 0, result.stderr
    provenance = yaml.safe_load(result.stdout)["provenance"]
    assert provenance["baseline_trial"] == 0
    assert provenance["speedup"] > 0


def test_ctrl_c_during_start_up_is_one_line_and_exit_130(tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text(SPEC)
    script = Path(sys.executable).with_name("tuner")
    process = subprocess.Popen(
        [str(script), "run", str(tmp_path / "ok.toml")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.8)  # importing torch and resolving the workload, before the first trial
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Aborted!" not in err
    assert "interrupted" in err


@pytest.mark.slow
def test_export_to_a_missing_folder_is_one_line(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "missing" / "best.yaml"
    result = tuner("export", "e2e", "--storage", db(study), "-o", str(out))
    assert result.returncode == 2
    assert f"error: -o: cannot write {out}: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr
