"""The NAS-Bench-201 network of a cell, as a PyTorch module, and its exact parameter count (docs/networks.md).

The macro skeleton (NAS-Bench-201 paper, Dong & Yang, ICLR 2020, section 2.1 and Fig. 1):

* stem: 3x3 convolution from the 3 image channels to ``C = 16`` channels (no bias) and batch norm;
* three stages of ``N = 5`` copies of the cell with ``C``, ``2C``, ``4C`` = 16, 32, 64 channels;
* between stages, a residual basic block with stride 2: ReLU-Conv3x3(stride 2)-BN, ReLU-Conv3x3-BN,
  and a shortcut of 2x2 average pooling (stride 2) and a bias-free 1x1 convolution;
* batch norm and ReLU, global average pooling, and a linear classifier (weights and bias) to
  10 (CIFAR-10), 100 (CIFAR-100) or 120 (ImageNet16-120) classes (paper section 2.2).

The final batch norm + ReLU is not in the paper's text but is in the official network (``TinyNetwork``
of the NAS-Bench-201 code); the benchmark's parameter counts include it.

Inside a cell (section 2.1): 4 feature maps ``x0 .. x3``; ``x0`` is the cell input, and
``x_j = sum_{i < j} op_ij(x_i)`` with one op per edge, in the arch-string order
``0->1; 0->2, 1->2; 0->3, 1->3, 2->3``; ``x3`` is the cell output. The ops keep the channel count
and the resolution: ``none`` (zeros), ``skip_connect`` (identity), ``nor_conv_1x1`` and
``nor_conv_3x3`` (ReLU, bias-free convolution, batch norm) and ``avg_pool_3x3`` (stride 1, padding 1,
padded positions not counted).

Parameter counts: every convolution weight, every batch-norm scale and offset (``2 c`` per batch
norm) and the classifier's weights and biases — what ``sum(p.numel() for p in net.parameters())``
counts and what the benchmark's ``params`` column holds (in millions). Batch-norm running statistics
are buffers, not parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dgpo_env.search_spaces.dag import DAG
from dgpo_env.search_spaces.nb201 import NB201_OPS, NB201SearchSpace
from dgpo_env.validation import check_count

STEM_CHANNELS = 16
"""``C``: channels of the stem and the first stage (NB201 paper, section 2.1)."""
CELLS_PER_STAGE = 5
"""``N``: cells per stage (NB201 paper, section 2.1)."""
N_STAGES = 3
"""Stages of cells; channels double and the resolution halves from one to the next (section 2.1)."""
IMAGE_CHANNELS = 3
"""RGB input."""
NUM_CLASSES: dict[str, int] = {"cifar10": 10, "cifar100": 100, "imagenet16": 120}
"""Classes per dataset, under the project's dataset names (NB201 paper, section 2.2)."""
INPUT_SIZE: dict[str, int] = {"cifar10": 32, "cifar100": 32, "imagenet16": 16}
"""Image height and width in pixels per dataset (32x32 CIFAR, 16x16 ImageNet16-120; section 2.2)."""
CELL_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
"""The cell's six edges ``i -> j`` between its 4 feature maps, in arch-string order."""
KERNEL_SIZE: dict[str, int] = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
"""The convolution ops and their kernel size; the other ops have no parameters."""
_SPACE = NB201SearchSpace()


# ---------------------------------------------------------------------------------------------- cells
def cell_ops(cell: str | DAG | Sequence[str]) -> tuple[str, ...]:
    """The six op names of an NB201 cell, in arch-string order.

    Args:
        cell: An arch string ``"|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"``, an 8-node
            :class:`~dgpo_env.search_spaces.DAG` of :class:`~dgpo_env.search_spaces.NB201SearchSpace`,
            or a sequence of six op names from :data:`~dgpo_env.search_spaces.NB201_OPS`.

    Raises:
        TypeError: If ``cell`` is none of these types.
        ValueError: If it is not a valid NB201 cell (the message says why).
    """
    space = _SPACE
    if isinstance(cell, str):
        return space.ops(space.from_arch_str(cell))
    if isinstance(cell, DAG):
        return space.ops(cell)
    if isinstance(cell, Sequence) and all(isinstance(op, str) for op in cell):
        return space.ops(space.from_ops(list(cell)))
    raise TypeError(
        "an NB201 cell must be an arch string such as '|nor_conv_3x3~0|+|...|', a DAG of NB201SearchSpace "
        f"or a sequence of six op names from {NB201_OPS}; got {cell!r} ({type(cell).__name__})"
    )


