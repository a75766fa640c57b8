"""Hostile input: whatever a spec, space or objective holds, the outcome is a valid object or
one clean line, never a traceback.

The property tests build random spec and space files from the real section and key names
plus random ones, with values drawn from the kinds fuzzing broke before (integers past any
float, nan and inf, control characters, deep tables), and also raw bytes. The end-to-end tests
run the real CLI on a fixed list of hostile cases and check that nothing is stored.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_space import sample_many, write
from tests.test_spec import GOOD
from tuner.budget import Budget
from tuner.errors import UserError
from tuner.space import Choice, Fixed, FloatRange, IntRange, SearchSpace, load_space
from tuner.spec import StudySpec, load_spec

T = TypeVar("T")
TOY = Path(__file__).with_name("toy_workload.py")
OUTCOMES: Counter[str] = Counter()  # what the property tests saw, reported at the end

# --- random TOML documents -----------------------------------------------------------------------

HUGE_INTS = [10**400, -(10**400), 2**31, 2**31 - 1, 2**32, 2**63, -(2**63), 10**39, 10**9 + 1]
ODD_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 5e-324, 1e-320]
ODD_TEXT = ["\x1b[31mred", "a\nb", "nul\x00", "tab\there", "\u2028", "\x7f", "", " ", "x" * 5000]
WORDS = ["sgd", "adam", "adamw", "rmsprop", "cosine", "step", "fp32", "bf16", "off", "norm"]
WORDS += ["default", "quick", "tpe", "nsga2", "random", "cpu", "auto", "digits", "/dev/zero"]

scalars = st.one_of(
    st.sampled_from(HUGE_INTS),
    st.integers(-(10**6), 10**6),
    st.integers(),
    st.sampled_from(ODD_FLOATS),
    st.floats(),
    st.booleans(),
    st.sampled_from(ODD_TEXT + WORDS),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
)


def nested(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Scalars, and lists and tables of them (a range table when the keys are low/high)."""
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=8,
    )


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(data: dict[str, Any]) -> str:
    """Each top-level entry on its own line; tables written inline (the same TOML meaning)."""
    return "".join(f"{toml_string(key)} = {toml_value(value)}\n" for key, value in data.items())


def edited(base: dict[str, Any], edits: list[tuple[list[str], Any]]) -> dict[str, Any]:
    """``base`` with each value set at its key path (None deletes), tables made on the way."""
    data = json.loads(json.dumps(base))
    for path, value in edits:
        table = data
        for key in path[:-1]:
            if not isinstance(table.get(key), dict):
                table[key] = {}
            table = table[key]
        if value is None:
            table.pop(path[-1], None)
        else:
            table[path[-1]] = value
    return data


def edits(
    paths: st.SearchStrategy[list[str]], keys: st.SearchStrategy[str]
) -> st.SearchStrategy[list[tuple[list[str], Any]]]:
    return st.lists(st.tuples(paths, st.none() | nested(keys)), max_size=4)


raw_files = st.one_of(
    st.binary(max_size=200),
    st.text(st.characters(max_codepoint=255), max_size=80).map(lambda t: t.encode("latin-1")),
    st.integers(1, 3000).map(lambda n: ("a = " + "[" * n).encode()),
    st.integers(1, 3000).map(lambda n: ("a" + ".a" * n + " = 1").encode()),
    st.just(b""),
)

# --- specs ---------------------------------------------------------------------------------------

SPEC_KEYS = {
    "study": "name objective space n_trials timeout_s seed sampler n_startup_trials storage",
    "budget": " ".join(field.name for field in fields(Budget)),
    "run": "device threads memory_budget_mb",
}
BASE_SPEC = {
    "study": {"name": "s", "objective": "task.py:W", "space": "quick"},
    "budget": {"steps": 5},
}
random_keys = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=6)
spec_paths = st.one_of(
    st.sampled_from(list(SPEC_KEYS)).flatmap(
        lambda section: st.sampled_from(SPEC_KEYS[section].split()).map(lambda key: [section, key])
    ),
    st.lists(st.sampled_from(list(SPEC_KEYS)) | random_keys, min_size=1, max_size=3),
)


