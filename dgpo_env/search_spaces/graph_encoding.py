"""Typed ``networkx`` DAGs as encodings: node order, type vocabularies, and the choices a set of examples allows.

Used by :class:`~dgpo_env.search_spaces.custom.CustomSearchSpace` (``from_graphs``, ``encode``,
``from_networkx``) and ``dgpo pretrain --graphs`` (docs/howto-custom-space.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from dgpo_env.search_spaces.dag import DAG, edge_position, n_upper, upper_indices

NO_EDGE = "none"
"""Default name of edge type 0 (no edge)."""


@dataclass(frozen=True)
class DerivedChoices:
    """What a list of example graphs says about a search space (:func:`derive_choices`).

    Attributes:
        n_nodes: ``N``, shared by every example.
        node_types: Node-type names in first-seen order.
        edge_types: ``"none"`` then the edge-type names in first-seen order (``"edge"`` for untyped edges).
        node_choices: Allowed node-type names per position.
        edge_choices: Allowed edge-type names per edge ``(i, j)``.
    """

    n_nodes: int
    node_types: tuple[str, ...]
    edge_types: tuple[str, ...]
    node_choices: dict[int, list[str]]
    edge_choices: dict[tuple[int, int], list[str]]


def derive_choices(graphs: object, node_attr: str, edge_attr: str | None, choices: str) -> DerivedChoices:
    """The vocabularies and per-position choices of example graphs (``CustomSearchSpace.from_graphs`` documents them).

    Raises:
        TypeError: If ``graphs`` is not a sequence of ``networkx.DiGraph``.
        ValueError: For an empty list, another ``choices`` than ``"observed"``/``"all"``, a cycle, graphs of
            different sizes, or a missing type attribute.
    """
    graphs = check_graphs(graphs)
    if choices not in ("observed", "all"):
        raise ValueError(f"choices must be 'observed' or 'all', got {choices!r}")
    sizes = sorted({g.number_of_nodes() for g in graphs})
    if len(sizes) != 1 or sizes[0] < 2:
        raise ValueError(
            f"every graph needs the same number of nodes (>= 2), got sizes {sizes}: add placeholder nodes of "
            "a type of their own (and no edges) to the smaller graphs"
        )
    node_types: dict[str, None] = {}
    edge_types: dict[str, None] = {NO_EDGE: None} if edge_attr is not None else {NO_EDGE: None, "edge": None}
    for index, graph in enumerate(graphs):
        for node, data in graph.nodes(data=True):
            node_types.setdefault(_attribute(data, node_attr, f"graph {index}, node {node!r}"), None)
        if edge_attr is not None:
            for i, j, data in graph.edges(data=True):
                edge_types.setdefault(_attribute(data, edge_attr, f"graph {index}, edge {i!r}->{j!r}"), None)
    if len(edge_types) < 2:  # typed edges but no edge anywhere
        edge_types["edge"] = None
    nodes_v, edges_v = tuple(node_types), tuple(edge_types)
    dags = [
        encode_graph(g, nodes_v, edges_v, node_attr, edge_attr, graph_name=f"graph {i}") for i, g in enumerate(graphs)
    ]
    n = sizes[0]
    flats = np.stack([d.flat() for d in dags])  # [G, N + M]
    node_choices: dict[int, list[str]] = {}
    for pos in range(n):
        seen = np.unique(flats[:, pos])
        pick = seen if choices == "observed" or seen.size == 1 else np.arange(len(nodes_v))
        node_choices[pos] = [nodes_v[t] for t in pick.tolist()]
    edge_choices: dict[tuple[int, int], list[str]] = {}
    rows, cols = upper_indices(n)
    for k, (i, j) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        seen = np.unique(flats[:, n + k])
        pick = seen if choices == "observed" or seen.size == 1 else np.arange(len(edges_v))
        edge_choices[(i, j)] = [edges_v[t] for t in pick.tolist()]
    return DerivedChoices(n, nodes_v, edges_v, node_choices, edge_choices)


def _attribute(data: Mapping[str, Any], attr: str, where: str) -> str:
    """The type name under ``attr`` of a node or edge; ``where`` names it in the message."""
    if attr not in data:
        raise ValueError(f"{where} has no {attr!r} attribute; every one needs its type there")
    value = data[attr]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: the {attr!r} attribute must be a non-empty string (a type name), got {value!r}")
    return value


def check_graphs(graphs: object) -> list[nx.DiGraph]:
    """``graphs`` as a list if it is a non-empty sequence of simple ``networkx.DiGraph``.

    Raises:
        TypeError: If it is not a sequence (a single graph included) or holds something else.
        ValueError: If it is empty.
    """
    if isinstance(graphs, nx.Graph) or not isinstance(graphs, Sequence):
        raise TypeError(f"graphs must be a list of networkx.DiGraph, got {type(graphs).__name__}")
    if not graphs:
        raise ValueError("graphs is empty: give at least one example graph")
    for index, graph in enumerate(graphs):
        if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
            raise TypeError(f"graph {index} is a {type(graph).__name__}, not a networkx.DiGraph")
    return list(graphs)


def topological_order(graph: nx.DiGraph, where: str = "the graph") -> list[Any]:
    """The node order used to encode ``graph``.

    Nodes labelled ``0..N-1`` with every edge going forward keep their labels as the order; otherwise
    networkx's lexicographical topological sort, ties broken by the node label's ``str``.

    Raises:
        ValueError: If the graph has a cycle (naming one) or a self-loop.
    """
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        raise ValueError(f"{where} has a cycle {[e[:2] for e in cycle]}: a cell must be a DAG")
    nodes = list(graph.nodes)
    numbered = all(type(v) is int for v in nodes) and set(nodes) == set(range(len(nodes)))
    if numbered and all(i < j for i, j in graph.edges):
        return list(range(len(nodes)))
    return list(nx.lexicographical_topological_sort(graph, key=str))


def encode_graph(
    graph: nx.DiGraph,
    node_types: Sequence[str],
    edge_types: Sequence[str],
    node_attr: str = "op",
    edge_attr: str | None = "type",
    *,
    n_nodes: int | None = None,
    graph_name: str = "the graph",
) -> DAG:
    """Encode a typed ``networkx.DiGraph`` as a :class:`DAG` (nodes in :func:`topological_order`).

    Args:
        graph: The graph; every node needs ``node_attr``.
        node_types: The node-type vocabulary.
        edge_types: The edge-type vocabulary, type 0 being "no edge".
        node_attr: Node attribute holding the type name.
        edge_attr: Edge attribute holding the type (a name from ``edge_types`` or an index ``>= 1``); an
            edge without it, or ``edge_attr=None``, gets type 1.
        n_nodes: The number of nodes the graph must have, if fixed.
        graph_name: How messages name the graph.

    Raises:
        ValueError: For a cycle, a wrong node count, or an unknown or missing type.
    """
    if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
        raise TypeError(f"{graph_name} must be a networkx.DiGraph, got {type(graph).__name__}")
    if n_nodes is not None and graph.number_of_nodes() != n_nodes:
        raise ValueError(f"{graph_name} has {graph.number_of_nodes()} nodes; cells of this space have {n_nodes}")
    order = topological_order(graph, graph_name)
    position = {node: k for k, node in enumerate(order)}
    nodes = []
    for node in order:
        name = _attribute(graph.nodes[node], node_attr, f"{graph_name}, node {node!r}")
        if name not in node_types:
            raise ValueError(f"{graph_name}, node {node!r}: unknown type {name!r}; known: {tuple(node_types)}")
        nodes.append(node_types.index(name))
    n = len(order)
    edges = np.zeros(n_upper(n), dtype=np.int64)
    for u, v, data in graph.edges(data=True):
        i, j = position[u], position[v]
        value = data.get(edge_attr, 1) if edge_attr is not None else 1
        if isinstance(value, str) and value in edge_types:
            value = edge_types.index(value)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 1 <= value < len(edge_types):
            raise ValueError(
                f"{graph_name}, edge {u!r}->{v!r}: edge type {value!r} is not one of {tuple(edge_types[1:])} "
                f"(or an index 1..{len(edge_types) - 1})"
            )
        edges[edge_position(i, j, n)] = int(value)
    return DAG(np.array(nodes, dtype=np.int64), edges)


__all__ = ["NO_EDGE", "DerivedChoices", "check_graphs", "derive_choices", "encode_graph", "topological_order"]
