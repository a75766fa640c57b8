"""How a study reads as text: the cells, the front table, the counts, the failures.

The terminal report (`tuner show`) and the app format every figure with these functions, so
a number reads the same everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tuner.attrs import StudyAttr, TrialAttr
from tuner.relative import Baseline, Versus, baseline_of
from tuner.results import StudyView, TrialRecord, infeasible_groups
from tuner.speed_noise import retimed, within_noise
from tuner.storage import masked
from tuner.text import one_line, printable

_REASONS_SHOWN = 5  # per failure kind: the first few say why; the count says how often


def knob_summary(trial: TrialRecord) -> dict[str, str]:
    """The knobs a reader scans first, each as a short cell ("?" where a stored value is odd)."""
    return knob_cells(trial.knobs)


def knob_cells(knobs: dict[str, Any]) -> dict[str, str]:
    """`knob_summary` of flat knobs (`tuner.results.knobs_of`, or a row of the trials table)."""
    if not knobs:
        return {}
    clip = knobs.get("grad_clip_norm")
    return {
        "optimizer": f"{knobs.get('optimizer', '?')} lr={figure_cell(knobs.get('lr'), '.2e')}",
        "schedule": str(knobs.get("schedule", "?")),
        "batch": f"{knobs.get('batch_size', '?')}x{knobs.get('accumulation_steps', '?')}",
        "precision": str(knobs.get("precision", "?")),
        "compile": str(knobs.get("compile_mode", "?")),
        "clip": "off" if clip is None else figure_cell(clip, ".3g"),
        "other": _others(knobs),
    }


def _others(knobs: dict[str, Any]) -> str:
    """The input-pipeline and layout knobs that differ from PyTorch's defaults, e.g.
    ``workers=2 persistent prefetch=4, channels_last, fused``; ``-`` when none do."""
    parts = []
    workers = knobs.get("num_workers")
    if workers:
        persistent = " persistent" if knobs.get("persistent_workers") else ""
        parts.append(f"workers={workers}{persistent} prefetch={knobs.get('prefetch_factor')}")
    for flag in ("pin_memory", "channels_last", "cudnn_benchmark", "activation_checkpointing"):
        if knobs.get(flag) is True:
            parts.append(flag)
    if knobs.get("optimizer_impl") not in (None, "default"):
        parts.append(str(knobs["optimizer_impl"]))
    if knobs.get("matmul_precision") not in (None, "highest"):
        parts.append(f"matmul={knobs['matmul_precision']}")
    return ", ".join(parts) or "-"


def number(value: Any) -> float | None:
    """A stored figure as a float; None for anything else (None, NaN, a bool, a string)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
        return float(value)
    return None


def figure_cell(value: Any, spec: str) -> str:
    """A stored figure formatted with `spec`, or ``?`` when the stored value is not one."""
    figure = number(value)
    return "?" if figure is None else format(figure, spec)


def speedup_cell(versus: Versus) -> str:
    """Speed over the baseline's, e.g. ``1.42×``; ``?`` with no baseline to divide by, ``-``
    where one of the two never reached the study's target (no time to compare)."""
    if versus.speedup is None:
        return "?" if versus.delta is None else "-"
    return f"{versus.speedup:.2f}×"


def delta_cell(versus: Versus) -> str:
    """The metric's gain over the baseline, signed so + is better; ``!`` marks a trial worse
    than the baseline by more than the noise, ``≈`` one within the noise of it."""
    if versus.delta is None:
        return "?"
    mark = " !" if versus.worse else " ≈" if versus.not_better else ""
    return f"{versus.delta:+.4g}{mark}"


def baseline_line(baseline: Baseline, metric_name: str) -> str:
    """What every relative figure is relative to, or why there are none."""
    trial = baseline.trial
    if trial is None:
        return f"baseline: {baseline.note}"
    knobs = knob_summary(trial)
    setup = ", ".join(knobs[k] for k in ("optimizer", "schedule", "batch", "precision", "compile"))
    speed = baseline.speed.with_unit(trial.throughput)
    unreached = baseline.speed.seconds(trial.throughput) is None and baseline.speed.to_target
    return (
        f"baseline: trial {trial.number} ({setup}): {metric_name} {trial.metric:.4f} @ {speed}"
        + (" (no speedups: they need its time)" if unreached else "")
    )


def not_better_warning(view: StudyView, baseline: Baseline, trial: TrialRecord) -> str | None:
    """What to say about a trial that does not train better than the baseline: a warning for
    a worse model, a note for one within the noise; None otherwise."""
    versus = baseline.versus(trial)
    if not versus.not_better or baseline.trial is None:
        return None
    return (
        f"trial {trial.number}'s {one_line(view.metric_name)} {trial.metric:.4g} vs the baseline's "
        f"{baseline.trial.metric:.4g} (trial {baseline.trial.number}): "
        f"{_verdict(versus.worse, view.noise)}"
    )


def flag_lines(view: StudyView, baseline: Baseline, trials: Sequence[TrialRecord]) -> list[str]:
    """One line per verdict that some of `trials` get against the baseline (`!` worse by more
    than the noise, `≈` within it), naming them."""
    lines = []
    for worse in (True, False):
        marked = [
            str(t.number)
            for t in trials
            if baseline.versus(t).not_better and baseline.versus(t).worse is worse
        ]
        if marked:
            mark = "!" if worse else "≈"
            lines.append(f"{mark} {_verdict(worse, view.noise)}: trials {', '.join(marked)}")
    return lines


