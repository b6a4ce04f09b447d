"""The TorchRL and Tianshou recipes (examples/torchrl_rollout.py, examples/tianshou_collect.py; docs/integrations.md).

Each test skips when its client is not installed: TorchRL comes with the ``integrations`` extra (in
``dev``), Tianshou with its own ``tianshou`` extra.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import gymnasium as gym
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TOY = "dgpo_env/ToyDAG-v0"
NB201 = "dgpo_env/NB201-CIFAR10-v0"


def _example(name: str, client: str) -> ModuleType:
    """The module ``examples/<name>.py``, or a skip when ``client`` cannot be imported."""
    pytest.importorskip(client, reason=f"examples/{name}.py needs {client}")
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("env_id", "categorical"), [(TOY, False), (NB201, False), (TOY, True)])
def test_torchrl_masked_rollout_takes_only_allowed_actions(env_id: str, categorical: bool) -> None:
    steps = 50
    result = _example("torchrl_rollout", "torchrl").masked_rollout(env_id, steps, seed=0, categorical=categorical)
    assert result["steps"] == steps and result["episodes"] == steps // 25
    assert result["disallowed"] == 0 and 0 < result["mask_fraction"] < 1  # the mask restricts, and is obeyed
    if env_id == NB201:  # every cell the mask allows is a valid NB201 cell
        assert all(r > 0 for r in result["returns"])


def test_torchrl_action_spec_follows_the_mask() -> None:
    import torch

    env = _example("torchrl_rollout", "torchrl").make_masked_env(TOY)
    mask = torch.as_tensor(gym.make(TOY).unwrapped.action_masks(), dtype=torch.bool)  # type: ignore[attr-defined]
    env.reset()
    samples = torch.stack([env.full_action_spec["action"].rand().bool() for _ in range(200)])
    assert not (samples & ~mask).any()
    assert samples.sum(-1).eq(len(gym.make(TOY).action_space.nvec)).all()  # one value per action entry
    env.close()


def test_torchrl_rejects_bad_arguments() -> None:
    module = _example("torchrl_rollout", "torchrl")
    for steps in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            module.masked_rollout(TOY, steps, seed=0)
    with pytest.raises(TypeError, match="categorical"):
        module.make_masked_env(TOY, categorical="yes")


def test_tianshou_collector_produces_only_valid_nb201_cells(capsys: pytest.CaptureFixture[str]) -> None:
    result = _example("tianshou_collect", "tianshou").main(["--n-envs", "3", "--episodes", "6"])
    assert result["episodes"] >= 6 and len(result["valid"]) == result["episodes"] == len(result["returns"])
    assert all(result["valid"]) and all(r > 0 for r in result["returns"])
    assert result["disallowed"] == 0 and result["invalid_reasons"] == []
    assert "valid cells" in capsys.readouterr().out


def test_tianshou_toy_cells_fail_only_on_what_the_mask_cannot_express() -> None:
    result = _example("tianshou_collect", "tianshou").collect(TOY, n_envs=2, episodes=12, seed=1)
    assert result["disallowed"] == 0
    assert set(result["invalid_reasons"]) <= {"no path from the input to the output"}


def test_tianshou_policy_and_arguments_are_validated() -> None:
    module = _example("tianshou_collect", "tianshou")
    with pytest.raises(TypeError, match="MultiDiscrete"):
        module.MaskedMultiDiscreteRandomPolicy(gym.spaces.Discrete(3))
    policy = module.MaskedMultiDiscreteRandomPolicy(gym.spaces.MultiDiscrete([2, 3]), seed=0)
    from tianshou.data import Batch

    acts = policy(Batch(obs=Batch(mask=np.array([[0, 1, 1, 0, 0]] * 20, dtype=np.int8)))).act
    assert (acts == [1, 0]).all()
    with pytest.raises(ValueError, match="no value"):
        policy(Batch(obs=Batch(mask=np.array([[1, 1, 0, 0, 0]], dtype=np.int8))))
    with pytest.raises(ValueError, match="shape"):
        policy(Batch(obs=Batch(mask=np.ones((1, 4), dtype=np.int8))))
    for kwargs in ({"n_envs": 0, "episodes": 2}, {"n_envs": 2, "episodes": 1}, {"n_envs": True, "episodes": 2}):
        with pytest.raises(ValueError):
            module.collect(TOY, seed=0, **kwargs)
