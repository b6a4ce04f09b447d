"""Teaching walk-through: one denoising episode, step by step, with a diffusion model as the policy.

The environment is the MDP of docs/environment.md §1: the state is the noisy graph ``G_t`` and its time
index, the action is the next, less noisy graph, and only the last step is rewarded. The policy is
the reverse diffusion ``p_θ(G_s | G_t)`` of a (briefly) pretrained graph-diffusion model, sampled
here by hand so that every piece of the loop is visible. Every step is printed (``ansi``
rendering) and drawn; the drawings are saved as one PNG strip.

Run::

    python examples/teaching_walkthrough.py --benchmark toy --steps 6 --out walkthrough.png
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import dgpo_env  # noqa: F401  (registers the environments)
from agents.diffusion.pretrain import PretrainConfig, pretrain, pretrain_on_benchmark
from dgpo_env.benchmarks import make_benchmark
from dgpo_env.io import atomic_write_bytes

ENV_IDS = {"toy": "dgpo_env/ToyDAG-v0", "nb201": "dgpo_env/NB201-CIFAR10-v0"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", choices=sorted(ENV_IDS), default="toy")
    parser.add_argument("--steps", type=int, default=6, help="denoising steps of the episode")
    parser.add_argument("--epochs", type=int, default=20, help="pretraining epochs (a short demo run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("walkthrough.png"))
    args = parser.parse_args()

    # 1. A graph-diffusion model pretrained on cells of the benchmark (NB201: all of them; the toy space
    #    is too large to list, so 2,000 uniformly drawn valid cells).
    benchmark = make_benchmark(args.benchmark)
    config = PretrainConfig(epochs=args.epochs, seed=args.seed)
    if args.benchmark == "toy":
        rng = np.random.default_rng(args.seed)
        cells = [benchmark.search_space.sample_uniform(rng) for _ in range(2000)]
        model, history = pretrain(benchmark.search_space, cells, config, progress=False)
    else:
        model, history = pretrain_on_benchmark(benchmark, config, progress=False)
    print(f"pretrained: final training loss {history['train_loss'][-1]:.3f}\n")

    # 2. The environment shares the model's prior and T, and visits `--steps` of its time indices.
    env = gym.make(
        ENV_IDS[args.benchmark],
        benchmark=benchmark,
        benchmark_kwargs=None,
        prior=model.noise.marginals,
        diffusion_steps=model.diffusion_steps,
        n_steps=args.steps,
        render_mode="rgb_array",
    )
    core = env.unwrapped
    obs, _ = env.reset(seed=args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    frames = [env.render()]
    print(core.__class__.__name__, "episode; reward arrives only at t = 0\n")
    print(_text(core, {}))

    # 3. The loop: observe G_t, let the model propose G_s, step.
    done = False
    while not done:
        t = int(obs["t"][0])
        s = int(core.timesteps[list(core.timesteps).index(t) + 1])
        nodes = torch.as_tensor(obs["nodes"])[None]
        edges = torch.as_tensor(obs["edges"])[None]
        with torch.no_grad():
            node_probs, edge_probs = model.reverse_step_probs(nodes, edges, t, s)
        action = np.concatenate(
            [
                torch.multinomial(node_probs[0].float(), 1, generator=generator)[:, 0].numpy(),
                torch.multinomial(edge_probs[0].float(), 1, generator=generator)[:, 0].numpy(),
            ]
        )
        changed = int((action != np.concatenate([obs["nodes"], obs["edges"]])).sum())
        obs, reward, done, _, info = env.step(action)
        frames.append(env.render())
        print(f"step t={t} -> s={s}: the policy changed {changed} entries, reward {reward:.4f}")
        print(_text(core, info))

    strip = np.concatenate(frames, axis=1)
    _save_png(strip, args.out)
    print(f"final cell: {info['cell']}  valid={info['valid']}  val_acc={info['val_acc']}")
    print(f"saved {len(frames)} frames to {args.out}")


def _text(core: gym.Env, info: dict) -> str:
    from dgpo_env.envs.rendering import render_ansi

    return render_ansi(core.search_space, core.current_graph, core.t, info)  # type: ignore[attr-defined]


def _save_png(image: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    plt.imsave(buffer, image, format="png")
    atomic_write_bytes(path, buffer.getvalue())


if __name__ == "__main__":
    main()
