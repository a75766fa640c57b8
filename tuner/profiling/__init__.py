"""Why is this config slow? Re-run one config as a trial runs it, and profile its steps.

`tuner profile` resolves what to profile (a stored trial, or a spec plus an exported
config) without torch, so a mistake is one quick line; `run_profile` then trains the config
the way the harness does, profiles steady optimizer steps with `torch.profiler`, and returns
a `Profile`: wall time per phase (data loading, forward, backward, optimizer), the top
operators, and a Chrome trace with one range per phase. `format_profile` turns it into the
report, with a verdict naming the biggest phase and the knobs that shrink it.

Example::

    target = study_target("quick-digits", "sqlite:///studies/tuner.db", trial=0)
    print(format_profile(run_profile(target, steps=10, trace=trace_path(None, target))))
"""

from __future__ import annotations

from pathlib import Path

from tuner.profiling._report import OpTime, Phase, Profile, advice, format_profile, verdict
from tuner.profiling._target import (
    ProfileTarget,
    resolve_target,
    spec_target,
    study_target,
    trace_path,
)

__all__ = [
    "OpTime",
    "Phase",
    "Profile",
    "ProfileTarget",
    "advice",
    "format_profile",
    "resolve_target",
    "run_profile",
    "spec_target",
    "study_target",
    "trace_path",
    "verdict",
]


def run_profile(target: ProfileTarget, steps: int, trace: Path) -> Profile:
    """Train `target`'s config as a trial does and profile `steps` steady optimizer steps,
    writing a Chrome trace to `trace`.

    Imports torch (deferring a Ctrl-C during its native start-up, as `tuner run` does).

    Raises:
        UserError: the workload or device is unavailable, or the trace cannot be written.
        ProfileFailed: (a UserError with exit code 1) the config fails when run: out of
            memory, unsupported, a compile error.
    """
    from tuner.interrupts import deferred_interrupt

    with deferred_interrupt():
        from tuner.profiling._run import run_profile as run

    return run(target, steps, trace)
