"""A built wheel carries what the CLI needs at run time, not only a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_carries_builtin_spaces_and_objectives(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("tuner-*.whl")
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
    ):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tuner = tuner.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith("tests/") for n in names)
