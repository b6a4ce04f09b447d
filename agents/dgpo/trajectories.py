"""Collection of whole denoising trajectories: the base of DGPO (docs/dgpo.md §1, step 1).

Laid out as SB3's ``common/on_policy_algorithm.py`` beside ``ppo/ppo.py``: :class:`TrajectoryAlgorithm`
runs batches of whole trajectories ``G_T → … → G_0`` (one trajectory = one episode = one cell) on the
vectorised environment, drawing every action from the agent's own seeded ``torch.Generator``, and keeps
the bookkeeping of the episodes: statistics, the query count of the environments' ledger and its budget
(docs/ledger.md), and the best cell found. The subclass (:class:`~agents.dgpo.dgpo.DGPO`) supplies
``batch_size``, the learn loop and the update.

A subclass changes how trajectories are collected through four hooks, each a no-op here (docs/dgpo.md §4;
the elite variant, :class:`agents.dgpo.elite.EliteDGPO`, uses all of them):

* :meth:`TrajectoryAlgorithm._batch_start_step` — the schedule index a batch starts at (0: the prior);
* :meth:`TrajectoryAlgorithm._start_options` — the ``reset`` options of a round of episodes that starts later;
* :meth:`TrajectoryAlgorithm._final_step_actions` — may redraw the proposals of the last denoising step;
* :meth:`TrajectoryAlgorithm._on_cell_looked_up` — sees every valid cell an episode looked up.

Within a batch the generator is drawn in this order (docs/dgpo.md §6): :meth:`_batch_start_step`; per
round, :meth:`_start_options` (batches that start later only); per denoising step, the node then the edge
draws of all environment copies; at the last step, :meth:`_final_step_actions`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import obs_as_tensor, safe_mean
from stable_baselines3.common.vec_env import VecEnv
from torch import Tensor

from agents.dgpo.losses import TrajectoryBatch
from agents.policies.budget import apply_budget, env_ledger
from agents.policies.diffusion_policy import DiffusionPolicyMixin, GraphDiffusionPolicy
from agents.policies.observations import graph_from_obs
from dgpo_env.diffusion.noise import sample_categorical
from dgpo_env.ledger import QueryLedger, check_budget

Round = tuple[np.ndarray, list[dict[str, Any]], np.ndarray]
"""One round of lockstep episodes: ``int64[L + 1, E, N + M]`` flat graphs, the ``E`` final ``info`` dicts
and the ``E`` terminal rewards."""


class TrajectoryAlgorithm(BaseAlgorithm):
    """Base of the algorithms that learn from batches of whole denoising trajectories.

    Args:
        policy: ``"GraphDiffusionPolicy"`` (an alias of the subclass) or the class; its actor is the
            diffusion model that draws the actions.
        env: A (vectorised) :class:`~dgpo_env.envs.GraphDenoiseEnv` built with the model's ``T`` and
            prior; its copies must count into one query ledger (docs/ledger.md), which is checked.
        learning_rate: Learning rate, or an SB3 schedule.
        max_queries: The budget of distinct cells, given to the environments' query ledger, which
            refuses new cells beyond it; ``None``: no limit.
        **kwargs: The other arguments of SB3's ``BaseAlgorithm``: ``policy_kwargs`` (``{"model":
            DiffusionModel or checkpoint path}``; ``task`` defaults to the environment's), ``seed`` (also
            seeds the agent's ``torch.Generator``), ``device``, ``verbose``, ``stats_window_size``,
            ``tensorboard_log``.

    Attributes:
        batch_size: Episodes per batch, a multiple of ``n_envs``; supplied by the subclass.
        ledger: The environments' query ledger (``None`` without an environment).
        n_queries: Distinct cells looked up so far (the ledger's count, as the episodes report it, plus
            ``query_offset``).
        query_offset: Distinct cells an agent loaded with :meth:`DGPO.load <agents.dgpo.dgpo.DGPO.load>` had
            counted that the environments' ledger does not hold (0 when resumed on the run's own ledger).
        best: The best cell found (``key``, ``cell``, ``val_acc``, ``test_acc``,
            ``n_queries_when_found``), or ``None``.
    """

    policy: GraphDiffusionPolicy
    batch_size: int

    def __init__(
        self,
        policy: str | type[GraphDiffusionPolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule,
        max_queries: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            policy=policy,
            env=env,
            learning_rate=learning_rate,
            support_multi_env=True,
            supported_action_spaces=(spaces.MultiDiscrete,),
            **kwargs,
        )
        self.max_queries = check_budget(max_queries)
        self.ledger: QueryLedger | None = None
        self.n_queries = 0
        self.query_offset = 0  # distinct cells counted in earlier sessions on a ledger this run does not hold
        self.best: dict[str, Any] | None = None

    # ------------------------------------------------------------------ construction
    def _setup_model(self) -> None:
        """Check the query ledger and the batch; seed; build the policy (actor = the model) and the generator."""
        self._attach_ledger()
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
            raise ValueError(f"{type(self).__name__} needs a graph-diffusion policy, got {type(self.policy).__name__}")
        self._generator = torch.Generator()
        if self.seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(int(self.seed))

    def _attach_ledger(self) -> None:
        """Adopt the environments' one query ledger (copies with several are refused), budget ``max_queries``."""
        if self.env is None:
            return
        self.ledger = env_ledger(self.env)
        apply_budget(self.ledger, self.max_queries)

    def set_random_seed(self, seed: int | None = None) -> None:
        """Seed SB3's generators, the environment and the agent's own ``torch.Generator``."""
        super().set_random_seed(seed)
        if seed is not None and hasattr(self, "_generator"):
            self._generator.manual_seed(int(seed))

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        """SB3's ``set_env``, then the query-ledger check of the new environment (see :meth:`_attach_ledger`)."""
        super().set_env(env, force_reset)
        self._attach_ledger()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_generator", "ledger"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.optimizer"], []

    # ------------------------------------------------------------------ properties
    @property
    def episode_length(self) -> int:
        """Denoising steps per episode (the policy's task)."""
        return self.policy.task.n_steps

    @property
    def budget_exhausted(self) -> bool:
        """Whether ``max_queries`` distinct cells have been looked up."""
        return self.max_queries is not None and self.n_queries >= self.max_queries

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample_actions(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Draw ``G_s ~ p_θ(G_s | G_t)`` for a batch of observations with the agent's generator.

        At the last step (``s = 0``) the draws pass through :meth:`_final_step_actions`.
        """
        graph = graph_from_obs(obs_as_tensor(obs, self.device))  # type: ignore[arg-type]
        s = self.policy.next_times(graph.t)
        node_probs, edge_probs = self._reverse_step_probs(graph.nodes, graph.edges, graph.t, s)
        actions = self._draw_actions(node_probs, edge_probs)
        if bool((s == 0).all()):
            actions = self._final_step_actions(actions, node_probs, edge_probs)
        return actions

    def _draw_actions(self, node_probs: Tensor, edge_probs: Tensor) -> np.ndarray:
        """``int64[B, N + M]`` flat graphs drawn from ``[B, N, K]`` node and ``[B, M, K_e]`` edge probabilities."""
        nodes = sample_categorical(node_probs, self._generator)  # [B, N]
        edges = sample_categorical(edge_probs, self._generator)  # [B, M]
        return torch.cat([nodes, edges], dim=1).cpu().numpy()  # [B, N + M]

    def _reverse_step_probs(self, nodes: Tensor, edges: Tensor, t: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """``p(G_s | G_t)`` the environment copies draw from: ``([E, N, K], [E, M, K_e])``; here the policy's model.

        :class:`~agents.dgpo.dgpo.DGPO` lets the starting model draw for some copies (``DGPOConfig.explore_copies``).
        """
        return self.policy.model.reverse_step_probs(nodes, edges, t, s)

    # ------------------------------------------------------------------ hooks (no-ops here and in published DGPO)
    def _batch_start_step(self) -> int:
        """Schedule index the next batch starts at; 0 (published DGPO): from the prior, ``G_T``.

        A subclass returning ``k > 0`` must also give the start cells in :meth:`_start_options`.
        """
        return 0

    def _start_options(self, start_step: int) -> list[dict[str, Any]]:
        """``reset`` options (one dict per environment copy) of a round starting at schedule index ``start_step``."""
        raise NotImplementedError(f"{type(self).__name__} starts every batch from the prior (start step 0)")

    def _final_step_actions(self, actions: np.ndarray, node_probs: Tensor, edge_probs: Tensor) -> np.ndarray:
        """The proposals of the last denoising step, ``int64[B, N + M]``; published DGPO keeps the draws.

        Args:
            actions: The draws.
            node_probs: ``[B, N, K]`` the reverse-step node probabilities they were drawn from.
            edge_probs: ``[B, M, K_e]`` the edge probabilities.
        """
        return actions

    def _on_cell_looked_up(self, key: str, flat: np.ndarray, val_acc: float, reward: float) -> None:
        """Called for every valid cell an episode ended on.

        ``flat`` is ``int64[N + M]``, ``val_acc`` in percent, ``reward`` the episode's terminal reward.
        """

    # ------------------------------------------------------------------ rollouts
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
        first = self._batch_start_step()  # schedule index the batch starts at
        length = self.episode_length - first
        obs: Any = self._last_obs
        assert isinstance(obs, dict)
        if not np.all(obs["t"] == self.policy.model.diffusion_steps):  # a previous learn() stopped mid-episode
            obs = env.reset()
        callback.on_rollout_start()
        rounds: list[Round] = []
        start = time.time()
        for _ in range(self.batch_size // self.n_envs):
            if first:
                env.set_options(self._start_options(first))
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
        """Episode statistics, query count and best cell from the final ``info`` of each episode.

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
                self.n_queries = max(self.n_queries, self.query_offset + int(info["n_queries"]))
            if info.get("valid") and info.get("val_acc_mean") is not None:
                self._on_cell_looked_up(info["key"], final, float(info["val_acc_mean"]), float(reward))
                if self.best is None or info["val_acc_mean"] > self.best["val_acc"]:
                    self.best = {
                        "key": info.get("key"),
                        "cell": info.get("cell"),
                        "val_acc": float(info["val_acc_mean"]),
                        "test_acc": info.get("test_acc"),
                        "n_queries_when_found": int(info.get("n_queries", 0)),
                    }

    def _as_batch(self, rounds: list[Round], n_nodes: int, times: np.ndarray) -> TrajectoryBatch:
        """Stack rounds of lockstep episodes (visiting ``times``) into one :class:`TrajectoryBatch`."""
        flats = np.concatenate([r[0].transpose(1, 0, 2) for r in rounds])  # [B, L + 1, N + M]
        infos = [info for r in rounds for info in r[1]]
        rewards = np.concatenate([r[2] for r in rounds]).astype(np.float64)  # [B]
        valid = np.array([bool(info.get("valid")) for info in infos])  # [B]
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
        if valid.any():
            self.logger.record("dgpo/batch_val_acc_mean", float(np.nanmean(val_acc)))
        return batch

    # ------------------------------------------------------------------ logging
    def dump_logs(self, iteration: int = 0) -> None:
        """Write ``rollout/``, ``time/`` and the recorded ``train/`` and ``dgpo/`` values to the logger."""
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


__all__ = ["Round", "TrajectoryAlgorithm"]
