"""A spec resolved into everything a run needs, before anything is stored.

Workload, space (restricted to this device and workload, its ``lr = "auto"`` resolved),
device and the study's policies: a bad spec or workload fails here, with one line, and never
leaves a half-written study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tuner.attrs import StudyAttr
from tuner.hardware import DeviceInfo, describe_device, detect_capabilities, select_device
from tuner.harness.probe import probe
from tuner.judging import Rules
from tuner.lrfind import RangeTestResult, load_auto_space, resolve_space
from tuner.space import SearchSpace, restrict
from tuner.space.auto_lr import AutoSpace
from tuner.spec import StudySpec
from tuner.study_open import stored_spec
from tuner.telling import Feasibility
from tuner.workload import Workload, load_workload


@dataclass(frozen=True)
class Prepared:
    """Everything resolved from a spec, ready to run; built before touching the storage.

    `joining` marks a worker that joins a study made elsewhere (`tuner worker`): it runs the
    study's stored spec and space and never creates the study.
    """

    spec: StudySpec
    workload: Workload
    space: SearchSpace
    dropped: tuple[dict[str, Any], ...]
    device: torch.device
    device_info: DeviceInfo
    joining: bool = False
    #: How ``lr = "auto"`` was resolved (`tuner.lrfind`): stored when the study is created.
    lr_attrs: Mapping[StudyAttr, Any] = field(default_factory=dict)


def prepare(spec: StudySpec, found: Sequence[RangeTestResult] = ()) -> Prepared:
    """Resolve workload, space, device and capabilities; raises UserError on any problem.

    An ``lr = "auto"`` in the space is resolved here (`tuner.lrfind.resolve_space`), from the
    study's stored range, a matching test in `found` or the storage, or a new range test.
    """
    return _prepared(spec, load_auto_space(spec.space), joining=False, found=found)


def prepare_worker(name: str, url: str) -> Prepared:
    """A worker for an existing study, from nothing but its name and storage URL: the spec
    and space travel inside the study. The space is restricted again to this machine."""
    from tuner.storage import load_study

    spec, space = stored_spec(load_study(name, url), url)
    return _prepared(spec, space, joining=True)


def _prepared(
    spec: StudySpec,
    space: SearchSpace | AutoSpace,
    *,
    joining: bool,
    found: Sequence[RangeTestResult] = (),
) -> Prepared:
    workload = load_workload(spec.objective, spec.size)
    device = select_device(spec.device)
    if device.type == "cpu" and spec.threads is not None:
        torch.set_num_threads(spec.threads)
    traits = probe(workload)
    lr_attrs: Mapping[StudyAttr, Any] = {}
    if isinstance(space, AutoSpace):  # the spec's file: an "auto" lr needs workload and device
        resolved = resolve_space(spec, space, workload, device, found)
        space, lr_attrs = resolved.space, resolved.attrs
    space, dropped = restrict(space, detect_capabilities(device), traits)
    return Prepared(
        spec=spec,
        workload=workload,
        space=space,
        dropped=tuple(d.to_dict() for d in dropped),
        device=device,
        device_info=describe_device(device),
        joining=joining,
        lr_attrs=lr_attrs,
    )


def policies(prepared: Prepared) -> tuple[Rules, Feasibility]:
    """How trials of this study are stopped early, and what makes a result feasible."""
    spec, metric = prepared.spec, prepared.workload.metric
    floor = spec.metric_floor if spec.metric_floor is not None else metric.chance
    rules = Rules(
        spec.pruning,
        spec.budget.evaluations,
        metric.direction,
        metric.noise,
        spec.memory_budget_mb,
        floor,
        speed_dominance=not spec.speed_objective.to_target,
    )
    feasibility = Feasibility(
        spec.memory_budget_mb,
        floor,
        metric.direction,
        metric.noise,
        spec.budget.evaluations,
        spec.speed_objective,
    )
    return rules, feasibility
