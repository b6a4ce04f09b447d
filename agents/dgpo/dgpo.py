"""DGPO: REINFORCE fine-tuning of a graph-diffusion model with GDPO's eager gradient (DESIGN.md §4).

An SB3 algorithm (``learn``, ``predict``, ``save``/``load``, callbacks, logger, TensorBoard,
``progress_bar``). Each iteration samples ``batch_size`` whole denoising trajectories from the
vectorised environment (one trajectory = one episode = one cell), turns their terminal rewards into
EMA-normalised clipped advantages (:mod:`agents.dgpo.advantages`) and takes ``n_inner_passes``
gradient steps on ``-A · log p̂_θ(G_0 | G_t)`` over a random fraction of each trajectory's
timesteps (:mod:`agents.dgpo.losses`). No importance ratio, no KL term, no critic.

Example:
    >>> agent = DGPO.for_env_id("model.pt", "dgpo_env/NB201-CIFAR10-v0", max_queries=300, seed=0)  # doctest: +SKIP
    >>> agent.learn(total_timesteps=agent.timesteps_for_epochs(80), progress_bar=True)  # doctest: +SKIP
    >>> agent.best  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import obs_as_tensor, safe_mean
from stable_baselines3.common.vec_env import VecEnv

from agents.dgpo.advantages import ADVANTAGE_CLIP, REWARD_SMOOTHING, RewardNormalizer, batch_advantages
from agents.dgpo.elite import CellArchive
from agents.dgpo.losses import (
    GRADIENTS,
    TIMESTEP_FRACTION,
    Gradient,
    TrajectoryBatch,
    freeze_layers,
    n_loss_steps,
    sample_step_subsets,
    trajectory_log_likelihood,
)
from agents.diffusion.pretrain import denoising_loss
from agents.policies.compat import ModelSpec
from agents.policies.diffusion_policy import DiffusionPolicyMixin, GraphDiffusionPolicy
from agents.policies.envs import make_env_for_model
from agents.policies.observations import graph_from_obs
from dgpo_env.benchmarks import Benchmark
from dgpo_env.diffusion.noise import sample_categorical
from dgpo_env.envs.graph_denoise import DEFAULT_N_STEPS

SelfDGPO = TypeVar("SelfDGPO", bound="DGPO")

# Official NB201 settings of the DGPO code (DESIGN.md §4).
LEARNING_RATE = 5e-7
"""DESIGN.md §4: Adam learning rate (official NB201, GPU model of width 256; small CPU models need more)."""
BATCH_SIZE = 15
"""DESIGN.md §4: trajectories per batch."""
EPOCHS = 80
"""DESIGN.md §4: batches per fine-tuning run (80 x 15 = 1,200 samples)."""
N_INNER_PASSES = 4
"""DESIGN.md §4: gradient passes over each batch."""
MAX_GRAD_NORM = 2.0
"""DESIGN.md §4: gradient-norm clip."""
FREEZE_FRACTION = 0.75
"""DESIGN.md §4: share of transformer layers frozen."""
GRADIENT_ACCUMULATION = 2
"""DESIGN.md §4: micro-batches whose gradients are summed before one optimizer step."""


class DGPO(BaseAlgorithm):
    """Diffusion graph policy optimisation (REINFORCE with GDPO's eager gradient).

    Args:
        policy: ``"GraphDiffusionPolicy"`` (or the class); its actor is the model being fine-tuned
            (the critic is unused).
        env: A (vectorised) :class:`~dgpo_env.envs.GraphDenoiseEnv` built with the model's ``T`` and
            prior (see :meth:`for_env_id`); its copies should share one benchmark so the query count
            is global. ``batch_size`` must be a multiple of ``n_envs``.
        learning_rate: Adam learning rate or schedule (DESIGN.md §4: 5e-7 official NB201; a small
            CPU model typically needs ~1e-4 to 1e-3).
        batch_size: Trajectories per batch (DESIGN.md §4: 15).
        n_inner_passes: Optimizer steps per batch, each on fresh timestep subsets (DESIGN.md §4: 4).
        timestep_fraction: Share of each trajectory's timesteps in the loss (DESIGN.md §4:
            ``ppo_sr = 0.3``).
        reward_smoothing: Weight ``β`` of a new batch in the reward mean/std EMAs (DESIGN.md §4: 0.1).
        advantage_clip: Advantages are clipped to ``[-c, c]`` (DESIGN.md §4: 5).
        max_grad_norm: Gradient-norm clip (DESIGN.md §4: 2.0).
        freeze_fraction: Share of transformer layers frozen, first ones first (DESIGN.md §4: 0.75).
        gradient_accumulation: Micro-batches per optimizer step (DESIGN.md §4: 2); changes memory,
            not the gradient.
        gradient: ``"eager"`` (GDPO, default) or ``"ddpo"`` (per-step ``log p_θ(G_s | G_t)``).
        max_queries: Stop once the environment's benchmark has looked up this many distinct cells
            (``info["n_queries"]``), checked after every round of episodes; ``None``: no limit.
            :meth:`for_env_id` also makes the environments refuse new cells beyond it, so it is exact.
        max_stale_batches: Stop once this many consecutive batches looked up no new cell (the policy
            has converged onto known cells); ``None``: never.
        elite_replay: Replay this many best cells found so far after every batch
            (:mod:`agents.dgpo.elite`); 0 (published DGPO): no replay.
        replay_passes: Optimizer steps of elite replay per batch.
        anchor_prob: Probability that a batch starts from best-so-far cells noised to an intermediate
            time instead of from the prior (elite-anchored starts); 0 (published DGPO): never.
        anchor_skip: Share of the denoising schedule an anchored start skips (``k = round(anchor_skip
            · n_steps)``, clipped to ``1 .. n_steps - 1``); larger means less noise, closer edits.
        anchor_top_k: Anchors are drawn uniformly from this many best cells.
        anchor_after: Distinct cells to look up (from the prior) before the first anchored batch.
        novelty_retries: At the last denoising step, redraw a proposal whose cell is invalid, already
            looked up or already proposed in the round, up to this many times, mixing ever more of
            the prior into the reverse step (see :meth:`sample_actions`); 0 (published): never.
        stats_window_size: Episodes averaged in ``rollout/ep_rew_mean``.
        tensorboard_log: TensorBoard log directory.
        policy_kwargs: ``{"model": DiffusionModel or checkpoint path}``; ``task`` defaults to the
            environment's.
        verbose: 0 silent, 1 training info.
        seed: Seeds the environment, the action sampling and the timestep subsets (one
            ``torch.Generator``), so runs with the same seed are identical.
        device: Torch device.
        _init_setup_model: Build the policy now (SB3 convention; ``load`` passes False).

    Raises:
        ValueError: For an invalid setting (message says which and why).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "GraphDiffusionPolicy": GraphDiffusionPolicy,
        "MultiInputPolicy": GraphDiffusionPolicy,
    }
    policy: GraphDiffusionPolicy

    def __init__(
        self,
        policy: str | type[GraphDiffusionPolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule = LEARNING_RATE,
        batch_size: int = BATCH_SIZE,
        n_inner_passes: int = N_INNER_PASSES,
        timestep_fraction: float = TIMESTEP_FRACTION,
        reward_smoothing: float = REWARD_SMOOTHING,
        advantage_clip: float = ADVANTAGE_CLIP,
        max_grad_norm: float = MAX_GRAD_NORM,
        freeze_fraction: float = FREEZE_FRACTION,
        gradient_accumulation: int = GRADIENT_ACCUMULATION,
        gradient: Gradient = "eager",
        max_queries: int | None = None,
        max_stale_batches: int | None = None,
        elite_replay: int = 0,
        replay_passes: int = 10,
        anchor_prob: float = 0.0,
        anchor_skip: float = 0.7,
        anchor_top_k: int = 3,
        anchor_after: int = 20,
        novelty_retries: int = 0,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(
            policy=policy,
            env=env,
            learning_rate=learning_rate,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            support_multi_env=True,
            seed=seed,
            supported_action_spaces=(spaces.MultiDiscrete,),
        )
        for name, value in (("batch_size", batch_size), ("n_inner_passes", n_inner_passes)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if int(gradient_accumulation) < 1:
            raise ValueError(f"gradient_accumulation must be >= 1, got {gradient_accumulation}")
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
        if max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be > 0, got {max_grad_norm}")
        if max_queries is not None and max_queries < 1:
            raise ValueError(f"max_queries must be >= 1 or None, got {max_queries}")
        n_loss_steps(1, timestep_fraction)  # validates the fraction
        self.batch_size = int(batch_size)
        self.n_inner_passes = int(n_inner_passes)
        self.timestep_fraction = float(timestep_fraction)
        self.max_grad_norm = float(max_grad_norm)
        self.freeze_fraction = float(freeze_fraction)
        self.gradient_accumulation = int(gradient_accumulation)
        self.gradient: Gradient = gradient
        self.max_queries = max_queries
        if max_stale_batches is not None and max_stale_batches < 1:
            raise ValueError(f"max_stale_batches must be >= 1 or None, got {max_stale_batches}")
        self.max_stale_batches = max_stale_batches
        for name, value in (
            ("elite_replay", elite_replay),
            ("anchor_after", anchor_after),
            ("novelty_retries", novelty_retries),
        ):
            if int(value) < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name, value in (("replay_passes", replay_passes), ("anchor_top_k", anchor_top_k)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0.0 <= anchor_prob <= 1.0:
            raise ValueError(f"anchor_prob must be in [0, 1], got {anchor_prob}")
        if not 0.0 < anchor_skip < 1.0:
            raise ValueError(f"anchor_skip must be in (0, 1), got {anchor_skip}")
        self.elite_replay = int(elite_replay)
        self.replay_passes = int(replay_passes)
        self.anchor_prob = float(anchor_prob)
        self.anchor_skip = float(anchor_skip)
        self.anchor_top_k = int(anchor_top_k)
        self.anchor_after = int(anchor_after)
        self.novelty_retries = int(novelty_retries)
        self.stale_batches = 0
        self.stop_reason: str | None = None
        self.normalizer = RewardNormalizer(reward_smoothing, advantage_clip)
        self.n_queries = 0
        self.best: dict[str, Any] | None = None
        self.frozen_modules: list[str] = []
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ construction
    def _setup_model(self) -> None:
        """Build the policy (actor = the model), freeze layers, create the optimizer and the generator."""
        if self.env is not None and self.batch_size % self.n_envs:
            raise ValueError(
                f"batch_size={self.batch_size} must be a multiple of the number of environments "
                f"n_envs={self.n_envs} (all episodes of a batch run in lockstep)"
            )
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        kwargs = dict(self.policy_kwargs)
        if "task" not in kwargs and self.env is not None:
            kwargs["task"] = self.env.get_attr("task", [0])[0]
            self.policy_kwargs = kwargs
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **kwargs
        ).to(self.device)
        if not isinstance(self.policy, DiffusionPolicyMixin):
            raise ValueError(f"DGPO needs a graph-diffusion policy, got {type(self.policy).__name__}")
        self.frozen_modules = freeze_layers(self.policy.model, self.freeze_fraction)
        trainable = [p for p in self.policy.model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("freeze_fraction leaves no trainable parameter; lower it")
        self.policy.optimizer = self.policy.optimizer_class(  # type: ignore[call-arg]
            trainable, lr=self.lr_schedule(1), **self.policy.optimizer_kwargs
        )
        self.archive = CellArchive(self.policy.model.space.n_nodes)
        self._generator = torch.Generator()
        if self.seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(int(self.seed))

    def set_random_seed(self, seed: int | None = None) -> None:
        """Seed SB3's generators, the environment and the agent's own ``torch.Generator``."""
        super().set_random_seed(seed)
        if seed is not None and hasattr(self, "_generator"):
            self._generator.manual_seed(int(seed))

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_generator"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.optimizer"], []

    @classmethod
    def for_env_id(
        cls,
        model: ModelSpec,
        env_id: str | None,
        n_envs: int | None = None,
        n_steps: int = DEFAULT_N_STEPS,
        env_kwargs: Mapping[str, Any] | None = None,
        benchmark: Benchmark | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> DGPO:
        """DGPO on ``n_envs`` copies of ``env_id`` built for ``model`` (its ``T`` and prior, one shared benchmark).

        Args:
            model: The pretrained model or its checkpoint path (a path keeps saved agents small).
            env_id: A registered ``dgpo_env/...`` id, or ``None`` to build the environment on ``benchmark``.
            n_envs: Environment copies (default ``batch_size``: one forward pass per denoising step).
            n_steps: Denoising steps per episode.
            env_kwargs: Further environment arguments (e.g. ``{"inverse": True}``).
            benchmark: Share this benchmark (default a fresh one for ``env_id``); with ``max_queries`` the
                environments see a :class:`~agents.policies.budget.BudgetedBenchmark` view of it, so the
                budget is exact.
            seed: The run's seed.
            **kwargs: :class:`DGPO` arguments (``policy_kwargs`` may add critic settings).
        """
        batch_size = int(kwargs.get("batch_size", BATCH_SIZE))
        n_envs = batch_size if n_envs is None else n_envs
        max_queries = kwargs.get("max_queries")
        env = make_env_for_model(model, env_id, n_envs, n_steps, seed, env_kwargs, benchmark, max_queries)
        policy_kwargs = {**dict(kwargs.pop("policy_kwargs", None) or {}), "model": model}
        return cls("GraphDiffusionPolicy", env, seed=seed, policy_kwargs=policy_kwargs, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def episode_length(self) -> int:
        """Denoising steps per episode (the policy's task)."""
        return self.policy.task.n_steps

    def timesteps_for_epochs(self, epochs: int = EPOCHS) -> int:
        """``total_timesteps`` for ``epochs`` batches (DESIGN.md §4: 80 epochs official)."""
        return int(epochs) * self.batch_size * self.episode_length

    @property
    def anchor_step(self) -> int:
        """Schedule index ``k`` an anchored start begins at (see ``anchor_skip``)."""
        return min(max(round(self.anchor_skip * self.episode_length), 1), self.episode_length - 1)

    def _anchor_batch(self) -> bool:
        """Whether the next batch starts from noised elite cells (draws from the agent's generator)."""
        if self.anchor_prob == 0.0 or self.episode_length < 2 or len(self.archive) < max(self.anchor_after, 1):
            return False
        return bool(torch.rand((), generator=self._generator) < self.anchor_prob)

    @property
    def budget_exhausted(self) -> bool:
        """Whether ``max_queries`` distinct cells have been looked up."""
        return self.max_queries is not None and self.n_queries >= self.max_queries

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

    @torch.no_grad()
    def sample_actions(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Draw ``G_s ~ p_θ(G_s | G_t)`` for a batch of observations with the agent's generator.

        At the last step (``s = 0``) with ``novelty_retries = R > 0``, proposals that are invalid, already
        looked up, or repeated within the batch are redrawn up to ``R`` times; retry ``r`` draws from
        ``(1 - r/R) · p_θ + r/R · m`` (``m`` the prior marginals), so a model that has collapsed onto
        known cells still proposes new ones — nearby edits first, uniform exploration last.
        """
        graph = graph_from_obs(obs_as_tensor(obs, self.device))  # type: ignore[arg-type]
        s = self.policy.next_times(graph.t)
        node_probs, edge_probs = self.policy.model.reverse_step_probs(graph.nodes, graph.edges, graph.t, s)

        def draw() -> np.ndarray:
            nodes = sample_categorical(node_probs, self._generator)  # [B, N]
            edges = sample_categorical(edge_probs, self._generator)  # [B, M]
            return torch.cat([nodes, edges], dim=1).cpu().numpy()  # [B, N + M]

        actions = draw()
        if self.novelty_retries and bool((s == 0).all()):
            noise = self.policy.model.noise
            for retry in range(1, self.novelty_retries + 1):
                stale = self._known_or_repeated(actions)
                if not stale.any():
                    break
                mix = retry / self.novelty_retries  # exploration grows retry by retry, up to the prior itself
                node_probs = (1.0 - mix) * node_probs + mix * noise.node_marginals.to(node_probs)  # [B, N, K]
                edge_probs = (1.0 - mix) * edge_probs + mix * noise.edge_marginals.to(edge_probs)  # [B, M, K_e]
                actions[stale] = draw()[stale]
        return actions

    def _known_or_repeated(self, actions: np.ndarray) -> np.ndarray:
        """``bool[B]``: final proposals that are invalid, in the archive, or repeat an earlier row."""
        space = self.policy.model.space
        seen: set[str] = set()
        stale = np.zeros(len(actions), dtype=bool)
        for i, flat in enumerate(actions):
            cell = space.from_flat(space.clamp(flat))  # the cell the environment would look up
            if space.validate(cell) is not None:
                stale[i] = True
                continue
            key = space.canonical_key(cell)
            stale[i] = key in self.archive or key in seen
            seen.add(key)
        return stale

    def collect_trajectories(self, callback: BaseCallback) -> TrajectoryBatch | None:
        """Run ``batch_size`` episodes (``batch_size / n_envs`` rounds of lockstep episodes).

        Returns:
            The batch (smaller than ``batch_size`` when ``max_queries`` was reached), or ``None``
            when the callback asked to stop.
        """
        assert self.env is not None and self._last_obs is not None
        env: VecEnv = self.env
        self.policy.set_training_mode(False)
        n_nodes = self.policy.model.space.n_nodes
        first = self.anchor_step if self._anchor_batch() else 0  # schedule index the batch starts at
        length = self.episode_length - first
        obs: Any = self._last_obs
        assert isinstance(obs, dict)
        if not np.all(obs["t"] == self.policy.model.diffusion_steps):  # a previous learn() stopped mid-episode
            obs = env.reset()
        callback.on_rollout_start()
        rounds: list[tuple[np.ndarray, list[dict[str, Any]], np.ndarray]] = []
        start = time.time()
        for _ in range(self.batch_size // self.n_envs):
            if first:
                anchors = self.archive.draw_anchors(self.n_envs, self.anchor_top_k, self._generator)
                env.set_options([{"start_cell": cell, "start_step": first} for cell in anchors])
                obs = env.reset()
            flats = np.empty((length + 1, self.n_envs, len(self.action_space.nvec)), dtype=np.int64)  # type: ignore[attr-defined]
            for k in range(length):
                assert isinstance(obs, dict)
                flats[k] = np.concatenate([obs["nodes"], obs["edges"]], axis=1)
                actions = self.sample_actions(obs)
                new_obs, rewards, dones, infos = env.step(actions)
                self.num_timesteps += self.n_envs
                callback.update_locals(locals())
                if not callback.on_step():
                    self._last_obs = new_obs  # type: ignore[assignment]
                    return None
                obs = new_obs
            if not np.all(dones):
                raise RuntimeError(
                    f"episodes did not end after the schedule's {length} steps; every copy of the environment "
                    "must use the policy's step schedule"
                )
            for i, info in enumerate(infos):
                final = info["terminal_observation"]
                flats[length, i] = np.concatenate([final["nodes"], final["edges"]])
            self._record_episodes(infos, rewards, flats[length], start)
            rounds.append((flats, infos, rewards))
            if self.budget_exhausted:
                break
        self._last_obs = obs  # type: ignore[assignment]
        callback.on_rollout_end()
        return self._as_batch(rounds, n_nodes, np.asarray(self.policy.task.timesteps)[first:])

    def _record_episodes(
        self, infos: list[dict[str, Any]], rewards: np.ndarray, finals: np.ndarray, start: float
    ) -> None:
        """Episode statistics, query count, best cell and archive from the final ``info`` of each episode.

        Args:
            infos: The episodes' final ``info`` dicts.
            rewards: Their terminal rewards.
            finals: ``int64[E, N + M]`` their final graphs ``G_0``.
            start: Wall-clock start of the batch.
        """
        assert self.ep_info_buffer is not None
        for info, reward, final in zip(infos, rewards, finals, strict=True):
            episode = info.get("episode") or {"r": float(reward), "l": self.episode_length, "t": time.time() - start}
            self.ep_info_buffer.append(episode)
            if "n_queries" in info:
                self.n_queries = max(self.n_queries, int(info["n_queries"]))
            if info.get("valid") and info.get("val_acc_mean") is not None:
                self.archive.add(info["key"], final, info["val_acc_mean"])
                if self.best is None or info["val_acc_mean"] > self.best["val_acc"]:
                    self.best = {
                        "key": info.get("key"),
                        "cell": info.get("cell"),
                        "val_acc": float(info["val_acc_mean"]),
                        "test_acc": info.get("test_acc"),
                        "n_queries_when_found": int(info.get("n_queries", 0)),
                    }

    def _as_batch(
        self, rounds: list[tuple[np.ndarray, list[dict[str, Any]], np.ndarray]], n_nodes: int, times: np.ndarray
    ) -> TrajectoryBatch:
        """Stack rounds of lockstep episodes (visiting ``times``) into one :class:`TrajectoryBatch`."""
        flats = np.concatenate([r[0].transpose(1, 0, 2) for r in rounds])  # [B, L + 1, N + M]
        infos = [info for r in rounds for info in r[1]]
        rewards = np.concatenate([r[2] for r in rounds]).astype(np.float64)
        valid = np.array([bool(info.get("valid")) for info in infos])
        val_acc = np.array([info["val_acc_mean"] if info.get("valid") else np.nan for info in infos], dtype=np.float64)
        flat = torch.from_numpy(flats)
        batch = TrajectoryBatch(
            nodes=flat[:, :, :n_nodes].contiguous(),
            edges=flat[:, :, n_nodes:].contiguous(),
            times=torch.as_tensor(times, dtype=torch.int64),
            rewards=torch.from_numpy(rewards),
            valid=torch.from_numpy(valid),
            keys=[info.get("key") if info.get("valid") else None for info in infos],
            val_acc=torch.from_numpy(val_acc),
        )
        self.logger.record("dgpo/n_queries", self.n_queries)
        if self.best is not None:
            self.logger.record("dgpo/best_val_acc", self.best["val_acc"])
            if self.best["test_acc"] is not None:
                self.logger.record("dgpo/best_test_acc", self.best["test_acc"])
        self.logger.record("dgpo/valid_fraction", float(valid.mean()))
        self.logger.record("dgpo/anchored", int(len(times) <= self.episode_length))
        if valid.any():
            self.logger.record("dgpo/batch_val_acc_mean", float(np.nanmean(val_acc)))
        return batch

    def train(self, batch: TrajectoryBatch) -> None:
        """DGPO's policy-gradient steps on the batch (DESIGN.md §4), then elite replay if enabled."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        self._train_policy_gradient(batch)
        if self.elite_replay and len(self.archive) > 0:
            self._train_elite_replay()
        self.policy.set_training_mode(False)

    def _train_elite_replay(self) -> None:
        """``replay_passes`` clipped steps of the pretraining loss on the best cells found so far."""
        params = [p for p in self.policy.model.parameters() if p.requires_grad]
        nodes0, edges0 = self.archive.tensors(self.archive.top(self.elite_replay))  # [C, N], [C, M]
        losses = []
        for _ in range(self.replay_passes):
            self.policy.optimizer.zero_grad()
            loss, _, _ = denoising_loss(self.policy.model, nodes0, edges0, self._generator)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
            self.policy.optimizer.step()
            losses.append(float(loss.detach()))
        self._n_updates += self.replay_passes
        self.logger.record("train/replay_loss", float(np.mean(losses)))

    def _train_policy_gradient(self, batch: TrajectoryBatch) -> None:
        """Advantages of the batch, then ``n_inner_passes`` clipped gradient steps (DESIGN.md §4)."""
        advantages, counted, informative = batch_advantages(
            batch.rewards.numpy(), batch.valid.numpy(), batch.keys, self.normalizer
        )
        self.logger.record("train/n_counted", int(counted.sum()))
        self.logger.record("train/n_duplicates", int(batch.valid.sum()) - int(counted.sum()))
        if not informative:
            self.logger.record("train/skipped_batch", 1)
            return
        self.logger.record("train/skipped_batch", 0)
        active = torch.from_numpy(np.flatnonzero(advantages != 0.0))
        adv = torch.from_numpy(advantages)
        k = n_loss_steps(batch.n_steps, self.timestep_fraction)
        params = [p for p in self.policy.model.parameters() if p.requires_grad]
        losses, grad_norms = [], []
        for _ in range(self.n_inner_passes):
            steps = sample_step_subsets(len(active), batch.n_steps, k, self._generator)  # [A, k]
            self.policy.optimizer.zero_grad()
            total = 0.0
            for chunk in torch.tensor_split(torch.arange(len(active)), self.gradient_accumulation):
                if len(chunk) == 0:
                    continue
                traj = active[chunk]
                logp = trajectory_log_likelihood(self.policy.model, batch, traj, steps[chunk], self.gradient)
                loss = -(adv[traj].to(logp.dtype) * logp).sum() / batch.size  # mean over the whole batch
                loss.backward()
                total += float(loss.detach())
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)))
            self.policy.optimizer.step()
            losses.append(total)
        self._n_updates += self.n_inner_passes
        counted_adv = advantages[counted]
        self.logger.record("train/loss", float(np.mean(losses)))
        self.logger.record("train/advantage_mean", float(counted_adv.mean()))
        self.logger.record("train/advantage_std", float(counted_adv.std()))
        self.logger.record("train/reward_ema_mean", float(self.normalizer.mean or 0.0))
        self.logger.record("train/reward_ema_std", float(self.normalizer.std or 0.0))
        self.logger.record("train/grad_norm", float(np.mean(grad_norms)))
        self.logger.record("train/learning_rate", self.lr_schedule(self._current_progress_remaining))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def dump_logs(self, iteration: int = 0) -> None:
        """Write ``rollout/``, ``time/``, ``train/`` and ``dgpo/`` values to the logger."""
        assert self.ep_info_buffer is not None
        elapsed = max((time.time_ns() - self.start_time) / 1e9, sys.float_info.epsilon)
        fps = int((self.num_timesteps - self._num_timesteps_at_start) / elapsed)
        if iteration > 0:
            self.logger.record("time/iterations", iteration, exclude="tensorboard")
        if len(self.ep_info_buffer) > 0:
            self.logger.record("rollout/ep_rew_mean", safe_mean([ep["r"] for ep in self.ep_info_buffer]))
            self.logger.record("rollout/ep_len_mean", safe_mean([ep["l"] for ep in self.ep_info_buffer]))
        self.logger.record("time/fps", fps)
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(step=self.num_timesteps)
