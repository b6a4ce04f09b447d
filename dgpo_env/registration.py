"""Every ``gym.make`` id of the package, registered in one place.

Ids live in the ``dgpo_env`` namespace and are versioned; keyword arguments given to
``gym.make(id, **kwargs)`` override the defaults below. Besides the arguments of
:class:`~dgpo_env.envs.GraphDenoiseEnv`, every id takes two opt-in observation flags
(docs/integrations.md), both ``False`` by default (the environment's own ``Dict`` observation):

* ``mask_in_obs=True``: :class:`~dgpo_env.wrappers.ActionMaskObservation` adds the action mask under
  ``"action_mask"``.
* ``flatten_obs=True``: :class:`~dgpo_env.wrappers.FlattenDenoiseObservation` turns the observation
  into a ``float32`` vector; with ``mask_in_obs=True`` too, the observation is
  ``Dict(observations=Box, action_mask=MultiBinary)``.

``benchmark_kwargs`` given to ``gym.make`` are merged into the id's own (Gymnasium would replace the
whole dict, so ``gym.make("dgpo_env/NB201-CIFAR100-v0", benchmark_kwargs={"table_path": p})`` would
silently become CIFAR-10); a :class:`~dgpo_env.benchmarks.Benchmark` instance given as ``benchmark``
replaces the id's benchmark and its ``benchmark_kwargs`` together.

The entry point :data:`make_env` builds the environment and applies these wrappers, so they are part
of ``env.spec`` (``gym.make(env.spec)`` rebuilds the same stack) and reach worker processes of
``gym.make_vec`` with the other arguments.

Gymnasium 1.x has no plugin entry points: an id resolves only in a process that imported
``dgpo_env``. In worker processes started with ``spawn`` or ``forkserver`` (``SubprocVecEnv``'s default
on Linux) that did not import it, write the id as ``"dgpo_env:dgpo_env/NB201-CIFAR10-v0"``: Gymnasium
imports the module before the look-up (docs/integrations.md, "Worker processes").
"""

from __future__ import annotations

import sys
from typing import Any

import gymnasium as gym

from dgpo_env.validation import check_bool

ENTRY_POINT = "dgpo_env.registration:make_env"

ENV_SPECS: dict[str, dict[str, Any]] = {
    "dgpo_env/NB201-CIFAR10-v0": {"benchmark": "nb201", "benchmark_kwargs": {"dataset": "cifar10"}},
    "dgpo_env/NB201-CIFAR100-v0": {"benchmark": "nb201", "benchmark_kwargs": {"dataset": "cifar100"}},
    "dgpo_env/NB201-ImageNet16-v0": {"benchmark": "nb201", "benchmark_kwargs": {"dataset": "imagenet16"}},
    "dgpo_env/ToyDAG-v0": {"benchmark": "toy"},
    # NAS-Bench-101 needs the official nasbench_only108.tfrecord: set DGPO_NB101_PATH or pass
    # benchmark_kwargs={"path": ...}; without it gym.make raises BenchmarkDataError with download steps.
    "dgpo_env/NB101-v0": {"benchmark": "nb101", "benchmark_kwargs": {}},
}
"""Default constructor arguments of :class:`~dgpo_env.envs.GraphDenoiseEnv` per id."""


def _flag(name: str, value: object) -> bool:
    """``value`` if it is a ``bool``; otherwise a ``TypeError`` that says how to pass it."""
    try:
        return check_bool(name, value)
    except TypeError as error:
        raise TypeError(f"{error}; pass the Python value, e.g. gym.make(id, {name}=True)") from None


class EnvCreator:
    """The entry point of every id: :class:`~dgpo_env.envs.GraphDenoiseEnv`, optionally wrapped.

    An object rather than a function so that ``gym.make`` sees the environment's ``metadata`` (its
    render modes: ``render_mode="rgb_array_list"`` still gets Gymnasium's ``RenderCollection``).
    """

    @property
    def metadata(self) -> dict[str, Any]:
        """``GraphDenoiseEnv.metadata``."""
        from dgpo_env.envs.graph_denoise import GraphDenoiseEnv

        return GraphDenoiseEnv.metadata

    def __call__(self, *, mask_in_obs: bool = False, flatten_obs: bool = False, **kwargs: Any) -> gym.Env[Any, Any]:
        """``GraphDenoiseEnv(**kwargs)`` with the observation wrappers the flags ask for.

        Args:
            mask_in_obs: ``bool``, add the action mask to the observation
                (:class:`~dgpo_env.wrappers.ActionMaskObservation`).
            flatten_obs: ``bool``, one ``float32`` vector instead of the ``Dict``
                (:class:`~dgpo_env.wrappers.FlattenDenoiseObservation`); with ``mask_in_obs`` the mask is put
                beside it: ``Dict(observations=Box, action_mask=MultiBinary)`` (RLlib's layout).
            **kwargs: Arguments of :class:`~dgpo_env.envs.GraphDenoiseEnv`.

        Raises:
            TypeError: If a flag is not a ``bool`` (the string ``"False"`` is not ``False``: pass the
                Python value), or for a wrong environment argument.
        """
        from dgpo_env.envs.graph_denoise import GraphDenoiseEnv
        from dgpo_env.wrappers import ActionMaskObservation, FlattenDenoiseObservation

        # Flags first, so a typo fails before any benchmark data is read.
        mask_in_obs, flatten_obs = _flag("mask_in_obs", mask_in_obs), _flag("flatten_obs", flatten_obs)
        env: gym.Env[Any, Any] = GraphDenoiseEnv(**_with_id_defaults(kwargs))
        if flatten_obs:
            env = FlattenDenoiseObservation(env)
        if mask_in_obs:
            env = ActionMaskObservation(env, nest_key="observations" if flatten_obs else None)
        return env


