"""The discrete noise process (docs/diffusion.md §3-§5): transitions, posterior, reverse step, striding, clamping."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dgpo_env.diffusion.marginals import Marginals
from dgpo_env.diffusion.noise import (
    NoiseProcess,
    categorical_log_prob,
    forward_probs,
    keep_rate,
    posterior_probs,
    reverse_step_probs,
    sample_categorical,
    transition_matrices,
)
from dgpo_env.diffusion.schedule import cosine_alpha_bar
from dgpo_env.search_spaces import NB201SearchSpace, ToySearchSpace

T = 20
DT = torch.float64
# three positions, four types; position 1 never takes type 3, position 2 is fixed to type 2
MARGINALS = torch.tensor(
    [[0.1, 0.2, 0.3, 0.4], [0.5, 0.25, 0.25, 0.0], [0.0, 0.0, 1.0, 0.0]],
    dtype=DT,
)


@pytest.fixture(scope="module")
def alpha_bar() -> torch.Tensor:
    return torch.from_numpy(cosine_alpha_bar(T))


def _q(alpha_bar: torch.Tensor, t: int, s: int) -> torch.Tensor:
    """Q̄_{t|s} as [P, K, K] from the closed form."""
    return transition_matrices(keep_rate(alpha_bar[t : t + 1], alpha_bar[s : s + 1]), MARGINALS)[0]


def test_transition_rows_sum_to_one(alpha_bar: torch.Tensor) -> None:
    keep = torch.tensor([0.0, 0.3, 1.0], dtype=DT)
    q = transition_matrices(keep, MARGINALS)
    assert q.shape == (3, 3, 4, 4)
    torch.testing.assert_close(q.sum(-1), torch.ones(3, 3, 4, dtype=DT))
    assert (q >= 0).all()
    # keep = 0 is the prior: every row equals m; keep = 1 is the identity
    torch.testing.assert_close(q[0], MARGINALS[:, None, :].expand(3, 4, 4))
    torch.testing.assert_close(q[2], torch.eye(4, dtype=DT).expand(3, 4, 4))


def test_cumulative_matrix_is_product_of_steps(alpha_bar: torch.Tensor) -> None:
    for t in (1, 5, 13, T):
        product = torch.eye(4, dtype=DT).expand(3, 4, 4)
        for step in range(1, t + 1):
            product = product @ _q(alpha_bar, step, step - 1)
        torch.testing.assert_close(product, _q(alpha_bar, t, 0), atol=1e-12, rtol=0)
    # Q̄_{t|s} composes the steps s+1..t as well (striding)
    product = _q(alpha_bar, 7, 3) @ _q(alpha_bar, 15, 7)
    torch.testing.assert_close(product, _q(alpha_bar, 15, 3), atol=1e-12, rtol=0)


def test_forward_probs_match_matrix_rows(alpha_bar: torch.Tensor) -> None:
    x0 = torch.tensor([[3, 1, 2], [0, 2, 2]])
    ab = alpha_bar[[4, 11]]
    probs = forward_probs(x0, ab, MARGINALS)
    for b, t in enumerate((4, 11)):
        q = _q(alpha_bar, t, 0)
        for p in range(3):
            torch.testing.assert_close(probs[b, p], q[p, x0[b, p]])
    # at T the forward distribution is the prior
    torch.testing.assert_close(forward_probs(x0, alpha_bar[[T, T]], MARGINALS), MARGINALS.expand(2, 3, 4))


def test_posterior_equals_brute_force_bayes(alpha_bar: torch.Tensor) -> None:
    for t, s in ((1, 0), (6, 5), (12, 4), (T, 9)):
        q_ts, q_s, q_t = _q(alpha_bar, t, s), _q(alpha_bar, s, 0), _q(alpha_bar, t, 0)
        cases = [
            (x0, xt)
            for x0, xt in itertools.product(range(4), repeat=2)
            if (q_t[:2, x0, xt] > 0).all()  # x_t reachable from x_0 at positions 0 and 1
        ]
        x0 = torch.tensor([[a, a, 2] for a, _ in cases])
        xt = torch.tensor([[b, b, 2] for _, b in cases])
        batch = len(cases)
        post = posterior_probs(xt, x0, alpha_bar[[t] * batch], alpha_bar[[s] * batch], MARGINALS)
        torch.testing.assert_close(post.sum(-1), torch.ones(batch, 3, dtype=DT))
        for b, (a, c) in enumerate(cases):
            for p in range(2):
                # Bayes: q(x_s | x_t, x_0) = q(x_t | x_s) q(x_s | x_0) / q(x_t | x_0)
                brute = q_ts[p, :, c] * q_s[p, a, :] / q_t[p, a, c]
                torch.testing.assert_close(post[b, p], brute, atol=1e-12, rtol=0)
            assert post[b, 2, 2] == 1.0  # the fixed position stays


def test_posterior_rejects_unreachable_state(alpha_bar: torch.Tensor) -> None:
    # position 1 has m[3] = 0, so x_t = 3 is only reachable from x_0 = 3
    with pytest.raises(ValueError, match="cannot be reached"):
        posterior_probs(torch.tensor([[0, 3, 2]]), torch.tensor([[0, 0, 2]]), alpha_bar[[5]], alpha_bar[[2]], MARGINALS)


def test_reverse_step_mixes_posteriors_by_clean_probs(alpha_bar: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(0)
    xt = torch.tensor([[0, 1, 2], [3, 2, 2]])
    x0_probs = torch.rand(2, 3, 4, generator=gen, dtype=DT)
    x0_probs[:, 1, 3] = 0.0  # consistent with position 1's support
    x0_probs[:, 2] = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=DT)
    x0_probs /= x0_probs.sum(-1, keepdim=True)
    t, s = 9, 3
    probs = reverse_step_probs(xt, x0_probs, alpha_bar[[t, t]], alpha_bar[[s, s]], MARGINALS)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, dtype=DT))
    q_ts, q_s = _q(alpha_bar, t, s), _q(alpha_bar, s, 0)
    for b, p in itertools.product(range(2), range(3)):
        # brute force p(x_s | x_t) = Σ_k p̂(k) q(x_t | x_s) q(x_s | k) / q(x_t | k)
        c = xt[b, p]
        expected = sum(
            x0_probs[b, p, k] * q_ts[p, :, c] * q_s[p, k, :] / (q_s[p, k, :] @ q_ts[p, :, c]) for k in range(4)
        )
        torch.testing.assert_close(probs[b, p], expected, atol=1e-12, rtol=0)


def test_reverse_step_zero_normaliser_is_safe(alpha_bar: torch.Tensor) -> None:
    # x_t = 3 at position 1 is unreachable from any x_0 != 3; p̂ puts all its mass there
    xt = torch.tensor([[0, 3, 2]])
    x0_probs = torch.tensor([[[0.25] * 4, [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]], dtype=DT, requires_grad=True)
    probs = reverse_step_probs(xt, x0_probs, alpha_bar[[8]], alpha_bar[[2]], MARGINALS)
    assert torch.isfinite(probs).all()
    torch.testing.assert_close(probs[0, 1], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=DT))  # stays at x_t
    probs[0, 0, 1].backward()
    assert torch.isfinite(x0_probs.grad).all()
    # with some mass on x_0 = 3 the step is the posterior given x_0 = 3
    x0_probs2 = torch.tensor([[[0.25] * 4, [0.4, 0.4, 0.0, 0.2], [0.0, 0.0, 1.0, 0.0]]], dtype=DT)
    probs2 = reverse_step_probs(xt, x0_probs2, alpha_bar[[8]], alpha_bar[[2]], MARGINALS)
    expected = posterior_probs(xt, torch.tensor([[0, 3, 2]]), alpha_bar[[8]], alpha_bar[[2]], MARGINALS)
    torch.testing.assert_close(probs2[0, 1], expected[0, 1])


def test_sample_categorical_frequencies_and_support() -> None:
    gen = torch.Generator().manual_seed(1)
    probs = torch.tensor([0.5, 0.0, 0.3, 0.2, 0.0], dtype=DT).expand(20_000, 1, 5)
    draws = sample_categorical(probs, gen)[:, 0]
    freq = torch.bincount(draws, minlength=5).to(DT) / draws.numel()
    assert freq[1] == 0 and freq[4] == 0
    torch.testing.assert_close(freq, probs[0, 0], atol=0.015, rtol=0)
    lp = categorical_log_prob(probs[:3], draws[:3, None])
    torch.testing.assert_close(lp, torch.log(probs[0, 0, draws[:3]]))


def _bayes_oracle(target: torch.Tensor, xt: torch.Tensor, ab_t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Exact p(x_0 | x_t) when x_0 ~ target independently per position."""
    onehot_rows = torch.eye(m.shape[1], dtype=DT)
    like = ab_t[:, None, None] * onehot_rows[xt] + (1 - ab_t[:, None, None]) * torch.gather(
        m[None].expand(xt.shape[0], -1, -1), 2, xt[:, :, None]
    )  # [B, P, K0] = q(x_t | x_0 = k)
    post = target[None] * like
    return post / post.sum(-1, keepdim=True)