def check_num_classes(num_classes: object) -> int:
    """``num_classes`` as an ``int`` if it is a positive integer.

    Raises:
        TypeError: If it is not an integer (``True``, ``10.0`` and ``"10"`` are refused).
        ValueError: If it is smaller than 1.
    """
    return check_count("num_classes", num_classes, minimum=1)


# ---------------------------------------------------------------------------------------------- counts
def relu_conv_bn_params(in_channels: int, out_channels: int, kernel: int) -> int:
    """Parameters of ReLU, a bias-free ``kernel x kernel`` convolution and batch norm (scale, offset)."""
    return kernel * kernel * in_channels * out_channels + 2 * out_channels


def residual_block_params(in_channels: int, out_channels: int) -> int:
    """Parameters of the stride-2 residual block between stages: two ReLU-Conv3x3-BN and a 1x1 shortcut."""
    return (
        relu_conv_bn_params(in_channels, out_channels, 3)
        + relu_conv_bn_params(out_channels, out_channels, 3)
        + in_channels * out_channels  # shortcut: average pooling, then a bias-free 1x1 convolution (no BN)
    )


def cell_params(ops: Sequence[str], channels: int) -> int:
    """Parameters of one cell with ``channels`` channels (only the convolution ops have any)."""
    return sum(relu_conv_bn_params(channels, channels, KERNEL_SIZE[op]) for op in ops if op in KERNEL_SIZE)


