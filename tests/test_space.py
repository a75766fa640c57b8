"""Search spaces: loading, validation messages, extends, sampling and hardware restriction."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import optuna
import pytest

from tuner.config import (
    CompileMode,
    OptimizerConfig,
    OptimizerName,
    Precision,
    ScheduleConfig,
    ScheduleName,
    TrialConfig,
)
from tuner.hardware import Capabilities
from tuner.space import (
    Choice,
    Clipping,
    Dropped,
    Fixed,
    FloatRange,
    IntRange,
    Knob,
    SearchSpace,
    SpaceError,
    builtin_spaces,
    load_space,
    restrict,
    sample_config,
)
from tuner.space.auto_lr import auto_paths
from tuner.space.load import read_space
from tuner.space.sample import config_params, implementations
from tuner.workload import WorkloadTraits

#: The built-in spaces that load alone: auto_lr's "auto" lrs need a range test first
#: (tests/test_lr_find.py checks it once resolved).
CONCRETE_SPACES = [name for name in builtin_spaces() if not auto_paths(read_space(name)[0])]

TOP_PARAMS = (
    "optimizer",
    "schedule",
    "batch_size",
    "accumulation_steps",
    "effective_batch_size",
    "clipping",
    "precision",
    "compile_mode",
    "num_workers",
    "pin_memory",
    "channels_last",
    "matmul_precision",
    "cudnn_benchmark",
    "activation_checkpointing",
)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def searched_knobs(space: SearchSpace) -> dict[str, Knob]:
    """Every Optuna parameter name the space can produce, with its knob (fixed ones included)."""
    knobs: dict[str, Knob] = {
        "optimizer": Choice(tuple(b.name for b in space.optimizers)),
        "schedule": Choice(tuple(b.name for b in space.schedules)),
        "batch_size": space.batch_size,
        "accumulation_steps": space.accumulation_steps,
        "effective_batch_size": space.effective_batch_size or Fixed(0),  # Fixed: not a param
        "clipping": space.clipping,
        "clipping.max_norm": space.max_norm,
        "precision": space.precision,
        "compile_mode": space.compile_mode,
        "num_workers": space.num_workers,
        "pin_memory": space.pin_memory,
        "workers.persistent_workers": space.persistent_workers,
        "workers.prefetch_factor": space.prefetch_factor,
        "channels_last": space.channels_last,
        "matmul_precision": space.matmul_precision,
        "cudnn_benchmark": space.cudnn_benchmark,
        "activation_checkpointing": space.activation_checkpointing,
    }
    for branch in (*space.optimizers, *space.schedules):
        for name, knob in branch.params:
            knobs[f"{branch.name}.{name}"] = knob
    for branch in space.optimizers:
        knobs[f"{branch.name}.optimizer_impl"] = implementations(space, OptimizerName(branch.name))
    return knobs


def contains(knob: Knob, value: Any) -> bool:
    if isinstance(knob, Fixed):
        return value == knob.value
    if isinstance(knob, Choice):
        return value in knob.values
    if isinstance(knob, IntRange):
        return knob.low <= value <= knob.high and (value - knob.low) % knob.step == 0
    return knob.low <= value <= knob.high


def expected_params(space: SearchSpace, config: TrialConfig) -> set[str]:
    """The parameter names a trial must have: searched top-level knobs and the chosen branches'."""
    knobs = searched_knobs(space)
    names = {name for name in TOP_PARAMS if not isinstance(knobs[name], Fixed)}
    if len(space.optimizers) == 1:
        names.discard("optimizer")
    if len(space.schedules) == 1:
        names.discard("schedule")
    for prefix in (config.optimizer.name, config.schedule.name):
        names |= {
            n for n, k in knobs.items() if n.startswith(f"{prefix}.") and not isinstance(k, Fixed)
        }
    if config.grad_clip_norm is not None and not isinstance(space.max_norm, Fixed):
        names.add("clipping.max_norm")
    if config.loader.num_workers > 0:
        names |= {
            n
            for n in ("workers.persistent_workers", "workers.prefetch_factor")
            if not isinstance(knobs[n], Fixed)
        }
    return names


