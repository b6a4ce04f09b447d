"""Exact trainable-parameter count of the NAS-Bench-101 network built from a cell.

The network (NAS-Bench-101 paper, section 2.1 and Fig. 1; official ``model_builder``):

* stem: 3x3 convolution from the 3 image channels to 128 channels, batch norm, ReLU;
* 3 stacks of 3 copies of the cell; before stacks 2 and 3 a 2x2 max-pool halves the resolution and
  the cell output channels double (128, 256, 512);
* global average pooling and a dense layer to the 10 CIFAR-10 classes (weights and biases).

Inside a cell (``build_module`` / ``compute_vertex_channels``): the output channels ``C`` are split
evenly over the vertices that feed the output (the first ``C mod k`` of them get one extra channel);
any other inner vertex gets the largest channel count among its inner successors. An edge from the
cell input to an inner vertex ``v`` is a *projection* (1x1 convolution + batch norm + ReLU) to
``c_v`` channels; an input -> output edge is a projection to ``C`` channels. Convolutions have no
bias; every batch norm has a trainable scale and offset (``2 c`` parameters); max-pooling has none.

The count depends on the vertex *order*, not only on the isomorphism class: when ``C`` does not
divide evenly, the extra channels go to the lowest-numbered vertices feeding the output. So two
isomorphic encodings (same graph hash) can differ slightly (e.g. 1,861,666 vs 1,865,770 for two
5-vertex cells with a 43/43/42 split); the data set's ``trainable_parameters`` is the count of the
representative it stores. The counts here reproduce NASLib's ``params`` of 500 real NB101 encodings
bit for bit (as float32 millions) and the official README's 2,694,282.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from dgpo_env.search_spaces.dag import DAG
from dgpo_env.search_spaces.nb101 import NB101_OPS, NB101SearchSpace, NB101Spec

STEM_CHANNELS = 128  # official config['stem_filter_size']
N_STACKS = 3  # official config['num_stacks']
MODULES_PER_STACK = 3  # official config['num_modules_per_stack']
N_CLASSES = 10  # CIFAR-10, official config['num_labels']
IMAGE_CHANNELS = 3  # RGB input
KERNEL_SIZE: dict[str, int] = {"conv3x3-bn-relu": 3, "conv1x1-bn-relu": 1}
"""Convolution ops and their kernel size; ``maxpool3x3`` has no parameters."""
assert set(KERNEL_SIZE) | {"maxpool3x3"} == set(NB101_OPS)


def conv_bn_params(in_channels: int, out_channels: int, kernel: int) -> int:
    """Parameters of a bias-free ``kernel x kernel`` convolution followed by batch norm (scale, offset)."""
    return kernel * kernel * in_channels * out_channels + 2 * out_channels


def vertex_channels(input_channels: int, output_channels: int, matrix: ArrayLike) -> list[int]:
    """Output channels of every vertex of a pruned cell (official ``compute_vertex_channels``).

    Args:
        input_channels: Channels entering the cell (vertex 0).
        output_channels: Channels leaving the cell (the last vertex).
        matrix: ``[n, n]`` 0/1 adjacency of the pruned cell.

    Returns:
        ``n`` channel counts; entry 0 is ``input_channels``, entry ``n - 1`` is ``output_channels``.

    Raises:
        ValueError: If the matrix is not a pruned cell (an inner vertex has no path to the output).
    """
    adj = np.asarray(matrix, dtype=np.int64)  # [n, n]
    n = adj.shape[0]
    channels = [0] * n
    channels[0], channels[n - 1] = input_channels, output_channels
    if n == 2:
        return channels
    feeders = [v for v in range(1, n - 1) if adj[v, n - 1]]
    if not feeders:
        raise ValueError("no inner vertex feeds the output: prune the cell before counting parameters")
    share, extra = divmod(output_channels, len(feeders))
    for rank, v in enumerate(feeders):
        channels[v] = share + (1 if rank < extra else 0)
    for v in range(n - 3, 0, -1):  # backwards; vertex n-2 can only feed the output
        if not adj[v, n - 1]:
            channels[v] = max((channels[d] for d in range(v + 1, n - 1) if adj[v, d]), default=0)
        if channels[v] <= 0:
            raise ValueError(f"inner vertex {v} has no path to the output: prune the cell first")
    assert sum(channels[v] for v in feeders) == output_channels
    return channels


def module_params(spec: NB101Spec, input_channels: int, output_channels: int) -> int:
    """Trainable parameters of one cell instance.

    Args:
        spec: The pruned cell.
        input_channels: Channels entering the cell.
        output_channels: Channels leaving the cell.
    """
    adj = spec.matrix
    n = spec.n_vertices
    channels = vertex_channels(input_channels, output_channels, adj)
    total = 0
    for v in range(1, n - 1):
        if adj[0, v]:  # projection of the cell input
            total += conv_bn_params(input_channels, channels[v], 1)
        kernel = KERNEL_SIZE.get(spec.ops[v])
        if kernel is not None:  # the op itself; its input has channels[v] channels (sum of truncated inputs)
            total += conv_bn_params(channels[v], channels[v], kernel)
    if adj[0, n - 1]:  # input -> output projection
        total += conv_bn_params(input_channels, output_channels, 1)
    return total


def network_params(
    spec: NB101Spec,
    stem_channels: int = STEM_CHANNELS,
    n_stacks: int = N_STACKS,
    modules_per_stack: int = MODULES_PER_STACK,
    n_classes: int = N_CLASSES,
) -> int:
    """Trainable parameters of the whole NAS-Bench-101 network for a pruned cell.

    Args:
        spec: The pruned cell (see :meth:`NB101SearchSpace.to_spec`).
        stem_channels: Output channels of the stem convolution.
        n_stacks: Number of stacks; channels double at the start of every stack but the first.
        modules_per_stack: Cells per stack.
        n_classes: Classifier outputs.

    Returns:
        The exact count; 2,694,282 for the official README's Inception-like cell.
    """
    total = conv_bn_params(IMAGE_CHANNELS, stem_channels, 3)
    in_channels = stem_channels
    for stack in range(n_stacks):
        out_channels = in_channels * 2 if stack > 0 else in_channels
        for _ in range(modules_per_stack):
            total += module_params(spec, in_channels, out_channels)
            in_channels = out_channels
    return total + in_channels * n_classes + n_classes


def cell_params(dag: DAG, space: NB101SearchSpace | None = None) -> int:
    """Trainable parameters of the NB101 network for a 7-node cell (pruned first).

    Raises:
        ValueError: If ``dag`` is not a valid NB101 cell.
    """
    space = space if space is not None else NB101SearchSpace()
    return network_params(space.to_spec(dag))
