"""The graph-diffusion model: a denoiser bound to a noise process and a search space (docs/diffusion.md §4).

:class:`DiffusionModel` turns the denoiser's clean-graph logits into the reverse step
``p_θ(G_s | G_t)`` of :class:`~dgpo_env.diffusion.noise.NoiseProcess`, samples cells by (strided)
reverse diffusion, scores transitions exactly, and saves/loads self-describing checkpoints.

Tensors: ``nodes`` are ``int64[B, N]`` node types, ``edges`` ``int64[B, M]`` upper-triangle edge
types (row-major), ``t``/``s`` an ``int`` or ``int64[B]`` of time indices in ``0..T``.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.functional import one_hot

from agents.diffusion.architectures import AnyDenoiserConfig, Denoiser, build_denoiser, denoiser_config_from_dict
from dgpo_env.diffusion.marginals import Marginals
from dgpo_env.diffusion.noise import NoiseProcess, categorical_log_prob, sample_categorical
from dgpo_env.diffusion.schedule import DEFAULT_DIFFUSION_STEPS
from dgpo_env.io import atomic_write_bytes
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.dag import DAG

CHECKPOINT_FORMAT = "dgpo-env/diffusion-model"
"""Tag stored in every checkpoint; files without it are refused."""

CHECKPOINT_FORMAT_VERSION = 1
"""Layout version of the checkpoint dictionary."""

UNKNOWN_VERSION = "0+unknown"
"""Package version reported when ``dgpo-env`` is not installed (running from a bare source tree)."""


class CheckpointError(ValueError):
    """A checkpoint cannot be used: corrupt, not ours, another search space or an incompatible version."""


class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss or weights; it stops rather than keep a broken model."""


def package_version() -> str:
    """The installed ``dgpo-env`` version, or :data:`UNKNOWN_VERSION`."""
    try:
        return version("dgpo-env")
    except PackageNotFoundError:
        return UNKNOWN_VERSION


def search_space_by_name(name: str) -> SearchSpace:
    """Instantiate a search space from its :attr:`SearchSpace.name`.

    Raises:
        ValueError: For an unknown name.
    """
    from dgpo_env.search_spaces import NB201SearchSpace, ToySearchSpace

    if name == "nb201":
        return NB201SearchSpace()
    if name == "toy":
        return ToySearchSpace()
    if name == "nb101":
        from dgpo_env.search_spaces.nb101 import NB101SearchSpace

        return NB101SearchSpace()
    raise ValueError(
        f"unknown search space {name!r}; built-in: 'nb201', 'nb101', 'toy'; for a space of your own pass the "
        "space object (e.g. DiffusionModel.load(path, search_space=space))"
    )


@dataclass(frozen=True)
class Samples:
    """A batch of sampled graphs.

    Attributes:
        nodes: ``int64[n, N]`` final node types.
        edges: ``int64[n, M]`` final edge types.
        times: ``int64[k + 1]`` the time indices visited, ``T .. 0``.
        trajectory: Optional list of ``(nodes, edges)`` per visited time (``G_T`` first), when requested.
    """

    nodes: Tensor
    edges: Tensor
    times: np.ndarray
    trajectory: list[tuple[Tensor, Tensor]] | None = None

    def dags(self) -> list[DAG]:
        """The final graphs as :class:`DAG` objects."""
        return [DAG(n, e) for n, e in zip(self.nodes.numpy(), self.edges.numpy(), strict=True)]


