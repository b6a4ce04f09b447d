"""Opt-in Gymnasium wrappers for clients that expect another observation layout (docs/integrations.md).

* :class:`ActionMaskObservation`: the action mask as an observation key (``"action_mask"``).
* :class:`FlattenDenoiseObservation`: the graph and time as one ``float32`` vector.

``gym.make(id, mask_in_obs=True, flatten_obs=True)`` applies them (see :mod:`dgpo_env.registration`).
"""

from dgpo_env.wrappers.action_mask_observation import ActionMaskObservation
from dgpo_env.wrappers.flatten_denoise_observation import FlattenDenoiseObservation

__all__ = ["ActionMaskObservation", "FlattenDenoiseObservation"]