def _with_id_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the id's benchmark defaults (``ID_DEFAULTS``) merged in or dropped.

    The registered kwargs carry the id's benchmark twice: as ``benchmark`` / ``benchmark_kwargs``
    (what ``gym.spec(id).kwargs`` shows) and under ``ID_DEFAULTS``, which ``gym.make``'s shallow update
    leaves alone. A benchmark given by the id's name gets the id's ``benchmark_kwargs`` under the
    caller's; a benchmark instance drops them when the caller did not pass any.
    """
    kwargs = dict(kwargs)
    defaults = kwargs.pop(ID_DEFAULTS, None)
    if defaults is None:  # the entry point called directly, not through a registered id
        return kwargs
    own = dict(defaults.get("benchmark_kwargs") or {})
    given = kwargs.get("benchmark_kwargs")
    _check_instance_fits(kwargs.get("benchmark"), defaults)
    if kwargs.get("benchmark") == defaults["benchmark"]:
        kwargs["benchmark_kwargs"] = {**own, **dict(given or {})} or None
    elif given == own:  # another benchmark: the id's kwargs do not apply to it
        kwargs["benchmark_kwargs"] = None
    return kwargs


def _instance_spec(benchmark: object) -> dict[str, Any] | None:
    """``{"benchmark": name, "benchmark_kwargs": {...}}`` of a built-in benchmark instance, else ``None``.

    A :class:`~dgpo_env.benchmarks.ConstrainedBenchmark` is judged by the benchmark it wraps; custom
    benchmarks (callable, custom spaces) have no id of their own and give ``None``.
    """
    from dgpo_env.benchmarks import ConstrainedBenchmark, NB201Benchmark, ToyBenchmark

    while isinstance(benchmark, ConstrainedBenchmark):
        benchmark = benchmark.inner
    if isinstance(benchmark, NB201Benchmark):
        return {"benchmark": "nb201", "benchmark_kwargs": {"dataset": benchmark.dataset}}
    nb101 = sys.modules.get("dgpo_env.benchmarks.nb101")  # not imported: no NB-101 instance exists
    if nb101 is not None and isinstance(benchmark, nb101.NB101Benchmark):
        return {"benchmark": "nb101", "benchmark_kwargs": {}}
    if isinstance(benchmark, ToyBenchmark):
        return {"benchmark": "toy", "benchmark_kwargs": {}}
    return None


def _check_instance_fits(benchmark: object, defaults: dict[str, Any]) -> None:
    """Refuse a built-in benchmark instance of another benchmark or dataset than the id's.

    ``gym.make("dgpo_env/NB201-CIFAR100-v0", benchmark=NB201Benchmark("cifar10"))`` would otherwise run on
    CIFAR-10 under a CIFAR-100 id (a benchmark *name* is an explicit choice and stays allowed; a custom
    benchmark instance has no id and stays allowed on any id).

    Raises:
        ValueError: Naming the id's benchmark, the instance's, and the id that matches the instance.
    """
    if isinstance(benchmark, str):
        return
    found = _instance_spec(benchmark)
    if found is None:
        return
    expected = defaults.get("benchmark_kwargs") or {}
    same_data = found["benchmark_kwargs"].get("dataset") == expected.get("dataset")
    if found["benchmark"] == defaults["benchmark"] and same_data:
        return
    ids = [env_id for env_id, spec in ENV_SPECS.items() if _id_defaults(spec) == found]
    want = " ".join([defaults["benchmark"], *(f"{k}={v}" for k, v in expected.items())])
    got = " ".join([found["benchmark"], *(f"{k}={v}" for k, v in found["benchmark_kwargs"].items())])
    fix = f"use the matching id {ids[0]!r} with this instance" if ids else "build GraphDenoiseEnv(benchmark=...)"
    name = getattr(benchmark, "name", type(benchmark).__name__)
    raise ValueError(
        f"this id is for the benchmark {want}, but the benchmark instance given is {got} ({name!r}); "
        f"{fix}, or pass an instance of the id's benchmark"
    )


def _id_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``ID_DEFAULTS`` entry of one :data:`ENV_SPECS` entry."""
    return {"benchmark": spec["benchmark"], "benchmark_kwargs": dict(spec.get("benchmark_kwargs", {}))}


ID_DEFAULTS = "id_defaults"
"""Key of the registered kwargs holding the id's own ``benchmark`` and ``benchmark_kwargs``."""

make_env = EnvCreator()
"""The callable behind :data:`ENTRY_POINT`."""


def register_envs() -> None:
    """Register every id of :data:`ENV_SPECS` (idempotent)."""
    for env_id, kwargs in ENV_SPECS.items():
        if env_id not in gym.registry:
            defaults = _id_defaults(kwargs)
            gym.register(
                id=env_id,
                entry_point=ENTRY_POINT,
                kwargs={**kwargs, ID_DEFAULTS: defaults},
                disable_env_checker=False,
            )
