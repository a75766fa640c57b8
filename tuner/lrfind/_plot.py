"""The loss-vs-lr plot, drawn by torch-lr-finder itself so its suggestion is exactly its own.

Drawn on a Figure with its own Agg canvas, never through pyplot's global state: nothing
opens a window, and a figure is not left behind in a long-lived process.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.lrfind._records import SKIP_END, SKIP_START, LrFindError, RangeTestResult
from tuner.space.auto_lr import ABOVE, BELOW

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def suggest(finder: Any) -> tuple[Figure, float]:
    """torch-lr-finder's plot of `finder`'s history and its suggestion: the lr of the
    steepest descent of the smoothed loss, the first SKIP_START and last SKIP_END steps left
    out (its defaults)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    with quiet():  # it prints the suggestion; tuner prints it itself
        _, suggested = finder.plot(
            skip_start=SKIP_START, skip_end=SKIP_END, ax=axes, suggest_lr=True
        )
    return figure, float(suggested)


def save_plot(figure: Figure, result: RangeTestResult, workload: str, path: Path) -> None:
    """Mark the minimum-loss lr and the range ``lr = "auto"`` would search, and write the PNG.

    Raises:
        LrFindError: the file cannot be written.
    """
    (axes,) = figure.axes
    suggested = result.suggested_lr
    axes.axvspan(
        suggested / BELOW,
        suggested * ABOVE,
        color="tab:green",
        alpha=0.15,
        label='lr = "auto" range',
    )
    axes.axvline(result.min_loss_lr, color="tab:gray", linestyle="--", label="min loss")
    if result.diverged_at is not None:
        axes.axvline(result.diverged_at, color="tab:red", linestyle=":", label="diverged")
    axes.legend()
    test = result.test
    axes.set_title(
        f"{workload}: {test.optimizer.name.value}, batch {test.batch_size} x "
        f"{test.accumulation_steps}, {test.precision.value}; suggested {suggested:.3g}",
        fontsize="medium",
    )
    try:
        figure.savefig(path, format="png", dpi=100)
    except OSError as exc:
        raise LrFindError(
            f"--plot: cannot write {path}: {exc.strerror}; choose a file in a folder that exists"
        ) from None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """torch-lr-finder prints a progress bar and remarks; tuner prints the result itself."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield
