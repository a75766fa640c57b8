"""tuner.knobs on real torch: each knob reaches the optimizer, schedule, AMP and compile objects."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import nn

from tuner.config import (
    WARMUP_START_FACTOR,
    CompileMode,
    OptimizerConfig,
    OptimizerName,
    Precision,
    ScheduleConfig,
    ScheduleName,
    TrialConfig,
)
from tuner.knobs import build_optimizer, build_scheduler, build_training

# name -> (config, the torch class it must build, the param_group values it must carry)
OPTIMIZERS: dict[
    OptimizerName, tuple[OptimizerConfig, type[torch.optim.Optimizer], dict[str, Any]]
] = {
    OptimizerName.SGD: (
        OptimizerConfig(OptimizerName.SGD, lr=0.05, weight_decay=0.01, momentum=0.9, nesterov=True),
        torch.optim.SGD,
        {"lr": 0.05, "weight_decay": 0.01, "momentum": 0.9, "nesterov": True},
    ),
    OptimizerName.ADAM: (
        OptimizerConfig(OptimizerName.ADAM, lr=1e-3, betas=(0.85, 0.99)),
        torch.optim.Adam,
        {"lr": 1e-3, "weight_decay": 0.0, "betas": (0.85, 0.99)},
    ),
    OptimizerName.ADAMW: (
        OptimizerConfig(OptimizerName.ADAMW, lr=3e-4, weight_decay=0.1, betas=(0.9, 0.95)),
        torch.optim.AdamW,
        {"lr": 3e-4, "weight_decay": 0.1, "betas": (0.9, 0.95)},
    ),
    OptimizerName.RMSPROP: (
        OptimizerConfig(
            OptimizerName.RMSPROP, lr=1e-2, weight_decay=1e-4, momentum=0.5, alpha=0.95
        ),
        torch.optim.RMSprop,
        {"lr": 1e-2, "weight_decay": 1e-4, "momentum": 0.5, "alpha": 0.95},
    ),
}
SGD_PLAIN = OptimizerConfig(OptimizerName.SGD, lr=0.1, momentum=0.0, nesterov=False)
LR = 0.1
STEPS = 100


def make_config(**overrides: Any) -> TrialConfig:
    fields: dict[str, Any] = {
        "optimizer": SGD_PLAIN,
        "schedule": ScheduleConfig(ScheduleName.CONSTANT),
        "batch_size": 8,
    }
    return TrialConfig(**(fields | overrides))


def lr_sequence(optimizer: torch.optim.Optimizer, scheduler: Any, steps: int) -> list[float]:
    """The lr each of `steps` optimizer steps runs with, stepping as a training loop does."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def sgd(lr: float = LR) -> torch.optim.Optimizer:
    return torch.optim.SGD(nn.Linear(3, 2).parameters(), lr=lr, momentum=0.9)


@pytest.mark.parametrize("name", list(OptimizerName))
def test_optimizer_carries_the_config_hyperparameters(name: OptimizerName) -> None:
    config, expected_type, expected = OPTIMIZERS[name]
    optimizer = build_optimizer(config, nn.Linear(3, 2).parameters())
    assert type(optimizer) is expected_type
    group = optimizer.param_groups[0]
    assert {key: group[key] for key in expected} == expected
    assert len(group["params"]) == 2


def test_every_optimizer_is_covered() -> None:
    assert set(OPTIMIZERS) == set(OptimizerName)


def test_constant_schedule_is_flat() -> None:
    optimizer = sgd()
    scheduler = build_scheduler(ScheduleConfig(ScheduleName.CONSTANT), optimizer, STEPS)
    assert lr_sequence(optimizer, scheduler, STEPS) == [LR] * STEPS


