"""GPU outcome: the config a GPU study picks vs plain PyTorch defaults, re-measured; goal >= 5x.

Runs the GPU study (``studies/gpu.toml``: a built-in workload at ``size = "gpu"``) with tuner's
own runner (`tuner.runner.prepare`, `run_study`), then picks what ``tuner export`` picks by
default: the fastest complete, feasible trial whose metric is within 0.5% of the best metric,
relative and in the metric's direction (``fastest-within=0.5%``, `tuner.pick`). That config and
PyTorch's defaults (`tuner.config.DEFAULT_BASELINE`: Adam lr 1e-3, batch 32, constant schedule,
fp32, eager, num_workers 0) are then re-measured side by side in this process, in interleaved
rounds (the first rotating), each round one `tuner.harness.run_trial` per config with a steps
budget: the harness's own timing (median of windows after warm-up and compile) and peak memory
(CUDA max allocated, reset per trial).

Printed: the study's report with its Pareto front (`tuner.report.study_report`, what
``tuner show`` prints), the pick, each config's samples/s per round and median, its peak
memory, and the speedup (ratio of the median throughputs) against the goal.

Needs CUDA. Without it, it prints one line saying so and exits with status 2, as for a usage
error: nothing was measured, and a script checking the status must not take it for a result.
Status 0: it ran (whether the goal was met is printed); 1: the spec, workload or storage has a
problem (one line says which).
``--dry-run-cpu`` runs the same path on the CPU with the workload's small size, a few trials
of a tiny budget and two short rounds: it checks the logic; its figures mean nothing.

By default the study runs from scratch into a throwaway SQLite storage; ``--storage URL``
runs it there instead, resuming it, or only reading it back when it is already finished.

    python -m benchmarks.gpu_outcome [--spec studies/gpu.toml] [--storage URL] [--rounds 5]
        [--steps 200]
    python -m benchmarks.gpu_outcome --dry-run-cpu [--spec FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import torch

from benchmarks._rounds import rotated
from tuner.budget import Budget
from tuner.config import DEFAULT_BASELINE, TrialConfig
from tuner.errors import UserError
from tuner.harness import TrialFailure, TrialResult, run_trial
from tuner.pick import parse_pick, select
from tuner.relative import baseline_of
from tuner.report import knob_cells, study_report
from tuner.results import TrialRecord, knobs_of, read_study
from tuner.runner import prepare, run_study
from tuner.spec import StudySpec, load_spec, resolve_storage

SPEEDUP_GOAL = 5.0
PICK = "fastest-within=0.5%"
DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "studies" / "gpu.toml"
#: The dry run's study: a few trials, each a handful of steps, of the spec's space narrowed
#: to what a CPU trains in seconds (compiling alone takes minutes there, fp16 is 4-100x
#: slower, and it has two cores for workers).
DRY_TRIALS = 4
DRY_BUDGET = Budget(steps=4, evaluations=1, warmup_steps=2, windows=3, time_limit_s=60)
DRY_SPACE = """\
extends = {base}

[batch]
batch_size = [32, 64]
accumulation_steps = [1, 2]

[performance]
precision = ["fp32", "bf16"]
compile_mode = ["off"]

[data]
num_workers = [0, 2]
"""
#: The pick and the defaults, re-measured by `run_trial`, in this order in round 0.
SIDES = ("defaults", "picked")


def no_cuda_line() -> str:
    return (
        f"gpu_outcome: needs a CUDA GPU; torch sees none here (torch {torch.__version__}): "
        "not run (--dry-run-cpu runs the same path on the CPU)"
    )


def dry_run_spec(spec: StudySpec, scratch: Path) -> StudySpec:
    """`spec` shrunk to exercise the path on the CPU: small size, tiny budget, few trials,
    its space narrowed by a space file written into `scratch`."""
    space = scratch / "dry_run_space.toml"
    space.write_text(DRY_SPACE.format(base=json.dumps(spec.space)))  # a TOML basic string
    return dataclasses.replace(
        spec,
        space=str(space),
        size="small",
        device="cpu",
        n_trials=DRY_TRIALS,
        n_startup_trials=DRY_TRIALS,
        timeout_s=None,
        budget=DRY_BUDGET,
        memory_budget_mb=None,
    )


def on_trial(record: TrialRecord) -> None:
    """One line per finished trial, on stderr: the study can take a while."""
    figures = (
        f"{record.metric:.4f} @ {record.throughput:,.0f} samples/s"
        if record.metric is not None and record.throughput is not None
        else record.failure or ""
    )
    print(f"  trial {record.number}: {record.state.lower()} {figures}", file=sys.stderr)


def remeasure(
    configs: dict[str, TrialConfig],
    run: Callable[[TrialConfig, int], TrialResult],
    rounds: int,
) -> dict[str, list[TrialResult]]:
    """Each config's `run` results over interleaved rounds, the first side rotating; round r
    gives every config seed r."""
    names = list(configs)
    results: dict[str, list[TrialResult]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in rotated(names, round_):
            results[name].append(run(configs[name], round_))
    return results


def settle(device: torch.device) -> int:
    """Free what the last trial left (compiled graphs hold its model); the bytes still
    allocated on the device afterwards, which the next trial's CUDA peak includes."""
    torch._dynamo.reset()
    gc.collect()
    if device.type != "cuda":
        return 0
    torch.cuda.empty_cache()
    return int(torch.cuda.memory_allocated(device))


