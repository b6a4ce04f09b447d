"""Teaching walk-through: one denoising episode, step by step, with a diffusion model as the policy.

The environment is the MDP of docs/environment.md §1: the state is the noisy graph ``G_t`` and its time
index, the action is the next, less noisy graph, and only the last step is rewarded. The policy is the
reverse diffusion ``p_θ(G_s | G_t)`` of a shipped pretrained graph-diffusion model (docs/pretrained.md),
sampled here by hand so that every piece of the loop is visible. Every step is printed (``ansi``
rendering); the episode is saved as an animated GIF with a fixed layout, colours and legend, each free
node annotated with the probability the policy gave to the type it chose (docs/teaching.md).

Run::

    python examples/teaching_walkthrough.py --benchmark nb201 --steps 10 --out walkthrough.gif
    python examples/teaching_walkthrough.py --benchmark toy --png strip.png  # also the old PNG strip
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import dgpo_env  # noqa: F401  (registers the environments)
from agents.diffusion.model import DiffusionModel
from dgpo_env.envs.animation import EpisodeFrame, save_episode_gif
from dgpo_env.envs.rendering import render_ansi, render_rgb
from dgpo_env.io import atomic_write_bytes

ENV_IDS = {"toy": "dgpo_env/ToyDAG-v0", "nb201": "dgpo_env/NB201-CIFAR10-v0"}


def run_episode(model: DiffusionModel, env: gym.Env, seed: int) -> tuple[list[EpisodeFrame], dict]:
    """Denoise one episode with ``model`` as the policy, printing every step.

    Returns:
        The frames (start graph first, ``n_steps + 1`` in all) and the last step's ``info``.
    """
    core = env.unwrapped
    obs, info = env.reset(seed=seed)
    generator = torch.Generator().manual_seed(seed)
    frames = [EpisodeFrame(core.current_graph, core.t, caption="G_T: drawn from the prior")]  # type: ignore[attr-defined]
    print(render_ansi(core.search_space, core.current_graph, core.t, {}))  # type: ignore[attr-defined]
    done = False
    while not done:
        # Observe G_t, let the model give p(G_s | G_t) for the next time s, draw G_s, step.
        t = int(obs["t"][0])
        s = int(core.timesteps[list(core.timesteps).index(t) + 1])  # type: ignore[attr-defined]
        with torch.no_grad():
            node_probs, edge_probs = model.reverse_step_probs(
                torch.as_tensor(obs["nodes"])[None], torch.as_tensor(obs["edges"])[None], t, s
            )
        nodes = torch.multinomial(node_probs[0].float(), 1, generator=generator)[:, 0]
        edges = torch.multinomial(edge_probs[0].float(), 1, generator=generator)[:, 0]
        chosen = node_probs[0].gather(1, nodes[:, None])[:, 0].numpy()  # p(chosen type) per node
        obs, reward, done, _, info = env.step(np.concatenate([nodes.numpy(), edges.numpy()]))
        caption = f"step t={t} -> s={s}"
        if done:
            caption += f"   reward {reward:.4f}" + ("" if info["valid"] else f"   invalid: {info['invalid_reason']}")
        frames.append(EpisodeFrame(core.current_graph, core.t, chosen, caption))  # type: ignore[attr-defined]
        print(caption)
        print(render_ansi(core.search_space, core.current_graph, core.t, info))  # type: ignore[attr-defined]
    return frames, info


def main(argv: Sequence[str] | None = None) -> list[EpisodeFrame]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", choices=sorted(ENV_IDS), default="nb201")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps of the episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("walkthrough.gif"))
    parser.add_argument("--png", type=Path, default=None, help="also save the frames as one PNG strip")
    args = parser.parse_args(argv)

    # The shipped structure prior of the space; the environment shares its prior and T.
    model = DiffusionModel.from_pretrained(args.benchmark)
    env = gym.make(
        ENV_IDS[args.benchmark],
        prior=model.noise.marginals,
        diffusion_steps=model.diffusion_steps,
        n_steps=args.steps,
    )
    frames, info = run_episode(model, env, args.seed)
    space = env.unwrapped.search_space  # type: ignore[attr-defined]
    save_episode_gif(args.out, space, frames)
    print(f"final cell: {info['cell']}  valid={info['valid']}  val_acc={info['val_acc']}")
    print(f"saved {len(frames)} frames to {args.out}")
    if args.png is not None:
        strip = np.concatenate([render_rgb(space, f.dag, f.t, {}) for f in frames], axis=1)
        _save_png(strip, args.png)
    return frames


def _save_png(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


if __name__ == "__main__":
    main()