def check_spec(spec: StudySpec) -> None:
    """Every number of a valid spec is finite and in its bound; every text printable."""
    budget = spec.budget
    for value in (spec.timeout_s, spec.memory_budget_mb, budget.seconds, budget.time_limit_s):
        assert value is None or (math.isfinite(value) and 0 < value <= 10**9)
    assert 0 <= spec.seed <= 2**31 - 1
    assert spec.threads is not None and 1 <= spec.threads <= (os.cpu_count() or 1)
    assert 1 <= spec.n_trials <= 10**6 and 1 <= spec.n_startup_trials <= 10**6
    assert all(
        isinstance(v, int) and 1 <= v <= 10**9
        for v in (budget.epochs or 1, budget.steps or 1, budget.evaluations, budget.windows)
    )
    assert all(text.isprintable() for text in (spec.name, spec.objective, spec.space))
    json.dumps(spec.to_dict(), allow_nan=False)


def outcome(kind: str, load: Callable[[Path], T], path: Path, check: Callable[[T], None]) -> None:
    """Load ``path``: a valid object passes ``check``; a UserError is one line; nothing else."""
    try:
        loaded = load(path)
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc).isprintable(), str(exc)
        OUTCOMES[f"{kind} clean error"] += 1
        return
    check(loaded)
    OUTCOMES[f"{kind} valid"] += 1


# FUZZ_EXAMPLES=5000 fuzzes deeper (a minute) when a check changes.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(changes=edits(spec_paths, random_keys | st.sampled_from(SPEC_KEYS["budget"].split())))
def test_random_spec_files_load_or_fail_in_one_line(
    tmp_path: Path, changes: list[tuple[list[str], Any]]
) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(toml_document(edited(BASE_SPEC, changes)), encoding="utf-8")
    outcome("spec", load_spec, path, check_spec)


