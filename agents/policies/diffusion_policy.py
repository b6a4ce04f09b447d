"""The pretrained graph-diffusion model as an SB3 actor-critic policy (docs/dgpo.md §1).

The actor is the reverse step ``π_θ(a | s) = p_θ(G_s | G_t)`` of a
:class:`~agents.diffusion.model.DiffusionModel`, where ``s`` is the time that follows ``t`` on the
environment's step schedule. It factorises over the nodes and edges of the next graph, i.e. over
the entries of the flat ``MultiDiscrete`` action, so it is SB3's (maskable) multi-categorical
distribution built from the exact log-probabilities, computed as one batched tensor
(:mod:`agents.policies.distributions`); the part of the reverse step that does not depend on the
denoiser is looked up per schedule step (:mod:`agents.policies.reverse_step`). The critic is a
separate small MLP on the one-hot graph and ``t``
(:class:`~agents.policies.observations.GraphCriticFeatures`), so PPO's value loss never reaches the
pretrained denoiser.

``GraphDiffusionPolicy`` serves ``stable_baselines3.PPO`` and ``A2C``;
``MaskableGraphDiffusionPolicy`` serves ``sb3_contrib.MaskablePPO``. Both share
:class:`DiffusionPolicyMixin`.

Example:
    >>> from stable_baselines3 import PPO
    >>> env = GraphDenoiseEnv("toy", n_steps=5, prior=model.noise.marginals,
    ...                       diffusion_steps=model.diffusion_steps)  # doctest: +SKIP
    >>> agent = PPO(GraphDiffusionPolicy, env, gamma=1.0, n_steps=50,
    ...             policy_kwargs={"model": model, "task": env.task})  # doctest: +SKIP
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import Tensor, nn

from agents.diffusion.mlp_denoiser import MLPDenoiser
from agents.diffusion.model import DiffusionModel
from agents.policies.compat import ModelSpec, check_model_spaces, check_model_task, resolve_model
from agents.policies.distributions import (
    FusedCategoricalsMixin,
    FusedMultiCategoricalDistribution,
    MaskableFusedMultiCategoricalDistribution,
    safe_log,
)
from agents.policies.observations import GraphBatch, GraphCriticFeatures, graph_from_obs
from agents.policies.reverse_step import ScheduledReverseStep
from dgpo_env.envs.graph_denoise import DenoiseTask

DEFAULT_CRITIC_ARCH: tuple[int, ...] = (64, 64)
"""Hidden layer sizes of the value MLP."""

FUSED_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (torch.optim.Adam, torch.optim.AdamW)
"""Optimizers the policy runs as torch's fused kernel unless told otherwise (:func:`optimizer_kwargs_for`)."""

IMPLEMENTATION_KEYS = ("fused", "foreach", "differentiable")
"""Optimizer arguments that choose an implementation; if any is given, the caller's choice stands."""


def critic_arch(net_arch: list[int] | dict[str, list[int]] | None) -> list[int]:
    """The value MLP's hidden sizes from SB3-style ``net_arch`` (a list, or a dict's ``"vf"`` entry).

    Raises:
        ValueError: If a dict asks for actor layers (the actor is the diffusion model).
    """
    if net_arch is None:
        return list(DEFAULT_CRITIC_ARCH)
    if isinstance(net_arch, dict):
        if net_arch.get("pi"):
            raise ValueError(
                "net_arch['pi'] must be empty: the actor of a graph-diffusion policy is the diffusion model; "
                "give the critic's layers as net_arch=[64, 64] or dict(vf=[64, 64])"
            )
        return list(net_arch.get("vf", DEFAULT_CRITIC_ARCH))
    return list(net_arch)


