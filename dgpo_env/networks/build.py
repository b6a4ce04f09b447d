"""One entry point from a generated cell to its benchmark network: :func:`to_torch` (docs/networks.md).

The search space is named (``"nb201"``, ``"nb101"``), given as a search-space object or as a benchmark
(whose dataset then fixes the number of classes), or inferred from the cell: an arch string or six op
names are NB201 cells, an ``NB101Spec`` is an NB101 cell, and a DAG is NB201's when it has 8 nodes and
NB101's when it has 7.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

from dgpo_env.benchmarks.base import Benchmark
from dgpo_env.networks.nb101 import nb101_network, nb101_param_count
from dgpo_env.networks.nb201 import NUM_CLASSES, nb201_network, nb201_param_count
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.dag import DAG
from dgpo_env.search_spaces.nb101 import NB101SearchSpace, NB101Spec
from dgpo_env.search_spaces.nb201 import NB201SearchSpace
from dgpo_env.validation import check_count

Cell = str | DAG | NB101Spec | Sequence[str]
"""What :func:`to_torch` builds: an NB201 arch string, six NB201 op names, an ``NB101Spec`` or a DAG."""
SPACES: tuple[str, ...] = ("nb201", "nb101")
"""Search spaces that have a network."""
NB101_DATASETS: dict[str, int] = {"cifar10": 10}
"""NAS-Bench-101 was trained on CIFAR-10 only (NB101 paper, section 2.4)."""


def _space_name(cell: object, search_space: object) -> tuple[str, str | None]:
    """``(space name, dataset of a benchmark or None)`` from the arguments of :func:`to_torch`."""
    if search_space is None:
        if isinstance(cell, NB101Spec):
            return "nb101", None
        if isinstance(cell, DAG) and cell.n_nodes in (7, 8):
            return ("nb201" if cell.n_nodes == 8 else "nb101"), None
        if isinstance(cell, DAG):
            raise ValueError(
                f"cannot tell the search space of a {cell.n_nodes}-node DAG: only NB201 (8 nodes) and NB101 "
                "(7 nodes) cells have networks; pass search_space='nb201' or 'nb101'"
            )
        return "nb201", None  # arch strings and op lists; cell_ops checks them
    if isinstance(search_space, Benchmark):
        dataset = getattr(search_space, "dataset", None)
        return _space_name(cell, search_space.search_space)[0], dataset if isinstance(dataset, str) else None
    if isinstance(search_space, NB201SearchSpace):
        return "nb201", None
    if isinstance(search_space, NB101SearchSpace):
        return "nb101", None
    if isinstance(search_space, SearchSpace):
        raise ValueError(f"the {search_space.name!r} search space has no network; networks exist for {SPACES}")
    if isinstance(search_space, str):
        if search_space not in SPACES:
            raise ValueError(f"unknown search space {search_space!r}; networks exist for {SPACES}")
        return search_space, None
    raise TypeError(
        "search_space must be 'nb201', 'nb101', a SearchSpace or a Benchmark (or None to infer it from the "
        f"cell); got {search_space!r} ({type(search_space).__name__})"
    )


def resolve(
    cell: object, search_space: object = None, dataset: object = None, num_classes: object = None
) -> tuple[Literal["nb201", "nb101"], int]:
    """The search space and the number of classes that :func:`to_torch` uses.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If they contradict each other or name something unknown.
    """
    space, bench_dataset = _space_name(cell, search_space)
    if dataset is not None and not isinstance(dataset, str):
        raise TypeError(f"dataset must be a string such as 'cifar10', got {dataset!r} ({type(dataset).__name__})")
    if dataset is not None and bench_dataset is not None and dataset != bench_dataset:
        raise ValueError(f"dataset={dataset!r} contradicts the benchmark's dataset {bench_dataset!r}; pass one")
    dataset = dataset if dataset is not None else bench_dataset
    known = NUM_CLASSES if space == "nb201" else NB101_DATASETS
    if dataset is not None and dataset not in known:
        raise ValueError(f"unknown {space} dataset {dataset!r}; known: {', '.join(map(repr, known))}")
    implied = known[dataset] if dataset is not None else None
    if num_classes is None:
        classes = implied if implied is not None else 10
    else:
        classes = check_count("num_classes", num_classes, minimum=1)
        if implied is not None and classes != implied:
            raise ValueError(
                f"num_classes={classes} contradicts dataset {dataset!r} ({implied} classes); pass one of them"
            )
    return ("nb201" if space == "nb201" else "nb101"), classes


def _plan(cell: object, search_space: object, dataset: object, num_classes: object) -> tuple[str, int]:
    """:func:`resolve`, then refuse a cell of the other search space's type."""
    space, classes = resolve(cell, search_space, dataset, num_classes)
    if space == "nb201" and isinstance(cell, NB101Spec):
        raise TypeError("an NB101Spec is not an NB201 cell; pass search_space='nb101' or an NB201 cell")
    if space == "nb101" and not isinstance(cell, (NB101Spec, DAG)):
        raise TypeError(
            f"an NB101 cell must be an NB101Spec or a 7-node DAG of NB101SearchSpace, got {cell!r} "
            f"({type(cell).__name__})"
        )
    return space, classes


