"""Creating, resuming and joining a study, so that no interruption leaves one unusable.

Creation writes the study, its attributes and the queued baseline, then `created` last. A
study without that mark was killed half-made (or is being made right now by another
process): after a short wait it is deleted and made again, never a permanent block.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

import tuner
from tuner.attrs import StudyAttr, TrialAttr
from tuner.budget import Budget
from tuner.errors import UserError
from tuner.pruning import Pruning
from tuner.space import SearchSpace
from tuner.spec import SamplerName, StudySpec
from tuner.storage import masked
from tuner.targets import Speed, SpeedObjective

_SAMPLERS: dict[SamplerName, Callable[[int, int], optuna.samplers.BaseSampler]] = {
    # Multivariate, grouped TPE models the conditional optimizer/schedule branches jointly.
    SamplerName.TPE: lambda seed, startup: optuna.samplers.TPESampler(
        multivariate=True, group=True, n_startup_trials=startup, seed=seed
    ),
    # One generation per start-up batch: the default population of 50 outlasts most studies.
    SamplerName.NSGA2: lambda seed, startup: optuna.samplers.NSGAIISampler(
        population_size=max(startup, 4), seed=seed
    ),
    SamplerName.RANDOM: lambda seed, _: optuna.samplers.RandomSampler(seed=seed),
}

#: How long a study without its `created` mark is given to get it from another process.
_CREATING_S = 5.0


def open_study(
    spec: StudySpec,
    storage: optuna.storages.BaseStorage,
    attrs: dict[StudyAttr, Any],
    baseline_params: dict[str, Any],
    *,
    joining: bool = False,
) -> optuna.Study:
    """The spec's study in `storage`: created with `attrs` and the baseline queued, resumed,
    or (`joining`) only joined, which requires it to exist."""
    for _ in range(3):
        existing = _load(spec.name, storage)
        if existing is None:
            if joining:
                raise UserError(f"STUDY: no study named {spec.name!r} in {masked(spec.storage)}")
            # Another process creating it at the same moment wins; the loop then loads theirs.
            with contextlib.suppress(optuna.exceptions.DuplicatedStudyError):
                _create(spec, storage, attrs, baseline_params)
            continue
        if _complete(existing) or _completed_by_another(spec.name, storage):
            if not joining:
                check_same_experiment(existing, spec, attrs)
            return optuna.load_study(
                study_name=spec.name, storage=storage, sampler=_sampler(spec, existing, joining)
            )
        # Killed while being created: nothing in it is worth keeping (unless another run
        # deleted it first).
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=spec.name, storage=storage)
    raise UserError(f"study.name: {spec.name!r} could not be created; try the command again")


def _load(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def _complete(study: optuna.Study) -> bool:
    attrs = study.user_attrs
    # Studies made before the mark existed have their spec and at least the baseline.
    return StudyAttr.CREATED in attrs or (
        StudyAttr.SPEC in attrs and bool(study.get_trials(deepcopy=False))
    )


def _completed_by_another(name: str, storage: optuna.storages.BaseStorage) -> bool:
    deadline = time.monotonic() + _CREATING_S
    while time.monotonic() < deadline:
        time.sleep(0.2)
        study = _load(name, storage)
        if study is None or _complete(study):
            return study is not None
    return False


def _create(
    spec: StudySpec,
    storage: optuna.storages.BaseStorage,
    attrs: dict[StudyAttr, Any],
    baseline_params: dict[str, Any],
) -> None:
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        directions=[attrs[StudyAttr.METRIC_DIRECTION], "maximize"],
    )
    speed = SpeedObjective.from_attr(attrs.get(StudyAttr.SPEED))
    study.set_metric_names([attrs[StudyAttr.METRIC_NAME], speed.objective_name])
    for key, value in {**attrs, StudyAttr.TUNER_VERSION: tuner.__version__}.items():
        study.set_user_attr(key, value)
    # The baseline runs first and through the queue, so every sampler sees it as a trial.
    study.enqueue_trial(baseline_params, user_attrs={TrialAttr.BASELINE: True})
    study.set_user_attr(StudyAttr.CREATED, True)


def _sampler(spec: StudySpec, study: optuna.Study, joining: bool) -> optuna.samplers.BaseSampler:
    """The spec's sampler, seeded so that a resumed study samples new points rather than
    replaying its first ones, and two processes sampling at once do not propose the same."""
    trials = study.get_trials(deepcopy=False)
    shared = joining or any(t.state is TrialState.RUNNING for t in trials)
    seed = (spec.seed + len(trials) + (os.getpid() if shared else 0)) % 2**32
    return _SAMPLERS[spec.sampler](seed, spec.n_startup_trials)


def check_same_experiment(
    study: optuna.Study, spec: StudySpec, attrs: dict[StudyAttr, Any]
) -> None:
    """Refuse to mix trials of two different experiments under one study name."""
    stored_spec = study.user_attrs.get(StudyAttr.SPEC)
    if stored_spec is None:
        raise UserError(
            f"study.name: {spec.name!r} exists in {masked(spec.storage)} but "
            "was not created by tuner; choose another name"
        )
    current = spec.identity()
    # A key the stored spec lacks was added to tuner later: the study ran with its default.
    defaults = {f.name: f.default for f in dataclasses.fields(StudySpec)}
    changed = [key for key in current if current[key] != stored_spec.get(key, defaults[key])]
    if study.user_attrs.get(StudyAttr.SPACE) != attrs[StudyAttr.SPACE]:
        changed.append("space contents")
    if changed:
        raise UserError(
            f"study.name: {spec.name!r} already exists with a different "
            f"{', '.join(changed)}; rename the study to start a new one"
        )


def stored_spec(study: optuna.Study, url: str) -> tuple[StudySpec, SearchSpace]:
    """The spec and space a study was created with, for a worker that has only the storage
    URL (its own `url`, since the stored one has its password masked)."""
    attrs = study.user_attrs
    if not _complete(study) or StudyAttr.SPEC not in attrs:
        raise UserError(
            f"STUDY: {study.study_name!r} was not created by tuner (or not finished being "
            "created); run `tuner run SPEC` for it first"
        )
    data = dict(attrs[StudyAttr.SPEC])
    try:
        spec = StudySpec(
            **{
                **data,
                "budget": Budget(**data["budget"]),
                "pruning": Pruning(**data.get("pruning", {})),
                "sampler": SamplerName(data["sampler"]),
                "speed": Speed(data.get("speed", Speed.THROUGHPUT.value)),
                "storage": url,
                "source": f"study {study.study_name}",
            }
        )
        space = SearchSpace.from_dict(attrs[StudyAttr.SPACE])
    except (TypeError, KeyError, ValueError) as exc:
        raise UserError(
            f"STUDY: {study.study_name!r} holds a spec this tuner cannot read ({exc}); "
            f"join it with the tuner version that created it ({attrs.get(StudyAttr.TUNER_VERSION)})"
        ) from None
    return spec, space
