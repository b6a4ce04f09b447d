"""Compare DGPO with PPO, an MLP policy and classic NAS searchers at an equal query budget.

Every method looks cells up through the same benchmark interface, so the x-axis — distinct cells
whose accuracy was read (docs/benchmarks.md §2) — means the same thing for all of them. Writes a
JSON file and a PNG plot (best-so-far validation accuracy against queries) and prints a table.
The same run from the shell: ``dgpo compare --env dgpo_env/NB201-CIFAR10-v0 --algos ... ``.

Run::

    python examples/compare_methods.py --seeds 3 --max-queries 300 --out runs/compare
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agents.compare import available_methods, run_comparison


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dgpo_env/NB201-CIFAR10-v0")
    parser.add_argument("--algos", default="dgpo,ppo-mlp,rs,rea,ls", help=f"from {available_methods()}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-queries", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    parser.add_argument("--table-path", type=Path, default=None, help="extended NB201 table (adds test accuracy)")
    args = parser.parse_args()

    run_comparison(  # prints the table and writes <out>/compare_<benchmark>_<Q>q_<S>seeds_<methods>.{json,png}
        args.env,
        args.algos.split(","),
        args.seeds,
        args.max_queries,
        n_jobs=args.jobs,
        out_dir=args.out,
        table_path=args.table_path,
        resume=True,  # run again (e.g. after Ctrl-C): only the runs not finished yet (docs/harness.md)
    )


if __name__ == "__main__":
    main()
