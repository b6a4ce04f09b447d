import networkx as nx
import numpy as np
import pytest

from dgpo_env.search_spaces import DAG, NB201_OPS, NB201SearchSpace, ToySearchSpace, edge_position, upper_indices
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.nb101 import NB101SearchSpace

SPACE = NB201SearchSpace()


def test_upper_indices_row_major_and_edge_position():
    rows, cols = upper_indices(4)
    assert list(zip(rows.tolist(), cols.tolist(), strict=False)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    for k, (i, j) in enumerate(zip(rows.tolist(), cols.tolist(), strict=False)):
        assert edge_position(i, j, 4) == k
    with pytest.raises(ValueError, match="forward edge"):
        edge_position(2, 1, 4)


def test_dag_value_semantics_and_adjacency():
    a = DAG([0, 2, 1], [1, 0, 1])
    b = DAG(np.array([0, 2, 1]), np.array([1, 0, 1]))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    adj = a.adjacency()
    assert adj.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert DAG.from_adjacency([0, 2, 1], adj) == a
    assert a.edge_list() == [(0, 1), (1, 2)]
    with pytest.raises(ValueError):
        a.nodes[0] = 3  # read-only
    with pytest.raises(ValueError, match="upper-triangle"):
        DAG([0, 1, 2], [1, 0])
    with pytest.raises(ValueError, match="topological order"):
        DAG.from_adjacency([0, 1], [[0, 0], [1, 0]])


def test_nb201_fixed_adjacency_matches_design():
    dag = SPACE.from_ops(["none"] * 6)
    assert dag.edge_list() == [(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6), (4, 7), (5, 7), (6, 7)]
    assert SPACE.fixed_mask.sum() == 2 + 28  # input, output and every edge
    assert SPACE.free_positions.tolist() == [1, 2, 3, 4, 5, 6]
    assert SPACE.flat_action_mask.shape == (int(SPACE.nvec.sum()),)


def test_nb201_round_trip_of_every_cell():
    seen_strings, seen_indices = set(), set()
    for code in range(15_625):
        dag = SPACE.from_code(code)
        arch = SPACE.to_arch_str(dag)
        index = SPACE.to_index(dag)
        assert SPACE.from_arch_str(arch) == dag
        assert SPACE.from_index(index) == dag
        assert SPACE.to_code(dag) == code
        assert SPACE.from_networkx(SPACE.to_networkx(dag)) == dag
        assert SPACE.from_flat(dag.flat()) == dag
        assert SPACE.validate(dag) is None
        seen_strings.add(arch)
        seen_indices.add(index)
    assert len(seen_strings) == 15_625 and seen_indices == set(range(15_625))


def test_nb201_known_cells():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    dag = SPACE.from_arch_str(arch)
    assert SPACE.to_index(dag) == 6111
    assert SPACE.to_config_id(dag) == "333132"
    graph = SPACE.to_networkx(dag)
    assert nx.is_directed_acyclic_graph(graph)
    assert [graph.nodes[i]["op"] for i in range(8)] == ["input", *SPACE.ops(dag), "output"]


def test_nb201_errors_name_the_problem():
    with pytest.raises(ValueError, match="not an NB201 arch string"):
        SPACE.from_arch_str("|conv~0|")
    with pytest.raises(ValueError, match="unknown NB201 ops"):
        SPACE.from_ops(["conv"] * 6)
    with pytest.raises(ValueError, match=r"index must be an integer in 0 \.\. 15624"):
        SPACE.from_index(15_625)
    bad = DAG([0, 1, *[2] * 5, 1], SPACE.fixed_edges)
    assert "op nodes [1]" in SPACE.validate(bad)
    with pytest.raises(ValueError, match="not a valid NAS-Bench-201 cell"):
        SPACE.to_arch_str(bad)


def test_neighbours_and_uniform_sampling():
    dag = SPACE.from_code(0)
    neighbours = list(SPACE.neighbours(dag))
    assert len(neighbours) == 6 * 4
    assert all(np.sum(n.flat() != dag.flat()) == 1 for n in neighbours)
    rng = np.random.default_rng(0)
    ops = np.array([SPACE.to_code(SPACE.sample_uniform(rng)) for _ in range(2000)])
    assert len(set(ops.tolist())) > 1800  # uniform over 15,625 cells: few repeats


def test_toy_space_validity():
    toy = ToySearchSpace()
    nodes = [0, 2, 2, 2, 2, 1]
    no_path = DAG(nodes, np.zeros(toy.n_edges, dtype=np.int64))
    assert toy.validate(no_path) == "no path from the input to the output"
    direct = np.zeros(toy.n_edges, dtype=np.int64)
    direct[edge_position(0, 5, 6)] = 1
    assert toy.validate(DAG(nodes, direct)) is None
    assert "not allowed" in toy.validate(DAG([0, 1, 2, 2, 2, 1], direct))
    assert len(NB201_OPS) == 5


@pytest.mark.parametrize("space", [NB201SearchSpace(), ToySearchSpace(), NB101SearchSpace()], ids=lambda s: s.name)
def test_sample_uniform_draws_what_one_choice_per_entry_draws(space: SearchSpace) -> None:
    """The batched draw keeps every seed's cells: one ``rng.choice`` per entry, then rejection of invalid cells."""

    def reference(rng: np.random.Generator) -> DAG:
        node_allowed, edge_allowed = space.allowed
        while True:
            nodes = np.array([rng.choice(np.flatnonzero(row)) for row in node_allowed], dtype=np.int64)
            edges = np.array([rng.choice(np.flatnonzero(row)) for row in edge_allowed], dtype=np.int64)
            if space.validate(DAG(nodes, edges)) is None:
                return DAG(nodes, edges)

    for seed in range(5):
        fast, slow = np.random.default_rng(seed), np.random.default_rng(seed)
        for _ in range(10):
            assert space.sample_uniform(fast).flat().tolist() == reference(slow).flat().tolist()