def optimizer_kwargs_for(optimizer_class: type[torch.optim.Optimizer], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` plus ``fused=True`` for Adam and AdamW when the caller chose no implementation.

    SB3 builds ``Adam`` without ``fused`` or ``foreach``, and on a CPU torch then updates the
    policy's tensors (151 for the default model) one by one in Python, a fixed cost of every PPO
    gradient step that is larger than the update itself. The fused kernel computes the same update
    (Adam's formula with the same settings; equal to the loop's up to float rounding, ~1e-7) in one call.

    Args:
        optimizer_class: The policy's ``optimizer_class``.
        kwargs: The policy's ``optimizer_kwargs`` (not modified).

    Returns:
        The keyword arguments to build the optimizer with.
    """
    if issubclass(optimizer_class, FUSED_OPTIMIZERS) and not any(key in kwargs for key in IMPLEMENTATION_KEYS):
        return {**kwargs, "fused": True}
    return dict(kwargs)


class DiffusionPolicyMixin:
    """Shared body of :class:`GraphDiffusionPolicy` and :class:`MaskableGraphDiffusionPolicy`.

    Must precede an SB3 actor-critic policy class in the bases. Keyword arguments besides the ones
    below go to that class (``activation_fn``, ``ortho_init``, ``optimizer_class``, ...).

    Args:
        observation_space: The environment's ``Dict`` observation space.
        action_space: The environment's ``MultiDiscrete`` action space.
        lr_schedule: Learning-rate schedule (from the algorithm).
        model: The pretrained :class:`DiffusionModel` (deep-copied) or its checkpoint path.
        task: ``env.unwrapped.task`` of the environment: search space, ``T``, step schedule, prior.
        net_arch: Hidden sizes of the critic MLP (a list, or ``dict(vf=[...])``).
        critic_time_dim: Width of the critic's time features.
        **kwargs: For the SB3 policy class. With ``Adam``/``AdamW`` and no ``fused``, ``foreach`` or
            ``differentiable`` in ``optimizer_kwargs``, the optimizer is built with ``fused=True``
            (:func:`optimizer_kwargs_for`).

    Raises:
        ValueError: If the model and the environment disagree (search space, ``T``, step schedule,
            prior, observation or action shapes), or ``use_sde=True``.
    """

    distribution_class: type[FusedCategoricalsMixin]
    """The action distribution (set by each policy class)."""

    # attributes provided by the SB3 policy class this mixin is combined with
    action_dist: Distribution
    action_space: spaces.MultiDiscrete
    observation_space: spaces.Dict
    mlp_extractor: Any
    vf_features_extractor: Any
    optimizer_class: type[torch.optim.Optimizer]
    optimizer_kwargs: dict[str, Any]
    ortho_init: bool
    init_weights: Any

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.MultiDiscrete,
        lr_schedule: Schedule,
        model: ModelSpec | None = None,
        task: DenoiseTask | None = None,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        critic_time_dim: int = 16,
        **kwargs: Any,
    ) -> None:
        diffusion = resolve_model(model)
        check_model_spaces(diffusion, observation_space, action_space)
        check_model_task(diffusion, task)
        assert task is not None
        if kwargs.get("use_sde"):
            raise ValueError("use_sde=True is for continuous actions; a graph-diffusion policy is discrete")
        kwargs.setdefault("features_extractor_class", GraphCriticFeatures)
        kwargs.setdefault("features_extractor_kwargs", {"time_dim": critic_time_dim})
        super().__init__(  # type: ignore[call-arg]
            observation_space, action_space, lr_schedule, net_arch={"pi": [], "vf": critic_arch(net_arch)}, **kwargs
        )
        self.action_dist = self.distribution_class(action_space.nvec.tolist())  # type: ignore[assignment]
        self.model: DiffusionModel = diffusion
        self.task = task
        self.critic_time_dim = critic_time_dim
        self.model_path = str(model) if not isinstance(model, DiffusionModel) else None
        self.reverse_step = ScheduledReverseStep(diffusion.noise, task.timesteps)
        trainable = [p for p in self.parameters() if p.requires_grad]  # type: ignore[attr-defined]
        optimizer_kwargs = optimizer_kwargs_for(self.optimizer_class, self.optimizer_kwargs)
        self.optimizer = self.optimizer_class(trainable, lr=lr_schedule(1), **optimizer_kwargs)  # type: ignore[call-arg]

    # ------------------------------------------------------------------ construction (SB3 hooks)
    def _build(self, lr_schedule: Schedule) -> None:
        """Build the critic only (SB3 hook); the actor is the diffusion model, the optimizer comes later."""
        del lr_schedule  # the optimizer is created once the model is attached
        self._build_mlp_extractor()  # type: ignore[attr-defined]
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        if self.ortho_init:
            self.mlp_extractor.apply(partial(self.init_weights, gain=np.sqrt(2)))
            self.value_net.apply(partial(self.init_weights, gain=1.0))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        """Constructor arguments for ``policy.save``/``load`` (the model itself, or its checkpoint path)."""
        data: dict[str, Any] = super()._get_constructor_parameters()  # type: ignore[misc]
        data.pop("features_extractor_class", None)
        data.pop("features_extractor_kwargs", None)
        data.update(
            model=self.model if self.model_path is None else self.model_path,
            task=self.task,
            net_arch=critic_arch(data.get("net_arch")),
            critic_time_dim=self.critic_time_dim,
        )
        return data

    # ------------------------------------------------------------------ the actor
    def next_times(self, t: Tensor) -> Tensor:
        """``s``: the time after ``t`` on the environment's schedule, ``int64[B]``.

        Raises:
            ValueError: If some ``t`` is not a (non-terminal) time of the schedule.
        """
        return self.reverse_step.times[self._schedule_steps(t) + 1]

    def _schedule_steps(self, t: Tensor) -> Tensor:
        """``int64[B]`` the schedule index of each ``t`` (:meth:`ScheduledReverseStep.steps`), errors naming the fix.

        Raises:
            ValueError: If some ``t`` is not a (non-terminal) time of the schedule.
        """
        try:
            return self.reverse_step.steps(t)
        except ValueError as err:
            raise ValueError(
                f"{err}: the policy was built with another environment's task "
                "(e.g. other n_steps), or it was asked to act at t = 0; build the policy with "
                "task=env.unwrapped.task of the env it acts in"
            ) from err

    def reverse_step_entry_probs(self, graph: GraphBatch) -> Tensor:
        """``p_θ(G_s | G_t)`` of every value of every action entry: ``float64[B, E, K_max]`` (padding 0).

        The layout of the action distribution (:mod:`agents.policies.distributions`): entry ``e``'s
        values are ``[e, :nvec[e]]``, each entry's probabilities sum to 1.

        Raises:
            ValueError: If some ``t`` is not a non-final time of the policy's schedule.
        """
        return self.reverse_step(*self._reverse_step_inputs(graph))

    def _reverse_step_inputs(self, graph: GraphBatch, features: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(x_t [B, E], steps [B], p̂(x_0 | G_t) of the free entries [B, F, K_max])`` for the reverse step.

        ``features``: the critic's input of ``graph`` when it is the denoiser's too (:meth:`_mlp_reads_critic_input`).

        Raises:
            ValueError: If some ``t`` is not a non-final time of the policy's schedule.
        """
        steps = self._schedule_steps(graph.t)  # [B]
        if features is not None:  # the MLP denoiser's input vector, already built (t checked above)
            denoiser = cast(MLPDenoiser, self.model.denoiser)  # checked by _mlp_reads_critic_input
            x0_logits = self.reverse_step.free_logits(denoiser.flat_logits(features))
        else:
            node_logits, edge_logits = self.model.logits_at(graph.nodes, graph.edges, graph.t)  # t checked above
            x0_logits = self.reverse_step.free_entries(node_logits, edge_logits, float("-inf"))
        x0_probs = x0_logits.softmax(-1)  # p̂(x_0 | G_t) of the free entries [B, F, K_max]
        return torch.cat([graph.nodes, graph.edges], dim=1), steps, x0_probs

    def reverse_step_log_probs(self, graph: GraphBatch) -> Tensor:
        """``log p_θ(G_s | G_t)`` of every value of every action entry: ``float32[B, sum(nvec)]``.

        Entries of probability 0 hold :data:`LOG_ZERO`; each entry's block sums to 1 in probability.
        """
        probs = self.reverse_step_entry_probs(graph)  # [B, E, K_max]
        return safe_log(probs[:, self.reverse_step.value_slots]).to(torch.float32)  # padding dropped: [B, sum(nvec)]

    @staticmethod
    def _graph(obs: PyTorchObs) -> GraphBatch:
        """The integer graphs of a batch of observations (:func:`graph_from_obs`)."""
        assert isinstance(obs, dict), "a graph-diffusion policy needs Dict observations"
        return graph_from_obs(obs)

    def _distribution(
        self,
        obs: PyTorchObs,
        action_masks: np.ndarray | Tensor | None = None,
        graph: GraphBatch | None = None,
        features: Tensor | None = None,
    ) -> Distribution:
        """The SB3 multi-categorical distribution of the reverse step (masks applied if given).

        The fused distributions get the free entries' probabilities (every other entry keeps its
        value); any other SB3 multi-categorical distribution (a reference in the tests) gets the flat
        log-probabilities. ``graph``: ``obs`` as integer graphs, and ``features``: the critic's input
        (see :meth:`_reverse_step_inputs`), if the caller has them.
        """
        graph = self._graph(obs) if graph is None else graph
        if isinstance(self.action_dist, FusedCategoricalsMixin):
            x_t, steps, x0_probs = self._reverse_step_inputs(graph, features)
            probs, log_probs = self.reverse_step.free_parameters(x_t, steps, x0_probs)
            dist: Distribution = self.action_dist.proba_distribution_from_free_entries(  # type: ignore[assignment]
                x_t, self.reverse_step.free, probs, log_probs
            )
        else:
            dist = self.action_dist.proba_distribution(action_logits=self.reverse_step_log_probs(graph))  # type: ignore[call-arg]
        if action_masks is not None:
            if not isinstance(dist, MaskableDistribution):
                raise ValueError("action_masks need MaskableGraphDiffusionPolicy (sb3_contrib.MaskablePPO)")
            dist.apply_masking(action_masks)
        return dist

    # ------------------------------------------------------------------ SB3 policy API
    def forward(
        self, obs: PyTorchObs, deterministic: bool = False, action_masks: np.ndarray | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Sample (or take the mode of) the next graph; returns ``(actions, values, log_prob)``."""
        graph = self._graph(obs)
        features = self._critic_input(obs, graph)
        dist = self._distribution(obs, action_masks, graph, features if self._mlp_reads_critic_input() else None)
        actions = dist.get_actions(deterministic=deterministic)
        log_prob = dist.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), self._value_head(features), log_prob

    def evaluate_actions(
        self, obs: PyTorchObs, actions: Tensor, action_masks: np.ndarray | Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(values, log_prob, entropy)`` of ``actions`` (exact; entropy finite)."""
        graph = self._graph(obs)
        features = self._critic_input(obs, graph)
        dist = self._distribution(obs, action_masks, graph, features if self._mlp_reads_critic_input() else None)
        entropy = dist.entropy()
        assert entropy is not None, "multi-categorical distributions have an exact entropy"
        return self._value_head(features), dist.log_prob(actions), entropy

    def get_distribution(self, obs: PyTorchObs, action_masks: np.ndarray | None = None) -> Distribution:
        """The action distribution ``p_θ(G_s | G_t)``."""
        return self._distribution(obs, action_masks)

    def predict_values(self, obs: PyTorchObs) -> Tensor:
        """The critic's value estimates ``[B, 1]``."""
        return self._value_head(self._critic_input(obs))

    def _critic_input(self, obs: PyTorchObs, graph: GraphBatch | None = None) -> Tensor:
        """The critic's input features of ``obs`` (``graph``: ``obs`` as integer graphs, if the caller has it).

        The default critic input (:class:`GraphCriticFeatures`) is computed from the graph directly:
        SB3's preprocessing of these ``Box`` observations only casts them to ``float32``, which
        :func:`graph_from_obs` turns back into the same integers. Other feature extractors get SB3's path.
        """
        extractor = self.vf_features_extractor
        if type(extractor) is GraphCriticFeatures:
            return extractor.graph_features(self._graph(obs) if graph is None else graph)
        return BaseModel.extract_features(self, obs, extractor)  # type: ignore[arg-type]

    def _value_head(self, features: Tensor) -> Tensor:
        """The value MLP on the critic's input features: ``[B, 1]``."""
        return self.value_net(self.mlp_extractor.forward_critic(features))

    def _mlp_reads_critic_input(self) -> bool:
        """Whether the denoiser is an MLP whose input vector is the critic's (so it is built once per pass).

        :meth:`MLPDenoiser.forward_flat` reads the one-hot nodes and edges, flattened, and the time
        features of ``t / T``; :class:`GraphCriticFeatures` builds the same vector when its time features
        have the MLP's width (both default to 16).
        """
        denoiser, critic = self.model.denoiser, self.vf_features_extractor
        return (
            isinstance(denoiser, MLPDenoiser)
            and type(critic) is GraphCriticFeatures
            and critic.time_dim == denoiser.config.time_dim
            and critic.diffusion_steps == self.model.diffusion_steps
        )

    def _predict(
        self, observation: PyTorchObs, deterministic: bool = False, action_masks: np.ndarray | None = None
    ) -> Tensor:
        """Actions for ``predict``."""
        return self._distribution(observation, action_masks).get_actions(deterministic=deterministic)


class GraphDiffusionPolicy(DiffusionPolicyMixin, ActorCriticPolicy):  # type: ignore[misc]
    """Actor = pretrained reverse diffusion, critic = small MLP; for ``PPO`` and ``A2C``.

    See :class:`DiffusionPolicyMixin` for the arguments. Train with ``gamma=1`` and an ``n_steps``
    that is a multiple of the episode length (the reward comes at ``t = 0`` only).
    """

    distribution_class = FusedMultiCategoricalDistribution


class MaskableGraphDiffusionPolicy(DiffusionPolicyMixin, MaskableActorCriticPolicy):  # type: ignore[misc]
    """:class:`GraphDiffusionPolicy` for ``sb3_contrib.MaskablePPO`` (its methods take ``action_masks``).

    The reverse step already gives disallowed values probability 0, so the environment's masks
    change nothing but are honoured.
    """

    distribution_class = MaskableFusedMultiCategoricalDistribution
