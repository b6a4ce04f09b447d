"""DGPO as published: REINFORCE fine-tuning of a graph-diffusion model with GDPO's eager gradient.

"DGPO: RL-Steered Graph Diffusion for Neural Architecture Generation" (arXiv 2602.19261); the algorithm,
its gradient and every setting with its source are in docs/dgpo.md (§1-§3).

An SB3 algorithm (``learn``, ``predict``, ``save``/``load``, callbacks, logger, TensorBoard,
``progress_bar``), laid out like SB3's ``ppo/`` package: the settings are one frozen dataclass,
:class:`~agents.dgpo.config.DGPOConfig`, and the collection of trajectories is the base class
:class:`~agents.dgpo.trajectories.TrajectoryAlgorithm` (as SB3's ``OnPolicyAlgorithm`` is PPO's). Each
iteration samples ``batch_size`` whole denoising trajectories from the vectorised environment (one
trajectory = one episode = one cell), turns their terminal rewards into EMA-normalised clipped advantages
(:mod:`agents.dgpo.advantages`) and takes ``n_inner_passes`` gradient steps on ``-A · log p̂_θ(G_0 | G_t)``
over a random fraction of each trajectory's timesteps (:mod:`agents.dgpo.losses`). No importance ratio,
no KL term, no critic.

Subclasses change the method through hooks, each a no-op here (docs/dgpo.md §4; the elite variant,
:class:`agents.dgpo.elite.EliteDGPO`, uses all of them): the four hooks of trajectory collection
(:mod:`agents.dgpo.trajectories`: the start of a batch, the ``reset`` options of its rounds, the proposals
of the last denoising step, every cell looked up), and :meth:`DGPO._after_train`, which runs after the
policy-gradient steps of a batch.

Example:
    >>> agent = DGPO.for_env_id("model.pt", "dgpo_env/NB201-CIFAR10-v0", max_queries=300, seed=0)  # doctest: +SKIP
    >>> agent.learn(total_timesteps=agent.timesteps_for_epochs(80), progress_bar=True)  # doctest: +SKIP
    >>> agent.best  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback
from torch import Tensor

from agents.dgpo.advantages import Baseline, RewardNormalizer, batch_advantages
from agents.dgpo.config import EPOCHS, DGPOConfig, KLSchedule, Setting, Settings, as_config
from agents.dgpo.explore import ExploreAdvantage, ExploreBaseline, ExploreMemory, explore_step
from agents.dgpo.losses import (
    Gradient,
    KLDirection,
    TrajectoryBatch,
    check_finite_loss,
    freeze_layers,
    n_loss_steps,
    policy_gradient_loss,
    sample_step_subsets,
)
from agents.dgpo.persistence import AgentFilesMixin
from agents.dgpo.settings_mixin import SettingsMixin
from agents.dgpo.trajectories import TrajectoryAlgorithm
from agents.diffusion.model import DiffusionModel
from agents.policies.compat import ModelSpec
from agents.policies.diffusion_policy import GraphDiffusionPolicy
from agents.policies.envs import make_env_for_model
from dgpo_env.benchmarks import Benchmark
from dgpo_env.envs.graph_denoise import DEFAULT_N_STEPS

SelfDGPO = TypeVar("SelfDGPO", bound="DGPO")


class DGPO(AgentFilesMixin, SettingsMixin, TrajectoryAlgorithm):
    """Diffusion graph policy optimisation as published (REINFORCE with GDPO's eager gradient).

    Args:
        policy: ``"GraphDiffusionPolicy"`` (or the class); its actor is the model being fine-tuned
            (the critic is unused).
        env: A (vectorised) :class:`~dgpo_env.envs.GraphDenoiseEnv` built with the model's ``T`` and
            prior (see :meth:`for_env_id`); its copies must count into one query ledger
            (docs/ledger.md), which is checked. ``batch_size`` must be a multiple of ``n_envs``.
        config: The algorithm's settings (default ``DGPOConfig()``: the official NB201 settings; a small
            CPU model needs a larger ``learning_rate``, e.g. 1e-3).
        max_queries: The budget of distinct cells: given to the environments' query ledger, which
            refuses new cells beyond it (so it is exact), and learning stops once it is reached;
            ``None``: no limit.
        max_stale_batches: Stop once this many consecutive batches looked up no new cell (the policy
            has converged onto known cells); ``None``: never.
        stats_window_size: Episodes averaged in ``rollout/ep_rew_mean``.
        tensorboard_log: TensorBoard log directory.
        policy_kwargs: ``{"model": DiffusionModel or checkpoint path}``; ``task`` defaults to the
            environment's.
        verbose: 0 silent, 1 training info.
        seed: Seeds the environment, the action sampling and the timestep subsets (one
            ``torch.Generator``), so runs with the same seed are identical.
        device: Torch device.
        _init_setup_model: Build the policy now (SB3 convention; ``load`` passes False).
        **overrides: :class:`~agents.dgpo.config.DGPOConfig` fields applied on top of ``config``
            (``DGPO(policy, env, learning_rate=1e-3, batch_size=8)``).

    Attributes:
        config: The settings in use; ``batch_size``, ``n_inner_passes``, ... read from it.

    Raises:
        TypeError: For an unknown setting name (the message lists the known ones) or a setting of the
            wrong type.
        ValueError: For a setting out of range (the message says which, the value and the range), or
            a ``max_queries`` that differs from the budget the environments' ledger already has.
        LedgerError: If the environment copies do not count into one query ledger.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "GraphDiffusionPolicy": GraphDiffusionPolicy,
        "MultiInputPolicy": GraphDiffusionPolicy,
    }
    other_keywords: ClassVar[frozenset[str]] = frozenset(
        {
            "config",
            "max_queries",
            "max_stale_batches",
            "stats_window_size",
            "tensorboard_log",
            "policy_kwargs",
            "verbose",
            "seed",
            "device",
            "_init_setup_model",
        }
    )
    """Keyword arguments of the constructor that are not settings."""
    settings_classes: ClassVar[dict[str, type[Settings]]] = {"config": DGPOConfig}
    """The settings dataclass of each attribute holding one, in order (rebuilt from an agent file by :meth:`load`);
    ``settings_sources``, their names, is derived from it (:class:`~agents.dgpo.settings_mixin.SettingsMixin`)."""
    config: DGPOConfig

    batch_size = Setting[int]("config")
    n_inner_passes = Setting[int]("config")
    timestep_fraction = Setting[float]("config")
    reward_smoothing = Setting[float]("config")
    advantage_clip = Setting[float]("config")
    max_grad_norm = Setting[float]("config")
    freeze_fraction = Setting[float]("config")
    gradient_accumulation = Setting[int]("config")
    gradient = Setting[Gradient]("config")
    count_repeats = Setting[bool]("config")
    baseline = Setting[Baseline]("config")
    entropy_coef = Setting[float]("config")
    kl_coef = Setting[float]("config")
    kl_schedule = Setting[KLSchedule]("config")
    kl_anneal_fraction = Setting[float]("config")
    kl_direction = Setting[KLDirection]("config")
    explore_copies = Setting[int]("config")
    explore_baseline = Setting[ExploreBaseline]("config")
    explore_memory = Setting[int]("config")
    explore_advantage = Setting[ExploreAdvantage]("config")

    def __init__(
        self,
        policy: str | type[GraphDiffusionPolicy],
        env: GymEnv | str | None,
        config: DGPOConfig | None = None,
        *,
        max_queries: int | None = None,
        max_stale_batches: int | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        _init_setup_model: bool = True,
        **overrides: Any,
    ) -> None:
        self._check_setting_names(overrides)
        self.config = as_config(config).replace(**overrides)
        super().__init__(
            policy,
            env,
            self.config.learning_rate,
            max_queries,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
        )
        if max_stale_batches is not None and max_stale_batches < 1:
            raise ValueError(f"max_stale_batches must be >= 1 or None, got {max_stale_batches}")
        self.max_stale_batches = max_stale_batches
        self.stale_batches = 0
        self.stop_reason: str | None = None
        self.normalizer = RewardNormalizer(self.config.reward_smoothing, self.config.advantage_clip)
        self.frozen_modules: list[str] = []
        self.reference_model: DiffusionModel | None = None
        self.explore_archive = ExploreMemory(0)
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ construction
    def _setup_model(self) -> None:
        """Adopt loaded settings; the common set-up (ledger, policy, generator); freeze layers; the optimizer."""
        self._adopt_loaded_settings()
        super()._setup_model()
        self.frozen_modules = freeze_layers(self.policy.model, self.freeze_fraction)
        self.reference_model = None
        self.explore_archive = ExploreMemory(self.explore_memory)
        if self.env is not None and self.explore_copies > self.n_envs - 2:
            raise ValueError(
                f"explore_copies={self.explore_copies} leaves fewer than 2 of the n_envs={self.n_envs} environment "
                "copies to the policy; lower explore_copies or use more copies"
            )
        if self._keeps_starting_model():
            # the model fine-tuning starts from, fixed: what the KL term is measured to, what explores (and restarts)
            self.reference_model = copy.deepcopy(self.policy.model).requires_grad_(False).eval()
        trainable = [p for p in self.policy.model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("freeze_fraction leaves no trainable parameter; lower it")
        self.policy.optimizer = self.policy.optimizer_class(  # type: ignore[call-arg]
            trainable, lr=self.lr_schedule(1), **self.policy.optimizer_kwargs
        )

    def _keeps_starting_model(self) -> bool:
        """Whether :attr:`reference_model` (the starting model, frozen) is kept: the KL term, exploration copies."""
        return self.kl_coef > 0.0 or self.explore_copies > 0

    @classmethod
    def for_env_id(
        cls: type[SelfDGPO],
        model: ModelSpec,
        env_id: str | None,
        n_envs: int | None = None,
        n_steps: int = DEFAULT_N_STEPS,
        env_kwargs: Mapping[str, Any] | None = None,
        benchmark: Benchmark | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> SelfDGPO:
        """The algorithm on ``n_envs`` copies of ``env_id`` built for ``model`` (its ``T`` and prior, one benchmark).

        Args:
            model: The pretrained model or its checkpoint path (a path keeps saved agents small).
            env_id: A registered ``dgpo_env/...`` id, or ``None`` to build the environment on ``benchmark``.
            n_envs: Environment copies (default ``batch_size``: one forward pass per denoising step).
            n_steps: Denoising steps per episode.
            env_kwargs: Further environment arguments (e.g. ``{"inverse": True}``).
            benchmark: Share this benchmark (default a fresh one for ``env_id``); with ``max_queries`` its
                ledger refuses new cells beyond the budget, so the budget is exact.
            seed: The run's seed.
            **kwargs: Constructor arguments: ``config=``, setting overrides (``batch_size=...``),
                ``max_queries=``, ... (``policy_kwargs`` may add critic settings).
        """
        cls._check_setting_names(k for k in kwargs if k not in cls.other_keywords)
        config = as_config(kwargs.get("config"))
        if "batch_size" in kwargs:
            config = config.replace(batch_size=kwargs["batch_size"])
        batch_size = config.batch_size
        n_envs = batch_size if n_envs is None else n_envs
        max_queries = kwargs.get("max_queries")
        env = make_env_for_model(model, env_id, n_envs, n_steps, seed, env_kwargs, benchmark, max_queries)
        policy_kwargs = {**dict(kwargs.pop("policy_kwargs", None) or {}), "model": model}
        return cls("GraphDiffusionPolicy", env, seed=seed, policy_kwargs=policy_kwargs, **kwargs)

    def timesteps_for_epochs(self, epochs: int = EPOCHS) -> int:
        """``total_timesteps`` for ``epochs`` batches (official: 80 epochs, docs/dgpo.md §3)."""
        return int(epochs) * self.batch_size * self.episode_length

    # ------------------------------------------------------------------ learning
    def learn(
        self: SelfDGPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "DGPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDGPO:
        """Alternate batches of trajectories and updates until ``total_timesteps`` or ``max_queries``.

        Args:
            total_timesteps: Environment steps (``batch_size × episode length`` per batch; at least
                one batch is collected).
            callback: SB3 callback(s); returning ``False`` from ``on_step`` stops training.
            log_interval: Dump the logger every this many batches.
            tb_log_name: TensorBoard run name.
            reset_num_timesteps: Restart the step counter (and the environment).
            progress_bar: Show a tqdm/rich progress bar.

        Returns:
            ``self``; :attr:`stop_reason` says why it stopped.
        """
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        iteration = 0
        self.stop_reason = "budget" if self.budget_exhausted else None
        while self.stop_reason is None:
            queries_before = self.n_queries
            batch = self.collect_trajectories(callback)
            if batch is None:
                self.stop_reason = "callback"
                break
            iteration += 1
            self.stale_batches = 0 if self.n_queries > queries_before else self.stale_batches + 1
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
            if batch.size == self.batch_size:
                self.train(batch)
            if log_interval and iteration % log_interval == 0:
                self.dump_logs(iteration)
            self.stop_reason = self._stop_reason(total_timesteps)
        callback.on_training_end()
        return self

    def _stop_reason(self, total_timesteps: int) -> str | None:
        """Why learning should stop now (``"budget"``, ``"converged"``, ``"timesteps"``), or ``None``."""
        if self.budget_exhausted:
            return "budget"
        if self.max_stale_batches is not None and self.stale_batches >= self.max_stale_batches:
            return "converged"
        if self.num_timesteps >= total_timesteps:
            return "timesteps"
        return None

    # ------------------------------------------------------------------ updates
    def train(self, batch: TrajectoryBatch) -> None:
        """DGPO's policy-gradient steps on the batch (docs/dgpo.md §1-§2), then :meth:`_after_train`."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        self._train_policy_gradient(batch)
        self._after_train(batch)
        self.policy.set_training_mode(False)

    def current_kl_coef(self) -> float:
        """The KL weight now: ``kl_coef``, or with ``kl_schedule="linear"`` falling to 0 over ``kl_anneal_fraction``.

        The share of the run done is SB3's ``1 - progress_remaining`` (of ``total_timesteps``).
        """
        if self.kl_schedule == "linear":
            done = 1.0 - float(self._current_progress_remaining)
            return self.kl_coef * max(0.0, 1.0 - done / self.kl_anneal_fraction)
        return self.kl_coef

    def _reverse_step_probs(self, nodes: Tensor, edges: Tensor, t: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """The policy's ``p_θ(G_s | G_t)``, the starting model's for the last ``explore_copies`` copies."""
        node_probs, edge_probs = super()._reverse_step_probs(nodes, edges, t, s)
        m = self.explore_copies
        if m == 0:
            return node_probs, edge_probs
        assert self.reference_model is not None, "explore_copies > 0 keeps the starting model"
        ref_nodes, ref_edges = self.reference_model.reverse_step_probs(nodes[-m:], edges[-m:], t[-m:], s[-m:])
        return torch.cat([node_probs[:-m], ref_nodes]), torch.cat([edge_probs[:-m], ref_edges])

    def explored_mask(self, size: int) -> np.ndarray:
        """``bool[size]``: the trajectories of a batch the starting model drew (``explore_copies`` per round)."""
        return np.arange(size) % self.n_envs >= self.n_envs - self.explore_copies

    def _after_train(self, batch: TrajectoryBatch) -> None:
        """Hook called after the policy-gradient steps on ``batch`` (policy still in training mode); a no-op here."""

    def _train_policy_gradient(self, batch: TrajectoryBatch) -> None:
        """Advantages of the batch, then ``n_inner_passes`` clipped gradient steps (docs/dgpo.md §1).

        Raises:
            DivergenceError: If a loss is NaN or infinite (the update is not taken; training stops).
        """
        valid = batch.valid.numpy()
        explored = valid & self.explored_mask(batch.size) if self.explore_copies else np.zeros_like(valid)
        advantages, counted, informative = batch_advantages(
            batch.rewards.numpy(), valid & ~explored, batch.keys, self.normalizer, self.count_repeats, self.baseline
        )
        self.logger.record("train/n_counted", int(counted.sum()))
        self.logger.record("train/n_duplicates", int(valid.sum()) - int(explored.sum()) - int(counted.sum()))
        scored = counted
        if self.explore_copies:
            step = explore_step(
                batch,
                advantages,
                counted,
                explored,
                self.normalizer,
                self.explore_baseline,
                self.explore_archive,
                self.explore_advantage,
            )
            batch, advantages, scored = step.batch, step.advantages, step.scored
            self.logger.record("train/n_explore_found", step.n_found)
            self.logger.record("train/n_explore_replayed", step.n_replayed)
            informative = informative or step.n_found + step.n_replayed > 0
        if not informative:
            self.logger.record("train/skipped_batch", 1)
            return
        self.logger.record("train/skipped_batch", 0)
        regularised = self.entropy_coef > 0.0 or self.kl_coef > 0.0  # these terms cover every trajectory
        active = torch.arange(batch.size) if regularised else torch.from_numpy(np.flatnonzero(advantages != 0.0))
        adv = torch.from_numpy(advantages)
        k = n_loss_steps(batch.n_steps, self.timestep_fraction)
        params = [p for p in self.policy.model.parameters() if p.requires_grad]
        kl_coef = self.current_kl_coef()
        losses, grad_norms = [], []
        entropies: list[float] = []
        kls: list[float] = []
        for _ in range(self.n_inner_passes):
            steps = sample_step_subsets(len(active), batch.n_steps, k, self._generator)  # [A, k]
            self.policy.optimizer.zero_grad()
            total = 0.0
            for chunk in torch.tensor_split(torch.arange(len(active)), self.gradient_accumulation):
                if len(chunk) == 0:
                    continue
                traj = active[chunk]
                loss, terms = policy_gradient_loss(
                    self.policy.model,
                    batch,
                    traj,
                    steps[chunk],
                    adv,
                    self.gradient,
                    self.entropy_coef,
                    self.reference_model if self.kl_coef > 0.0 else None,  # kept for exploration/restarts too
                    kl_coef,
                    self.kl_direction,
                )
                if terms.entropy is not None:
                    entropies.append(float(terms.entropy.detach().mean()))
                if terms.kl is not None:
                    kls.append(float(terms.kl.detach().mean()))
                check_finite_loss(loss, "DGPO's policy-gradient loss", self._n_updates, self.learning_rate)
                loss.backward()
                total += float(loss.detach())
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)))
            self.policy.optimizer.step()
            losses.append(total)
        if entropies:
            self.logger.record("train/entropy", float(np.mean(entropies)))
        if kls:
            self.logger.record("train/kl", float(np.mean(kls)))
            self.logger.record("train/kl_coef", kl_coef)
        self._n_updates += self.n_inner_passes
        counted_adv = advantages[scored]
        self.logger.record("train/loss", float(np.mean(losses)))
        self.logger.record("train/advantage_mean", float(counted_adv.mean()))
        self.logger.record("train/advantage_std", float(counted_adv.std()))
        self.logger.record("train/reward_ema_mean", float(self.normalizer.mean or 0.0))
        self.logger.record("train/reward_ema_std", float(self.normalizer.std or 0.0))
        self.logger.record("train/grad_norm", float(np.mean(grad_norms)))
        self.logger.record("train/learning_rate", self.lr_schedule(self._current_progress_remaining))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")


__all__ = ["DGPO", "EPOCHS", "DGPOConfig", "check_finite_loss"]
