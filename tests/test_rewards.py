"""Budget and trade-off rewards (dgpo_env.rewards): budgets are never rewarded as feasible, arguments are checked."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dgpo_env  # noqa: F401  (registers the environments)
from dgpo_env.benchmarks import NB201Benchmark
from dgpo_env.benchmarks.base import CellResult
from dgpo_env.rewards import (
    METRICS,
    AccuracyUnderBudget,
    Chebyshev,
    MetricUnavailableError,
    WeightedSum,
    reward_from_options,
)


def _cell(acc: float = 90.0, latency_ms: float = 10.0, params_m: float = 0.5, train_s: float = 1000.0) -> CellResult:
    return CellResult(
        key="k",
        valid=True,
        val_acc=acc,
        val_acc_mean=acc,
        params_m=params_m,
        latency_s=latency_ms / 1000.0,
        train_time_s=train_s,
    )


positive = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    acc=st.floats(min_value=0.0, max_value=100.0),
    latency=positive,
    params=positive,
    max_latency=st.none() | positive,
    max_params=st.none() | positive,
    penalty=st.floats(min_value=-10.0, max_value=0.0),
    graded=st.booleans(),
)
def test_an_over_budget_cell_is_never_rewarded_as_feasible(
    acc: float,
    latency: float,
    params: float,
    max_latency: float | None,
    max_params: float | None,
    penalty: float,
    graded: bool,
) -> None:
    if max_latency is None and max_params is None:
        max_latency = 1.0
    reward = AccuracyUnderBudget(
        max_latency_ms=max_latency, max_params_m=max_params, infeasible_reward=penalty, graded=graded
    )
    cell = _cell(acc, latency, params)
    over = (max_latency is not None and latency > max_latency) or (max_params is not None and params > max_params)
    value = reward(cell)
    if over:
        assert not reward.feasible(cell)
        assert value <= penalty  # the stated reward (graded: minus the violation), never the accuracy
        assert value == penalty or (graded and value < penalty)
    else:
        assert reward.feasible(cell) and value == pytest.approx(acc / 100.0)
    assert (value >= 0.0) or over  # feasible rewards are accuracies in [0, 1]


def test_budget_reward_over_every_nb201_cell() -> None:
    """Latency <= 12 ms on all 15,625 cells: over-budget cells get the stated reward, feasible ones their accuracy."""
    bench = NB201Benchmark("cifar10")
    reward = AccuracyUnderBudget(max_latency_ms=12.0, infeasible_reward=-0.5)
    n_over = 0
    for cell in bench.search_space.enumerate_cells():
        result = bench.peek(cell)
        assert result.latency_s is not None and result.val_acc is not None
        if result.latency_s * 1000.0 > 12.0:
            n_over += 1
            assert reward(result) == -0.5
        else:
            assert reward(result) == pytest.approx(result.val_acc / 100.0)
    assert 0 < n_over < 15625  # the budget splits the space


def test_budget_reward_through_gym_make_and_the_env_info() -> None:
    reward_fn = AccuracyUnderBudget(max_params_m=0.2, infeasible_reward=-1.0)
    env = gym.make("dgpo_env/NB201-CIFAR10-v0", n_steps=2, reward_fn=reward_fn)
    env.action_space.seed(0)
    n_valid = 0
    for seed in range(20):
        env.reset(seed=seed)
        done = False
        while not done:
            _, reward, done, _, info = env.step(env.action_space.sample())
        if not info["valid"]:
            assert reward == 0.0  # invalid cells keep invalid_reward; reward_fn is for valid cells
            continue
        n_valid += 1
        assert (reward == -1.0) == (info["params_m"] > 0.2)
    assert n_valid > 0
    env.close()


def test_trade_off_rewards_match_hand_values() -> None:
    cell = _cell(acc=80.0, latency_ms=15.0)  # utilities: acc 0.8, latency (30 - 15) / 30 = 0.5
    assert WeightedSum(["acc", "latency"], [3, 1])(cell) == pytest.approx(0.75 * 0.8 + 0.25 * 0.5)
    # regrets 0.2 and 0.5; weights 0.5/0.5 -> max 0.25, sum 0.35
    assert Chebyshev(["acc", "latency"], rho=0.1)(cell) == pytest.approx(1 - 0.25 - 0.1 * 0.35)
    bounds = {"latency": (20.0, 10.0)}  # utility (20 - 15) / 10 = 0.5 as well
    assert WeightedSum(["acc", "latency"], None, bounds)(cell) == pytest.approx(0.65)
    # a random preference differs from call to call, reproducibly per seed
    a, b = (
        Chebyshev(["acc", "latency"], preference="random", seed=3),
        Chebyshev(["acc", "latency"], preference="random", seed=3),
    )
    values = [a(cell) for _ in range(5)]
    assert values == [b(cell) for _ in range(5)] and len(set(values)) > 1


def test_observed_normalisation_uses_the_range_seen() -> None:
    reward = Chebyshev(["acc", "latency"], rho=0.0, normalise="observed")
    assert reward(_cell(80.0, 10.0)) == 1.0  # the only cell seen is the ideal and the nadir
    assert reward(_cell(90.0, 20.0)) == pytest.approx(0.5)  # best acc, worst latency: regret 1 x 0.5
    assert reward(_cell(85.0, 15.0)) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "give at least one budget"),
        ({"max_latency_ms": 0.0}, ValueError, "max_latency must be > 0"),
        ({"max_latency_ms": True}, TypeError, "max_latency must be a finite real number"),
        ({"max_params_m": "1"}, TypeError, "max_params must be a finite real number"),
        ({"max_params_m": 1.0, "infeasible_reward": 0.5}, ValueError, "infeasible_reward must be <= 0"),
        ({"max_params_m": 1.0, "graded": 1}, TypeError, "graded must be True or False"),
        ({"max_flops_m": 10.0}, MetricUnavailableError, "no FLOPs"),
    ],
)
def test_budget_arguments_are_checked(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        AccuracyUnderBudget(**kwargs)  # type: ignore[arg-type]


def test_trade_off_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown metric 'lat'; known metrics: acc, latency, params, train_time"):
        Chebyshev(["acc", "lat"])
    with pytest.raises(MetricUnavailableError, match="no FLOPs"):
        WeightedSum(["acc", "flops"])
    with pytest.raises(ValueError, match="at least two metric names"):
        Chebyshev(["acc"])
    with pytest.raises(ValueError, match="one entry per objective"):
        Chebyshev(["acc", "latency"], [1.0])
    with pytest.raises(ValueError, match=r"weights\[1\] must be >= 0"):
        WeightedSum(["acc", "latency"], [1.0, -1.0])
    with pytest.raises(ValueError, match="best must be below worst"):
        WeightedSum(["acc", "latency"], None, {"latency": (0.0, 30.0)})
    with pytest.raises(ValueError, match="exclude each other"):
        Chebyshev(["acc", "latency"], [0.5, 0.5], preference="random")
    with pytest.raises(ValueError, match="either budgets"):
        reward_from_options(max_latency_ms=10.0, objectives=["acc", "latency"])
    with pytest.raises(ValueError, match="weights need objectives"):
        reward_from_options(weights=[1.0, 1.0])
    assert reward_from_options() is None


def test_a_metric_the_benchmark_lacks_is_named() -> None:
    cell = CellResult(key="k", valid=True, val_acc=90.0, val_acc_mean=90.0)  # no latency reported
    with pytest.raises(MetricUnavailableError, match=r"metric 'latency' needs CellResult.latency_s"):
        AccuracyUnderBudget(max_latency_ms=10.0)(cell)
    assert set(METRICS) == {"acc", "latency", "params", "train_time"}


def test_finetune_flags_build_the_reward() -> None:
    import argparse

    from agents.commands.reward_args import add_reward_flags, reward_options

    parser = argparse.ArgumentParser()
    add_reward_flags(parser)
    args = parser.parse_args(["--objectives", "acc,latency", "--weights", "0.7,0.3"])
    reward = reward_from_options(**reward_options(args))
    assert isinstance(reward, Chebyshev) and np.allclose(reward.weights, [0.7, 0.3])
    args = parser.parse_args(["--max-latency-ms", "12", "--infeasible-reward", "-1"])
    budget = reward_from_options(**reward_options(args))
    assert isinstance(budget, AccuracyUnderBudget) and budget.infeasible_reward == -1.0
    with pytest.raises(SystemExit):
        parser.parse_args(["--max-latency-ms", "-3"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--objectives", "acc"])


def test_finetune_command_with_a_latency_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agents.cli import main
    from agents.diffusion.denoiser import DenoiserConfig
    from agents.diffusion.model import DiffusionModel
    from dgpo_env.search_spaces import NB201SearchSpace

    config = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=1, n_heads=2, time_dim=8)
    path = DiffusionModel.create(NB201SearchSpace(), diffusion_steps=50, config=config, seed=0).save(tmp_path / "m.pt")
    args = ["finetune", str(path), "--max-queries", "12", "--n-steps", "2", "--batch-size", "4", "--no-progress"]
    assert main([*args, "--variant", "elite", "--max-latency-ms", "18"]) == 0  # archive ranked by the reward
    out = capsys.readouterr().out
    assert "(within the budgets: latency <= 18 ms)" in out  # the best cell and oracle below are feasible ones
    line = next(x for x in out.splitlines() if x.startswith("best cell by the reward:"))
    latency = float(line.split("latency ")[1].split(" ms")[0])
    reward = float(line.split("reward ")[1].split(" ")[0])
    assert latency <= 18.0 and reward > 0.0  # the best-rewarded cell meets the budget
    assert main([*args, "--max-latency-ms", "12", "--objectives", "acc,latency"]) == 2
    assert "either budgets" in capsys.readouterr().err
    assert main([*args, "--infeasible-reward", "-1"]) == 2  # the reward of an over-budget cell needs a budget
    assert "infeasible_reward is the reward of an over-budget cell: give a budget too" in capsys.readouterr().err
    assert main([*args, "--objectives", "acc,flops"]) == 2
    assert "no FLOPs" in capsys.readouterr().err
    # a list starting with a minus sign reaches the weights' own check (argparse took it for an option)
    assert main([*args, "--objectives", "acc,latency", "--weights", "-1,2"]) == 2
    assert "weights[0] must be >= 0" in capsys.readouterr().err


def test_list_values_starting_with_a_minus_sign_are_attached_to_their_flag() -> None:
    from agents.commands.args import attach_list_values

    argv = ["compare", "--weights", "-1,2", "--seeds", "-3", "--lr", "-1", "--weights"]
    assert attach_list_values(argv) == ["compare", "--weights=-1,2", "--seeds=-3", "--lr", "-1", "--weights"]
    assert attach_list_values(["--weights", "-", "--seeds", "--x"]) == ["--weights", "-", "--seeds", "--x"]
