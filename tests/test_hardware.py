"""Hardware: device selection, description and capability detection on this real machine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from tuner.config import CompileMode, Precision
from tuner.hardware import Capabilities, describe_device, detect_capabilities, select_device
from tuner.space import load_space, restrict

CPU = torch.device("cpu")


def test_auto_picks_cuda_when_available_else_cpu() -> None:
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_device().type == select_device("auto").type
    assert select_device("cpu") == CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available on this machine")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"'cuda': CUDA is not available .*use device cpu"):
        select_device("cuda")


@pytest.mark.parametrize(
    ("requested", "message"), [("mps", "cpu or cuda"), ("gpu0", "not a device")]
)
def test_other_devices_are_rejected(requested: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        select_device(requested)


def test_describe_cpu() -> None:
    info = describe_device(CPU)
    assert info.type == "cpu"
    assert info.name
    assert info.torch_version == torch.__version__
    assert info.cuda_capability is None
    assert info.torch_threads == torch.get_num_threads()
    assert json.loads(json.dumps(info.to_dict())) == info.to_dict()


def test_cpu_capabilities_on_this_machine() -> None:
    caps = detect_capabilities(CPU)
    assert set(caps.precisions) == set(Precision)  # fp16 is slow on a CPU, not impossible
    for mode in (CompileMode.REDUCE_OVERHEAD, CompileMode.MAX_AUTOTUNE):
        assert caps.unsupported_compile_modes[mode] == "CUDA graphs need a CUDA device"
    assert CompileMode.OFF in caps.compile_modes
    from torch._inductor import config as inductor_config

    if any(cxx and shutil.which(cxx) for cxx in inductor_config.cpp.cxx):
        assert CompileMode.DEFAULT in caps.compile_modes
        assert CompileMode.MAX_AUTOTUNE_NO_CUDAGRAPHS in caps.compile_modes
    else:
        assert "C++ compiler" in caps.unsupported_compile_modes[CompileMode.DEFAULT]
    assert json.dumps(caps.to_dict())


def test_capabilities_default_to_everything_supported() -> None:
    caps = Capabilities()
    assert caps.precisions == tuple(Precision)
    assert caps.compile_modes == tuple(CompileMode)


def test_default_space_restricted_to_this_cpu() -> None:
    caps = detect_capabilities(CPU)
    space, dropped = restrict(load_space("default"), caps)
    assert {(d.knob, d.value) for d in dropped} >= {
        ("compile_mode", "reduce-overhead"),
        ("compile_mode", "max-autotune"),
    }
    assert "reduce-overhead" not in space.compile_mode.to_raw()
    assert space.precision == load_space("default").precision


def test_space_and_hardware_modules_import_without_torch() -> None:
    code = "import sys, tuner.hardware, tuner.space; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
