"""`tuner run` in the terminal: a progress bar carrying the current front, then the report."""

from __future__ import annotations

import dataclasses
import signal
import sys
import warnings

import click
import optuna
from tqdm.std import tqdm

from tuner.interrupts import Interrupted
from tuner.lrfind import auto_notes
from tuner.report import study_report
from tuner.results import TrialRecord, metric_key, pareto_front, read_study, record_of
from tuner.runner import Prepared, prepare, prepare_worker, run_study
from tuner.spec import StudySpec
from tuner.targets import SpeedObjective
from tuner.workload import Direction


def run_with_progress(
    spec: StudySpec,
    *,
    n_trials: int | None,
    timeout_s: float | None,
    storage: str | None,
    seed: int | None,
    workers: int = 1,
    resume_command: str,
) -> None:
    """Apply command-line overrides (`storage` is a full URL), run the study with a live bar,
    print the report. `resume_command` is what the user typed, for the interrupt hint."""
    if storage:
        spec = dataclasses.replace(spec, storage=storage)
    if seed is not None:
        spec = dataclasses.replace(spec, seed=seed)
    _run(prepare(spec), n_trials, timeout_s, workers, resume_command)


def join_with_progress(
    name: str,
    url: str,
    *,
    n_trials: int | None,
    timeout_s: float | None,
    workers: int,
    resume_command: str,
) -> None:
    """`tuner worker`: join an existing study from its name and storage URL alone."""
    _run(prepare_worker(name, url), n_trials, timeout_s, workers, resume_command)


def _run(
    prepared: Prepared,
    n_trials: int | None,
    timeout_s: float | None,
    workers: int,
    resume_command: str,
) -> None:
    # TPE's `group` and metric names are marked experimental; a user can do nothing about it.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    spec = prepared.spec
    metric = prepared.workload.metric
    speed = spec.speed_objective
    for dropped in prepared.dropped:
        click.echo(f"dropped {dropped['knob']}={dropped['value']}: {dropped['reason']}", err=True)
    for note in auto_notes(prepared.lr_attrs):
        click.echo(note, err=True)

    records: list[TrialRecord] = []
    # Shown once the study is open, so an error opening the storage prints no empty bar.
    bar = tqdm(total=0, unit="trial", dynamic_ncols=True, file=sys.stderr, delay=3600)

    def on_start(study: optuna.Study, remaining: int) -> None:
        # The bar's front is the study's, trials of earlier runs and other workers included.
        records.extend(record_of(t) for t in study.get_trials(deepcopy=False))
        bar.reset(total=remaining)
        bar.set_description(f"{spec.name}")
        bar.delay = 0
        bar.refresh()
        if records:
            bar.set_postfix_str(front_summary(records, metric.name, metric.direction, speed))

    def on_trial(record: TrialRecord) -> None:
        records.append(record)
        bar.update(1)
        bar.set_postfix_str(front_summary(records, metric.name, metric.direction, speed))

    try:
        summary = run_study(
            prepared,
            n_trials=n_trials,
            timeout_s=timeout_s,
            workers=workers,
            on_start=on_start,
            on_trial=on_trial,
            on_remeasure=lambda: click.echo(
                f"\nre-timing the front against the baseline ({spec.remeasure_rounds} "
                "interleaved rounds)",
                err=True,
            ),
        )
    except KeyboardInterrupt as exc:
        bar.close()
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        click.echo(
            f"interrupted by {signal.Signals(signum).name}: running trials are stored as FAIL "
            f"(interrupted); run `{resume_command}` again to resume",
            err=True,
        )
        sys.exit(128 + signum)
    finally:
        bar.close()
    if summary.stopped_by_timeout:
        click.echo(f"stopped by the timeout after {summary.ran} trials", err=True)
    elif summary.ran == 0:
        click.echo(
            f"study {spec.name} already has {summary.total} trials; pass --n-trials to add more",
            err=True,
        )
    click.echo(study_report(read_study(summary.study, summary.storage)))


def front_summary(
    records: list[TrialRecord],
    metric_name: str,
    direction: Direction,
    speed: SpeedObjective | None = None,
) -> str:
    """One line: front size, the best-metric point and the fastest point (speed as the study
    scores it: samples/s, or seconds to the target)."""
    speed = speed or SpeedObjective()
    done = [r for r in records if r.state == "COMPLETE" and r.feasible]
    stopped = sum(r.state in ("FAIL", "PRUNED") for r in records)
    if not done:
        return f"no complete trial yet, {stopped} failed or pruned"
    front = pareto_front(done, direction)
    best = min(front, key=metric_key(direction))
    fastest = max(front, key=lambda r: r.throughput or 0.0)
    unit = " s" if speed.to_target else "/s"
    best_speed, fastest_speed = speed.cell(best.throughput), speed.cell(fastest.throughput)
    return (
        f"front {len(front)} | best {metric_name} {best.metric:.4g} @ {best_speed}{unit}"
        f" | fastest {fastest_speed}{unit} @ {fastest.metric:.4g} | failed/pruned {stopped}"
    )
