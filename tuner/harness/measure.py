"""Honest measurement: synchronised timing windows and per-trial peak memory.

Throughput is the median of several windows' rates, so one slow window (the host stealing the
CPU for a moment, a page-fault burst) does not move it. The device is synchronised at window
edges only, never inside the loop, so timing costs the training nothing.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a window's end time covers the work it launched."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Window:
    samples: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.samples / self.seconds


class WindowTimer:
    """Times training windows; evaluation between windows is never counted."""

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._start: float | None = None
        self.windows: list[Window] = []

    def start(self) -> None:
        synchronize(self._device)
        self._start = time.perf_counter()

    def stop(self, samples: int) -> Window:
        synchronize(self._device)
        if self._start is None:
            raise RuntimeError("WindowTimer.stop() called before start()")
        window = Window(samples, time.perf_counter() - self._start)
        self._start = None
        self.windows.append(window)
        return window

    @property
    def seconds(self) -> float:
        return sum(window.seconds for window in self.windows)


def median_rate(windows: list[Window]) -> float:
    """Median samples/s over windows: the steady-state throughput."""
    return statistics.median(window.rate for window in windows)


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class PeakMemory:
    """Peak memory of one trial, on whichever device it runs.

    CUDA: the allocator's peak (``max_memory_allocated``), reset at the start. CPU: the
    process's peak resident set size, whose high-water mark Linux lets us reset by writing 5
    to /proc/self/clear_refs, so earlier trials in the same process do not leak into this
    one. Where neither is available the peak is unknown (None), never a guess.
    """

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_peak_rss"

    def reset(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self._device)
            return
        try:
            _CLEAR_REFS.write_text("5")
        except OSError:
            self.kind = "unknown"

    def peak_bytes(self) -> int | None:
        if self._device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self._device))
        if self.kind == "unknown":
            return None
        try:
            found = re.search(r"VmHWM:\s+(\d+)\s+kB", _STATUS.read_text())
        except OSError:
            return None
        return int(found.group(1)) * 1024 if found else None
