"""Animated GIF of one denoising episode, for teaching (docs/teaching.md).

Every frame shows the graph ``G_t`` of one time of the episode with the same drawing conventions, so
that only the graph changes from frame to frame:

* **fixed layout** — the nodes stay where the final cell puts them (input left, output right, inner
  nodes by depth), so an edge that appears or a node that changes colour is easy to follow;
* **fixed colours** — node type ``k`` is always colour ``k`` of matplotlib's ``tab10`` (as in
  :func:`~dgpo_env.envs.rendering.render_rgb`), and one palette, computed from all frames, is shared by
  every frame of the GIF;
* **fixed legend** — every node type of the search space, in a panel of its own at the right
  (:data:`LEGEND_FRACTION` of the width), identical in every frame;
* **policy probabilities** — under every free node, ``p`` is the probability the policy gave to the
  type it chose at that step (``p_θ(x_s = chosen | G_t)``, docs/environment.md §5).

:func:`episode_gif_bytes` draws the frames and encodes them; :func:`save_episode_gif` writes the file
atomically (:func:`dgpo_env.io.atomic_write_bytes`). The frames come from any rollout:
``examples/teaching_walkthrough.py`` records them from a pretrained diffusion model.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dgpo_env.envs.rendering import _layers
from dgpo_env.io import atomic_write_bytes
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.dag import DAG
from dgpo_env.validation import check_count

__all__ = [
    "LEGEND_FRACTION",
    "EpisodeFrame",
    "episode_gif_bytes",
    "render_episode_frames",
    "save_episode_gif",
]

LEGEND_FRACTION = 0.26
"""Fraction of the frame width, at the right, taken by the legend panel (the same in every frame)."""

_DPI = 100
_NODE_SIZE = 900


@dataclass(frozen=True)
class EpisodeFrame:
    """One time of an episode: the graph and what the policy did to reach it.

    Attributes:
        dag: The graph ``G_t``.
        t: Its diffusion time index.
        chosen_probs: ``float[N]`` probability the policy gave to each node's chosen type in the step
            that produced ``dag``; ``None`` for the start graph (drawn from the prior, not the policy).
        caption: One line shown under the title (e.g. the reward of the last step).
    """

    dag: DAG
    t: int
    chosen_probs: np.ndarray | None = None
    caption: str = ""


def _check_frames(space: SearchSpace, frames: Sequence[EpisodeFrame]) -> None:
    if not isinstance(frames, Sequence) or len(frames) == 0:
        raise ValueError("frames must be a non-empty sequence of EpisodeFrame")
    for i, frame in enumerate(frames):
        if not isinstance(frame, EpisodeFrame):
            raise TypeError(f"frames[{i}] must be an EpisodeFrame, got {type(frame).__name__}")
        space.check_shape(frame.dag)
        if frame.chosen_probs is not None:
            probs = np.asarray(frame.chosen_probs, dtype=np.float64)
            if probs.shape != (space.n_nodes,):
                raise ValueError(f"frames[{i}].chosen_probs must have shape ({space.n_nodes},), got {probs.shape}")
            if not (np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1 + 1e-6).all()):
                raise ValueError(f"frames[{i}].chosen_probs must be probabilities in [0, 1]")


def _positions(dag: DAG) -> dict[int, tuple[float, float]]:
    """Node positions in ``[0, 1]^2``: column by depth in ``dag``, nodes of a column spread evenly."""
    depth = _layers(dag)
    n_columns = max(depth) + 1
    columns: dict[int, list[int]] = {}
    for node, d in enumerate(depth):
        columns.setdefault(d, []).append(node)
    pos = {}
    for d, nodes in columns.items():
        for row, node in enumerate(nodes):
            y = 0.5 if len(nodes) == 1 else 1.0 - row / (len(nodes) - 1)
            pos[node] = (d / max(n_columns - 1, 1), 0.1 + 0.8 * y)
    return pos


def render_episode_frames(
    space: SearchSpace, frames: Sequence[EpisodeFrame], size: tuple[int, int] = (960, 540)
) -> list[np.ndarray]:
    """Draw every frame with the same layout, colours and legend.

    Args:
        space: The search space of the graphs (node-type names, fixed nodes).
        frames: The episode, start graph first; the layout is that of the last graph.
        size: ``(width, height)`` of a frame in pixels, each at least 320 x 240.

    Returns:
        One ``uint8[H, W, 3]`` picture per frame, ``H, W = size[1], size[0]``.

    Raises:
        ValueError: For an empty episode, a graph of the wrong shape, bad probabilities or a too small size.
        TypeError: For a frame that is not an :class:`EpisodeFrame`.
    """
    _check_frames(space, frames)
    if not (isinstance(size, tuple) and len(size) == 2):
        raise ValueError(f"size must be a (width, height) tuple, got {size!r}")
    width = check_count("size[0]", size[0], minimum=320)
    height = check_count("size[1]", size[1], minimum=240)

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    cmap = plt.get_cmap("tab10")
    pos = _positions(frames[-1].dag)
    fixed_nodes = space.fixed_mask[: space.n_nodes]
    pictures = []
    for frame in frames:
        fig = plt.figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
        try:
            ax = fig.add_axes((0.02, 0.02, 0.96 - LEGEND_FRACTION, 0.84))
            legend_ax = fig.add_axes((1.0 - LEGEND_FRACTION, 0.0, LEGEND_FRACTION, 1.0))
            for i, j in frame.dag.edge_list():
                ax.add_patch(
                    FancyArrowPatch(
                        pos[i],
                        pos[j],
                        arrowstyle="-|>",
                        mutation_scale=14,
                        connectionstyle="arc3,rad=0.18",
                        color="0.35",
                        shrinkA=16,
                        shrinkB=16,
                        zorder=1,
                    )
                )
            xy = np.array([pos[i] for i in range(space.n_nodes)])
            colours = [cmap(int(k) % 10) for k in frame.dag.nodes.tolist()]
            ax.scatter(xy[:, 0], xy[:, 1], s=_NODE_SIZE, c=colours, edgecolors="black", linewidths=1.0, zorder=2)
            for i, (x, y) in enumerate(xy):
                ax.text(x, y, str(i), ha="center", va="center", fontsize=11, color="white", weight="bold", zorder=3)
                if frame.chosen_probs is not None and not fixed_nodes[i]:
                    ax.text(
                        x,
                        y - 0.085,
                        f"p={frame.chosen_probs[i]:.2f}",
                        ha="center",
                        va="top",
                        fontsize=10,
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0},
                        zorder=3,
                    )
            ax.set_xlim(-0.08, 1.08)
            ax.set_ylim(-0.05, 1.05)
            ax.set_axis_off()
            fig.text(0.02, 0.955, f"{space.name}   t = {frame.t}", fontsize=15, weight="bold", va="center")
            if frame.caption:
                fig.text(0.02, 0.895, frame.caption, fontsize=11, va="center")

            handles = [
                Line2D([], [], marker="o", ls="", ms=11, markerfacecolor=cmap(k % 10), color="black", label=name)
                for k, name in enumerate(space.node_types)
            ]
            legend_ax.legend(
                handles=handles, loc="upper left", title="node type", fontsize=11, title_fontsize=12, frameon=False
            )
            legend_ax.text(
                0.04,
                0.12,
                "p under a node: the\npolicy's probability of\nthe type it chose",
                fontsize=10,
                va="bottom",
                transform=legend_ax.transAxes,
            )
            legend_ax.set_axis_off()
            fig.canvas.draw()
            pictures.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())  # type: ignore[attr-defined]
        finally:
            plt.close(fig)
    return pictures


def episode_gif_bytes(
    space: SearchSpace,
    frames: Sequence[EpisodeFrame],
    size: tuple[int, int] = (960, 540),
    frame_ms: int = 900,
    hold_last_ms: int = 3000,
) -> bytes:
    """Encode an episode as an animated GIF (looping) with one palette shared by all frames.

    Args:
        space: The search space of the graphs.
        frames: The episode, start graph first (:func:`render_episode_frames`).
        size: ``(width, height)`` of a frame in pixels.
        frame_ms: Display time of every frame but the last, in milliseconds (at least 20).
        hold_last_ms: Display time of the last frame (the finished cell), in milliseconds (at least 20).

    Returns:
        The GIF file's bytes: ``len(frames)`` frames of ``size`` pixels.

    Raises:
        ValueError: As :func:`render_episode_frames`, or for a display time below 20 ms.
    """
    frame_ms = check_count("frame_ms", frame_ms, minimum=20)
    hold_last_ms = check_count("hold_last_ms", hold_last_ms, minimum=20)
    from PIL import Image

    pictures = render_episode_frames(space, frames, size)
    # One palette for the whole episode: a colour is the same palette entry in every frame.
    palette = Image.fromarray(np.concatenate(pictures, axis=0)).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    images = [Image.fromarray(p).quantize(palette=palette, dither=Image.Dither.NONE) for p in pictures]
    durations = [frame_ms] * (len(images) - 1) + [hold_last_ms]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=durations,
        loop=0,
        optimize=False,
        disposal=1,
    )
    return buffer.getvalue()


def save_episode_gif(
    path: str | Path,
    space: SearchSpace,
    frames: Sequence[EpisodeFrame],
    size: tuple[int, int] = (960, 540),
    frame_ms: int = 900,
    hold_last_ms: int = 3000,
) -> Path:
    """Write :func:`episode_gif_bytes` to ``path`` atomically (the parent directory is created).

    Args:
        path: The GIF file.
        space: The search space of the graphs.
        frames: The episode, start graph first.
        size: ``(width, height)`` of a frame in pixels.
        frame_ms: Display time of every frame but the last, in milliseconds.
        hold_last_ms: Display time of the last frame, in milliseconds.

    Returns:
        The path written.

    Raises:
        ValueError: As :func:`episode_gif_bytes`.
    """
    data = episode_gif_bytes(space, frames, size, frame_ms, hold_last_ms)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path