def sample_many(
    space: SearchSpace, n: int, seed: int = 0
) -> list[tuple[dict[str, Any], TrialConfig]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        config = sample_config(trial, space)
        out.append((dict(trial.params), config))
    return out


# --- loading -------------------------------------------------------------------------------------


def test_builtin_spaces_are_every_shipped_file() -> None:
    shipped = Path(__file__).resolve().parents[1] / "search_spaces"
    assert set(builtin_spaces()) == {p.stem for p in shipped.glob("*.toml")}


@pytest.mark.parametrize("name", CONCRETE_SPACES)
def test_builtin_space_loads_and_round_trips(name: str) -> None:
    space = load_space(name)
    data = space.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert SearchSpace.from_dict(data) == space
    assert SearchSpace.from_dict(json.loads(json.dumps(data))) == space


def test_quick_narrows_default_and_keeps_every_optimizer_and_precision() -> None:
    default, quick = load_space("default"), load_space("quick")
    assert quick.batch_size == Choice((32, 64, 128, 256))
    assert quick.accumulation_steps == IntRange(1, 4)
    assert quick.compile_mode == Choice(("off", "default"))
    assert quick.optimizers == default.optimizers
    assert quick.precision == default.precision == Choice(("fp32", "bf16", "fp16"))


def test_empty_file_gives_documented_defaults(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, "empty.toml", ""))
    config = sample_config(optuna.trial.FixedTrial({}), space)
    assert config == TrialConfig(
        optimizer=OptimizerConfig(
            OptimizerName.ADAMW, lr=1e-3, weight_decay=0.01, betas=(0.9, 0.999)
        ),
        schedule=ScheduleConfig(ScheduleName.CONSTANT),
        batch_size=32,
    )


def test_shared_optimizer_value_applies_unless_overridden(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.toml",
        '[optimizer]\nchoices = ["sgd", "adam"]\nlr = 0.05\n[optimizer.adam]\nlr = 0.001\n',
    )
    params = {branch.name: dict(branch.params) for branch in load_space(path).optimizers}
    assert params["sgd"]["lr"] == Fixed(0.05)
    assert params["adam"]["lr"] == Fixed(0.001)
    assert "momentum" not in params["adam"]


