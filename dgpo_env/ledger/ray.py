"""A query ledger served by a Ray actor: one exact budget for environment copies on many nodes.

The ledger's state (records, counts, budget) lives in one Ray actor. Every handle — the driver's,
and the copies that travel inside environments to Ray tasks and actors on any node of the cluster —
sends its calls to that actor. Ray runs an actor's methods one at a time, in the order each caller
sent them, so one :meth:`RayLedger.record` call (one actor round trip) decides atomically whether a
cell is new, known or refused: copies on different nodes can never record more distinct cells than
the budget together.

Ray is an optional dependency (``pip install "dgpo-env[ray]"``): this module imports without it
and imports Ray only when a ledger is made or attached. See docs/ray.md, "Ledger actor".
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from dgpo_env.ledger.base import Admission, LedgerError, QueryLedger, QueryRecord, check_budget, encode_extra
from dgpo_env.ledger.memory import InMemoryLedger

RAY_INSTALL_HINT = 'install the Ray extra: pip install "dgpo-env[ray]" (with torch==2.13.0 on CPU machines)'
"""The fix quoted when Ray is needed but not installed."""


def check_feasible(ray: Any, cpus: float, gpus: float, fix: str) -> None:
    """Refuse work that no live node of the connected cluster can hold (Ray would queue it forever, silently).

    Args:
        ray: The ``ray`` module, connected.
        cpus: CPUs one task or actor asks for.
        gpus: GPUs one task or actor asks for.
        fix: The options to lower, named in the message.

    Raises:
        ValueError: If no alive node has ``cpus`` CPUs and ``gpus`` GPUs; the message gives the largest node.
            (A cluster that adds nodes on demand is checked as it is now.)
    """
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if nodes and not any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
        raise ValueError(
            f"no node of the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs for one job (the largest has "
            f"{max(r.get('CPU', 0) for r in nodes):g} CPUs, {max(r.get('GPU', 0) for r in nodes):g} GPUs); "
            f"lower {fix}"
        )


def require_ray(feature: str) -> ModuleType:
    """Import Ray, or say how to install it.

    Args:
        feature: What needs Ray, for the message (e.g. ``"RayLedger"``, ``"--backend ray"``).

    Returns:
        The ``ray`` module.

    Raises:
        ImportError: If Ray is not installed; the message names ``feature`` and the fix.
    """
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"{feature} needs Ray, which is not installed; {RAY_INSTALL_HINT}") from err
    return ray


class _LedgerState:
    """The body of the ledger actor: an :class:`InMemoryLedger` living in the actor's process.

    Ray runs one method call at a time on this object (the actor's default concurrency of 1), so
    each call is atomic with respect to every handle.
    """

    def __init__(self, max_queries: int | None, ledger_id: str) -> None:
        self._ledger = InMemoryLedger(max_queries)
        self._id = ledger_id

    def ledger_id(self) -> str:
        return self._id

    def record(self, key: str, val_acc_mean: float | None, test_acc: float | None) -> str:
        return self._ledger.record(key, val_acc_mean, test_acc).value

    def record_with_extra(
        self, key: str, val_acc_mean: float | None, test_acc: float | None, extra: dict[str, Any] | None
    ) -> str:
        return self._ledger.record_with_extra(key, val_acc_mean, test_acc, extra).value

    def stored(self, key: str) -> QueryRecord | None:
        return self._ledger.stored(key)

    def max_queries(self) -> int | None:
        return self._ledger.max_queries

    def set_budget(self, max_queries: int | None) -> None:
        self._ledger.set_budget(max_queries)

    def counts(self) -> tuple[int, int]:
        return self._ledger.counts()

    def status(self) -> tuple[int, int, int | None]:
        return (*self._ledger.counts(), self._ledger.max_queries)

    def was_queried(self, key: str) -> bool:
        return self._ledger.was_queried(key)

    def records(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        return self._ledger._records()

    def reset(self) -> None:
        self._ledger.reset()


_actor_class: Any = None


def _remote_state_class() -> Any:
    """``ray.remote(_LedgerState)``, made once (importing Ray on first use)."""
    global _actor_class
    if _actor_class is None:
        # No CPU reserved: the ledger must not take a slot a run or an environment could use.
        _actor_class = require_ray("RayLedger").remote(num_cpus=0)(_LedgerState)
    return _actor_class


class RayLedger(QueryLedger):
    """A :class:`~dgpo_env.ledger.base.QueryLedger` whose records, counts and budget live in a Ray actor.

    Handles are picklable: a handle sent to a Ray task or actor (inside an environment or a
    benchmark) talks to the same actor, so every copy counts into one ledger. Each look-up is one
    actor call (one network round trip when the actor is on another node); the counts and the
    budget are read from the actor on every call, so they are exact for every handle.

    Ray must be running in this process (``ray.init(...)``); if it is not, Ray starts or joins a
    cluster the way it does for any first remote call (``RAY_ADDRESS``, else a local instance).

    Args:
        max_queries: Budget of distinct cells (``None``: no limit).
        name: If given, the actor is registered under this name (in ``namespace``), so other
            drivers connected to the same cluster can use it with :meth:`attach`.
        namespace: Ray namespace of the named actor (default: the job's namespace).
        detached: Keep the actor alive after this driver exits (needs ``name``; end it with
            :meth:`kill`). Otherwise the actor ends with the driver that made it.

    Raises:
        ImportError: If Ray is not installed (the message gives the install command).
        TypeError: If ``max_queries`` is not an integer or ``None``, or ``name`` not a string.
        ValueError: If ``max_queries`` is below 1, ``detached`` is asked without a ``name``, or an
            actor of that name already exists (attach to it instead).

    Example:
        >>> ray.init()  # doctest: +SKIP
        >>> ledger = RayLedger(max_queries=300)  # doctest: +SKIP
        >>> env = gym.make("dgpo_env/NB201-CIFAR10-v0", ledger=ledger)  # doctest: +SKIP
    """

    def __init__(
        self,
        max_queries: int | None = None,
        name: str | None = None,
        *,
        namespace: str | None = None,
        detached: bool = False,
    ) -> None:
        budget = check_budget(max_queries)
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty string or None, got {name!r}")
        if namespace is not None and (not isinstance(namespace, str) or not namespace):
            raise TypeError(f"namespace must be a non-empty string or None, got {namespace!r}")
        if not isinstance(detached, bool):
            raise TypeError(f"detached must be True or False, got {detached!r}")
        if detached and name is None:
            raise ValueError("a detached ledger actor needs a name (RayLedger(..., name='queries', detached=True))")
        options: dict[str, Any] = {}
        if name is not None:
            options.update(name=name, namespace=namespace)
        if detached:
            options["lifetime"] = "detached"
        self._id = f"ray:{uuid.uuid4().hex}"
        actor_class = _remote_state_class()
        try:
            self._actor = actor_class.options(**options).remote(budget, self._id)
        except ValueError as err:  # Ray: the name is taken
            raise ValueError(
                f"cannot create the ledger actor {name!r}: {err}; to use the existing one, call "
                f"RayLedger.attach({name!r}{'' if namespace is None else f', namespace={namespace!r}'})"
            ) from err
        # Wait for the actor to start, so a failure shows here and not at the first look-up.
        self._call("ledger_id")

    # ------------------------------------------------------------------ handles
    @classmethod
    def attach(cls, name: str, namespace: str | None = None) -> RayLedger:
        """A handle on the named ledger actor made by another driver (or this one).

        Args:
            name: The ``name`` given to :class:`RayLedger`.
            namespace: Its Ray namespace (default: this job's namespace).

        Raises:
            ImportError: If Ray is not installed.
            LedgerError: If no actor of that name exists in the cluster this process is connected to.
        """
        ray = require_ray("RayLedger.attach")
        try:
            actor = ray.get_actor(name, namespace=namespace)
        except ValueError as err:
            raise LedgerError(
                f"no ledger actor named {name!r} in the Ray cluster this process is connected to ({err}); "
                "check the name, the namespace and the address given to ray.init"
            ) from err
        handle = cls._from_actor(actor, "")
        handle._id = str(handle._call("ledger_id"))
        return handle

    @classmethod
    def _from_actor(cls, actor: Any, ledger_id: str) -> RayLedger:
        """A handle on ``actor`` (used by unpickling and :meth:`attach`)."""
        handle = cls.__new__(cls)
        handle._actor = actor
        handle._id = ledger_id
        return handle

    def __reduce__(self) -> tuple[Any, tuple[Any, str]]:
        """Pickle as the actor handle and the ledger id: the copy talks to the same actor."""
        return (RayLedger._from_actor, (self._actor, self._id))

    def __deepcopy__(self, memo: dict[int, Any]) -> RayLedger:
        """The handle itself (a copied environment keeps counting into the same actor)."""
        return self

    def kill(self, timeout_s: float = 30.0) -> None:
        """End the ledger actor (its records are lost) and wait until it is gone.

        Every handle is unusable afterwards (its calls raise :class:`LedgerError`).

        Args:
            timeout_s: How long to wait for Ray to report the actor dead (seconds).

        Raises:
            LedgerError: If the actor still answers after ``timeout_s``.
        """
        ray = require_ray("RayLedger")
        ray.kill(self._actor)  # asynchronous: wait below until calls fail
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                ray.get(self._actor.ledger_id.remote(), timeout=max(0.0, deadline - time.monotonic()))
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                return
            time.sleep(0.05)
        raise LedgerError(f"the ledger actor {self._id} still answers {timeout_s} s after it was killed")

    def _call(self, method: str, *args: Any) -> Any:
        """Call ``method`` on the actor and wait for its answer.

        Raises:
            LedgerError: If the actor is gone (killed, or its node or driver ended).
        """
        ray = require_ray("RayLedger")
        try:
            return ray.get(getattr(self._actor, method).remote(*args))
        except ray.exceptions.RayActorError as err:
            raise LedgerError(
                f"the ledger actor {self._id} is gone (killed, or the driver or node that held it ended); its "
                "counts and budget no longer hold; start the run again with a new RayLedger"
            ) from err

    # ------------------------------------------------------------------ the primitives
    def record(self, key: str, val_acc_mean: float | None, test_acc: float | None) -> Admission:
        """Record one look-up (see :meth:`QueryLedger.record`): one atomic actor call.

        Raises:
            LedgerError: If the ledger actor is gone.
        """
        return Admission(self._call("record", key, val_acc_mean, test_acc))

    def record_with_extra(
        self, key: str, val_acc_mean: float | None, test_acc: float | None, extra: Mapping[str, Any] | None
    ) -> Admission:
        """:meth:`record`, keeping ``extra`` (a JSON object of further metrics) with a new cell; one actor call.

        Raises:
            TypeError: If ``extra`` is not a JSON object of finite values (checked here, before the call).
            LedgerError: If the ledger actor is gone.
        """
        text = encode_extra(extra)  # refuse bad extras here, and send plain JSON data
        plain = None if text is None else json.loads(text)
        return Admission(self._call("record_with_extra", key, val_acc_mean, test_acc, plain))

    def stored(self, key: str) -> QueryRecord | None:
        """The record of ``key`` with its extra metrics, or ``None``; one actor call, counts nothing."""
        record: QueryRecord | None = self._call("stored", key)
        return record

    @property
    def ledger_id(self) -> str:
        """``"ray:<uuid>"``: equal for every handle on this actor."""
        return self._id

    @property
    def max_queries(self) -> int | None:
        """The budget of distinct cells (read from the actor), ``None`` for no limit."""
        budget = self._call("max_queries")
        return None if budget is None else int(budget)

    def set_budget(self, max_queries: int | None) -> None:
        """Set the budget for every handle (see :meth:`QueryLedger.set_budget`)."""
        self._call("set_budget", check_budget(max_queries))

    def counts(self) -> tuple[int, int]:
        """``(n_queries, n_lookups)``, read from the actor."""
        n_queries, n_lookups = self._call("counts")
        return int(n_queries), int(n_lookups)

    @property
    def exhausted(self) -> bool:
        """Whether the budget is spent, in one actor call (count and budget read together)."""
        n_queries, _, budget = self._call("status")
        return budget is not None and n_queries >= budget

    def was_queried(self, key: str) -> bool:
        """Whether ``key`` has been recorded."""
        return bool(self._call("was_queried", key))

    def _records(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        keys, val, test = self._call("records")
        return list(keys), np.asarray(val, dtype=np.float64), np.asarray(test, dtype=np.float64)

    def reset(self) -> None:
        """Forget every record and count, for every handle (the budget stays)."""
        self._call("reset")

    def __repr__(self) -> str:
        n_queries, n_lookups, budget = self._call("status")
        return f"RayLedger(id={self._id!r}, queries={n_queries}, lookups={n_lookups}, max_queries={budget})"


__all__ = ["RAY_INSTALL_HINT", "RayLedger", "check_feasible", "require_ray"]
