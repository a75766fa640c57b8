"""Plain-text tables of a study for the terminal: the front, the counts, the failures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuner.attrs import StudyAttr, TrialAttr
from tuner.results import StudyView, TrialRecord

_REASONS_SHOWN = 5  # per failure kind: the first few say why; the count says how often


def knob_summary(config: dict[str, Any] | None) -> dict[str, str]:
    """The knobs a reader scans first, each as a short cell."""
    if not config:
        return {}
    optimizer = config["optimizer"]
    clip = config.get("grad_clip_norm")
    return {
        "optimizer": f"{optimizer['name']} lr={optimizer['lr']:.2e}",
        "schedule": config["schedule"]["name"],
        "batch": f"{config['batch_size']}x{config['accumulation_steps']}",
        "precision": config["precision"],
        "compile": config["compile_mode"],
        "clip": "off" if clip is None else f"{clip:.3g}",
    }


def device_line(device: dict[str, Any] | None) -> str:
    if not device:
        return "unknown device"
    threads = device.get("torch_threads")
    detail = f", {threads} thread{'s' if threads != 1 else ''}" if threads else ""
    return (
        f"{device.get('type')} ({device.get('name')}{detail}), torch {device.get('torch_version')}"
    )


def trials_table(view: StudyView, trials: Sequence[TrialRecord]) -> str:
    headers = [
        "trial",
        view.metric_name,
        "samples/s",
        "optimizer",
        "schedule",
        "batch",
        "precision",
        "compile",
        "clip",
    ]
    rows = []
    for trial in trials:
        knobs = knob_summary(trial.config)
        rows.append(
            [str(trial.number), f"{trial.metric:.4f}", f"{trial.throughput:,.0f}"]
            + [knobs.get(h, "") for h in headers[3:]]
        )
    return format_table(headers, rows)


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def study_report(view: StudyView) -> str:
    """Everything `tuner show` prints."""
    counts = view.state_counts()
    direction = view.direction.value
    lines = [
        f"study {view.name}: objective {view.attrs.get(StudyAttr.OBJECTIVE, '?')}, "
        f"metric {view.metric_name} ({direction}) and throughput (maximize)",
        f"storage: {view.storage}",
        f"device: {device_line(view.attrs.get(StudyAttr.DEVICE))}",
        "trials: " + (", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none"),
    ]
    front = view.front()
    if front:
        lines += ["", f"Pareto front ({len(front)} of {len(view.completed())} complete trials):"]
        lines.append(trials_table(view, front))
    infeasible = view.infeasible()
    if infeasible:
        numbers = ", ".join(str(t.number) for t in infeasible)
        lines += ["", f"over the memory budget (infeasible): trials {numbers}"]
    failures = view.failures()
    if failures:
        lines += ["", "failed or pruned:"]
        for kind, trials in sorted(failures.items()):
            lines.append(f"  {kind} ({len(trials)}):")
            lines += [
                f"    trial {t.number}: {t.attrs.get(TrialAttr.FAILURE_REASON, '')}"
                for t in trials[:_REASONS_SHOWN]
            ]
            if len(trials) > _REASONS_SHOWN:
                lines.append(f"    ... and {len(trials) - _REASONS_SHOWN} more")
    dropped = view.attrs.get(StudyAttr.DROPPED) or []
    if dropped:
        lines += ["", "dropped by hardware awareness:"]
        lines += [f"  {d['knob']}={d['value']}: {d['reason']}" for d in dropped]
    return "\n".join(lines)
