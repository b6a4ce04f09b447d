"""The example that builds a cell's network and trains it on scikit-learn's digits, with tiny settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from dgpo_env.networks import count_params

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_generated_cell.py"
BEST_CIFAR10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
CELL = "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


def _example() -> ModuleType:
    pytest.importorskip("sklearn", reason="the example needs scikit-learn (the 'examples' extra)")
    spec = importlib.util.spec_from_file_location("train_generated_cell", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trains_a_given_cell_with_the_benchmark_skeleton(capsys: pytest.CaptureFixture[str]) -> None:
    result = _example().main(["--arch", CELL, "--steps", "3", "--batch-size", "8", "--size", "8"])
    assert result["arch"] == CELL and result["params"] == count_params(CELL, "nb201") == 73_306 + 28_000 + 243_040
    assert len(result["losses"]) == 3 and all(0 < loss < 10 for loss in result["losses"])
    assert 0 <= result["accuracy"] <= 100
    out = capsys.readouterr().out
    assert "344,346 parameters (the benchmark's CIFAR-10 count)" in out and "held-out accuracy" in out


def test_default_cell_is_the_benchmark_best_and_small_skeletons_work(capsys: pytest.CaptureFixture[str]) -> None:
    result = _example().main(["--steps", "2", "--batch-size", "4", "--channels", "4", "--cells-per-stage", "1"])
    assert result["arch"] == BEST_CIFAR10  # index 6111, validation accuracy 91.6067
    assert result["params"] < count_params(result["arch"], "nb201")
    assert "benchmark" not in capsys.readouterr().out.splitlines()[1]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(SystemExit):
        _example().main(["--size", "10"])
