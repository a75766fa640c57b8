"""The fixed text of the Python export: the file's template and its enum-to-code tables.

`tuner.export` fills the ``$names`` here with ``_literal()``s of validated config values and
with entries of these tables, chosen by an enum member or a bool: no text here comes from a
config or a storage. Code keeps here the indentation it has in the written file, which is
ruff-format clean within 100 columns. A fragment that may be empty starts with a newline and
is placed at the end of a template line, so leaving it out leaves no blank line behind.
"""

from __future__ import annotations

from string import Template

from tuner.config import CompileMode, MatmulPrecision, OptimizerName, Precision, ScheduleName

OPTIMIZER_CLASSES = {
    OptimizerName.SGD: "torch.optim.SGD",
    OptimizerName.ADAM: "torch.optim.Adam",
    OptimizerName.ADAMW: "torch.optim.AdamW",
    OptimizerName.RMSPROP: "torch.optim.RMSprop",
}
AUTOCAST_ARGS = {
    Precision.FP32: "enabled=False",
    Precision.BF16: "dtype=torch.bfloat16, enabled=True",
    Precision.FP16: "dtype=torch.float16, enabled=True",
}
COMPILE = {
    CompileMode.OFF: "model  # torch.compile was off in the tuned run",
    CompileMode.DEFAULT: 'torch.compile(model, mode="default")',
    CompileMode.REDUCE_OVERHEAD: 'torch.compile(model, mode="reduce-overhead")',
    CompileMode.MAX_AUTOTUNE: 'torch.compile(model, mode="max-autotune")',
    CompileMode.MAX_AUTOTUNE_NO_CUDAGRAPHS: (
        'torch.compile(model, mode="max-autotune-no-cudagraphs")'
    ),
}
MATMUL_PRECISION = {
    MatmulPrecision.HIGHEST: '"highest"',
    MatmulPrecision.HIGH: '"high"',
    MatmulPrecision.MEDIUM: '"medium"',
}

# A statement is a fixed line, or (the text before a call's parenthesis, its arguments), which
# tuner.export wraps as ruff format would. The formulas are tuner.knobs.build_scheduler's;
# $names are _literal()s of the config.
_Statement = str | tuple[str, tuple[str, ...]]
_LR_SCHEDULER = "torch.optim.lr_scheduler"
SCHEDULERS: dict[ScheduleName, tuple[_Statement, ...]] = {
    ScheduleName.CONSTANT: (
        (
            f"scheduler = {_LR_SCHEDULER}.ConstantLR",
            ("optimizer", "factor=1.0", "total_iters=total_steps"),
        ),
    ),
    ScheduleName.STEP: (
        (
            f"scheduler = {_LR_SCHEDULER}.StepLR",
            (
                "optimizer",
                "step_size=max(1, round($step_every * total_steps))",
                "gamma=$step_gamma",
            ),
        ),
    ),
    ScheduleName.COSINE: (
        (f"scheduler = {_LR_SCHEDULER}.CosineAnnealingLR", ("optimizer", "T_max=total_steps")),
    ),
    ScheduleName.ONE_CYCLE: (
        "# cycle_momentum=False: run the tuned momentum/betas as they are, not cycled.",
        (
            f"scheduler = {_LR_SCHEDULER}.OneCycleLR",
            (
                "optimizer",
                "max_lr=$lr",
                "total_steps=total_steps",
                "pct_start=$pct_start",
                "cycle_momentum=False",
            ),
        ),
    ),
    ScheduleName.WARMUP_COSINE: (
        "warmup_steps = max(1, round($warmup_fraction * total_steps))",
        (
            f"warmup = {_LR_SCHEDULER}.LinearLR",
            ("optimizer", "start_factor=$start_factor", "total_iters=warmup_steps"),
        ),
        (
            f"cosine = {_LR_SCHEDULER}.CosineAnnealingLR",
            ("optimizer", "T_max=max(1, total_steps - warmup_steps)"),
        ),
        (
            f"scheduler = {_LR_SCHEDULER}.SequentialLR",
            ("optimizer", "[warmup, cosine]", "milestones=[warmup_steps]"),
        ),
    ),
}
CLIP = Template("""\
        scaler.unscale_(optimizer)  # clip the true gradients, not fp16-scaled ones
        torch.nn.utils.clip_grad_norm_(eager_model.parameters(), max_norm=$max_norm)""")
