"""The graph-diffusion model as an SB3 policy: exact distribution, SB3 algorithms, checks, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.distributions import MaskableMultiCategoricalDistribution
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.policies import BaseModel

from agents.diffusion.denoiser import TIME_SCALE, DenoiserConfig, sinusoidal_features
from agents.diffusion.mlp_denoiser import MLPDenoiserConfig
from agents.diffusion.model import DiffusionModel
from agents.policies import (
    LOG_ZERO,
    GraphDiffusionPolicy,
    MaskableGraphDiffusionPolicy,
    QueryBudgetCallback,
    graph_from_obs,
    make_env_for_model,
    safe_log,
)
from agents.policies.diffusion_policy import optimizer_kwargs_for
from agents.policies.distributions import FusedCategoricalsMixin
from agents.policies.reverse_step import ScheduledReverseStep
from dgpo_env.diffusion.marginals import Marginals
from dgpo_env.envs.graph_denoise import GraphDenoiseEnv
from dgpo_env.search_spaces import NB201SearchSpace, ToySearchSpace

TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)
TINY_MLP = MLPDenoiserConfig(hidden_dim=16, n_blocks=1, time_dim=8)
T = 100
ENV_IDS = {"toy": "dgpo_env/ToyDAG-v0", "nb201": "dgpo_env/NB201-CIFAR10-v0"}


@pytest.fixture(scope="module")
def models() -> dict[str, DiffusionModel]:
    return {
        "toy": DiffusionModel.create(ToySearchSpace(), diffusion_steps=T, config=TINY, seed=0),
        "nb201": DiffusionModel.create(NB201SearchSpace(), diffusion_steps=T, config=TINY, seed=0),
        "toy-mlp": DiffusionModel.create(ToySearchSpace(), diffusion_steps=T, config=TINY_MLP, seed=0),
        "nb201-mlp": DiffusionModel.create(NB201SearchSpace(), diffusion_steps=T, config=TINY_MLP, seed=0),
    }


def _env_and_kwargs(model: DiffusionModel, space: str, n_envs: int = 2, n_steps: int = 4, seed: int = 0):
    env = make_env_for_model(model, ENV_IDS[model.space.name], n_envs=n_envs, n_steps=n_steps, seed=seed)
    return env, {"model": model, "task": env.get_attr("task")[0]}


# ---------------------------------------------------------------------------------------------- maths
def test_safe_log_is_exact_and_has_no_nan_gradient() -> None:
    p = torch.tensor([0.0, 0.25, 0.75], dtype=torch.float64, requires_grad=True)
    out = safe_log(p)
    assert out[0].item() == LOG_ZERO and out[1].item() == pytest.approx(np.log(0.25))
    out.sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad[0] == 0.0


def test_float_observations_convert_back_to_integers() -> None:
    obs = {"nodes": torch.tensor([[0.0, 2.0]]), "edges": torch.tensor([[1.0]]), "t": torch.tensor([[800.0]])}
    graph = graph_from_obs(obs)
    assert graph.nodes.dtype == torch.int64 and graph.t.tolist() == [800]
    with pytest.raises(ValueError, match="integers"):
        graph_from_obs({**obs, "nodes": torch.tensor([[0.5, 2.0]])})


@pytest.mark.parametrize("name", ["toy", "toy-mlp"])
@pytest.mark.parametrize("policy_class", [GraphDiffusionPolicy, MaskableGraphDiffusionPolicy])
def test_log_prob_and_entropy_are_exact(models: dict[str, DiffusionModel], policy_class: type, name: str) -> None:
    model = models[name]
    env, kwargs = _env_and_kwargs(model, "toy", n_envs=3)
    policy = policy_class(env.observation_space, env.action_space, lambda _: 1e-3, **kwargs)
    obs = env.reset()
    obs_t = {k: torch.as_tensor(v).float() for k, v in obs.items()}  # as a rollout buffer stores them
    masks = np.stack([env.env_method("action_masks", indices=[i])[0] for i in range(3)])
    extra = {"action_masks": masks} if policy_class is MaskableGraphDiffusionPolicy else {}
    with torch.no_grad():
        actions, values, log_prob = policy(obs_t, **extra)
        _, log_prob2, entropy = policy.evaluate_actions(obs_t, actions, **extra)
    assert values.shape == (3, 1) and torch.allclose(log_prob, log_prob2)
    graph = graph_from_obs(obs_t)
    s = policy.next_times(graph.t)
    n = model.space.n_nodes
    exact = model.log_prob(graph.nodes, graph.edges, graph.t, actions[:, :n], actions[:, n:], s)
    assert torch.allclose(log_prob.double(), exact, atol=1e-4)
    node_p, edge_p = model.reverse_step_probs(graph.nodes, graph.edges, graph.t, s)
    manual = sum(-(p * safe_log(p)).sum((1, 2)) for p in (node_p, edge_p))
    assert torch.isfinite(entropy).all() and torch.allclose(entropy.double(), manual, atol=1e-4)
    assert float(entropy.min()) > 0.0  # the first step from noise is far from deterministic


@pytest.mark.parametrize("name", ["nb201", "nb201-mlp"])
@pytest.mark.parametrize("policy_class", [GraphDiffusionPolicy, MaskableGraphDiffusionPolicy])
def test_fused_distribution_acts_as_the_per_entry_one(
    models: dict[str, DiffusionModel], policy_class: type, name: str
) -> None:
    """Same seeded actions, log-probs and entropies as SB3's / sb3-contrib's per-entry ``Categorical``s."""
    env, kwargs = _env_and_kwargs(models[name], "nb201", n_envs=4)
    policy = policy_class(env.observation_space, env.action_space, lambda _: 1e-3, **kwargs)
    obs = {k: torch.as_tensor(v).float() for k, v in env.reset().items()}
    masks = np.stack(env.env_method("action_masks"))
    extra = {"action_masks": masks} if policy_class is MaskableGraphDiffusionPolicy else {}
    per_entry = MaskableMultiCategoricalDistribution if extra else MultiCategoricalDistribution
    assert isinstance(policy.action_dist, FusedCategoricalsMixin)
    outputs = []
    for dist in (policy.action_dist, per_entry(env.action_space.nvec.tolist())):
        policy.action_dist = dist
        torch.manual_seed(0)
        with torch.no_grad():
            actions, _, log_prob = policy(obs, **extra)
            _, log_prob2, entropy = policy.evaluate_actions(obs, actions, **extra)
        outputs.append((actions, log_prob, log_prob2, entropy))
    for fused, reference in zip(*outputs, strict=True):
        torch.testing.assert_close(fused, reference, atol=1e-6, rtol=1e-6)


def _reference_pass(policy, obs: dict[str, torch.Tensor], actions: torch.Tensor):
    """``(values, log_prob, entropy)`` the straightforward way: the full ``[B, E, K_max]`` distribution from the
    reverse step's probabilities, the denoiser on its own inputs, the critic through SB3's feature extraction."""
    graph = graph_from_obs(obs)
    probs, log_probs = policy.reverse_step.distribution_parameters(*policy._reverse_step_inputs(graph))
    dist = type(policy.action_dist)(policy.action_space.nvec.tolist()).proba_distribution_from_probs(probs, log_probs)
    features = BaseModel.extract_features(policy, obs, policy.vf_features_extractor)
    values = policy.value_net(policy.mlp_extractor.forward_critic(features))
    return values, dist.log_prob(actions), dist.entropy()


@pytest.mark.parametrize(
    ("name", "critic_time_dim"), [("nb201-mlp", 8), ("toy-mlp", 8), ("nb201-mlp", 16), ("nb201", 8)]
)
def test_fast_path_equals_the_reference_pass_bitwise(
    models: dict[str, DiffusionModel], name: str, critic_time_dim: int
) -> None:
    """Free-entry distribution, shared critic/MLP input: bitwise the reference's values, log-probs, entropies, grads."""
    env, kwargs = _env_and_kwargs(models[name], name, n_envs=5)
    policy = GraphDiffusionPolicy(
        env.observation_space, env.action_space, lambda _: 1e-3, critic_time_dim=critic_time_dim, **kwargs
    )
    # the MLP reads the critic's input when their time features agree (TINY_MLP's are 8 wide)
    assert policy._mlp_reads_critic_input() == (name.endswith("mlp") and critic_time_dim == 8)
    obs = {k: torch.as_tensor(v) for k, v in env.reset().items()}  # int64, as in a rollout
    torch.manual_seed(1)
    with torch.no_grad():
        actions, values, log_prob = policy(obs)
    torch.manual_seed(1)
    with torch.no_grad():  # the reference draw: the same noise stream on the full probabilities
        graph = graph_from_obs(obs)
        probs, _ = policy.reverse_step.distribution_parameters(*policy._reverse_step_inputs(graph))
        expected = policy.action_dist.proba_distribution_from_probs(probs).sample()
    assert torch.equal(actions, expected)
    float_obs = {k: v.float() for k, v in obs.items()}  # as the rollout buffer hands them to evaluate_actions
    grads = []
    for run in (policy.evaluate_actions, lambda o, a: _reference_pass(policy, o, a)):
        policy.optimizer.zero_grad()
        out = run(float_obs, actions)
        (out[0].sum() + (out[1] * 0.3).sum() + out[2].sum()).backward()
        grads.append((out, [p.grad.clone() for p in policy.parameters() if p.grad is not None]))
    (fast, fast_grads), (ref, ref_grads) = grads
    for a, b in zip(fast, ref, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(fast[1], log_prob) and torch.equal(fast[0], values)
    assert len(fast_grads) == len(ref_grads) > 0 and all(map(torch.equal, fast_grads, ref_grads))


def test_free_logits_equal_the_masked_free_entries(models: dict[str, DiffusionModel]) -> None:
    """The MLP's flat output, picked and masked per free entry, equals the masked logits' free rows (padding -inf)."""
    for name in ("toy-mlp", "nb201-mlp"):
        model = models[name]
        step = ScheduledReverseStep(model.noise, model.noise.step_schedule(4))
        gen = torch.Generator().manual_seed(0)
        nodes = torch.randint(0, model.space.n_node_types, (6, model.space.n_nodes), generator=gen)
        edges = torch.randint(0, model.space.n_edge_types, (6, model.space.n_edges), generator=gen)
        t = torch.randint(1, T + 1, (6,), generator=gen)
        node_logits, edge_logits = model.logits_at(nodes, edges, t)
        x = torch.nn.functional.one_hot(nodes, model.space.n_node_types).float()
        e = torch.nn.functional.one_hot(edges, model.space.n_edge_types).float()
        flat = torch.cat([x.flatten(1), e.flatten(1), sinusoidal_features(t.float() / T, 8, TIME_SCALE)], dim=1)
        assert all(map(torch.equal, model.denoiser.forward_flat(flat), (node_logits, edge_logits)))
        expected = step.free_entries(node_logits, edge_logits, float("-inf"))
        assert torch.equal(step.free_logits(model.denoiser.flat_logits(flat)), expected)
        with pytest.raises(ValueError, match="flat must be"):
            model.denoiser.flat_logits(flat[:, 1:])


@pytest.mark.parametrize("space", ["toy", "nb201"])
@pytest.mark.parametrize("n_steps", [1, 4, 10])
def test_tabulated_reverse_step_equals_the_noise_process(models: dict[str, DiffusionModel], space: str, n_steps: int):
    """The policy's looked-up posterior gives bitwise the probabilities of ``NoiseProcess.reverse_step_probs``."""
    model = models[space]
    times = torch.as_tensor(model.noise.step_schedule(n_steps))
    step = ScheduledReverseStep(model.noise, times)
    generator = torch.Generator().manual_seed(n_steps)
    for batch in (1, 7):
        k = torch.randint(0, n_steps, (batch,), generator=generator)
        nodes = torch.randint(0, model.space.n_node_types, (batch, model.space.n_nodes), generator=generator)
        edges = torch.randint(0, model.space.n_edge_types, (batch, model.space.n_edges), generator=generator)
        node_x0, edge_x0 = model.clean_probs(nodes, edges, times[k])
        expected = model.noise.reverse_step_probs(nodes, edges, node_x0, edge_x0, times[k], times[k + 1])
        x0_probs = step.free_entries(node_x0, edge_x0, 0.0)  # [B, F, K_max]
        probs = step(torch.cat([nodes, edges], dim=1), step.steps(times[k]), x0_probs)
        assert probs.shape == (batch, model.space.n_nodes + model.space.n_edges, step.width)
        for got, want in zip(step.split(probs), expected, strict=True):
            assert torch.equal(got, want)
        padding = torch.ones_like(probs, dtype=torch.bool)
        padding[:, : model.space.n_nodes, : model.space.n_node_types] = False
        padding[:, model.space.n_nodes :, : model.space.n_edge_types] = False
        assert bool((probs[padding] == 0).all())  # padding slots: probability exactly 0
        fast_probs, fast_logs = step.distribution_parameters(
            torch.cat([nodes, edges], dim=1), step.steps(times[k]), x0_probs
        )
        assert torch.equal(fast_probs, probs.float())
        expected_logs = torch.where(padding, float("-inf"), safe_log(probs).float())
        assert torch.equal(fast_logs, expected_logs)  # free entries computed, fixed ones looked up: the same values
    with pytest.raises(ValueError, match="not a step of the policy's schedule"):
        step.steps(torch.tensor([0]))
    with pytest.raises(ValueError, match="decrease strictly"):
        ScheduledReverseStep(model.noise, times.flip(0))


def test_adam_runs_fused_unless_the_caller_chooses(models: dict[str, DiffusionModel]) -> None:
    """Adam is built fused by default; the update equals torch's per-tensor loop to float rounding."""
    env, kwargs = _env_and_kwargs(models["toy"], "toy")
    assert optimizer_kwargs_for(torch.optim.Adam, {"eps": 1e-5}) == {"eps": 1e-5, "fused": True}
    assert optimizer_kwargs_for(torch.optim.Adam, {"foreach": False}) == {"foreach": False}
    assert optimizer_kwargs_for(torch.optim.RMSprop, {}) == {}
    policies = [
        GraphDiffusionPolicy(env.observation_space, env.action_space, lambda _: 1e-3, **kwargs, **extra)
        for extra in ({}, {"optimizer_kwargs": {"foreach": False, "eps": 1e-5}})  # SB3 sets eps=1e-5 only by default
    ]
    assert policies[0].optimizer.defaults["fused"] is True and not policies[1].optimizer.defaults["fused"]
    policies[1].load_state_dict(policies[0].state_dict())
    before = [p.detach().clone() for p in policies[0].parameters()]
    obs = {k: torch.as_tensor(v).float() for k, v in env.reset().items()}
    for policy in policies:
        for _ in range(3):
            torch.manual_seed(0)
            _, log_prob, entropy = policy.evaluate_actions(obs, policy(obs)[0])
            policy.optimizer.zero_grad()
            (entropy - log_prob).mean().backward()
            policy.optimizer.step()
    for fused, loop in zip(policies[0].parameters(), policies[1].parameters(), strict=True):
        torch.testing.assert_close(fused, loop, atol=1e-6, rtol=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(policies[0].parameters(), before, strict=True))


# ---------------------------------------------------------------------------------------------- SB3 algorithms
@pytest.mark.parametrize("space", ["toy", "nb201", "nb201-mlp"])
@pytest.mark.parametrize("algo", ["ppo", "a2c", "maskable_ppo"])
def test_sb3_algorithms_learn(models: dict[str, DiffusionModel], space: str, algo: str) -> None:
    model = models[space]
    env, kwargs = _env_and_kwargs(model, space)
    before = [p.detach().clone() for p in model.denoiser.parameters()]
    if algo == "ppo":
        agent = PPO(GraphDiffusionPolicy, env, gamma=1.0, n_steps=8, batch_size=16, n_epochs=2, policy_kwargs=kwargs)
    elif algo == "a2c":
        agent = A2C(GraphDiffusionPolicy, env, gamma=1.0, n_steps=4, policy_kwargs=kwargs)
    else:
        agent = MaskablePPO(
            MaskableGraphDiffusionPolicy, env, gamma=1.0, n_steps=8, batch_size=16, n_epochs=2, policy_kwargs=kwargs
        )
    agent.learn(32)
    assert agent.num_timesteps >= 32
    assert np.isfinite(agent.logger.name_to_value["train/value_loss"])
    # the policy fine-tuned its own copy of the denoiser, the caller's model is untouched
    moved = any(not torch.equal(a, b) for a, b in zip(agent.policy.model.denoiser.parameters(), before, strict=True))
    assert moved and all(torch.equal(a, b) for a, b in zip(model.denoiser.parameters(), before, strict=True))


def test_query_budget_callback_stops_ppo(models: dict[str, DiffusionModel]) -> None:
    env = make_env_for_model(models["nb201"], ENV_IDS["nb201"], n_envs=2, n_steps=2, max_queries=5)
    kwargs = {"model": models["nb201"], "task": env.get_attr("task")[0]}
    agent = PPO(GraphDiffusionPolicy, env, gamma=1.0, n_steps=4, batch_size=8, n_epochs=1, policy_kwargs=kwargs)
    callback = QueryBudgetCallback(5)
    agent.learn(10_000, callback=callback)
    benchmark = env.get_attr("benchmark")[0]
    assert benchmark.n_queries == 5 and agent.num_timesteps < 100


def test_save_load_round_trip_and_seeded_runs(models: dict[str, DiffusionModel], tmp_path: Path) -> None:
    def run() -> PPO:
        env, kwargs = _env_and_kwargs(models["toy"], "toy", seed=3)
        agent = PPO(
            GraphDiffusionPolicy, env, gamma=1.0, n_steps=8, batch_size=16, n_epochs=1, seed=3, policy_kwargs=kwargs
        )
        return agent.learn(16)

    first, second = run(), run()
    for a, b in zip(first.policy.parameters(), second.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    first.save(tmp_path / "ppo")
    loaded = PPO.load(tmp_path / "ppo", env=first.get_env())
    obs = first.get_env().reset()
    np.testing.assert_array_equal(first.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    for a, b in zip(first.policy.state_dict().values(), loaded.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_path_works_as_model(models: dict[str, DiffusionModel], tmp_path: Path) -> None:
    path = models["toy"].save(tmp_path / "toy.pt")
    env = make_env_for_model(path, ENV_IDS["toy"], n_steps=3)
    policy = GraphDiffusionPolicy(
        env.observation_space, env.action_space, lambda _: 1e-3, model=str(path), task=env.get_attr("task")[0]
    )
    assert policy._get_constructor_parameters()["model"] == str(path)
    action, _ = policy.predict(env.reset(), deterministic=True)
    assert action.shape == (1, 21)


# ---------------------------------------------------------------------------------------------- refusals
def _policy_for(model: DiffusionModel, env: GraphDenoiseEnv) -> GraphDiffusionPolicy:
    return GraphDiffusionPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model=model, task=env.task)


def test_refuses_other_search_space(models: dict[str, DiffusionModel]) -> None:
    env = GraphDenoiseEnv("toy", n_steps=4, diffusion_steps=T)
    with pytest.raises(ValueError, match="action space mismatch"):
        _policy_for(models["nb201"], env)
    task = GraphDenoiseEnv("nb201", n_steps=4, diffusion_steps=T).task
    with pytest.raises(ValueError, match=r"search space mismatch.*'nb201'"):
        GraphDiffusionPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model=models["toy"], task=task)


def test_refuses_other_diffusion_steps(models: dict[str, DiffusionModel]) -> None:
    with pytest.raises(ValueError, match=r"diffusion steps mismatch.*diffusion_steps=model.diffusion_steps"):
        _policy_for(models["toy"], GraphDenoiseEnv("toy", n_steps=4, diffusion_steps=50))


def test_refuses_other_prior(models: dict[str, DiffusionModel]) -> None:
    space = ToySearchSpace()
    uniform = Marginals.uniform(space)
    edges = np.tile([0.8, 0.2], (space.n_edges, 1))
    env = GraphDenoiseEnv("toy", n_steps=4, diffusion_steps=T, prior=Marginals(uniform.nodes, edges))
    with pytest.raises(ValueError, match=r"prior mismatch.*prior=model.noise.marginals"):
        _policy_for(models["toy"], env)


def test_refuses_other_step_schedule_at_run_time(models: dict[str, DiffusionModel]) -> None:
    policy = _policy_for(models["toy"], GraphDenoiseEnv("toy", n_steps=4, diffusion_steps=T))
    other = GraphDenoiseEnv("toy", n_steps=3, diffusion_steps=T)
    obs, _ = other.reset(seed=0)
    obs, *_ = other.step(other.action_space.sample())  # t = 67: not on the 4-step schedule (100, 75, 50, 25)
    with pytest.raises(ValueError, match="not a step of the policy's schedule"):
        policy.predict(obs)


def test_refuses_missing_model_or_task(models: dict[str, DiffusionModel]) -> None:
    env = GraphDenoiseEnv("toy", n_steps=4, diffusion_steps=T)
    with pytest.raises(ValueError, match="needs a pretrained model"):
        GraphDiffusionPolicy(env.observation_space, env.action_space, lambda _: 1e-3, task=env.task)
    with pytest.raises(ValueError, match="needs the environment's task"):
        GraphDiffusionPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model=models["toy"])