def speed_lines(view: StudyView, front: Sequence[TrialRecord]) -> list[str]:
    """The front's re-timed speeds (`tuner.remeasure`) and the points within their noise."""
    times = retimed(view)
    shown = [t for t in front if t.number in times and not t.is_baseline]
    if not shown:
        return []
    rounds = view.attrs.get(StudyAttr.FRONT_REMEASURE, {}).get("rounds")
    ranges = ", ".join(
        f"{t.number} {times[t.number].low:.2f}-{times[t.number].high:.2f}×" for t in shown
    )
    lines = [f"re-timed against the baseline in {rounds} interleaved rounds: {ranges}"]
    close = within_noise(view, list(front))
    if close:
        pairs = ", ".join(f"{faster} (vs {slower})" for faster, slower in close.items())
        lines.append(f"~ speed within the noise of the next slower front point: trials {pairs}")
    return lines


def _verdict(worse: bool, noise: float) -> str:
    if worse:
        within = f" by more than the noise ({noise:g})" if noise > 0 else ""
        return f"worse than the baseline{within}: a faster run to a worse model"
    if noise > 0:
        return f"within the noise ({noise:g}) of the baseline: as good, not measurably better"
    return "no better than the baseline"


def device_line(device: Any) -> str:
    if not device or not isinstance(device, dict):
        return "unknown device"
    threads = device.get("torch_threads")
    detail = f", {threads} thread{'s' if threads != 1 else ''}" if threads else ""
    return (
        f"{device.get('type')} ({device.get('name')}{detail}), torch {device.get('torch_version')}"
    )


_KNOB_COLUMNS = ("optimizer", "schedule", "batch", "precision", "compile", "clip", "other")


def trial_headers(view: StudyView) -> list[str]:
    """The columns of a front table, as `show` prints it and the app draws it."""
    return ["trial", view.metric_name, "Δ", view.speed.header, "speedup", *_KNOB_COLUMNS]


def trial_row(baseline: Baseline, trial: TrialRecord) -> list[str]:
    """One complete trial's cells under `trial_headers`."""
    knobs = knob_summary(trial)
    versus = baseline.versus(trial)
    return [
        f"{trial.number}{' (baseline)' if trial.is_baseline else ''}",
        f"{trial.metric:.4f}",
        delta_cell(versus),
        baseline.speed.cell(trial.throughput),
        speedup_cell(versus),
        *(knobs.get(column, "") for column in _KNOB_COLUMNS),
    ]


def trials_table(view: StudyView, trials: Sequence[TrialRecord]) -> str:
    baseline = baseline_of(view)
    return format_table(trial_headers(view), [trial_row(baseline, t) for t in trials])


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """Aligned columns; each cell on one line, with nothing a terminal would obey."""
    headers = [one_line(h) for h in headers]
    rows = [[one_line(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def failure_lines(view: StudyView) -> list[str]:
    """Failed and pruned trials by kind: a count, the first few reasons, how many more."""
    lines = []
    for kind, trials in sorted(view.failures().items()):
        lines.append(f"{one_line(kind)} ({len(trials)}):")
        lines += [
            f"  trial {t.number}: {one_line(t.attrs.get(TrialAttr.FAILURE_REASON, ''))}"
            for t in trials[:_REASONS_SHOWN]
        ]
        if len(trials) > _REASONS_SHOWN:
            lines.append(f"  ... and {len(trials) - _REASONS_SHOWN} more")
    return lines


def study_report(view: StudyView) -> str:
    """Everything `tuner show` prints, with nothing from the storage a terminal would obey."""
    return printable(_report(view))


def _report(view: StudyView) -> str:
    counts = view.state_counts()
    direction = view.direction.value
    objective = view.attrs.get(StudyAttr.OBJECTIVE, "?")
    lines = [
        one_line(
            f"study {view.name}: objective {objective}, "
            f"metric {view.metric_name} ({direction}) and {view.speed.describe(view.metric_name)}"
        ),
        f"storage: {one_line(masked(view.storage))}",
        f"device: {one_line(device_line(view.attrs.get(StudyAttr.DEVICE)))}",
        "trials: " + (", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none"),
    ]
    baseline = baseline_of(view)
    lines.append(one_line(baseline_line(baseline, view.metric_name)))
    front = view.front()
    if front:
        lines += ["", f"Pareto front ({len(front)} of {len(view.completed())} complete trials):"]
        lines.append(trials_table(view, front))
        lines.append(
            f"Δ: {one_line(view.metric_name)} gained over the baseline (+ is better); "
            + view.speed.speedup_note
        )
        lines += flag_lines(view, baseline, front)
        lines += speed_lines(view, front)
    groups = infeasible_groups(view)
    if groups:
        lines.append("")
        lines += [f"{why} (infeasible): trials {', '.join(map(str, n))}" for why, n in groups]
    failures = failure_lines(view)
    if failures:
        lines += ["", "failed or pruned:"] + [f"  {line}" for line in failures]
    dropped = view.attrs.get(StudyAttr.DROPPED)
    if isinstance(dropped, list) and dropped:
        lines += ["", "dropped (this device or workload cannot run them):"]
        lines += [
            "  " + one_line(f"{d.get('knob')}={d.get('value')}: {d.get('reason')}")
            for d in dropped
            if isinstance(d, dict)
        ]
    return "\n".join(lines)