NO_CLIP = """\
        # No gradient clipping was tuned; to clip, call scaler.unscale_(optimizer) first."""

# DataLoader workers: these arguments exist only with workers (torch rejects a prefetch_factor
# without). torch seeds each worker's torch, Python and NumPy generators itself.
WORKER_ARGS = Template("""
        persistent_workers=$persistent_workers,
        prefetch_factor=$prefetch_factor,""")
CHANNELS_LAST = {
    True: {
        "model_layout": (
            "    model = model.to(memory_format=torch.channels_last)  # NHWC, as tuned"
        ),
        "input_layout": """
            if inputs.dim() == 4:  # images in channels_last too, like the model
                inputs = inputs.contiguous(memory_format=torch.channels_last)""",
    },
    False: {
        "model_layout": (
            "    # channels_last was off in the tuned run: the model keeps its memory layout."
        ),
        "input_layout": "",
    },
}
# Same as tuner.knobs._recompute_in_backward: non-reentrant, and a no-op without autograd.
CHECKPOINTING = {
    True: {
        "torch_imports": "\nimport torch.utils.checkpoint",
        "blocks_param": ", checkpoint_blocks=None",
        "blocks_arg": ", checkpoint_blocks",
        "checkpointing": """\
    # Activation checkpointing was on in the tuned run: pass your model's repeated blocks, e.g.
    # make_training(model, total_steps, checkpoint_blocks=model.blocks). Each then keeps only
    # its inputs and recomputes its activations in the backward pass: less memory, more compute.
    if checkpoint_blocks is None:
        raise ValueError(
            "checkpoint_blocks: activation checkpointing was on in the tuned run; pass your "
            "model's repeated blocks (e.g. model.blocks), or () to train without it"
        )
    for block in checkpoint_blocks:
        _recompute_in_backward(block)""",
        "recompute": '''


def _recompute_in_backward(block):
    """Make `block` keep only its inputs and recompute its activations in the backward pass.

    Non-reentrant checkpointing, as in the tuned run; without autograd (evaluation) the block
    runs as it is.
    """
    forward = block.forward

    def checkpointed(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)

    block.forward = checkpointed''',
        "blocks_usage": (
            "\n    #   (and checkpoint_blocks=your model's repeated blocks, e.g. model.blocks)"
        ),
        "demo_blocks": ", checkpoint_blocks=[demo[0]]",
    },
    False: {
        "torch_imports": "",
        "blocks_param": "",
        "blocks_arg": "",
        "checkpointing": "    # Activation checkpointing was off in the tuned run.",
        "recompute": "",
        "blocks_usage": "",
        "demo_blocks": "",
    },
}

