"""Optuna's Tree-structured Parzen Estimator as a searcher and as the harness method ``"tpe"``.

Bergstra, Bardenet, Bengio & Kégl (2011) "Algorithms for Hyper-Parameter Optimization"; Optuna's
:class:`~optuna.samplers.TPESampler` with its default settings (10 random start-up trials,
independent per-parameter estimators), seeded with the run's seed. Each free entry of the cell is one
categorical parameter (:class:`~agents.baselines.peers.CategoricalEncoding`); the loop, the repeat rule
and the proposal cap are :class:`~agents.baselines.peers.AskTellSearcher`'s (docs/harness.md, "Peer
optimisers"):

* a proposed cell that is already known is told its known value (a complete trial) without spending
  budget;
* an invalid cell is told as a **pruned** trial without a value. TPE ranks pruned trials below every
  complete one, so they fall in its "bad" group and steer it away from invalid regions; a failed
  trial would instead be ignored, and the sampler would keep proposing the same invalid cells.

Needs the optional extra ``peers`` (``pip install "dgpo-env[peers]"``); importing this module without
it raises :class:`~agents.baselines.peers.MissingExtraError`. Optuna's per-trial INFO logs are kept
quiet during a run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from agents.baselines.peers import AskTellSearcher, CategoricalEncoding, MissingExtraError, Proposer
from agents.harness.registry import run_baseline

try:
    import optuna
    from optuna.distributions import BaseDistribution, CategoricalDistribution
    from optuna.samplers import TPESampler
    from optuna.trial import Trial, TrialState
except ImportError as err:
    raise MissingExtraError("tpe", "optuna") from err


class OptunaProposer(Proposer):
    """An in-memory Optuna study behind ask/tell, one categorical parameter per free entry.

    Args:
        encoding: The search space's parameters.
        study: The study (its sampler and directions); one direction per value told.
    """

    def __init__(self, encoding: CategoricalEncoding, study: optuna.Study) -> None:
        self._study = study
        self._distributions: dict[str, BaseDistribution] = {
            c.name: CategoricalDistribution(c.labels) for c in encoding.choices
        }
        self._trial: Trial | None = None

    def ask(self) -> Mapping[str, object]:
        """The next assignment the sampler proposes (a new trial)."""
        self._trial = self._study.ask(self._distributions)
        return self._trial.params

    def tell(self, value: float | Sequence[float] | None) -> None:
        """Report the last asked cell's value, or its objective vector for a multi-objective study.

        ``None`` (an invalid cell) is told as a pruned trial.
        """
        assert self._trial is not None, "tell() before ask()"
        if value is None:
            self._study.tell(self._trial, state=TrialState.PRUNED)
        else:
            self._study.tell(self._trial, value)
        self._trial = None


class TPESearch(AskTellSearcher):
    """Optuna's default :class:`~optuna.samplers.TPESampler` over the cell's free entries.

    Args:
        proposals_per_query: See :class:`~agents.baselines.base.Searcher`.
    """

    name = "tpe"
    logger_name = "optuna"

    def settings(self) -> dict[str, Any]:
        """Hyper-parameters (JSON-ready): the sampler (default settings) and Optuna's version."""
        return {**super().settings(), "sampler": "TPESampler (defaults)", "optuna": optuna.__version__}

    def _proposer(self, encoding: CategoricalEncoding, seed: int, max_queries: int) -> Proposer:
        return OptunaProposer(encoding, optuna.create_study(direction="maximize", sampler=TPESampler(seed=seed)))


run_tpe = partial(run_baseline, TPESearch)
"""The harness method ``"tpe"``: ``run_tpe(benchmark_kwargs, seed, max_queries, **options)`` runs
:class:`TPESearch` on a fresh benchmark (:func:`~agents.harness.registry.run_baseline`, docs/harness.md)."""


__all__ = ["OptunaProposer", "TPESearch", "run_tpe"]
