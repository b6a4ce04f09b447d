"""The reward flags shared by ``dgpo finetune`` and ``dgpo compare`` (docs/howto-constrained.md)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from agents.commands.args import finite_float, positive_float
from dgpo_env.benchmarks.base import CellResult
from dgpo_env.envs.graph_denoise import RewardFn
from dgpo_env.rewards import METRICS, metric_value


def _names(text: str) -> list[str]:
    """``"acc,latency"`` -> ``["acc", "latency"]``; unknown names are reported by the reward builders."""
    names = [n.strip() for n in text.split(",")]
    if len(names) < 2 or any(not n for n in names):
        raise argparse.ArgumentTypeError(
            f"expected two or more comma-separated metrics ({', '.join(METRICS)}), got {text!r}"
        )
    return names


def _weights(text: str) -> list[float]:
    """``"0.7,0.3"`` -> ``[0.7, 0.3]`` (finite numbers; their signs and count are checked by the builders)."""
    return [finite_float(v.strip()) for v in text.split(",")]


def add_reward_flags(parser: argparse.ArgumentParser, who: str = "the reward") -> None:
    """Add the budget and trade-off flags (:func:`reward_options` reads them back)."""
    group = parser.add_argument_group("budgets and trade-offs (docs/howto-constrained.md)")
    group.add_argument("--max-latency-ms", type=positive_float, default=None, help=f"latency budget of {who} (ms)")
    group.add_argument(
        "--max-params-m", type=positive_float, default=None, help=f"parameter budget of {who} (millions)"
    )
    group.add_argument(
        "--max-train-time-s", type=positive_float, default=None, help=f"training-time budget of {who} (s)"
    )
    group.add_argument(
        "--infeasible-reward", type=finite_float, default=0.0, help="reward of an over-budget cell (<= 0; default 0)"
    )
    group.add_argument(
        "--objectives", type=_names, default=None, help=f"trade-off of two or more metrics ({', '.join(METRICS)})"
    )
    group.add_argument("--weights", type=_weights, default=None, help="preference per objective (default: random)")
    group.add_argument(
        "--scalarisation",
        choices=("chebyshev", "weighted-sum"),
        default="chebyshev",
        help="how the objectives become one reward (default chebyshev)",
    )


def reward_options(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as keyword arguments of :func:`~dgpo_env.rewards.reward_from_options` (only those set)."""
    options: dict[str, Any] = {
        "max_latency_ms": args.max_latency_ms,
        "max_params_m": args.max_params_m,
        "max_train_time_s": args.max_train_time_s,
        "objectives": args.objectives,
        "weights": args.weights,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if args.infeasible_reward != 0.0:
        options["infeasible_reward"] = args.infeasible_reward
    if args.scalarisation != "chebyshev":
        options["scalarisation"] = args.scalarisation
    return options


@dataclass
class BestByReward:
    """Wraps a reward function and keeps the best-rewarded cell it saw (in this process).

    Attributes:
        reward_fn: The wrapped reward.
        best_reward: The highest reward seen (``None`` before any call).
        best: That cell's look-up result.
    """

    reward_fn: RewardFn
    best_reward: float | None = None
    best: CellResult | None = field(default=None, repr=False)

    def __call__(self, result: CellResult) -> float:
        """The wrapped reward of ``result``, remembering the cell if it is the best so far."""
        reward = self.reward_fn(result)
        if self.best_reward is None or reward > self.best_reward:
            self.best_reward, self.best = reward, result
        return reward

    def describe(self) -> str:
        """One line: the best cell, its reward and its metrics."""
        if self.best is None or self.best_reward is None:
            return "no valid cell was rewarded"
        parts = []
        for metric in METRICS.values():
            if getattr(self.best, metric.field) is not None:
                parts.append(f"{metric.name} {metric_value(self.best, metric):.4g} {metric.unit}")
        return f"{self.best.key}: reward {self.best_reward:.4f} ({', '.join(parts)})"
