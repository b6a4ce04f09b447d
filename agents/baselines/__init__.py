"""Simple NAS searchers on the common benchmark interface (DESIGN.md section 5).

Random search, regularised evolution, local search and a REINFORCE controller without diffusion.
Every searcher's :meth:`~agents.baselines.base.Searcher.run` takes ``(benchmark, seed, max_queries)``
and returns a :class:`~agents.baselines.base.SearchResult`.
"""

from agents.baselines.base import BudgetExhausted, QueryBudget, Searcher, SearchResult, make_result
from agents.baselines.evolution import RegularizedEvolution
from agents.baselines.local_search import LocalSearch
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
    "BudgetExhausted",
    "CategoricalController",
    "LocalSearch",
    "QueryBudget",
    "RandomSearch",
    "RegularizedEvolution",
    "Reinforce",
    "SearchResult",
    "Searcher",
    "make_result",
]