@pytest.mark.parametrize("n_steps", [T, 4, 1])
def test_strided_sampling_matches_target_distribution(alpha_bar: torch.Tensor, n_steps: int) -> None:
    """With the exact Bayes oracle, reverse diffusion with any stride samples the data distribution."""
    space = ToySearchSpace()
    noise = NoiseProcess.from_marginals(space, Marginals.uniform(space), diffusion_steps=T)
    node_target = torch.zeros(6, 5, dtype=DT)
    node_target[0, 0] = node_target[5, 1] = 1.0
    node_target[1:5, 2:] = torch.tensor([0.7, 0.2, 0.1], dtype=DT)
    edge_target = torch.tensor([0.9, 0.1], dtype=DT).expand(15, 2)
    gen = torch.Generator().manual_seed(2)
    batch = 4000
    nodes, edges = noise.prior_sample(batch, gen)
    times = noise.step_schedule(n_steps)
    for t, s in zip(times[:-1].tolist(), times[1:].tolist(), strict=True):
        ab_t = noise.alpha_bar_at(t, batch)
        px = _bayes_oracle(node_target, nodes, ab_t, noise.node_marginals)
        pe = _bayes_oracle(edge_target, edges, ab_t, noise.edge_marginals)
        node_probs, edge_probs = noise.reverse_step_probs(nodes, edges, px, pe, t, s)
        nodes, edges = sample_categorical(node_probs, gen), sample_categorical(edge_probs, gen)
    node_freq = torch.nn.functional.one_hot(nodes, 5).to(DT).mean(0)
    edge_freq = torch.nn.functional.one_hot(edges, 2).to(DT).mean(0)
    # 4000 draws: binomial standard error <= 0.008, so 0.035 is > 4 sigma
    torch.testing.assert_close(node_freq, node_target, atol=0.035, rtol=0)
    torch.testing.assert_close(edge_freq, edge_target, atol=0.035, rtol=0)


