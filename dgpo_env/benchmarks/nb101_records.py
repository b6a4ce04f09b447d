"""One record of the official NAS-Bench-101 files: its JSON layout and its ``ModelMetrics`` protobuf.

Each TFRecord record (see :mod:`dgpo_env.benchmarks.tfrecord`) is a UTF-8 JSON list
``[module_hash, epochs, adjacency, ops, metrics]`` (the layout of the NAS-Bench-101 release):

* ``module_hash``: the official graph hash of the pruned cell (the look-up key, 32 hex digits);
* ``epochs``: the training budget of this run (4, 12, 36 or 108);
* ``adjacency``: the row-major 0/1 string of the pruned ``n x n`` matrix (``n <= 7``);
* ``ops``: comma-separated op names, ``input`` first and ``output`` last;
* ``metrics``: a base64 ``ModelMetrics`` protocol-buffer message (proto2, package ``nasbench``).

The two messages are declared below as a descriptor and decoded by the ``protobuf`` runtime, so no
generated code and no ``.proto`` compiler are needed::

    message ModelMetrics {
      repeated EvaluationData evaluation_data = 1;  // start, halfway, end of training
      optional int32 trainable_parameters = 2;
      optional double total_time = 3;               // seconds
    }
    message EvaluationData {
      optional double current_epoch = 1;
      optional double training_time = 2;            // seconds
      optional double train_accuracy = 3;           // fractions in [0, 1]
      optional double validation_accuracy = 4;
      optional double test_accuracy = 5;
      optional string checkpoint_path = 6;
    }
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from numpy.typing import NDArray

from dgpo_env.search_spaces.nb101 import INPUT, N_VERTICES, NB101_OPS, OUTPUT, NB101Spec

EPOCH_BUDGETS = (4, 12, 36, 108)
"""Training budgets of the official runs (NAS-Bench-101 paper, Section 2.3)."""
OP_CODES: tuple[str, ...] = (INPUT, OUTPUT, *NB101_OPS)
"""Op code stored in the cache: index in this tuple (the node types of ``NB101SearchSpace``)."""
HEX_DIGITS = "0123456789abcdef"


# ---------------------------------------------------------------------- protobuf messages
def _message_classes() -> tuple[Any, Any]:
    """Build ``(ModelMetrics, EvaluationData)`` from a descriptor of the official ``model_metrics.proto``."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="dgpo_env/nasbench_model_metrics.proto", package="nasbench")
    proto.syntax = "proto2"
    metrics = proto.message_type.add(name="ModelMetrics")
    metrics.field.add(
        name="evaluation_data",
        number=1,
        label=field.LABEL_REPEATED,
        type=field.TYPE_MESSAGE,
        type_name=".nasbench.EvaluationData",
    )
    metrics.field.add(name="trainable_parameters", number=2, label=field.LABEL_OPTIONAL, type=field.TYPE_INT32)
    metrics.field.add(name="total_time", number=3, label=field.LABEL_OPTIONAL, type=field.TYPE_DOUBLE)
    evaluation = proto.message_type.add(name="EvaluationData")
    names = ("current_epoch", "training_time", "train_accuracy", "validation_accuracy", "test_accuracy")
    for number, name in enumerate(names, start=1):
        evaluation.field.add(name=name, number=number, label=field.LABEL_OPTIONAL, type=field.TYPE_DOUBLE)
    evaluation.field.add(name="checkpoint_path", number=6, label=field.LABEL_OPTIONAL, type=field.TYPE_STRING)
    pool = descriptor_pool.DescriptorPool()  # private: never clashes with another package's "nasbench"
    pool.Add(proto)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench.ModelMetrics")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench.EvaluationData")),
    )


ModelMetrics, EvaluationData = _message_classes()
"""The official messages: ``ModelMetrics.FromString(data)`` decodes, ``message.SerializeToString()``
encodes; build one with keywords, e.g. ``EvaluationData(current_epoch=108.0, validation_accuracy=0.93)``."""


def decode_model_metrics(data: bytes) -> Any:
    """Decode a serialised ``ModelMetrics`` message.

    Raises:
        ValueError: If ``data`` is not a valid message (truncated, wrong wire types, bad UTF-8).
    """
    try:
        return ModelMetrics.FromString(data)
    except DecodeError as err:
        raise ValueError(f"metrics are not a ModelMetrics protobuf message: {err}") from err


# ---------------------------------------------------------------------- rows
@dataclass(frozen=True)
class NB101Row:
    """One record of the official file: one training run of one cell.

    Attributes:
        module_hash: Official graph hash of the pruned cell.
        epochs: Training budget.
        spec: The pruned cell as stored.
        metrics: The run's decoded ``ModelMetrics`` message.
    """

    module_hash: str
    epochs: int
    spec: NB101Spec
    metrics: Any

    @property
    def final(self) -> Any:
        """The ``EvaluationData`` at the end of training (the one the official API reports)."""
        return self.metrics.evaluation_data[-1]


