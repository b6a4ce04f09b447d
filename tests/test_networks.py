"""Networks built from cells: shapes, cell semantics and argument checks (docs/networks.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nb101_cells import C1, C3, INCEPTION, MP

from dgpo_env.benchmarks import ToyBenchmark
from dgpo_env.networks import (
    NB101Network,
    NB201Cell,
    NB201Network,
    count_params,
    n_parameters,
    nb101_network,
    nb101_param_count,
    nb201_network,
    nb201_param_count,
    to_torch,
)
from dgpo_env.networks.nb101 import NB101Module
from dgpo_env.search_spaces import DAG, NB101SearchSpace, NB201SearchSpace, ToySearchSpace
from dgpo_env.search_spaces.nb101 import NB101Spec

DENSE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|skip_connect~1|avg_pool_3x3~2|"


@pytest.mark.parametrize(
    ("cell", "dataset", "size", "classes"),
    [(DENSE, "cifar10", 32, 10), (MIXED, "cifar100", 32, 100), (DENSE, "imagenet16", 16, 120)],
)
def test_nb201_forward_and_backward(cell: str, dataset: str, size: int, classes: int) -> None:
    torch.manual_seed(0)
    net = to_torch(cell, "nb201", dataset=dataset)
    assert isinstance(net, NB201Network) and net.arch_str == cell and net.num_classes == classes
    logits = net(torch.randn(4, 3, size, size))
    assert logits.shape == (4, classes) and torch.isfinite(logits).all()
    logits.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in net.classifier.parameters())
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, size, size)).shape == (1, classes)


def test_nb201_cell_computes_sums_over_edges() -> None:
    """x1 = op01(x0); x2 = op02(x0) + op12(x1); x3 = op03(x0) + op13(x1) + op23(x2)."""
    x = torch.randn(2, 4, 6, 6)
    skip_all = NB201Cell(["skip_connect"] * 6, 4)
    # x1 = x, x2 = 2x, x3 = x + x + 2x
    torch.testing.assert_close(skip_all(x), 4 * x)
    only_last = NB201Cell(["none", "none", "none", "none", "none", "skip_connect"], 4)
    torch.testing.assert_close(only_last(x), torch.zeros_like(x))  # x2 = 0
    direct = NB201Cell(["none", "none", "none", "skip_connect", "none", "none"], 4)
    torch.testing.assert_close(direct(x), x)
    pool = NB201Cell(["none", "none", "none", "avg_pool_3x3", "none", "none"], 4)
    ones = torch.ones(1, 4, 5, 5)
    torch.testing.assert_close(pool(ones), ones)  # padded positions are not counted


def test_nb201_network_layout() -> None:
    net = nb201_network(DENSE)
    cells = [m for m in net.cells if isinstance(m, NB201Cell)]
    assert len(cells) == 15 and len(net.cells) == 17
    assert net.stem[0].out_channels == 16 and net.classifier.in_features == 64
    small = nb201_network(DENSE, 7, channels=4, cells_per_stage=1)
    assert small(torch.randn(2, 3, 8, 8)).shape == (2, 7)
    assert n_parameters(small) == nb201_param_count(DENSE, 7, channels=4, cells_per_stage=1)
    assert n_parameters(small) < count_params(DENSE, num_classes=7)


def test_nb201_accepts_every_cell_form() -> None:
    space = NB201SearchSpace()
    dag = space.from_arch_str(DENSE)
    counts = {count_params(DENSE), count_params(dag), count_params(space.ops(dag)), count_params(dag, space)}
    assert len(counts) == 1
    assert to_torch(dag).arch_str == DENSE


def test_nb101_forward_and_backward() -> None:
    torch.manual_seed(0)
    net = to_torch(INCEPTION, "nb101")
    assert isinstance(net, NB101Network) and net.num_classes == 10
    logits = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    small = nb101_network(INCEPTION, 5, stem_channels=8, n_stacks=2, modules_per_stack=1)
    assert small(torch.randn(3, 3, 9, 9)).shape == (3, 5)  # odd sides: the max-pool rounds up


def test_nb101_module_channels_and_truncation() -> None:
    # 3 vertices feed the output: 43 + 43 + 42 = 128; vertex 1 also feeds vertex 3 (truncated 43 -> 42)
    m = np.array(
        [
            [0, 1, 1, 0, 0],
            [0, 0, 0, 1, 1],
            [0, 0, 0, 0, 1],
            [0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0],
        ]
    )
    spec = NB101Spec(m, ("input", C3, C1, MP, "output"))
    module = NB101Module(spec, 64, 128)
    assert module.channels == [64, 43, 43, 42, 128]
    assert module.output_projection is None and set(module.projections) == {"1", "2"}
    out = module(torch.randn(2, 64, 8, 8))
    assert out.shape == (2, 128, 8, 8)
    # the max-pool vertex 3 sees the first 42 channels of vertex 1: its output is channels 86..127
    with torch.no_grad():
        x = torch.randn(1, 64, 4, 4)
        v1 = module.ops[0](module.projections["1"](x))
        torch.testing.assert_close(module(x)[:, 86:], torch.nn.functional.max_pool2d(v1[:, :42], 3, 1, 1))


def test_nb101_input_to_output_cell_is_a_projection() -> None:
    spec = NB101Spec(np.array([[0, 1], [0, 0]]), ("input", "output"))
    module = NB101Module(spec, 16, 32)
    assert module(torch.randn(1, 16, 4, 4)).shape == (1, 32, 4, 4)
    assert n_parameters(module) == 16 * 32 + 2 * 32


def test_nb101_prunes_dead_vertices() -> None:
    space = NB101SearchSpace()
    dag = space.from_spec(INCEPTION)  # 7 nodes; a smaller spec would leave dead nodes to prune
    assert count_params(dag) == count_params(INCEPTION) == 2_694_282
    small = NB101Spec(np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]]), ("input", C3, "output"))
    dag = space.from_spec(small)  # dead vertices 2..5 in the 7-node DAG
    assert count_params(dag, "nb101") == count_params(small)
    assert len(to_torch(dag).spec.ops) == 3


# ---------------------------------------------------------------------------------------------- arguments
def test_num_classes_and_dataset_checks() -> None:
    with pytest.raises(TypeError, match="num_classes must be an integer"):
        to_torch(DENSE, num_classes=True)
    with pytest.raises(TypeError, match="num_classes must be an integer"):
        count_params(DENSE, num_classes=10.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        to_torch(DENSE, num_classes=0)
    with pytest.raises(ValueError, match="contradicts dataset 'cifar100'"):
        to_torch(DENSE, dataset="cifar100", num_classes=10)
    with pytest.raises(ValueError, match="unknown nb201 dataset 'imagenet'"):
        to_torch(DENSE, dataset="imagenet")
    with pytest.raises(ValueError, match="unknown nb101 dataset 'cifar100'"):
        to_torch(INCEPTION, dataset="cifar100")
    with pytest.raises(TypeError, match="dataset must be a string"):
        to_torch(DENSE, dataset=10)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="channels must be an integer"):
        nb201_network(DENSE, channels=16.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stem_channels must be an integer"):
        nb101_network(INCEPTION, stem_channels=False)


def test_search_space_checks() -> None:
    with pytest.raises(ValueError, match="unknown search space 'nb301'"):
        to_torch(DENSE, "nb301")
    with pytest.raises(ValueError, match="'toy' search space has no network"):
        to_torch(DENSE, ToySearchSpace())
    with pytest.raises(ValueError, match="'toy' search space has no network"):
        to_torch(DENSE, ToyBenchmark())
    with pytest.raises(TypeError, match="search_space must be 'nb201', 'nb101'"):
        to_torch(DENSE, 201)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="an NB101Spec is not an NB201 cell"):
        to_torch(INCEPTION, "nb201")
    with pytest.raises(TypeError, match="an NB101 cell must be an NB101Spec"):
        to_torch(DENSE, "nb101")
    with pytest.raises(ValueError, match="cannot tell the search space of a 6-node DAG"):
        to_torch(DAG(np.zeros(6), np.zeros(15)))
    with pytest.raises(ValueError, match="NB201 cells have 8 nodes"):
        to_torch(DAG(np.zeros(7), np.zeros(21)), "nb201")


def test_benchmark_sets_the_space_and_classes() -> None:
    from dgpo_env.benchmarks import NB201Benchmark

    bench = NB201Benchmark("cifar100")
    cell = bench.search_space.from_arch_str(MIXED)
    net = to_torch(cell, bench)
    assert isinstance(net, NB201Network) and net.num_classes == 100
    assert n_parameters(net) == round(bench.peek(cell).params_m * 1e6)
    with pytest.raises(ValueError, match="contradicts the benchmark's dataset 'cifar100'"):
        to_torch(cell, bench, dataset="cifar10")


def test_invalid_cells_are_refused() -> None:
    with pytest.raises(ValueError, match="not an NB201 arch string"):
        to_torch("|conv~0|+|")
    with pytest.raises(ValueError, match="unknown NB201 ops"):
        to_torch(["nor_conv_5x5"] * 6)
    with pytest.raises(ValueError, match="has 6 ops"):
        count_params(["none"] * 5)
    with pytest.raises(TypeError, match="an NB201 cell must be an arch string"):
        nb201_network(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="an NB201 cell must be an arch string"):
        to_torch(42)  # type: ignore[arg-type]
    disconnected = NB101Spec(np.zeros((3, 3), dtype=int), ("input", C3, "output"))
    with pytest.raises(ValueError, match="not connected"):
        to_torch(disconnected)
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module"):
        n_parameters("net")  # type: ignore[arg-type]


def test_wrong_input_shapes_are_refused() -> None:
    net = nb201_network(MIXED, channels=4, cells_per_stage=1)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 3, 30, 30))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        net(torch.randn(3, 32, 32))
    small = nb101_network(INCEPTION, stem_channels=4, n_stacks=1, modules_per_stack=1)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        small(torch.randn(1, 1, 32, 32))


def test_forward_of_sampled_cells() -> None:
    """Cells drawn from the search spaces, built with the space inferred from the DAG; ImageNet16 at 16x16."""
    rng = np.random.default_rng(1)
    nb201, nb101 = NB201SearchSpace(), NB101SearchSpace()
    for dataset, size in (("cifar10", 32), ("imagenet16", 16)):
        dag = nb201.sample_uniform(rng)
        net = to_torch(dag, dataset=dataset)
        assert net(torch.randn(2, 3, size, size)).shape == (2, 10 if dataset == "cifar10" else 120)
    for _ in range(2):
        dag = nb101.sample_uniform(rng)
        small = nb101_network(dag, stem_channels=16)  # the benchmark's 128 would be 64x the arithmetic
        assert n_parameters(small) == nb101_param_count(dag, stem_channels=16)
        assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)
