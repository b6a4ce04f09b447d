"""``dgpo finetune`` / ``dgpo compare``: variants that need objectives or budgets, and budgeted progress lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agents.cli import main
from agents.harness import run_comparison
from dgpo_env.benchmarks import ConstrainedBenchmark, NB201Benchmark
from dgpo_env.rewards import METRICS, AccuracyUnderBudget, metric_value


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--variant", "pareto"],
            "--variant pareto ranks candidates by several objectives: give them, e.g. --objectives",
        ),
        (
            ["--variant", "constrained", "--objectives", "acc,latency"],
            "--variant constrained optimises accuracy under budgets, a single objective: drop --objectives",
        ),
        (["--variant", "constrained"], "--variant constrained ranks cells by the chance they meet a budget: give one"),
    ],
)
def test_finetune_refuses_a_variant_without_what_it_ranks_by(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # refused before the checkpoint is read: a missing file does not matter
    assert main(["finetune", str(tmp_path / "missing.pt"), "--max-queries", "5", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_finetune_help_gives_every_presets_value_of_a_setting(capsys: pytest.CaptureFixture[str]) -> None:
    from agents.commands.finetune import preset_values

    batch = "published, kl-annealed, kl-explore 15; elite, pareto, constrained 10; surrogate 5"
    assert preset_values("batch_size") == batch
    assert preset_values("restart_after") == "elite, pareto, constrained 0; surrogate 75"  # elite settings only
    assert preset_values("timestep_fraction") == "every preset 0.3"
    assert preset_values("count_repeats").endswith("kl-annealed, kl-explore True")
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "trajectories per batch (default: the --variant's: published, kl-annealed, kl-explore 15;" in shown


def test_compare_refuses_dgpo_constrained_with_objectives_or_without_a_budget() -> None:
    with pytest.raises(ValueError, match="dgpo-constrained: accuracy under budgets, a single objective; drop"):
        run_comparison("nb201:cifar10", ["dgpo-constrained", "rs"], 1, 5, n_jobs=1, objectives=["acc", "latency"])
    with pytest.raises(ValueError, match="dgpo-constrained: ranks cells by the chance they meet a budget; give one"):
        run_comparison("nb201:cifar10", ["dgpo-constrained"], 1, 5, n_jobs=1)
    with pytest.raises(ValueError, match="dgpo-mo-gp: multi-objective methods; give objectives"):
        run_comparison("nb201:cifar10", ["dgpo-mo-gp"], 1, 5, n_jobs=1)


def test_budgeted_finetune_reports_the_best_feasible_cell_and_oracle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agents.diffusion.denoiser import DenoiserConfig
    from agents.diffusion.model import DiffusionModel
    from dgpo_env.search_spaces import NB201SearchSpace

    config = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=1, n_heads=2, time_dim=8)
    path = DiffusionModel.create(NB201SearchSpace(), diffusion_steps=50, config=config, seed=0).save(tmp_path / "m.pt")
    args = ["finetune", str(path), "--max-queries", "16", "--n-steps", "2", "--batch-size", "4"]
    assert main([*args, "--max-latency-ms", "18", "--progress-every", "4"]) == 0
    out = capsys.readouterr().out
    progress = [line for line in out.splitlines() if line.startswith("  queries ")]
    assert len(progress) == 4 and all("[latency <= 18 ms]" in line for line in progress)
    assert all("best feasible val" in line or "no feasible cell yet" in line for line in progress)
    assert "best feasible val" in progress[-1] and "(within the budgets: latency <= 18 ms)" in out
    cell = re.search(r"best cell: (\S+)", out).group(1)  # type: ignore[union-attr]
    plain = NB201Benchmark("cifar10")
    assert (
        metric_value(plain.peek(plain.search_space.from_arch_str(cell)), METRICS["latency"]) <= 18.0
    )  # the reported best meets the budget
    oracle = ConstrainedBenchmark(plain, AccuracyUnderBudget(max_latency_ms=18)).oracle.val_acc
    assert oracle < plain.oracle.val_acc  # the budget excludes the unconstrained best
    shown = re.search(r"validation accuracy [\d.]+%(?: \(oracle ([\d.]+)%\)|: the oracle)", out)
    assert shown is not None and (shown.group(1) is None or float(shown.group(1)) == pytest.approx(oracle, abs=1e-4))
    best = [float(m) for m in re.findall(r"best feasible val ([\d.]+)%", out)]
    assert all(b <= oracle + 1e-9 for b in best)  # never an over-budget accuracy
    # no cell within a tight budget: no best cell is claimed (exit 1), not an over-budget one
    assert main([*args, "--max-latency-ms", "12", "--progress-every", "8"]) == 1
    out = capsys.readouterr().out
    assert "no feasible (latency <= 12 ms) cell found" in out and "best cell:" not in out
