"""PPO on a pretrained graph-diffusion policy with plain Stable-Baselines3 calls (DDPO-style RL).

The diffusion model's reverse step ``p_θ(G_s | G_t)`` is the actor of
:class:`~agents.policies.GraphDiffusionPolicy`; a small MLP is the critic. The environment must use
the model's prior and ``T`` (the policy refuses anything else, saying what to fix), the discount is
1 (the reward comes at ``t = 0``) and PPO's rollout is a whole number of episodes.

Run::

    python examples/ppo_diffusion_policy.py --timesteps 4000
    python examples/ppo_diffusion_policy.py --checkpoint my_model.pt --maskable
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO

import dgpo_env  # noqa: F401  (registers the environments)
from agents.dgpo.compare_methods import cached_checkpoint
from agents.diffusion.model import DiffusionModel
from agents.policies import GraphDiffusionPolicy, MaskableGraphDiffusionPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dgpo_env/NB201-CIFAR10-v0")
    parser.add_argument("--checkpoint", type=Path, default=None, help="pretrained model (default: small cached one)")
    parser.add_argument("--n-steps", type=int, default=10, help="denoising steps per episode")
    parser.add_argument("--timesteps", type=int, default=4000, help="environment steps to train for")
    parser.add_argument("--maskable", action="store_true", help="use sb3_contrib.MaskablePPO")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("ppo_diffusion_policy.zip"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    spec_kwargs = gym.spec(args.env).kwargs  # the benchmark the env id uses
    benchmark_spec = {"name": spec_kwargs["benchmark"], **spec_kwargs.get("benchmark_kwargs", {})}
    checkpoint = args.checkpoint or cached_checkpoint(benchmark_spec)  # small model, pretrained once
    model = DiffusionModel.load(checkpoint)

    # the environment of the model: same prior and T (a policy for another process is refused)
    env = gym.make(args.env, n_steps=args.n_steps, prior=model.noise.marginals, diffusion_steps=model.diffusion_steps)
    policy_kwargs = {"model": model, "task": env.unwrapped.task}  # type: ignore[attr-defined]
    algo, policy = (MaskablePPO, MaskableGraphDiffusionPolicy) if args.maskable else (PPO, GraphDiffusionPolicy)
    agent = algo(
        policy,
        env,
        gamma=1.0,  # terminal reward only
        n_steps=8 * args.n_steps,  # 8 whole episodes per rollout
        batch_size=4 * args.n_steps,
        learning_rate=1e-4,
        seed=args.seed,
        policy_kwargs=policy_kwargs,
        verbose=1,
    )
    start = time.perf_counter()
    agent.learn(args.timesteps)
    print(f"trained {args.timesteps} steps in {time.perf_counter() - start:.1f} s")
    agent.save(args.out)
    agent = algo.load(args.out, env=env)

    # sample a few cells with the fine-tuned policy
    best = None
    for episode in range(5):
        obs, _ = env.reset(seed=args.seed + 1000 + episode)
        done = False
        while not done:
            action, _ = agent.predict(obs, deterministic=False)
            obs, reward, done, _, info = env.step(action)
        print(f"episode {episode}: reward {reward:.4f}  {info['cell']}")
        if info["valid"] and (best is None or info["val_acc"] > best["val_acc"]):
            best = info
    benchmark = env.unwrapped.benchmark  # type: ignore[attr-defined]
    if best is not None:
        print(f"best cell seen: {best['cell']}  validation {best['val_acc']:.4f}%")
    print(
        f"best over the whole run: {max(benchmark.best_so_far(), default=float('nan')):.4f}% "
        f"(oracle {benchmark.oracle.val_acc:.4f}%) after {benchmark.n_queries} distinct queries"
    )


if __name__ == "__main__":
    main()
