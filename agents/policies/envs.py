"""Build denoising environments that match a diffusion model (same ``T`` and prior), sharing one benchmark."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import dgpo_env
from agents.diffusion.model import DiffusionModel
from agents.policies.budget import apply_budget, env_ledger
from agents.policies.compat import ModelSpec, resolve_model
from dgpo_env.benchmarks import Benchmark, make_benchmark
from dgpo_env.envs.graph_denoise import DEFAULT_N_STEPS, GraphDenoiseEnv


def benchmark_for_env_id(env_id: str, **overrides: Any) -> Benchmark:
    """A fresh benchmark instance as ``gym.make(env_id)`` would build it.

    Args:
        env_id: A registered ``dgpo_env/...`` id.
        **overrides: Extra or replaced benchmark arguments (e.g. ``table_path=...`` for NB201).

    Raises:
        ValueError: If ``env_id`` is not registered or its spec does not name a benchmark.
    """
    if env_id not in gym.registry:
        raise ValueError(f"unknown environment id {env_id!r}; registered: {sorted(dgpo_env.ENV_SPECS)}")
    spec_kwargs = gym.spec(env_id).kwargs
    name = spec_kwargs.get("benchmark")
    if not isinstance(name, str):
        raise ValueError(f"{env_id} does not name its benchmark in its spec; pass benchmark= explicitly")
    return make_benchmark(name, **{**dict(spec_kwargs.get("benchmark_kwargs") or {}), **overrides})


def make_env_for_model(
    model: ModelSpec,
    env_id: str | None,
    n_envs: int = 1,
    n_steps: int = DEFAULT_N_STEPS,
    seed: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    benchmark: Benchmark | None = None,
    max_queries: int | None = None,
    vec_env_cls: type[VecEnv] = DummyVecEnv,
    vec_env_kwargs: Mapping[str, Any] | None = None,
) -> VecEnv:
    """A ``DummyVecEnv`` (or ``vec_env_cls``) of ``n_envs`` copies of ``env_id`` built with the model's ``T`` and prior.

    All copies share one :class:`Benchmark` instance, so they count into one query ledger
    (docs/ledger.md) and a budget is exact. Copies in other processes (``SubprocVecEnv``,
    :class:`~agents.policies.ray_vec_env.RayVecEnv`) get a copy of the benchmark, so its ledger must
    be one they can all reach (an :class:`~dgpo_env.ledger.SQLiteLedger`, or a ledger served by Ray).
    Each copy is wrapped in SB3's ``Monitor`` (episode statistics for the logger).

    Args:
        model: The diffusion model or its checkpoint path.
        env_id: A registered ``dgpo_env/...`` id, or ``None`` to build
            :class:`~dgpo_env.envs.GraphDenoiseEnv` directly on ``benchmark``.
        n_envs: Number of environment copies.
        n_steps: Denoising steps per episode.
        seed: Seed of the first copy (copy ``i`` gets ``seed + i``).
        env_kwargs: Further ``GraphDenoiseEnv`` arguments (e.g. ``{"inverse": True}``); must not set
            ``prior`` or ``diffusion_steps``.
        benchmark: The shared benchmark (default: a fresh one as ``env_id`` defines it).
        max_queries: If given, the budget of the benchmark's ledger: new cells beyond this many
            distinct queries are refused (an exact budget).
        vec_env_cls: The SB3 ``VecEnv`` class holding the copies.
        vec_env_kwargs: Its further constructor arguments (e.g. ``{"num_cpus": 0.5}`` for ``RayVecEnv``).

    Returns:
        The vectorised environment.

    Raises:
        ValueError: If ``env_kwargs`` tries to override the model's prior or ``T``, ``n_envs < 1``,
            neither ``env_id`` nor ``benchmark`` is given, the benchmark's search space is not the model's,
            or its ledger already has a different budget.
        LedgerError: If ``vec_env_cls`` keeps the copies in other processes but the benchmark's ledger is
            an in-process one (it cannot be sent to them; the message says which ledger to use).
    """
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    diffusion: DiffusionModel = resolve_model(model, copy_model=False)
    extra = dict(env_kwargs or {})
    clash = sorted({"prior", "diffusion_steps", "benchmark", "benchmark_kwargs", "ledger"} & set(extra))
    if clash:
        raise ValueError(
            f"env_kwargs must not set {clash}: they come from the model and the shared benchmark "
            "(to count into a ledger of your own, pass benchmark= with benchmark.ledger set)"
        )
    if env_id is None and benchmark is None:
        raise ValueError("give an environment id or a benchmark")
    shared = benchmark_for_env_id(env_id) if benchmark is None else benchmark  # type: ignore[arg-type]
    if shared.search_space.name != diffusion.space.name:
        raise ValueError(
            f"search space mismatch: {env_id or shared.name} generates {shared.search_space.name!r} cells but the "
            f"model was pretrained on {diffusion.space.name!r}; use a checkpoint pretrained on "
            f"{shared.search_space.name!r}"
        )
    kwargs = {
        "benchmark": shared,
        "benchmark_kwargs": None,
        "prior": diffusion.noise.marginals,
        "diffusion_steps": diffusion.diffusion_steps,
        "n_steps": n_steps,
        **extra,
    }
    apply_budget(shared.ledger, max_queries)
    env = make_vec_env(
        GraphDenoiseEnv if env_id is None else env_id,
        n_envs=n_envs,
        seed=seed,
        env_kwargs=kwargs,
        vec_env_cls=vec_env_cls,  # type: ignore[arg-type]  # SB3 annotates its own two classes only
        vec_env_kwargs=None if vec_env_kwargs is None else dict(vec_env_kwargs),
    )
    env_ledger(env)  # every copy counts into the shared benchmark's ledger
    return env
