"""Training throughput of the diffusion policy beside SB3 baselines, DGPO's cost, pretraining time, peak memory.

Measures, in one process with one torch thread:

1. SB3 ``PPO`` steps per second (``learn``: rollout collection and training together; ``--n-envs``
   copies, ``n_steps=--n-steps``, SB3's other defaults) on :class:`GraphDiffusionPolicy` (NB201
   CIFAR-10, the denoiser given by ``--model``: ``default``, ``compare`` or ``mlp``; speed does not
   depend on the weights, so the model is freshly initialised), on SB3's MLP ``MultiInputPolicy`` on
   the same environment, and on ``MlpPolicy`` on ``CartPole-v1``; and their ratios. The three run
   interleaved in every repeat so they share the machine's load; medians over ``--repeats`` are
   reported (the ratios are medians of per-repeat ratios). Then one more ``learn`` per setting, timed
   in parts, splits the CPU time of a rollout-and-update cycle (``n_envs * n_steps`` steps) into the
   environment's ``step``, the policy's forward passes while collecting, the rest of the collection
   (SB3's buffers and tensor conversions) and PPO's update (``n_epochs`` passes of minibatches: the
   forward and backward passes and the optimizer). Last, the denoiser's bare forward and backward
   passes on minibatches of the update's sizes give the least time an update can take with this
   model (a bound on the rate).
2. DGPO (published settings, lr 1e-3, 10 denoising steps) seconds per 100 distinct queries.
3. Pretraining cost of the model (:data:`PRETRAINING`, on all NB201 cells): wall and CPU seconds and
   peak memory, only with ``--pretrain`` (under a minute on an idle machine).
4. Peak resident memory of the process (``resource.getrusage``).

Other processes may share the CPU; the load average at start and end is recorded with the results.

Usage::

    python benchmarks/perf.py --out benchmarks/results/perf.json
    python benchmarks/perf.py --model compare --dgpo-queries 0 --out benchmarks/results/perf_compare.json
    python benchmarks/perf.py --pretrain        # also time the model's pretraining
    python benchmarks/perf.py --model mlp --pretrain --out benchmarks/results/perf_mlp.json  # the MLP denoiser
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import stable_baselines3
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import dgpo_env
from agents.commands.args import nonnegative_int, positive_int
from agents.dgpo import DGPO
from agents.dgpo.compare_methods import COMPARE_PRETRAIN, DGPO_LEARNING_RATE
from agents.diffusion.architectures import AnyDenoiserConfig
from agents.diffusion.mlp_denoiser import MLPDenoiserConfig
from agents.diffusion.model import DiffusionModel
from agents.diffusion.pretrain import PretrainConfig, pretrain_on_benchmark
from agents.policies import GraphDiffusionPolicy, make_env_for_model
from dgpo_env.benchmarks import NB201Benchmark
from dgpo_env.io import atomic_write_text
from dgpo_env.search_spaces import NB201SearchSpace

ENV_ID = "dgpo_env/NB201-CIFAR10-v0"
PRETRAINING: dict[str, PretrainConfig] = {
    "default": PretrainConfig(),
    "compare": COMPARE_PRETRAIN,
    # the shipped nb201-mlp model's recipe (agents.pretrained.RECIPES): 2,000 steps at lr 4e-3
    "mlp": PretrainConfig(steps=2000, lr=4e-3, denoiser=MLPDenoiserConfig()),
}
"""``--model``: the pretraining of the default model of ``dgpo pretrain`` (a 197k-parameter graph transformer),
of the comparison harness's small transformer, or of the MLP denoiser
(:class:`~agents.diffusion.mlp_denoiser.MLPDenoiser`, the shipped ``nb201-mlp``); its ``denoiser`` is the
network whose speed is measured."""

MODELS: dict[str, AnyDenoiserConfig] = {name: config.denoiser for name, config in PRETRAINING.items()}
"""``--model``: the denoiser of each :data:`PRETRAINING` entry."""


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class PartTimer:
    """CPU seconds spent inside some methods of an agent during ``learn`` (instance attributes shadow them).

    Args:
        agent: The PPO agent; its ``env.step``, ``policy.forward``, ``collect_rollouts`` and ``train``
            are timed until :meth:`restore`.
    """

    PARTS = ("env_step", "policy_forward", "collect_rollouts", "train")

    def __init__(self, agent: PPO) -> None:
        assert agent.env is not None
        self.seconds = dict.fromkeys(self.PARTS, 0.0)
        self._targets = {
            "env_step": (agent.env, "step"),
            "policy_forward": (agent.policy, "forward"),
            "collect_rollouts": (agent, "collect_rollouts"),
            "train": (agent, "train"),
        }
        for part, (owner, name) in self._targets.items():
            setattr(owner, name, self._timed(part, getattr(owner, name)))

    def _timed(self, part: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[part] += time.process_time() - start

        return run

    def restore(self) -> None:
        """Remove the timing wrappers (the class methods apply again)."""
        for owner, name in self._targets.values():
            delattr(owner, name)


def rollout_breakdown(agent: PPO, rollouts: int) -> dict[str, float]:
    """CPU milliseconds per rollout-and-update cycle, by part, over ``rollouts`` cycles of ``agent.learn``."""
    timer = PartTimer(agent)
    try:
        agent.learn(rollouts * agent.n_steps * agent.n_envs, reset_num_timesteps=False)
    finally:
        timer.restore()
    ms = {part: 1000.0 * seconds / rollouts for part, seconds in timer.seconds.items()}
    batches = -(-agent.n_steps * agent.n_envs // agent.batch_size)  # minibatches per epoch
    return {
        "env_step_ms": ms["env_step"],
        "policy_forward_ms": ms["policy_forward"],
        "collect_other_ms": ms["collect_rollouts"] - ms["env_step"] - ms["policy_forward"],
        "train_ms": ms["train"],
        "total_ms": ms["collect_rollouts"] + ms["train"],
        "gradient_steps": agent.n_epochs * batches,
        "train_ms_per_gradient_step": ms["train"] / (agent.n_epochs * batches),
    }


def denoiser_floor(agent: PPO, repeats: int = 10) -> dict[str, Any]:
    """The least CPU time PPO's update can take: the denoiser's forward and backward passes alone.

    Times the bare denoiser (no reverse step, distribution, critic or optimizer) on minibatches of the
    update's sizes drawn from the agent's last rollout, one pass per minibatch of every epoch; the
    fastest of ``repeats`` passes of each size counts, so that other processes' load inflates it least.

    Returns:
        ``ms_per_update`` (the sum over one update's minibatches), ``ms_per_minibatch`` of each size, and
        ``max_steps_per_second``: the rollout size over that time (an upper bound on the whole cycle's rate).
    """
    policy = agent.policy
    model: DiffusionModel = policy.model  # type: ignore[attr-defined]
    cycle = agent.n_steps * agent.n_envs
    sizes = [min(agent.batch_size, cycle - start) for start in range(0, cycle, agent.batch_size)]
    per_batch: dict[str, float] = {}
    for size in sorted(set(sizes)):
        obs = next(agent.rollout_buffer.get(size)).observations
        nodes, edges, t = (obs[key].long().reshape(size, -1) for key in ("nodes", "edges", "t"))
        seconds = []
        for _ in range(repeats + 1):  # the first is a warm-up
            start = time.process_time()
            node_logits, edge_logits = model.logits(nodes, edges, t.reshape(-1))
            loss = node_logits.clamp(min=-1e9).sum() + edge_logits.clamp(min=-1e9).sum()
            loss.backward()
            seconds.append(time.process_time() - start)
        policy.optimizer.zero_grad()
        per_batch[str(size)] = 1000.0 * min(seconds[1:])  # the fastest pass: a bound, least disturbed by load
    update_ms = agent.n_epochs * sum(per_batch[str(size)] for size in sizes)
    return {"ms_per_update": update_ms, "ms_per_minibatch": per_batch, "max_steps_per_second": cycle / update_ms * 1000}


def optimizer_summary(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's class and implementation (``fused``/``foreach``; ``None``: torch's default, a loop on CPU)."""
    return {
        "class": type(optimizer).__name__,
        "fused": optimizer.defaults.get("fused"),
        "foreach": optimizer.defaults.get("foreach"),
    }


def steps_per_second(agent: PPO, steps: int) -> tuple[float, float]:
    """``agent.learn`` steps per wall-clock second and per CPU second of this process, after a warm-up rollout.

    With one torch thread the CPU rate is what the process would reach alone on an idle core; the
    wall-clock rate also pays for the other processes sharing the machine.
    """
    agent.learn(agent.n_steps * agent.n_envs)
    wall, cpu = time.perf_counter(), time.process_time()
    agent.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - wall), steps / (time.process_time() - cpu)


def ppo_agents(model: DiffusionModel, n_envs: int, n_steps: int, seed: int) -> dict[str, PPO]:
    """PPO on the diffusion policy, on ``MultiInputPolicy`` (same env) and on ``MlpPolicy`` (CartPole)."""
    env = make_env_for_model(model, ENV_ID, n_envs=n_envs, n_steps=n_steps, seed=seed)
    policy_kwargs = {"model": model, "task": env.get_attr("task")[0]}
    mlp_env = make_vec_env(ENV_ID, n_envs=n_envs, seed=seed, env_kwargs={"n_steps": n_steps})
    cartpole = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    return {
        "diffusion": PPO(GraphDiffusionPolicy, env, n_steps=n_steps, gamma=1.0, seed=seed, policy_kwargs=policy_kwargs),
        "multi_input_mlp": PPO("MultiInputPolicy", mlp_env, n_steps=n_steps, gamma=1.0, seed=seed),
        "cartpole_mlp": PPO("MlpPolicy", cartpole, n_steps=n_steps, seed=seed),
    }


RATIOS = {
    "diffusion_over_cartpole": ("diffusion", "cartpole_mlp"),
    "multi_input_over_cartpole": ("multi_input_mlp", "cartpole_mlp"),
    "diffusion_over_multi_input": ("diffusion", "multi_input_mlp"),
}
"""Reported ratios: name -> (numerator, denominator) setting."""


def summarise(runs: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Median rate of every setting and median per-repeat ratio of every :data:`RATIOS` pair."""
    ratios = {
        name: [a / b for a, b in zip(runs[top], runs[bottom], strict=True)] for name, (top, bottom) in RATIOS.items()
    }
    return {
        "steps_per_second": {name: statistics.median(rates) for name, rates in runs.items()},
        "ratios": {name: statistics.median(values) for name, values in ratios.items()},
    }


def ppo_throughput(model: DiffusionModel, args: argparse.Namespace) -> dict[str, Any]:
    """Steps per second of the three PPO settings, by wall clock and by process CPU time (medians)."""
    agents = ppo_agents(model, args.n_envs, args.n_steps, args.seed)
    steps = {"diffusion": args.steps, "multi_input_mlp": 4 * args.steps, "cartpole_mlp": 10 * args.steps}
    runs: dict[str, dict[str, list[float]]] = {
        "wall": {name: [] for name in agents},
        "cpu": {name: [] for name in agents},
    }
    for repeat in range(args.repeats):
        for name, agent in agents.items():
            wall, cpu = steps_per_second(agent, steps[name])
            runs["wall"][name].append(wall)
            runs["cpu"][name].append(cpu)
        print(
            f"repeat {repeat + 1} (wall / cpu steps/s): "
            + ", ".join(f"{name} {runs['wall'][name][-1]:,.0f} / {runs['cpu'][name][-1]:,.0f}" for name in agents)
        )
    rollouts = {name: max(1, steps[name] // (args.n_envs * args.n_steps)) for name in agents}
    breakdown = {name: rollout_breakdown(agent, rollouts[name]) for name, agent in agents.items()}
    floor = denoiser_floor(agents["diffusion"])
    cartpole = statistics.median(runs["cpu"]["cartpole_mlp"])
    floor["max_over_cartpole"] = floor["max_steps_per_second"] / cartpole  # CPU-time rates
    return {
        "wall_clock": summarise(runs["wall"]),
        "cpu_time": summarise(runs["cpu"]),
        "runs": runs,
        "steps": steps,
        "breakdown_cpu_ms_per_rollout": breakdown,
        "denoiser_floor_cpu": floor,
        "optimizer": {name: optimizer_summary(agent.policy.optimizer) for name, agent in agents.items()},
    }


def dgpo_seconds_per_100_queries(model: DiffusionModel, queries: int, seed: int) -> dict[str, float]:
    """Wall seconds of a published-settings DGPO run until ``queries`` distinct cells, scaled to 100."""
    start = time.perf_counter()
    agent = DGPO.for_env_id(model, ENV_ID, n_steps=10, learning_rate=DGPO_LEARNING_RATE, seed=seed, max_queries=queries)
    agent.learn(total_timesteps=100 * queries * 10)
    wall = time.perf_counter() - start
    return {"queries": agent.n_queries, "wall_s": wall, "seconds_per_100_queries": 100.0 * wall / agent.n_queries}


def pretraining_cost(config: PretrainConfig) -> dict[str, float]:
    """Cost of pretraining with ``config`` on all NB201 cells (``dgpo pretrain``'s run) in this process.

    Returns:
        ``wall_s`` and ``cpu_s`` (process CPU seconds, all threads) of the whole run (cell listing
        included), ``gradient_steps``, and ``peak_rss_mb`` (the process's peak resident memory after it).
    """
    wall, cpu = time.perf_counter(), time.process_time()
    _, history = pretrain_on_benchmark(NB201Benchmark("cifar10"), config, progress=False)
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "gradient_steps": history["steps"],
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mb": peak_rss_mb(),
    }


def timed(label: str, run: Callable[[], Any]) -> Any:
    """``run()``, printing its wall time."""
    start = time.perf_counter()
    out = run()
    print(f"{label}: {time.perf_counter() - start:.1f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="default", help="diffusion model size")
    parser.add_argument(
        "--steps", type=positive_int, default=400, help="timed PPO steps on the diffusion policy per repeat"
    )
    parser.add_argument("--n-envs", type=positive_int, default=8)
    parser.add_argument("--n-steps", type=positive_int, default=10, help="PPO rollout length and denoising steps")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--dgpo-queries", type=nonnegative_int, default=100, help="DGPO run length (0: skip)")
    parser.add_argument("--pretrain", action="store_true", help="also time the model's pretraining (under a minute)")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/perf.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)  # SB3's batch-size note for 80-step rollouts
    load_start = os.getloadavg()
    model = DiffusionModel.create(NB201SearchSpace(), config=MODELS[args.model], seed=args.seed)

    ppo = timed("PPO throughput", lambda: ppo_throughput(model, args))
    print(f"PPO steps/s (median of {args.repeats}; {args.n_envs} envs, n_steps {args.n_steps}, 1 torch thread)")
    print(f"  {'setting':18s} {'wall clock':>12s} {'CPU time':>12s}")
    for name in ppo["runs"]["wall"]:
        wall, cpu = (ppo[clock]["steps_per_second"][name] for clock in ("wall_clock", "cpu_time"))
        print(f"  {name:18s} {wall:12,.0f} {cpu:12,.0f}")
    for name in RATIOS:
        wall, cpu = (ppo[clock]["ratios"][name] for clock in ("wall_clock", "cpu_time"))
        print(f"  {name:26s} {wall:8.3f} {cpu:8.3f}")
    cycle = args.n_envs * args.n_steps
    print(f"CPU ms per {cycle}-step rollout and PPO update (one timed learn per setting)")
    print(f"  {'setting':18s} {'env step':>9s} {'forward':>9s} {'other':>9s} {'update':>9s} {'per grad step':>14s}")
    for name, parts in ppo["breakdown_cpu_ms_per_rollout"].items():
        print(
            f"  {name:18s} {parts['env_step_ms']:9.1f} {parts['policy_forward_ms']:9.1f} "
            f"{parts['collect_other_ms']:9.1f} {parts['train_ms']:9.1f} {parts['train_ms_per_gradient_step']:14.2f}"
        )
    floor = ppo["denoiser_floor_cpu"]
    print(
        f"denoiser forward + backward alone: {floor['ms_per_update']:.0f} CPU ms per update "
        f"({', '.join(f'{ms:.1f} ms at {size}' for size, ms in floor['ms_per_minibatch'].items())}); "
        f"at most {floor['max_steps_per_second']:.0f} steps/s, {floor['max_over_cartpole']:.2f} of CartPole's"
    )
    dgpo = (
        timed("DGPO", lambda: dgpo_seconds_per_100_queries(model, args.dgpo_queries, args.seed))
        if args.dgpo_queries
        else None
    )
    if dgpo is not None:
        print(f"DGPO: {dgpo['seconds_per_100_queries']:.1f} s per 100 queries ({dgpo['queries']} queries)")
    pretrain = timed("pretraining", lambda: pretraining_cost(PRETRAINING[args.model])) if args.pretrain else None
    if pretrain is not None:
        print(
            f"pretraining ({args.model}): {pretrain['wall_s']:.1f} s wall, {pretrain['cpu_s']:.1f} CPU-s, "
            f"{pretrain['gradient_steps']} steps, peak memory {pretrain['peak_rss_mb']:.0f} MB"
        )
    print(f"peak memory: {peak_rss_mb():.0f} MB")
    payload = {
        "model": args.model,
        "model_parameters": sum(p.numel() for p in model.denoiser.parameters()),
        "n_envs": args.n_envs,
        "n_steps": args.n_steps,
        "repeats": args.repeats,
        "ppo": ppo,
        "dgpo": dgpo,
        "pretrain": pretrain if args.pretrain else "not measured (pass --pretrain)",
        "peak_rss_mb": peak_rss_mb(),
        "load_average": {"start": load_start, "end": os.getloadavg(), "cpus": os.cpu_count()},
        "versions": {
            "dgpo_env": dgpo_env.__version__,
            "torch": torch.__version__,
            "stable_baselines3": stable_baselines3.__version__,
            "gymnasium": gym.__version__,
        },
        "machine": {"python": platform.python_version(), "processor": platform.machine(), "torch_threads": 1},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
