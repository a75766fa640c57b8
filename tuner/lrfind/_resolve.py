"""``lr = "auto"`` resolved where a study is prepared, before anything is stored.

For each optimizer whose lr is ``"auto"``, in this order:

1. a study that already exists resumes with the range it was created with (its ``auto_lr``
   attribute), so a re-run never changes the space under its own trials;
2. else a range test that matches (`RangeTest.same_run`): one just run by `tuner lr-find`, or
   one the study's storage holds under ``lr_find``;
3. else a new range test, at the workload's baseline batch, accumulation and precision.

What was used is returned as the study attributes to create the study with: ``lr_find``
(every result, by optimizer) and ``auto_lr`` (each optimizer's range and the result behind
it). The space returned is concrete, as every stored space is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.attrs import StudyAttr
from tuner.config import Precision, TrialConfig
from tuner.errors import UserError
from tuner.lrfind._records import (
    DEFAULT_END_LR,
    DEFAULT_ITERATIONS,
    DEFAULT_START_LR,
    RangeTest,
    RangeTestResult,
    representative_optimizer,
)
from tuner.lrfind._store import complete_study, stored_results
from tuner.space.auto_lr import AutoSpace, auto_range
from tuner.space.load import read_space
from tuner.space.schema import FloatRange, SearchSpace
from tuner.spec import StudySpec
from tuner.workload import Workload

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ResolvedSpace:
    """A spec's space with every ``"auto"`` lr resolved, and the attributes that record how
    (empty when the space has no ``"auto"``)."""

    space: SearchSpace
    attrs: Mapping[StudyAttr, Any] = field(default_factory=dict)


def load_auto_space(ref: str) -> AutoSpace:
    """The space `ref` names, validated, its ``"auto"`` lrs not yet resolved."""
    return AutoSpace.parse(*read_space(ref))


def planned_test(
    baseline: TrialConfig,
    space: AutoSpace,
    optimizer: str | None = None,
    *,
    batch_size: int | None = None,
    accumulation: int | None = None,
    precision: str | None = None,
    start_lr: float = DEFAULT_START_LR,
    end_lr: float = DEFAULT_END_LR,
    iterations: int = DEFAULT_ITERATIONS,
) -> RangeTest:
    """The range test of `optimizer` (the baseline's by default) on the workload's baseline,
    with the space's hyperparameters for that optimizer (`representative_optimizer`) and the
    baseline's batch, accumulation and precision where none is given.

    Raises:
        LrFindError: a value out of range.
    """
    name = optimizer or baseline.optimizer.name.value
    return RangeTest(
        representative_optimizer(space.branch(name), lr=DEFAULT_START_LR),
        batch_size or baseline.batch_size,
        accumulation or baseline.accumulation_steps,
        Precision(precision) if precision else baseline.precision,
        start_lr,
        end_lr,
        iterations,
    )


def resolve_space(
    spec: StudySpec,
    auto: AutoSpace,
    workload: Workload,
    device: torch.device,
    found: Sequence[RangeTestResult] = (),
) -> ResolvedSpace:
    """The spec's space (`auto`, loaded by `load_auto_space`) with its ``"auto"`` lrs
    resolved (see the module docstring); reads the spec's storage only when there is one.

    Raises:
        SpaceError: a range test the space needed failed.
    """
    if not auto.auto:
        return ResolvedSpace(auto.space)
    study = complete_study(spec)
    results = stored_results(study) if study is not None else {}
    created_with = dict(study.user_attrs.get(StudyAttr.AUTO_LR) or {}) if study else {}
    ranges: dict[str, FloatRange] = {}
    used: dict[str, Any] = {}
    for name in auto.auto:
        before = _stored_range(created_with.get(name))
        if before is not None:
            ranges[name], used[name] = before, created_with[name]
            continue
        test = planned_test(workload.baseline, auto, name)
        candidates = [*found, results.get(name)]
        result = next((r for r in candidates if r is not None and r.test.same_run(test)), None)
        if result is None:
            result = _run(workload, test, device, spec.seed, f"optimizer.{name}.lr", auto)
        results[name] = result
        ranges[name] = auto_range(result.suggested_lr, test.effective_batch, name, auto.space)
        used[name] = {
            "low": ranges[name].low,
            "high": ranges[name].high,
            "suggested_lr": result.suggested_lr,
            "found": result.to_dict(),
        }
    return ResolvedSpace(
        auto.resolve(ranges),
        {
            StudyAttr.LR_FIND: {name: r.to_dict() for name, r in results.items()},
            StudyAttr.AUTO_LR: used,
        },
    )


def auto_notes(attrs: Mapping[StudyAttr, Any]) -> list[str]:
    """One line per ``"auto"`` lr: the range it became and the suggestion behind it."""
    notes = []
    for name, used in (attrs.get(StudyAttr.AUTO_LR) or {}).items():
        lr_range = _stored_range(used)
        if lr_range is not None:
            suggested = used.get("suggested_lr")
            around = f", around the range test's suggestion {suggested:.3g}" if suggested else ""
            notes.append(
                f'lr = "auto" for {name}: {lr_range.low:.3g} to {lr_range.high:.3g} (log){around}'
            )
    return notes


def _run(
    workload: Workload,
    test: RangeTest,
    device: torch.device,
    seed: int,
    path: str,
    auto: AutoSpace,
) -> RangeTestResult:
    from tuner.lrfind._run import run_range_test

    try:
        return run_range_test(workload, test, device, seed)
    except UserError as exc:
        raise auto.source.error(
            path,
            f'"auto" needs a range test, and it could not give one ({exc}); write a number or '
            f"a range, or run `tuner lr-find SPEC --optimizer {test.optimizer.name.value}` "
            "with other options first",
        ) from None


def _stored_range(used: Any) -> FloatRange | None:
    """The range a study was created with, if the record is one tuner wrote."""
    try:
        low, high = float(used["low"]), float(used["high"])
    except (TypeError, KeyError, ValueError):
        return None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
        return None
    return FloatRange(low, high, log=True)
