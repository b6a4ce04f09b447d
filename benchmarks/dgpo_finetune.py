"""DGPO and the diffusion policy, measured: toy learning (and the inverse control), policy cost, NB201 comparison.

1. Toy: a freshly initialised tiny model (the size the tests use) is fine-tuned with DGPO for
   ``--toy-batches`` batches of 16 trajectories (lr 5e-3, no frozen layers), and with the inverse
   reward; the mean toy accuracy of 200 fresh samples (invalid cells score 0, uncounted ``peek``) is
   reported before and after, per seed.
2. Policy cost: ``evaluate_actions`` of :class:`GraphDiffusionPolicy` on a batch of NB201
   observations with the comparison's pretrained model (calls per second, graphs per second).
3. NB201 CIFAR-10: ``dgpo``, ``ppo`` (diffusion policy), ``ppo-mlp`` and the simple searchers through
   :func:`agents.compare.run_comparison` (one process), ``--seeds`` seeds, ``--max-queries`` queries.

Usage::

    python benchmarks/dgpo_finetune.py --out benchmarks/results/dgpo_finetune.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from agents.compare import available_methods, register_method, run_comparison
from agents.dgpo import DGPO
from agents.dgpo.compare_methods import LAZY_METHODS, cached_checkpoint
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DiffusionModel
from agents.diffusion.sampling import mean_sample_accuracy
from agents.policies import GraphDiffusionPolicy, make_env_for_model
from dgpo_env.benchmarks import ToyBenchmark
from dgpo_env.io import atomic_write_text
from dgpo_env.search_spaces import ToySearchSpace

TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)


def toy_mean_reward(model: DiffusionModel, n_steps: int, n: int = 200) -> float:
    return mean_sample_accuracy(model, ToyBenchmark(), n, n_steps, seed=123)


def toy_learning(seeds: list[int], batches: int, n_steps: int = 4) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        model = DiffusionModel.create(ToySearchSpace(), diffusion_steps=100, config=TINY, seed=seed)
        row: dict[str, Any] = {"seed": seed, "before": toy_mean_reward(model, n_steps)}
        for inverse in (False, True):
            start = time.perf_counter()
            agent = DGPO.for_env_id(
                model,
                "dgpo_env/ToyDAG-v0",
                n_steps=n_steps,
                batch_size=16,
                learning_rate=5e-3,
                freeze_fraction=0.0,
                seed=seed,
                env_kwargs={"inverse": inverse},
            )
            agent.learn(batches * 16 * n_steps)
            name = "inverse" if inverse else "dgpo"
            row[name] = toy_mean_reward(agent.policy.model, n_steps)
            row[f"{name}_wall_s"] = time.perf_counter() - start
            row[f"{name}_queries"] = agent.n_queries
        rows.append(row)
        print(f"toy seed {seed}: {row['before']:.1f} -> DGPO {row['dgpo']:.1f}, inverse {row['inverse']:.1f}")
    return rows


def policy_cost(batch: int, repeats: int = 20) -> dict[str, float]:
    path = cached_checkpoint({"name": "nb201", "dataset": "cifar10"})
    env = make_env_for_model(path, "dgpo_env/NB201-CIFAR10-v0", n_envs=batch, n_steps=10, seed=0)
    policy = GraphDiffusionPolicy(
        env.observation_space, env.action_space, lambda _: 1e-4, model=str(path), task=env.get_attr("task")[0]
    )
    obs = {k: torch.as_tensor(v).float() for k, v in env.reset().items()}
    with torch.no_grad():
        actions, _, _ = policy(obs)
    start = time.perf_counter()
    for _ in range(repeats):
        _, log_prob, entropy = policy.evaluate_actions(obs, actions)
        (log_prob.sum() + entropy.sum()).backward()
    per_call = (time.perf_counter() - start) / repeats
    result = {"batch": batch, "evaluate_actions_backward_s": per_call, "graphs_per_s": batch / per_call}
    print(
        f"policy evaluate_actions + backward, batch {batch}: {per_call * 1e3:.1f} ms ({batch / per_call:.0f} graphs/s)"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy-seeds", type=int, default=3)
    parser.add_argument("--toy-batches", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-queries", type=int, default=300)
    parser.add_argument("--algos", default="dgpo,ppo,ppo-mlp,rs,rea,ls")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dgpo_finetune.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, target in LAZY_METHODS.items():
        if name not in available_methods():
            register_method(name, target)

    start = time.perf_counter()
    path = cached_checkpoint({"name": "nb201", "dataset": "cifar10"})
    pretrain_s = time.perf_counter() - start
    toy = toy_learning(list(range(args.toy_seeds)), args.toy_batches)
    cost = policy_cost(64)
    comparison = run_comparison(
        "dgpo_env/NB201-CIFAR10-v0",
        args.algos.split(","),
        args.seeds,
        args.max_queries,
        n_jobs=1,
        progress=False,
    )
    walls = {name: [r.wall_time_s for r in runs] for name, runs in comparison.runs.items()}
    result = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": 1},
        "pretrained_checkpoint": str(path),
        "pretrain_or_cache_s": pretrain_s,
        "toy": toy,
        "policy_cost": cost,
        "nb201_table": comparison.table(),
        "nb201_wall_time_s": walls,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
