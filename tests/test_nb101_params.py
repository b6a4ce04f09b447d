"""Exact NAS-Bench-101 parameter counts."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from nb101_cells import C1, CELLS_CSV, INCEPTION, KNOWN, MP

from dgpo_env.search_spaces.nb101 import NB101SearchSpace, NB101Spec
from dgpo_env.search_spaces.nb101_params import (
    cell_params,
    conv_bn_params,
    module_params,
    network_params,
    vertex_channels,
)


def test_inception_cell_matches_official_readme() -> None:
    assert network_params(INCEPTION) == 2_694_282  # docs/networks.md §3 (the official README's cell)
    space = NB101SearchSpace()
    assert cell_params(space.from_spec(INCEPTION)) == 2_694_282


def test_known_record_parameter_count() -> None:
    assert network_params(KNOWN) == 8_555_530


def test_vertex_channels_split_the_output() -> None:
    # Inception cell: four vertices feed the output -> 128 / 4 = 32 each; vertex 3 feeds vertex 4 only
    assert vertex_channels(128, 128, INCEPTION.matrix) == [128, 32, 32, 32, 32, 32, 128]
    # three feeders of 128 channels: the remainder channel goes to the first one(s) in vertex order
    m = np.array([[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])
    assert vertex_channels(128, 128, m) == [128, 43, 43, 42, 128]
    assert vertex_channels(128, 256, [[0, 1], [0, 0]]) == [128, 256]
    with pytest.raises(ValueError, match="prune"):
        vertex_channels(128, 128, [[0, 1, 0], [0, 0, 0], [0, 0, 0]])


def test_input_to_output_cell_by_hand() -> None:
    spec = NB101Spec(np.array([[0, 1], [0, 0]]), ("input", "output"))
    stem = 3 * 3 * 3 * 128 + 2 * 128
    projections = 3 * conv_bn_params(128, 128, 1) + conv_bn_params(128, 256, 1) + 2 * conv_bn_params(256, 256, 1)
    projections += conv_bn_params(256, 512, 1) + 2 * conv_bn_params(512, 512, 1)
    assert network_params(spec) == stem + projections + 512 * 10 + 10
    assert module_params(spec, 128, 128) == 128 * 128 + 256


def test_maxpool_has_no_parameters() -> None:
    only_pool = NB101Spec(np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]]), ("input", MP, "output"))
    conv1 = NB101Spec(only_pool.matrix, ("input", C1, "output"))
    # the pool cell holds just the input projection; the 1x1 conv adds c^2 + 2c per module
    assert module_params(only_pool, 128, 128) == conv_bn_params(128, 128, 1)
    assert module_params(conv1, 128, 128) - module_params(only_pool, 128, 128) == 128 * 128 + 256


def test_invalid_cell_is_rejected() -> None:
    space = NB101SearchSpace()
    from dgpo_env.search_spaces.dag import DAG

    with pytest.raises(ValueError, match="not a valid NAS-Bench-101 cell"):
        cell_params(DAG(np.array([0, 2, 2, 2, 2, 2, 1]), np.zeros(21)), space)


def test_agrees_with_naslib_params_of_500_real_cells() -> None:
    if not CELLS_CSV.is_file():
        pytest.skip(f"{CELLS_CSV} not present (reference data beside the project)")
    space = NB101SearchSpace()
    with CELLS_CSV.open() as fh:
        rows = list(csv.DictReader(fh))
    ours = np.array(
        [cell_params(space.from_adjacency_bits(r["adjacency_upper_bits"], r["ops"].split(",")), space) for r in rows]
    )
    theirs = np.array([float(r["params_M"]) for r in rows])
    # NASLib stores params in millions as float32: our exact counts reproduce every value bit for bit.
    assert np.array_equal((ours / 1e6).astype(np.float32), theirs.astype(np.float32))
    assert all(str(np.float32(p / 1e6)) == r["params_M"] for p, r in zip(ours.tolist(), rows, strict=True))
    # In decimal, 498 of 500 match to the file's 6 decimals; 2 (21,384,074) print as 21.384073 in float32.
    assert int(np.sum(np.round(ours / 1e6, 6) == theirs)) == 498
    assert ours[3] == 882_570 and len(set(ours.tolist())) > 100  # row 4 prunes to input -> maxpool -> output