def test_step_schedule_decays_every_fraction_of_the_run() -> None:
    optimizer = sgd()
    config = ScheduleConfig(ScheduleName.STEP, step_every=0.25, step_gamma=0.5)
    scheduler = build_scheduler(config, optimizer, STEPS)
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    lrs = lr_sequence(optimizer, scheduler, STEPS)
    assert lrs == pytest.approx([LR * 0.5 ** (k // 25) for k in range(STEPS)])
    assert lrs[24] == pytest.approx(LR) and lrs[25] == pytest.approx(LR / 2)


def test_cosine_schedule_anneals_to_zero_over_the_run() -> None:
    optimizer = sgd()
    scheduler = build_scheduler(ScheduleConfig(ScheduleName.COSINE), optimizer, STEPS)
    lrs = lr_sequence(optimizer, scheduler, STEPS)
    expected = [LR / 2 * (1 + math.cos(math.pi * k / STEPS)) for k in range(STEPS)]
    assert lrs == pytest.approx(expected)
    assert lrs[-1] < 1e-3 * LR
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_one_cycle_peaks_at_pct_start_with_the_tuned_lr_and_keeps_momentum() -> None:
    optimizer = sgd()
    scheduler = build_scheduler(
        ScheduleConfig(ScheduleName.ONE_CYCLE, pct_start=0.3), optimizer, STEPS
    )
    lrs, momenta = [], []
    for _ in range(STEPS):
        lrs.append(optimizer.param_groups[0]["lr"])
        momenta.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        scheduler.step()
    peak = max(range(STEPS), key=lrs.__getitem__)
    assert peak == round(0.3 * STEPS) - 1
    assert lrs[peak] == pytest.approx(LR)
    assert lrs[0] == pytest.approx(LR / 25)  # torch's default div_factor
    assert lrs[-1] < 1e-5 * LR
    assert set(momenta) == {0.9}  # cycle_momentum=False: the tuned momentum runs


def test_one_cycle_keeps_adam_betas() -> None:
    config, _, _ = OPTIMIZERS[OptimizerName.ADAM]
    optimizer = build_optimizer(config, nn.Linear(3, 2).parameters())
    scheduler = build_scheduler(
        ScheduleConfig(ScheduleName.ONE_CYCLE, pct_start=0.5), optimizer, 10
    )
    lr_sequence(optimizer, scheduler, 10)
    assert optimizer.param_groups[0]["betas"] == (0.85, 0.99)


def test_warmup_cosine_rises_linearly_then_anneals() -> None:
    optimizer = sgd()
    config = ScheduleConfig(ScheduleName.WARMUP_COSINE, warmup_fraction=0.1)
    lrs = lr_sequence(optimizer, build_scheduler(config, optimizer, STEPS), STEPS)
    warmup = 10
    start = LR * WARMUP_START_FACTOR
    rising = [start + (LR - start) * k / warmup for k in range(warmup + 1)]
    assert lrs[: warmup + 1] == pytest.approx(rising)
    decay = [LR / 2 * (1 + math.cos(math.pi * j / (STEPS - warmup))) for j in range(STEPS - warmup)]
    assert lrs[warmup:] == pytest.approx(decay)
    assert lrs[-1] < 1e-3 * LR


@pytest.mark.parametrize("name", list(ScheduleName))
@pytest.mark.parametrize("total_steps", [1, 2, 3])
def test_tiny_horizons_build_and_run(name: ScheduleName, total_steps: int) -> None:
    config = schedule_for(name)
    optimizer = sgd()
    lrs = lr_sequence(optimizer, build_scheduler(config, optimizer, total_steps), total_steps)
    assert all(0 < lr <= LR for lr in lrs)


@pytest.mark.parametrize("total_steps", [0, -3])
def test_total_steps_below_one_is_rejected(total_steps: int) -> None:
    with pytest.raises(ValueError, match="total_steps"):
        build_training(make_config(), nn.Linear(3, 2), total_steps)


def schedule_for(name: ScheduleName) -> ScheduleConfig:
    fields = {
        ScheduleName.STEP: {"step_every": 0.3, "step_gamma": 0.5},
        ScheduleName.ONE_CYCLE: {"pct_start": 0.3},
        ScheduleName.WARMUP_COSINE: {"warmup_fraction": 0.1},
    }.get(name, {})
    return ScheduleConfig(name, **fields)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", list(ScheduleName))
def test_training_steps_never_warn_about_scheduler_order(name: ScheduleName) -> None:
    model = nn.Linear(3, 1)
    setup = build_training(make_config(schedule=schedule_for(name), accumulation_steps=2), model, 5)
    for _ in range(5):
        for _ in range(2):
            with setup.autocast():
                setup.backward(model(torch.randn(4, 3)).pow(2).mean())
        setup.step()
    assert setup.scheduler.last_epoch == 5


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [(Precision.FP32, None), (Precision.BF16, torch.bfloat16), (Precision.FP16, torch.float16)],
)
def test_precision_sets_autocast_and_scaler(
    precision: Precision, dtype: torch.dtype | None
) -> None:
    setup = build_training(make_config(precision=precision), nn.Linear(3, 2), 10, "cpu")
    assert setup.scaler.is_enabled() is (precision == Precision.FP16)
    assert setup.autocast() is not setup.autocast()  # a fresh context for every use
    with setup.autocast():
        assert torch.is_autocast_enabled("cpu") is (dtype is not None)
        if dtype is not None:
            assert torch.get_autocast_dtype("cpu") == dtype
            assert setup.model(torch.randn(2, 3)).dtype == dtype
    assert not torch.is_autocast_enabled("cpu")


def test_compile_off_trains_the_eager_module() -> None:
    model = nn.Linear(3, 2)
    setup = build_training(make_config(compile_mode=CompileMode.OFF), model, 10)
    assert setup.model is model and setup.eager_model is model


@pytest.mark.parametrize("mode", [mode for mode in CompileMode if mode != CompileMode.OFF])
def test_compile_wraps_with_the_mode(mode: CompileMode, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real_compile = torch.compile

    def recording_compile(model: nn.Module, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real_compile(model, **kwargs)

    monkeypatch.setattr(torch, "compile", recording_compile)
    model = nn.Linear(3, 2)
    setup = build_training(make_config(compile_mode=mode), model, 10)
    assert seen == [{"mode": mode.value}]
    assert setup.eager_model is model
    assert setup.model is not model and getattr(setup.model, "_orig_mod", None) is model


@pytest.mark.slow
def test_compiled_model_trains_the_eager_parameters() -> None:
    model = nn.Linear(3, 1)
    before = model.weight.detach().clone()
    setup = build_training(make_config(compile_mode=CompileMode.DEFAULT), model, 2)
    for _ in range(2):
        with setup.autocast():
            setup.backward(setup.model(torch.randn(4, 3)).pow(2).mean())
        setup.step()
    assert not torch.equal(model.weight, before)


def test_accumulated_micro_batches_equal_one_big_batch() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(32, 5), torch.randn(32, 3)
    small, big = nn.Linear(5, 3), nn.Linear(5, 3)
    big.load_state_dict(small.state_dict())
    optimizer = OptimizerConfig(OptimizerName.ADAMW, lr=0.01, weight_decay=0.1, betas=(0.9, 0.99))
    accumulated = build_training(make_config(optimizer=optimizer, accumulation_steps=4), small, 10)
    single = build_training(make_config(optimizer=optimizer), big, 10)

    for xs, ys in zip(x.chunk(4), y.chunk(4), strict=True):
        accumulated.backward(nn.functional.mse_loss(small(xs), ys))
    single.backward(nn.functional.mse_loss(big(x), y))
    for p_small, p_big in zip(small.parameters(), big.parameters(), strict=True):
        torch.testing.assert_close(p_small.grad, p_big.grad)

    accumulated.step()
    single.step()
    for p_small, p_big in zip(small.parameters(), big.parameters(), strict=True):
        torch.testing.assert_close(p_small, p_big)
        assert p_small.grad is None  # zero_grad(set_to_none=True)
    assert accumulated.scheduler.last_epoch == 1


@pytest.mark.parametrize("precision", [Precision.FP32, Precision.FP16])
def test_clipping_measures_the_unscaled_gradient(precision: Precision) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2, bias=False)
    x = 0.1 * torch.randn(16, 4)
    reference = copy.deepcopy(model)
    nn.functional.mse_loss(reference(x), torch.ones(16, 2)).backward()
    grad = reference.weight.grad
    assert grad is not None
    max_norm = 0.25 * grad.norm().item()

    config = make_config(grad_clip_norm=max_norm, precision=precision)
    setup = build_training(config, model, 10, "cpu")
    with setup.autocast():
        out = model(x)
    setup.backward(nn.functional.mse_loss(out.float(), torch.ones(16, 2)))
    setup.step()

    # SGD with lr 0.1 and no momentum: the update is -lr x the clipped true gradient. Clipping
    # the fp16-scaled gradient instead would shrink the update 65536-fold.
    update = model.weight - reference.weight
    expected = -LR * grad * (max_norm / grad.norm())
    rtol = 1e-5 if precision == Precision.FP32 else 1e-2
    torch.testing.assert_close(update, expected, rtol=rtol, atol=1e-3 * expected.abs().max().item())
    assert setup.scaler.get_scale() == (65536.0 if precision == Precision.FP16 else 1.0)


def test_setup_is_frozen() -> None:
    setup = build_training(make_config(), nn.Linear(3, 2), 10)
    with pytest.raises(AttributeError):
        setup.accumulation_steps = 2  # type: ignore[misc]
