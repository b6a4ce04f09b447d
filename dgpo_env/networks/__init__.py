"""From a generated cell to the PyTorch network it describes (docs/networks.md).

:func:`to_torch` builds the benchmark's network of an NB201 or NB101 cell; :func:`count_params` gives its
exact parameter count without building it (the benchmarks' ``params`` column, times 1e6)::

    from dgpo_env.networks import to_torch

    net = to_torch("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
                   "nb201", dataset="cifar100")
    logits = net(torch.randn(8, 3, 32, 32))  # [8, 100]
"""

from dgpo_env.networks.build import count_params, n_parameters, to_torch
from dgpo_env.networks.nb101 import NB101Module, NB101Network, nb101_network, nb101_param_count
from dgpo_env.networks.nb201 import NB201Cell, NB201Network, nb201_network, nb201_param_count

__all__ = [
    "NB101Module",
    "NB101Network",
    "NB201Cell",
    "NB201Network",
    "count_params",
    "n_parameters",
    "nb101_network",
    "nb101_param_count",
    "nb201_network",
    "nb201_param_count",
    "to_torch",
]
