"""Custom DAG search spaces: definition, validity, encodings, derivation from networkx graphs, files, bad input."""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from dgpo_env.diffusion.marginals import Marginals
from dgpo_env.search_spaces import DAG, CustomSearchSpace, SearchSpace, edge_position
from dgpo_env.search_spaces.graph_files import load_search_space, read_graphs, write_graphs

OPS = {0: "source", 1: "map", 2: "filter", 3: "map", 4: "sink"}


def reaches_sink(graph: nx.DiGraph) -> str | None:
    return None if nx.has_path(graph, 0, graph.number_of_nodes() - 1) else "the sink is not reached"


def pipeline(rule: object = reaches_sink) -> CustomSearchSpace:
    """5 nodes: source, three stages (map/filter), sink; edge 0->4 forbidden, edge 0->1 forced."""
    stage = ["map", "filter"]
    return CustomSearchSpace(
        "pipeline",
        ["source", "sink", "map", "filter"],
        n_nodes=5,
        node_choices={0: ["source"], 4: ["sink"], 1: stage, 2: stage, 3: stage},
        edge_choices={(0, 4): ["none"], (0, 1): ["edge"]},
        rule=rule,  # type: ignore[arg-type]
    )


def typed_graph(edges: list[tuple[int, int]], ops: dict[int, str] = OPS) -> nx.DiGraph:
    graph = nx.DiGraph()
    for node, op in ops.items():
        graph.add_node(node, op=op)
    graph.add_edges_from(edges)
    return graph


CHAIN = [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_masks_fixed_positions_and_rule() -> None:
    space = pipeline()
    assert isinstance(space, SearchSpace) and space.n_entries == 5 + 10
    assert space.nvec.tolist() == [4] * 5 + [2] * 10
    fixed, values = space.fixed_mask, space.fixed_values
    assert fixed[[0, 4]].all() and not fixed[[1, 2, 3]].any()  # source and sink fixed, stages free
    assert fixed[5 + edge_position(0, 4, 5)] and values[5 + edge_position(0, 4, 5)] == 0
    assert fixed[5 + edge_position(0, 1, 5)] and values[5 + edge_position(0, 1, 5)] == 1
    assert int((~fixed).sum()) == 3 + 8
    chain = space.from_networkx(typed_graph(CHAIN))
    assert space.validate(chain) is None
    assert space.validate(space.from_networkx(typed_graph([(0, 1), (1, 2)]))) == "the sink is not reached"
    forced_missing = space.from_networkx(typed_graph([(0, 2), (2, 4)]))  # 0->1 is forced
    assert "not allowed" in str(space.validate(forced_missing))
    wrong_type = space.from_networkx(typed_graph(CHAIN, {**OPS, 2: "source"}))
    assert "not allowed" in str(space.validate(wrong_type))
    assert "5 nodes" in str(space.validate(DAG(np.zeros(3, np.int64), np.zeros(3, np.int64))))


def test_encoding_round_trips_and_keys() -> None:
    space = pipeline()
    rng = np.random.default_rng(0)
    cells = [space.sample_uniform(rng) for _ in range(200)]
    for dag in cells:
        assert space.validate(dag) is None
        assert space.from_flat(dag.flat()) == dag
        assert space.from_networkx(space.to_networkx(dag)) == dag
        assert space.clamp(dag.flat()).tolist() == dag.flat().tolist()
    keys = {space.canonical_key(d): d for d in cells}
    assert len(keys) == len(set(cells))  # equal keys exactly for equal encodings
    text = space.describe(space.from_networkx(typed_graph(CHAIN)))
    assert text == "[source, map, filter, map, sink] 0->1, 1->2, 2->3, 3->4"


def test_enumeration_matches_brute_force_and_feeds_pretraining_marginals() -> None:
    space = pipeline()
    listed = list(space.enumerate_cells())
    node_allowed, edge_allowed = space.allowed
    brute = 0
    for flat in itertools.product(*(np.flatnonzero(r).tolist() for r in (*node_allowed, *edge_allowed))):
        dag = DAG.from_flat(np.array(flat), 5)
        brute += nx.has_path(space.to_networkx(dag), 0, 4)
    assert len(listed) == brute == len(set(listed)) > 0
    assert space.n_encodings == 2**3 * 2**8
    marginals = Marginals.from_cells(space, listed)
    marginals.check_compatible(space)  # mass only on allowed values, fixed entries one-hot


def test_typed_edges_and_rule_verdicts() -> None:
    space = CustomSearchSpace(
        "wired", ["in", "out", "op"], 3, edge_types=["none", "data", "control"], rule=lambda g: g.number_of_edges() > 0
    )
    assert space.nvec.tolist() == [3, 3, 3, 3, 3, 3]
    graph = nx.DiGraph()
    graph.add_nodes_from([(0, {"op": "in"}), (1, {"op": "op"}), (2, {"op": "out"})])
    graph.add_edge(0, 1, type="control")
    graph.add_edge(1, 2, type=1)
    dag = space.from_networkx(graph)
    assert dag.edges.tolist() == [2, 0, 1] and space.validate(dag) is None
    assert space.from_networkx(space.to_networkx(dag)) == dag
    assert space.describe(dag) == "[in, op, out] 0-control->1, 1-data->2"
    assert space.validate(DAG(dag.nodes, np.zeros(3, np.int64))) == "rejected by the validity rule"
    odd = CustomSearchSpace("odd", ["a"], 2, rule=lambda g: 1)  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="must return None or True"):
        odd.validate(DAG([0, 0], [0]))