def test_one_element_list_is_fixed_and_ints_widen_to_float(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", '[clipping]\nchoices = ["norm"]\nmax_norm = [1, 2]\n')
    space = load_space(path)
    assert space.clipping == Fixed("norm")
    assert space.max_norm == Choice((1.0, 2.0))


# --- validation ----------------------------------------------------------------------------------

BAD_SPACES = [
    ("[batch]\nbatch_size = [32, 48]\n", "batch.batch_size: 48 is not a power of two"),
    ("[batch]\nbatch_size = { low = 16, high = 64 }\n", "batch.batch_size:"),
    ("[batch]\naccumulation_steps = { low = 1, high = 128 }\n", "accumulation_steps.high: 128"),
    ("[batch]\naccumulation_steps = 2.5\n", "batch.accumulation_steps: 2.5 is not an integer"),
    ("[optimizer.sgd]\nbeta1 = 0.9\n", "optimizer.sgd.beta1: unknown key; allowed here: lr,"),
    ("[optimiser]\n", "optimiser: unknown key"),
    ('[optimizer.adam]\nlr = "fast"\n', 'optimizer.adam.lr: "fast" is not a number'),
    ("[optimizer.adam]\nlr = { low = 0.1, high = 0.001 }\n", "optimizer.adam.lr: low = 0.1 is"),
    ("[optimizer.adam]\nlr = -0.1\n", "optimizer.adam.lr: -0.1 is outside (0, 100]"),
    ("[optimizer]\nweight_decay = { low = 0, high = 0.1, log = true }\n", "weight_decay: low = 0"),
    ("[optimizer]\nweight_decay = 2\n", "optimizer.weight_decay: 2 is outside [0, 1]"),
    ("[optimizer.sgd]\nmomentum = 1.5\n", "optimizer.sgd.momentum: 1.5 is outside [0, 0.999]"),
    ("[optimizer.adamw]\nbeta2 = 1.0\n", "optimizer.adamw.beta2: 1.0 is outside"),
    ("[optimizer]\nchoices = []\n", "optimizer.choices: [] is an empty list"),
    ('[optimizer]\nchoices = ["sgd", "lion"]\n', 'optimizer.choices: "lion" is not an optimizer'),
    (
        '[optimizer]\nchoices = ["sgd"]\n[optimizer.sgd]\nnesterov = [true, false]\n'
        "momentum = { low = 0.0, high = 0.9 }\n",
        "optimizer.sgd.momentum: {",
    ),
    ('[optimizer]\nchoices = ["adam"]\n[optimizer.rmsprop]\nalpha = 2\n', "rmsprop.alpha: 2"),
    (
        '[schedule]\nchoices = ["warmup_cosine"]\n[schedule.warmup_cosine]\nwarmup_fraction = 0\n',
        "schedule.warmup_cosine.warmup_fraction: 0 is outside",
    ),
    ('[performance]\nprecision = ["fp32", "fp8"]\n', 'performance.precision: "fp8" is not a'),
    ('[performance]\ncompile_mode = "fast"\n', 'performance.compile_mode: "fast" is not'),
    ("[clipping]\nmax_norm = { low = 1, high = 8, step = 1 }\n", "clipping.max_norm.step: unknown"),
    ("[clipping]\nmax_norm = inf\n", "clipping.max_norm: Infinity is outside (0, 1000000]"),
    ('[optimizer.sgd]\nnesterov = "yes"\n', 'optimizer.sgd.nesterov: "yes" is not a boolean'),
    ("[batch]\nbatch_size = [32, 32]\n", "batch.batch_size: [32, 32] lists a value twice"),
    ("batch = 3\n", "batch: 3 is not a table"),
    ("extends = 3\n", "extends: 3 is not a name"),
]

HUGE = 10**400
# Absurd values fuzzing found: each is refused with its bound, never an OverflowError.
ABSURD_SPACES = [
    (
        f"[optimizer.adam]\nlr = {HUGE}\n",
        "optimizer.adam.lr: about 10^400 is outside (0, 100]; use a value in (0, 100]",
    ),
    (
        f"[optimizer.adam]\nlr = {{ low = 1e-4, high = {HUGE} }}\n",
        "optimizer.adam.lr.high: about 10^400 is outside (0, 100]; use a value in (0, 100]",
    ),
    (
        f"[optimizer.sgd]\nmomentum = [0.9, -{HUGE}]\n",
        "optimizer.sgd.momentum: about -10^400 is outside [0, 0.999]; use a value in [0, 0.999]",
    ),
    ("[optimizer.adam]\nlr = nan\n", "optimizer.adam.lr: NaN is outside (0, 100]; use a value"),
    ("[optimizer.adam]\nlr = 1000\n", "optimizer.adam.lr: 1000 is outside (0, 100]; use a value"),
    (
        "[clipping]\nmax_norm = 1e308\n",
        "clipping.max_norm: 1e+308 is outside (0, 1000000]; use a value in (0, 1000000]",
    ),
    (
        f"[batch]\nbatch_size = [32, {2**21}]\n",
        "batch.batch_size: 2097152 is outside [1, 1048576]; use a value in [1, 1048576]",
    ),
    (
        f"[batch]\naccumulation_steps = {2**63}\n",
        "batch.accumulation_steps: 9223372036854775808 is outside [1, 64]; use a value in [1, 64]",
    ),
    (
        f"[batch]\naccumulation_steps = {{ low = 1, high = 4, step = {HUGE} }}\n",
        "batch.accumulation_steps.step: about 10^400 is not an integer in [1, 3]; write e.g. 1",
    ),
    (
        "[optimizer.adam]\nlr = [" + ", ".join(f"{n}e-5" for n in range(1, 1002)) + "]\n",
        "optimizer.adam.lr: lists 1001 values; list at most 1000",
    ),
    ('[optimizer]\n"a\\nb" = 1\n', 'optimizer."a\\nb": unknown key; allowed here: choices,'),
    ('extends = "a\\u0000b"\n', 'extends: "a\\u0000b" is not a name; write extends = "default"'),
    ("extends = 1979-05-27\n", 'extends: "1979-05-27" is not a name; write extends = "default"'),
    (
        'performance = { precision = "\\u001b[2J" }\n',
        'performance.precision: "\\u001b[2J" is not a precision; use one of fp32, bf16, fp16',
    ),
]


@pytest.mark.parametrize(("text", "expected"), ABSURD_SPACES)
def test_absurd_values_fail_with_their_bounds(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(info.value).startswith(f"{path}: {expected}")
    assert str(info.value).isprintable()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("# caf\xe9\n".encode("latin-1"), "is not UTF-8 text (byte 5 is 0xe9); save it as UTF-8"),
        (b"\x00\x01binary", "invalid TOML: "),
        (b"a = " + b"[" * 100000, "invalid TOML: arrays or tables nested too deep to read"),
        (b"[batch]\n" + b"#" * (1 << 20), "is larger than 1048576 bytes"),
    ],
)
def test_unreadable_space_files_fail_in_one_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_a_space_path_must_be_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match=r"^/dev/zero: is not a regular file \(a device, FIFO"):
        load_space("/dev/zero")
    with pytest.raises(SpaceError, match=r": is a folder; give the path of a TOML file$"):
        load_space(tmp_path)
    child = write(tmp_path, "child.toml", 'extends = "/dev/zero"\n')
    with pytest.raises(SpaceError, match=r"^/dev/zero: is not a regular file"):
        load_space(child)


