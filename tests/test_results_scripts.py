"""The decision and report logic of the query-efficiency and reproduction benchmark scripts (no search is run here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(mean: float, share: float) -> dict[str, float]:
    return {"val_mean": mean, "val_std": 0.0, "share_optimum": share}


TABLE = {
    "dgpo-elite": {"100": _row(91.50, 0.5), "200": _row(91.59, 0.9)},
    "rea": {"100": _row(91.47, 0.4), "200": _row(91.57, 0.6)},
    "ls": {"100": _row(91.48, 0.4), "200": _row(91.60, 0.9)},
}


def test_a_challenger_must_match_the_better_peer_in_mean_and_share() -> None:
    verdicts = _script("query_efficiency").verdicts(TABLE, ["dgpo-elite"], [100, 200])["dgpo-elite"]
    assert verdicts["100"]["beats_peers"] and verdicts["100"]["peer_share_optimum"] == 0.4
    assert verdicts["200"]["share_ok"] and not verdicts["200"]["val_mean_ok"]  # 91.59 < LS's 91.60
    assert not verdicts["200"]["beats_peers"] and verdicts["200"]["peer_val_mean"] == 91.60


def test_results_markdown_reports_tables_and_every_shortfall(tmp_path: Path) -> None:
    qe = _script("query_efficiency")
    report = {
        "command": "python benchmarks/query_efficiency.py --seeds 20",
        "versions": {"torch": "2.13.0"},
        "seeds": 20,
        "budgets": [100, 200],
        "datasets": {
            "cifar10": {
                "oracle": {"val_acc": 91.6067, "test_acc": None},
                "plot": "compare.png",
                "mean_wall_time_per_run_s": dict.fromkeys(TABLE, 1.0),
                "table": TABLE,
                "verdicts": qe.verdicts(TABLE, ["dgpo-elite"], [100, 200]),
            }
        },
    }
    (tmp_path / "query_efficiency.json").write_text(json.dumps(report))
    out = tmp_path / "RESULTS.md"
    _script("results_md").main(["--results", str(tmp_path), "--out", str(out)])
    text = out.read_text()
    assert "Not run yet: `python benchmarks/reproduce_paper.py`" in text  # no reproduction JSON here
    assert "| dgpo-elite | 91.50 ± 0.00 / 50% | 91.59 ± 0.00 / 90% | 1.0 s |" in text
    assert "| dgpo-elite | matches or beats | **below** |" in text
    assert "- CIFAR-10 @200: dgpo-elite 91.590 / 90% vs the better peer 91.600 / 90%" in text


@pytest.mark.parametrize("argv", [["--algos", "dgpo,rea"], ["--algos", "dgpo,ls,rs"]])
def test_query_efficiency_refuses_to_run_without_both_peers(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        _script("query_efficiency").main(argv)


def test_query_efficiency_runs_the_installed_peer_optimisers(monkeypatch: pytest.MonkeyPatch) -> None:
    qe = _script("query_efficiency")
    monkeypatch.setattr(qe, "installed_peer_methods", lambda: ("tpe",))
    assert qe.default_algos() == [*qe.ALGOS, "tpe"]
    monkeypatch.setattr(qe, "installed_peer_methods", tuple)
    assert qe.default_algos() == list(qe.ALGOS)
