"""``lr = "auto"``: an optimizer's lr range centred on a learning-rate range test.

A space file may write ``lr = "auto"`` in an optimizer's table (``[optimizer.sgd]``), or once
under ``[optimizer]`` for every optimizer without an lr of its own. Where a study is prepared
(`tuner.runner.prepare`, through `tuner.lrfind.resolve_space`), each such lr becomes the
log-uniform range ``[s / BELOW, s * ABOVE]`` around the suggestion ``s`` of a range test
(Smith 2017, "Cyclical Learning Rates for Training Neural Networks", section 3.3): the lr of
the steepest loss descent while the lr grows exponentially over a short run.

Why that span: the suggestion marks where a short run at a rising lr learns fastest, which
lies near the top of what a full run tolerates. On the digits workload (10 epochs at the
finder's batch 32, two seeds each, constant and cosine schedules; s is the default 200-step
test's median suggestion over six seeds, 0.225 for the quick space's SGD and 0.0044 for its
AdamW), validation accuracy was:

=========  ===========  ===========  ===========  ===========  ==================
optimizer  s/30         s/10         s/3          s            2s / 3s
=========  ===========  ===========  ===========  ===========  ==================
sgd        0.80-0.93    0.96-0.97    0.97-0.99    0.95-0.98    0.10 (no learning)
adamw      0.91-0.93    0.96         0.97-0.99    0.98-0.99    0.97-0.99
=========  ===========  ===========  ===========  ===========  ==================

So the range reaches 10x below ``s``, where both still train, and 3x above it, which SGD at
the finder's small batch cannot use but the larger effective batches a study searches can (a
bigger batch takes a larger lr: `tuner.batch_scaling`), and AdamW can. Its log centre, s/1.8,
lies between the two optima (s/3 and s). It is 1.5 decades wide: the suggestion itself moved
2.5x between seeds, and a blind range (the default space's) spans 2 to 2.5 decades.

The stored space is always concrete: ``"auto"`` is resolved before the study is created and
never reaches Optuna. `load_space` refuses a space with ``"auto"`` (it has no workload to test),
so only the preparation of a study resolves one. This module does no range test itself and
imports no torch: `tuner.lrfind` runs the test and calls `AutoSpace.resolve` with its results.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuner.batch_scaling import LrScaling, lr_factor, resolve_rule
from tuner.config import OptimizerName
from tuner.space.parse import parse_space
from tuner.space.schema import Branch, FloatRange, SearchSpace, Source

#: The marker a space file writes instead of an lr.
AUTO = "auto"
#: The range around the suggestion s is [s / BELOW, s * ABOVE]; the module docstring says why.
BELOW = 10.0
ABOVE = 3.0
#: The largest lr a space may hold (the lr domain of `tuner.space.parse`).
_LR_MAX = 100.0
#: Stands in for "auto" while the rest of the space is validated; never stored or sampled.
_PLACEHOLDER = 1e-3


def auto_paths(raw: Any) -> tuple[str, ...]:
    """The dotted paths of a raw (merged) space that hold ``"auto"`` as an lr.

    Example:
        >>> auto_paths({"optimizer": {"sgd": {"lr": "auto"}, "adam": {"lr": 0.001}}})
        ('optimizer.sgd.lr',)
    """
    table = _optimizer_table(raw)
    paths = ["optimizer.lr"] if _is_auto(table.get("lr")) else []
    for name, own in _own_tables(table).items():
        if _is_auto(own.get("lr")):
            paths.append(f"optimizer.{name}.lr")
    return tuple(paths)


def reject_auto(raw: Any, source: Source) -> None:
    """Refuse ``"auto"`` where nothing can resolve it (`load_space` has no workload to test).

    Raises:
        SpaceError: naming the first ``"auto"`` and the two ways out.
    """
    paths = auto_paths(raw)
    if paths:
        raise source.error(
            paths[0],
            '"auto" needs a learning-rate range test on the study\'s workload, which `tuner run` '
            "(tuner.runner.prepare) runs when it creates the study; load_space cannot: write a "
            "number or a range here, or prepare the study",
        )


@dataclass(frozen=True)
class AutoSpace:
    """A space file whose optimizers' lr may be ``"auto"``, validated but not yet resolved.

    Attributes:
        space: The space with a placeholder lr where the file says ``"auto"``: every other knob
            is final, so the range test can build each optimizer as a trial would (`branch`).
            Never store or sample it; `resolve` gives the real one.
        auto: The chosen optimizers whose lr is ``"auto"``, in the space's order.
    """

    space: SearchSpace
    auto: tuple[str, ...]
    raw: Mapping[str, Any]
    source: Source

    @classmethod
    def parse(cls, raw: Any, source: Source) -> AutoSpace:
        """Validate a raw (merged) space that may hold ``"auto"`` lrs.

        Raises:
            SpaceError: any invalid field, or a shared ``[optimizer] lr = "auto"`` that every
                chosen optimizer overrides with an lr of its own (it would silently do nothing).
        """
        placeholders = _replaced(raw, {}, _PLACEHOLDER)
        space = parse_space(placeholders, source)
        table = _optimizer_table(raw)
        own = _own_tables(table)
        auto = tuple(
            branch.name
            for branch in space.optimizers
            if _is_auto(own.get(branch.name, {}).get("lr", table.get("lr")))
        )
        if _is_auto(table.get("lr")) and not any(
            "lr" not in own.get(branch.name, {}) for branch in space.optimizers
        ):
            raise source.error(
                "optimizer.lr",
                '"auto" applies to no optimizer: each chosen one has an lr in its own table, '
                'which wins; write lr = "auto" in those tables instead',
            )
        return cls(space, auto, raw, source)

    def branch(self, name: str) -> Branch:
        """The optimizer `name` as the space has it, or with its defaults where the space does
        not choose it (a range test may be asked for any optimizer)."""
        for branch in self.space.optimizers:
            if branch.name == name:
                return branch
        defaults = parse_space({"optimizer": {"choices": name}}, Source("defaults"))
        return defaults.optimizers[0]

    def resolve(self, ranges: Mapping[str, FloatRange]) -> SearchSpace:
        """The concrete space: each ``"auto"`` optimizer's lr replaced by its range.

        Raises:
            ValueError: `ranges` lacks an optimizer of `auto` (a bug in the caller).
            SpaceError: never for ranges from `auto_range`, which lie in the lr domain.
        """
        missing = [name for name in self.auto if name not in ranges]
        if missing:
            raise ValueError(f"no lr range for the auto optimizer(s) {', '.join(missing)}")
        return parse_space(_replaced(self.raw, ranges, _PLACEHOLDER), self.source)


def auto_range(
    suggested: float, effective_batch: int, optimizer: str, space: SearchSpace
) -> FloatRange:
    """The log-uniform lr range ``"auto"`` stands for, around a range test's suggestion.

    The test ran at `effective_batch`. Where the space scales each trial's lr with its
    effective batch (``[batch] lr_scaling``), its lr ranges are stated for the reference
    batch, so the suggestion is first carried there by the same rule.

    Example:
        >>> from tuner.space import load_space
        >>> auto_range(0.5, 32, "sgd", load_space("quick"))
        FloatRange(low=0.05, high=1.5, log=True)
    """
    rule = resolve_rule(space.lr_scaling, OptimizerName(optimizer))
    at_reference = suggested
    if rule is not LrScaling.OFF:
        at_reference = suggested / lr_factor(rule, effective_batch, space.reference_batch)
    if at_reference * ABOVE > _LR_MAX:  # the range keeps its width below the cap
        return FloatRange(_LR_MAX / (ABOVE * BELOW), _LR_MAX, log=True)
    return FloatRange(at_reference / BELOW, at_reference * ABOVE, log=True)


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value == AUTO


def _optimizer_table(raw: Any) -> Mapping[str, Any]:
    table = raw.get("optimizer") if isinstance(raw, Mapping) else None
    return table if isinstance(table, Mapping) else {}


def _own_tables(table: Mapping[str, Any]) -> dict[str, Any]:
    """The optimizers' own tables (``[optimizer.sgd]``); what else the table holds is parse's."""
    names = {name.value for name in OptimizerName}
    return {name: own for name, own in table.items() if name in names and isinstance(own, Mapping)}


def _replaced(raw: Any, ranges: Mapping[str, FloatRange], placeholder: float) -> Any:
    """A copy of `raw` with each optimizer in `ranges` given its range as its own lr, and every
    other ``"auto"`` the placeholder. A shared ``"auto"`` stays a placeholder: what it applied
    to now has its own lr, and to_dict stores only the chosen optimizers' own values."""
    if not auto_paths(raw):
        return raw
    raw = copy.deepcopy(raw)
    table = raw["optimizer"]
    if _is_auto(table.get("lr")):
        table["lr"] = placeholder
    for own in _own_tables(table).values():
        if _is_auto(own.get("lr")):
            own["lr"] = placeholder
    for name, lr_range in ranges.items():
        table.setdefault(name, {})["lr"] = lr_range.to_raw()
    return raw