@pytest.mark.parametrize(("text", "expected"), BAD_SPACES)
def test_bad_space_names_file_field_and_value(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message
    assert "; " in message  # every message ends with what to do


def test_nesterov_with_default_momentum_is_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path, "s.toml", '[optimizer]\nchoices = ["sgd"]\n[optimizer.sgd]\nnesterov = true\n'
    )
    with pytest.raises(SpaceError, match=r"optimizer\.sgd\.momentum: 0\.0 allows momentum = 0"):
        load_space(path)


def test_toml_syntax_error_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", "[batch]\nbatch_size = 32\naccumulation_steps = 1 2\n")
    with pytest.raises(SpaceError, match=r"s\.toml: invalid TOML: .*line 3"):
        load_space(path)


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match=r"no such file; .*built-in name .*default, .*quick"):
        load_space(tmp_path / "absent.toml")
    with pytest.raises(SpaceError, match=r"^nonsense: no such file"):
        load_space("nonsense")


def test_from_dict_revalidates() -> None:
    data = load_space("default").to_dict()
    data["batch"]["batch_size"] = [24]
    with pytest.raises(SpaceError, match=r"^stored space: batch\.batch_size: 24 is not a power"):
        SearchSpace.from_dict(data)


# --- extends -------------------------------------------------------------------------------------


def test_extends_fixes_optimizer_and_narrows_lr(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "child.toml",
        'extends = "default"\n[optimizer]\nchoices = ["adamw"]\n'
        "[optimizer.adamw]\nlr = { low = 1e-3, high = 3e-3 }\n",
    )
    space, default = load_space(path), load_space("default")
    (adamw,) = space.optimizers
    params = dict(adamw.params)
    assert params["lr"] == FloatRange(1e-3, 3e-3)  # replaced whole: log is not inherited
    assert params["beta2"] == dict(default.optimizers[2].params)["beta2"]
    assert params["weight_decay"] == FloatRange(1e-6, 0.1, log=True)  # shared, from the base
    assert space.batch_size == default.batch_size
    assert space.schedules == default.schedules
    for params_seen, config in sample_many(space, 20):
        assert "optimizer" not in params_seen
        assert config.optimizer.name is OptimizerName.ADAMW
        assert 1e-3 <= config.optimizer.lr <= 3e-3


def test_extends_relative_path_and_errors_name_the_file_that_wrote_them(tmp_path: Path) -> None:
    write(tmp_path, "base.toml", "[batch]\nbatch_size = [16, 24]\n")
    (tmp_path / "sub").mkdir()
    child = write(tmp_path / "sub", "child.toml", 'extends = "../base.toml"\n[clipping]\n')
    with pytest.raises(SpaceError, match=r"base\.toml: batch\.batch_size: 24 is not a power"):
        load_space(child)
    fixed = write(
        tmp_path / "sub", "fixed.toml", 'extends = "../base.toml"\n[batch]\nbatch_size = 64\n'
    )
    assert load_space(fixed).batch_size == Fixed(64)
    bad = write(tmp_path / "sub", "bad.toml", 'extends = "../base.toml"\n[batch]\nbatch_size = 3\n')
    with pytest.raises(SpaceError, match=r"sub/bad\.toml: batch\.batch_size: 3"):
        load_space(bad)


