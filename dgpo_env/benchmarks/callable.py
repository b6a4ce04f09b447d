"""A benchmark from any Python callable: the expensive evaluation runs once per cell, and resumes from the ledger.

:class:`CallableBenchmark` wraps a function ``fn(cell) -> score`` (train a network, simulate a circuit,
time a pipeline) as a :class:`~dgpo_env.benchmarks.Benchmark`, so the environment, DGPO, PPO and the
searchers use it like a table (docs/howto-custom-space.md). The score takes the place of the validation
accuracy: higher is better, and the environment rewards ``score / 100`` (``reward_scale="fraction"``,
the default) or the score itself (``reward_scale="percent"``).

Each evaluation's result goes into the benchmark's query ledger with the cell. Before calling ``fn``
for a cell the benchmark asks the ledger whether the cell was recorded: with a
:class:`~dgpo_env.ledger.SQLiteLedger` re-opened after a crash, every cell recorded before the crash is
answered from the file and ``fn`` is not called again.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from dgpo_env.benchmarks.base import Benchmark, CellResult, Oracle
from dgpo_env.ledger import BUDGET_EXHAUSTED, Admission, QueryLedger, QueryRecord
from dgpo_env.ledger.base import decode_extra, encode_extra
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.dag import DAG
from dgpo_env.validation import check_callable, check_choice, check_real

EvaluationFn = Callable[[DAG], "float | Mapping[str, Any]"]
"""``fn(cell)``: a finite real score, or a mapping with a ``"score"`` (see :class:`CallableBenchmark`)."""

SCORE = "score"
TEST_SCORE = "test_score"
RESULT_FIELDS: tuple[str, ...] = ("params_m", "latency_s", "train_time_s")
"""Keys of a returned mapping that also fill the :class:`CellResult` fields of the same name (finite reals)."""


class EvaluationError(RuntimeError):
    """The evaluation function raised: nothing was recorded for the cell (the cause is chained)."""


class CallableBenchmark(Benchmark):
    """A benchmark whose look-up calls ``fn(cell)``, at most once per distinct cell, results kept in the ledger.

    ``fn`` receives a valid cell (a :class:`~dgpo_env.search_spaces.dag.DAG` of ``search_space``;
    ``search_space.to_networkx(cell)`` gives it as a graph) and returns either

    * a finite real number: the score; or
    * a mapping with ``"score"`` (finite real, required), optionally ``"test_score"`` (finite real or
      ``None``; reported as ``test_acc``, never rewarded), and any further JSON values (finite numbers,
      strings, booleans, ``None``, lists, dicts with string keys), kept as ``CellResult.extra`` and
      stored in the ledger. ``"params_m"``, ``"latency_s"`` and ``"train_time_s"`` also fill the
      ``CellResult`` fields of those names.

    A value of any other form (``bool``, NaN, a string, a mapping without ``"score"``) raises
    ``TypeError``/``ValueError`` naming the cell; it is not recorded. An exception raised by ``fn`` is
    re-raised as :class:`EvaluationError` (``on_error="raise"``) or turns the cell into an invalid one
    whose ``reason`` gives the exception (``on_error="invalid"``); it is never recorded as a value, so
    the cell is evaluated again when proposed again.

    Once evaluated, a cell is answered from the ledger (or, for an evaluation the ledger did not take,
    from this object's memory) and ``fn`` is not called again. A new cell proposed when the ledger's
    budget is spent is refused *before* ``fn`` runs. Evaluations are deterministic as far as the
    benchmark is concerned: the ``rng`` of :meth:`query` is ignored (``noisy=True`` changes nothing).

    Args:
        search_space: The cells' search space (any :class:`~dgpo_env.search_spaces.base.SearchSpace`).
        fn: The evaluation function (:data:`EvaluationFn`).
        name: The benchmark's name (default: the space's name).
        ledger: Where results are recorded (default a new :class:`~dgpo_env.ledger.InMemoryLedger`);
            a :class:`~dgpo_env.ledger.SQLiteLedger` makes them survive a crash.
        on_error: ``"raise"`` or ``"invalid"``, what an exception from ``fn`` does (above).
        chance_score: The score of a trivial solution, the counterpart of chance accuracy (reports).

    Attributes:
        n_evaluations: Calls of ``fn`` made by this object (failed ones included).

    Raises:
        TypeError: If ``search_space`` is not a ``SearchSpace``, ``fn`` is not callable or
            ``chance_score`` is not a finite real.
        ValueError: For another ``on_error``.

    Example:
        >>> from dgpo_env.ledger import SQLiteLedger  # doctest: +SKIP
        >>> ledger = SQLiteLedger("runs/evals.sqlite")  # doctest: +SKIP
        >>> bench = CallableBenchmark(space, train_and_score, ledger=ledger)  # doctest: +SKIP
    """

    def __init__(
        self,
        search_space: SearchSpace,
        fn: EvaluationFn,
        *,
        name: str | None = None,
        ledger: QueryLedger | None = None,
        on_error: Literal["raise", "invalid"] = "raise",
        chance_score: float = 0.0,
    ) -> None:
        if not isinstance(search_space, SearchSpace):
            raise TypeError(f"search_space must be a SearchSpace, got {type(search_space).__name__}")
        super().__init__(ledger)
        self.search_space = search_space
        self.fn = check_callable("fn", fn)
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty string or None, got {name!r}")
        self.name = search_space.name if name is None else name
        self.on_error = check_choice("on_error", on_error, ("raise", "invalid"))
        self.chance_accuracy = check_real("chance_score", chance_score)
        self.n_evaluations = 0
        self._unrecorded: dict[str, CellResult] = {}  # evaluated by peek, or refused by the ledger

    # ------------------------------------------------------------------ Benchmark
    def query(self, cell: DAG, rng: np.random.Generator | None = None) -> CellResult:
        """Look a cell up, recording it in :attr:`ledger`; ``fn`` runs only for a cell never evaluated.

        Raises:
            EvaluationError: If ``fn`` raised and ``on_error="raise"``.
            TypeError: If ``fn`` returned a value of the wrong type.
            ValueError: If it returned a NaN or infinite score, or a mapping without ``"score"``.
        """
        self.search_space.check_shape(cell)
        reason = self.search_space.validate(cell)
        if reason is not None:
            return CellResult(key=None, valid=False, reason=reason)
        key = self.search_space.canonical_key(cell)
        known = self.ledger.stored(key)
        if known is not None:  # evaluated before, maybe by an earlier (crashed) run: free
            self.ledger.record(key, known.val_acc_mean, known.test_acc)
            return _from_record(known)
        if self.ledger.exhausted:
            return CellResult(key=None, valid=False, reason=BUDGET_EXHAUSTED)
        result = self._unrecorded.pop(key, None) or self._evaluate(key, cell)
        if not result.valid:  # fn raised and on_error="invalid": nothing to record
            return result
        admission = self.ledger.record_with_extra(key, result.val_acc_mean, result.test_acc, result.extra)
        if admission is Admission.REFUSED:  # another process spent the last query meanwhile
            self._unrecorded[key] = result
            return CellResult(key=None, valid=False, reason=BUDGET_EXHAUSTED)
        if admission is Admission.KNOWN:  # another process recorded it meanwhile: its value is the record
            stored = self.ledger.stored(key)
            return result if stored is None else _from_record(stored)
        return result

    def _lookup(self, key: str, cell: DAG, rng: np.random.Generator | None) -> CellResult:
        """For :meth:`peek`: the recorded result, else an evaluation kept in memory (not recorded)."""
        known = self.ledger.stored(key)
        if known is not None:
            return _from_record(known)
        if key not in self._unrecorded:
            result = self._evaluate(key, cell)
            if not result.valid:
                return result
            self._unrecorded[key] = result
        return self._unrecorded[key]

    @property
    def oracle(self) -> Oracle:
        """Not known: a callable benchmark cannot tell its best cell without evaluating them all.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(
            f"the best cell of the callable benchmark {self.name!r} is unknown (finding it would evaluate every "
            "cell); compare runs on their best scores instead"
        )

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, key: str, cell: DAG) -> CellResult:
        self.n_evaluations += 1
        try:
            value = self.fn(cell)
        except Exception as err:
            what = f"{type(err).__name__}: {err}"
            if self.on_error == "invalid":
                return CellResult(key=None, valid=False, reason=f"evaluation failed ({what})")
            raise EvaluationError(
                f"the evaluation function {_name(self.fn)} raised {what} for cell {self.search_space.describe(cell)}; "
                "nothing was recorded for it (pass on_error='invalid' to treat such cells as invalid instead)"
            ) from err
        return _result(key, value, lambda: f"{_name(self.fn)} for cell {self.search_space.describe(cell)}")


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _real(name: str, value: object, where: Callable[[], str]) -> float:
    try:
        return check_real(name, value)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{err} (returned by {where()})") from None


