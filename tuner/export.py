"""Exported configs: a chosen trial as YAML, JSON or a runnable Python snippet, and back.

YAML and JSON exports are data (``load_config`` reads them back, and `tuner.knobs` applies
them). The Python export is code a user pastes into their own training script, so it is built
only from ``repr()`` of validated numbers and from the fixed enum-to-torch tables of
`tuner.export_template`: a study or device name reaches it only as a sanitised comment, never
as code. This module imports no torch, so the CLI's ``export`` answers instantly.

Example::

    text = render(config, Provenance("cifar", 12, "accuracy", 0.91, 4523.0, "NVIDIA H200"), "yaml")
    Path("best.yaml").write_text(text)
    assert load_config("best.yaml") == config
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from string import Template
from typing import Any

import yaml

from tuner.config import (
    WARMUP_START_FACTOR,
    ConfigError,
    LoaderConfig,
    OptimizerConfig,
    OptimizerImpl,
    Precision,
    ScheduleConfig,
    TrialConfig,
    implementation_kwargs,
    optimizer_kwargs,
)
from tuner.export_template import (
    AUTOCAST_ARGS,
    CHANNELS_LAST,
    CHECKPOINTING,
    CLIP,
    COMPILE,
    MATMUL_PRECISION,
    NO_CLIP,
    OPTIMIZER_CLASSES,
    SCHEDULERS,
    TEMPLATE,
    WORKER_ARGS,
)
from tuner.text import one_line

EXPORT_VERSION = 1


class ExportFormat(StrEnum):
    YAML = "yaml"
    JSON = "json"
    PYTHON = "python"


@dataclass(frozen=True)
class Provenance:
    """Where an exported config came from. Its values are written as data, never as code."""

    study: str
    trial: int
    metric_name: str
    metric: float | None
    throughput: float | None  # samples/s
    device: str  # one-line device description
    baseline_trial: int | None = None  # the trial the next two figures are relative to
    speedup: float | None = None  # throughput / the baseline's
    metric_delta: float | None = None  # metric gain over the baseline; > 0 is better
    note: str = ""  # why there is no baseline, or a warning about this trial


def render(config: TrialConfig, provenance: Provenance, fmt: ExportFormat | str) -> str:
    """The export of `config` in format `fmt` (yaml, json or python), ending with a newline.

    Example:
        >>> print(render(config, provenance, "python"))  # doctest: +SKIP
    """
    match ExportFormat(fmt):
        case ExportFormat.YAML:
            return yaml.safe_dump(_document(config, provenance), sort_keys=False)
        case ExportFormat.JSON:
            return json.dumps(_document(config, provenance), indent=2) + "\n"
        case ExportFormat.PYTHON:
            return _python(config, _provenance_dict(provenance))


def load_config(path: str | Path) -> TrialConfig:
    """Read the config of a YAML or JSON export back, validated.

    JSON is parsed with `json`, not YAML: YAML 1.1 reads JSON's ``1e-05`` as a string.

    Raises:
        ConfigError: a one-line message naming the file and the bad field or structure, or
            why the file cannot be read.

    Example:
        >>> config = load_config("best.yaml")  # doctest: +SKIP
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ConfigError(
            f"{path}: can only read .yaml, .yml or .json exports (a Python export is code), "
            f"got {suffix or 'no extension'!r}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {one_line(str(exc))}") from None
    try:
        document = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if suffix == ".json" else "YAML"
        raise ConfigError(f"{path}: not valid {kind}: {one_line(str(exc))}") from None
    if not isinstance(document, dict):
        raise ConfigError(
            f"{path}: must be a mapping with tuner_export, provenance and config, "
            f"got {type(document).__name__}"
        )
    if document.get("tuner_export") != EXPORT_VERSION:
        raise ConfigError(
            f"{path}: tuner_export: must be {EXPORT_VERSION} (a file written by tuner export), "
            f"got {document.get('tuner_export')!r}"
        )
    if "config" not in document:
        raise ConfigError(f"{path}: config: missing; the export has no config section")
    try:
        return TrialConfig.from_dict(document["config"])
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _document(config: TrialConfig, provenance: Provenance) -> dict[str, Any]:
    return {
        "tuner_export": EXPORT_VERSION,
        "provenance": _provenance_dict(provenance),
        "config": config.to_dict(),
    }


def _provenance_dict(provenance: Provenance) -> dict[str, Any]:
    """Provenance as plain values; a figure that is not finite is written as unknown (null)."""
    return {
        "study": str(provenance.study),
        "trial": int(provenance.trial),
        "metric_name": str(provenance.metric_name),
        "metric": _finite_or_none(provenance.metric),
        "throughput": _finite_or_none(provenance.throughput),
        "device": str(provenance.device),
        "baseline_trial": None
        if provenance.baseline_trial is None
        else int(provenance.baseline_trial),
        "speedup": _finite_or_none(provenance.speedup),
        "metric_delta": _finite_or_none(provenance.metric_delta),
    } | ({"note": str(provenance.note)} if provenance.note else {})


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# ---- the Python export --------------------------------------------------------------------
# Every config value reaches the code through _literal() or a fixed table of export_template.