def test_extends_cycle_is_detected(tmp_path: Path) -> None:
    a = write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    write(tmp_path, "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(
        SpaceError, match=r"b\.toml: extends: \"a\.toml\" makes a cycle \(.*a\.toml"
    ):
        load_space(a)
    self_ref = write(tmp_path, "self.toml", 'extends = "self.toml"\n')
    with pytest.raises(SpaceError, match="makes a cycle"):
        load_space(self_ref)


def test_extends_missing_base_names_the_extending_file(tmp_path: Path) -> None:
    path = write(tmp_path, "child.toml", 'extends = "nothere.toml"\n')
    with pytest.raises(SpaceError, match=r"child\.toml: extends: .*nothere\.toml: no such file"):
        load_space(path)


def test_extends_chain_is_capped_at_32_files(tmp_path: Path) -> None:
    for n in range(40):
        write(tmp_path, f"s{n}.toml", f'extends = "s{n + 1}.toml"\n' if n < 39 else "")
    with pytest.raises(SpaceError) as info:
        load_space(tmp_path / "s0.toml")
    assert str(info.value) == (
        f'{tmp_path / "s31.toml"}: extends: "s32.toml" makes a chain of more than 32 files; '
        "shorten the chain"
    )
    assert load_space(tmp_path / "s8.toml") == load_space(tmp_path / "s39.toml")  # 32 files


def test_extends_through_a_symlink_loop_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.toml").symlink_to(tmp_path / "b.toml")
    (tmp_path / "b.toml").symlink_to(tmp_path / "a.toml")
    child = write(tmp_path, "child.toml", 'extends = "a.toml"\n')
    with pytest.raises(SpaceError, match=r"a\.toml: cannot be read \(Too many levels of symbolic"):
        load_space(child)


# --- sampling ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONCRETE_SPACES)
def test_sampled_configs_are_valid_conditional_and_cover_every_choice(name: str) -> None:
    space = load_space(name)
    knobs = searched_knobs(space)
    seen: dict[str, set[Any]] = defaultdict(set)
    for params, config in sample_many(space, 200):
        assert isinstance(config, TrialConfig)  # construction validated every field
        assert set(params) == expected_params(space, config)
        for param, value in params.items():
            assert type(value) in (str, int, float, bool)
            assert contains(knobs[param], value), (param, value)
            seen[param].add(value)
        assert config.optimizer.name == params["optimizer"]
        # The micro-batch, clamped to the effective batch where that is searched.
        assert config.batch_size == min(params["batch_size"], config.effective_batch_size)
    for param, knob in knobs.items():
        if isinstance(knob, Choice):
            assert seen[param] == set(knob.values), param


def test_same_seed_gives_same_configs() -> None:
    space = load_space("default")
    first = [config for _, config in sample_many(space, 30, seed=7)]
    second = [config for _, config in sample_many(space, 30, seed=7)]
    other = [config for _, config in sample_many(space, 30, seed=8)]
    assert first == second
    assert first != other


def test_fixed_knobs_are_in_the_config_but_not_suggested(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.toml",
        'extends = "default"\n[optimizer]\nchoices = "sgd"\n[optimizer.sgd]\nlr = 0.05\n'
        'nesterov = false\n[performance]\nprecision = "bf16"\n',
    )
    space = load_space(path)
    for params, config in sample_many(space, 20):
        assert not {"optimizer", "sgd.lr", "sgd.nesterov", "precision"} & set(params)
        assert "sgd.momentum" in params
        assert (config.optimizer.name, config.optimizer.lr) == (OptimizerName.SGD, 0.05)
        assert config.optimizer.nesterov is False
        assert config.precision is Precision.BF16


