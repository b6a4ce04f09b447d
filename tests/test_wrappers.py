"""The opt-in observation wrappers and the ``mask_in_obs`` / ``flatten_obs`` flags of ``gym.make``."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env

import dgpo_env
from dgpo_env.envs import GraphDenoiseEnv
from dgpo_env.wrappers import ActionMaskObservation, FlattenDenoiseObservation

IDS = sorted(i for i in dgpo_env.ENV_SPECS if "NB101" not in i)  # NB101 needs the official data file
FLAGS = [
    {"mask_in_obs": True},
    {"flatten_obs": True},
    {"mask_in_obs": True, "flatten_obs": True},
]
TOY = "dgpo_env/ToyDAG-v0"


def _check_both(env: gym.Env) -> None:
    """Gymnasium's and SB3's checkers with warnings as errors (but Gymnasium's note that ``env`` is wrapped)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*is different from the unwrapped version")
        gym_check_env(env)
        sb3_check_env(env, warn=True)


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "+".join(f))
@pytest.mark.parametrize("env_id", IDS)
def test_checkers_pass_on_every_id_and_flag(env_id, flags):
    env = gym.make(env_id, n_steps=3, **flags)
    _check_both(env)
    env.close()


def test_the_default_observation_is_unchanged():
    env = gym.make(TOY)
    assert isinstance(env.unwrapped, GraphDenoiseEnv)
    assert env.observation_space == env.unwrapped.observation_space
    assert set(env.observation_space.spaces) == {"nodes", "edges", "t"}
    assert gym.make(TOY, mask_in_obs=False, flatten_obs=False).observation_space == env.observation_space


def test_the_mask_key_holds_action_masks_at_reset_and_step():
    env = gym.make(TOY, n_steps=3, mask_in_obs=True)
    base = env.unwrapped
    length = int(base.action_space.nvec.sum())
    assert env.observation_space["action_mask"] == spaces.MultiBinary(length)
    assert {k: env.observation_space[k] for k in ("nodes", "edges", "t")} == dict(base.observation_space.spaces)
    obs, info = env.reset(seed=0)
    done = False
    while True:
        assert obs["action_mask"].dtype == np.int8
        np.testing.assert_array_equal(obs["action_mask"], base.action_masks())
        np.testing.assert_array_equal(obs["action_mask"].astype(bool), info["action_mask"])
        np.testing.assert_array_equal(obs["nodes"], base.current_graph.nodes)
        if done:
            break
        obs, _, done, _, info = env.step(env.action_space.sample())
    assert env.get_wrapper_attr("action_masks")().shape == (length,)  # still reachable (MaskablePPO)


def test_other_key_layouts():
    rllib = ActionMaskObservation(FlattenDenoiseObservation(gym.make(TOY)), nest_key="observations")
    assert set(rllib.observation_space.spaces) == {"observations", "action_mask"}
    assert isinstance(rllib.observation_space["observations"], spaces.Box)
    tianshou = ActionMaskObservation(gym.make(TOY), mask_key="mask", nest_key="obs")
    obs, _ = tianshou.reset(seed=1)
    assert set(obs) == {"obs", "mask"} and set(obs["obs"]) == {"nodes", "edges", "t"}
    assert tianshou.observation_space.contains(obs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*is different from the unwrapped version")
        gym_check_env(tianshou)  # a nested Dict: not for SB3, whose checker refuses it


@pytest.mark.parametrize("one_hot", [True, False])
def test_flat_observation_encodes_the_graph_and_time(one_hot):
    env = FlattenDenoiseObservation(gym.make(TOY, n_steps=4), one_hot=one_hot)
    base = env.unwrapped
    space = base.search_space
    n, m, k, ke = space.n_nodes, space.n_edges, space.n_node_types, space.n_edge_types
    width = n * k + m * ke + 1 if one_hot else n + m + 1
    assert env.observation_space == spaces.Box(0.0, 1.0, shape=(width,), dtype=np.float32)
    obs, _ = env.reset(seed=2)
    for _ in range(2):
        graph = base.current_graph
        assert obs.dtype == np.float32 and env.observation_space.contains(obs)
        if one_hot:
            nodes = obs[: n * k].reshape(n, k).argmax(axis=1)
            edges = obs[n * k : n * k + m * ke].reshape(m, ke).argmax(axis=1)
            assert obs[:-1].sum() == n + m  # exactly one 1 per node and per edge
        else:
            nodes = np.rint(obs[:n] * (k - 1))
            edges = np.rint(obs[n : n + m] * (ke - 1))
        np.testing.assert_array_equal(nodes, graph.nodes)
        np.testing.assert_array_equal(edges, graph.edges)
        assert obs[-1] == pytest.approx(base.t / base.diffusion_steps)
        obs, *_ = env.step(env.action_space.sample())


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "+".join(f))
def test_the_spec_rebuilds_the_same_stack(flags):
    env = gym.make(TOY, n_steps=2, **flags)
    again = gym.make(env.spec)
    assert str(again) == str(env) and again.observation_space == env.observation_space
    assert env.spec is not None and env.spec.kwargs.items() >= flags.items()


