"""Resolving a workload reference: every way it can go wrong gives one clear line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tuner.workload import Workload, WorkloadError, load_workload

TOY = Path(__file__).with_name("toy_workload.py")


def test_path_and_module_references_resolve() -> None:
    assert load_workload(f"{TOY}:WORKLOAD").name == "toy"
    assert load_workload("tests.toy_workload:NAN_WORKLOAD").name == "toy-nan"


def test_a_factory_returning_a_workload_is_called(tmp_path: Path) -> None:
    path = tmp_path / "factory.py"
    path.write_text("import tests.toy_workload as toy\ndef make():\n    return toy.WORKLOAD\n")
    assert isinstance(load_workload(f"{path}:make"), Workload)


@pytest.mark.parametrize(
    ("body", "attr", "message"),
    [
        ("X = 1\n", "Y", "module has no attribute 'Y'"),
        ("X = 1\n", "X", "X is a int, expected a tuner.workload.Workload"),
        ("def X():\n    return 3\n", "X", "X is a int, expected"),
        (
            "def X():\n    raise RuntimeError('no data here')\n",
            "X",
            "calling X() failed: RuntimeError: no data here",
        ),
        ("import not_a_module_anywhere\n", "X", "ModuleNotFoundError"),
        ("x = (\n", "X", "SyntaxError"),
    ],
)
def test_bad_files_fail_with_one_line(tmp_path: Path, body: str, attr: str, message: str) -> None:
    path = tmp_path / "task.py"
    path.write_text(body)
    with pytest.raises(WorkloadError) as caught:
        load_workload(f"{path}:{attr}")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("nope", "expected a built-in name (charlm, digits)"),
        ("missing_dir/task.py:WORKLOAD", "file missing_dir/task.py does not exist"),
        ("no_such_package.module:WORKLOAD", "importing no_such_package.module failed"),
        ("tests.toy_workload:", "expected a built-in name"),
    ],
)
def test_bad_references(reference: str, message: str) -> None:
    with pytest.raises(WorkloadError, match=re.escape(message)):
        load_workload(reference)
