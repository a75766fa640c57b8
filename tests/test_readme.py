"""What the README claims, checked: its example workload trains, its library loop runs, and its
set-up commands are the ones CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_block(first_line: str) -> str:
    """The README's fenced code block whose first line is `first_line`."""
    for block in re.findall(r"```\w*\n(.*?)```", README, re.DOTALL):
        if block.splitlines()[0] == first_line:
            return str(block)
    raise AssertionError(f"README has no code block starting with {first_line!r}")


@pytest.mark.slow
def test_the_example_workload_runs_a_study_found_by_name_from_the_same_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / "my_task.py").write_text(code_block("# my_task.py"))
    (tmp_path / "my_study.toml").write_text(code_block("# my_study.toml"))
    tuner = str(Path(sys.executable).with_name("tuner"))
    run = subprocess.run(
        [tuner, "run", "my_study.toml", "--n-trials", "3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    show = subprocess.run(
        [tuner, "show", "toy"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert show.returncode == 0, show.stderr
    assert "baseline: trial 0" in show.stdout
    # every trial ran: complete, or stopped early (pruned) by a trial that beat it
    counts = re.search(r"^trials: (\d+) complete(?:, (\d+) pruned)?$", show.stdout, re.M)
    assert counts is not None, show.stdout
    assert int(counts[1]) + int(counts[2] or 0) == 3


@pytest.mark.slow
def test_the_library_loop_runs(tmp_path: Path) -> None:
    from tuner.config import DEFAULT_BASELINE
    from tuner.export import Provenance, render

    provenance = Provenance("readme", 0, "accuracy", 0.9, 100.0, "cpu")
    (tmp_path / "best.yaml").write_text(render(DEFAULT_BASELINE, provenance, "yaml"))
    script = tmp_path / "train.py"
    script.write_text(code_block("# train.py: the tuned setup in your own loop"))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model.pt").is_file()


def test_ci_runs_the_readmes_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = code_block(
        "python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e '.[test]' "
        "&& .venv/bin/python -m pytest -q"
    )
    assert test_command.strip() in ci
    first = code_block(
        "python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e '.[test]' "
        "&& .venv/bin/tuner run studies/quick.toml"
    )
    assert (ROOT / first.split()[-1]).is_file()


@pytest.mark.slow
def test_the_dataset_example_searches_its_input_pipeline(tmp_path: Path) -> None:
    import optuna

    (tmp_path / "my_images.py").write_text(code_block("# my_images.py"))
    (tmp_path / "spec.toml").write_text(
        '[study]\nname = "noisy"\nobjective = "my_images.py:WORKLOAD"\nspace = "loader"\n'
        "n_trials = 4\n[budget]\nepochs = 1\nevaluations = 1\ntime_limit_s = 60\n"
    )
    tuner = str(Path(sys.executable).with_name("tuner"))
    run = subprocess.run(
        [tuner, "run", "spec.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    study = optuna.load_study(
        study_name="noisy", storage=f"sqlite:///{tmp_path / 'studies' / 'tuner.db'}"
    )
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) >= 3
    assert all(t.user_attrs["loader_startup_s"] > 0 for t in complete)
