"""Ctrl-C held back while native code that cannot take it runs.

A KeyboardInterrupt raised while torch's extension modules initialise is thrown through C++
(pybind11) and aborts the process (SIGABRT, exit -6) instead of unwinding. So `tuner run`
imports torch with SIGINT recorded rather than raised, and raises it right after.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Record a SIGINT inside the block; raise KeyboardInterrupt when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, record)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