# The first two lines are fixed: Python reads an encoding declaration from either of them,
# so no provenance text may appear there.
TEMPLATE = Template('''\
# Training setup tuned by tuner, for your own model and data.
# Generated from validated numbers only; read it like any code you run.
$provenance
# One optimizer step: $accum micro-batches x $batch samples = $samples samples.$batch_scaling

import functools

import torch$torch_imports

BATCH_SIZE = $batch  # samples per micro-batch: make_loader uses it
ACCUMULATION_STEPS = $accum  # micro-batches per optimizer step


def make_loader(dataset, generator=None, collate_fn=None):
    """A training DataLoader over `dataset` with the tuned batch size and loader settings.

    It shuffles (pass a seeded torch.Generator for a repeatable order) and drops the last
    partial batch, so every micro-batch has one shape, as in the tuned run. `collate_fn`
    makes a batch of a list of samples (None: torch's default).
    """
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=BATCH_SIZE,
        shuffle=True,
        drop_last=True,
        generator=generator,
        collate_fn=collate_fn,
        num_workers=$num_workers,
        pin_memory=$pin_memory,$worker_args
    )


def make_training(model, total_steps$blocks_param):
    """Build the tuned optimizer, LR schedule, precision and compile setup for `model`.

    `model` must already be on its device. `total_steps` is the number of optimizer steps in
    your run (micro-batches / ACCUMULATION_STEPS); schedule lengths are fractions of it.
    Like the tuned run, it sets torch's process-wide float32 matmul precision and cuDNN
    autotuning, and the model's memory layout.
    Call model_to_train in the loop; keep eager_model (uncompiled) for evaluation and saving.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    device_type = next(model.parameters()).device.type
    # Process-wide flags, as in the tuned run: they apply to all of torch in this process.
    torch.set_float32_matmul_precision($matmul_precision)
    torch.backends.cudnn.benchmark = $cudnn_benchmark
$model_layout
$checkpointing
$optimizer
$scheduler
    # GradScaler only for fp16; autocast is a no-op for fp32: the loop needs no branches.
    scaler = torch.amp.GradScaler(device_type, enabled=$scaler_enabled)
    autocast = functools.partial(torch.autocast, device_type, $autocast_args)
    model_to_train = $model_to_train
    return model_to_train, model, optimizer, scheduler, scaler, autocast


def train_steps(model, loader, loss_fn, total_steps$blocks_param):
    """Train `model` for `total_steps` optimizer steps with the tuned setup.

    `loader` yields (inputs, targets) micro-batches of BATCH_SIZE (make_loader builds one) and
    is re-iterated as needed; `loss_fn(outputs, targets)` returns the mean loss.
    Returns the eager (uncompiled) model, switched to eval mode for evaluation and saving.
    """
    model_to_train, eager_model, optimizer, scheduler, scaler, autocast = make_training(
        model, total_steps$blocks_arg
    )
    device = next(eager_model.parameters()).device
    batches = _endless(loader)
    model_to_train.train()
    for _ in range(total_steps):
        for _ in range(ACCUMULATION_STEPS):
            inputs, targets = next(batches)
            inputs = inputs.to(device, non_blocking=$pin_memory)$input_layout
            targets = targets.to(device, non_blocking=$pin_memory)
            with autocast():
                loss = loss_fn(model_to_train(inputs), targets)
            # Mean over the micro-batches; scaled for fp16 (the scaler is a no-op otherwise).
            scaler.scale(loss / ACCUMULATION_STEPS).backward()
$clip
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()  # once per optimizer step; a step fp16's scaler skips still counts
        optimizer.zero_grad(set_to_none=True)
    return eager_model.eval()


def _endless(loader):
    """Batches from `loader`, epoch after epoch (re-shuffled if the loader shuffles)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("loader yielded no batches")$recompute


if __name__ == "__main__":
    # Run this file to see the tuned setup train; in your code, call train_steps instead:
    #   model = train_steps(model.to(device), make_loader(data), loss_fn, total_steps)$blocks_usage
    inputs = torch.randn(max(4096, BATCH_SIZE), 16)
    targets = inputs[:, :4].argmax(1)  # a learnable toy task; 2-D, so channels_last skips it
    demo = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    loader = make_loader(torch.utils.data.TensorDataset(inputs, targets))
    loss_fn = torch.nn.functional.cross_entropy
    before = loss_fn(demo(inputs), targets).item()
    demo = train_steps(demo, loader, loss_fn, total_steps=30$demo_blocks)
    with torch.no_grad():
        after = loss_fn(demo(inputs), targets).item()
    print(f"30 tuned optimizer steps on a toy task: loss {before:.3f} -> {after:.3f}")
''')
