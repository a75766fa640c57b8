"""A built wheel carries what the CLI and the app need at run time, not only a checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("studies", "overview", "front", "pick", "compare", "diagnostics", "trials")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["-q", "-w", str(folder), str(ROOT)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    (built,) = folder.glob("tuner-*.whl")
    return built


@pytest.mark.slow
def test_wheel_carries_builtin_spaces_objectives_and_the_app(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "tuner/cli.py",
        "tuner/py.typed",
        "tuner/harness/trial.py",
        "tuner/space/sample.py",
        "search_spaces/default.toml",
        "search_spaces/quick.toml",
        "objectives/digits.py",
        "objectives/charlm.py",
        "app/main.py",
        "app/charts/front.py",
        *(f"app/views/{page}.py" for page in PAGES),
    ):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tuner = tuner.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith("tests/") for n in names)


@pytest.mark.slow
def test_the_app_runs_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """Installed elsewhere, the app's entry script is the wheel's, and its front page runs."""
    target = tmp_path / "site"
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
    subprocess.run([*command, str(target), str(wheel)], check=True, timeout=300)
    storage = f"sqlite:///{tmp_path / 'wheel.db'}"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(target)!r})
        sys.path.insert(1, {str(ROOT)!r})  # tests.synthetic only; the app comes from the wheel
        from tests.synthetic import write_study
        write_study({storage!r}, "wheel", 30)
        from streamlit.testing.v1 import AppTest
        from tuner.app_server import entry_script
        entry = entry_script()
        assert str(entry).startswith({str(target)!r}), entry
        at = AppTest.from_file(str(entry), default_timeout=120).run()
        assert not at.exception, at.exception
        assert at.title[0].value == "Pareto front", [t.value for t in at.title]
        print("ok", entry)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNER_APP_")}
    env |= {"TUNER_APP_STORAGE": storage, "TUNER_APP_STUDY": "wheel"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")
