"""NAS-Bench-101 cells with known official values, shared by the NB101 tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dgpo_env.search_spaces.nb101 import NB101_OPS, NB101Spec

CELLS_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nb101" / "naslib_500_cells.csv"
"""500 real cells (reference data beside the project; tests skip when it is absent)."""

C3, C1, MP = NB101_OPS

INCEPTION = NB101Spec(
    np.array(
        [
            [0, 1, 1, 1, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
        ]
    ),
    ("input", C1, C3, C3, C3, MP, "output"),
)
"""The official README's Inception-like cell, as written there (2,694,282 parameters)."""

INCEPTION_STORED = NB101Spec(
    np.array(
        [
            [0, 1, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
        ]
    ),
    ("input", C3, C1, MP, C3, C3, "output"),
)
"""The same cell as the data set stores it (official colab output: vertices relabelled)."""

KNOWN_HASH = "00005c142e6f48ac74fdcf73e3439874"
KNOWN = NB101Spec(
    np.array(
        [
            [0, 1, 0, 0, 1, 1, 0],
            [0, 0, 1, 0, 0, 0, 0],
            [0, 0, 0, 1, 0, 0, 1],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
        ]
    ),
    ("input", C3, MP, C3, C3, C1, "output"),
)
"""A record of nasbench_only108.tfrecord with its module hash (quoted by several public projects);
trainable_parameters 8,555,530."""
