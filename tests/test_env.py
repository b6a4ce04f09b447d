import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import dgpo_env
from dgpo_env.benchmarks import BenchmarkDataError, NB201Benchmark, ToyBenchmark
from dgpo_env.diffusion.marginals import Marginals
from dgpo_env.diffusion.schedule import cosine_alpha_bar
from dgpo_env.envs import GraphDenoiseEnv

IDS = sorted(i for i in dgpo_env.ENV_SPECS if "NB101" not in i)  # NB101 needs the official data file


def test_nb101_without_data_says_how_to_get_it(monkeypatch):
    monkeypatch.delenv("DGPO_NB101_PATH", raising=False)
    with pytest.raises(BenchmarkDataError, match="nasbench_only108"):
        gym.make("dgpo_env/NB101-v0")


@pytest.mark.parametrize("env_id", IDS)
def test_checkers_pass_with_warnings_as_errors(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id)
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)
        env.close()


def rollout(env: gym.Env, seed: int) -> list:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [obs]
    done = False
    while not done:
        obs, reward, done, truncated, _info = env.step(env.action_space.sample())
        trace.append((obs, reward, truncated))
    return trace


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    return bool(np.array_equal(a, b))


@pytest.mark.parametrize("env_id", ["dgpo_env/NB201-CIFAR10-v0", "dgpo_env/ToyDAG-v0"])
def test_seeded_rollouts_are_identical(env_id):
    t1, t2 = rollout(gym.make(env_id), 3), rollout(gym.make(env_id), 3)
    assert same(t1, t2)
    assert not same(t1, rollout(gym.make(env_id), 4))


def test_episode_walks_the_schedule_and_rewards_validation_accuracy():
    env = GraphDenoiseEnv("nb201", {"dataset": "cifar10"}, n_steps=5, diffusion_steps=100)
    obs, info = env.reset(seed=0)
    assert obs["t"].tolist() == [100] and info["action_mask"].shape == (int(env.action_space.nvec.sum()),)
    target = env.search_space.from_index(6111).flat()
    times, rewards = [], []
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(target)
        times.append(int(obs["t"][0]))
        rewards.append(reward)
    assert times == [80, 60, 40, 20, 0] and terminated and not truncated
    assert rewards[:-1] == [0.0] * 4 and rewards[-1] == pytest.approx(0.916067, abs=1e-6)
    assert info["valid"] and info["cell"].startswith("|nor_conv_3x3~0|") and info["n_queries"] == 1
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(target)


def test_fixed_entries_are_clamped_and_reset_draws_from_the_prior():
    env = GraphDenoiseEnv("nb201", n_steps=2)
    obs, _ = env.reset(seed=1)
    space = env.search_space
    assert obs["edges"].tolist() == space.fixed_edges.tolist()
    assert obs["nodes"][0] == 0 and obs["nodes"][-1] == 1 and (obs["nodes"][1:-1] >= 2).all()
    action = np.zeros(space.n_entries, dtype=np.int64)
    action[1:7] = 5
    obs, *_ = env.step(action)
    assert obs["nodes"].tolist() == [0, 5, 5, 5, 5, 5, 5, 1]
    assert obs["edges"].tolist() == space.fixed_edges.tolist()


def test_start_cell_option_noises_a_known_cell_to_an_intermediate_time():
    env = GraphDenoiseEnv("nb201", n_steps=5, diffusion_steps=100)
    cell = env.search_space.from_index(6111)
    obs, info = env.reset(seed=0, options={"start_cell": cell, "start_step": 3})
    assert obs["t"].tolist() == [40] == [info["t"]]
    target = cell.flat()
    for expected_t in (20, 0):  # n_steps - start_step = 2 transitions
        obs, reward, terminated, _, info = env.step(target)
        assert int(obs["t"][0]) == expected_t
    assert terminated and reward == pytest.approx(0.916067, abs=1e-6)
    # q(x_t | x_0) = a x_0 + (1 - a) m per free entry: P(entry unchanged) = a + (1 - a) / 5 (uniform m)
    a = cosine_alpha_bar(100)[40]
    free = ~env.search_space.fixed_mask
    kept = []
    for _ in range(2000):
        obs, _ = env.reset(options={"start_cell": target, "start_step": 3})  # a flat vector works too
        flat = np.concatenate([obs["nodes"], obs["edges"]])
        kept.append(flat[free] == target[free])
        assert np.array_equal(flat[~free], target[~free])  # fixed entries stay
    assert np.mean(kept) == pytest.approx(a + (1 - a) / 5, abs=0.015)
    obs, _ = env.reset()  # no options: back to the prior at t = T
    assert obs["t"].tolist() == [100]


