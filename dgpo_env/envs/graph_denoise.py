"""The denoising environment: one reverse-diffusion step of a cell DAG per transition."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dgpo_env.benchmarks import Benchmark, CellResult, make_benchmark
from dgpo_env.diffusion.marginals import Marginals
from dgpo_env.diffusion.schedule import DEFAULT_DIFFUSION_STEPS, cosine_alpha_bar, step_schedule
from dgpo_env.envs.rendering import render_ansi, render_rgb
from dgpo_env.ledger import QueryLedger, SQLiteLedger
from dgpo_env.search_spaces.dag import DAG
from dgpo_env.validation import (
    check_bool,
    check_callable,
    check_choice,
    check_count,
    check_keys,
    check_mapping,
    check_real,
    check_result,
)

ObsType = dict[str, np.ndarray]


@dataclass(frozen=True)
class DenoiseTask:
    """What a denoising policy must agree on with its environment.

    Attributes:
        search_space: Name of the search space (``"nb201"``, ``"nb101"``, ``"toy"``).
        diffusion_steps: ``T``.
        timesteps: ``int64[n_steps + 1]`` time indices an episode visits, ``T`` down to 0.
        prior: Marginals of ``G_T``.
    """

    search_space: str
    diffusion_steps: int
    timesteps: np.ndarray
    prior: Marginals

    @property
    def n_steps(self) -> int:
        """Denoising steps per episode."""
        return len(self.timesteps) - 1


def _is_integral(value: object) -> bool:
    """Whether ``value`` is an integer (Python or NumPy) or a finite float with an integral value, not a ``bool``."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (numbers.Integral, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer()


RewardFn = Callable[[CellResult], float]

DEFAULT_N_STEPS = 25
"""Denoising steps per episode: the model is trained with T = 800 (docs/diffusion.md §2) and sampled with
strides; 25 steps keep samples valid and on-distribution (docs/environment.md §4, benchmarks/pretrain.py)."""


