"""A comparison's curves as TensorBoard scalars: one run directory per method.

``dgpo compare --tensorboard DIR`` (and :func:`write_tensorboard`) writes, for every method, the curves
the comparison plot draws, with the number of distinct queries as the step (docs/harness.md,
"TensorBoard"):

* ``best_val/mean``, ``best_val/p25``, ``best_val/p75``: best-so-far validation accuracy over seeds
  (percent) — the mean and the band between the 25th and 75th percentiles of the seeds;
* ``seeds_at_oracle``: the share of seeds whose best cell is at the oracle (0 to 1).

The files go to ``DIR/<comparison stem>/<method>/``; the comparison's directory is written whole in a
temporary directory beside it and then renamed into place, so an interrupted write leaves the earlier
one. Needs the ``tensorboard`` package (``pip install "dgpo-env[integrations]"``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from agents.harness.report import Comparison, curve_bands, curves_matrix
from dgpo_env.io import ensure_writable_dir

SCALARS = ("best_val/mean", "best_val/p25", "best_val/p75", "seeds_at_oracle")
"""The scalar tags written per method."""


def write_tensorboard(comparison: Comparison, log_dir: str | Path, stem: str) -> Path:
    """Write every method's curves under ``log_dir/stem/<method>/`` and return ``log_dir/stem``.

    Args:
        comparison: A (complete or partial) comparison.
        log_dir: TensorBoard's log directory (created if missing).
        stem: The comparison's name (:func:`~agents.harness.outputs.output_stem`).

    Raises:
        ImportError: If the ``tensorboard`` package is not installed (the message says how to install it).
        OSError: If ``log_dir`` cannot be written.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # torch's writer needs the tensorboard package
        raise ImportError(
            'writing TensorBoard logs needs the tensorboard package: pip install "dgpo-env[integrations]"'
        ) from err
    root = ensure_writable_dir(Path(log_dir))
    target = root / stem
    staging = Path(tempfile.mkdtemp(prefix=f".{stem}.", dir=root))
    try:
        for method, runs in comparison.runs.items():
            if not runs:
                continue
            curves = curves_matrix(runs, comparison.max_queries)  # [S, Q]
            bands = curve_bands(curves, comparison.oracle_val_acc)  # 4 x [Q]
            with SummaryWriter(log_dir=str(staging / method)) as writer:
                for tag, values in zip(SCALARS, bands, strict=True):
                    for query, value in enumerate(values.tolist(), start=1):
                        writer.add_scalar(tag, value, global_step=query)
        _replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _replace_dir(new: Path, target: Path) -> None:
    """Move the finished directory ``new`` to ``target``, replacing an earlier one only once ``new`` is whole."""
    if not target.exists():
        os.replace(new, target)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


__all__ = ["SCALARS", "write_tensorboard"]