def _literal(value: object) -> str:
    """Python source for a validated number, bool or tuple of numbers; anything else raises.

    Values are re-made as builtins first, so a numpy scalar cannot repr as ``np.float64(..)``.
    """
    if isinstance(value, bool):
        return repr(bool(value))
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(item) for item in value) + ")"
    raise TypeError(f"not a literal config value: {type(value).__name__}")


def _call(head: str, args: list[str]) -> str:
    """``head(args)`` in make_training's body, wrapped as ruff format wraps it in 100 columns:
    on one line, else the arguments on a line of their own, else one argument a line."""
    line = f"    {head}({', '.join(args)})"
    if len(line) <= 100:
        return line
    hugged = f"        {', '.join(args)}"
    if len(hugged) <= 100:
        return f"    {head}(\n{hugged}\n    )"
    return "\n".join([f"    {head}(", *(f"        {arg}," for arg in args), "    )"])


def _optimizer_code(config: OptimizerConfig, impl: OptimizerImpl) -> str:
    """``optimizer = torch.optim.X(...)`` with the hyperparameters and implementation."""
    kwargs = optimizer_kwargs(config) | implementation_kwargs(impl)
    args = ["model.parameters()", *(f"{key}={_literal(value)}" for key, value in kwargs.items())]
    return _call(f"optimizer = {OPTIMIZER_CLASSES[config.name]}", args)


def _scheduler_code(config: ScheduleConfig, lr: float) -> str:
    fields = ("step_every", "step_gamma", "pct_start", "warmup_fraction")
    values = {field: getattr(config, field) for field in fields}
    values |= {"lr": lr, "start_factor": WARMUP_START_FACTOR}
    literals = {key: _literal(value) for key, value in values.items() if value is not None}
    lines = []
    for statement in SCHEDULERS[config.name]:
        if isinstance(statement, str):
            lines.append("    " + Template(statement).substitute(literals))
        else:
            head, args = statement
            lines.append(_call(head, [Template(arg).substitute(literals) for arg in args]))
    return "\n".join(lines)


def _loader_worker_args(config: LoaderConfig) -> str:
    if config.num_workers == 0:
        return ""
    return WORKER_ARGS.substitute(
        persistent_workers=_literal(config.persistent_workers),
        prefetch_factor=_literal(config.prefetch_factor),
    )


def _speedup(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}x"


def _figure(value: float | None, unit: str = "") -> str:
    return "unknown" if value is None else f"{value:.6g}{unit}"


def _provenance_comment(provenance: dict[str, Any]) -> str:
    lines = [
        f"# Study {one_line(provenance['study'])}, trial {provenance['trial']}:"
        f" {one_line(provenance['metric_name'])} {_figure(provenance['metric'])},"
        f" {_figure(provenance['throughput'], ' samples/s')}"
        f" on {one_line(provenance['device'])}."
    ]
    if provenance["baseline_trial"] is not None:
        delta = provenance["metric_delta"]
        lines.append(
            f"# Against the baseline (trial {provenance['baseline_trial']}):"
            f" {_speedup(provenance['speedup'])} its throughput,"
            f" {one_line(provenance['metric_name'])}"
            f" {'unknown' if delta is None else f'{delta:+.6g}'} (+ is better)."
        )
    if "note" in provenance:
        lines.append(f"# Note: {one_line(provenance['note'])}")
    return "\n".join(lines)


def _scaling_comment(config: TrialConfig) -> str:
    """How the lr followed the effective batch, as a comment line; nothing when it did not."""
    scaling = config.batch_scaling
    if scaling is None:
        return ""
    return f"\n# lr = {scaling.describe()} = {scaling.lr:.6g}."


def _python(config: TrialConfig, provenance: dict[str, Any]) -> str:
    """The Python export: TEMPLATE filled with literals and the fragments the config picks."""
    loader = config.loader
    clip = config.grad_clip_norm
    return TEMPLATE.substitute(
        provenance=_provenance_comment(provenance),
        batch=_literal(config.batch_size),
        accum=_literal(config.accumulation_steps),
        samples=_literal(config.effective_batch_size),
        batch_scaling=_scaling_comment(config),
        num_workers=_literal(loader.num_workers),
        pin_memory=_literal(loader.pin_memory),
        worker_args=_loader_worker_args(loader),
        matmul_precision=MATMUL_PRECISION[config.matmul_precision],
        cudnn_benchmark=_literal(config.cudnn_benchmark),
        optimizer=_optimizer_code(config.optimizer, config.optimizer_impl),
        scheduler=_scheduler_code(config.schedule, config.optimizer.lr),
        scaler_enabled=_literal(config.precision == Precision.FP16),
        autocast_args=AUTOCAST_ARGS[config.precision],
        model_to_train=COMPILE[config.compile_mode],
        clip=NO_CLIP if clip is None else CLIP.substitute(max_norm=_literal(clip)),
        **CHANNELS_LAST[config.channels_last],
        **CHECKPOINTING[config.activation_checkpointing],
    )
