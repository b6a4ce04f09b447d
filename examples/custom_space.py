"""Your own DAG problem end to end: design a logic circuit with graph diffusion and DGPO.

The problem (not neural-architecture search): wire a circuit of 5 gates over 4 input bits ``a, b, c, d``
that computes the target Boolean function ``f = (a AND b) OR (c XOR d)``.

* **Search space** (:class:`~dgpo_env.search_spaces.CustomSearchSpace` ``"circuit"``): 10 nodes in
  topological order: nodes 0-3 are the inputs (fixed type ``input``), nodes 4-8 gates (``AND``, ``OR``,
  ``XOR``, ``NAND``), node 9 the output (fixed type ``output``). Inputs take no wires from each other and
  the output reads the last gate only (fixed edges); the other 30 wires (input -> gate, gate -> later
  gate) are free. Validity rule: every gate has at least one input wire.
* **Score** (cheap, deterministic): the circuit is simulated on all 16 input rows; a gate applies its
  function to all its input wires (``AND``/``OR``: all/any, ``XOR``: parity, ``NAND``: not all; one wire
  gives a buffer, or NOT for ``NAND``), the output copies the last gate. The score is the percentage of
  rows on which the output equals ``f`` (100 = a correct circuit); ``extra`` holds the gate count.
* **Evaluation through the ledger**: the score is a :class:`~dgpo_env.benchmarks.CallableBenchmark`
  over a :class:`~dgpo_env.ledger.SQLiteLedger` file, so running the script again with the same
  ``--workdir`` answers every circuit scored before from the file, without calling the function.

Steps: write 2,000 random valid circuits to a JSON graph file (the "user's graphs"), pretrain the
diffusion model on them with ``dgpo pretrain --space examples/custom_space.py:build_space --graphs ...``,
fine-tune it with DGPO on the circuit score, and print the best circuit and the mean score of fresh
samples before and after. ``--quick`` shortens every step (the CI test uses it).

Run::

    python examples/custom_space.py                 # about 40 s on one core
    python examples/custom_space.py --quick         # about 15 s
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch

from dgpo_env.benchmarks import CallableBenchmark
from dgpo_env.ledger import SQLiteLedger
from dgpo_env.search_spaces import DAG, CustomSearchSpace
from dgpo_env.search_spaces.graph_files import write_graphs

N_INPUTS = 4
N_GATES = 5
GATES: tuple[str, ...] = ("AND", "OR", "XOR", "NAND")
OUTPUT = N_INPUTS + N_GATES  # node 9
LR = 1e-3
ROWS = np.array(list(itertools.product((0, 1), repeat=N_INPUTS)), dtype=bool)  # [16, 4]: a, b, c, d
TARGET = (ROWS[:, 0] & ROWS[:, 1]) | (ROWS[:, 2] ^ ROWS[:, 3])  # [16]: f(a, b, c, d)


def circuit_rule(graph: nx.DiGraph) -> str | None:
    """Validity: every gate has at least one input wire (``None`` = valid)."""
    for gate in range(N_INPUTS, OUTPUT):
        if graph.in_degree(gate) == 0:
            return f"gate {gate} has no input wire"
    return None


def build_space() -> CustomSearchSpace:
    """The circuit search space (also the ``--space examples/custom_space.py:build_space`` entry point)."""
    inputs, gates = range(N_INPUTS), range(N_INPUTS, OUTPUT)
    node_choices = {i: ["input"] for i in inputs} | {g: list(GATES) for g in gates} | {OUTPUT: ["output"]}
    no_edge = ["none"]
    edge_choices = {(i, j): no_edge for i, j in itertools.combinations(inputs, 2)}
    edge_choices |= {(i, OUTPUT): no_edge for i in range(OUTPUT - 1)}  # the output reads the last gate only
    edge_choices[(OUTPUT - 1, OUTPUT)] = ["edge"]
    return CustomSearchSpace(
        "circuit",
        ["input", "output", *GATES],
        n_nodes=OUTPUT + 1,
        node_choices=node_choices,
        edge_choices=edge_choices,
        rule=circuit_rule,
    )


def simulate(space: CustomSearchSpace, cell: DAG) -> np.ndarray:
    """``bool[16]``: the circuit's output on every input row."""
    adjacency = cell.adjacency()  # [N, N], edge i -> j above the diagonal
    values = np.zeros((len(ROWS), space.n_nodes), dtype=bool)
    values[:, :N_INPUTS] = ROWS
    for node in range(N_INPUTS, space.n_nodes):
        wires = values[:, np.flatnonzero(adjacency[:, node])]  # [16, fan-in]
        kind = space.node_types[int(cell.nodes[node])]
        if kind == "output":
            values[:, node] = wires[:, 0]
        elif kind == "AND":
            values[:, node] = wires.all(1)
        elif kind == "OR":
            values[:, node] = wires.any(1)
        elif kind == "XOR":
            values[:, node] = wires.sum(1) % 2 == 1
        else:  # NAND
            values[:, node] = ~wires.all(1)
    return values[:, OUTPUT]


