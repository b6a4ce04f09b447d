"""The RLlib recipe (examples/rllib_ppo_masked.py; docs/integrations.md): one PPO iteration with action masking.

Skips unless RLlib is installed. RLlib pins an older Gymnasium than the ``dev`` environment, so CI runs
this file in a venv of its own (``.venv-rllib``, see ``.ci/run``).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("ray.rllib", reason="examples/rllib_ppo_masked.py needs ray[rllib] (its own venv)")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rllib_ppo_masked.py"
TOY = "dgpo_env/ToyDAG-v0"
NB201 = "dgpo_env/NB201-CIFAR10-v0"
STEPS = 200  # 8 episodes of 25 denoising steps


@pytest.fixture(scope="module")
def recipe() -> Iterator[ModuleType]:
    """The example module, with one local Ray instance for the whole file (starting Ray takes seconds)."""
    import ray

    spec = importlib.util.spec_from_file_location("rllib_ppo_masked", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield module
    ray.shutdown()


def test_masked_ppo_iteration_takes_only_allowed_actions(recipe: ModuleType) -> None:
    result = recipe.train_one_iteration(recipe.build_config(TOY, train_batch_size=STEPS, seed=0))
    assert result["env_steps"] >= STEPS and result["episodes"] == STEPS // 25
    assert result["actions_outside_mask"] == 0
    # The mask cannot express "a path from the input to the output": only that makes a ToyDAG cell invalid.
    assert result["invalid_other"] == 0
    assert result["valid_cells"] + result["invalid_no_path"] == result["episodes"]
    assert result["valid_share"] > 0 and result["episode_return_mean"] > 0
    assert math.isfinite(result["policy_loss"])  # the learner updated


def test_masked_ppo_iteration_gives_only_valid_nb201_cells(recipe: ModuleType) -> None:
    result = recipe.train_one_iteration(recipe.build_config(NB201, train_batch_size=STEPS, seed=0))
    assert result["episodes"] == STEPS // 25 and result["actions_outside_mask"] == 0
    assert result["valid_share"] == 1.0 and result["valid_cells"] == result["episodes"]
    assert 0 < result["episode_return_mean"] <= 1  # validation accuracy as a fraction


def test_without_the_mask_ppo_leaves_it(recipe: ModuleType) -> None:
    # The control: RLlib's default PPO module on the flat observation samples outside the mask, so the
    # counts above can fail.
    result = recipe.train_one_iteration(recipe.build_config(TOY, masked=False, train_batch_size=STEPS, seed=0))
    assert result["actions_outside_mask"] > 0 and result["invalid_other"] > 0


def test_command_line_prints_the_summary(recipe: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    result = recipe.main(["--train-batch-size", "50", "--seed", "1"])
    out = capsys.readouterr().out
    assert f"{result['valid_cells']}/{result['episodes']} valid cells" in out and "mean episode return" in out
    assert "0 steps with an action outside the mask" in out


def test_arguments_are_validated(recipe: ModuleType) -> None:
    for size in (0, -25, 2.5, True):
        with pytest.raises(ValueError, match="train_batch_size"):
            recipe.build_config(TOY, train_batch_size=size)
    for runners in (-1, 1.0, False):
        with pytest.raises(ValueError, match="num_env_runners"):
            recipe.build_config(TOY, num_env_runners=runners)
    with pytest.raises(TypeError, match="masked"):
        recipe.build_config(TOY, masked="False")
    with pytest.raises(SystemExit):
        recipe.main(["--train-batch-size", "0"])
    with pytest.raises(ValueError, match="CellStatsCallback"):
        recipe.train_one_iteration(recipe.build_config(TOY).callbacks(None))
