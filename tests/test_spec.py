"""Study spec validation: every shipped spec loads; bad specs fail with the field named."""

from __future__ import annotations

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
        ("[study\n", "not valid TOML"),
        (GOOD + "[extra]\nx = 1\n", "unknown section [extra]"),
        (GOOD.replace('name = "s"', 'nmae = "s"'), "study.nmae: unknown key"),
        (GOOD.replace('name = "s"\n', ""), "study.name: required"),
        (GOOD.replace('name = "s"', "name = 3"), "study.name: must be a non-empty string, got 3"),
        (
            GOOD.replace("[budget]", "n_trials = 0\n[budget]"),
            "study.n_trials: must be an integer >= 1, got 0",
        ),
        (
            GOOD.replace("[budget]", 'sampler = "cmaes"\n[budget]'),
            "study.sampler: must be one of tpe, nsga2, random, got 'cmaes'",
        ),
        (
            GOOD.replace("[budget]", "timeout_s = -5\n[budget]"),
            "study.timeout_s: must be a number > 0",
        ),
        (
            GOOD.replace("steps = 50", "steps = 50\nepochs = 3"),
            "budget: give exactly one of epochs, steps or seconds",
        ),
        (GOOD.replace("steps = 50", "steps = -1"), "budget.steps: must be a number > 0, got -1"),
        (GOOD + '[run]\ndevice = "tpu"\n', "run.device: must be one of auto, cpu, cuda, got 'tpu'"),
        (GOOD + "[run]\nthreads = 0\n", "run.threads: must be an integer >= 1, got 0"),
        (GOOD + "[run]\nmemory_budget_mb = true\n", "run.memory_budget_mb: must be a number > 0"),
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