def test_fixed_trial_builds_the_named_config() -> None:
    params = {
        "optimizer": "rmsprop",
        "rmsprop.lr": 3e-3,
        "rmsprop.weight_decay": 1e-4,
        "rmsprop.momentum": 0.5,
        "rmsprop.alpha": 0.95,
        "schedule": "step",
        "step.step_every": 0.25,
        "step.step_gamma": 0.5,
        "batch_size": 64,
        "accumulation_steps": 2,
        "clipping": "norm",
        "clipping.max_norm": 1.5,
        "precision": "bf16",
        "compile_mode": "default",
    }
    config = sample_config(optuna.trial.FixedTrial(params), load_space("default"))
    assert config == TrialConfig(
        optimizer=OptimizerConfig(
            OptimizerName.RMSPROP, lr=3e-3, weight_decay=1e-4, momentum=0.5, alpha=0.95
        ),
        schedule=ScheduleConfig(ScheduleName.STEP, step_every=0.25, step_gamma=0.5),
        batch_size=64,
        accumulation_steps=2,
        grad_clip_norm=1.5,
        precision=Precision.BF16,
        compile_mode=CompileMode.DEFAULT,
    )


def test_clipping_off_suggests_no_max_norm() -> None:
    params = {"optimizer": "adam", "adam.lr": 1e-3, "adam.weight_decay": 1e-4, "adam.beta1": 0.9}
    params |= {"adam.beta2": 0.99, "schedule": "cosine", "batch_size": 32}
    params |= {"accumulation_steps": 1, "clipping": Clipping.OFF.value}
    params |= {"precision": "fp32", "compile_mode": "off"}
    config = sample_config(optuna.trial.FixedTrial(params), load_space("default"))
    assert config.grad_clip_norm is None
    assert config.optimizer.betas == (0.9, 0.99)


# --- hardware restriction ------------------------------------------------------------------------


def test_restrict_drops_unsupported_choices_with_reasons() -> None:
    caps = Capabilities(
        unsupported_precisions={Precision.FP16: "no fp16 here"},
        unsupported_compile_modes={CompileMode.MAX_AUTOTUNE: "no autotune"},
    )
    space, dropped = restrict(load_space("default"), caps)
    assert space.precision == Choice(("fp32", "bf16"))
    assert "max-autotune" not in space.compile_mode.to_raw()
    assert dropped == (
        Dropped("precision", "fp16", "no fp16 here"),
        Dropped("compile_mode", "max-autotune", "no autotune"),
    )
    assert json.dumps([d.to_dict() for d in dropped])
    assert SearchSpace.from_dict(space.to_dict()) == space


def test_restrict_to_one_value_fixes_the_knob_and_keeps_supported_spaces() -> None:
    quick = load_space("quick")
    caps = Capabilities(unsupported_compile_modes={CompileMode.DEFAULT: "no compiler"})
    space, _ = restrict(quick, caps)
    assert space.compile_mode == Fixed("off")
    assert restrict(quick, Capabilities()) == (quick, ())


def test_restrict_rejects_a_fixed_unsupported_value(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, "s.toml", '[performance]\nprecision = "fp16"\n'))
    caps = Capabilities(unsupported_precisions={Precision.FP16: "fp16 autocast failed"})
    with pytest.raises(
        SpaceError,
        match=r"performance\.precision: precision=fp16 cannot run here: fp16 autocast "
        r"failed; set performance\.precision to one of fp32, bf16",
    ):
        restrict(space, caps)


def test_restrict_rejects_a_knob_with_no_supported_choice(tmp_path: Path) -> None:
    text = '[performance]\ncompile_mode = ["reduce-overhead", "max-autotune"]\n'
    space = load_space(write(tmp_path, "s.toml", text))
    reason = "CUDA graphs need a CUDA device"
    caps = Capabilities(
        unsupported_compile_modes={
            CompileMode.REDUCE_OVERHEAD: reason,
            CompileMode.MAX_AUTOTUNE: reason,
        }
    )
    with pytest.raises(
        SpaceError, match=r"none of compile_mode=reduce-overhead, max-autotune can run here"
    ):
        restrict(space, caps)


# --- the input-pipeline and memory-layout knobs ----------------------------------------------

PIPELINE = """
extends = "quick"
[optimizer]
choices = ["sgd", "rmsprop", "adamw"]
[data]
num_workers = [0, 1, 2]
pin_memory = [false, true]
persistent_workers = [false, true]
prefetch_factor = [2, 4]
[performance]
channels_last = [false, true]
optimizer_impl = ["default", "fused"]
matmul_precision = ["highest", "high", "medium"]
cudnn_benchmark = [false, true]
activation_checkpointing = [false, true]
"""