class GraphDenoiseEnv(gym.Env[ObsType, np.ndarray]):
    """Generate a neural-architecture cell by reverse graph diffusion, one denoising step at a time.

    ## Description

    A cell of a NAS search space (NAS-Bench-201, NAS-Bench-101, a toy space) is a DAG on ``N``
    topologically ordered nodes with typed nodes and typed upper-triangle edges (docs/encodings.md §1). An
    episode starts from pure noise ``G_T`` — every node and edge drawn independently from the prior
    marginals — and walks down a schedule of diffusion times ``T = t_K > ... > t_0 = 0``. At every
    step the agent proposes the next, less noisy graph ``G_{t_{k-1}}``; the transition is
    deterministic. At ``t = 0`` the graph is a cell, and the reward is its benchmark accuracy
    (docs/environment.md §1). A graph-diffusion model whose reverse step ``p_θ(G_{t-1} | G_t)`` is used as the
    policy turns fine-tuning it into RL (DGPO, DDPO-style PPO).

    ## Action Space

    ``MultiDiscrete(nvec)`` with ``nvec = [K] * N + [K_e] * M``: the flat vector
    ``concat(nodes, edges)`` of the next graph, ``K`` node types, ``K_e`` edge types and
    ``M = N (N - 1) / 2`` upper-triangle entries in row-major order. Entries that the search space
    fixes (input/output nodes; all of NAS-Bench-201's edges) are clamped to their value whatever the
    action says. :meth:`action_masks` (the sb3-contrib ``MaskablePPO`` contract) and
    ``info["action_mask"]`` give the allowed values of every entry as one flat boolean vector of
    length ``sum(nvec)``. Free entries holding a disallowed value (for example an ``output`` type on
    an inner node) are kept and make the final cell invalid. An action of the wrong shape, with an
    entry that is not an integer (``bool``, string, NaN, ``1.5``; integral floats such as ``2.0`` are
    accepted) or out of range raises ``ValueError`` showing the entries as given.

    ## Observation Space

    ``Dict`` of integer ``Box``es:

    | key       | shape  | values         | meaning                                   |
    |-----------|--------|----------------|-------------------------------------------|
    | ``nodes`` | (N,)   | 0 .. K - 1     | node types of the current graph ``G_t``   |
    | ``edges`` | (M,)   | 0 .. K_e - 1   | upper-triangle edge types of ``G_t``      |
    | ``t``     | (1,)   | 0 .. T         | current diffusion time index ``t``        |

    This is the observation of every id by default. Two opt-in ``gym.make`` flags (not arguments of this
    class; :mod:`dgpo_env.registration`, docs/integrations.md) wrap it for other clients:
    ``mask_in_obs=True`` adds the action mask as ``"action_mask"`` (``MultiBinary(sum(nvec))``,
    :class:`~dgpo_env.wrappers.ActionMaskObservation`); ``flatten_obs=True`` gives one ``float32`` vector
    (:class:`~dgpo_env.wrappers.FlattenDenoiseObservation`), with both ``Dict(observations, action_mask)``.

    ## Rewards

    0 at every step but the last. At ``t = 0`` the final graph ``G_0`` is looked up in the benchmark
    (one counted query): the reward is its validation accuracy (mean over training seeds, or one
    seed drawn with the environment's RNG when ``noisy=True``) as a fraction in [0, 1]
    (``reward_scale="fraction"``, default) or in percent (``"percent"``); or ``reward_fn(result)``
    if given (it must return a finite real number: NaN, infinities, strings and ``bool`` raise
    ``TypeError``/``ValueError`` naming the cell). ``inverse=True`` negates it (the control
    experiment of docs/dgpo.md §1). An invalid cell gets ``invalid_reward`` (default 0.0) and
    ``info["invalid_reason"]`` says why. Test accuracy is reported in ``info`` and never rewarded.

    ## Starting State

    ``G_T`` drawn from ``prior`` with ``self.np_random``: per-node and per-edge categorical
    marginals (default: ``benchmark.marginals()``, the type frequencies of the benchmark's cells; for
    NAS-Bench-201 uniform over the five ops), with fixed entries at their value; ``t = T``.

    ``reset(options={"start_cell": cell, "start_step": k})`` instead starts from a partially noised
    known cell (SDEdit-style, docs/diffusion.md §5): ``t = t_k``, the ``k``-th time of the schedule
    (an integer, ``1 <= k < n_steps``), and ``G_{t_k} ~ q(G_{t_k} | G_0 = cell)`` — every free entry keeps its
    value with probability ``ᾱ_{t_k}`` and is otherwise drawn from ``prior``. The episode then
    lasts ``n_steps - k`` transitions; small noise (large ``k``) proposes near neighbours of the cell.
    ``cell`` is a :class:`~dgpo_env.search_spaces.dag.DAG` or a flat ``concat(nodes, edges)`` vector
    (checked like an action). ``options`` must be ``None`` or a mapping with only these keys;
    anything else raises ``TypeError`` or ``ValueError`` naming the problem.

    ## Episode End

    The episode terminates when ``t`` reaches 0: after ``n_steps`` transitions (``n_steps - k`` from a
    ``start_step`` of ``k``). It is never
    truncated. The final ``info`` holds ``cell`` (arch string or description), ``key`` (canonical
    key), ``valid``, ``invalid_reason``, ``val_acc`` (percent, as rewarded), ``val_acc_mean``,
    ``test_acc``, ``params_m``, ``latency_s``, ``train_time_s``, ``n_queries`` and ``n_lookups``
    (the counts of the benchmark's query ledger, shared by every environment that shares the ledger)
    and ``budget_exhausted``.
    Once the ledger's budget is spent, a final cell that was not looked up before is answered as
    invalid (``invalid_reason`` ``"query budget exhausted"``, reward ``invalid_reward``, not counted);
    known cells are still answered.

    ## Arguments

    ```python
    import gymnasium as gym
    import dgpo_env

    env = gym.make("dgpo_env/NB201-CIFAR10-v0", n_steps=25, reward_scale="fraction")
    ```

    * ``benchmark``: a :class:`~dgpo_env.benchmarks.Benchmark` instance (share one to count queries
      across environments in one process) or a name for :func:`~dgpo_env.benchmarks.make_benchmark`.
    * ``benchmark_kwargs``: keyword arguments for ``make_benchmark`` (e.g. ``{"dataset": "cifar100"}``).
    * ``ledger``: the :class:`~dgpo_env.ledger.QueryLedger` the benchmark built by name records its
      look-ups in (docs/ledger.md): give environment copies one ledger to share one count and one
      budget — an :class:`~dgpo_env.ledger.SQLiteLedger` (or a path to its file) for copies in worker
      processes. Default: the benchmark's own in-process ledger. Not with a ``benchmark`` instance
      (set ``benchmark.ledger`` instead).
    Every argument is checked when the environment is built, and a wrong type or value raises
    ``TypeError`` or ``ValueError`` naming the argument and the value given (nothing is coerced:
    ``inverse="no"`` is an error, not ``True``).

    * ``n_steps``: denoising steps per episode (episode length), an integer ``1 .. diffusion_steps``.
    * ``diffusion_steps``: ``T`` of the diffusion model, an integer ``>= 1``; the time indices visited are
      :func:`~dgpo_env.diffusion.schedule.step_schedule` ``(T, n_steps)``.
    * ``prior``: :class:`~dgpo_env.diffusion.marginals.Marginals` of ``G_T`` (default
      ``benchmark.marginals()``); a diffusion policy must use the same prior.
    * ``reward_scale``: ``"fraction"`` or ``"percent"``.
    * ``reward_fn``: optional callable ``CellResult -> float`` (a finite real number) replacing the
      accuracy reward (e.g. accuracy minus a parameter penalty); called for valid cells only. Ready-made
      ones in :mod:`dgpo_env.rewards` (docs/howto-constrained.md): ``AccuracyUnderBudget(max_latency_ms=12,
      max_params_m=0.8)`` (hard budgets; an over-budget cell gets ``infeasible_reward``, never its
      accuracy), ``WeightedSum`` and ``Chebyshev`` (trade-offs of ``acc``, ``latency``, ``params``,
      ``train_time``). ``reward_scale`` does not apply to it.
    * ``inverse``: ``bool``, negate the reward.
    * ``invalid_reward``: reward of an invalid cell, a finite real number.
    * ``noisy``: ``bool``, reward one training seed's accuracy instead of the mean.
    * ``render_mode``: ``None``, ``"ansi"`` or ``"rgb_array"``.

    ## Version History

    * v0: the first version. Later additions that change no dynamics: ``reset`` options
      ``start_cell``/``start_step``; the ``ledger`` argument and ``info["budget_exhausted"]``; the
      opt-in ``gym.make`` flags ``mask_in_obs`` and ``flatten_obs`` (wrappers; the default observation
      is unchanged); the ready-made ``reward_fn`` objects of :mod:`dgpo_env.rewards` (budgets and
      trade-offs; the default reward is unchanged). Fixed in v0: ``benchmark_kwargs`` given to
      ``gym.make`` are merged into the id's (they replaced them, so a ``table_path`` alone turned
      ``NB201-CIFAR100-v0`` into CIFAR-10), and a ``Benchmark`` instance works with every id.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self,
        benchmark: Benchmark | str = "nb201",
        benchmark_kwargs: Mapping[str, Any] | None = None,
        ledger: QueryLedger | str | os.PathLike[str] | None = None,
        n_steps: int = DEFAULT_N_STEPS,
        diffusion_steps: int = DEFAULT_DIFFUSION_STEPS,
        prior: Marginals | None = None,
        reward_scale: Literal["fraction", "percent"] = "fraction",
        reward_fn: RewardFn | None = None,
        inverse: bool = False,
        invalid_reward: float = 0.0,
        noisy: bool = False,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        # Scalars first (cheap), so a typo fails before any benchmark data is read.
        self.diffusion_steps = check_count("diffusion_steps", diffusion_steps, minimum=1)
        self.n_steps = check_count("n_steps", n_steps, minimum=1, maximum=self.diffusion_steps)
        self.reward_scale = check_choice("reward_scale", reward_scale, ("fraction", "percent"))
        self.reward_fn = None if reward_fn is None else check_callable("reward_fn", reward_fn)
        self.inverse = check_bool("inverse", inverse)
        self.invalid_reward = check_real("invalid_reward", invalid_reward)
        self.noisy = check_bool("noisy", noisy)
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        if benchmark_kwargs is not None:
            benchmark_kwargs = check_mapping("benchmark_kwargs", benchmark_kwargs)
        if prior is not None and not isinstance(prior, Marginals):
            raise TypeError(f"prior must be a Marginals instance or None, got {type(prior).__name__}")
        if ledger is not None and not isinstance(ledger, (QueryLedger, str, os.PathLike)):
            raise TypeError(
                f"ledger must be a QueryLedger, a path to an SQLite ledger file or None, got {type(ledger).__name__}"
            )
        if isinstance(ledger, (str, os.PathLike)):
            ledger = SQLiteLedger(ledger)
        if isinstance(benchmark, str):
            benchmark = make_benchmark(benchmark, **dict(benchmark_kwargs or {}), ledger=ledger)
        elif not isinstance(benchmark, Benchmark):
            raise TypeError(
                f"benchmark must be a Benchmark instance or a benchmark name such as 'nb201', got {benchmark!r}"
            )
        elif benchmark_kwargs:
            raise ValueError("benchmark_kwargs only apply when benchmark is given by name")
        elif ledger is not None:
            raise ValueError(
                "ledger only applies when benchmark is given by name; for a Benchmark instance set "
                "benchmark.ledger = ledger before building the environment"
            )
        self.benchmark = benchmark
        self.search_space = space = benchmark.search_space
        self.timesteps = step_schedule(self.diffusion_steps, self.n_steps)
        self._alpha_bar = cosine_alpha_bar(self.diffusion_steps)  # float64[T + 1]
        self.prior = benchmark.marginals() if prior is None else prior
        self.prior.check_compatible(space)
        self.render_mode = render_mode

        n, m = space.n_nodes, space.n_edges
        self.action_space = spaces.MultiDiscrete(space.nvec.copy())
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "nodes": spaces.Box(0, space.n_node_types - 1, shape=(n,), dtype=np.int64),
                "edges": spaces.Box(0, space.n_edge_types - 1, shape=(m,), dtype=np.int64),
                "t": spaces.Box(0, self.diffusion_steps, shape=(1,), dtype=np.int64),
            }
        )
        self._nvec = space.nvec
        self._fixed = space.fixed_mask
        self._fixed_values = space.fixed_values
        self._mask = space.flat_action_mask
        self._n_nodes = n
        self._flat: np.ndarray | None = None  # int64[N + M], the current graph
        self._k = 0  # index of the current time t in the schedule
        self._last_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        """Draw ``G_T`` from the prior (``t = T``), or noise ``options["start_cell"]`` to ``t_k`` (see Starting State).

        Raises:
            TypeError: If ``options`` is not a mapping or ``start_step`` is not an integer.
            ValueError: For unknown option keys, a ``start_step`` outside ``1 .. n_steps - 1``, or a
                ``start_cell`` of the wrong shape or with non-integer or out-of-range entries.
        """
        super().reset(seed=seed)
        start_cell, self._k = self._parse_start(options)
        noise = self.prior.sample(self.np_random)  # int64[N + M]
        if start_cell is not None:
            keep = self.np_random.random(noise.shape) < self._alpha_bar[self.timesteps[self._k]]
            noise = np.where(keep, start_cell, noise)
        self._flat = np.where(self._fixed, self._fixed_values, noise)
        self._last_info = {"t": self.t, "action_mask": self._mask.copy()}
        return self._obs(), dict(self._last_info)

    START_OPTIONS: tuple[str, ...] = ("start_cell", "start_step")
    """The keys ``reset``'s ``options`` may hold (see Starting State)."""

    def _parse_start(self, options: Mapping[str, Any] | None) -> tuple[np.ndarray | None, int]:
        """``(start cell as a flat vector or None, start step k)`` from ``reset``'s ``options``."""
        if options is None:
            return None, 0
        options = check_mapping("reset options", options)
        check_keys("reset options", options, self.START_OPTIONS)
        cell, k = options.get("start_cell"), options.get("start_step")
        if cell is None and k is None:
            return None, 0
        if cell is None or k is None:
            raise ValueError("reset options 'start_cell' and 'start_step' go together; give both or neither")
        if self.n_steps < 2:
            raise ValueError("reset option start_step needs n_steps >= 2 (it starts between t_K and t_0)")
        k = check_count("reset option start_step", k, minimum=1, maximum=self.n_steps - 1)
        flat = np.concatenate([cell.nodes, cell.edges]) if isinstance(cell, DAG) else cell
        return self._check_action(flat, "reset option start_cell"), k

    def step(self, action: np.ndarray) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """Replace the graph by ``action`` (fixed entries clamped) and move ``t`` one step down."""
        if self._flat is None:
            raise RuntimeError("call reset() before step()")
        if self._k >= self.n_steps:
            raise RuntimeError("the episode has ended (t = 0); call reset() to start a new one")
        flat = self._check_action(action)
        self._flat = np.where(self._fixed, self._fixed_values, flat)
        self._k += 1
        t = int(self.timesteps[self._k])
        info: dict[str, Any] = {"t": t, "action_mask": self._mask.copy()}
        reward = 0.0
        terminated = t == 0
        if terminated:
            reward = self._terminal(info)
        self._last_info = info
        return self._obs(), reward, terminated, False, info

    def action_masks(self) -> np.ndarray:
        """Flat ``bool[sum(nvec)]``: which value each action entry may take (sb3-contrib contract)."""
        return self._mask.copy()

    def render(self) -> str | np.ndarray | None:  # type: ignore[override]
        """Text (``"ansi"``) or an RGB picture (``"rgb_array"``) of the current graph."""
        if self.render_mode is None or self._flat is None:
            return None
        dag = self.current_graph
        t = int(self.timesteps[self._k])
        if self.render_mode == "ansi":
            return render_ansi(self.search_space, dag, t, self._last_info)
        return render_rgb(self.search_space, dag, t, self._last_info)

    # ------------------------------------------------------------------ helpers
    @property
    def current_graph(self) -> DAG:
        """The current graph ``G_t`` as a :class:`DAG`."""
        if self._flat is None:
            raise RuntimeError("call reset() first")
        return DAG.from_flat(self._flat, self._n_nodes)

    @property
    def ledger(self) -> QueryLedger:
        """The query ledger this environment's benchmark counts into (docs/ledger.md)."""
        return self.benchmark.ledger

    @property
    def ledger_id(self) -> str:
        """Identity of the query ledger this environment counts into (equal for copies that share it)."""
        return self.benchmark.ledger.ledger_id

    @property
    def task(self) -> DenoiseTask:
        """The search space, schedule and prior a policy for this environment must share."""
        return DenoiseTask(self.search_space.name, self.diffusion_steps, self.timesteps.copy(), self.prior)

    @property
    def t(self) -> int:
        """The current diffusion time index."""
        return int(self.timesteps[self._k])

    def _obs(self) -> ObsType:
        assert self._flat is not None
        return {
            "nodes": self._flat[: self._n_nodes].copy(),
            "edges": self._flat[self._n_nodes :].copy(),
            "t": np.array([self.timesteps[self._k]], dtype=np.int64),
        }

    def _check_action(self, action: np.ndarray, what: str = "action") -> np.ndarray:
        """``action`` as ``int64[N + M]`` after checking shape, integrality and range (not a copy if it is one).

        Raises:
            ValueError: Naming ``what`` (the action, or reset's ``start_cell``) and the problem.
        """
        if isinstance(action, np.ndarray):
            a = action
        else:  # a list or tuple: keep the values as given (np.asarray could turn 2**64 - 1 into a float)
            try:
                a = np.array(action, dtype=object)
            except ValueError:  # ragged nesting
                a = np.empty(0, dtype=object)
        if a.shape != self._nvec.shape:
            raise ValueError(
                f"{what} must be a flat vector concat(nodes, edges) of shape {self._nvec.shape}, got shape {a.shape}"
            )
        if a.dtype.kind not in "iu":  # integer arrays (what agents send) need no integrality check
            if a.dtype.kind == "O":
                integral = np.array([_is_integral(v) for v in a.tolist()], dtype=bool)
            elif a.dtype.kind == "f":
                with np.errstate(invalid="ignore"):
                    integral = np.isfinite(a) & (np.mod(a, 1) == 0)
            else:
                raise ValueError(f"{what} entries must be integers, got dtype {a.dtype} with values {a.tolist()}")
            if not integral.all():
                where = np.flatnonzero(~integral)
                raise ValueError(f"{what} entries {where.tolist()} must be integers, got values {a[where].tolist()}")
        # Range check on the values as given, so the message shows them (no int64 wrap-around).
        bad = np.asarray((a < 0) | (a >= self._nvec), dtype=bool)
        if bad.any():
            where = np.flatnonzero(bad)
            raise ValueError(
                f"{what} entries {where.tolist()} are out of range: values {a[where].tolist()}, "
                f"allowed 0 .. nvec - 1 with nvec {self._nvec[where].tolist()}"
            )
        return a.astype(np.int64, copy=False)  # callers build new arrays from it (np.where), never keep it

    def _terminal(self, info: dict[str, Any]) -> float:
        dag = self.current_graph
        result = self.benchmark.query(dag, rng=self.np_random if self.noisy else None)
        info.update(
            cell=self.search_space.describe(dag),
            key=result.key,
            valid=result.valid,
            invalid_reason=result.reason,
            val_acc=result.val_acc,
            val_acc_mean=result.val_acc_mean,
            test_acc=result.test_acc,
            params_m=result.params_m,
            latency_s=result.latency_s,
            train_time_s=result.train_time_s,
            n_queries=self.benchmark.n_queries,
            n_lookups=self.benchmark.n_lookups,
            budget_exhausted=self.benchmark.ledger.exhausted,
        )
        if not result.valid or result.val_acc is None:
            return self.invalid_reward
        if self.reward_fn is not None:
            reward = check_result("reward_fn", self.reward_fn(result), lambda: f"cell {info['cell']}")
        else:
            reward = result.val_acc / 100.0 if self.reward_scale == "fraction" else result.val_acc
        return -reward if self.inverse else reward
