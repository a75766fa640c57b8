"""Multi-objective early stopping: which trials stop before their budget, and why.

Pure decisions over stored trial values (no torch, no Optuna): `policy` holds the spec's
settings, `keys` the performance key that says which trials share a speed, `rungs` the
asynchronous successive halving by non-dominated rank, and `fidelity` the asymmetric check
that stops a trial whose known speed already loses, whatever metric it would reach.
"""

from tuner.pruning.policy import Pruning

__all__ = ["Pruning"]