def test_derive_space_from_networkx_graphs() -> None:
    graphs = [
        typed_graph(CHAIN),
        typed_graph([(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)], {**OPS, 1: "filter", 2: "map"}),
        typed_graph([(0, 1), (1, 4), (0, 3), (3, 4)]),
    ]
    space = CustomSearchSpace.from_graphs(graphs, "flows")
    assert space.node_types == ("source", "map", "filter", "sink") and space.edge_types == ("none", "edge")
    assert space.fixed_mask[[0, 3, 4]].all() and not space.fixed_mask[[1, 2]].any()  # nodes 0, 3, 4 agree
    assert space.fixed_values[5 + edge_position(0, 1, 5)] == 1  # in every graph
    assert space.fixed_values[5 + edge_position(0, 4, 5)] == 0  # in none
    for graph in graphs:
        dag = space.encode(graph)
        assert space.validate(dag) is None and space.to_networkx(dag).edges == graph.edges
    wide = CustomSearchSpace.from_graphs(graphs, "flows", choices="all")
    assert wide.fixed_mask[[0, 3, 4]].all()
    assert wide.allowed[0][1].all()  # a free node allows every type
    assert wide.flat_action_mask.sum() > space.flat_action_mask.sum()  # more values, same fixed positions


def test_derived_space_reads_relabelled_graphs_and_typed_edges() -> None:
    graph = nx.DiGraph()
    graph.add_nodes_from([("load", {"kind": "io"}), ("parse", {"kind": "cpu"}), ("save", {"kind": "io"})])
    graph.add_edge("load", "parse", via="disk")
    graph.add_edge("parse", "save", via="net")
    space = CustomSearchSpace.from_graphs([graph], "etl", node_attr="kind", edge_attr="via")
    assert space.edge_types == ("none", "disk", "net") and space.graph_attrs == ("kind", "via")
    dag = space.encode(graph)  # topological order: load, parse, save
    assert [space.node_types[t] for t in dag.nodes.tolist()] == ["io", "cpu", "io"]
    assert dag.edges.tolist() == [1, 0, 2]
    rebuilt = CustomSearchSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    assert rebuilt.encode(graph) == dag and np.array_equal(rebuilt.flat_action_mask, space.flat_action_mask)