def split_record(data: bytes) -> tuple[str, int, str, str, str]:
    """The five JSON fields of a record, type-checked: ``(hash, epochs, adjacency, ops, metrics)``.

    Raises:
        ValueError: If the record is not a UTF-8 JSON list of that shape.
    """
    try:
        fields = json.loads(data)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"record is not UTF-8 JSON: {err}") from err
    if not isinstance(fields, list) or len(fields) != 5:
        raise ValueError("record is not a JSON list [hash, epochs, adjacency, ops, metrics]")
    module_hash, epochs, raw_adjacency, raw_ops, raw_metrics = fields
    if not (isinstance(raw_adjacency, str) and isinstance(raw_ops, str) and isinstance(raw_metrics, str)):
        raise ValueError("adjacency, ops and metrics must be JSON strings")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs not in EPOCH_BUDGETS:
        raise ValueError(f"epochs must be one of {EPOCH_BUDGETS}, got {epochs!r}")
    if not isinstance(module_hash, str) or len(module_hash) != 32 or module_hash.strip(HEX_DIGITS):
        raise ValueError(f"module hash must be 32 lowercase hexadecimal digits, got {module_hash!r}")
    return module_hash, epochs, raw_adjacency, raw_ops, raw_metrics


def _metrics_bytes(raw_metrics: str) -> bytes:
    try:
        return base64.b64decode(raw_metrics, validate=True)
    except binascii.Error as err:
        raise ValueError(f"metrics field is not base64: {err}") from err


_OP_CODE = {name: code for code, name in enumerate(OP_CODES)}


def spec_codes(raw_adjacency: str, raw_ops: str) -> tuple[int, bytes, bytes]:
    """Check a record's spec fields and pack them: ``(n, 49 adjacency bytes, 7 op-code bytes)``.

    Raises:
        ValueError: If the fields do not describe a valid official spec.
    """
    n = math.isqrt(len(raw_adjacency))
    if n * n != len(raw_adjacency) or not 2 <= n <= N_VERTICES or raw_adjacency.strip("01"):
        raise ValueError(f"adjacency must be a square 0/1 string of side 2..7, got {raw_adjacency!r}")
    ops = raw_ops.split(",")
    codes = [_OP_CODE.get(op, -1) for op in ops]
    if len(ops) != n or codes[0] != 0 or codes[-1] != 1 or min(codes[1:-1], default=2) < 2:
        raise ValueError(f"ops must be 'input', {n - 2} of {NB101_OPS}, 'output'; got {raw_ops!r}")
    adj = bytearray(N_VERTICES * N_VERTICES)
    for i in range(n):
        row = raw_adjacency[i * n : (i + 1) * n]
        if "1" in row[: i + 1]:
            raise ValueError("the adjacency matrix must be strictly upper triangular")
        for j in range(i + 1, n):
            if row[j] == "1":
                adj[i * N_VERTICES + j] = 1
    return n, bytes(adj), bytes(codes + [0] * (N_VERTICES - n))


def spec_from_codes(n: int, adj: bytes | NDArray[np.uint8], codes: bytes | NDArray[np.uint8]) -> NB101Spec:
    """The :class:`NB101Spec` of packed codes (inverse of :func:`spec_codes`)."""
    matrix = np.frombuffer(bytes(adj), dtype=np.uint8).reshape(N_VERTICES, N_VERTICES)[:n, :n].astype(np.int64)
    return NB101Spec(matrix, tuple(OP_CODES[c] for c in bytes(codes)[:n]))


def parse_row(data: bytes) -> NB101Row:
    """Parse one record's data (UTF-8 JSON list, base64 protobuf) in full.

    Raises:
        ValueError: If the record does not have the official layout.
    """
    module_hash, epochs, raw_adjacency, raw_ops, raw_metrics = split_record(data)
    spec = spec_from_codes(*spec_codes(raw_adjacency, raw_ops))
    metrics = decode_model_metrics(_metrics_bytes(raw_metrics))
    if not metrics.evaluation_data:
        raise ValueError("ModelMetrics holds no evaluation")
    return NB101Row(module_hash, epochs, spec, metrics)


def encode_row(row: NB101Row) -> bytes:
    """One record's data in the official layout (inverse of :func:`parse_row`)."""
    metrics = base64.b64encode(row.metrics.SerializeToString()).decode("ascii")
    raw = [row.module_hash, row.epochs, row.spec.adjacency_string(), ",".join(row.spec.ops), metrics]
    return json.dumps(raw).encode("utf-8")


def final_evaluation(raw_metrics: str) -> tuple[int, float, float, float]:
    """``(trainable_parameters, validation, test, training_time)`` of a run's last evaluation, checked.

    Raises:
        ValueError: If the metrics are not base64, not a ``ModelMetrics`` with an evaluation, or hold
            values the format rules out (accuracies outside ``[0, 1]``, a negative or non-finite
            time, a parameter count that is not a positive int32).
    """
    metrics = decode_model_metrics(_metrics_bytes(raw_metrics))
    if not metrics.evaluation_data:
        raise ValueError("ModelMetrics holds no evaluation")
    final = metrics.evaluation_data[-1]
    params = int(metrics.trainable_parameters)
    for name, value in (("validation", final.validation_accuracy), ("test", final.test_accuracy)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(
                f"final {name} accuracy {value!r} is outside [0, 1]: the format stores fractions (0.9376 for 93.76%)"
            )
    if not (math.isfinite(final.training_time) and final.training_time >= 0):
        raise ValueError(f"training time {final.training_time!r} is not a finite non-negative number of seconds")
    if params <= 0:
        raise ValueError(f"trainable_parameters {params} is not a positive int32")
    return params, final.validation_accuracy, final.test_accuracy, final.training_time


__all__ = [
    "EPOCH_BUDGETS",
    "HEX_DIGITS",
    "OP_CODES",
    "EvaluationData",
    "ModelMetrics",
    "NB101Row",
    "decode_model_metrics",
    "encode_row",
    "final_evaluation",
    "parse_row",
    "spec_codes",
    "spec_from_codes",
    "split_record",
]
