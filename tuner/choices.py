"""The named values of each categorical knob: the vocabulary configs, spaces, knobs and
exports share. `tuner.config` re-exports them, so they read as part of a config."""

from __future__ import annotations

from enum import StrEnum


class OptimizerName(StrEnum):
    SGD = "sgd"
    ADAM = "adam"
    ADAMW = "adamw"
    RMSPROP = "rmsprop"


class ScheduleName(StrEnum):
    CONSTANT = "constant"
    STEP = "step"
    COSINE = "cosine"
    ONE_CYCLE = "one_cycle"
    WARMUP_COSINE = "warmup_cosine"


class Precision(StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class CompileMode(StrEnum):
    OFF = "off"
    DEFAULT = "default"
    REDUCE_OVERHEAD = "reduce-overhead"
    MAX_AUTOTUNE = "max-autotune"
    MAX_AUTOTUNE_NO_CUDAGRAPHS = "max-autotune-no-cudagraphs"


class OptimizerImpl(StrEnum):
    """How torch runs the optimizer's update: its default choice, one multi-tensor kernel per
    step (``foreach``), or a fused kernel (``fused``; not every optimizer has one)."""

    DEFAULT = "default"
    FOREACH = "foreach"
    FUSED = "fused"


class MatmulPrecision(StrEnum):
    """``torch.set_float32_matmul_precision``: ``high`` allows TF32 on Ampere+ GPUs,
    ``medium`` bf16 (on GPUs and on CPUs with bf16 matmul units)."""

    HIGHEST = "highest"
    HIGH = "high"
    MEDIUM = "medium"


#: Optimizers with a fused implementation in torch (on CPU and CUDA).
FUSED_OPTIMIZERS = frozenset({OptimizerName.SGD, OptimizerName.ADAM, OptimizerName.ADAMW})
