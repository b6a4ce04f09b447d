"""Search spaces: cells as topologically ordered typed DAGs (docs/encodings.md)."""

from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.custom import CustomSearchSpace
from dgpo_env.search_spaces.dag import DAG, edge_position, n_upper, upper_indices
from dgpo_env.search_spaces.graph_encoding import encode_graph
from dgpo_env.search_spaces.nb101 import NB101_OPS, NB101SearchSpace
from dgpo_env.search_spaces.nb201 import NB201_OPS, NB201SearchSpace
from dgpo_env.search_spaces.toy import ToySearchSpace

__all__ = [
    "DAG",
    "NB101_OPS",
    "NB201_OPS",
    "CustomSearchSpace",
    "NB101SearchSpace",
    "NB201SearchSpace",
    "SearchSpace",
    "ToySearchSpace",
    "edge_position",
    "encode_graph",
    "n_upper",
    "upper_indices",
]
