"""Range-test results in a study's storage: read without creating anything, written into a
study made exactly as `tuner run` makes it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.attrs import StudyAttr
from tuner.errors import StorageLost
from tuner.lrfind._records import RangeTestResult
from tuner.spec import StudySpec
from tuner.storage import masked, open_storage, sqlite_path

if TYPE_CHECKING:
    import optuna

_JOURNAL = "journal:"


def complete_study(spec: StudySpec) -> optuna.Study | None:
    """The spec's study, if its storage holds one that finished being created; never creates
    a storage (a missing SQLite or journal file means no study yet)."""
    import optuna

    url = spec.storage
    file = sqlite_path(url)
    if file is None and url.startswith(_JOURNAL):
        file = Path(url[len(_JOURNAL) :])
    if file is not None and not file.is_file():
        return None
    with storage_errors(url):
        try:
            study = optuna.load_study(study_name=spec.name, storage=open_storage(url, create=False))
        except KeyError:
            return None
        return study if study.user_attrs.get(StudyAttr.CREATED) else None


def stored_results(study: optuna.Study) -> dict[str, RangeTestResult]:
    """The study's range-test results by optimizer; a record that cannot be read is skipped."""
    stored = study.user_attrs.get(StudyAttr.LR_FIND)
    results: dict[str, RangeTestResult] = {}
    if isinstance(stored, dict):
        for name, record in stored.items():
            result = RangeTestResult.from_dict(record)
            if result is not None and result.test.optimizer.name.value == name:
                results[name] = result
    return results


def record_result(study: optuna.Study, result: RangeTestResult) -> None:
    """Store `result` as the study's latest range test of its optimizer."""
    stored = study.user_attrs.get(StudyAttr.LR_FIND)
    merged = dict(stored) if isinstance(stored, dict) else {}
    merged[result.test.optimizer.name.value] = result.to_dict()
    study.set_user_attr(StudyAttr.LR_FIND, merged)


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """A storage that fails mid-command is one line (exit 1), as in `tuner run`."""
    import optuna
    import sqlalchemy.exc

    try:
        yield
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as exc:
        cause = getattr(exc, "orig", None) or exc
        detail = masked(" ".join(f"{type(cause).__name__}: {cause}".split()))[:200]
        raise StorageLost(
            f"storage: lost {masked(url)} ({detail}); run the same "
            "command again when the storage is back"
        ) from None