def make_score(space: CustomSearchSpace, calls: list[int]) -> Any:
    """The evaluation function: percent of rows where the circuit computes ``f``; counts its calls."""

    def circuit_score(cell: DAG) -> Mapping[str, Any]:
        calls[0] += 1
        correct = float(np.mean(simulate(space, cell) == TARGET))
        return {"score": 100.0 * correct, "gates_wired": int(np.count_nonzero(cell.adjacency()[N_INPUTS:OUTPUT]))}

    return circuit_score


def mean_sample_score(model: Any, space: CustomSearchSpace, n_steps: int, n: int = 200) -> tuple[float, float]:
    """Mean score (0 for an invalid circuit) and valid share of ``n`` fresh samples.

    Analysis only: it simulates the circuits directly, outside the benchmark, so it is not counted.
    """
    samples = model.sample(n, n_steps=n_steps, generator=torch.Generator().manual_seed(1))
    valid = [space.validate(dag) is None for dag in samples.dags()]
    scores = [
        100.0 * np.mean(simulate(space, d) == TARGET) if ok else 0.0
        for d, ok in zip(samples.dags(), valid, strict=True)
    ]
    return float(np.mean(scores)), float(np.mean(valid))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the example; returns the printed summary (the CI test reads it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short pretraining and fine-tuning (CI)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the graphs, checkpoint and ledger here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        return run(workdir, args.quick, args.seed)


def run(workdir: Path, quick: bool, seed: int) -> dict[str, Any]:
    """Every step of the example in ``workdir``."""
    from agents.cli import main as dgpo_cli
    from agents.dgpo import make_dgpo
    from agents.diffusion.model import DiffusionModel

    start = time.perf_counter()
    space = build_space()
    print(f"search space: {space}")

    # 1. The user's graphs: random valid circuits as networkx graphs in a JSON graph file.
    rng = np.random.default_rng(seed)
    graphs = [space.to_networkx(space.sample_uniform(rng)) for _ in range(500 if quick else 2000)]
    graph_file = write_graphs(workdir / "circuits.json", graphs)

    # 2. Pretrain on them with the CLI, the space given as a Python entry point.
    checkpoint = workdir / "circuit.pt"
    steps = "150" if quick else "600"
    net = ["--layers", "2", "--width", "32", "--edge-width", "16", "--heads", "2", "--batch-size", "64", "--lr", "2e-3"]
    dgpo_cli(
        ["pretrain", "--space", f"{Path(__file__)}:build_space", "--graphs", str(graph_file),
         "--train-steps", steps, "--seed", str(seed), "--no-progress", "--out", str(checkpoint), *net]
    )  # fmt: skip
    model = DiffusionModel.load(checkpoint, search_space=space)

    # 3. The score as a benchmark whose results persist in a SQLite ledger.
    calls = [0]
    ledger = SQLiteLedger(workdir / "evaluations.sqlite")
    known_before = ledger.n_queries
    benchmark = CallableBenchmark(space, make_score(space, calls), ledger=ledger)
    n_steps, max_queries = 10, (60 if quick else 300)
    ledger.set_budget(known_before + max_queries)  # this run may add max_queries circuits to the file
    before = mean_sample_score(model, space, n_steps)

    # 4. Fine-tune with DGPO on the score (the environment is built on the benchmark, no gym id needed).
    agent = make_dgpo(
        "published", model, None, benchmark=benchmark, n_steps=n_steps, seed=seed, learning_rate=LR,
        batch_size=16, max_queries=known_before + max_queries, env_kwargs={"reward_scale": "percent"},
    )  # fmt: skip
    agent.learn(agent.timesteps_for_epochs(10 if quick else 40))
    after = mean_sample_score(agent.policy.model, space, n_steps)

    best = agent.best or {}
    summary = {
        "best_circuit": best.get("cell"),
        "best_score": best.get("val_acc"),
        "queries": benchmark.n_queries,
        "queries_before_this_run": known_before,
        "score_function_calls": calls[0],
        "mean_sample_score_before": round(before[0], 2),
        "mean_sample_score_after": round(after[0], 2),
        "valid_share_before": round(before[1], 3),
        "valid_share_after": round(after[1], 3),
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
