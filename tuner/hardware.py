"""The device a study runs on: choosing it, describing it, and what it can run.

Hardware awareness keeps a study from spending trials on configurations that cannot run here
(fp16 where autocast fails, CUDA graphs without CUDA, torch.compile without a compiler). It
drops only what cannot run: something that merely runs slowly (fp16 on a CPU) stays in the
space, because finding that out is the tuner's job.

Torch is imported inside the functions, so the CLI can import this module for ``--help``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import platform
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.config import CompileMode, MatmulPrecision, Precision
from tuner.errors import UserError

if TYPE_CHECKING:
    import torch

# These modes capture CUDA graphs ("max-autotune" turns them on as well as autotuning).
_CUDA_GRAPH_MODES = (CompileMode.REDUCE_OVERHEAD, CompileMode.MAX_AUTOTUNE)


@dataclass(frozen=True)
class DeviceInfo:
    """What a result was measured on, stored with every trial so results stay comparable."""

    type: str  # "cpu" or "cuda"
    name: str  # CPU model or GPU name
    torch_version: str
    cuda_capability: str | None  # e.g. "9.0"; None on CPU
    torch_threads: int  # intra-op threads torch uses
    cpu_count: int | None  # logical CPUs; None when the OS cannot tell

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with the field names above."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Capabilities:
    """What this device can run. A value missing from both maps is supported.

    The maps hold each unsupported precision or compile mode with a one-line reason, which the
    study records next to what was dropped.
    """

    unsupported_precisions: Mapping[Precision, str] = field(default_factory=dict)
    unsupported_compile_modes: Mapping[CompileMode, str] = field(default_factory=dict)
    #: The other device-dependent knobs, by their space name: {value: reason}.
    unsupported_knobs: Mapping[str, Mapping[str | bool, str]] = field(default_factory=dict)

    @property
    def precisions(self) -> tuple[Precision, ...]:
        """The precisions that can run here."""
        return tuple(p for p in Precision if p not in self.unsupported_precisions)

    @property
    def compile_modes(self) -> tuple[CompileMode, ...]:
        """The compile modes that can run here (``off`` always can)."""
        return tuple(m for m in CompileMode if m not in self.unsupported_compile_modes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: supported values and the reason for each unsupported one."""
        return {
            "precisions": [p.value for p in self.precisions],
            "compile_modes": [m.value for m in self.compile_modes],
            "unsupported_precisions": {p.value: r for p, r in self.unsupported_precisions.items()},
            "unsupported_compile_modes": {
                m.value: r for m, r in self.unsupported_compile_modes.items()
            },
            "unsupported_knobs": {
                knob: {str(value): r for value, r in values.items()}
                for knob, values in self.unsupported_knobs.items()
            },
        }


