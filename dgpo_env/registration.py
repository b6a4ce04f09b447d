"""Every ``gym.make`` id of the package, registered in one place.

Ids live in the ``dgpo_env`` namespace and are versioned; keyword arguments given to
``gym.make(id, **kwargs)`` override the defaults below.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

ENTRY_POINT = "dgpo_env.envs.graph_denoise:GraphDenoiseEnv"

ENV_SPECS: dict[str, dict[str, Any]] = {
    "dgpo_env/NB201-CIFAR10-v0": {"benchmark": "nb201", "benchmark_kwargs": {"dataset": "cifar10"}},
    "dgpo_env/NB201-CIFAR100-v0": {"benchmark": "nb201", "benchmark_kwargs": {"dataset": "cifar100"}},
    "dgpo_env/NB201-ImageNet16-v0": {"benchmark": "nb201", "benchmark_kwargs": {"dataset": "imagenet16"}},
    "dgpo_env/ToyDAG-v0": {"benchmark": "toy"},
    # NAS-Bench-101 needs the official nasbench_only108.tfrecord: set DGPO_NB101_PATH or pass
    # benchmark_kwargs={"path": ...}; without it gym.make raises BenchmarkDataError with download steps.
    "dgpo_env/NB101-v0": {"benchmark": "nb101", "benchmark_kwargs": {}},
}
"""Default constructor arguments of :class:`~dgpo_env.envs.GraphDenoiseEnv` per id."""


def register_envs() -> None:
    """Register every id of :data:`ENV_SPECS` (idempotent)."""
    for env_id, kwargs in ENV_SPECS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT, kwargs=kwargs, disable_env_checker=False)
