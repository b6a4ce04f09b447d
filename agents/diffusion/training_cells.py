"""Choosing the cells the graph-diffusion model is pretrained on (docs/diffusion.md §7).

Training sets: every cell of the space, a random ``fraction`` of it, and/or the cells whose validation
accuracy is below ``max_val_acc`` (the paper's "filtered" out-of-distribution set, 85% on NB201), or, for
spaces too large to list, uniformly random valid cells. Labels read to choose the set go through
:meth:`Benchmark.query`, so they are counted as queries and reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dgpo_env.benchmarks.base import Benchmark
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.dag import DAG
from dgpo_env.validation import check_count, check_real


@dataclass(frozen=True)
class CellSelection:
    """A pretraining set and how it was chosen.

    Attributes:
        cells: The selected cells.
        n_queries: Distinct benchmark queries spent on choosing them (labels read).
        description: Human-readable rule, e.g. ``"val_acc < 85 (all cells)"``.
        n_candidates: Number of cells the rule was applied to.
    """

    cells: list[DAG]
    n_queries: int
    description: str
    n_candidates: int


def select_training_cells(
    benchmark: Benchmark | SearchSpace,
    fraction: float | None = None,
    max_val_acc: float | None = None,
    seed: int = 0,
    n_random: int | None = None,
) -> CellSelection:
    """Choose a pretraining set from every cell of ``benchmark``'s search space.

    Args:
        benchmark: The benchmark, or a search space alone (a structure prior: no data file, no
            labels, so no ``max_val_acc``); the space must enumerate its cells unless ``n_random``
            is given.
        fraction: Keep a uniformly random share of the cells (e.g. ``0.07``); no labels needed.
        max_val_acc: Keep cells whose mean validation accuracy (percent) is strictly below this;
            every candidate's label is read with :meth:`Benchmark.query` and counted.
        seed: Seeds the random fraction and ``n_random``.
        n_random: Instead of listing the space, draw this many uniformly random valid cells
            (:meth:`SearchSpace.sample_uniform`, duplicates removed) — for spaces too large to list.

    Returns:
        The :class:`CellSelection`; ``n_queries`` is the growth of ``benchmark.n_queries``.

    Raises:
        TypeError: For a ``fraction`` or ``max_val_acc`` that is not a real number, or an
            ``n_random`` or ``seed`` that is not an integer.
        ValueError: For a fraction outside ``(0, 1]``, a non-finite ``max_val_acc``, ``n_random < 1``,
            ``seed < 0``, a space that cannot enumerate its cells, ``max_val_acc`` without a benchmark,
            or an empty selection.
    """
    fraction, max_val_acc, n_random = check_selection(fraction, max_val_acc, n_random)
    seed = check_count("seed", seed, minimum=0)
    space = benchmark if isinstance(benchmark, SearchSpace) else benchmark.search_space
    if isinstance(benchmark, SearchSpace) and max_val_acc is not None:
        raise ValueError("max_val_acc reads accuracies: pass a benchmark, not a search space alone")
    rng = np.random.default_rng(seed)
    rules = []
    if n_random is not None:
        cells = list(dict.fromkeys(space.sample_uniform(rng) for _ in range(n_random)))
        rules.append(f"{len(cells)} uniformly random cells")
    else:
        try:
            cells = list(space.enumerate_cells())
        except NotImplementedError as err:
            raise ValueError(
                f"{space.name} cannot list its cells; draw uniformly random valid cells instead (n_random=..., "
                "`dgpo pretrain --n-random N`) or call pretrain() with your own cells"
            ) from err
    if fraction is not None:
        keep = np.sort(rng.choice(len(cells), size=max(1, round(fraction * len(cells))), replace=False))
        cells = [cells[i] for i in keep.tolist()]
        rules.append(f"random {fraction:.2%}")
    n_candidates = len(cells)
    if isinstance(benchmark, SearchSpace):
        return CellSelection(cells, 0, " and ".join(rules) if rules else "all cells", n_candidates)
    before = benchmark.n_queries
    if max_val_acc is not None:
        results = [benchmark.query(cell) for cell in cells]
        cells = [
            c
            for c, r in zip(cells, results, strict=True)
            if r.val_acc_mean is not None and r.val_acc_mean < max_val_acc
        ]
        rules.append(f"val_acc < {max_val_acc:g}")
    if not cells:
        raise ValueError(f"no cell satisfies {' and '.join(rules)}; relax the filter")
    description = " and ".join(rules) if rules else "all cells"
    return CellSelection(cells, benchmark.n_queries - before, description, n_candidates)


def check_selection(
    fraction: object, max_val_acc: object, n_random: object
) -> tuple[float | None, float | None, int | None]:
    """Validate the training-set rule of :func:`select_training_cells` / :func:`pretrain_on_benchmark`."""
    return (
        None if fraction is None else check_real("fraction", fraction, 0.0, 1.0, open_minimum=True),
        None if max_val_acc is None else check_real("max_val_acc", max_val_acc),
        None if n_random is None else check_count("n_random", n_random, minimum=1),
    )


__all__ = ["CellSelection", "check_selection", "select_training_cells"]
