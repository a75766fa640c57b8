"""What to profile: one config, with everything needed to run it as the study ran it.

Resolved from a stored trial (the study's stored spec and the trial's stored config and
seed) or from a spec file plus an exported config, before torch is imported, so every
mistake in the command line is one quick line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tuner.attrs import TrialAttr
from tuner.config import ConfigError, TrialConfig
from tuner.errors import UserError
from tuner.export import load_config
from tuner.results import StudyReader, TrialRecord
from tuner.spec import StudySpec, load_spec
from tuner.study_open import stored_spec
from tuner.text import one_line


@dataclass(frozen=True)
class ProfileTarget:
    """One config to profile, and the study context it ran in.

    Attributes:
        label: What is profiled, for the report ("study e2e, trial 0 (baseline)").
        objective: The workload reference (a built-in name, module:attr or file.py:attr).
        size: The built-in workload's size.
        device: The spec's device ("auto", "cpu", "cuda").
        threads: Torch threads on a CPU, as a study's worker sets them.
        warmup_steps: Untimed optimizer steps before profiling (compilation happens there).
        seed: Seed of model initialisation and data order, the trial's own.
        config: The config to train.
        trace_name: The default file name of the Chrome trace.
        throughput: The samples/s the study measured for this trial (None when unknown).
    """

    label: str
    objective: str
    size: str
    device: str
    threads: int
    warmup_steps: int
    seed: int
    config: TrialConfig
    trace_name: str
    throughput: float | None = None


def resolve_target(
    study: tuple[str, str] | None,
    trial: int | None,
    spec_file: str | None,
    config_file: str | None,
    *,
    storage: bool = False,
) -> ProfileTarget:
    """What `tuner profile` was asked for: `study` (name, storage URL) with `trial`, or
    `spec_file` with `config_file`; `storage` says whether --storage was given.

    Raises:
        UserError: both or neither way, an option of the other way, or what `study_target`
            and `spec_target` raise.
    """
    if (study is None) == (spec_file is None):
        raise UserError(
            "STUDY: give a study and --trial N, or --spec SPEC --config FILE, not "
            f"{'both' if study else 'neither'}; see `tuner profile --help`"
        )
    if study is not None:
        if config_file is not None:
            raise UserError("--config: goes with --spec; for STUDY choose a trial with --trial")
        return study_target(*study, trial)
    if trial is not None or storage:
        raise UserError("--spec: --trial and --storage go with STUDY; leave them out")
    return spec_target(str(spec_file), config_file)


def study_target(name: str, storage: str, trial: int | None) -> ProfileTarget:
    """Trial `trial` of study `name`: its stored config and seed under the study's stored spec.

    Raises:
        UserError: no such study or trial, or the trial has no valid stored config.
    """
    if trial is None:
        raise UserError(
            "--trial: required with STUDY; give the number of the trial to profile "
            "(0 is the baseline, `tuner show STUDY` lists the others)"
        )
    reader = StudyReader(name, storage)
    view = reader.read()
    record = view.trial(trial)
    if record is None:
        numbers = [t.number for t in view.trials]
        known = f"{min(numbers)}-{max(numbers)}" if numbers else "none yet"
        raise UserError(
            f"--trial: study {one_line(name)!r} has no trial {trial} (its trials: {known}); "
            "choose one that `tuner show STUDY` lists"
        )
    config = _stored_config(record)
    spec, _ = stored_spec(reader.study, storage)
    seed = record.attrs.get(TrialAttr.SEED)
    if not isinstance(seed, int) or isinstance(seed, bool):
        seed = (spec.seed + trial) % 2**32  # as the runner seeds every trial
    role = " (baseline)" if record.is_baseline else ""
    return _target(
        spec,
        config,
        label=f"study {one_line(name)}, trial {trial}{role}",
        seed=seed,
        trace_name=f"profile-{name}-{trial}.json",
        throughput=record.throughput,
    )


def spec_target(spec_file: str, config_file: str | None) -> ProfileTarget:
    """A config exported by `tuner export`, run on the workload and device of a spec file.

    Raises:
        UserError: the spec or the config file is missing or invalid.
    """
    if config_file is None:
        raise UserError(
            "--config: required with --spec; give a config exported by "
            "`tuner export STUDY -o best.yaml`"
        )
    spec = load_spec(spec_file)
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        raise UserError(f"--config: {exc}; give a YAML or JSON file from `tuner export`") from None
    return _target(
        spec,
        config,
        label=f"spec {one_line(spec.name)}, config {one_line(config_file)}",
        seed=spec.seed,  # the seed of the study's trial 0
        trace_name=f"profile-{spec.name}-{Path(config_file).stem}.json",
    )


def trace_path(trace: str | None, target: ProfileTarget) -> Path:
    """Where the Chrome trace goes: `trace`, or the target's default name in the current
    folder. Checked now, so an unwritable path fails before minutes of training.

    Raises:
        UserError: the file cannot be written.
    """
    path = Path(trace) if trace else Path.cwd() / _safe_name(target.trace_name)
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        raise UserError(
            f"--trace: cannot write {path}: {exc.strerror}; choose a file in a folder you can write"
        ) from None
    if not existed:
        path.unlink()
    return path


def _stored_config(record: TrialRecord) -> TrialConfig:
    if record.config is None:
        why = f" ({one_line(record.failure)})" if record.failure else ""
        raise UserError(
            f"--trial: trial {record.number} has no stored config: it is {record.state}{why}; "
            "profile a trial that ran, such as the baseline (--trial 0)"
        )
    try:
        return TrialConfig.from_dict(record.config)
    except ConfigError as exc:
        raise UserError(
            f"--trial: trial {record.number}'s stored config is not valid: {exc}; profile "
            "another trial"
        ) from None


def _target(
    spec: StudySpec,
    config: TrialConfig,
    *,
    label: str,
    seed: int,
    trace_name: str,
    throughput: float | None = None,
) -> ProfileTarget:
    cores = os.cpu_count() or 1
    return ProfileTarget(
        label=label,
        objective=spec.objective,
        size=spec.size,
        device=spec.device,
        threads=min(spec.threads or cores, cores),
        warmup_steps=spec.budget.warmup_steps,
        seed=seed,
        config=config,
        trace_name=trace_name,
        throughput=throughput,
    )


def _safe_name(name: str) -> str:
    """A study name as part of a file name: no folders, nothing a shell would trip on."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