def test_start_options_are_checked():
    env = GraphDenoiseEnv("nb201", n_steps=5, diffusion_steps=100)
    cell = env.search_space.from_index(0)
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"start": cell})
    with pytest.raises(ValueError, match="go together"):
        env.reset(options={"start_cell": cell})
    for k in (0, 5):
        with pytest.raises(ValueError, match=re.escape("start_step must be an integer in 1 .. 4")):
            env.reset(options={"start_cell": cell, "start_step": k})
    with pytest.raises(ValueError, match=re.escape("start_cell must be a flat vector concat(nodes, edges) of shape")):
        env.reset(options={"start_cell": np.zeros(3, dtype=np.int64), "start_step": 2})


def test_custom_prior_is_used_and_checked():
    space = NB201Benchmark().search_space
    nodes = np.zeros((8, 7))
    nodes[0, 0] = nodes[7, 1] = 1.0
    nodes[1:7, 6] = 1.0  # always avg_pool
    edges = np.eye(2)[space.fixed_edges]
    env = GraphDenoiseEnv("nb201", prior=Marginals(nodes, edges))
    obs, _ = env.reset(seed=0)
    assert obs["nodes"].tolist() == [0, 6, 6, 6, 6, 6, 6, 1]
    with pytest.raises(ValueError, match="does not allow"):
        GraphDenoiseEnv("nb201", prior=Marginals(np.full((8, 7), 1 / 7), edges))


def test_invalid_cell_reward_and_reason():
    env = GraphDenoiseEnv("nb201", n_steps=1, invalid_reward=-1.0)
    env.reset(seed=0)
    action = env.search_space.from_index(0).flat().copy()
    action[3] = 1  # an 'output' type on an op node
    _, reward, terminated, _, info = env.step(action)
    assert terminated and reward == -1.0 and not info["valid"]
    assert "op nodes [3]" in info["invalid_reason"] and info["n_queries"] == 0


def test_reward_options():
    cell = NB201Benchmark().search_space.from_index(6111).flat()

    def final_reward(**kwargs) -> float:
        env = GraphDenoiseEnv("nb201", n_steps=1, **kwargs)
        env.reset(seed=0)
        return env.step(cell)[1]

    assert final_reward(reward_scale="percent") == pytest.approx(91.6067, abs=1e-4)
    assert final_reward(inverse=True) == pytest.approx(-0.916067, abs=1e-6)
    params = NB201Benchmark().peek(NB201Benchmark().search_space.from_flat(cell)).params_m
    assert params == pytest.approx(1.0735, abs=1e-4)
    assert final_reward(reward_fn=lambda r: r.val_acc - 10 * r.params_m) == pytest.approx(
        91.6067 - 10 * params, abs=1e-3
    )
    noisy = final_reward(noisy=True, reward_scale="percent")
    assert noisy != pytest.approx(91.6067, abs=1e-3)  # one seed's accuracy, not the mean
    with pytest.raises(ValueError, match="reward_scale"):
        GraphDenoiseEnv("nb201", reward_scale="ratio")


def test_bad_actions_raise_value_errors_that_name_the_problem():
    env = GraphDenoiseEnv("toy")
    env.reset(seed=0)
    n = env.action_space.shape[0]
    with pytest.raises(ValueError, match=r"shape \(21,\)"):
        env.step(np.zeros(n + 1, dtype=np.int64))
    too_big = np.zeros(n, dtype=np.int64)
    too_big[2] = 9
    with pytest.raises(ValueError, match=r"entries \[2\] are out of range"):
        env.step(too_big)
    with pytest.raises(ValueError, match="integers"):
        env.step(np.full(n, 0.5))
    with pytest.raises(RuntimeError, match="reset"):
        GraphDenoiseEnv("toy").step(np.zeros(n, dtype=np.int64))
    with pytest.raises(ValueError, match="n_steps"):
        GraphDenoiseEnv("toy", n_steps=0)


def test_integer_actions_of_any_width_step_alike_and_are_not_kept():
    """int64, int32 and uint8 actions give the same graph; changing the action afterwards changes nothing."""
    graphs = []
    for dtype in (np.int64, np.int32, np.uint8):
        env = GraphDenoiseEnv("toy")
        env.reset(seed=0)
        env.action_space.seed(1)
        action = env.action_space.sample().astype(dtype)
        obs, *_ = env.step(action)
        before = env.current_graph
        action[:] = 0  # the caller reuses its buffer
        assert env.current_graph == before and not np.shares_memory(obs["nodes"], action)
        graphs.append((obs["nodes"].tolist(), obs["edges"].tolist(), obs["nodes"].dtype))
    assert graphs[0] == graphs[1] == graphs[2]
    negative = np.zeros(env.action_space.shape[0], dtype=np.int32)
    negative[0] = -1
    with pytest.raises(ValueError, match=r"entries \[0\] are out of range"):
        env.step(negative)


