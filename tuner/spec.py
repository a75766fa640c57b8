"""Study specs: one TOML file names everything a study needs.

Validated completely before anything touches the storage, so a bad spec never leaves a
half-written study behind. Relative paths in a spec (objective file, space file, SQLite
database) are resolved against the spec's own folder, so a spec runs the same from any
working directory.

Example ``studies/digits.toml``::

    [study]
    name = "digits"
    objective = "digits"
    space = "quick"
    n_trials = 24
    seed = 0

    [budget]
    epochs = 8
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from tuner.bounds import SECONDS, Bound
from tuner.budget import Budget, BudgetError
from tuner.errors import UserError
from tuner.pruning import Pruning
from tuner.storage import masked
from tuner.targets import Speed, SpeedObjective
from tuner.text import key_name, shown
from tuner.tomlfile import MAX_PATH, TomlFileError, read_toml
from tuner.workload import SIZES


class SpecError(UserError):
    """A spec is invalid; the one-line message names the file, the field and the fix."""


class SamplerName(StrEnum):
    TPE = "tpe"
    NSGA2 = "nsga2"
    RANDOM = "random"


_SECTIONS: dict[str, frozenset[str]] = {
    "study": frozenset(
        {
            "name",
            "objective",
            "size",
            "space",
            "n_trials",
            "timeout_s",
            "seed",
            "sampler",
            "n_startup_trials",
            "storage",
            "metric_floor",
            "remeasure_rounds",
            "speed",
            "target",
        }
    ),
    "budget": frozenset(budget_field.name for budget_field in fields(Budget)),
    "run": frozenset({"device", "threads", "memory_budget_mb"}),
    "pruning": frozenset(pruning_field.name for pruning_field in fields(Pruning)),
}
_DEVICES = ("auto", "cpu", "cuda")
DEFAULT_DB = "studies/tuner.db"

# Sane bounds: past these a value is a typo, and would crash Optuna or torch or fail every trial.
_TRIALS = Bound(1, 10**6, integer=True)
#: The runner adds trial numbers to the seed, and NumPy seeds must stay below 2**32.
_SEED = Bound(0, 2**31 - 1, integer=True)
_MEMORY_MB = Bound(0, 10**9, low_open=True)  # a petabyte
_ROUNDS = Bound(0, 100, integer=True)
_FLOOR = Bound(-1e12, 1e12)
_PRUNING_BOUNDS = {
    "reduction_factor": Bound(2, 100, integer=True),
    "min_evaluations": Bound(1, 1000, integer=True),
    "min_trials": Bound(1, 10**6, integer=True),
    "margin": Bound(0, 1),
}
#: Spec keys a re-run may change without starting another experiment: how long and where it
#: runs, and how trials are stopped early (a policy of the search, not of the trials' values).
_VOLATILE = (
    "n_trials",
    "timeout_s",
    "storage",
    "device",
    "threads",
    "space",
    "pruning",
    "remeasure_rounds",
)
#: Optuna's study-name column holds 512 characters.
_NAME_LENGTH = 512


@dataclass(frozen=True)
class StudySpec:
    """A validated study spec. `storage` is a full Optuna storage URL."""

    name: str
    objective: str
    space: str
    budget: Budget
    storage: str
    n_trials: int = 20
    timeout_s: float | None = None
    seed: int = 0
    sampler: SamplerName = SamplerName.TPE
    n_startup_trials: int = 10
    device: str = "auto"
    threads: int | None = 1
    memory_budget_mb: float | None = None
    size: str = "small"  # a built-in workload's size (tuner.workload.SIZES)
    pruning: Pruning = field(default_factory=Pruning)
    #: Interleaved rounds that re-measure the final front's throughput against the baseline
    #: when the study ends (0: off).
    remeasure_rounds: int = 3
    #: A metric not clearly better than this (or the workload's chance level) is infeasible.
    metric_floor: float | None = None
    #: Objective 1: samples/s, or the seconds to reach `target` (`tuner.targets`).
    speed: Speed = Speed.THROUGHPUT
    target: float | None = None  # the metric value to reach; with speed = time_to_target only
    source: str = field(default="<spec>", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, stored on the study so a worker needs nothing but the storage.

        The storage URL is kept with its password masked: whoever can read the study has
        the storage already, and a study's attributes are shown, exported and copied.
        """
        data = asdict(self)
        data.pop("source")
        data["sampler"] = self.sampler.value
        data["speed"] = self.speed.value
        data["storage"] = masked(self.storage)
        return data

    @property
    def speed_objective(self) -> SpeedObjective:
        """`speed` and `target` as every reader of objective 1 takes them."""
        return SpeedObjective(self.speed, self.target)

    def identity(self) -> dict[str, Any]:
        """What must match for a re-run to resume a study rather than mix two experiments.

        The space is compared by contents (the stored space), not by path, so moving a
        checkout does not orphan its studies.
        """
        data = self.to_dict()
        for volatile in _VOLATILE:
            data.pop(volatile)
        return data


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec file.

    Raises:
        SpecError: on the first problem, naming file, field, bad value and fix.
    """
    path = Path(path)
    where = str(path)
    try:
        raw = read_toml(path)
    except TomlFileError as exc:
        raise SpecError(f"{where}: {'no such spec file' if exc.missing else exc}") from None
    for section, value in raw.items():
        if section not in _SECTIONS:
            raise SpecError(
                f"{where}: unknown section [{key_name(section)}]; allowed: {', '.join(_SECTIONS)}"
            )
        if not isinstance(value, dict):
            raise SpecError(f"{where}: {section} must be a [{section}] table")
        unknown = sorted(set(value) - _SECTIONS[section])
        if unknown:
            allowed = ", ".join(sorted(_SECTIONS[section]))
            raise SpecError(
                f"{where}: {section}.{key_name(unknown[0])}: unknown key; allowed: {allowed}"
            )
    check = _Checker(where, raw)
    base = path.parent.resolve()
    try:
        budget = Budget(**raw.get("budget", {}))
    except BudgetError as exc:
        raise SpecError(f"{where}: {exc}") from None
    cores = os.cpu_count() or 1
    speed, target = check.speed()
    return StudySpec(
        name=check.text("study.name", required=True, max_length=_NAME_LENGTH),
        objective=_resolve_reference(check.text("study.objective", required=True), base),
        space=_resolve_space(check.text("study.space", default="default"), base),
        budget=budget,
        storage=resolve_storage(check.text("study.storage", default="") or None, base),
        n_trials=check.integer("study.n_trials", _TRIALS, default=20),
        timeout_s=check.number("study.timeout_s", SECONDS),
        seed=check.integer("study.seed", _SEED, default=0),
        sampler=check.sampler("study.sampler"),
        n_startup_trials=check.integer("study.n_startup_trials", _TRIALS, default=10),
        device=check.text("run.device", default="auto", allowed=_DEVICES),
        threads=check.integer(
            "run.threads",
            Bound(1, cores, integer=True),
            default=1,
            why=f"this machine has {cores} CPU cores",
        ),
        memory_budget_mb=check.number("run.memory_budget_mb", _MEMORY_MB),
        size=check.text("study.size", default="small", allowed=SIZES),
        pruning=check.pruning(),
        remeasure_rounds=check.integer("study.remeasure_rounds", _ROUNDS, default=3),
        metric_floor=check.number("study.metric_floor", _FLOOR),
        speed=speed,
        target=target,
        source=where,
    )


def default_storage() -> str:
    """The one default storage of every command: ``studies/tuner.db`` in the current folder.

    `run` writes there unless the spec or ``--storage`` names another; `show`, `list`,
    `export` and `app` read there, so a study run from a folder is found from that folder.
    """
    return f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def resolve_storage(url: str | None, base: Path) -> str:
    """An Optuna storage URL; relative SQLite paths are anchored at `base`; None is the
    default storage."""
    if url is None:
        return default_storage()
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return f"{prefix}{base / url[len(prefix) :]}"
    return url


def _default(value: float | None, default: float) -> float:
    return default if value is None else value


def _resolve_reference(reference: str, base: Path) -> str:
    module, sep, attr = reference.rpartition(":")
    if sep and module.endswith(".py") and not Path(module).is_absolute():
        return f"{base / module}:{attr}"
    return reference


def _resolve_space(reference: str, base: Path) -> str:
    if reference.endswith(".toml") and not Path(reference).is_absolute():
        return str(base / reference)
    return reference


class _Checker:
    """Typed reads of `[section] key` values, with errors that name the field."""

    def __init__(self, where: str, raw: dict[str, Any]) -> None:
        self.where = where
        self._raw = raw

    def _get(self, field: str, default: Any) -> Any:
        section, key = field.split(".")
        return self._raw.get(section, {}).get(key, default)

    def _error(self, field: str, message: str, value: Any, why: str = "") -> SpecError:
        return SpecError(
            f"{self.where}: {field}: {message}, got {shown(value)}{f'; {why}' if why else ''}"
        )

    def text(
        self,
        field: str,
        *,
        required: bool = False,
        default: str = "",
        allowed: tuple[str, ...] | None = None,
        max_length: int = MAX_PATH,
    ) -> str:
        """A non-empty string of printable characters: a name or path holding a terminal
        escape, a NUL or a newline would corrupt every line that prints it."""
        value = self._get(field, None)
        if value is None:
            if required:
                key = field.split(".")[1]
                raise SpecError(f'{self.where}: {field}: required; add {key} = "..."')
            return default
        if not isinstance(value, str) or not value.strip():
            raise self._error(field, "must be a non-empty string", value)
        if not value.isprintable():
            raise self._error(
                field, "must be printable text (no control characters, tabs or newlines)", value
            )
        if len(value) > max_length:
            raise self._error(field, f"must be at most {max_length} characters", value)
        if allowed is not None and value not in allowed:
            raise self._error(field, f"must be one of {', '.join(allowed)}", value)
        return value

    def integer(self, field: str, bound: Bound, *, default: int, why: str = "") -> int:
        value = self._get(field, default)
        if not bound.holds(value):
            raise self._error(field, f"must be {bound}", value, why)
        return int(value)

    def number(self, field: str, bound: Bound) -> float | None:
        value = self._get(field, None)
        if value is None:
            return None
        if not bound.holds(value):
            raise self._error(field, f"must be {bound}", value)
        return float(value)

    def flag(self, field: str, *, default: bool) -> bool:
        value = self._get(field, default)
        if not isinstance(value, bool):
            raise self._error(field, "must be true or false", value)
        return value

    def pruning(self) -> Pruning:
        default = Pruning()
        bounds = _PRUNING_BOUNDS
        return Pruning(
            enabled=self.flag("pruning.enabled", default=default.enabled),
            reduction_factor=self.integer(
                "pruning.reduction_factor",
                bounds["reduction_factor"],
                default=default.reduction_factor,
            ),
            min_evaluations=self.integer(
                "pruning.min_evaluations",
                bounds["min_evaluations"],
                default=default.min_evaluations,
            ),
            min_trials=self.integer(
                "pruning.min_trials", bounds["min_trials"], default=default.min_trials
            ),
            throughput_cache=self.flag(
                "pruning.throughput_cache", default=default.throughput_cache
            ),
            margin=_default(self.number("pruning.margin", bounds["margin"]), default.margin),
        )

    def speed(self) -> tuple[Speed, float | None]:
        """`study.speed` and the `study.target` that time_to_target needs (and nothing else
        takes: a target that silently did nothing would read as if it counted)."""
        value = self._get("study.speed", Speed.THROUGHPUT.value)
        try:
            speed = Speed(value)
        except ValueError:
            allowed = ", ".join(member.value for member in Speed)
            raise self._error("study.speed", f"must be one of {allowed}", value) from None
        target = self.number("study.target", _FLOOR)
        if speed is Speed.TIME_TO_TARGET and target is None:
            raise SpecError(
                f'{self.where}: study.target: required with speed = "time_to_target"; add '
                "target = <the metric value to reach, e.g. 0.95>"
            )
        if speed is Speed.THROUGHPUT and target is not None:
            raise self._error(
                "study.target",
                'only applies with speed = "time_to_target"',
                target,
                'set speed = "time_to_target" or remove target',
            )
        return speed, target

    def sampler(self, field: str) -> SamplerName:
        value = self._get(field, SamplerName.TPE.value)
        try:
            return SamplerName(value)
        except ValueError:
            allowed = ", ".join(member.value for member in SamplerName)
            raise self._error(field, f"must be one of {allowed}", value) from None
