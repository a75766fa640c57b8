"""The options and helpers the `tuner` commands share. Torch-free, like `tuner.cli`."""

from __future__ import annotations

import functools
import math
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from tuner.errors import UserError

_F = TypeVar("_F", bound=Callable[..., Any])


def user_errors(command: _F) -> _F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


storage_option = click.option(
    "--storage",
    metavar="URL",
    help="Optuna storage URL (sqlite:///file.db, postgresql://..., journal:file.log). "
    "Default: studies/tuner.db in the current folder (for a spec with a storage key, that).",
)


def storage_url(storage: str | None) -> str:
    """--storage as a full URL (a relative SQLite path is relative to the working directory);
    without it, the default storage."""
    from tuner.spec import resolve_storage

    return resolve_storage(storage or None, Path.cwd())


def study_ref(study: str, storage: str | None) -> tuple[str, str]:
    """STUDY is a spec file (name and storage come from it) or a study name."""
    from tuner.spec import load_spec

    if study.endswith(".toml"):
        spec = load_spec(study)
        return spec.name, storage_url(storage) if storage else spec.storage
    return study, storage_url(storage)


workers_option = click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Trials run at once, each in its own worker process. On a CPU the cores are split "
    "between them; with several GPUs each takes one.",
)
n_trials_option = click.option(
    "--n-trials",
    type=click.IntRange(1, 10**6),
    help="Trials with a result the study should have in total (all workers together).",
)


def finite(what: str) -> Callable[[click.Context, click.Parameter, float | None], float | None]:
    """A click callback refusing nan and infinities: click's FloatRange lets nan through
    (every comparison with nan is false). `what` names the value in the message."""

    def check(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise click.BadParameter(f"{value} is not {what}", ctx, param)
        return value

    return check


timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0, max=10**7, min_open=True),
    callback=finite("a number of seconds"),
    help="Stop starting new trials after this many seconds.",
)


def typed_command() -> str:
    """What the user typed, for the hint that says how to resume."""
    return " ".join(shlex.quote(arg) for arg in ["tuner", *sys.argv[1:]])
