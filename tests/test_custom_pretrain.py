"""A custom space through the tools: ``dgpo pretrain --graphs / --space MODULE:NAME``, checkpoints, PPO, the example."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

import networkx as nx
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from agents.cli import main as dgpo
from agents.diffusion.model import CheckpointError, DiffusionModel
from agents.policies import GraphDiffusionPolicy
from dgpo_env.benchmarks import CallableBenchmark
from dgpo_env.envs.graph_denoise import GraphDenoiseEnv
from dgpo_env.search_spaces import CustomSearchSpace
from dgpo_env.search_spaces.graph_files import write_graphs

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_space.py"
TINY = ["--train-steps", "4", "--batch-size", "8", "--layers", "1", "--width", "8", "--edge-width", "4", "--heads", "1"]
TINY += ["--diffusion-steps", "20", "--no-progress"]

SPACE_MODULE = """
import networkx as nx
from dgpo_env.search_spaces import CustomSearchSpace

def reaches_sink(graph):
    return None if nx.has_path(graph, 0, 3) else "the sink is not reached"

def build():
    return CustomSearchSpace(
        "flows", ["source", "sink", "map", "filter"], 4,
        node_choices={0: ["source"], 3: ["sink"], 1: ["map", "filter"], 2: ["map", "filter"]},
        rule=reaches_sink,
    )
"""


def flows(n: int = 12) -> list[nx.DiGraph]:
    rng = np.random.default_rng(0)
    graphs = []
    for _ in range(n):
        graph = nx.DiGraph()
        ops = rng.choice(["map", "filter"], size=2).tolist()
        graph.add_nodes_from([(0, {"op": "source"}), (1, {"op": ops[0]}), (2, {"op": ops[1]}), (3, {"op": "sink"})])
        graph.add_edges_from([(0, 1), (1, 2), (2, 3)] + ([(0, 2)] if rng.random() < 0.5 else []))
        graphs.append(graph)
    return graphs


def test_pretrain_on_a_graph_file_derives_the_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graphs = write_graphs(tmp_path / "flows.json", flows())
    out = tmp_path / "flows.pt"
    assert dgpo(["pretrain", "--graphs", str(graphs), "--space-name", "flows", *TINY, "--out", str(out)]) == 0
    assert '"selection": "12 given graphs"' in capsys.readouterr().out
    model = DiffusionModel.load(out)  # no rule: the space is rebuilt from the checkpoint
    assert isinstance(model.space, CustomSearchSpace) and model.space.name == "flows"
    expected = CustomSearchSpace.from_graphs(flows(), "flows")
    assert np.array_equal(model.space.flat_action_mask, expected.flat_action_mask)
    dags = model.sample(4, n_steps=5, generator=torch.Generator().manual_seed(0)).dags()
    assert all(d.n_nodes == 4 for d in dags)


def test_pretrain_with_a_python_space(tmp_path: Path) -> None:
    module = tmp_path / "my_space.py"
    module.write_text(textwrap.dedent(SPACE_MODULE))
    graphs = write_graphs(tmp_path / "flows.json", flows())
    out = tmp_path / "a.pt"
    assert dgpo(["pretrain", "--space", f"{module}:build", "--graphs", str(graphs), *TINY, "--out", str(out)]) == 0
    with pytest.raises(CheckpointError, match="validity rule"):
        DiffusionModel.load(out)  # the rule is code: the caller passes the space
    space = _load(module).build()
    assert DiffusionModel.load(out, search_space=space).space is space
    listed = tmp_path / "b.pt"  # no graphs: the space's own valid cells (it is small enough to list)
    assert dgpo(["pretrain", "--space", f"{module}:build", *TINY, "--out", str(listed)]) == 0
    assert DiffusionModel.load(listed, search_space=space).info["selection"] == "all cells"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--space", "nb999"], "expected one of nb201"),
        (["--space", "no_such_module_xyz:S"], "cannot import"),
        (["--space", "nb201", "--graphs", "{graphs}"], "not the built-in"),
        (["--graphs", "{graphs}", "--fraction", "0.5"], "every graph is used"),
        (["--graphs", "{bad}"], "graph 0"),
        (["--graphs", "{graphs}", "--max-val-acc", "80"], "max-val-acc"),
        (["--graphs", "{missing}"], "check the --graphs path"),
        (["--graphs", "{same}"], "nothing to learn"),  # one graph repeated: every position fixed
    ],
)
def test_bad_pretrain_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    graphs = write_graphs(tmp_path / "g.json", flows())
    cyclic = flows(1)[0]
    cyclic.add_edge(3, 0)
    bad = write_graphs(tmp_path / "bad.json", [cyclic])
    same = write_graphs(tmp_path / "same.json", flows(1) * 5)
    argv = [a.format(graphs=graphs, bad=bad, same=same, missing=tmp_path / "missing.json") for a in args]
    try:
        code = dgpo(["pretrain", *argv, *TINY, "--out", str(tmp_path / "x.pt")])
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code or 0)
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_ppo_trains_on_a_custom_space(tmp_path: Path) -> None:
    graphs = write_graphs(tmp_path / "flows.json", flows())
    out = tmp_path / "f.pt"
    assert dgpo(["pretrain", "--graphs", str(graphs), "--space-name", "flows", *TINY, "--out", str(out)]) == 0
    model = DiffusionModel.load(out)
    calls: list[int] = []

    def n_maps(cell: object) -> float:
        calls.append(1)
        return float(np.sum(np.asarray(cell.nodes) == model.space.node_types.index("map")))  # type: ignore[attr-defined]

    bench = CallableBenchmark(model.space, n_maps)
    env = GraphDenoiseEnv(
        benchmark=bench, n_steps=4, prior=model.noise.marginals, diffusion_steps=model.diffusion_steps
    )
    policy_kwargs = {"model": model, "task": env.task}
    agent = PPO(
        GraphDiffusionPolicy, env, n_steps=16, batch_size=8, n_epochs=1, gamma=1.0, seed=0, policy_kwargs=policy_kwargs
    )
    agent.learn(32)
    assert len(calls) == bench.n_queries >= 1


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs_end_to_end(tmp_path: Path) -> None:
    summary = _load(EXAMPLE).main(["--quick", "--workdir", str(tmp_path)])
    assert summary["queries"] == summary["score_function_calls"] == 60  # one evaluation per distinct circuit
    assert 0 < summary["best_score"] <= 100 and summary["queries_before_this_run"] == 0
    assert (tmp_path / "evaluations.sqlite").is_file() and (tmp_path / "circuit.pt").is_file()
