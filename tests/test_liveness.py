"""Owners, heartbeats and the sweep that fails trials of dead runners, on real storages."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tuner import liveness
from tuner.attrs import FailureKind, TrialAttr
from tuner.liveness import Heartbeat, Owner, counts
from tuner.results import read_study
from tuner.storage import open_storage


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_an_owner_is_gone_only_when_this_process_can_tell() -> None:
    me = Owner.current()
    assert not me.is_gone()
    dead = dataclasses.replace(me, pid=_dead_pid())
    assert dead.is_gone()
    assert dataclasses.replace(me, start="1").is_gone()  # the pid now belongs to another process
    # Another machine, another container's pid numbering, or an owner from before pid spaces
    # were recorded: only the heartbeat can tell.
    assert not dataclasses.replace(dead, host="elsewhere").is_gone()
    assert not dataclasses.replace(dead, pids="other-boot/4026531836").is_gone()
    assert not dataclasses.replace(dead, pids="").is_gone()


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> optuna.storages.BaseStorage:
    monkeypatch.setenv("TUNER_HEARTBEAT_S", "1")
    beats = (liveness.heartbeat_s(), liveness.grace_s())
    return open_storage(f"sqlite:///{tmp_path / 's.db'}", create=True, heartbeat=beats)


def test_the_sweep_fails_dead_and_silent_trials_and_keeps_live_ones(
    storage: optuna.storages.BaseStorage,
) -> None:
    study = optuna.create_study(study_name="s", storage=storage, directions=["maximize"] * 2)
    live, dead, silent, beating = (study.ask() for _ in range(4))
    live.set_user_attr(TrialAttr.OWNER, Owner.current().to_dict())
    dead.set_user_attr(
        TrialAttr.OWNER, dataclasses.replace(Owner.current(), pid=_dead_pid()).to_dict()
    )
    silent.set_user_attr(TrialAttr.OWNER, {**Owner.current().to_dict(), "host": "elsewhere"})
    storage.record_heartbeat(silent._trial_id)  # type: ignore[attr-defined]
    assert liveness.sweep(study, storage) == [dead.number]
    errors: list[BaseException] = []
    with Heartbeat(storage, beating._trial_id, on_error=errors.append):
        beating.set_user_attr(TrialAttr.OWNER, {**Owner.current().to_dict(), "host": "far"})
        time.sleep(liveness.grace_s() + 1.5)  # silent's heartbeat goes stale; beating's not
        assert liveness.sweep(study, storage) == [silent.number]
    assert errors == []
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states == {
        live.number: TrialState.RUNNING,
        dead.number: TrialState.FAIL,
        silent.number: TrialState.FAIL,
        beating.number: TrialState.RUNNING,
    }
    reasons = {t.number: t.user_attrs.get(TrialAttr.FAILURE_REASON) for t in study.trials}
    assert "is gone" in str(reasons[dead.number])
    assert "no heartbeat for 3 s" in str(reasons[silent.number])
    assert liveness.sweep(study, storage) == []  # nothing is failed twice


def test_only_trials_with_a_result_or_running_count_toward_n_trials(
    storage: optuna.storages.BaseStorage,
) -> None:
    study = optuna.create_study(study_name="s", storage=storage, directions=["maximize"] * 2)
    study.enqueue_trial({})
    study.tell(study.ask(), [1.0, 2.0])
    running = study.ask()
    for kind in (*FailureKind,):
        trial = study.ask()
        trial.set_user_attr(TrialAttr.FAILURE_KIND, kind.value)
        study.tell(trial, state=TrialState.FAIL)
    unexplained = study.ask()
    study.tell(unexplained, state=TrialState.FAIL)  # failed by someone else's optimize()
    trials = study.get_trials(deepcopy=False)
    counted = {t.number for t in trials if counts(t)}
    dead = {FailureKind.INTERRUPTED, FailureKind.LOST, FailureKind.SURPLUS}
    assert len(counted) == 2 + len(FailureKind) - len(dead)  # complete, running, real failures
    assert running.number in counted and unexplained.number not in counted


def test_a_lost_kind_left_on_a_complete_trial_by_a_racing_sweep_is_not_a_failure(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url, directions=["maximize"] * 2)
    study.set_metric_names(["accuracy", "throughput"])
    trial = study.ask()
    trial.set_user_attr(TrialAttr.FAILURE_KIND, FailureKind.LOST.value)  # the sweep's first write
    study.tell(trial, [0.9, 100.0])  # the owner's tell wins the race
    assert read_study("s", url).failures() == {}
