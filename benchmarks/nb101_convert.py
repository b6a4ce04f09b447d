"""Time and memory of the NAS-Bench-101 tfrecord conversion and of cache loads, on a synthetic file.

The official file cannot be downloaded here, so this writes a file in the official layout with
``--cells`` random valid cells x 3 seeds (the official 108-epoch file: 423,624 cells, 1,270,872
records, 499 MB), converts it, loads the cache, and extrapolates linearly to the official size.

    python benchmarks/nb101_convert.py            # official size: 423,624 cells

Writes ``benchmarks/results/nb101_convert.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from dgpo_env.benchmarks import nb101_data
from dgpo_env.benchmarks.nb101_records import EvaluationData, ModelMetrics, NB101Row, encode_row
from dgpo_env.benchmarks.tfrecord import frame_record
from dgpo_env.io import atomic_write_text
from dgpo_env.search_spaces.nb101 import NB101SearchSpace
from dgpo_env.search_spaces.nb101_params import network_params

OFFICIAL_CELLS = 423_624
OFFICIAL_BYTES = 498_972_493  # approximately: "~499 MB" (official README)


def write_synthetic(path: Path, n_cells: int, seed: int, pool: int = 500) -> int:
    """Write ``n_cells`` cells x 3 seeds in the official layout; return the number of records.

    The reader does not recompute hashes, so cells get distinct made-up hashes and reuse a pool of
    real random specs; metrics blobs are drawn from a pool too (writing stays fast).
    """
    space = NB101SearchSpace()
    rng = np.random.default_rng(seed)
    specs = [space.to_spec(space.sample_uniform(rng)) for _ in range(pool)]
    blobs = []  # blobs[k][s]: metrics of spec k, seed s
    for k in range(pool):
        per_seed = []
        for acc in rng.uniform(0.8, 0.95, size=3).tolist():
            evals = [
                EvaluationData(
                    current_epoch=epoch,
                    training_time=10.0 * epoch,
                    train_accuracy=acc,
                    validation_accuracy=acc - 0.01,
                    test_accuracy=acc - 0.02,
                )
                for epoch in (0.0, 54.0, 108.0)
            ]
            params = network_params(specs[k])
            per_seed.append(ModelMetrics(evaluation_data=evals, trainable_parameters=params, total_time=1100.0))
        blobs.append(per_seed)
    n = 0
    with path.open("wb") as fh:
        for s in range(3):
            for cell in range(n_cells):
                key = hashlib.md5(str(cell).encode(), usedforsecurity=False).hexdigest()
                k = cell % pool
                row = NB101Row(key, 108, specs[k], blobs[k][s])
                fh.write(frame_record(encode_row(row)))
                n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=OFFICIAL_CELLS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "nb101_convert.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DGPO_CACHE_DIR"] = str(Path(tmp) / "cache")
        source = Path(tmp) / "synthetic.tfrecord"
        t0 = time.perf_counter()
        n_records = write_synthetic(source, args.cells, args.seed)
        write_s = time.perf_counter() - t0
        size = source.stat().st_size
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        table = nb101_data.load_table(source)
        convert_s = time.perf_counter() - t0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert len(table) == args.cells
        nb101_data._load_cache_file.cache_clear()
        t0 = time.perf_counter()
        nb101_data.load_table(source)
        load_s = time.perf_counter() - t0
        cache_bytes = sum(p.stat().st_size for p in (Path(tmp) / "cache").glob("*.npz"))
    scale = OFFICIAL_CELLS / args.cells
    result = {
        "cells": args.cells,
        "records": n_records,
        "file_mb": size / 1e6,
        "write_s": write_s,
        "convert_s": convert_s,
        "convert_mb_per_s": size / 1e6 / convert_s,
        "peak_rss_mb_before": rss0,
        "peak_rss_mb_after_convert": rss1,
        "cache_load_s": load_s,
        "cache_mb": cache_bytes / 1e6,
        "extrapolated_official": {
            "convert_s_by_records": convert_s * scale,
            "convert_s_by_bytes": convert_s * OFFICIAL_BYTES / size,
            "cache_mb": cache_bytes / 1e6 * scale,
            "cache_load_s": load_s * scale,
            "conversion_rss_growth_mb": (rss1 - rss0) * scale,
        },
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