def test_clamped_entries_never_change() -> None:
    space = NB201SearchSpace()
    noise = NoiseProcess.from_marginals(space, diffusion_steps=30)
    gen = torch.Generator().manual_seed(3)
    fixed = torch.from_numpy(space.fixed_mask.copy())
    fixed_values = torch.from_numpy(space.fixed_values.copy())
    batch = 64
    nodes, edges = noise.prior_sample(batch, gen)
    for t, s in zip(range(30, 0, -1), range(29, -1, -1), strict=True):
        flat = torch.cat([nodes, edges], 1)
        assert (flat[:, fixed] == fixed_values[fixed]).all()
        # an adversarial p̂: uniform over *all* values, disallowed ones included
        px = torch.full((batch, 8, 7), 1 / 7, dtype=DT)
        pe = torch.full((batch, 28, 2), 0.5, dtype=DT)
        node_probs, edge_probs = noise.reverse_step_probs(nodes, edges, px, pe, t, s)
        nodes, edges = sample_categorical(node_probs, gen), sample_categorical(edge_probs, gen)
        n0, e0 = noise.forward_sample(nodes, edges, t, gen)
        assert (torch.cat([n0, e0], 1)[:, fixed] == fixed_values[fixed]).all()
    flat = torch.cat([nodes, edges], 1)
    assert (flat[:, fixed] == fixed_values[fixed]).all()
    assert all(space.validate(space.from_flat(row)) is None for row in flat.numpy())