def test_loader_knobs_are_conditional_on_workers_and_fused_on_the_optimizer(
    tmp_path: Path,
) -> None:
    space = load_space(write(tmp_path, "s.toml", PIPELINE))
    seen: dict[str, set[Any]] = defaultdict(set)
    for params, config in sample_many(space, 300):
        workers = config.loader.num_workers
        assert ("workers.prefetch_factor" in params) == (workers > 0)
        assert (config.loader.prefetch_factor is None) == (workers == 0)
        name = config.optimizer.name
        assert (f"{name}.optimizer_impl" in params) == (name != OptimizerName.RMSPROP)
        assert config_params(config, space) == params
        for param, value in params.items():
            seen[param].add(value)
    assert seen["rmsprop.optimizer_impl"] == set()  # rmsprop has no fused kernel: fixed
    assert seen["sgd.optimizer_impl"] == {"default", "fused"}
    assert seen["workers.persistent_workers"] == {False, True}
    assert seen["matmul_precision"] == {"highest", "high", "medium"}


def test_a_space_whose_only_implementation_is_fused_needs_fused_optimizers(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "s.toml",
        '[optimizer]\nchoices = ["adam", "rmsprop"]\n[performance]\noptimizer_impl = "fused"\n',
    )
    with pytest.raises(SpaceError, match="rmsprop has no fused implementation; add"):
        load_space(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[data]\nnum_workers = 65\n", "data.num_workers: 65 is outside [0, 64]"),
        ("[data]\npin_memory = 1\n", "data.pin_memory: 1 is not a boolean"),
        ("[data]\nprefetch_factor = 0\n", "data.prefetch_factor: 0 is outside [1, 64]"),
        ('[performance]\nmatmul_precision = "tf32"\n', "is not a matmul precision; use"),
        ("[data]\nworkers = 2\n", "data.workers: unknown key; allowed here: num_workers"),
    ],
)
def test_bad_pipeline_knobs_name_the_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(SpaceError, match=re.escape(expected)):
        load_space(write(tmp_path, "s.toml", text))


def test_the_workload_drops_what_it_cannot_use(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, "s.toml", PIPELINE))
    tensors = WorkloadTraits(datasets=False, input_rank=2, checkpointable=False)
    restricted, dropped = restrict(space, Capabilities(), tensors)
    assert restricted.num_workers == Fixed(0)
    assert restricted.pin_memory == Fixed(False)
    assert restricted.channels_last == Fixed(False)
    assert restricted.activation_checkpointing == Fixed(False)
    reasons = {(d.knob, d.value): d.reason for d in dropped}
    assert reasons[("num_workers", "2")].startswith("the workload's data are in-memory tensors")
    assert "this workload's are 2-D" in reasons[("channels_last", "true")]
    assert reasons[("activation_checkpointing", "true")] == (
        "the workload declares no checkpoint_blocks"
    )
    images = WorkloadTraits(datasets=True, input_rank=4, checkpointable=True)
    assert restrict(space, Capabilities(), images) == (space, ())


def test_the_device_drops_cuda_only_knobs_and_a_fixed_one_is_an_error(tmp_path: Path) -> None:
    caps = Capabilities(
        unsupported_knobs={
            "pin_memory": {True: "no CUDA"},
            "matmul_precision": {"high": "no TF32"},
        }
    )
    space, dropped = restrict(load_space(write(tmp_path, "s.toml", PIPELINE)), caps)
    assert space.pin_memory == Fixed(False)
    assert space.matmul_precision == Choice(("highest", "medium"))
    assert [(d.knob, d.value) for d in dropped] == [
        ("pin_memory", "true"),
        ("matmul_precision", "high"),
    ]
    fixed = load_space(write(tmp_path, "f.toml", "[data]\npin_memory = true\n"))
    with pytest.raises(
        SpaceError,
        match=r"^data\.pin_memory: pin_memory=true cannot run here: no CUDA; set data\.pin_memory "
        "to one of false$",
    ):
        restrict(fixed, caps)