def _result(key: str, value: object, where: Callable[[], str]) -> CellResult:
    """The :class:`CellResult` of an evaluation's return value, checked (see :class:`CallableBenchmark`)."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        score = _real("the score", value, where)
        return CellResult(key=key, valid=True, val_acc=score, val_acc_mean=score)
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{where()} returned {value!r} ({type(value).__name__}); it must return a finite real score or a "
            f"mapping with a {SCORE!r} entry"
        )
    if SCORE not in value:
        raise ValueError(f"{where()} returned a mapping without {SCORE!r} (keys {sorted(map(str, value))})")
    score = _real(f"{SCORE!r}", value[SCORE], where)
    test = value.get(TEST_SCORE)
    test = None if test is None else _real(f"{TEST_SCORE!r}", test, where)
    fields = {f: _real(repr(f), value[f], where) for f in RESULT_FIELDS if value.get(f) is not None}
    rest = {k: v for k, v in value.items() if k not in (SCORE, TEST_SCORE)}
    try:
        extra = decode_extra(encode_extra(rest)) if rest else None  # plain JSON data, as a resumed run reads it
    except TypeError as err:
        raise TypeError(f"{err} (returned by {where()})") from None
    return CellResult(
        key=key,
        valid=True,
        val_acc=score,
        val_acc_mean=score,
        test_acc=test,
        params_m=fields.get("params_m"),
        latency_s=fields.get("latency_s"),
        train_time_s=fields.get("train_time_s"),
        extra=extra,
    )


def _from_record(record: QueryRecord) -> CellResult:
    extra = record.extra
    fields = {f: float(extra[f]) for f in RESULT_FIELDS if extra and extra.get(f) is not None}
    return CellResult(
        key=record.key,
        valid=True,
        val_acc=record.val_acc_mean,
        val_acc_mean=record.val_acc_mean,
        test_acc=record.test_acc,
        params_m=fields.get("params_m"),
        latency_s=fields.get("latency_s"),
        train_time_s=fields.get("train_time_s"),
        extra=extra,
    )


__all__ = ["RESULT_FIELDS", "CallableBenchmark", "EvaluationError", "EvaluationFn"]
