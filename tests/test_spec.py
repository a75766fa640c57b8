"""Study spec validation: every shipped spec loads; bad specs fail with the field named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tuner.spec import SamplerName, SpecError, load_spec

STUDIES = Path(__file__).resolve().parents[1] / "studies"

GOOD = """
[study]
name = "s"
objective = "my_task.py:WORKLOAD"
space = "narrow.toml"

[budget]
steps = 50
"""


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_specs_load(path: Path) -> None:
    spec = load_spec(path)
    assert spec.storage == f"sqlite:///{STUDIES / 'tuner.db'}"
    assert spec.n_trials >= 20


def test_defaults_and_relative_paths_resolve_against_the_spec_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "s.toml").write_text(GOOD)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_spec(tmp_path / "s.toml")
    assert spec.objective == f"{tmp_path / 'my_task.py'}:WORKLOAD"
    assert spec.space == str(tmp_path / "narrow.toml")
    # Without a storage key: the one default storage, studies/tuner.db where tuner runs.
    assert spec.storage == f"sqlite:///{elsewhere / 'studies' / 'tuner.db'}"
    assert spec.sampler is SamplerName.TPE
    assert (spec.n_trials, spec.seed, spec.threads, spec.budget.steps) == (20, 0, 1, 50)


def test_relative_sqlite_url_is_anchored_at_the_spec(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        GOOD.replace("[budget]", 'storage = "sqlite:///x/y.db"\n[budget]')
    )
    assert load_spec(tmp_path / "s.toml").storage == f"sqlite:///{tmp_path / 'x/y.db'}"


def test_identity_ignores_run_length_but_not_the_experiment(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(GOOD)
    (tmp_path / "b.toml").write_text(GOOD.replace("[budget]", "n_trials = 99\n[budget]"))
    (tmp_path / "c.toml").write_text(GOOD.replace("steps = 50", "steps = 51"))
    a, b, c = (load_spec(tmp_path / f"{n}.toml") for n in "abc")
    assert a.identity() == b.identity()
    assert a.identity() != c.identity()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[study\n", "invalid TOML: Expected ']' at the end of a table declaration"),
        (GOOD + "[extra]\nx = 1\n", "unknown section [extra]"),
        (GOOD.replace('name = "s"', 'nmae = "s"'), "study.nmae: unknown key"),
        (GOOD.replace('name = "s"\n', ""), "study.name: required"),
        (GOOD.replace('name = "s"', "name = 3"), "study.name: must be a non-empty string, got 3"),
        (
            GOOD.replace("[budget]", "n_trials = 0\n[budget]"),
            "study.n_trials: must be an integer in [1, 1000000], got 0",
        ),
        (
            GOOD.replace("[budget]", 'sampler = "cmaes"\n[budget]'),
            "study.sampler: must be one of tpe, nsga2, random, got 'cmaes'",
        ),
        (
            GOOD.replace("[budget]", "timeout_s = -5\n[budget]"),
            "study.timeout_s: must be a number in (0, 10000000], got -5",
        ),
        (
            GOOD.replace("steps = 50", "steps = 50\nepochs = 3"),
            "budget: give exactly one of epochs, steps or seconds",
        ),
        (
            GOOD.replace("steps = 50", "steps = -1"),
            "budget.steps: must be an integer in [1, 1000000000], got -1",
        ),
        (GOOD + '[run]\ndevice = "tpu"\n', "run.device: must be one of auto, cpu, cuda, got 'tpu'"),
        (GOOD + "[run]\nthreads = 0\n", "run.threads: must be an integer in [1, "),
        (
            GOOD.replace("[budget]", 'size = "huge"\n[budget]'),
            "study.size: must be one of small, gpu, got 'huge'",
        ),
        (
            GOOD + "[run]\nmemory_budget_mb = true\n",
            "run.memory_budget_mb: must be a number in (0, 1000000000], got True",
        ),
    ],
)
def test_bad_specs_fail_with_one_line_naming_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)


def in_study(line: str) -> str:
    return GOOD.replace("[budget]", f"{line}\n[budget]")


def in_budget(line: str) -> str:
    return GOOD.replace("steps = 50", line)


CORES = os.cpu_count() or 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            in_study(f"seed = {2**32}"),
            "study.seed: must be an integer in [0, 2147483647], got 4294967296",
        ),
        (in_study("seed = -1"), "study.seed: must be an integer in [0, 2147483647], got -1"),
        (in_study("n_trials = 1.5"), "study.n_trials: must be an integer in [1, 1000000], got 1.5"),
        (
            in_study(f"n_startup_trials = {10**7}"),
            "study.n_startup_trials: must be an integer in [1, 1000000], got 10000000",
        ),
        (
            in_study(f"timeout_s = {10**39}"),
            "study.timeout_s: must be a number in (0, 10000000], got about 10^39",
        ),
        (
            in_study("timeout_s = nan"),
            "study.timeout_s: must be a number in (0, 10000000], got nan",
        ),
        (
            GOOD + f"[run]\nthreads = {2**31}\n",
            f"run.threads: must be an integer in [1, {CORES}], got 2147483648; "
            f"this machine has {CORES} CPU cores",
        ),
        (
            GOOD + "[run]\nmemory_budget_mb = inf\n",
            "run.memory_budget_mb: must be a number in (0, 1000000000], got inf",
        ),
        (
            GOOD + f"[run]\nmemory_budget_mb = {10**400}\n",
            "run.memory_budget_mb: must be a number in (0, 1000000000], got about 10^400",
        ),
        (in_budget("seconds = nan"), "budget.seconds: must be a number in (0, 10000000], got nan"),
        (in_budget("seconds = inf"), "budget.seconds: must be a number in (0, 10000000], got inf"),
        (
            in_budget(f"steps = {10**39}"),
            "budget.steps: must be an integer in [1, 1000000000], got about 10^39",
        ),
        (in_budget("epochs = 2.5"), "budget.epochs: must be an integer in [1, 1000000], got 2.5"),
        (
            in_budget("steps = 5\ntime_limit_s = nan"),
            "budget.time_limit_s: must be a number in (0, 10000000], got nan",
        ),
        (
            in_budget("steps = 5\nwindows = 100000"),
            "budget.windows: must be an integer in [3, 1000], got 100000",
        ),
        (
            in_budget("steps = 5\nevaluations = true"),
            "budget.evaluations: must be an integer in [1, 1000], got True",
        ),
        (
            in_budget("steps = 5\nwarmup_steps = [3]"),
            "budget.warmup_steps: must be an integer in [2, 1000], got [3]",
        ),
        (
            GOOD.replace('name = "s"', 'name = "s\\u001b[2J"'),
            "study.name: must be printable text (no control characters, tabs or newlines), "
            "got 's\\x1b[2J'",
        ),
        (
            GOOD.replace('name = "s"', 'name = "a\\nb"'),
            "study.name: must be printable text (no control characters, tabs or newlines), "
            "got 'a\\nb'",
        ),
        (
            GOOD.replace('name = "s"', f'name = "{"x" * 513}"'),
            f"study.name: must be at most 512 characters, got '{'x' * 79}... (515 characters)",
        ),
        (
            GOOD.replace('"narrow.toml"', '"sp\\u0000ce.toml"'),
            "study.space: must be printable text (no control characters, tabs or newlines), "
            "got 'sp\\x00ce.toml'",
        ),
        (GOOD + '[study."a\\nb"]\n', 'study."a\\nb": unknown key; allowed:'),
        (GOOD + '["\\u001b[2J"]\n', 'unknown section ["\\u001b[2J"]; allowed: study, budget, run'),
        (
            GOOD.replace('name = "s"', "name = { first = 1 }"),
            "study.name: must be a non-empty string, got {'first': 1}",
        ),
    ],
)
def test_absurd_values_fail_with_their_bounds(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


def test_bounds_hold_at_their_edges(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        in_study(f"seed = {2**31 - 1}\ntimeout_s = 10000000\nn_trials = 1000000")
        + f"[run]\nthreads = {CORES}\nmemory_budget_mb = 1000000000\n"
    )
    spec = load_spec(tmp_path / "s.toml")
    assert (spec.seed, spec.threads, spec.n_trials) == (2**31 - 1, CORES, 10**6)
    assert (spec.timeout_s, spec.memory_budget_mb) == (1e7, 1e9)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00[study]", "is not UTF-8 text (byte 0 is 0xff); save it as UTF-8"),
        ("# caf\xe9\n".encode("latin-1"), "is not UTF-8 text (byte 5 is 0xe9); save it as UTF-8"),
        (b"a = " + b"[" * 100000, "invalid TOML: arrays or tables nested too deep to read"),
        (b"a" + b".a" * 100000 + b" = 1", "tables and arrays nest more than 8 deep; flatten them"),
        (b"a = " + b"9" * 5000, "invalid TOML: an integer has over 4300 digits"),
        (b"x = 1\n" * 200000, "is larger than 1048576 bytes; a spec or space is a short TOML"),
    ],
)
def test_unreadable_spec_files_fail_in_one_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_a_spec_path_must_be_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.toml")  # opening it would wait for a writer forever
    with pytest.raises(SpecError, match=r"fifo\.toml: is not a regular file \(a device, FIFO"):
        load_spec(tmp_path / "fifo.toml")
    with pytest.raises(SpecError, match=r"^/dev/zero: is not a regular file"):
        load_spec("/dev/zero")
    with pytest.raises(SpecError, match=r": is a folder; give the path of a TOML file$"):
        load_spec(tmp_path)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "absent.toml")


def test_the_stored_spec_never_holds_a_storage_password(tmp_path: Path) -> None:
    url = "postgresql://me:s3cret@db-host:5432/tuner"
    (tmp_path / "s.toml").write_text(GOOD.replace("[budget]", f'storage = "{url}"\n[budget]'))
    spec = load_spec(tmp_path / "s.toml")
    assert spec.storage == url  # used to connect
    assert spec.to_dict()["storage"] == "postgresql://me:***@db-host:5432/tuner"
    assert "s3cret" not in str(spec.to_dict())
