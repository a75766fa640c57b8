"""Names of everything tuner stores in Optuna, defined once.

The storage is the only channel between the runner and every reader (CLI, app, export), so
these names are the schema of a study. The README's "What is stored" section documents them.
"""

from __future__ import annotations

from enum import StrEnum


class TrialAttr(StrEnum):
    """User attributes set on every trial."""

    CONFIG = "config"  # TrialConfig.to_dict(): every knob, fixed ones included
    SEED = "seed"  # seed of model init and data order
    DEVICE = "device"  # DeviceInfo as a dict
    METRIC = "metric"  # final validation metric (also objective 0)
    THROUGHPUT = "throughput"  # median steady-state samples/s (also objective 1)
    THROUGHPUT_WINDOWS = "throughput_windows"  # samples/s of every timed window
    COMPILE_S = "compile_s"  # seconds spent in the first (compiling) steps beyond a warm step
    WARMUP_S = "warmup_s"  # seconds of untimed warm-up steps, compile included
    LOADER_STARTUP_S = "loader_startup_s"  # DataLoader start to first batch; None for tensors
    PEAK_MEMORY_BYTES = "peak_memory_bytes"  # see MEMORY_KIND for what was measured
    MEMORY_KIND = "memory_kind"  # "cuda_max_allocated" or "cpu_peak_rss"
    TRAIN_S = "train_s"  # wall seconds of the training loop, evaluations excluded
    TRIAL_S = "trial_s"  # wall seconds of the whole trial, data and model set-up included
    OPTIMIZER_STEPS = "optimizer_steps"
    SAMPLES = "samples"  # training samples seen (micro-batches x batch size)
    #: speed = "time_to_target": timed seconds to first reach the target (tuner.targets), or
    #: None when it never did; objective 1 is then 3600 / this, or 0
    TIME_TO_TARGET_S = "time_to_target_s"
    CURVE = "curve"  # [{step, samples, wall_s, metric}] after each evaluation
    FAILURE_KIND = "failure_kind"  # FailureKind value, for FAIL and PRUNED trials
    FAILURE_REASON = "failure_reason"  # one line
    BASELINE = "baseline"  # True on the study's baseline trial (plain PyTorch defaults)
    OWNER = "owner"  # {host, pid, start}: the runner process that asked for the trial
    STDERR_TAIL = "stderr_tail"  # last lines the trial's worker process wrote, on a crash
    WORKER_RSS_BYTES = "worker_rss_bytes"  # resident memory of the worker after the trial
    PERF_KEY = "perf_key"  # tuner.pruning.keys.performance_key of the config
    RUNGS = "rungs"  # {evaluation: [metric, throughput]} at each checkpoint judged
    KEY_THROUGHPUT = "key_throughput"  # samples/s known for the perf key before training
    PREDICTED_PEAK_MEMORY_BYTES = "predicted_peak_memory_bytes"  # the memory model's guess


class StudyAttr(StrEnum):
    """User attributes set once on every study, so a worker needs nothing but the storage."""

    SPEC = "spec"  # the study spec as a dict
    SPACE = "space"  # the search space after hardware restriction, as a dict
    DROPPED = "dropped"  # [{knob, value, reason}] removed by hardware awareness
    OBJECTIVE = "objective"  # workload reference
    METRIC_NAME = "metric_name"
    METRIC_DIRECTION = "metric_direction"
    METRIC_NOISE = "metric_noise"  # metric differences at or below this are not real
    DEVICE = "device"  # device of the run that created the study
    METRIC_FLOOR = "metric_floor"  # a final metric not beyond this by the noise is infeasible
    SPEED = "speed"  # {objective: "throughput" | "time_to_target", target}: what objective 1 is
    FRONT_REMEASURE = "front_remeasure"  # the final front's throughput, re-timed vs baseline
    LR_FIND = "lr_find"  # {optimizer: range-test record} (tuner.lrfind), the latest of each
    AUTO_LR = "auto_lr"  # {optimizer: {low, high, suggested_lr, found}}: what lr = "auto" became
    TUNER_VERSION = "tuner_version"
    CREATED = "created"  # set last: a study without it was killed while being created


class FailureKind(StrEnum):
    """Why a trial did not produce a result. STOPPED, UNSUPPORTED, TOO_SLOW, OUT_OF_MEMORY
    and DIVERGED end as PRUNED (the configuration is valid but cannot run here, in time, in
    memory or in its precision, or cannot reach the front), the last two with a constraint
    the sampler learns from; the rest as FAIL."""

    STOPPED = "stopped"  # stopped early: dominated at a rung or on speed

    DIVERGED = "diverged"  # NaN or Inf loss
    OUT_OF_MEMORY = "out_of_memory"
    COMPILE_ERROR = "compile_error"
    UNSUPPORTED = "unsupported"  # the device or torch cannot run this combination
    TOO_SLOW = "too_slow"  # projected or actual trial time past budget.time_limit_s
    UNMEASURABLE = "unmeasurable"  # too few steps to time honestly; no fake number is stored
    INTERRUPTED = "interrupted"  # SIGINT, SIGTERM or SIGHUP stopped the run mid-trial
    CRASHED = "crashed"  # the trial's worker process died: a signal or an exit code
    LOST = "lost"  # the runner that owned the trial died (kill -9, power loss)
    SURPLUS = "surplus"  # asked for after the study reached n_trials; nothing ran
    ERROR = "error"  # anything else: the exception's type and message


#: Failures that say nothing about the configuration: the trial never got its chance, so it
#: does not count toward n_trials and a re-run tries again.
DEAD_KINDS = frozenset({FailureKind.INTERRUPTED, FailureKind.LOST, FailureKind.SURPLUS})