def nb201_param_count(
    cell: str | DAG | Sequence[str],
    num_classes: int = 10,
    *,
    channels: int = STEM_CHANNELS,
    cells_per_stage: int = CELLS_PER_STAGE,
) -> int:
    """Exact trainable-parameter count of :func:`nb201_network`, computed without building it.

    Args:
        cell: The cell (see :func:`cell_ops`).
        num_classes: Classifier outputs: 10, 100 or 120 for the benchmark's datasets.
        channels: ``C``, channels of the stem and the first stage.
        cells_per_stage: ``N``, cells per stage.

    Returns:
        The count; the benchmark's ``params`` column is this number divided by 1e6 (e.g. 73,306 for the
        all-``none`` cell on CIFAR-10).

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If the cell is not an NB201 cell or a count is not positive.
    """
    ops = cell_ops(cell)
    num_classes = check_num_classes(num_classes)
    channels = check_count("channels", channels, minimum=1)
    cells_per_stage = check_count("cells_per_stage", cells_per_stage, minimum=1)
    total = relu_conv_bn_params(IMAGE_CHANNELS, channels, 3)  # stem: conv + BN (no ReLU; ReLU has no parameters)
    for stage in range(N_STAGES):
        width = channels * 2**stage
        if stage > 0:
            total += residual_block_params(width // 2, width)
        total += cells_per_stage * cell_params(ops, width)
    final = channels * 2 ** (N_STAGES - 1)
    return total + 2 * final + final * num_classes + num_classes  # last BN, classifier


# ---------------------------------------------------------------------------------------------- modules
class ReLUConvBN(nn.Sequential):
    """ReLU, bias-free convolution (``padding = kernel // 2``), batch norm: NB201's ``nor_conv`` ops.

    Shapes: ``[B, in_channels, H, W] -> [B, out_channels, H', W']`` with ``H' = ceil(H / stride)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_channels),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros of the input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, C, H, W]`` zeros."""
        return torch.zeros_like(x)


def make_op(op: str, channels: int) -> nn.Module:
    """The module of one NB201 op on ``channels`` channels (stride 1, shape-preserving).

    Raises:
        ValueError: If ``op`` is not one of :data:`~dgpo_env.search_spaces.NB201_OPS`.
    """
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op in KERNEL_SIZE:
        return ReLUConvBN(channels, channels, KERNEL_SIZE[op])
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB201 op {op!r}; choose from {NB201_OPS}")


class NB201Cell(nn.Module):
    """One NB201 cell: ``x_j = sum_{i < j} op_ij(x_i)`` over 4 feature maps; the output is ``x_3``.

    Args:
        ops: Six op names in arch-string order (edges :data:`CELL_EDGES`).
        channels: Channels in and out.

    Shapes: ``[B, channels, H, W] -> [B, channels, H, W]``.
    """

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.edges = nn.ModuleList(make_op(op, channels) for op in self.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the cell to ``x`` of shape ``[B, C, H, W]``."""
        nodes = [x]
        for j in range(1, 4):
            incoming = [self.edges[k](nodes[i]) for k, (i, jj) in enumerate(CELL_EDGES) if jj == j]
            total = incoming[0]
            for term in incoming[1:]:
                total = total + term
            nodes.append(total)
        return nodes[3]


class ResidualBlock(nn.Module):
    """The stride-2 ResNet basic block between stages (NB201 paper, section 2.1).

    Shapes: ``[B, in_channels, H, W] -> [B, out_channels, H / 2, W / 2]`` (``H``, ``W`` even).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(in_channels, out_channels, 3, stride=2)
        self.conv_b = ReLUConvBN(out_channels, out_channels, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(in_channels, out_channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual sum of the two convolutions and the pooled, projected input."""
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """The NAS-Bench-201 network of one cell (see the module docstring for the skeleton).

    Args:
        ops: The six op names of the cell, arch-string order.
        num_classes: Classifier outputs.
        channels: ``C``; the stages have ``C``, ``2C``, ``4C`` channels.
        cells_per_stage: ``N``.

    Attributes:
        arch_str: The cell's official arch string.
        num_classes: Classifier outputs.

    Shapes: images ``float[B, 3, H, W]`` (``H``, ``W`` divisible by 4; 32 for CIFAR, 16 for
    ImageNet16-120) to logits ``float[B, num_classes]``.
    """

    def __init__(
        self,
        ops: Sequence[str],
        num_classes: int,
        channels: int = STEM_CHANNELS,
        cells_per_stage: int = CELLS_PER_STAGE,
    ) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.num_classes = num_classes
        self.stem = nn.Sequential(
            nn.Conv2d(IMAGE_CHANNELS, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        layers: list[nn.Module] = []
        for stage in range(N_STAGES):
            width = channels * 2**stage
            if stage > 0:
                layers.append(ResidualBlock(width // 2, width))
            layers.extend(NB201Cell(self.ops, width) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        final = channels * 2 ** (N_STAGES - 1)
        self.head = nn.Sequential(nn.BatchNorm2d(final), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(final, num_classes)

    @property
    def arch_str(self) -> str:
        """The official arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        o = self.ops
        return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of images ``[B, 3, H, W]``.

        Raises:
            ValueError: If ``x`` is not a batch of 3-channel images with sides divisible by 4.
        """
        if x.dim() != 4 or x.shape[1] != IMAGE_CHANNELS or x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(
                f"expected images of shape [B, 3, H, W] with H and W divisible by 4 (two stride-2 blocks), "
                f"e.g. [B, 3, 32, 32] for CIFAR or [B, 3, 16, 16] for ImageNet16-120; got {list(x.shape)}"
            )
        features = self.head(self.cells(self.stem(x)))  # [B, 4C, H / 4, W / 4]
        return self.classifier(self.pool(features).flatten(1))  # [B, num_classes]


def nb201_network(
    cell: str | DAG | Sequence[str],
    num_classes: int = 10,
    *,
    channels: int = STEM_CHANNELS,
    cells_per_stage: int = CELLS_PER_STAGE,
) -> NB201Network:
    """Build the NAS-Bench-201 network of a cell.

    Args:
        cell: An arch string, an NB201 DAG or six op names (see :func:`cell_ops`).
        num_classes: Classifier outputs: 10 (CIFAR-10), 100 (CIFAR-100), 120 (ImageNet16-120).
        channels: ``C`` (default 16, the benchmark's).
        cells_per_stage: ``N`` (default 5, the benchmark's).

    Returns:
        The network, with PyTorch's default initialisation, in training mode. Its parameter count is
        :func:`nb201_param_count` of the same arguments.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If the cell is not an NB201 cell or a count is not positive.

    Example:
        >>> net = nb201_network("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", 100)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 100])
    """
    ops = cell_ops(cell)
    return NB201Network(
        ops,
        check_num_classes(num_classes),
        check_count("channels", channels, minimum=1),
        check_count("cells_per_stage", cells_per_stage, minimum=1),
    )