@settings(FUZZ, max_examples=100)
@given(content=raw_files)
def test_random_bytes_as_spec_or_space(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "raw.toml"
    path.write_bytes(content)
    outcome("raw spec", load_spec, path, check_spec)
    outcome("raw space", load_space, path, check_space)


# --- spaces --------------------------------------------------------------------------------------

SPACE_KEYS = {
    "optimizer": ["choices", "lr", "weight_decay", "momentum", "nesterov", "beta1", "beta2"],
    "schedule": ["choices", "step_every", "step_gamma", "pct_start", "warmup_fraction"],
    "batch": [
        "batch_size",
        "accumulation_steps",
        "effective_batch_size",
        "lr_scaling",
        "reference_batch",
    ],
    "clipping": ["choices", "max_norm"],
    "performance": ["precision", "compile_mode"],
}
BRANCHES = {"optimizer": ["sgd", "adam", "adamw", "rmsprop"], "schedule": ["step", "one_cycle"]}
space_keys = st.sampled_from(["low", "high", "log", "step", "alpha", "choices", "extends"])
space_paths = st.one_of(
    st.sampled_from(list(SPACE_KEYS)).flatmap(
        lambda section: st.sampled_from(SPACE_KEYS[section]).map(lambda key: [section, key])
    ),
    st.sampled_from(list(BRANCHES)).flatmap(
        lambda group: st.tuples(
            st.sampled_from(BRANCHES[group]), st.sampled_from(SPACE_KEYS[group] + ["alpha"])
        ).map(lambda pair: [group, *pair])
    ),
    st.just(["extends"]),
    st.lists(st.sampled_from(list(SPACE_KEYS)) | random_keys, min_size=1, max_size=4),
)


def knob_values(space: SearchSpace) -> Iterator[Any]:
    knobs = [space.batch_size, space.accumulation_steps, space.clipping, space.max_norm]
    if space.effective_batch_size is not None:
        knobs.append(space.effective_batch_size)
    knobs += [knob for branch in (*space.optimizers, *space.schedules) for _, knob in branch.params]
    for knob in knobs:
        if isinstance(knob, Fixed):
            yield knob.value
        elif isinstance(knob, Choice):
            yield from knob.values
        else:
            assert isinstance(knob, FloatRange | IntRange)
            yield from (knob.low, knob.high)


def check_space(space: SearchSpace) -> None:
    """Every number of a valid space is finite, the space survives its stored form, and Optuna
    samples valid configs from it."""
    for value in knob_values(space):
        assert not isinstance(value, float) or math.isfinite(value)
        assert not isinstance(value, int) or abs(value) <= 2**20
    json.dumps(space.to_dict(), allow_nan=False)
    assert SearchSpace.from_dict(space.to_dict()) == space
    sample_many(space, 2)  # each config is a validated TrialConfig


@FUZZ
@given(
    base=st.sampled_from([{}, {"extends": "quick"}, {"extends": "default"}]),
    changes=edits(space_paths, space_keys | random_keys),
)
def test_random_space_files_load_or_fail_in_one_line(
    tmp_path: Path, base: dict[str, Any], changes: list[tuple[list[str], Any]]
) -> None:
    path = tmp_path / "space.toml"
    path.write_text(toml_document(edited(base, changes)), encoding="utf-8")
    outcome("space", load_space, path, check_space)


def test_zz_fuzzing_reached_both_outcomes() -> None:
    """Runs after the property tests (file order): their inputs must have produced valid specs
    and spaces as well as errors, or they would prove nothing about the checks. Run with -s to
    see the counts."""
    if not OUTCOMES:
        pytest.skip("run together with the property tests")
    print("\nhostile inputs by outcome:", dict(sorted(OUTCOMES.items())))
    for kind in ("spec", "space"):
        assert OUTCOMES[f"{kind} valid"] and OUTCOMES[f"{kind} clean error"], OUTCOMES


# --- the real CLI on each hostile case -----------------------------------------------------------


def spec_text(
    *, objective: str = f"{TOY}:WORKLOAD", space: str = "quick", study: str = "", run: str = ""
) -> str:
    """The tests' good spec (a toy objective, 50 steps) with these changes."""
    text = GOOD.replace("my_task.py:WORKLOAD", objective).replace("narrow.toml", space)
    return text.replace("[budget]", f"{study}\n[budget]") + (f"[run]\n{run}\n" if run else "")


def _extends_chain(folder: Path) -> None:
    for n in range(100):
        write(folder, f"chain{n}.toml", f'extends = "chain{n + 1}.toml"\n' if n < 99 else "")
    write(folder, "space.toml", 'extends = "chain0.toml"\n')


HOSTILE: dict[str, tuple[str | bytes, Any, str]] = {
    # name: (the spec, what else to write in its folder, part of the message)
    "lr 10**400": (
        spec_text(space="space.toml"),
        lambda d: write(d, "space.toml", f"[optimizer.adam]\nlr = {10**400}\n"),
        "optimizer.adam.lr: about 10^400 is outside (0, 100]",
    ),
    "seed 2**32": (
        spec_text(study=f"seed = {2**32}"),
        None,
        "study.seed: must be an integer in [0, 2147483647], got 4294967296",
    ),
    "threads 100000": (
        spec_text(run="threads = 100000"),
        None,
        f"run.threads: must be an integer in [1, {os.cpu_count()}], got 100000; this machine",
    ),
    "nan memory budget": (
        spec_text(run="memory_budget_mb = nan"),
        None,
        "run.memory_budget_mb: must be a number in (0, 1000000000], got nan",
    ),
    "binary spec": (b"\xff\xfe\x00[study]\n", None, "is not UTF-8 text (byte 0 is 0xff)"),
    "latin-1 space": (
        spec_text(space="space.toml"),
        lambda d: (d / "space.toml").write_bytes("# café\n".encode("latin-1")),
        "space.toml: is not UTF-8 text (byte 5 is 0xe9); save it as UTF-8",
    ),
    "deep nesting": ("a = " + "[" * 100000, None, "invalid TOML: arrays or tables nested too deep"),
    "extends chain of 100": (
        spec_text(space="space.toml"),
        _extends_chain,
        "makes a chain of more than 32 files; shorten the chain",
    ),
    "space /dev/zero": (
        spec_text(space="/dev/zero"),
        None,
        "/dev/zero: is not a regular file",
    ),
    "objective builtins:exit": (
        spec_text(objective="builtins:exit"),
        None,
        "objective 'builtins:exit': calling exit() called sys.exit(None)",
    ),
    "objective exits on import": (
        spec_text(objective="task.py:W"),
        lambda d: write(d, "task.py", "import sys\nsys.exit(3)\n"),
        "task.py called sys.exit(3); remove the exit from module level",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_is_one_line_exit_2_and_stores_nothing(tmp_path: Path, case: str) -> None:
    text, prepare, message = HOSTILE[case]
    spec = tmp_path / "spec.toml"
    spec.write_bytes(text if isinstance(text, bytes) else text.encode())
    if prepare is not None:
        prepare(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuner",
            "run",
            str(spec),
            "--storage",
            f"sqlite:///{tmp_path}/s.db",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "s.db").exists()
    assert not (tmp_path / "studies").exists()
