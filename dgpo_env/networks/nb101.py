"""The NAS-Bench-101 network of a cell, as a PyTorch module (docs/networks.md).

The skeleton (NAS-Bench-101 paper, Ying et al., ICML 2019, section 2.1 and Fig. 1): a stem of a 3x3
convolution to 128 channels, batch norm and ReLU; 3 stacks of 3 copies of the cell (a *module*); before
stacks 2 and 3 a 2x2 max-pool with stride 2 halves the resolution and the modules' output channels
double (128, 256, 512); global average pooling and a dense layer to the 10 CIFAR-10 classes.

A module with ``n`` vertices (paper sections 2.1-2.2, "combine semantics"; the channel rules are those
of the official ``model_builder``):

* every vertex gets a channel count (:func:`~dgpo_env.search_spaces.nb101_params.vertex_channels`):
  the module's output channels are split evenly over the vertices that feed the output, and any other
  vertex gets the largest count among its successors;
* a vertex ``v``'s input is the sum of its in-edges: from the module input through a *projection*
  (1x1 convolution, batch norm, ReLU) to ``c_v`` channels, and from an inner vertex ``u`` the first
  ``c_v`` channels of ``u``'s output (``c_u >= c_v``);
* the vertex applies its op: ``conv3x3-bn-relu`` / ``conv1x1-bn-relu`` (bias-free convolution, batch
  norm, ReLU) or ``maxpool3x3`` (stride 1, padding 1), keeping ``c_v`` channels;
* the output is the concatenation of the vertices feeding it, plus the projection of the module
  input to the output channels when there is an input -> output edge (only that projection if no
  inner vertex feeds the output).

The parameter count is exactly :func:`~dgpo_env.search_spaces.nb101_params.network_params`
(the data set's ``trainable_parameters``). Batch norm uses the official epsilon 1e-5 and decay 0.997
(PyTorch ``momentum = 1 - 0.997``).
"""

from __future__ import annotations

import torch
from torch import nn

from dgpo_env.search_spaces.dag import DAG
from dgpo_env.search_spaces.nb101 import NB101SearchSpace, NB101Spec
from dgpo_env.search_spaces.nb101_params import (
    IMAGE_CHANNELS,
    KERNEL_SIZE,
    MODULES_PER_STACK,
    N_CLASSES,
    N_STACKS,
    STEM_CHANNELS,
    network_params,
    vertex_channels,
)
from dgpo_env.validation import check_count

BN_EPSILON = 1e-5
"""Official ``BN_EPSILON`` of the NAS-Bench-101 code."""
BN_MOMENTUM = 1 - 0.997
"""PyTorch momentum of the official batch-norm decay 0.997 (``running = 0.997 running + 0.003 batch``)."""
INPUT_SIZE = 32
"""CIFAR-10 image height and width in pixels (NB101 paper, section 2.4)."""


def cell_spec(cell: NB101Spec | DAG) -> NB101Spec:
    """The pruned official spec of an NB101 cell, checked against the benchmark's rules.

    Args:
        cell: An :class:`~dgpo_env.search_spaces.nb101.NB101Spec` (pruned or not, ``n <= 7`` vertices)
            or a 7-node :class:`~dgpo_env.search_spaces.DAG` of
            :class:`~dgpo_env.search_spaces.NB101SearchSpace`.

    Returns:
        The spec with the vertices off every input -> output path removed (the official API's pruning).

    Raises:
        TypeError: If ``cell`` is neither an ``NB101Spec`` nor a ``DAG``.
        ValueError: If it is not a valid NB101 cell (no input -> output path, more than 9 edges, ...).
    """
    space = NB101SearchSpace()
    if isinstance(cell, NB101Spec):
        cell = space.from_spec(cell)
    if not isinstance(cell, DAG):
        raise TypeError(
            "an NB101 cell must be an NB101Spec(matrix, ops) or a 7-node DAG of NB101SearchSpace; "
            f"got {cell!r} ({type(cell).__name__})"
        )
    return space.to_spec(cell)


class ConvBnRelu(nn.Sequential):
    """Bias-free convolution (``padding = kernel // 2``), batch norm, ReLU.

    Shapes: ``[B, in_channels, H, W] -> [B, out_channels, H, W]``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_channels, eps=BN_EPSILON, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=False),
        )


class NB101Module(nn.Module):
    """One NB101 module (cell instance); see the module docstring for its semantics.

    Args:
        spec: The pruned cell.
        in_channels: Channels entering the module.
        out_channels: Channels leaving it.

    Attributes:
        channels: Channel count of every vertex (entry 0 the input, the last the output).

    Shapes: ``[B, in_channels, H, W] -> [B, out_channels, H, W]``.
    """

    def __init__(self, spec: NB101Spec, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.spec = spec
        n = spec.n_vertices
        adj = spec.matrix
        self.channels = vertex_channels(in_channels, out_channels, adj)
        self.projections = nn.ModuleDict(
            {str(v): ConvBnRelu(in_channels, self.channels[v], 1) for v in range(1, n - 1) if adj[0, v]}
        )
        ops: list[nn.Module] = []
        for v in range(1, n - 1):
            kernel = KERNEL_SIZE.get(spec.ops[v])
            c = self.channels[v]
            ops.append(ConvBnRelu(c, c, kernel) if kernel is not None else nn.MaxPool2d(3, stride=1, padding=1))
        self.ops = nn.ModuleList(ops)
        self.output_projection = ConvBnRelu(in_channels, out_channels, 1) if adj[0, n - 1] else None
        self._inner_in = [[u for u in range(1, v) if adj[u, v]] for v in range(n)]
        self._feeders = [v for v in range(1, n - 1) if adj[v, n - 1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module to ``x`` of shape ``[B, in_channels, H, W]``."""
        values = [x]
        for v in range(1, self.spec.n_vertices - 1):
            c = self.channels[v]
            terms = [values[u][:, :c] for u in self._inner_in[v]]  # truncate to c_v channels
            if str(v) in self.projections:
                terms.append(self.projections[str(v)](x))
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            values.append(self.ops[v - 1](total))
        if not self._feeders:  # the input -> output edge alone
            assert self.output_projection is not None
            return self.output_projection(x)
        out = torch.cat([values[v] for v in self._feeders], dim=1)  # [B, out_channels, H, W]
        if self.output_projection is not None:
            out = out + self.output_projection(x)
        return out