def to_torch(
    cell: Cell,
    search_space: str | SearchSpace | Benchmark | None = None,
    *,
    dataset: str | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """Build the benchmark network of a cell as a ``torch.nn.Module``.

    Args:
        cell: An NB201 arch string (``"|nor_conv_3x3~0|+|...|"``), six NB201 op names, an
            :class:`~dgpo_env.search_spaces.nb101.NB101Spec`, or a DAG of either search space.
        search_space: ``"nb201"``, ``"nb101"``, a search-space object, a benchmark (its dataset sets
            the classes), or ``None`` to infer it from the cell (see the module docstring).
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet16"`` (NB201; 10, 100, 120 classes) or
            ``"cifar10"`` (NB101).
        num_classes: Classifier outputs; default from the dataset, else 10.

    Returns:
        An :class:`~dgpo_env.networks.nb201.NB201Network` (input ``[B, 3, 32, 32]`` for CIFAR,
        ``[B, 3, 16, 16]`` for ImageNet16-120) or an :class:`~dgpo_env.networks.nb101.NB101Network`
        (input ``[B, 3, 32, 32]``); output logits ``[B, num_classes]``. Its parameter count is
        :func:`count_params` of the same arguments and the benchmark's ``params``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If the cell is not valid in its search space, or the arguments contradict each other.

    Example:
        >>> net = to_torch("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|"
        ...                "nor_conv_3x3~1|skip_connect~2|", "nb201", dataset="cifar100")
        >>> count_params(net.arch_str, "nb201", dataset="cifar100") == n_parameters(net)
        True
    """
    space, classes = _plan(cell, search_space, dataset, num_classes)
    if space == "nb201":
        assert not isinstance(cell, NB101Spec)
        return nb201_network(cell, classes)
    assert isinstance(cell, (NB101Spec, DAG))
    return nb101_network(cell, classes)


def count_params(
    cell: Cell,
    search_space: str | SearchSpace | Benchmark | None = None,
    *,
    dataset: str | None = None,
    num_classes: int | None = None,
) -> int:
    """Exact trainable-parameter count of :func:`to_torch` of the same arguments, without building it.

    Equal to the benchmark's ``params`` (millions) times 1e6: conv weights, batch-norm scales and offsets,
    classifier weights and biases; not the batch-norm running statistics.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: As :func:`to_torch`.
    """
    space, classes = _plan(cell, search_space, dataset, num_classes)
    if space == "nb201":
        assert not isinstance(cell, NB101Spec)
        return nb201_param_count(cell, classes)
    assert isinstance(cell, (NB101Spec, DAG))
    return nb101_param_count(cell, classes)


def n_parameters(module: nn.Module) -> int:
    """``sum(p.numel() for p in module.parameters())``: what the benchmarks call the parameter count.

    Raises:
        TypeError: If ``module`` is not a ``torch.nn.Module``.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {module!r} ({type(module).__name__})")
    return sum(p.numel() for p in module.parameters())
