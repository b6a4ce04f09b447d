"""Files of typed graphs (JSON node-link lists, GraphML) and ``module:attr`` references to a search space.

A **graph file** holds example DAGs for :meth:`~dgpo_env.search_spaces.custom.CustomSearchSpace.from_graphs`
and ``dgpo pretrain --graphs`` (docs/howto-custom-space.md):

* ``.json``: ``{"format": "dgpo-env/graphs", "graphs": [G, ...]}`` or a bare list ``[G, ...]``, each ``G``
  a node-link object ``{"nodes": [{"id": 0, "op": "input"}, ...], "edges": [{"source": 0, "target": 1}, ...]}``
  (``"links"`` is read as well as ``"edges"``, so networkx's ``node_link_data`` output works). Node ids are
  integers or strings; every other key of a node or edge is an attribute.
* ``.graphml``: one graph per file (networkx's reader); integer node ids are read as integers.

Nothing is unpickled: the JSON reader builds graphs from plain data, and GraphML is XML.

A **space reference** names a search space defined in Python: ``"package.module:NAME"`` (imported
like ``import package.module``) or ``"path/to/file.py:NAME"`` (that file is run as a module, as
``python file.py`` would run it). ``NAME`` (dotted names allowed) is a
:class:`~dgpo_env.search_spaces.base.SearchSpace` or a function of no arguments returning one.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import networkx as nx

from dgpo_env.io import atomic_write_text
from dgpo_env.search_spaces.base import SearchSpace

GRAPHS_FORMAT = "dgpo-env/graphs"
"""The ``"format"`` tag of a JSON graph file written by :func:`write_graphs`."""


def read_graphs(path: str | os.PathLike[str]) -> list[nx.DiGraph]:
    """The graphs of a ``.json`` or ``.graphml`` file (see the module docstring).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: For another suffix, a file that is not valid JSON/GraphML, or a JSON layout that is
            not a list of node-link graphs (the message names the graph and what is missing).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no graph file at {file}")
    suffix = file.suffix.lower()
    if suffix == ".graphml":
        return [_read_graphml(file)]
    if suffix != ".json":
        raise ValueError(f"{file}: graph files are .json (node-link list) or .graphml, got {suffix or 'no suffix'!r}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{file} is not a JSON file: {err}") from err
    if isinstance(data, dict):
        if data.get("format") != GRAPHS_FORMAT or not isinstance(data.get("graphs"), list):
            raise ValueError(f"{file}: a JSON object must be {{'format': {GRAPHS_FORMAT!r}, 'graphs': [...]}}")
        data = data["graphs"]
    if not isinstance(data, list):
        raise ValueError(f"{file}: expected a list of node-link graphs, got {type(data).__name__}")
    return [_from_node_link(g, f"{file}, graph {i}") for i, g in enumerate(data)]


def _read_graphml(file: Path) -> nx.DiGraph:
    try:
        try:
            graph = nx.read_graphml(file, node_type=int)
        except ValueError:  # node ids that are not integers
            graph = nx.read_graphml(file)
    except Exception as err:  # the XML parser and networkx raise several types for a bad file
        raise ValueError(f"{file} is not a readable GraphML file: {type(err).__name__}: {err}") from err
    if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
        raise ValueError(f"{file}: the GraphML graph must be directed and simple (edgedefault='directed')")
    return graph


def _from_node_link(data: object, where: str) -> nx.DiGraph:
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise ValueError(f"{where}: a graph is an object with a 'nodes' list (and an 'edges' list)")
    edges = data.get("edges", data.get("links", []))
    if not isinstance(edges, list):
        raise ValueError(f"{where}: 'edges' must be a list of {{'source': ..., 'target': ...}} objects")
    graph = nx.DiGraph()
    for node in data["nodes"]:
        if not isinstance(node, dict) or not isinstance(node.get("id"), (int, str)) or isinstance(node["id"], bool):
            raise ValueError(f"{where}: every node is an object with an integer or string 'id', got {node!r}")
        graph.add_node(node["id"], **{k: v for k, v in node.items() if k != "id"})
    for edge in edges:
        if not isinstance(edge, dict) or edge.get("source") not in graph or edge.get("target") not in graph:
            raise ValueError(f"{where}: every edge needs a 'source' and a 'target' among the node ids, got {edge!r}")
        graph.add_edge(
            edge["source"], edge["target"], **{k: v for k, v in edge.items() if k not in ("source", "target")}
        )
    return graph


def write_graphs(path: str | os.PathLike[str], graphs: Sequence[nx.DiGraph]) -> Path:
    """Write graphs as a JSON graph file (atomically), readable by :func:`read_graphs`.

    Node and edge attributes must be JSON values.

    Raises:
        TypeError: If an attribute is not JSON-serialisable or a graph is not a ``networkx.DiGraph``.
    """
    records = []
    for index, graph in enumerate(graphs):
        if not isinstance(graph, nx.DiGraph):
            raise TypeError(f"graph {index} is a {type(graph).__name__}, not a networkx.DiGraph")
        records.append(
            {
                "nodes": [{"id": n, **d} for n, d in graph.nodes(data=True)],
                "edges": [{"source": u, "target": v, **d} for u, v, d in graph.edges(data=True)],
            }
        )
    text = json.dumps({"format": GRAPHS_FORMAT, "graphs": records}, allow_nan=False)
    return atomic_write_text(Path(path), text)


def load_search_space(reference: str) -> SearchSpace:
    """The search space a ``"module:NAME"`` or ``"file.py:NAME"`` reference names (module docstring).

    Raises:
        ValueError: If the reference has no ``:``, the module or file cannot be imported, ``NAME`` is
            missing, or it is (or returns) something other than a ``SearchSpace``; the message says which.
    """
    if not isinstance(reference, str) or reference.count(":") < 1:
        raise ValueError(
            f"a search-space reference is 'package.module:NAME' or 'path/to/file.py:NAME', got {reference!r}"
        )
    module_name, _, attribute = reference.rpartition(":")
    if not module_name or not attribute:
        raise ValueError(f"a search-space reference needs a module and a name around ':', got {reference!r}")
    module = _import(module_name)
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ValueError(f"{module_name} has no attribute {attribute!r} (from the reference {reference!r})")
        value = getattr(value, part)
    if callable(value) and not isinstance(value, SearchSpace):
        value = value()
    if not isinstance(value, SearchSpace):
        raise ValueError(
            f"{reference} is a {type(value).__name__}, not a SearchSpace (or a function of no arguments returning one)"
        )
    return value


def _import(module_name: str) -> Any:
    """Import a module by dotted name, or run a ``.py`` file as a module."""
    if module_name.endswith(".py"):
        file = Path(module_name)
        if not file.is_file():
            raise ValueError(f"no Python file at {file}")
        name = f"_dgpo_space_{abs(hash(str(file.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot import {file} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up here
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"cannot import {module_name!r} ({err}); put its folder on PYTHONPATH or give a file path "
            "'dir/file.py:NAME'"
        ) from err


__all__ = ["GRAPHS_FORMAT", "load_search_space", "read_graphs", "write_graphs"]