def test_prior_sample_follows_marginals() -> None:
    space = ToySearchSpace()
    counts = np.zeros(5)
    counts[2:] = [6, 3, 1]
    marg = Marginals(np.vstack([np.eye(5)[0], *([counts / 10] * 4), np.eye(5)[1]]), np.full((15, 2), 0.5))
    noise = NoiseProcess.from_marginals(space, marg, diffusion_steps=10)
    nodes, _ = noise.prior_sample(20_000, torch.Generator().manual_seed(4))
    freq = torch.nn.functional.one_hot(nodes, 5).to(DT).mean(0)
    torch.testing.assert_close(freq, noise.node_marginals, atol=0.015, rtol=0)


def test_check_compatible_names_differences() -> None:
    space = ToySearchSpace()
    base = NoiseProcess.from_marginals(space, diffusion_steps=50)
    base.check_compatible(NoiseProcess.from_dict(base.to_dict()))
    with pytest.raises(ValueError, match="T=50 vs T=40"):
        base.check_compatible(NoiseProcess.from_marginals(space, diffusion_steps=40))
    skewed = Marginals(base.node_marginals.numpy(), np.tile([0.8, 0.2], (15, 1)))
    with pytest.raises(ValueError, match="edge_marginals"):
        base.check_compatible(NoiseProcess.from_marginals(space, skewed, diffusion_steps=50))
    with pytest.raises(ValueError, match="search space 'toy' vs 'nb201'"):
        base.check_compatible(NoiseProcess.from_marginals(NB201SearchSpace(), diffusion_steps=50))


def test_from_env_reads_prior_and_steps() -> None:
    space = ToySearchSpace()
    env = SimpleNamespace(
        unwrapped=SimpleNamespace(search_space=space, prior=Marginals.uniform(space), diffusion_steps=25)
    )
    noise = NoiseProcess.from_env(env)
    assert noise.diffusion_steps == 25 and noise.space_name == "toy"
    with pytest.raises(ValueError, match="graph-denoising environment"):
        NoiseProcess.from_env(SimpleNamespace())


def test_bad_times_are_rejected() -> None:
    noise = NoiseProcess.from_marginals(ToySearchSpace(), diffusion_steps=10)
    nodes, edges = noise.prior_sample(2, torch.Generator().manual_seed(0))
    x0 = (torch.full((2, 6, 5), 0.2, dtype=DT), torch.full((2, 15, 2), 0.5, dtype=DT))
    with pytest.raises(ValueError, match="s < t"):
        noise.reverse_step_probs(nodes, edges, *x0, 3, 3)
    with pytest.raises(ValueError, match=r"0\.\.T=10"):
        noise.forward_probs(nodes, edges, 11)
    with pytest.raises(ValueError, match="one time per graph"):
        noise.forward_probs(nodes, edges, torch.tensor([1, 2, 3]))


def test_next_times_follow_the_schedule() -> None:
    noise = NoiseProcess.from_marginals(ToySearchSpace(), diffusion_steps=800)
    schedule = noise.step_schedule(25)
    nxt = noise.next_times(torch.from_numpy(schedule[:-1].copy()), 25, 25)
    assert torch.equal(nxt, torch.from_numpy(schedule[1:].copy()))
    assert noise.next_times(800, 1, 3).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="not all non-final points"):
        noise.next_times(torch.tensor([800, 17]), 25, 2)
    with pytest.raises(ValueError, match="not all non-final points"):
        noise.next_times(0, 25, 1)
