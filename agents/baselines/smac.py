"""SMAC3's hyper-parameter-optimisation facade as a searcher and as the harness method ``"smac"``.

Lindauer, Eggensperger, Feurer, Biedenkapp, Deng, Benjamins, Ruhkopf, Sass & Hutter (2022) "SMAC3: A
Versatile Bayesian Optimization Package for Hyperparameter Optimization" (JMLR 23(54)).
:class:`smac.HyperparameterOptimizationFacade` with its defaults (a random-forest surrogate, expected
improvement, a Sobol initial design sized from the budget), used through ask/tell. Each free entry of
the cell is one categorical hyper-parameter (:class:`~agents.baselines.peers.CategoricalEncoding`);
the loop, the repeat rule and the proposal cap are :class:`~agents.baselines.peers.AskTellSearcher`'s
(docs/harness.md, "Peer optimisers"):

* SMAC minimises a cost: the validation *error* ``100 - accuracy`` (percent);
* a proposed cell that is already known is told its known cost without spending budget;
* an invalid cell is told as a **crashed** trial with cost :data:`INVALID_COST` (the scenario's crash
  cost): the worst possible error, so the surrogate learns to avoid invalid regions.

The scenario's ``n_trials`` is the query budget (SMAC sizes its initial design from it: at most a
quarter of it); the run's seed is the scenario's seed. The scenario is deterministic (a benchmark look-up
is noise-free), so SMAC evaluates each configuration once. SMAC keeps its run files in a temporary
directory removed at the end of the run (never a stale run to continue from); its log messages below
ERROR are kept quiet (on a small categorical space it routinely warns that it samples random
configurations), and its random forest runs in the calling thread (scikit-learn would start a thread
per core in every worker of the harness; the numbers are the same, the run about twice as fast).

Needs the optional extra ``peers`` (``pip install "dgpo-env[peers]"``; ``smac >= 2.4``, whose random
forest is scikit-learn's, so no ``pyrfr`` or SWIG build is needed); importing this module without it
raises :class:`~agents.baselines.peers.MissingExtraError`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

from agents.baselines.peers import AskTellSearcher, CategoricalEncoding, MissingExtraError, Proposer
from agents.harness.registry import run_baseline

try:
    import joblib
    from ConfigSpace import Categorical, ConfigurationSpace
    from smac import HyperparameterOptimizationFacade, Scenario
    from smac.runhistory import StatusType, TrialInfo, TrialValue
except ImportError as err:
    raise MissingExtraError("smac", "smac") from err

INVALID_COST = 100.0
"""SMAC's cost (validation error, percent) of an invalid cell: zero accuracy, the worst possible cost."""


class _SMACProposer(Proposer):
    """A SMAC3 HPO facade in ask/tell mode over the cell's categorical parameters."""

    def __init__(self, encoding: CategoricalEncoding, seed: int, max_queries: int) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="dgpo-smac-")
        try:
            space = ConfigurationSpace(seed=seed)
            space.add([Categorical(c.name, list(c.labels)) for c in encoding.choices])
            scenario = Scenario(
                space,
                output_directory=Path(self._directory.name),
                deterministic=True,
                crash_cost=INVALID_COST,
                n_trials=max_queries,
                seed=seed,
            )
            self._smac = HyperparameterOptimizationFacade(
                scenario, target_function=None, logging_level=False, overwrite=True
            )
        except BaseException:
            self._directory.cleanup()
            raise
        self._trial: TrialInfo | None = None

    def ask(self) -> Mapping[str, object] | None:
        try:
            self._trial = self._smac.ask()
        except StopIteration:  # SMAC has no configuration left to propose
            return None
        return dict(self._trial.config)

    def tell(self, value: float | None) -> None:
        assert self._trial is not None, "tell() before ask()"
        if value is None:
            outcome = TrialValue(cost=INVALID_COST, status=StatusType.CRASHED)
        else:
            outcome = TrialValue(cost=100.0 - value)
        self._smac.tell(self._trial, outcome, save=False)
        self._trial = None

    def close(self) -> None:
        self._directory.cleanup()


class SMACSearch(AskTellSearcher):
    """SMAC3's default HPO facade (random forest + expected improvement) over the cell's free entries.

    Args:
        proposals_per_query: See :class:`~agents.baselines.base.Searcher`.
    """

    name = "smac"
    logger_name = "smac"
    log_level = logging.ERROR  # its routine "sampling random configurations" warnings on small spaces

    @contextmanager
    def _run_context(self) -> Iterator[None]:
        """Quiet logs, and the random forest fitted in this thread (the harness's workers share the cores)."""
        with super()._run_context(), joblib.parallel_config(backend="sequential"):
            yield

    def settings(self) -> dict[str, Any]:
        """Hyper-parameters (JSON-ready): the facade (default settings) and SMAC's version."""
        return {**super().settings(), "facade": "HyperparameterOptimizationFacade (defaults)", "smac": version("smac")}

    def _proposer(self, encoding: CategoricalEncoding, seed: int, max_queries: int) -> Proposer:
        return _SMACProposer(encoding, seed, max_queries)


run_smac = partial(run_baseline, SMACSearch)
"""The harness method ``"smac"``: ``run_smac(benchmark_kwargs, seed, max_queries, **options)`` runs
:class:`SMACSearch` on a fresh benchmark (:func:`~agents.harness.registry.run_baseline`, docs/harness.md)."""


__all__ = ["INVALID_COST", "SMACSearch", "run_smac"]
