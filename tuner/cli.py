"""The `tuner` command. Each command parses, calls one library function and prints.

torch is imported only inside `run`, `worker`, `profile` and `lr-find`, so `--help`, `list`,
`show` and `export` answer at once.
A UserError becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import click

from tuner.cli_options import (
    finite,
    n_trials_option,
    storage_option,
    storage_url,
    study_ref,
    timeout_option,
    typed_command,
    user_errors,
    workers_option,
)
from tuner.errors import UserError
from tuner.pick import PICK_HELP


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tuner")
def cli() -> None:
    """Search how to train a PyTorch model: metric and throughput, as a Pareto front."""


@cli.command()
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False))
@n_trials_option
@timeout_option
@storage_option
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), help="Override the spec's seed.")
@workers_option
@user_errors
def run(
    spec_file: str,
    n_trials: int | None,
    timeout: float | None,
    storage: str | None,
    seed: int | None,
    workers: int,
) -> None:
    """Run (or resume) the study a spec file describes."""
    from tuner.spec import load_spec

    spec = load_spec(spec_file)  # a bad spec fails before torch is even imported
    from tuner.interrupts import deferred_interrupt

    with deferred_interrupt():  # a Ctrl-C inside torch's native start-up would abort
        from tuner.progress import run_with_progress

    run_with_progress(
        spec,
        n_trials=n_trials,
        timeout_s=timeout,
        storage=storage_url(storage) if storage else None,
        seed=seed,
        workers=workers,
        resume_command=typed_command(),
    )


@cli.command()
@click.argument("study")
@storage_option
@n_trials_option
@timeout_option
@workers_option
@user_errors
def worker(
    study: str, storage: str | None, n_trials: int | None, timeout: float | None, workers: int
) -> None:
    """Join an existing study and run its trials, from its name and storage alone.

    The spec and search space travel inside the study, so any machine that can reach the
    storage (PostgreSQL for several machines) and import the workload can add workers.
    """
    from tuner.interrupts import deferred_interrupt

    name, url = study_ref(study, storage)
    with deferred_interrupt():
        from tuner.progress import join_with_progress

    join_with_progress(
        name,
        url,
        n_trials=n_trials,
        timeout_s=timeout,
        workers=workers,
        resume_command=typed_command(),
    )


@cli.command()
@click.argument("study")
@storage_option
@user_errors
def show(study: str, storage: str | None) -> None:
    """Show a study's Pareto front, trial counts and failure reasons.

    STUDY is a spec file or a study name.
    """
    from tuner.report import study_report
    from tuner.results import read_study

    click.echo(study_report(read_study(*study_ref(study, storage))))


@cli.command(name="list")
@storage_option
@user_errors
def list_(storage: str | None) -> None:
    """List the studies in a storage."""
    from tuner.report import format_table
    from tuner.results import list_studies
    from tuner.storage import masked

    url = storage_url(storage)
    rows = [[s.name, str(s.n_trials), s.metric_name, s.objective] for s in list_studies(url)]
    if not rows:
        click.echo(f"no studies in {masked(url)}")
        return
    click.echo(format_table(["study", "trials", "metric", "objective"], rows))


@cli.command()
@click.argument("study")
@click.option(
    "--pick",
    "pick_text",
    default="fastest-within=0.5%",
    show_default=True,
    help=f"Which trial: {PICK_HELP}.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yaml", "json", "python"]),
    default="yaml",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of stdout.",
)
@storage_option
@user_errors
def export(study: str, pick_text: str, fmt: str, output: str | None, storage: str | None) -> None:
    """Export one trial's config as YAML, JSON or a runnable Python snippet.

    STUDY is a spec file or a study name. A pick whose metric is worse than the baseline's
    by more than the noise is exported with a warning on stderr.
    """
    from tuner.handoff import export_text, provenance_of
    from tuner.pick import parse_pick, select
    from tuner.relative import baseline_of
    from tuner.results import read_study

    view = read_study(*study_ref(study, storage))
    trial = select(view, parse_pick(pick_text, view.metric_name))
    note = provenance_of(view, trial).note
    if note:
        worse = baseline_of(view).versus(trial).worse
        click.echo(f"{'warning' if worse else 'note'}: {note}", err=True)
    text = export_text(view, trial, fmt)
    if output:
        try:
            Path(output).write_text(text)
        except OSError as exc:
            raise UserError(
                f"-o: cannot write {output}: {exc.strerror}; choose a file in a folder that exists"
            ) from None
        click.echo(f"wrote {output} (trial {trial.number})", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))


@cli.command()
@click.argument("study", required=False)
@click.option("--trial", type=click.IntRange(0), metavar="N", help="The trial of STUDY to profile.")
@click.option("--spec", "spec_file", type=click.Path(dir_okay=False), help="Instead of STUDY.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="With --spec.")
@click.option(
    "--steps",
    type=click.IntRange(1, 10_000),
    default=10,
    show_default=True,
    help="Steady optimizer steps to profile (as many again are timed without the profiler).",
)
@click.option("--trace", type=click.Path(dir_okay=False), help="Chrome trace JSON to write.")
@storage_option
@user_errors
def profile(
    study: str | None,
    trial: int | None,
    spec_file: str | None,
    config_file: str | None,
    steps: int,
    trace: str | None,
    storage: str | None,
) -> None:
    """Profile one config's training steps: where does the time go?

    Either STUDY --trial N (the trial's stored config; 0 is the baseline) or --spec SPEC
    --config FILE (a config from `tuner export`). Runs the warm-up steps, then profiles
    --steps optimizer steps; prints each phase's share of a step, a verdict with the knob to
    try, the top ops, and writes a Chrome trace (default: profile-STUDY-N.json here).
    """
    from tuner.profiling import format_profile, resolve_target, run_profile, trace_path

    where = study_ref(study, storage) if study is not None else None
    target = resolve_target(where, trial, spec_file, config_file, storage=storage is not None)
    click.echo(format_profile(run_profile(target, steps, trace_path(trace, target))))


@cli.command(name="lr-find")
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option(
    "--optimizer",
    type=click.Choice(["sgd", "adam", "adamw", "rmsprop"]),
    help="Optimizer to test, with the space's hyperparameters for it. Default: the baseline's.",
)
@click.option("--batch-size", type=click.IntRange(1, 2**20), help="Default: the baseline's.")
@click.option(
    "--precision", type=click.Choice(["fp32", "bf16", "fp16"]), help="Default: the baseline's."
)
@click.option(
    "--accumulation",
    type=click.IntRange(1, 64),
    metavar="N",
    help="Micro-batches per optimizer step. Default: the baseline's.",
)
@click.option(
    "--start-lr",
    type=click.FloatRange(0, 100, min_open=True),
    callback=finite("a learning rate"),
    metavar="X",
    help="The lr of the first step.  [default: 1e-7]",
)
@click.option(
    "--end-lr",
    type=click.FloatRange(0, 100, min_open=True),
    callback=finite("a learning rate"),
    metavar="X",
    help="The lr of the last step.  [default: 10]",
)
@click.option(
    "--iterations",
    type=click.IntRange(17, 100_000),
    metavar="N",
    help="Optimizer steps; the lr grows exponentially from --start-lr to --end-lr over them. "
    "Fewer steps bias the suggestion upward.  [default: 200]",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Loss-vs-lr PNG to write. Default: <study>-lr-<optimizer>.png next to SPEC.",
)
@storage_option
@user_errors
def lr_find(
    spec_file: str,
    optimizer: str | None,
    batch_size: int | None,
    precision: str | None,
    accumulation: int | None,
    start_lr: float | None,
    end_lr: float | None,
    iterations: int | None,
    plot: str | None,
    storage: str | None,
) -> None:
    """Run a learning-rate range test (torch-lr-finder) on SPEC's workload.

    Trains the baseline's model from its seeded initial weights while the lr grows from
    --start-lr to --end-lr, prints the suggested lr (the steepest loss descent) and the lr at
    the lowest loss, writes the loss-vs-lr plot, and stores the result in the study (creating
    it as `tuner run` would), where `lr = "auto"` in its space finds it. The suggestion
    centres a range: trained at, it may diverge.
    """
    import dataclasses

    from tuner.spec import load_spec

    spec = load_spec(spec_file)  # a bad spec fails before torch is even imported
    if storage:
        spec = dataclasses.replace(spec, storage=storage_url(storage))
    from tuner.interrupts import deferred_interrupt

    with deferred_interrupt():  # a Ctrl-C inside torch's native start-up would abort
        import torch  # noqa: F401

        from tuner.lrfind_command import LrFindRequest, format_report
        from tuner.lrfind_command import lr_find as run_lr_find

    request = LrFindRequest(
        optimizer, batch_size, precision, accumulation, start_lr, end_lr, iterations, plot
    )
    click.echo(format_report(run_lr_find(spec, request)))


@cli.command()
@storage_option
@click.option("--study", "study_name", metavar="NAME", help="Open this study's Pareto front.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; only this machine can connect unless you change it.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@user_errors
def app(storage: str | None, study_name: str | None, host: str, port: int) -> None:
    """Browse studies in the results app (Streamlit) in your web browser."""
    from tuner.app_server import serve

    serve(storage_url(storage), study_name, host=host, port=port)


def main() -> None:
    """The console script: click's own usage errors and Ctrl-C get tuner's one-line form.

    Click prints a usage block and exits 2 on a bad argument, and "Aborted!" with exit 1 on a
    Ctrl-C before a command starts (while torch imports, say); tuner promises one line,
    `error: <field>: <problem>; <fix>`, with exit 2, and 130 for an interrupt.
    """
    from tuner.interrupts import raise_on_stop_signals

    raise_on_stop_signals()
    try:
        code = cli.main(standalone_mode=False)
    except click.UsageError as exc:
        click.echo(f"error: {_usage_error(exc)}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort as exc:  # click turns a KeyboardInterrupt into Abort
        signum = getattr(exc.__context__, "signum", signal.SIGINT)
        click.echo(
            f"interrupted by {signal.Signals(signum).name} before anything was stored", err=True
        )
        sys.exit(128 + signum)
    sys.exit(code if isinstance(code, int) else 0)


def _usage_error(exc: click.UsageError) -> str:
    """`<field>: <problem>; see <command> --help`, from click's message."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    message = re.sub(r"^Invalid value for '[^']*': ", "", message)
    message = message[:1].lower() + message[1:]
    where = exc.ctx.command_path if exc.ctx is not None else "tuner"
    param = getattr(exc, "param", None)
    if isinstance(param, click.Argument):
        message = f"{param.human_readable_name}: {message}"
    elif isinstance(param, click.Option):
        message = f"{param.opts[0]}: {message}"
    return f"{message}; see `{where} --help`"
