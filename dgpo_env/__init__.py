"""dgpo-env: neural-architecture generation by graph diffusion as a Gymnasium RL problem.

Importing the package registers its environments (see :mod:`dgpo_env.registration`)::

    import gymnasium as gym
    import dgpo_env  # noqa: F401

    env = gym.make("dgpo_env/NB201-CIFAR10-v0")
"""

from importlib.metadata import PackageNotFoundError, version

from dgpo_env.registration import ENV_SPECS, register_envs

try:
    __version__ = version("dgpo-env")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

register_envs()

__all__ = ["ENV_SPECS", "__version__", "register_envs"]