def memory_cell(results: list[TrialResult]) -> str:
    peaks = [r.peak_memory_bytes for r in results if r.peak_memory_bytes is not None]
    if not peaks:
        return "unknown"
    return f"{max(peaks) / 2**20:,.0f} MiB ({results[0].memory_kind})"


def describe(config: TrialConfig) -> str:
    """A config in the words of tuner's own tables."""
    cells = knob_cells(knobs_of(config.to_dict()))
    return ", ".join(
        cells[k] for k in ("optimizer", "schedule", "batch", "precision", "compile", "other")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="the GPU study's spec")
    parser.add_argument("--storage", help="run or read the study here (default: a temp SQLite)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved re-measure rounds")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per re-measure")
    parser.add_argument(
        "--dry-run-cpu",
        action="store_true",
        help="the same path on the CPU: small size, tiny budget, 2 rounds (checks the logic)",
    )
    args = parser.parse_args()
    if not args.dry_run_cpu and not torch.cuda.is_available():
        print(no_cuda_line())
        return 2
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    try:
        spec = load_spec(args.spec)
    except UserError as exc:
        print(f"gpu_outcome: {exc}")
        return 1
    # The study's warm-up (compile, cuDNN autotuning, worker start-up) and windows.
    budget = Budget(
        steps=args.steps,
        evaluations=1,
        warmup_steps=spec.budget.warmup_steps,
        windows=spec.budget.windows,
    )
    rounds = args.rounds
    with tempfile.TemporaryDirectory(prefix="gpu_outcome-") as scratch:
        if args.dry_run_cpu:
            spec = dry_run_spec(spec, Path(scratch))
            rounds, budget = 2, DRY_BUDGET
        storage = args.storage or f"sqlite:///{Path(scratch) / 'gpu_outcome.db'}"
        spec = dataclasses.replace(spec, storage=resolve_storage(storage, Path.cwd()))
        try:
            return outcome(spec, budget, rounds, args.dry_run_cpu)
        except UserError as exc:  # a workload, space or storage problem, in one line
            print(f"gpu_outcome: {exc}")
            return 1


def outcome(spec: StudySpec, budget: Budget, rounds: int, dry_run: bool) -> int:
    """The study, the pick, the interleaved re-measure and the printout."""
    # --- the study, through tuner's runner ------------------------------------------------
    prepared = prepare(spec)
    device = prepared.device
    if device.type != "cuda" and not dry_run:
        print(f"gpu_outcome: {spec.source} runs on {device} (device {spec.device!r}): not run")
        return 2
    print(
        f"gpu_outcome: study {spec.name} ({spec.objective}, size {spec.size}) on {device}, "
        f"{spec.n_trials} trials",
        file=sys.stderr,
    )
    run_study(prepared, on_trial=on_trial)
    view = read_study(spec.name, spec.storage)
    print(study_report(view))

    # --- the pick: fastest within 0.5% of the best metric ---------------------------------
    picked = select(view, parse_pick(PICK, view.metric_name))
    if picked.config is None:
        raise SystemExit(f"gpu_outcome: trial {picked.number} has no stored config")
    study_speedup = baseline_of(view).versus(picked).speedup
    print(
        f"\npick ({PICK}): trial {picked.number}, {view.metric_name} {picked.metric:.4f} @ "
        f"{picked.throughput:,.0f} samples/s in the study"
        + (f" ({study_speedup:.2f}x the study's baseline trial)" if study_speedup else "")
    )
    configs = {"defaults": DEFAULT_BASELINE, "picked": TrialConfig.from_dict(picked.config)}

    # --- re-measure side by side, in this process ------------------------------------------
    if spec.threads:
        torch.set_num_threads(spec.threads)  # as the study's trial workers ran, on any device
    leftover: list[int] = []

    def run(config: TrialConfig, seed: int) -> TrialResult:
        leftover.append(settle(device))
        return run_trial(prepared.workload, config, budget, device, seed)

    try:
        results = remeasure(configs, run, rounds)
    except TrialFailure as exc:  # e.g. out of memory beside this process's other state
        print(f"gpu_outcome: a re-measured trial failed: {exc}")
        return 1
    rates = {name: [r.throughput for r in results[name]] for name in SIDES}
    print(
        f"\nre-measured on {prepared.device_info.name} ({device}), torch {torch.__version__}: "
        f"{torch.get_num_threads()} torch thread(s); {rounds} interleaved rounds of run_trial, "
        f"budget steps={budget.steps} each"
    )
    for name in SIDES:
        print(
            f"  {name:>8}: {describe(configs[name])}\n"
            f"            median {statistics.median(rates[name]):11,.0f} samples/s, peak "
            f"memory {memory_cell(results[name])}; rounds: "
            + " ".join(f"{v:,.0f}" for v in rates[name])
        )
    if max(leftover) > 0:
        left = max(leftover) / 2**20
        print(f"  (the peaks include up to {left:,.0f} MiB left allocated between trials)")
    speedup = statistics.median(rates["picked"]) / statistics.median(rates["defaults"])
    per_round = statistics.median(
        p / d for p, d in zip(rates["picked"], rates["defaults"], strict=True)
    )
    verdict = "met" if speedup >= SPEEDUP_GOAL else "MISSED"
    print(
        f"speedup picked / PyTorch defaults: {speedup:.2f}x (median of per-round ratios "
        f"{per_round:.2f}x); goal >= {SPEEDUP_GOAL:g}x: {verdict}"
        + (" (dry run on the CPU: the figures mean nothing)" if dry_run else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
