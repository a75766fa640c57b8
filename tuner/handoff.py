"""One trial of a stored study as an export: what `tuner export` prints and the app downloads.

Both go through `export_text`, so a file downloaded from the app is byte-identical to the
command's output for the same trial and format.
"""

from __future__ import annotations

from tuner.attrs import TrialAttr
from tuner.config import TrialConfig
from tuner.errors import UserError
from tuner.export import ExportFormat, Provenance, render
from tuner.relative import baseline_of
from tuner.report import device_line, not_better_warning, number
from tuner.results import StudyView, TrialRecord


def provenance_of(view: StudyView, trial: TrialRecord) -> Provenance:
    """Where `trial` came from and how it compares with the study's baseline.

    The export states samples/s, so in a study that scores speed as time to a target (whose
    objective 1 is runs per hour) its throughput and speedup are the measured samples/s.
    """
    baseline = baseline_of(view)
    versus = baseline.versus(trial)
    throughput, speedup = trial.throughput, versus.speedup
    if view.speed.to_target:
        throughput = number(trial.attrs.get(TrialAttr.THROUGHPUT))
        base = None if baseline.trial is None else baseline.trial.attrs.get(TrialAttr.THROUGHPUT)
        base = number(base)
        speedup = throughput / base if throughput is not None and base else None
    return Provenance(
        study=view.name,
        trial=trial.number,
        metric_name=view.metric_name,
        metric=trial.metric,
        throughput=throughput,
        device=device_line(trial.attrs.get(TrialAttr.DEVICE)),
        baseline_trial=None if baseline.trial is None else baseline.trial.number,
        speedup=speedup,
        metric_delta=versus.delta,
        note=not_better_warning(view, baseline, trial) or baseline.note,
    )


def export_text(view: StudyView, trial: TrialRecord, fmt: ExportFormat | str) -> str:
    """The export of `trial` in `fmt`; a UserError if its stored config is not a valid one."""
    try:
        config = TrialConfig.from_dict(trial.attrs.get(TrialAttr.CONFIG))
    except UserError as exc:
        raise UserError(f"trial {trial.number}: its stored config is not valid: {exc}") from None
    return render(config, provenance_of(view, trial), fmt)