class DiffusionModel(nn.Module):
    """Denoiser + noise process + search space: the reverse diffusion ``p_θ(G_s | G_t)``.

    Args:
        denoiser: The clean-graph predictor (shapes and masks of ``space``).
        noise: The noise process (same search space and masks).
        space: The search space.
        info: Free-form, checkpoint-safe description (pretraining data, seed, queries ...).

    Raises:
        ValueError: If the three parts disagree on the search space.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        noise: NoiseProcess,
        space: SearchSpace,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if noise.space_name != space.name:
            raise ValueError(f"noise process is for search space {noise.space_name!r}, not {space.name!r}")
        node_allowed, edge_allowed = (torch.from_numpy(a.copy()) for a in space.allowed)
        if not (torch.equal(noise.node_allowed, node_allowed) and torch.equal(noise.edge_allowed, edge_allowed)):
            raise ValueError(f"noise-process masks differ from the {space.name} search space's")
        if not (torch.equal(denoiser.node_allowed, node_allowed) and torch.equal(denoiser.edge_allowed, edge_allowed)):
            raise ValueError(f"denoiser shapes/masks differ from the {space.name} search space's")
        self.denoiser = denoiser
        self.noise = noise
        self.space = space
        self.info: dict[str, Any] = dict(info or {})

    @classmethod
    def create(
        cls,
        space: SearchSpace,
        marginals: Marginals | None = None,
        diffusion_steps: int = DEFAULT_DIFFUSION_STEPS,
        config: AnyDenoiserConfig | None = None,
        seed: int | None = None,
        info: dict[str, Any] | None = None,
    ) -> DiffusionModel:
        """A freshly initialised model for ``space``.

        Args:
            space: The search space.
            marginals: The prior / limit distribution ``m`` (default uniform over allowed values).
            diffusion_steps: ``T``.
            config: Denoiser architecture and size (a `DenoiserConfig` for the transformer, an
                `MLPDenoiserConfig` for the MLP; default the transformer's defaults).
            seed: Seeds the weight initialisation (a local ``torch`` RNG fork; ``None``: torch's state).
            info: Stored with the model.
        """
        noise = NoiseProcess.from_marginals(space, marginals, diffusion_steps)
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            denoiser = build_denoiser(space, config)
        return cls(denoiser, noise, space, info)

    # ------------------------------------------------------------------ prediction
    @property
    def diffusion_steps(self) -> int:
        """``T``."""
        return self.noise.diffusion_steps

    def logits(self, nodes: Tensor, edges: Tensor, t: int | Tensor) -> tuple[Tensor, Tensor]:
        """Clean-graph logits ``([B, N, K], [B, M, K_e])`` (disallowed values ``-inf``).

        Raises:
            ValueError: If ``t`` is not one time in ``0..T`` per graph.
        """
        return self.logits_at(nodes, edges, self.noise.times(t, nodes.shape[0]))

    def logits_at(self, nodes: Tensor, edges: Tensor, times: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`logits` for ``int64[B]`` times the caller has checked to lie in ``0..T`` (no check).

        The policy's forward pass uses it: its schedule lookup already refuses every other time.
        """
        x = one_hot(nodes, self.space.n_node_types).float()  # [B, N, K]
        e = one_hot(edges, self.space.n_edge_types).float()  # [B, M, K_e]
        return self.denoiser(x, e, times.float() / self.diffusion_steps)

    def clean_probs(self, nodes: Tensor, edges: Tensor, t: int | Tensor) -> tuple[Tensor, Tensor]:
        """``p̂_θ(G_0 | G_t)``: ``([B, N, K], [B, M, K_e])`` probabilities."""
        node_logits, edge_logits = self.logits(nodes, edges, t)
        return node_logits.softmax(-1), edge_logits.softmax(-1)

    def clean_log_prob(
        self, nodes_t: Tensor, edges_t: Tensor, t: int | Tensor, nodes0: Tensor, edges0: Tensor
    ) -> Tensor:
        """``log p̂_θ(G_0 | G_t)`` of given clean graphs, summed over nodes and edges: ``[B]``.

        The DGPO / GDPO "eager" objective (docs/dgpo.md §2) and the pretraining cross-entropy
        (docs/diffusion.md §7) are this quantity. Fixed positions contribute exactly 0; a disallowed
        value in ``G_0`` gives ``-inf``.
        """
        node_logits, edge_logits = self.logits(nodes_t, edges_t, t)
        node_lp = node_logits.log_softmax(-1).gather(2, nodes0[..., None])[..., 0]  # [B, N]
        edge_lp = edge_logits.log_softmax(-1).gather(2, edges0[..., None])[..., 0]  # [B, M]
        return node_lp.sum(-1) + edge_lp.sum(-1)

    def reverse_step_probs(
        self, nodes: Tensor, edges: Tensor, t: int | Tensor, s: int | Tensor
    ) -> tuple[Tensor, Tensor]:
        """``p_θ(G_s | G_t)`` for ``s < t``: ``([B, N, K], [B, M, K_e])`` ``float64`` probabilities."""
        node_x0, edge_x0 = self.clean_probs(nodes, edges, t)
        return self.noise.reverse_step_probs(nodes, edges, node_x0, edge_x0, t, s)

    def log_prob(
        self,
        nodes_t: Tensor,
        edges_t: Tensor,
        t: int | Tensor,
        nodes_s: Tensor,
        edges_s: Tensor,
        s: int | Tensor,
    ) -> Tensor:
        """Exact ``log p_θ(G_s | G_t)``, summed over nodes and edges: ``float64[B]`` (differentiable)."""
        node_probs, edge_probs = self.reverse_step_probs(nodes_t, edges_t, t, s)
        return categorical_log_prob(node_probs, nodes_s) + categorical_log_prob(edge_probs, edges_s)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        n_steps: int | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 1024,
        return_trajectory: bool = False,
    ) -> Samples:
        """Draw ``n`` graphs by reverse diffusion from the prior with ``n_steps`` (strided) steps.

        Args:
            n: Number of graphs.
            n_steps: Denoising steps, ``1..T`` (default ``T``); the visited times are
                :func:`~dgpo_env.diffusion.schedule.step_schedule`.
            generator: The caller's torch generator.
            batch_size: Graphs denoised at once.
            return_trajectory: Keep every intermediate graph.

        Returns:
            The :class:`Samples`.
        """
        if n < 1 or batch_size < 1:
            raise ValueError(f"n and batch_size must be >= 1, got n={n}, batch_size={batch_size}")
        times = self.noise.step_schedule(self.diffusion_steps if n_steps is None else n_steps)
        was_training = self.training
        self.eval()
        chunks = [
            self._sample_chunk(min(batch_size, n - i), times, generator, return_trajectory)
            for i in range(0, n, batch_size)
        ]
        self.train(was_training)
        trajectory = None
        if return_trajectory:
            trajectory = [
                (torch.cat([c[k][0] for c in chunks]), torch.cat([c[k][1] for c in chunks])) for k in range(len(times))
            ]
        return Samples(
            nodes=torch.cat([c[-1][0] for c in chunks]),
            edges=torch.cat([c[-1][1] for c in chunks]),
            times=times,
            trajectory=trajectory,
        )

    def _sample_chunk(
        self, batch: int, times: np.ndarray, generator: torch.Generator | None, keep_all: bool
    ) -> list[tuple[Tensor, Tensor]]:
        """Reverse diffusion of one batch; returns every visited graph if ``keep_all``, else the last."""
        nodes, edges = self.noise.prior_sample(batch, generator)
        states = [(nodes, edges)]
        for t, s in zip(times[:-1].tolist(), times[1:].tolist(), strict=True):
            node_probs, edge_probs = self.reverse_step_probs(nodes, edges, t, s)
            nodes, edges = sample_categorical(node_probs, generator), sample_categorical(edge_probs, generator)
            if not keep_all:
                states.clear()
            states.append((nodes, edges))
        return states

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint dictionary (plain types and tensors only: ``weights_only``-loadable)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "package_version": package_version(),
            "search_space": self.space.name,
            "denoiser_config": self.denoiser.config.to_dict(),
            "noise": self.noise.to_dict(),
            "info": self.info,
            "state_dict": self.denoiser.state_dict(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint to ``path`` atomically (parent directories are created); returns the path.

        Weights holding NaN or infinite values (a diverged training) are refused with a
        :class:`CheckpointError` naming the first such tensor, and nothing is written.

        The file is written whole to a temporary file beside it and then renamed over ``path``
        (:func:`dgpo_env.io.atomic_write_bytes`), so a failed or interrupted save leaves an existing
        checkpoint as it was.
        """
        path = Path(path)
        data = self.finite_checkpoint(f"save {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(data, buffer)
        return atomic_write_bytes(path, buffer.getvalue())

    def finite_checkpoint(self, action: str) -> dict[str, Any]:
        """:meth:`checkpoint`, refused when a weight tensor holds NaN or infinite values (a diverged training).

        Args:
            action: What the checkpoint is for, for the message (``"save model.pt"``, ``"save the agent"``).

        Raises:
            CheckpointError: Naming the first non-finite tensor; nothing should be written then.
        """
        data = self.checkpoint()
        bad = non_finite_tensors(data["state_dict"])
        if bad:
            raise CheckpointError(
                f"refusing to {action}: {len(bad)} weight tensor(s) hold NaN or infinite values "
                f"(first: {bad[0]!r}); the training diverged, lower the learning rate and train again"
            )
        return data

    @classmethod
    def load(cls, path: str | Path, search_space: SearchSpace | str | None = None) -> DiffusionModel:
        """Read a checkpoint written by :meth:`save`.

        Args:
            path: The file.
            search_space: The search space (or its name) the caller expects; ``None`` accepts the
                checkpoint's own.

        Raises:
            CheckpointError: If the file is missing, corrupt or not a dgpo-env diffusion model, was
                written for another search space, or by an incompatible (major.minor) package version,
                or its weights hold NaN or infinite values (the message names the first such tensor).
        """
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {path}")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for a damaged or foreign file
            # torch's own message suggests weights_only=False, which would run any code in the file: not shown
            raise CheckpointError(
                f"{path} is not a readable dgpo-env checkpoint (torch.load with weights_only=True raised "
                f"{type(err).__name__}): it is damaged or another kind of file; use a file written by `dgpo pretrain`"
            ) from err
        return cls.from_checkpoint(data, search_space, source=str(path))

    @classmethod
    def from_pretrained(cls, name: str) -> DiffusionModel:
        """A model shipped with the package: ``"nb201"``, ``"nb101"`` or ``"toy"`` (docs/pretrained.md).

        The file's sha256 is checked against the package's manifest and it is loaded with
        ``weights_only=True``; see :func:`agents.pretrained.load_pretrained` for the errors.
        """
        from agents.pretrained import load_pretrained

        return load_pretrained(name)

    @classmethod
    def from_checkpoint(
        cls, data: Any, search_space: SearchSpace | str | None = None, source: str = "checkpoint"
    ) -> DiffusionModel:
        """Rebuild a model from a :meth:`checkpoint` dictionary (see :meth:`load` for the checks)."""
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{source} is not a dgpo-env diffusion-model checkpoint")
        if data.get("format_version") != CHECKPOINT_FORMAT_VERSION:
            raise CheckpointError(
                f"{source} has checkpoint layout {data.get('format_version')}, this version reads "
                f"{CHECKPOINT_FORMAT_VERSION}; re-run `dgpo pretrain` with this version"
            )
        check_version_compatible(str(data.get("package_version")), package_version(), source)
        expected = search_space.name if isinstance(search_space, SearchSpace) else search_space
        if expected is not None and expected != data.get("search_space"):
            raise CheckpointError(
                f"{source} was trained on search space {data.get('search_space')!r}, not {expected!r}; "
                f"pretrain a model for {expected!r} (`dgpo pretrain --benchmark ...`)"
            )
        state = data.get("state_dict")
        bad = non_finite_tensors(state) if isinstance(state, dict) else []
        if bad:
            raise CheckpointError(
                f"{source} holds NaN or infinite weights in {len(bad)} tensor(s) (first: {bad[0]!r}); "
                "it comes from a diverged training and cannot be used: pretrain again with a lower learning rate"
            )
        if search_space is None or isinstance(search_space, str):
            search_space = _custom_space(data, source)  # None for the built-in spaces
        try:
            space = (
                search_space if isinstance(search_space, SearchSpace) else search_space_by_name(data["search_space"])
            )
            noise = NoiseProcess.from_dict(data["noise"])
            denoiser = build_denoiser(space, denoiser_config_from_dict(data["denoiser_config"]))
            denoiser.load_state_dict(data["state_dict"])
            return cls(denoiser, noise, space, data.get("info"))
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise CheckpointError(f"{source} is inconsistent or damaged: {err}") from err


def _custom_space(data: dict[str, Any], source: str) -> SearchSpace | None:
    """The custom search space a checkpoint describes in ``info["search_space_spec"]``, else ``None``.

    Raises:
        CheckpointError: If the space had a validity rule (Python code, not stored): pass the space.
    """
    info = data.get("info")
    spec = info.get("search_space_spec") if isinstance(info, dict) else None
    if spec is None:
        return None
    from dgpo_env.search_spaces.custom import CustomSearchSpace

    try:
        return CustomSearchSpace.from_dict(spec)
    except ValueError as err:
        raise CheckpointError(
            f"{source}: {err}; load it with DiffusionModel.load(path, search_space=<your space>)"
        ) from err


def non_finite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors in ``state`` that hold a NaN or an infinite value."""
    return [
        name
        for name, value in state.items()
        if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]


def check_version_compatible(saved: str, current: str, source: str = "checkpoint") -> None:
    """Require the same ``major.minor`` package version; warn when either is unknown.

    Raises:
        CheckpointError: If the major or minor versions differ.
    """
    if UNKNOWN_VERSION in (saved, current):
        warnings.warn(
            f"{source}: cannot check package versions (saved {saved}, running {current})", RuntimeWarning, stacklevel=3
        )
        return
    if saved.split(".")[:2] != current.split(".")[:2]:
        raise CheckpointError(
            f"{source} was written by dgpo-env {saved}, incompatible with the running {current} "
            "(major.minor must match); re-run `dgpo pretrain` or install the matching version"
        )