def test_action_masks_contract():
    env = gym.make("dgpo_env/ToyDAG-v0")
    env.reset(seed=0)
    mask = env.unwrapped.action_masks()
    nvec = env.action_space.nvec
    assert mask.dtype == bool and mask.shape == (int(nvec.sum()),)
    per_entry = np.split(mask, np.cumsum(nvec)[:-1])
    assert per_entry[0].tolist() == [True, False, False, False, False]  # input fixed
    assert per_entry[1].tolist() == [False, False, True, True, True]  # inner node: an op
    assert all(e.all() for e in per_entry[6:])  # free edges


def test_shared_benchmark_counts_queries_across_vector_envs():
    bench = ToyBenchmark()
    vec = DummyVecEnv([lambda: GraphDenoiseEnv(bench, n_steps=3) for _ in range(4)])
    vec.seed(0)
    vec.reset()
    for _ in range(3):
        _, _, dones, infos = vec.step(np.stack([vec.action_space.sample() for _ in range(4)]))
    assert dones.all()
    assert bench.n_lookups == sum(info["valid"] for info in infos)
    assert infos[-1]["n_lookups"] == bench.n_lookups


@pytest.mark.parametrize("mode", ["ansi", "rgb_array"])
def test_render_modes(mode):
    env = gym.make("dgpo_env/NB201-CIFAR10-v0", render_mode=mode, n_steps=1)
    env.reset(seed=0)
    env.step(env.unwrapped.search_space.from_index(6111).flat())
    frame = env.render()
    if mode == "ansi":
        assert "t=0" in frame and "nor_conv_3x3" in frame and "val_acc=91.6067" in frame
    else:
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0


def test_gym_make_merges_benchmark_kwargs_into_the_ids_own_and_takes_a_benchmark_instance():
    from dgpo_env.benchmarks import NB201Benchmark, ToyBenchmark

    # a kwarg of the benchmark keeps the id's dataset (Gymnasium's update replaced the whole dict)
    env = gym.make("dgpo_env/NB201-CIFAR100-v0", benchmark_kwargs={"table_path": None})
    assert env.unwrapped.benchmark.name == "nb201-cifar100"
    assert gym.make(env.spec).unwrapped.benchmark.name == "nb201-cifar100"  # the spec rebuilds the same env
    assert gym.make(
        "dgpo_env/NB201-CIFAR100-v0", benchmark_kwargs={"dataset": "imagenet16"}
    ).unwrapped.benchmark.name == ("nb201-imagenet16")
    instance = NB201Benchmark("imagenet16")
    assert gym.make("dgpo_env/NB201-ImageNet16-v0", benchmark=instance).unwrapped.benchmark is instance
    assert gym.make("dgpo_env/NB201-CIFAR10-v0", benchmark="toy").unwrapped.benchmark.name == "toy"
    with pytest.raises(ValueError, match="benchmark_kwargs only apply when benchmark is given by name"):
        gym.make("dgpo_env/ToyDAG-v0", benchmark=ToyBenchmark(), benchmark_kwargs={"dataset": "cifar10"})


def test_gym_make_refuses_a_benchmark_instance_of_another_dataset_or_benchmark():
    from dgpo_env.benchmarks import ConstrainedBenchmark, NB201Benchmark, ToyBenchmark
    from dgpo_env.rewards import AccuracyUnderBudget

    cifar10 = NB201Benchmark("cifar10")
    with pytest.raises(ValueError, match=r"this id is for the benchmark nb201 dataset=cifar100, but the benchmark "
                       r"instance given is nb201 dataset=cifar10 \('nb201-cifar10'\); use the matching id "
                       r"'dgpo_env/NB201-CIFAR10-v0' with this instance"):  # fmt: skip
        gym.make("dgpo_env/NB201-CIFAR100-v0", benchmark=cifar10)
    budgeted = ConstrainedBenchmark(cifar10, AccuracyUnderBudget(max_latency_ms=20))
    with pytest.raises(ValueError, match="instance given is nb201 dataset=cifar10 \\('nb201-cifar10-lat20ms'\\)"):
        gym.make("dgpo_env/NB201-ImageNet16-v0", benchmark=budgeted)  # judged by the benchmark it wraps
    with pytest.raises(ValueError, match="use the matching id 'dgpo_env/ToyDAG-v0'"):
        gym.make("dgpo_env/NB201-CIFAR10-v0", benchmark=ToyBenchmark())
    assert gym.make("dgpo_env/NB201-CIFAR10-v0", benchmark=budgeted).unwrapped.benchmark is budgeted
    assert gym.make("dgpo_env/NB201-CIFAR100-v0", benchmark="toy").unwrapped.benchmark.name == "toy"  # by name: chosen
