"""`tuner lr-find`: run one range test for a spec's study, plot it and store it in the study.

The study is created the way `tuner run` creates it (spec, space, queued baseline, then the
`created` mark) when it does not exist yet, so a later `tuner run` resumes it and an
``lr = "auto"`` in its space uses this result where it matches. An existing study of another
experiment (the spec changed since) is refused before anything trains.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from tuner.lrfind import (
    DEFAULT_END_LR,
    DEFAULT_ITERATIONS,
    DEFAULT_START_LR,
    LrFindError,
    RangeTestResult,
    auto_notes,
    complete_study,
    load_auto_space,
    planned_test,
    record_result,
    storage_errors,
)
from tuner.space.auto_lr import auto_range
from tuner.space.schema import FloatRange
from tuner.spec import StudySpec
from tuner.storage import masked


@dataclass(frozen=True)
class LrFindRequest:
    """What `tuner lr-find` was asked for. None takes the default: the workload baseline's
    optimizer, batch, precision and accumulation; the swept range DEFAULT_START_LR to
    DEFAULT_END_LR in DEFAULT_ITERATIONS steps; the plot ``<study>-lr-<optimizer>.png`` next
    to the spec."""

    optimizer: str | None = None
    batch_size: int | None = None
    precision: str | None = None
    accumulation: int | None = None
    start_lr: float | None = None
    end_lr: float | None = None
    iterations: int | None = None
    plot: str | None = None


@dataclass(frozen=True)
class LrFindReport:
    """A finished `tuner lr-find`: the result, what ``lr = "auto"`` makes of it in the spec's
    space, and where it went."""

    result: RangeTestResult
    auto_range: FloatRange
    workload: str
    study: str
    storage: str
    created: bool  # the study was created to hold the result
    notes: tuple[str, ...] = ()  # what lr = "auto" became in a study created here


def lr_find(spec: StudySpec, request: LrFindRequest) -> LrFindReport:
    """Run the range test `request` asks for on the spec's workload and store it in its study.

    Raises:
        UserError: a bad option, spec, space or workload (exit 2), or a study of another
            experiment under the spec's name.
        RangeTestFailed: the test ran and failed (exit 1).
    """
    import optuna
    import torch

    from tuner.hardware import select_device
    from tuner.harness.probe import probe
    from tuner.lrfind import run_range_test
    from tuner.runner import open_prepared, prepare
    from tuner.storage import open_storage
    from tuner.workload import load_workload

    # --- everything checked before anything trains -----------------------------------------
    space = load_auto_space(spec.space)
    workload = load_workload(spec.objective, spec.size)
    test = planned_test(
        workload.baseline,
        space,
        request.optimizer,
        batch_size=request.batch_size,
        accumulation=request.accumulation,
        precision=request.precision,
        start_lr=DEFAULT_START_LR if request.start_lr is None else request.start_lr,
        end_lr=DEFAULT_END_LR if request.end_lr is None else request.end_lr,
        iterations=DEFAULT_ITERATIONS if request.iterations is None else request.iterations,
    )
    plot = _plot_path(spec, request.plot, test.optimizer.name.value)
    device = select_device(spec.device)
    if device.type == "cpu" and spec.threads is not None:
        torch.set_num_threads(spec.threads)
    probe(workload)
    with warnings.catch_warnings():
        # grouped TPE and metric names are marked experimental; a user can do nothing about it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        prepared = None
        if complete_study(spec) is not None:
            prepared = prepare(spec)  # an "auto" lr resumes from the study: nothing trains
            with storage_errors(spec.storage):  # a study of another experiment is refused here
                open_prepared(prepared, open_storage(spec.storage, create=False))

        # --- the test, then the study that keeps it ----------------------------------------
        result = run_range_test(workload, test, device, spec.seed, plot)
        created = prepared is None
        if prepared is None:
            prepared = prepare(spec, found=(result,))
        with storage_errors(spec.storage):
            study = open_prepared(prepared, open_storage(spec.storage, create=True))
            record_result(study, result)
    return LrFindReport(
        result=result,
        auto_range=auto_range(
            result.suggested_lr, test.effective_batch, test.optimizer.name.value, space.space
        ),
        workload=workload.name,
        study=spec.name,
        storage=spec.storage,
        created=created,
        notes=tuple(auto_notes(prepared.lr_attrs)) if created else (),
    )


def format_report(report: LrFindReport) -> str:
    """The result as `tuner lr-find` prints it."""
    result, test = report.result, report.result.test
    params = ", ".join(f"{name} {_value(value)}" for name, value in test.params().items())
    ended = (
        f"the loss diverged at lr {result.diverged_at:.3g} (step {result.steps})"
        if result.diverged_at is not None
        else "the loss did not diverge"
    )
    lines = [
        f"range test: {report.study} ({report.workload}), {test.optimizer.name.value} ({params}),"
        f" batch {test.batch_size} x {test.accumulation_steps}, {test.precision.value}, "
        f"on {result.device}",
        f"{result.steps} of {test.iterations} steps from lr {test.start_lr:g} to "
        f"{test.end_lr:g}; {ended}",
        f"suggested lr  {result.suggested_lr:.3g}  (steepest loss descent: centre a range on "
        "it; trained at, it may diverge)",
        f"min-loss lr   {result.min_loss_lr:.3g}",
        f'lr = "auto"   {report.auto_range.low:.3g} to {report.auto_range.high:.3g} (log-uniform)',
    ]
    if result.plot is not None:
        lines.append(f"plot          {_shown(Path(result.plot))}")
    made = "created study" if report.created else "study"
    lines.append(
        f"stored        lr_find.{test.optimizer.name.value} in {made} {report.study} "
        f"({masked(report.storage)})"
    )
    return "\n".join([*lines, *report.notes])


def _plot_path(spec: StudySpec, given: str | None, optimizer: str) -> Path:
    """`given`, or ``<study>-lr-<optimizer>.png`` next to the spec; its folder must exist."""
    if given is not None:
        path = Path(given)
    else:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.name)
        path = Path(spec.source).parent / f"{stem}-lr-{optimizer}.png"
    if not path.parent.is_dir():
        raise LrFindError(
            f"--plot: the folder {path.parent} does not exist; create it or choose another path"
        )
    return path


def _shown(path: Path) -> Path:
    """`path` relative to the working directory where it lies below it, as a user typed it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "(" + ", ".join(_value(item) for item in value) + ")"
    return str(value)
