"""SIGINT, SIGTERM and SIGHUP: a stopped command stores what it was doing, then exits 128+N.

Ctrl-C, `timeout`, systemd, Kubernetes, SLURM and a closed terminal all ask a run to stop.
Three regimes:
- start-up: the signal raises `Interrupted` (nothing is stored yet, so stopping is safe);
- `deferred_interrupt()`: held back while native code that cannot take an exception runs
  (torch's extension modules abort the process on a KeyboardInterrupt), raised right after;
- `stop_requests()`: while a study runs, the signal only sets a flag that the runner checks
  between storage writes, so an interrupt is never swallowed inside a database driver and
  never splits a write. A second signal raises at once, for a run stuck in a dead storage.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; the process should exit with `exit_code` (130, 143, 129)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def raise_on_stop_signals() -> None:
    """Make SIGTERM and SIGHUP end the command the way Ctrl-C does, with an exception that
    the command turns into its exit code, rather than the default instant death."""
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _raise)


@contextlib.contextmanager
def _handled(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Record a stop signal inside the block; raise Interrupted when the block ends."""
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    with _handled(record):
        yield
    if received:
        raise Interrupted(received[0])


class StopFlag:
    """Set by a stop signal (or by the runner, when its storage is lost); read by workers."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None

    def set(self, signum: int | None = None) -> None:
        if self.signum is None:
            self.signum = signum
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "the runner"


@contextlib.contextmanager
def stop_requests() -> Iterator[StopFlag]:
    """Within the block a stop signal sets the yielded flag; a second one raises."""
    flag = StopFlag()

    def request(signum: int, frame: FrameType | None) -> None:
        if flag.is_set() and flag.signum is not None:
            raise Interrupted(signum)
        flag.set(signum)

    with _handled(request):
        yield flag
