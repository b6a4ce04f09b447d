"""Text and picture renderings of a (partially denoised) cell DAG."""

from __future__ import annotations

from typing import Any

import numpy as np

from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.dag import DAG

_FIGSIZE = (6.4, 3.6)
_DPI = 100


def render_ansi(space: SearchSpace, dag: DAG, t: int, info: dict[str, Any]) -> str:
    """A few lines of text: time index, node types, edges and, at the end, the cell's score."""
    names = [space.node_types[k] for k in dag.nodes.tolist()]
    lines = [f"t={t}  {space.name}", "nodes: " + " ".join(f"{i}:{n}" for i, n in enumerate(names))]
    lines.append("edges: " + " ".join(f"{i}->{j}" for i, j in dag.edge_list()))
    if "valid" in info:
        if info["valid"]:
            lines.append(f"cell: {info['cell']}  val_acc={info['val_acc']:.4f}")
        else:
            lines.append(f"invalid cell: {info['invalid_reason']}")
    return "\n".join(lines) + "\n"


def _layers(dag: DAG) -> list[int]:
    """Drawing column of every node: the input first, the output last, the rest by longest-path depth.

    Inner nodes without predecessors (possible in a noisy graph) stand in column 1, not on the input.
    """
    depth = [0] + [1] * (dag.n_nodes - 1)
    for i, j in dag.edge_list():  # row-major order visits every predecessor before its successors
        depth[j] = max(depth[j], depth[i] + 1)
    depth[-1] = max(depth[-1], max(depth[:-1]) + 1)
    return depth


def render_rgb(space: SearchSpace, dag: DAG, t: int, info: dict[str, Any]) -> np.ndarray:
    """``uint8[H, W, 3]`` picture of the DAG: nodes coloured by type, laid out by depth."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import networkx as nx

    graph = space.to_networkx(dag)
    depth = _layers(dag)
    for node in graph.nodes:
        graph.nodes[node]["layer"] = depth[node]
    pos = nx.multipartite_layout(graph, subset_key="layer")
    cmap = plt.get_cmap("tab10")
    colours = [cmap(int(k) % 10) for k in dag.nodes.tolist()]
    fig, ax = plt.subplots(figsize=_FIGSIZE, dpi=_DPI)
    try:
        nx.draw_networkx(
            graph, pos, ax=ax, node_color=colours, labels={i: str(i) for i in graph.nodes}, arrows=True, node_size=500
        )
        used = sorted(set(dag.nodes.tolist()))
        handles = [plt.Line2D([], [], marker="o", ls="", color=cmap(k % 10), label=space.node_types[k]) for k in used]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
        title = f"{space.name}  t={t}"
        if info.get("valid"):
            title += f"  val_acc={info['val_acc']:.2f}"
        ax.set_title(title)
        ax.set_axis_off()
        fig.tight_layout()
        fig.canvas.draw()
        image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # type: ignore[attr-defined]
    finally:
        plt.close(fig)
    return image
