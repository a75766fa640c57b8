"""Resolving a workload reference: every way it can go wrong gives one clear line."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tuner.workload import Workload, WorkloadError, load_workload

TOY = Path(__file__).with_name("toy_workload.py")


def test_path_and_module_references_resolve() -> None:
    assert load_workload(f"{TOY}:WORKLOAD").name == "toy"
    assert load_workload("tests.toy_workload:NAN_WORKLOAD").name == "toy-nan"


def test_a_file_named_tuner_py_is_a_users_file(tmp_path: Path) -> None:
    path = tmp_path / "tuner.py"
    path.write_text("from tests.toy_workload import WORKLOAD\n")
    assert load_workload(f"{path}:WORKLOAD").name == "toy"


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
        ("nope", "expected a built-in name (charlm, digits, digits32)"),
        ("missing_dir/task.py:WORKLOAD", "file missing_dir/task.py does not exist"),
        ("no_such_package.module:WORKLOAD", "importing no_such_package.module failed"),
        ("tests.toy_workload:", "expected a built-in name"),
        ("tuner.cli:main", "tuner's own modules hold no workload; name your own module"),
    ],
)
def test_bad_references(reference: str, message: str) -> None:
    with pytest.raises(WorkloadError, match=re.escape(message)):
        load_workload(reference)


@pytest.mark.parametrize(
    ("body", "attr", "message"),
    [
        (
            "import sys\nsys.exit(3)\n",
            "W",
            "importing {path} called sys.exit(3); remove the exit from module level",
        ),
        ("raise SystemExit('bye')\n", "W", "importing {path} called sys.exit('bye'); remove"),
        (
            "raise GeneratorExit\n",
            "W",
            "importing {path} failed: GeneratorExit; fix the error there",
        ),
        ("def W():\n    exit()\n", "W", "calling W() called sys.exit(None); make W a Workload"),
        (
            "def W():\n    raise ValueError('one\\ntwo\\x1b[2J')\n",
            "W",
            "calling W() failed: ValueError: one two[2J; make W a Workload",
        ),
    ],
)
def test_user_code_that_exits_or_raises_is_one_line(
    tmp_path: Path, body: str, attr: str, message: str
) -> None:
    path = tmp_path / "task.py"
    path.write_text(body)
    with pytest.raises(WorkloadError) as caught:
        load_workload(f"{path}:{attr}")
    assert f"objective '{path}:{attr}': {message.format(path=path)}" in str(caught.value)
    assert str(caught.value).isprintable()
    if message.startswith("importing"):  # no half-run module is left for a later import
        assert "_tuner_workload_task" not in sys.modules


@pytest.mark.parametrize("reference", ["builtins:exit", "sys:exit"])
def test_an_exit_function_as_objective_is_one_line(reference: str) -> None:
    with pytest.raises(WorkloadError, match=re.escape("calling exit() called sys.exit(None)")):
        load_workload(reference)


def test_printing_on_import_goes_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "chatty.py"
    path.write_text("print('loading data')\nfrom tests.toy_workload import WORKLOAD\n")
    assert load_workload(f"{path}:WORKLOAD").name == "toy"
    out, err = capsys.readouterr()
    assert (out, err) == ("", "loading data\n")  # stdout carries tuner's own output


def test_a_files_sibling_modules_import(tmp_path: Path) -> None:
    (tmp_path / "shared_model.py").write_text(
        "from tests.toy_workload import WORKLOAD as BASE\nNAME = 'split'\n"
    )
    path = tmp_path / "train.py"
    path.write_text(
        "import dataclasses\nfrom shared_model import BASE, NAME\n"
        "WORKLOAD = dataclasses.replace(BASE, name=NAME)\n"
    )
    assert load_workload(f"{path}:WORKLOAD").name == "split"


def test_sizes_pick_a_builtin_workload_and_refuse_a_users() -> None:
    assert load_workload("digits").name == "digits"
    assert load_workload("charlm", "gpu").name == "charlm-gpu"
    with pytest.raises(WorkloadError, match="sizes apply to the built-in workloads"):
        load_workload(f"{TOY}:WORKLOAD", "gpu")
    with pytest.raises(WorkloadError, match="size 'huge': not a workload size; use one of"):
        load_workload("digits", "huge")