def test_render_collection_still_applies():
    env = gym.make(TOY, render_mode="rgb_array_list", mask_in_obs=True)
    assert isinstance(env, gym.wrappers.RenderCollection)


@pytest.mark.parametrize("flag", ["mask_in_obs", "flatten_obs"])
@pytest.mark.parametrize("value", ["False", 0, None])
def test_flags_must_be_bools(flag, value):
    with pytest.raises(TypeError, match=rf"{flag} must be True or False, got {value!r}.*gym.make\(id, {flag}=True\)"):
        gym.make(TOY, **{flag: value})


def test_wrapper_arguments_are_checked():
    with pytest.raises(TypeError, match="one_hot must be True or False"):
        FlattenDenoiseObservation(gym.make(TOY), one_hot="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a Dict observation with keys"):
        FlattenDenoiseObservation(gym.make("CartPole-v1"))
    with pytest.raises(TypeError, match="action_masks"):
        ActionMaskObservation(gym.make("CartPole-v1"), nest_key="observations")
    with pytest.raises(TypeError, match="nest_key='observations'"):
        ActionMaskObservation(FlattenDenoiseObservation(gym.make(TOY)))
    with pytest.raises(ValueError, match="already a key"):
        ActionMaskObservation(gym.make(TOY), mask_key="nodes")
    with pytest.raises(ValueError, match="must differ"):
        ActionMaskObservation(gym.make(TOY), mask_key="m", nest_key="m")
    for key in ("", 3):
        with pytest.raises(TypeError, match="non-empty string"):
            ActionMaskObservation(gym.make(TOY), mask_key=key)  # type: ignore[arg-type]


def test_a_mask_of_the_wrong_length_is_refused():
    inner = gym.make(TOY)
    inner.unwrapped.action_masks = lambda: np.ones(3, dtype=bool)  # type: ignore[attr-defined]
    env = ActionMaskObservation(inner)
    with pytest.raises(ValueError, match="flat vector of length"):
        env.reset(seed=0)


@pytest.mark.parametrize(
    ("algo", "policy", "flags"),
    [
        (PPO, "MultiInputPolicy", {"mask_in_obs": True}),
        (A2C, "MultiInputPolicy", {"mask_in_obs": True}),
        (PPO, "MlpPolicy", {"flatten_obs": True}),
        (PPO, "MultiInputPolicy", {"mask_in_obs": True, "flatten_obs": True}),
    ],
)
def test_sb3_trains_on_the_wrapped_observations(algo, policy, flags):
    env = make_vec_env(TOY, n_envs=2, env_kwargs={"n_steps": 4, **flags}, seed=0)
    kwargs = {"batch_size": 16} if algo is PPO else {}
    agent = algo(policy, env, n_steps=8, gamma=1.0, seed=0, device="cpu", policy_kwargs={"net_arch": [16]}, **kwargs)
    agent.learn(32)
    assert agent.num_timesteps >= 32


def test_maskable_ppo_still_takes_masks_from_action_masks():
    env = make_vec_env(TOY, n_envs=2, env_kwargs={"n_steps": 4, "mask_in_obs": True}, seed=0)
    agent = MaskablePPO("MultiInputPolicy", env, n_steps=8, batch_size=16, gamma=1.0, seed=0, device="cpu")
    agent.learn(32)
    base = env.envs[0].unwrapped
    obs = env.reset()
    masks = np.stack(env.env_method("action_masks"))
    np.testing.assert_array_equal(masks, obs["action_mask"].astype(bool))
    actions, _ = agent.predict(obs, action_masks=masks)
    offsets = np.concatenate([[0], np.cumsum(base.action_space.nvec)[:-1]])
    assert masks[np.arange(2)[:, None], offsets + actions].all()  # every sampled value is allowed


class _MaskedChoice(gym.Env):
    """A one-step Discrete(3) environment whose action 2 is never allowed."""

    observation_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
    action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        return np.ones(1, dtype=np.float32), 1.0, True, False, {}

    def action_masks(self):
        return np.array([True, True, False])


def test_a_discrete_action_space_gets_a_mask_of_length_n():
    env = ActionMaskObservation(_MaskedChoice(), nest_key="observations")
    assert env.observation_space["action_mask"] == spaces.MultiBinary(3)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["action_mask"], [1, 1, 0])
    assert env.observation_space.contains(obs)
    sb3_check_env(env, warn=True)
