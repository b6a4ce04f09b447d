"""The graph-transformer denoiser: shapes, masks, direction awareness, permutation behaviour."""

from __future__ import annotations

import pytest
import torch
from torch.nn.functional import one_hot

from agents.diffusion.denoiser import DenoiserConfig, GraphTransformerDenoiser
from dgpo_env.search_spaces import NB201SearchSpace, ToySearchSpace
from dgpo_env.search_spaces.dag import edge_position

SMALL = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)


def _net(space: object, config: DenoiserConfig = SMALL, seed: int = 0) -> GraphTransformerDenoiser:
    torch.manual_seed(seed)
    return GraphTransformerDenoiser.for_space(space, config).eval()  # type: ignore[arg-type]


def _toy_input(nodes: list[int], edge_list: list[tuple[int, int]], n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    edges = torch.zeros(n * (n - 1) // 2, dtype=torch.long)
    for i, j in edge_list:
        edges[edge_position(i, j, n)] = 1
    return one_hot(torch.tensor([nodes]), 5).float(), one_hot(edges[None], 2).float()


def test_output_shapes_and_masks_nb201() -> None:
    space = NB201SearchSpace()
    net = _net(space)
    gen = torch.Generator().manual_seed(0)
    x = one_hot(torch.randint(0, 7, (5, 8), generator=gen), 7).float()
    e = one_hot(torch.randint(0, 2, (5, 28), generator=gen), 2).float()
    node_logits, edge_logits = net(x, e, torch.rand(5, generator=gen))
    assert node_logits.shape == (5, 8, 7) and edge_logits.shape == (5, 28, 2)
    node_allowed, edge_allowed = (torch.from_numpy(a.copy()) for a in space.allowed)
    assert torch.isneginf(node_logits[:, ~node_allowed]).all()
    assert torch.isfinite(node_logits[:, node_allowed]).all()
    assert torch.isneginf(edge_logits[:, ~edge_allowed]).all()
    probs = node_logits.softmax(-1)
    assert torch.equal(probs[:, 0, 0], torch.ones(5)) and torch.equal(probs[:, 7, 1], torch.ones(5))
    torch.testing.assert_close(probs.sum(-1), torch.ones(5, 8))
    # the loss against allowed targets is finite and back-propagates without NaN
    target = torch.tensor([0, 2, 3, 4, 5, 6, 2, 1]).expand(5, 8)
    loss = torch.nn.functional.cross_entropy(node_logits.reshape(-1, 7), target.reshape(-1))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_time_changes_the_prediction() -> None:
    net = _net(ToySearchSpace())
    x, e = _toy_input([0, 2, 3, 4, 2, 1], [(0, 1), (1, 5)])
    a, _ = net(x, e, torch.tensor([0.1]))
    b, _ = net(x, e, torch.tensor([0.9]))
    assert (a[0, 1:5, 2:] - b[0, 1:5, 2:]).abs().max() > 1e-4  # the finite (op) logits of the inner nodes


def test_direction_aware_without_positional_encoding() -> None:
    """Without positional encoding, a lone edge 0 -> 1 between equal nodes still tells source from sink."""
    cfg = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8, positional_encoding=False)
    net = _net(ToySearchSpace(), cfg)
    net.node_allowed = torch.ones(6, 5, dtype=torch.bool)  # compare all logits of nodes 0 and 1
    x, e = _toy_input([2, 2, 2, 2, 2, 2], [(0, 1)])
    node_logits, _ = net(x, e, torch.tensor([0.5]))
    assert (node_logits[0, 0] - node_logits[0, 1]).abs().max() > 1e-4
    # the edge reaches the nodes: adding it changes node 0's prediction
    x, e_empty = _toy_input([2, 2, 2, 2, 2, 2], [])
    empty_logits, _ = net(x, e_empty, torch.tensor([0.5]))
    assert (node_logits[0, 0] - empty_logits[0, 0]).abs().max() > 1e-4


def test_trunk_is_permutation_equivariant() -> None:
    """The layers carry no hidden order: permuting nodes and both grid axes permutes the output."""
    net = _net(ToySearchSpace())
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 6, 16, generator=gen)
    e = torch.randn(2, 6, 6, 8, generator=gen)
    temb = torch.randn(2, 16, generator=gen)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    x_out, e_out = net.trunk(x, e, temb)
    xp_out, ep_out = net.trunk(x[:, perm], e[:, perm][:, :, perm], temb)
    torch.testing.assert_close(xp_out, x_out[:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ep_out, e_out[:, perm][:, :, perm], atol=1e-5, rtol=1e-5)


def test_positional_encoding_changes_the_prediction() -> None:
    x, e = _toy_input([0, 2, 2, 2, 2, 1], [])
    cfg_off = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8, positional_encoding=False)
    with_pe, _ = _net(ToySearchSpace(), SMALL, seed=1)(x, e, torch.tensor([0.5]))
    without, _ = _net(ToySearchSpace(), cfg_off, seed=1)(x, e, torch.tensor([0.5]))  # same weights, no encoding
    assert (with_pe[0, 1:5, 2:] - without[0, 1:5, 2:]).abs().max() > 1e-4


def test_config_and_input_validation() -> None:
    with pytest.raises(ValueError, match="must divide"):
        DenoiserConfig(hidden_dim=10, n_heads=4)
    with pytest.raises(ValueError, match="n_layers"):
        DenoiserConfig(n_layers=0)
    assert DenoiserConfig.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ValueError, match="unknown DenoiserConfig fields"):
        DenoiserConfig.from_dict({"width": 3})
    net = _net(ToySearchSpace())
    x, e = _toy_input([0, 2, 3, 4, 2, 1], [])
    with pytest.raises(ValueError, match="nodes must be"):
        net(x[:, :5], e, torch.tensor([0.5]))
    with pytest.raises(ValueError, match="t_frac"):
        net(x, e, torch.tensor([0.5, 0.2]))


def test_default_size_is_small() -> None:
    net = GraphTransformerDenoiser.for_space(NB201SearchSpace())
    assert 50_000 < net.n_parameters() < 1_000_000
