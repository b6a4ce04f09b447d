"""Your own DAG search space: node count, node and edge types, fixed and free positions, a validity rule.

:class:`CustomSearchSpace` is a :class:`~dgpo_env.search_spaces.base.SearchSpace` like NAS-Bench-201's
and the toy space, so the environment, the diffusion model, pretraining, DGPO and the baselines use it
unchanged (docs/howto-custom-space.md). It is defined either

* directly: ``N`` nodes, a node-type vocabulary, edge types (type 0 means "no edge"), the types each
  node position and each edge ``i -> j`` may take (a position with one allowed type is *fixed*), and an
  optional validity rule on the cell as a ``networkx.DiGraph``; or
* from example graphs (:meth:`CustomSearchSpace.from_graphs`): a list of ``networkx.DiGraph`` DAGs with
  a type on every node (node attribute ``"op"`` by default) and optionally on every edge.

Cells are the raw encodings (nodes in a topological order, docs/encodings.md §1): two encodings are
the same cell only if they are equal, and the canonical key is the encoding written out. A space
that should merge isomorphic graphs overrides :meth:`CustomSearchSpace.canonical_key`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import networkx as nx
import numpy as np

from dgpo_env.search_spaces.base import BoolArray, SearchSpace
from dgpo_env.search_spaces.dag import DAG, edge_position, n_upper, upper_indices
from dgpo_env.search_spaces.graph_encoding import NO_EDGE, derive_choices, encode_graph
from dgpo_env.validation import check_callable, check_count

ValidityRule = Callable[[nx.DiGraph], "str | bool | None"]
"""A validity rule: gets the cell as :meth:`SearchSpace.to_networkx` builds it and returns ``None`` or
``True`` for a valid cell, a reason (non-empty ``str``) or ``False`` for an invalid one."""

MAX_ENUMERATED = 1_000_000
"""Spaces with at most this many encodings (product of the allowed-value counts) list their cells."""

BUILTIN_NAMES: tuple[str, ...] = ("nb201", "nb101", "toy")
"""Names a custom space may not take: checkpoints and environments tell spaces apart by name."""

SPEC_FORMAT = "dgpo-env/custom-search-space"
"""Tag of :meth:`CustomSearchSpace.to_dict`; :meth:`CustomSearchSpace.from_dict` refuses other data."""

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"a search-space name is 1-64 characters of letters, digits, '_', '.', '-' starting with a letter, "
            f"got {name!r}"
        )
    if name in BUILTIN_NAMES:
        raise ValueError(f"{name!r} is the name of a built-in search space; choose another name for yours")
    return name


def _check_types(what: str, types: object, minimum: int) -> tuple[str, ...]:
    if isinstance(types, str) or not isinstance(types, Sequence):
        raise TypeError(f"{what} must be a sequence of type names (e.g. a list of strings), got {types!r}")
    names = tuple(types)
    bad = [t for t in names if not isinstance(t, str) or not t]
    if bad:
        raise TypeError(f"{what} must be non-empty strings, got {bad}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} holds duplicates: {[t for t in names if names.count(t) > 1]}")
    if len(names) < minimum:
        raise ValueError(f"{what} needs at least {minimum} names, got {list(names)}")
    return names


def _choice_row(what: str, choices: object, vocabulary: tuple[str, ...]) -> BoolArray:
    """``bool[len(vocabulary)]``: the allowed types ``choices`` (names) of one position."""
    if isinstance(choices, str):
        choices = (choices,)
    if not isinstance(choices, Sequence | set | frozenset) or not choices:
        raise ValueError(f"{what} must be a non-empty list of type names from {vocabulary}, got {choices!r}")
    unknown = [c for c in choices if c not in vocabulary]
    if unknown:
        raise ValueError(f"{what}: unknown types {unknown}; known: {vocabulary}")
    row = np.zeros(len(vocabulary), dtype=bool)
    row[[vocabulary.index(c) for c in choices]] = True
    return row


class CustomSearchSpace(SearchSpace):
    """A DAG search space defined by its sizes, its types, its fixed and free positions and a rule.

    Args:
        name: Identifier recorded in checkpoints (letters, digits, ``_ . -``; not a built-in name).
        node_types: The node-type vocabulary (names); a node's type is an index into it.
        n_nodes: ``N``, at least 2; nodes are numbered in a topological order (edges go ``i -> j``, ``i < j``).
        edge_types: Edge-type names; index 0 means "no edge" (default ``("none", "edge")``).
        node_choices: Allowed types per node position, ``{position: [type names]}``; positions not
            given allow every node type. One allowed type fixes the node (e.g. ``{0: ["input"]}``).
        edge_choices: Allowed types per edge, ``{(i, j): [edge-type names]}`` with ``0 <= i < j < N``;
            edges not given allow every edge type. ``["none"]`` forbids an edge, ``["edge"]`` forces it.
        rule: Optional validity rule (:data:`ValidityRule`), called on every cell that respects the
            allowed values, as the ``networkx.DiGraph`` of :meth:`to_networkx` (node attribute ``op``:
            type name; edge attribute ``type``: edge-type index, ``>= 1``).

    Raises:
        TypeError: For arguments of the wrong type (a string where a list of names belongs, a
            non-callable rule, a float node count).
        ValueError: For a bad name, duplicate or unknown type names, a position out of range, a
            backward edge or an empty choice list.

    Example:
        >>> space = CustomSearchSpace(
        ...     "pipeline", ["source", "sink", "map", "filter"], n_nodes=5,
        ...     node_choices={0: ["source"], 4: ["sink"], 1: ["map", "filter"], 2: ["map", "filter"],
        ...                   3: ["map", "filter"]},
        ...     rule=lambda g: None if nx.has_path(g, 0, 4) else "the sink is not fed by the source",
        ... )
        >>> int(space.fixed_mask.sum()), space.n_entries  # source and sink fixed; 15 entries
        (2, 15)
    """

    def __init__(
        self,
        name: str,
        node_types: Sequence[str],
        n_nodes: int,
        *,
        edge_types: Sequence[str] = (NO_EDGE, "edge"),
        node_choices: Mapping[int, Sequence[str]] | None = None,
        edge_choices: Mapping[tuple[int, int], Sequence[str]] | None = None,
        rule: ValidityRule | None = None,
    ) -> None:
        self.name = _check_name(name)
        self.node_types = _check_types("node_types", node_types, 1)
        self.edge_types = _check_types("edge_types", edge_types, 2)
        self.n_edge_types = len(self.edge_types)
        self.n_nodes = check_count("n_nodes", n_nodes, minimum=2)
        self.rule = None if rule is None else check_callable("rule", rule)
        self._node_allowed = np.ones((self.n_nodes, self.n_node_types), dtype=bool)
        for position, choices in _mapping("node_choices", node_choices).items():
            index = check_count("node_choices position", position, maximum=self.n_nodes - 1)
            self._node_allowed[index] = _choice_row(f"node_choices[{index}]", choices, self.node_types)
        self._edge_allowed = np.ones((n_upper(self.n_nodes), self.n_edge_types), dtype=bool)
        for pair, choices in _mapping("edge_choices", edge_choices).items():
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise TypeError(f"edge_choices keys must be (i, j) pairs, got {pair!r}")
            i, j = (check_count("edge_choices node", v, maximum=self.n_nodes - 1) for v in pair)
            self._edge_allowed[edge_position(i, j, self.n_nodes)] = _choice_row(
                f"edge_choices[({i}, {j})]", choices, self.edge_types
            )

    # ------------------------------------------------------------------ SearchSpace
    def allowed_values(self) -> tuple[BoolArray, BoolArray]:
        """The node and edge choices given to the constructor, as ``bool[N, K]`` and ``bool[M, K_e]``."""
        return self._node_allowed.copy(), self._edge_allowed.copy()

    def validate(self, dag: DAG) -> str | None:
        """Why ``dag`` is not a cell (wrong size, a value not allowed at its position, the rule), or ``None``.

        Raises:
            TypeError: If the rule returns something other than ``None``, a ``bool`` or a string.
        """
        if dag.n_nodes != self.n_nodes:
            return f"{self.name} cells have {self.n_nodes} nodes, got {dag.n_nodes}"
        flat = dag.flat()
        out_of_range = np.flatnonzero((flat < 0) | (flat >= self.nvec))
        if out_of_range.size:
            return f"entries {out_of_range.tolist()} are out of range for nvec {self.nvec.tolist()}"
        violations = self.mask_violations(dag)
        if violations.size:
            return f"entries {violations.tolist()} hold values not allowed there"
        if self.rule is None:
            return None
        verdict = self.rule(self.to_networkx(dag))
        if verdict is None or verdict is True:
            return None
        if verdict is False:
            return "rejected by the validity rule"
        if isinstance(verdict, str) and verdict:
            return verdict
        raise TypeError(
            f"the validity rule of {self.name} returned {verdict!r} ({type(verdict).__name__}); it must return "
            "None or True for a valid cell, and a reason (non-empty string) or False for an invalid one"
        )

    def canonical_key(self, dag: DAG) -> str:
        """The encoding written out: node types and edge types, ``"n:<types>|e:<types>"`` (no merging)."""
        return f"n:{'.'.join(map(str, dag.nodes.tolist()))}|e:{''.join(_digit(t) for t in dag.edges.tolist())}"

    def describe(self, dag: DAG) -> str:
        """Node types by name and the typed edge list, e.g. ``"[source, map, sink] 0->1, 1->2"``."""
        nodes = ", ".join(self.node_types[t] if 0 <= t < self.n_node_types else f"?{t}" for t in dag.nodes.tolist())
        rows, cols = upper_indices(dag.n_nodes)
        edges = [
            f"{i}->{j}" if self.n_edge_types == 2 else f"{i}-{self.edge_types[t]}->{j}"
            for i, j, t in zip(rows.tolist(), cols.tolist(), dag.edges.tolist(), strict=True)
            if t and t < self.n_edge_types
        ]
        return f"[{nodes}] {', '.join(edges) if edges else 'no edges'}"

    @property
    def n_encodings(self) -> int:
        """Number of encodings that respect the allowed values (valid or not): the product of the choices."""
        node_allowed, edge_allowed = self.allowed
        return math.prod(int(n) for n in (*node_allowed.sum(1), *edge_allowed.sum(1)))

    def enumerate_cells(self) -> Iterator[DAG]:
        """Every valid cell, in lexicographic order of the free entries (spaces of <= 1,000,000 encodings).

        Raises:
            NotImplementedError: If the space has more than :data:`MAX_ENUMERATED` encodings.
        """
        if self.n_encodings > MAX_ENUMERATED:
            raise NotImplementedError(
                f"{self.name} has {self.n_encodings:,} encodings, too many to list (limit {MAX_ENUMERATED:,})"
            )
        node_allowed, edge_allowed = self.allowed
        values = [np.flatnonzero(row).tolist() for row in (*node_allowed, *edge_allowed)]
        for combination in itertools.product(*values):
            dag = DAG.from_flat(np.array(combination, dtype=np.int64), self.n_nodes)
            if self.validate(dag) is None:
                yield dag

    # ------------------------------------------------------------------ graphs
    def from_networkx(self, graph: nx.DiGraph) -> DAG:
        """Encode a graph written by :meth:`to_networkx`, or by a user, as a DAG of this space.

        Nodes ``0..N-1`` are taken as the topological order when every edge goes forward; other node
        labels are ordered by :func:`~dgpo_env.search_spaces.graph_encoding.topological_order`. Node
        attribute ``op`` holds the type name; edge attribute ``type``, if present, the edge type (index
        ``>= 1`` or name).

        Raises:
            ValueError: If the graph is not a DAG of ``N`` nodes, or a type is unknown (the message
                names the node or edge).
        """
        return encode_graph(graph, self.node_types, self.edge_types, "op", "type", n_nodes=self.n_nodes)

    @classmethod
    def from_graphs(
        cls,
        graphs: Sequence[nx.DiGraph],
        name: str,
        *,
        node_attr: str = "op",
        edge_attr: str | None = None,
        choices: Literal["observed", "all"] = "observed",
        rule: ValidityRule | None = None,
    ) -> CustomSearchSpace:
        """Derive a space from example DAGs with typed nodes (and optionally typed edges).

        Every graph is encoded in a topological order
        (:func:`~dgpo_env.search_spaces.graph_encoding.topological_order`). Node types are the values of
        ``node_attr`` in first-seen order; edge types are ``"none"`` then the values of
        ``edge_attr`` in first-seen order (``"edge"`` when ``edge_attr`` is ``None``). A position that
        holds the same value in every graph is fixed. Other positions allow the values seen there
        (``choices="observed"``) or every type of their kind (``choices="all"``).

        Args:
            graphs: At least one ``networkx.DiGraph``, all with the same number of nodes ``N >= 2``.
            name: The space's name.
            node_attr: The node attribute holding the node type (every node needs it).
            edge_attr: The edge attribute holding the edge type; ``None``: edges are untyped.
            choices: ``"observed"`` or ``"all"`` (see above).
            rule: Optional validity rule (see :class:`CustomSearchSpace`).

        Returns:
            The space; encode the graphs with :meth:`encode` (the same attributes).

        Raises:
            TypeError: If ``graphs`` is not a sequence of ``networkx.DiGraph``.
            ValueError: For an empty list, a graph with a cycle, graphs of different sizes, a node
                without ``node_attr`` or an edge without ``edge_attr``, naming the graph and node.
        """
        derived = derive_choices(graphs, node_attr, edge_attr, choices)
        space = cls(
            name,
            derived.node_types,
            derived.n_nodes,
            edge_types=derived.edge_types,
            node_choices=derived.node_choices,
            edge_choices=derived.edge_choices,
            rule=rule,
        )
        space.graph_attrs = (node_attr, edge_attr)
        return space

    graph_attrs: tuple[str, str | None] = ("op", "type")
    """``(node attribute, edge attribute)`` that :meth:`encode` reads (set by :meth:`from_graphs`)."""

    def encode(self, graph: nx.DiGraph) -> DAG:
        """Encode a user graph with the attributes the space was derived with (:attr:`graph_attrs`).

        Raises:
            ValueError: As :func:`~dgpo_env.search_spaces.graph_encoding.encode_graph`, and if the result
                breaks the space's allowed values or rule.
        """
        node_attr, edge_attr = self.graph_attrs
        dag = encode_graph(graph, self.node_types, self.edge_types, node_attr, edge_attr, n_nodes=self.n_nodes)
        reason = self.validate(dag)
        if reason is not None:
            raise ValueError(f"the graph is not a cell of {self.name}: {reason}")
        return dag

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """The space's structure as plain JSON-ready data (the rule, a Python callable, is not included).

        ``has_rule`` records whether a rule existed, so :meth:`from_dict` can refuse to rebuild a space
        whose validity would silently be weaker.
        """
        node_allowed, edge_allowed = self.allowed
        return {
            "format": SPEC_FORMAT,
            "name": self.name,
            "n_nodes": self.n_nodes,
            "node_types": list(self.node_types),
            "edge_types": list(self.edge_types),
            "node_allowed": node_allowed.astype(int).tolist(),
            "edge_allowed": edge_allowed.astype(int).tolist(),
            "graph_attrs": list(self.graph_attrs),
            "has_rule": self.rule is not None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], rule: ValidityRule | None = None) -> CustomSearchSpace:
        """Rebuild a space from :meth:`to_dict` (with ``rule`` if it had one).

        Raises:
            ValueError: If ``data`` is not a custom-space spec, is inconsistent, or had a rule and
                none is given.
        """
        if not isinstance(data, Mapping) or data.get("format") != SPEC_FORMAT:
            raise ValueError("not a custom search-space spec (written by CustomSearchSpace.to_dict)")
        if data.get("has_rule") and rule is None:
            raise ValueError(
                f"the search space {data.get('name')!r} has a validity rule, which is Python code and not stored; "
                "pass it: CustomSearchSpace.from_dict(spec, rule=...), or build the space with your own code"
            )
        try:
            n = int(data["n_nodes"])
            node_types, edge_types = tuple(data["node_types"]), tuple(data["edge_types"])
            node_allowed = np.array(data["node_allowed"], dtype=bool).reshape(n, len(node_types))
            edge_allowed = np.array(data["edge_allowed"], dtype=bool).reshape(n_upper(n), len(edge_types))
            rows, cols = upper_indices(n)
            space = cls(
                data["name"],
                node_types,
                n,
                edge_types=edge_types,
                node_choices={i: [node_types[t] for t in np.flatnonzero(r)] for i, r in enumerate(node_allowed)},
                edge_choices={
                    (i, j): [edge_types[t] for t in np.flatnonzero(r)]
                    for i, j, r in zip(rows.tolist(), cols.tolist(), edge_allowed, strict=True)
                },
                rule=rule,
            )
            node_attr, edge_attr = data.get("graph_attrs", ["op", "type"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"inconsistent custom search-space spec: {err}") from err
        space.graph_attrs = (str(node_attr), None if edge_attr is None else str(edge_attr))
        return space

    def __repr__(self) -> str:
        n_free = int((~self.fixed_mask).sum())
        return (
            f"CustomSearchSpace({self.name!r}, N={self.n_nodes}, node_types={self.node_types}, "
            f"edge_types={self.edge_types}, free entries={n_free}, rule={'yes' if self.rule else 'no'})"
        )


def _digit(t: int) -> str:
    return str(t) if t < 10 else f"({t})"


def _mapping(name: str, value: object) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping (dict) or None, got {type(value).__name__}")
    return value


__all__ = ["BUILTIN_NAMES", "MAX_ENUMERATED", "CustomSearchSpace", "ValidityRule"]