def test_spec_with_a_rule_needs_the_rule_back() -> None:
    spec = pipeline().to_dict()
    with pytest.raises(ValueError, match="validity rule"):
        CustomSearchSpace.from_dict(spec)
    space = CustomSearchSpace.from_dict(spec, rule=reaches_sink)
    assert space.validate(space.from_networkx(typed_graph([(0, 1)]))) == "the sink is not reached"
    with pytest.raises(ValueError, match="not a custom search-space spec"):
        CustomSearchSpace.from_dict({"name": "x"})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "nb201"}, ValueError, "built-in"),
        ({"name": "has space"}, ValueError, "search-space name"),
        ({"node_types": "abc"}, TypeError, "sequence of type names"),
        ({"node_types": ["a", "a"]}, ValueError, "duplicates"),
        ({"edge_types": ["none"]}, ValueError, "at least 2"),
        ({"n_nodes": 2.5}, TypeError, "n_nodes"),
        ({"n_nodes": 1}, ValueError, "n_nodes"),
        ({"node_choices": {0: ["nope"]}}, ValueError, "unknown types"),
        ({"node_choices": {7: ["a"]}}, ValueError, "node_choices position"),
        ({"node_choices": {0: []}}, ValueError, "non-empty"),
        ({"edge_choices": {(2, 1): ["edge"]}}, ValueError, "not a forward edge"),
        ({"edge_choices": {3: ["edge"]}}, TypeError, r"\(i, j\) pairs"),
        ({"rule": "yes"}, TypeError, "rule"),
    ],
)
def test_bad_definitions_are_refused(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    args: dict[str, object] = {"name": "mine", "node_types": ["a", "b"], "n_nodes": 3, **kwargs}
    with pytest.raises(error, match=match):
        CustomSearchSpace(**args)  # type: ignore[arg-type]


def test_bad_graphs_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        CustomSearchSpace.from_graphs([], "x")
    with pytest.raises(TypeError, match=r"list of networkx\.DiGraph"):
        CustomSearchSpace.from_graphs(typed_graph(CHAIN), "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"not a networkx\.DiGraph"):
        CustomSearchSpace.from_graphs([nx.Graph()], "x")
    cyclic = typed_graph([*CHAIN, (4, 0)])
    with pytest.raises(ValueError, match="cycle"):
        CustomSearchSpace.from_graphs([cyclic], "x")
    with pytest.raises(ValueError, match="same number of nodes"):
        CustomSearchSpace.from_graphs([typed_graph(CHAIN), typed_graph([(0, 1)], {0: "source", 1: "sink"})], "x")
    untyped = typed_graph(CHAIN)
    del untyped.nodes[2]["op"]
    with pytest.raises(ValueError, match=r"graph 0, node 2 has no 'op' attribute"):
        CustomSearchSpace.from_graphs([untyped], "x")
    space = pipeline()
    with pytest.raises(ValueError, match="unknown type 'join'"):
        space.from_networkx(typed_graph(CHAIN, {**OPS, 2: "join"}))
    with pytest.raises(ValueError, match="has 2 nodes"):
        space.from_networkx(typed_graph([(0, 1)], {0: "source", 1: "sink"}))
    derived = CustomSearchSpace.from_graphs([typed_graph(CHAIN)], "x")
    with pytest.raises(ValueError, match="not a cell of x"):
        derived.encode(typed_graph([(0, 2), (2, 4)]))  # an edge never seen in the examples


def test_graph_files_round_trip(tmp_path: Path) -> None:
    graphs = [typed_graph(CHAIN), typed_graph([(0, 1), (1, 4)])]
    path = write_graphs(tmp_path / "g.json", graphs)
    back = read_graphs(path)
    assert [sorted(g.edges) for g in back] == [sorted(g.edges) for g in graphs]
    assert [dict(g.nodes(data="op")) for g in back] == [dict(g.nodes(data="op")) for g in graphs]
    node_link = {"nodes": [{"id": "a", "op": "x"}, {"id": "b", "op": "y"}], "links": [{"source": "a", "target": "b"}]}
    (tmp_path / "nl.json").write_text(json.dumps([node_link]))
    assert list(read_graphs(tmp_path / "nl.json")[0].edges) == [("a", "b")]
    nx.write_graphml(graphs[0], tmp_path / "g.graphml")
    from_graphml = read_graphs(tmp_path / "g.graphml")[0]
    assert sorted(from_graphml.nodes) == [0, 1, 2, 3, 4] and from_graphml.nodes[2]["op"] == "filter"
    space = pipeline()
    assert space.from_networkx(from_graphml) == space.from_networkx(graphs[0])


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("g.txt", "[]", "graph files are .json"),
        ("g.json", "{not json", "not a JSON file"),
        ("g.json", '{"graphs": []}', "format"),
        ("g.json", '[{"edges": []}]', "'nodes' list"),
        ("g.json", '[{"nodes": [{"id": 0}], "edges": [{"source": 0, "target": 5}]}]', "among the node ids"),
        ("g.graphml", "<graphml", "not a readable GraphML"),
    ],
)
def test_bad_graph_files_are_refused(tmp_path: Path, name: str, content: str, match: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=match):
        read_graphs(tmp_path / name)


def test_space_references(tmp_path: Path) -> None:
    module = tmp_path / "my_spaces.py"
    module.write_text(
        textwrap.dedent(
            """
            from dgpo_env.search_spaces import CustomSearchSpace

            SPACE = CustomSearchSpace("tiny", ["a", "b"], 3)
            NOT_A_SPACE = 3

            def build():
                return SPACE
            """
        )
    )
    assert load_search_space(f"{module}:SPACE").name == "tiny"
    assert load_search_space(f"{module}:build").name == "tiny"
    assert isinstance(load_search_space("dgpo_env.search_spaces:ToySearchSpace"), SearchSpace)
    for reference, match in [
        ("no_colon", "package.module:NAME"),
        (f"{module}:MISSING", "no attribute"),
        (f"{module}:NOT_A_SPACE", "not a SearchSpace"),
        (f"{tmp_path}/absent.py:X", "no Python file"),
        ("no_such_module_xyz:X", "cannot import"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_search_space(reference)
