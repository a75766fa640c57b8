"""Turning what goes wrong in a trial into a stored result instead of a crash.

The runner owns trial states; the harness only says *why* a trial produced no result, as a
FailureKind and one line of text, so a reader of the study sees the cause at a glance.
"""

from __future__ import annotations

from tuner.attrs import FailureKind

_REASON_LIMIT = 300
_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")
_UNSUPPORTED_MARKERS = ("not implemented for", "not supported", "unsupported")
_COMPILE_MODULES = ("torch._dynamo", "torch._inductor")


class TrialFailure(Exception):
    """A trial ended without a result; `kind` decides its state, `reason` is stored."""

    def __init__(self, kind: FailureKind, reason: str) -> None:
        super().__init__(f"{kind.value}: {reason}")
        self.kind = kind
        self.reason = one_line(reason)


def one_line(text: str) -> str:
    """Collapse whitespace and cut long messages: a reason is read in a table cell."""
    line = " ".join(text.split())
    return line if len(line) <= _REASON_LIMIT else line[: _REASON_LIMIT - 3] + "..."


def classify(exc: BaseException, *, compiling: bool) -> TrialFailure:
    """Map an exception raised while training to a failure kind.

    Args:
        exc: What the training code raised.
        compiling: Whether the exception came from a step where torch.compile could have been
            compiling (errors there from dynamo/inductor are compile errors).
    """
    if isinstance(exc, TrialFailure):
        return exc
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    described = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    lowered = str(exc).lower()
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return TrialFailure(FailureKind.OUT_OF_MEMORY, described)
    if any(marker in lowered for marker in _OOM_MARKERS):
        return TrialFailure(FailureKind.OUT_OF_MEMORY, described)
    if compiling and type(exc).__module__.startswith(_COMPILE_MODULES):
        return TrialFailure(FailureKind.COMPILE_ERROR, described)
    if any(marker in lowered for marker in _UNSUPPORTED_MARKERS):
        return TrialFailure(FailureKind.UNSUPPORTED, described)
    return TrialFailure(FailureKind.ERROR, described)
