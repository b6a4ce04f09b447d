"""Simple NAS searchers on the common benchmark interface (docs/harness.md).

Random search, regularised evolution, local search and a REINFORCE controller without diffusion.
Every searcher's :meth:`~agents.baselines.base.Searcher.run` takes ``(benchmark, seed, max_queries)``
and returns a :class:`~agents.baselines.base.SearchResult`. The peer optimisers (Optuna's TPE in
:mod:`agents.baselines.tpe`, SMAC3 in :mod:`agents.baselines.smac`) need the optional extra ``peers``
and are imported only on use; their shared pieces are in :mod:`agents.baselines.peers`.
"""

from agents.baselines.base import BudgetExhausted, QueryBudget, Searcher, SearchResult, make_result
from agents.baselines.evolution import RegularizedEvolution
from agents.baselines.local_search import LocalSearch
from agents.baselines.peers import AskTellSearcher, CategoricalEncoding, MissingExtraError
from agents.baselines.random_search import RandomSearch
from agents.baselines.reinforce import CategoricalController, Reinforce

SEARCHERS: dict[str, type[Searcher]] = {
    RandomSearch.name: RandomSearch,
    RegularizedEvolution.name: RegularizedEvolution,
    LocalSearch.name: LocalSearch,
    Reinforce.name: Reinforce,
}
"""The baseline searchers by name."""

__all__ = [
    "SEARCHERS",
    "AskTellSearcher",
    "BudgetExhausted",
    "CategoricalController",
    "CategoricalEncoding",
    "LocalSearch",
    "MissingExtraError",
    "QueryBudget",
    "RandomSearch",
    "RegularizedEvolution",
    "Reinforce",
    "SearchResult",
    "Searcher",
    "make_result",
]