class NB101Network(nn.Module):
    """The NAS-Bench-101 network of one cell (see the module docstring for the skeleton).

    Args:
        spec: The pruned cell.
        num_classes: Dense-layer outputs.
        stem_channels: Channels of the stem and the first stack.
        n_stacks: Stacks; channels double and a max-pool halves the resolution before each but the first.
        modules_per_stack: Modules per stack.

    Attributes:
        spec: The pruned cell.
        num_classes: Dense-layer outputs.

    Shapes: images ``float[B, 3, H, W]`` (32x32 for CIFAR-10) to logits ``float[B, num_classes]``.
    """

    def __init__(
        self,
        spec: NB101Spec,
        num_classes: int = N_CLASSES,
        stem_channels: int = STEM_CHANNELS,
        n_stacks: int = N_STACKS,
        modules_per_stack: int = MODULES_PER_STACK,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.num_classes = num_classes
        layers: list[nn.Module] = [ConvBnRelu(IMAGE_CHANNELS, stem_channels, 3)]
        channels = stem_channels
        for stack in range(n_stacks):
            out_channels = channels
            if stack > 0:  # 'same' padding: odd sides round up, as in the official max-pool
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                out_channels = channels * 2
            for _ in range(modules_per_stack):
                layers.append(NB101Module(spec, channels, out_channels))
                channels = out_channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of images ``[B, 3, H, W]``.

        Raises:
            ValueError: If ``x`` is not a batch of 3-channel images.
        """
        if x.dim() != 4 or x.shape[1] != IMAGE_CHANNELS:
            raise ValueError(f"expected images of shape [B, 3, H, W], e.g. [B, 3, 32, 32]; got {list(x.shape)}")
        features = self.features(x)  # [B, C, H', W']
        return self.classifier(features.mean(dim=(2, 3)))  # global average pooling -> [B, num_classes]


def _checked_sizes(
    num_classes: object, stem_channels: object, n_stacks: object, modules_per_stack: object
) -> tuple[int, int, int, int]:
    return (
        check_count("num_classes", num_classes, minimum=1),
        check_count("stem_channels", stem_channels, minimum=1),
        check_count("n_stacks", n_stacks, minimum=1),
        check_count("modules_per_stack", modules_per_stack, minimum=1),
    )


def nb101_network(
    cell: NB101Spec | DAG,
    num_classes: int = N_CLASSES,
    *,
    stem_channels: int = STEM_CHANNELS,
    n_stacks: int = N_STACKS,
    modules_per_stack: int = MODULES_PER_STACK,
) -> NB101Network:
    """Build the NAS-Bench-101 network of a cell.

    Args:
        cell: An ``NB101Spec`` or a 7-node NB101 DAG (pruned first, see :func:`cell_spec`).
        num_classes: Dense-layer outputs (10 for the benchmark's CIFAR-10).
        stem_channels: Channels of the stem (default 128, the benchmark's).
        n_stacks: Stacks (default 3).
        modules_per_stack: Modules per stack (default 3).

    Returns:
        The network, with PyTorch's default initialisation, in training mode. Its parameter count is
        :func:`nb101_param_count` of the same arguments.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If the cell is not a valid NB101 cell or a count is not positive.
    """
    spec = cell_spec(cell)
    return NB101Network(spec, *_checked_sizes(num_classes, stem_channels, n_stacks, modules_per_stack))


def nb101_param_count(
    cell: NB101Spec | DAG,
    num_classes: int = N_CLASSES,
    *,
    stem_channels: int = STEM_CHANNELS,
    n_stacks: int = N_STACKS,
    modules_per_stack: int = MODULES_PER_STACK,
) -> int:
    """Exact trainable-parameter count of :func:`nb101_network`, computed without building it.

    This is :func:`~dgpo_env.search_spaces.nb101_params.network_params` of the pruned cell: 2,694,282
    for the official README's Inception-like cell.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If the cell is not a valid NB101 cell or a count is not positive.
    """
    spec = cell_spec(cell)
    classes, stem, stacks, per_stack = _checked_sizes(num_classes, stem_channels, n_stacks, modules_per_stack)
    return network_params(spec, stem, stacks, per_stack, classes)
