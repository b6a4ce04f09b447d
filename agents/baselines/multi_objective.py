"""Optuna's multi-objective samplers as searchers and as the harness methods ``"nsga2"`` and ``"motpe"``.

* ``"nsga2"``: :class:`~optuna.samplers.NSGAIISampler` with its defaults (Deb et al. 2002: population
  of 50, non-dominated sorting and crowding distance, uniform crossover).
* ``"motpe"``: :class:`~optuna.samplers.TPESampler` with its defaults on a study with several
  directions, which Optuna runs as multi-objective TPE (Ozaki et al. 2020, 2022).

Both are seeded with the run's seed and optimise the objectives of the run spec
(``benchmark_kwargs["objectives"]``, :data:`dgpo_env.rewards.METRICS`: accuracy maximised, costs
minimised). The loop and its rules are :class:`~agents.baselines.peers.AskTellSearcher`'s: a repeated
cell is told its known objectives without spending budget, an invalid cell is a pruned trial, and
proposals are capped. The objectives of a looked-up cell come with its look-up (no extra query).

Needs the optional extra ``peers`` (``pip install "dgpo-env[peers]"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents.baselines.base import PROPOSALS_PER_QUERY, SearchResult
from agents.baselines.peers import AskTellSearcher, CategoricalEncoding, MissingExtraError, Proposer
from agents.harness.registry import build_benchmark, objectives_of
from dgpo_env.benchmarks.base import CellResult
from dgpo_env.rewards import check_metric, objective_vector

try:
    import optuna
    from optuna.samplers import BaseSampler, NSGAIISampler, TPESampler
    from optuna.study import StudyDirection

    from agents.baselines.tpe import OptunaProposer
except ImportError as err:
    raise MissingExtraError("nsga2/motpe", "optuna") from err


class MultiObjectiveSearch(AskTellSearcher):
    """An Optuna multi-objective sampler over the cell's free entries (see the module docstring).

    Args:
        objectives: At least two metric names of :data:`dgpo_env.rewards.METRICS`.
        sampler: ``"nsga2"`` or ``"motpe"``.
        proposals_per_query: See :class:`~agents.baselines.base.Searcher`.

    Raises:
        ValueError: For fewer than two or unknown objectives, or an unknown sampler.
    """

    logger_name = "optuna"
    SAMPLERS: tuple[str, ...] = ("nsga2", "motpe")

    def __init__(self, objectives: Sequence[str], sampler: str, proposals_per_query: int = PROPOSALS_PER_QUERY) -> None:
        super().__init__(proposals_per_query)
        self.metrics = tuple(check_metric(name) for name in objectives)
        if len(self.metrics) < 2:
            raise ValueError(f"a multi-objective search needs at least two objectives, got {list(objectives)}")
        if sampler not in self.SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(self.SAMPLERS)}")
        self.sampler = sampler
        self.name = sampler

    def settings(self) -> dict[str, Any]:
        """Hyper-parameters (JSON-ready): the sampler (default settings), objectives, Optuna's version."""
        kind = "NSGAIISampler" if self.sampler == "nsga2" else "TPESampler"
        return {
            **super().settings(),
            "sampler": f"{kind} (defaults)",
            "objectives": [m.name for m in self.metrics],
            "optuna": optuna.__version__,
        }

    def _proposer(self, encoding: CategoricalEncoding, seed: int, max_queries: int) -> Proposer:
        sampler: BaseSampler = NSGAIISampler(seed=seed) if self.sampler == "nsga2" else TPESampler(seed=seed)
        directions = [StudyDirection.MAXIMIZE if m.maximise else StudyDirection.MINIMIZE for m in self.metrics]
        return OptunaProposer(encoding, optuna.create_study(directions=directions, sampler=sampler))

    def _tell(self, proposer: Proposer, result: CellResult) -> None:
        """Tell the cell's objective vector (read from its look-up; means over seeds for accuracy)."""
        assert isinstance(proposer, OptunaProposer)
        proposer.tell(objective_vector(result, self.metrics) if result.valid else None)


def _run(sampler: str, benchmark_kwargs: dict[str, Any], seed: int, max_queries: int) -> SearchResult:
    searcher = MultiObjectiveSearch(objectives_of(benchmark_kwargs, sampler), sampler)
    return searcher.run(build_benchmark(benchmark_kwargs), seed, max_queries)


def run_nsga2(benchmark_kwargs: dict[str, Any], seed: int, max_queries: int) -> SearchResult:
    """The harness method ``"nsga2"``: Optuna's NSGA-II on the run spec's objectives (docs/howto-pareto.md)."""
    return _run("nsga2", benchmark_kwargs, seed, max_queries)


def run_motpe(benchmark_kwargs: dict[str, Any], seed: int, max_queries: int) -> SearchResult:
    """The harness method ``"motpe"``: Optuna's multi-objective TPE on the run spec's objectives."""
    return _run("motpe", benchmark_kwargs, seed, max_queries)


__all__ = ["MultiObjectiveSearch", "run_motpe", "run_nsga2"]