def select_device(requested: str = "auto") -> torch.device:
    """The torch device for ``requested``: "auto" (CUDA if available, else CPU), "cpu",
    "cuda" or "cuda:N".

    Raises:
        UserError: the device is not a CPU or CUDA device, or CUDA is not available.
    """
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UserError(
            f"device {requested!r} is not a device name; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"device {requested!r}: tuner runs on cpu or cuda; use auto, cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"device {requested!r}: CUDA is not available to torch {torch.__version__} here; "
            "use device cpu or auto, or install a CUDA build of torch"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(
            f"device {requested!r}: only {torch.cuda.device_count()} CUDA device(s) are visible; "
            "use a lower index"
        )
    return device


def describe_device(device: torch.device) -> DeviceInfo:
    """Describe ``device`` for the record of every trial measured on it."""
    import torch

    capability = None
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        capability = "{}.{}".format(*torch.cuda.get_device_capability(device))
    else:
        name = _cpu_name()
    return DeviceInfo(
        type=device.type,
        name=name,
        torch_version=torch.__version__,
        cuda_capability=capability,
        torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
    )


def cpuinfo_field(key: str) -> str | None:
    """The first non-empty value of `key` in /proc/cpuinfo; None where it has none (or there
    is no /proc/cpuinfo: not Linux)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() == key and value.strip():
            return value.strip()
    return None


def _cpu_name() -> str:
    """The CPU model: /proc/cpuinfo on Linux (platform.processor() is often empty there)."""
    return (
        cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown CPU"
    )


def detect_capabilities(device: torch.device) -> Capabilities:
    """Find which precisions and compile modes can run on ``device``, by probing where it is cheap.

    On CPU, bf16 and fp16 are probed with a tiny autocast step (fp16 with a GradScaler, as the
    harness runs it). torch.compile is not run (that takes seconds); instead its prerequisites
    are checked: a Python dynamo supports and the compiler inductor calls. A compile failure
    that slips through is still caught per trial by the runner.
    """
    precisions: dict[Precision, str] = {}
    for precision, problem in ((Precision.BF16, _bf16_problem), (Precision.FP16, _fp16_problem)):
        reason = problem(device)
        if reason:
            precisions[precision] = reason
    compile_reason = _compile_problem(device)
    compile_modes: dict[CompileMode, str] = {}
    for mode in CompileMode:
        if device.type != "cuda" and mode in _CUDA_GRAPH_MODES:
            compile_modes[mode] = "CUDA graphs need a CUDA device"
        elif mode is not CompileMode.OFF and compile_reason:
            compile_modes[mode] = compile_reason
    return Capabilities(precisions, compile_modes, _knob_problems(device, precisions))


def _knob_problems(
    device: torch.device, precisions: Mapping[Precision, str]
) -> dict[str, dict[str | bool, str]]:
    """The CUDA-only knobs on a CPU, and the reduced matmul precisions without the hardware.

    On a CPU, ``high`` computes exactly as ``highest`` (no TF32 there), while ``medium`` lets
    oneDNN multiply in bf16 where the CPU has bf16 (measured: 3.6x faster at 512x512 on this
    project's AMX Xeon, error 0.25 against 5e-5).
    """
    import torch

    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        if major >= 8:
            return {}
        why = f"TF32 and bf16 matmul need compute capability 8.0+ (this GPU has {major}.x)"
        return {
            "matmul_precision": {MatmulPrecision.HIGH.value: why, MatmulPrecision.MEDIUM.value: why}
        }
    no_cuda = "there is no CUDA device"
    matmul: dict[str | bool, str] = {
        MatmulPrecision.HIGH.value: "TF32 exists only on NVIDIA GPUs; on a CPU high is highest"
    }
    if Precision.BF16 in precisions:
        matmul[MatmulPrecision.MEDIUM.value] = f"no bf16 here ({precisions[Precision.BF16]})"
    return {
        "pin_memory": {True: f"pinned memory speeds copies to a GPU and {no_cuda}"},
        "cudnn_benchmark": {True: f"cuDNN autotuning needs cuDNN and {no_cuda}"},
        "matmul_precision": matmul,
    }


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}"


def _bf16_problem(device: torch.device) -> str | None:
    import torch

    if device.type == "cuda":
        with torch.cuda.device(device):
            supported = torch.cuda.is_bf16_supported()
        return None if supported else "this GPU does not support bfloat16"
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = torch.ones(4, 4) @ torch.ones(4, 4)
    except Exception as exc:  # any failure means bf16 autocast cannot run here
        return f"bf16 autocast failed on this CPU ({_one_line(exc)})"
    return None if out.dtype == torch.bfloat16 else "bf16 autocast did not produce bfloat16 here"


def _fp16_problem(device: torch.device) -> str | None:
    import torch

    if device.type == "cuda":
        return None
    try:
        model = torch.nn.Linear(4, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu")
        with torch.autocast("cpu", dtype=torch.float16):
            loss = model(torch.ones(2, 4)).float().sum()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    except Exception as exc:  # any failure means fp16 training cannot run here
        return f"fp16 autocast with GradScaler failed on this CPU ({_one_line(exc)})"
    return None


def _compile_problem(device: torch.device) -> str | None:
    """Why torch.compile cannot work here, or None if its prerequisites are present."""
    try:
        from torch._dynamo.eval_frame import check_if_dynamo_supported

        check_if_dynamo_supported()
    except (ImportError, RuntimeError) as exc:
        return f"torch.compile is unavailable here ({_one_line(exc)})"
    if device.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            return "torch.compile on CUDA needs triton, which is not installed"
        if not any(shutil.which(cc) for cc in (os.environ.get("CC", "cc"), "gcc", "clang")):
            return "triton needs a C compiler (cc, gcc or clang) on PATH"
        return None
    from torch._inductor import config as inductor_config

    compilers = [cxx for cxx in inductor_config.cpp.cxx if cxx]
    if not any(shutil.which(cxx) for cxx in compilers):
        return (
            f"torch.compile on CPU needs a C++ compiler and {' or '.join(compilers)} is not on "
            "PATH; install g++ or set CXX"
        )
    return None
