"""RL Zoo hyperparameter files shipped with the package (docs/integrations.md).

``ppo.yml`` and ``a2c.yml`` hold settings for every registered id (``MultiInputPolicy``, ``gamma: 1``,
rollouts a whole number of 25-step episodes), for
``python -m rl_zoo3.train --algo ppo --env dgpo_env/NB201-CIFAR10-v0 --gym-packages dgpo_env -conf PATH``
with ``PATH`` from :func:`hyperparams_path` (``python -m dgpo_env.zoo ppo`` prints it).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dgpo_env.validation import check_choice

ALGOS = ("ppo", "a2c")
"""The algorithms with a hyperparameter file."""


def hyperparams_path(algo: str) -> Path:
    """Path of the installed RL Zoo hyperparameter file of ``algo``.

    Args:
        algo: ``"ppo"`` or ``"a2c"`` (RL Zoo's ``--algo``).

    Raises:
        ValueError: For another algorithm, listing the ones there are.
    """
    check_choice("algo", algo, ALGOS)
    return Path(str(resources.files(__name__) / f"{algo}.yml"))
