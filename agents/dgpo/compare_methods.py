"""DGPO, PPO on the diffusion policy, and PPO with an MLP policy as methods of the comparison harness.

Each ``run_*`` is a method for :mod:`agents.compare`: ``fn(benchmark_kwargs, seed, max_queries) ->
SearchResult``. It builds its own benchmark, does every look-up through the environment (so through
``benchmark.query``), stops once ``max_queries`` distinct cells were looked up — exactly: the
benchmark's query ledger carries the budget and refuses new cells beyond it (docs/ledger.md) — and
reports the benchmark's history with :func:`~agents.baselines.base.make_result`.

The diffusion methods need a pretrained checkpoint: pass ``checkpoint=`` (bind it with
``functools.partial``), or a small model is pretrained once per setting and cached in
``cache_dir()/checkpoints`` (:func:`cached_checkpoint`). Its training set is chosen *without*
labels (every cell of an enumerable space, else uniformly drawn valid cells), so pretraining costs
no queries (docs/ledger.md, "What counts").

Registration (lazy, so the harness does not import torch-heavy modules until used)::

    from agents.compare import register_method
    for name, path in LAZY_METHODS.items():
        register_method(name, path)
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from agents.baselines.base import PROPOSALS_PER_QUERY, SearchResult, make_result
from agents.compare import DIFFUSION_METHODS, build_benchmark, register_method
from agents.dgpo.variants import get_preset, make_dgpo
from agents.diffusion.architectures import AnyDenoiserConfig, build_denoiser
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import CHECKPOINT_FORMAT_VERSION, search_space_by_name
from agents.diffusion.pretrain import PretrainConfig, pretrain
from agents.harness.registry import RUN_SPEC_KEYS, objectives_of
from agents.policies.callbacks import QueryBudgetCallback
from agents.policies.diffusion_policy import GraphDiffusionPolicy
from agents.policies.envs import make_env_for_model
from agents.threads import torch_threads
from dgpo_env.benchmarks import Benchmark
from dgpo_env.benchmarks.cache import cache_dir
from dgpo_env.envs.graph_denoise import GraphDenoiseEnv, RewardFn
from dgpo_env.rewards import Chebyshev, reward_from_options
from dgpo_env.search_spaces.dag import DAG

LAZY_METHODS: dict[str, str] = DIFFUSION_METHODS
"""Method name -> ``"module:function"`` for :func:`agents.compare.register_method`."""

COMPARE_PRETRAIN = PretrainConfig(
    epochs=4,
    steps=1500,  # unused with epochs; with lr, the defaults when this model was measured (its cache key)
    lr=2e-3,
    denoiser=DenoiserConfig(hidden_dim=32, edge_dim=16, n_layers=2, n_heads=2, time_dim=16),
    seed=0,
)
"""The cached pretraining of the comparison: small and quick on CPU (about a minute on NB201)."""

N_RANDOM_CELLS = 4096
"""Label-free pretraining cells drawn for spaces that cannot enumerate their cells (e.g. toy)."""

N_STEPS = 10
"""Denoising steps per episode for the diffusion methods."""

DGPO_LEARNING_RATE = 1e-3
"""DGPO learning rate for the small CPU model (the official 5e-7 is for an 8 x 256 GPU model)."""

PPO_LEARNING_RATE = 1e-4
"""PPO learning rate on the diffusion policy."""

STALE_BATCHES = 10
"""DGPO stops as converged after this many batches in a row without a new cell."""


# ---------------------------------------------------------------------------------------------- checkpoints
def _training_cells(benchmark: Benchmark, seed: int) -> tuple[list[DAG], str]:
    """Label-free pretraining cells: all cells if the space enumerates them, else uniform valid draws."""
    space = benchmark.search_space
    try:
        return list(space.enumerate_cells()), "all cells"
    except NotImplementedError:
        rng = np.random.default_rng(seed)
        cells: list[DAG] = []
        while len(cells) < N_RANDOM_CELLS:
            cell = space.sample_uniform(rng)
            if space.validate(cell) is None:
                cells.append(cell)
        return cells, f"{N_RANDOM_CELLS} uniform valid cells"


def _architecture_signature(space_name: str, config: AnyDenoiserConfig) -> list[tuple[str, list[int]]]:
    """Parameter names and shapes of a denoiser: part of the cache key, so code changes invalidate the cache."""
    space = search_space_by_name(space_name)
    state = build_denoiser(space, config).state_dict()
    return [(name, list(tensor.shape)) for name, tensor in state.items()]


CACHED_MODEL_THREADS = 1
"""Torch threads the cached comparison model is trained with, whoever calls first (the count the comparison's
worker processes use): pretraining with two threads gives a different model under the same settings."""


def cached_checkpoint(benchmark_kwargs: dict[str, Any], config: PretrainConfig = COMPARE_PRETRAIN) -> Path:
    """Path of a small pretrained model for the benchmark, trained once and cached by its settings.

    Concurrent callers (parallel seeds) wait on a file lock, so the model is trained once; it is trained with
    :data:`CACHED_MODEL_THREADS` torch threads and the caller's RNG state untouched, so it is the same model
    whoever trains it.

    Args:
        benchmark_kwargs: The harness's benchmark spec (``{"name": "nb201", "dataset": ...}``);
            ``table_path``, ``objectives`` and ``reward`` do not change the model and are ignored in the key.
        config: Pretraining settings.
    """
    spec = {k: v for k, v in sorted(benchmark_kwargs.items()) if k not in ("table_path", *RUN_SPEC_KEYS)}
    blob = json.dumps(
        {
            "benchmark": spec,
            "config": config.to_dict(),
            "format": CHECKPOINT_FORMAT_VERSION,
            "architecture": _architecture_signature(str(spec.get("name")), config.denoiser),
        },
        default=str,
    )
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    folder = cache_dir() / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.get('name', 'model')}-{key}.pt"
    with open(folder / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.is_file():
            benchmark = build_benchmark(benchmark_kwargs)  # its own instance: pretraining reads no labels
            cells, rule = _training_cells(benchmark, config.seed)
            # the model must not depend on the caller: its RNG state, its torch thread count (results differ by it)
            with torch.random.fork_rng(devices=[]), torch_threads(CACHED_MODEL_THREADS):
                model, _ = pretrain(benchmark.search_space, cells, config, progress=False, info={"selection": rule})
            model.save(path)  # atomic: a concurrent reader never sees a partial file
    return path


# ---------------------------------------------------------------------------------------------- methods
def run_dgpo(
    benchmark_kwargs: dict[str, Any],
    seed: int,
    max_queries: int,
    checkpoint: str | Path | None = None,
    n_steps: int = N_STEPS,
    learning_rate: float | None = None,
    max_stale_batches: int | None = STALE_BATCHES,
    variant: str = "published",
    **dgpo_kwargs: Any,
) -> SearchResult:
    """DGPO fine-tuning from a pretrained model until ``max_queries`` distinct cells were looked up.

    Args:
        benchmark_kwargs: The benchmark spec.
        seed: Seeds the environment and DGPO.
        max_queries: The budget of distinct cells.
        checkpoint: A pretrained model (default :func:`cached_checkpoint`).
        n_steps: Denoising steps per episode.
        learning_rate: Adam learning rate; default the preset's own rate if it sets one (elite: 3e-3),
            else :data:`DGPO_LEARNING_RATE` (the published 5e-7 is for the paper's GPU model).
        max_stale_batches: Stop as converged after this many batches without a new cell.
        variant: A :data:`~agents.dgpo.variants.PRESETS` name: the algorithm and its settings.
        **dgpo_kwargs: Further settings and :meth:`~agents.dgpo.dgpo.DGPO.for_env_id` arguments (override the preset's).
            The run spec's ``"reward"`` (budgets, a trade-off: :func:`spec_reward`) becomes the
            environment's ``reward_fn`` unless ``env_kwargs`` is given.
    """
    torch.set_num_threads(1)
    path = cached_checkpoint(benchmark_kwargs) if checkpoint is None else Path(checkpoint)
    start = time.perf_counter()
    benchmark = build_benchmark(benchmark_kwargs)
    preset = get_preset(variant)
    if learning_rate is None and not preset.sets("learning_rate"):
        learning_rate = DGPO_LEARNING_RATE
    if learning_rate is not None:
        dgpo_kwargs = {"learning_rate": learning_rate, **dgpo_kwargs}
    reward_fn = spec_reward(benchmark_kwargs, seed)
    if reward_fn is not None and "env_kwargs" not in dgpo_kwargs:
        dgpo_kwargs["env_kwargs"] = {"reward_fn": reward_fn}
    agent = make_dgpo(
        preset,
        path,
        None,
        benchmark=benchmark,
        n_steps=n_steps,
        seed=seed,
        max_queries=max_queries,
        max_stale_batches=max_stale_batches,
        **dgpo_kwargs,
    )
    agent.learn(total_timesteps=max_queries * PROPOSALS_PER_QUERY * n_steps)
    settings = {
        "checkpoint": str(path),
        "n_steps": n_steps,
        "variant": variant,
        "max_stale_batches": max_stale_batches,
        "stop_reason": agent.stop_reason,
        **agent.settings_dict(),
    }
    name = "dgpo" if variant == "published" else f"dgpo-{variant}"
    return make_result(name, seed, benchmark, max_queries, None, time.perf_counter() - start, settings)


def spec_reward(benchmark_kwargs: dict[str, Any], seed: int) -> RewardFn | None:
    """The reward of the run spec's ``"reward"`` options (:func:`dgpo_env.rewards.reward_from_options`), or ``None``.

    A random-preference Chebyshev reward is seeded with the run's seed.
    """
    options = benchmark_kwargs.get("reward")
    return None if not options else reward_from_options(**{"seed": seed, **options})


MO_ANCHOR_TOP_K = 10
"""``dgpo-mo`` draws its anchors from the 10 best-rewarded cells (the elite preset uses 3): a wider elite
keeps anchors spread along the front (tuned on NB201 CIFAR-10 seeds 1-8, benchmarks/multi_objective.py)."""


def run_dgpo_mo(
    benchmark_kwargs: dict[str, Any],
    seed: int,
    max_queries: int,
    normalise: Literal["bounds", "observed"] = "observed",
    **kwargs: Any,
) -> SearchResult:
    """Multi-objective DGPO: the elite preset on a Chebyshev reward with a random preference per look-up.

    The run spec's ``"objectives"`` are scalarised by :class:`~dgpo_env.rewards.Chebyshev` with
    ``preference="random"`` (a fresh Dirichlet(1) preference vector for every look-up, seeded with the
    run's seed, as in ParEGO) and ``normalise="observed"`` (ideal and nadir: the best and worst values
    looked up so far). The elite archive ranks the cells by the reward each received
    (``archive_score="reward"``) and anchors are drawn from the :data:`MO_ANCHOR_TOP_K` best: cells that
    were best under some trade-off become replay targets and anchors, so the search spreads along the
    front. A ``"reward"`` in the run spec replaces the Chebyshev reward (docs/howto-pareto.md).

    Args:
        benchmark_kwargs: The run spec, with ``"objectives"``.
        seed: Seeds the environment, DGPO and the preferences.
        max_queries: The budget of distinct cells.
        normalise: The Chebyshev reward's normalisation (``"bounds"``: the fixed default bounds).
        **kwargs: Further :func:`run_dgpo` arguments and elite settings (override the defaults above).

    Raises:
        ValueError: If the run spec has no objectives.
    """
    defaults = {"archive_score": "reward", "anchor_top_k": MO_ANCHOR_TOP_K}
    return _run_multi_objective("dgpo-mo", "elite", benchmark_kwargs, seed, max_queries, normalise, defaults, kwargs)


def run_dgpo_mo_gp(
    benchmark_kwargs: dict[str, Any],
    seed: int,
    max_queries: int,
    normalise: Literal["bounds", "observed"] = "observed",
    **kwargs: Any,
) -> SearchResult:
    """Multi-objective surrogate DGPO: ``dgpo-mo``'s reward, candidates ranked by hypervolume improvement.

    The ``"pareto"`` preset (:class:`~agents.dgpo.pareto_surrogate.ParetoSurrogateDGPO`): the policy is
    fine-tuned on :func:`run_dgpo_mo`'s random-preference Chebyshev reward, and at each round's last
    denoising step one Gaussian process per objective of the run spec, fitted on the cells looked up,
    picks which of the policy's candidates are looked up (docs/howto-pareto.md).

    Args:
        benchmark_kwargs: The run spec, with ``"objectives"``.
        seed: Seeds the environment, DGPO and the preferences.
        max_queries: The budget of distinct cells.
        normalise: The Chebyshev reward's normalisation.
        **kwargs: Further :func:`run_dgpo` arguments and preset settings (override the preset's).

    Raises:
        ValueError: If the run spec has no objectives.
    """
    objectives = ",".join(objectives_of(benchmark_kwargs, "dgpo-mo-gp"))
    defaults = {"objectives": objectives}
    return _run_multi_objective(
        "dgpo-mo-gp", "pareto", benchmark_kwargs, seed, max_queries, normalise, defaults, kwargs
    )


def _run_multi_objective(
    method: str,
    variant: str,
    benchmark_kwargs: dict[str, Any],
    seed: int,
    max_queries: int,
    normalise: Literal["bounds", "observed"],
    defaults: dict[str, Any],
    kwargs: dict[str, Any],
) -> SearchResult:
    """:func:`run_dgpo` with ``variant`` on the random-preference Chebyshev reward (or the spec's), named ``method``."""
    reward_fn = spec_reward(benchmark_kwargs, seed)
    if reward_fn is None:
        objectives = objectives_of(benchmark_kwargs, method)
        reward_fn = Chebyshev(objectives, preference="random", seed=seed, normalise=normalise)
    defaults = {**defaults, "env_kwargs": {"reward_fn": reward_fn}}
    result = run_dgpo(benchmark_kwargs, seed, max_queries, variant=variant, **{**defaults, **kwargs})
    return dataclasses.replace(result, method=method)


def run_dgpo_elite(benchmark_kwargs: dict[str, Any], seed: int, max_queries: int, **kwargs: Any) -> SearchResult:
    """:func:`run_dgpo` with the ``"elite"`` preset (:class:`~agents.dgpo.elite.EliteDGPO`): reuse of queried cells."""
    return run_dgpo(benchmark_kwargs, seed, max_queries, variant="elite", **kwargs)


def run_dgpo_surrogate(benchmark_kwargs: dict[str, Any], seed: int, max_queries: int, **kwargs: Any) -> SearchResult:
    """:func:`run_dgpo` with the ``"surrogate"`` preset (:class:`~agents.dgpo.surrogate.SurrogateDGPO`)."""
    return run_dgpo(benchmark_kwargs, seed, max_queries, variant="surrogate", **kwargs)


def run_ppo(
    benchmark_kwargs: dict[str, Any],
    seed: int,
    max_queries: int,
    checkpoint: str | Path | None = None,
    n_steps: int = N_STEPS,
    n_envs: int = 4,
    episodes_per_env: int = 4,
    learning_rate: float = PPO_LEARNING_RATE,
    **ppo_kwargs: Any,
) -> SearchResult:
    """SB3 ``PPO`` on :class:`GraphDiffusionPolicy` (DDPO-style RL on the diffusion model), ``γ = 1``.

    Args:
        benchmark_kwargs: The benchmark spec.
        seed: Seeds the environment and PPO.
        max_queries: The budget of distinct cells.
        checkpoint: A pretrained model (default :func:`cached_checkpoint`).
        n_steps: Denoising steps per episode.
        n_envs: Environment copies.
        episodes_per_env: Episodes per copy per rollout (PPO's ``n_steps = episodes_per_env × n_steps``).
        learning_rate: Adam learning rate.
        **ppo_kwargs: Further ``PPO`` arguments.
    """
    torch.set_num_threads(1)
    path = cached_checkpoint(benchmark_kwargs) if checkpoint is None else Path(checkpoint)
    start = time.perf_counter()
    benchmark = build_benchmark(benchmark_kwargs)
    reward_fn = spec_reward(benchmark_kwargs, seed)
    env = make_env_for_model(
        path,
        None,
        n_envs=n_envs,
        n_steps=n_steps,
        seed=seed,
        env_kwargs=None if reward_fn is None else {"reward_fn": reward_fn},
        benchmark=benchmark,
        max_queries=max_queries,
    )
    rollout = episodes_per_env * n_steps
    kwargs = {"gamma": 1.0, "n_steps": rollout, "batch_size": rollout * n_envs // 2, "n_epochs": 4, **ppo_kwargs}
    policy_kwargs = {"model": str(path), "task": env.get_attr("task")[0]}
    agent = PPO(
        GraphDiffusionPolicy, env, learning_rate=learning_rate, seed=seed, policy_kwargs=policy_kwargs, **kwargs
    )
    agent.learn(max_queries * PROPOSALS_PER_QUERY * n_steps, callback=QueryBudgetCallback(max_queries))
    settings = {"checkpoint": str(path), "n_steps": n_steps, "n_envs": n_envs, "learning_rate": learning_rate, **kwargs}
    return make_result("ppo", seed, benchmark, max_queries, None, time.perf_counter() - start, settings)


def run_ppo_mlp(
    benchmark_kwargs: dict[str, Any],
    seed: int,
    max_queries: int,
    n_steps: int = 1,
    n_envs: int = 4,
    rollout_steps: int = 16,
    **ppo_kwargs: Any,
) -> SearchResult:
    """``sb3_contrib.MaskablePPO`` with an MLP ``MultiInputPolicy``: RL without the diffusion prior.

    MaskablePPO (not plain PPO) so the MLP gets the same structural knowledge the diffusion policy
    has (values a position may not take have probability 0). ``n_steps=1`` by default: an MLP's
    action is the whole next graph, so intermediate denoising steps only delay the reward; one step
    from ``G_T`` to the cell is the most favourable setting for this baseline.

    Args:
        benchmark_kwargs: The benchmark spec.
        seed: Seeds the environment and PPO.
        max_queries: The budget of distinct cells.
        n_steps: Denoising steps per episode.
        n_envs: Environment copies.
        rollout_steps: PPO's ``n_steps`` per copy (a multiple of ``n_steps``).
        **ppo_kwargs: Further ``MaskablePPO`` arguments.
    """
    torch.set_num_threads(1)
    if rollout_steps % n_steps:
        raise ValueError(f"rollout_steps={rollout_steps} must be a multiple of the episode length n_steps={n_steps}")
    start = time.perf_counter()
    benchmark = build_benchmark(benchmark_kwargs)
    env = make_vec_env(
        GraphDenoiseEnv, n_envs=n_envs, seed=seed, env_kwargs={"benchmark": benchmark, "n_steps": n_steps}
    )
    kwargs = {"gamma": 1.0, "n_steps": rollout_steps, "batch_size": rollout_steps * n_envs // 2, **ppo_kwargs}
    agent = MaskablePPO("MultiInputPolicy", env, seed=seed, **kwargs)
    agent.learn(max_queries * PROPOSALS_PER_QUERY * n_steps, callback=QueryBudgetCallback(max_queries))
    settings = {"n_steps": n_steps, "n_envs": n_envs, **kwargs}
    return make_result("ppo-mlp", seed, benchmark, max_queries, None, time.perf_counter() - start, settings)


def register_methods(overwrite: bool = False) -> None:
    """Register ``dgpo``, ``ppo`` and ``ppo-mlp`` with :mod:`agents.compare` (lazily, by path)."""
    for name, path in LAZY_METHODS.items():
        register_method(name, path, overwrite=overwrite)


__all__ = [
    "COMPARE_PRETRAIN",
    "LAZY_METHODS",
    "MO_ANCHOR_TOP_K",
    "cached_checkpoint",
    "register_methods",
    "run_dgpo",
    "run_dgpo_elite",
    "run_dgpo_mo",
    "run_dgpo_mo_gp",
    "run_dgpo_surrogate",
    "run_ppo",
    "run_ppo_mlp",
    "spec_reward",
]
