"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural
Networks", section 3.3), run by torch-lr-finder on a study's workload.

`tuner lr-find` runs one test, plots it and stores it in the study (`lr_find`); ``lr = "auto"``
in a space file (`tuner.space.auto_lr`) becomes a range around a test's suggestion when a
study is prepared (`resolve_space`). torch and torch-lr-finder are imported only when a test
runs, so importing this package is cheap.

Example::

    from tuner.lrfind_command import LrFindRequest, format_report, lr_find
    from tuner.spec import load_spec

    report = lr_find(load_spec("studies/quick.toml"), LrFindRequest(optimizer="sgd"))
    print(format_report(report))
"""

from __future__ import annotations

from tuner.lrfind._records import (
    DEFAULT_END_LR,
    DEFAULT_ITERATIONS,
    DEFAULT_START_LR,
    LrFindError,
    RangeTest,
    RangeTestFailed,
    RangeTestResult,
    representative_optimizer,
)
from tuner.lrfind._resolve import (
    ResolvedSpace,
    auto_notes,
    load_auto_space,
    planned_test,
    resolve_space,
)
from tuner.lrfind._run import run_range_test
from tuner.lrfind._store import complete_study, record_result, storage_errors, stored_results

__all__ = [
    "DEFAULT_END_LR",
    "DEFAULT_ITERATIONS",
    "DEFAULT_START_LR",
    "LrFindError",
    "RangeTest",
    "RangeTestFailed",
    "RangeTestResult",
    "ResolvedSpace",
    "auto_notes",
    "complete_study",
    "load_auto_space",
    "planned_test",
    "record_result",
    "representative_optimizer",
    "resolve_space",
    "run_range_test",
    "storage_errors",
    "stored_results",
]
