"""The decision and report logic of the query-efficiency benchmark and of RESULTS.md (no search is run here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmark_scripts import load_script as _script

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


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
    assert verdicts["200"]["per_peer"] == {
        "rea": {"val_mean_ok": True, "share_ok": True},
        "ls": {"val_mean_ok": False, "share_ok": True},
    }


def test_a_challenger_must_match_every_peer_including_tpe() -> None:
    qe = _script("query_efficiency")
    table = {**TABLE, "tpe": {"100": _row(91.49, 0.55), "200": _row(91.50, 0.5)}}
    verdicts = qe.verdicts(table, ["dgpo-elite"], [100, 200], ["rea", "ls", "tpe"])["dgpo-elite"]
    assert not verdicts["100"]["beats_peers"] and verdicts["100"]["val_mean_ok"]  # mean 91.50 >= all three
    assert verdicts["100"]["per_peer"]["tpe"] == {"val_mean_ok": True, "share_ok": False}  # 50% < TPE's 55%
    assert verdicts["100"]["peer_share_optimum"] == 0.55
    with pytest.raises(ValueError, match="no results for the peers"):
        qe.verdicts(TABLE, ["dgpo-elite"], [100], ["rea", "ls", "tpe"])


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("3", [0, 1, 2]),
        ("100-103", [100, 101, 102, 103]),
        ("100,101,105", [100, 101, 105]),
        ("100-102, 110", [100, 101, 102, 110]),
        ("7,", [7]),
        ("5-5", [5]),
    ],
)
def test_query_efficiency_seeds_are_a_count_a_range_or_a_list(text: str, seeds: list[int]) -> None:
    assert _script("query_efficiency").parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0", "count must be"),
        ("-3", "takes a count"),
        ("", "takes a count"),
        ("1,,2", "takes a count"),
        ("100-", "takes a count"),
        ("1.5", "takes a count"),
        ("110-100", "is empty"),
        ("100-105,103", "repeated: [103]"),
        ("1,1", "repeated: [1]"),
        ("4294967296,", "above"),
        ("0-20000", "more than"),
    ],
)
def test_query_efficiency_refuses_bad_seeds(text: str, words: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _script("query_efficiency").main([f"--seeds={text}", "--algos", "dgpo,rea,ls"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and words in err, err


@pytest.mark.parametrize("text", ["100,50,", "0,100", "-5,100", "a,100", "100,100"])
def test_query_efficiency_refuses_bad_budgets(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _script("query_efficiency").main([f"--budgets={text}", "--algos", "dgpo,rea,ls"])
    assert caught.value.code == 2 and "--budgets" in capsys.readouterr().err


def test_query_efficiency_defaults_are_the_reporting_seeds_and_four_budgets() -> None:
    qe = _script("query_efficiency")
    assert qe.BUDGETS == (50, 100, 200, 500)
    assert qe.parse_budgets("500,50,200,100") == [50, 100, 200, 500]
    assert qe.parse_seeds("100-119") == list(range(100, 120))


def test_results_markdown_reports_tables_and_every_shortfall(tmp_path: Path) -> None:
    qe = _script("query_efficiency")
    report = {
        "command": "python benchmarks/query_efficiency.py --seeds 100-119",
        "versions": {"torch": "2.13.0"},
        "seeds": [*range(100, 120), 130],
        "budgets": [100, 200],
        "peers": ["rea", "ls"],
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
    assert "Command: `python benchmarks/query_efficiency.py --seeds 100-119`" in text
    assert "Seeds: 100-119, 130 (21 per method" in text and "Peers: `rea`, `ls`." in text
    assert "| dgpo-elite | 91.50 ± 0.00 / 50% | 91.59 ± 0.00 / 90% | 1.0 s |" in text
    assert "| ls (peer) | 91.48 ± 0.00 / 40% | 91.60 ± 0.00 / 90% | 1.0 s |" in text
    assert "| dgpo-elite | matches or beats | **below** ls (mean) |" in text
    assert "- CIFAR-10 @200: dgpo-elite 91.590 / 90% vs the best peer values 91.600 / 90%; below ls (mean)" in text
    assert "| dgpo-elite | +0.020 ± 0.000 (ls) / +10 | -0.010 ± 0.000 (ls) / +0 |" in text  # margins over 21 seeds
    assert "## 2a." not in text and "indicative only" not in text


def test_results_markdown_reads_older_reports_and_further_settings(tmp_path: Path) -> None:
    """A report with a seed count and no per-peer verdicts (before the peers grew) still renders."""
    report = {
        "command": "python benchmarks/query_efficiency.py --seeds 20",
        "seeds": 20,
        "budgets": [100],
        "datasets": {
            "cifar10": {
                "oracle": {"val_acc": 91.6067},
                "plot": "compare.png",
                "mean_wall_time_per_run_s": dict.fromkeys(TABLE, 1.0),
                "table": TABLE,
                "verdicts": {
                    "dgpo-elite": {
                        "100": {
                            "beats_peers": False,
                            "val_mean_ok": True,
                            "share_ok": False,
                            "peer_val_mean": 91.5,
                            "peer_share_optimum": 0.6,
                        }
                    }
                },
            }
        },
    }
    (tmp_path / "query_efficiency.json").write_text(json.dumps(report))
    (tmp_path / "query_efficiency_smac.json").write_text(json.dumps(report))
    out = tmp_path / "RESULTS.md"
    _script("results_md").main(["--results", str(tmp_path), "--out", str(out)])
    text = out.read_text()
    assert "Seeds: 0-19 (20 per method" in text and "Peers: `rea`, `ls`." in text
    assert "| dgpo-elite | **below** the better peer (share) |" in text
    assert "## 2a. Query efficiency, further settings: `query_efficiency_smac.json`" in text
    assert "indicative only" not in text


def test_results_markdown_flags_verdicts_from_few_seeds(tmp_path: Path) -> None:
    qe = _script("query_efficiency")
    report = {
        "command": "python benchmarks/query_efficiency.py --seeds 100-102",
        "seeds": [100, 101, 102],
        "budgets": [100],
        "peers": ["rea", "ls"],
        "datasets": {
            "cifar10": {
                "oracle": {"val_acc": 91.6067},
                "plot": "compare.png",
                "mean_wall_time_per_run_s": dict.fromkeys(TABLE, 1.0),
                "table": TABLE,
                "verdicts": qe.verdicts(TABLE, ["dgpo-elite"], [100]),
            }
        },
    }
    (tmp_path / "query_efficiency_smac.json").write_text(json.dumps(report))
    out = tmp_path / "RESULTS.md"
    _script("results_md").main(["--results", str(tmp_path), "--out", str(out)])
    text = out.read_text()
    assert "Not run yet: `python benchmarks/query_efficiency.py`" in text  # no main report here
    assert "Seeds: 100-102 (3 per method" in text
    assert "Only 3 seeds per method: one run moves a share at the optimum by 33%" in text
    assert "No DGPO method in this comparison" not in text
    report["datasets"]["cifar10"]["verdicts"] = {}  # peers and other methods only
    (tmp_path / "query_efficiency_smac.json").write_text(json.dumps(report))
    _script("results_md").main(["--results", str(tmp_path), "--out", str(out)])
    text = out.read_text()
    assert "No DGPO method in this comparison, so no verdicts." in text
    assert "| DGPO method |" not in text and "Nowhere." not in text


@pytest.mark.parametrize("argv", [["--algos", "dgpo,rea"], ["--algos", "dgpo,ls,rs"]])
def test_query_efficiency_refuses_to_run_without_both_peers(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        _script("query_efficiency").main(argv)


def test_query_efficiency_needs_tpe_among_the_peers_when_installed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    qe = _script("query_efficiency")
    monkeypatch.setattr(qe, "installed_peer_methods", lambda: ("tpe", "smac"))
    assert qe.required_peers() == ["rea", "ls", "tpe"]  # smac is run when asked for, never required
    with pytest.raises(SystemExit) as caught:
        qe.main(["--algos", "dgpo,rea,ls"])
    assert caught.value.code == 2 and "missing tpe" in capsys.readouterr().err
    monkeypatch.setattr(qe, "installed_peer_methods", tuple)
    assert qe.required_peers() == ["rea", "ls"]


def test_query_efficiency_runs_the_installed_peer_optimisers(monkeypatch: pytest.MonkeyPatch) -> None:
    qe = _script("query_efficiency")
    monkeypatch.setattr(qe, "installed_peer_methods", lambda: ("tpe",))
    assert qe.default_algos() == [*qe.ALGOS, "tpe"]
    monkeypatch.setattr(qe, "installed_peer_methods", tuple)
    assert qe.default_algos() == list(qe.ALGOS)


def _mo_summary(dgpo: float, nsga2: float, motpe: float) -> dict[str, dict[str, dict[str, list[float]]]]:
    def stats(hv: float) -> dict[str, dict[str, list[float]]]:
        return {"hv_ratio": {"100": [hv, 0.01]}, "share": {"100": [0.1, 0.0]}}

    return {"dgpo-mo": stats(dgpo), "nsga2": stats(nsga2), "motpe": stats(motpe), "rs": stats(0.5)}


def test_multi_objective_verdict_compares_with_the_best_optuna_sampler() -> None:
    mo = _script("multi_objective")
    both = {**_mo_summary(0.95, 0.90, 0.96), "dgpo-mo-gp": _mo_summary(0.97, 0, 0)["dgpo-mo"]}
    # DGPO's best preset speaks for DGPO when it ran; the older one otherwise
    assert mo.verdicts(both, [100])["100"] == "dgpo-mo-gp 0.9700 is at or above the best Optuna sampler (motpe 0.9600)"
    assert mo.verdicts({k: v for k, v in both.items() if k != "motpe"}, [100]) == {}  # a sampler missing
    assert mo.verdicts(_mo_summary(0.95, 0.90, 0.96), [100])["100"].startswith("dgpo-mo 0.9500 is below")
    assert "(motpe 0.9600)" in mo.verdicts(_mo_summary(0.95, 0.90, 0.96), [100])["100"]
    assert (
        "is at or above the best Optuna sampler (nsga2 0.9400)"
        in mo.verdicts(_mo_summary(0.95, 0.94, 0.93), [100])["100"]
    )


def test_results_md_writes_the_multi_objective_section() -> None:
    section = _script("results_md").multi_objective_section(
        {
            "command": "python benchmarks/multi_objective.py",
            "versions": {"python": "3.11"},
            "seeds": [100, 101],
            "objectives": ["acc", "latency"],
            "true_front_size": 25,
            "reference": [39.77, 20.22],
            "reference_rule": "nadir of the true Pareto front",
            "budgets": [100],
            "summary": _mo_summary(0.95, 0.90, 0.96),
            "mean_wall_time_s": {"dgpo-mo": 12.0, "nsga2": 1.0, "motpe": 60.0, "rs": 0.1},
            "verdicts": {"100": "dgpo-mo 0.9500 is below the best Optuna sampler (motpe 0.9600)"},
            "pareto_png": "x_pareto.png",
        }
    )
    text = "\n".join(section)
    assert "| dgpo-mo | 0.9500 ± 0.0100 / 10.0% | 12.0 s |" in text
    assert "- @100: dgpo-mo 0.9500 is below" in text
    assert "Where DGPO's best preset is below: @100." in text
    assert _script("results_md").multi_objective_section(None)[-2].startswith("Not run yet")


def test_results_markdown_shows_the_inverse_control_per_seed(tmp_path: Path) -> None:
    """inverse_control.json gets its own section; a seed that stays above chance is marked."""
    record = {
        "dataset": "cifar100",
        "seed": 100,
        "sample_mean_before": 61.2,
        "sample_mean_after": 9.96,
        "at_chance": False,
        "chance_share": 0.0,
        "param_free_share": 0.98,
        "distinct_samples": 53,
        "train_chance_cells": 1,
        "last_chance_batch": 2,
    }
    report = {
        "command": "python benchmarks/inverse_control.py --seeds 100",
        "settings": {"variant": "published", "lr": 1e-3, "n_steps": 25, "epochs": 80},
        "chance_margin": 2.0,
        "records": [record, {**record, "seed": 101, "sample_mean_after": 1.1, "at_chance": True}],
    }
    (tmp_path / "inverse_control.json").write_text(json.dumps(report))
    variant = {  # a preset's run gets the next section, naming the preset's settings
        **report,
        "command": "python benchmarks/inverse_control.py --variant kl-annealed --seeds 100",
        "settings": {**report["settings"], "variant": "kl-annealed", "preset_settings": {"kl_coef": 1.0}},
        "records": [{**record, "sample_mean_after": 1.0, "at_chance": True}],
    }
    (tmp_path / "inverse_control_kl-annealed.json").write_text(json.dumps(variant))
    explore = {  # with exploration copies, the cells at chance the starting model drew are given apart
        **variant,
        "settings": {
            **variant["settings"],
            "variant": "kl-explore",
            "preset_settings": {"explore_copies": 5, "explore_advantage": "scaled"},
            "changed": {"explore_advantage": "scaled"},  # --set explore_advantage=scaled
            "preset_values": {"explore_advantage": "clip"},
        },
        "records": [{**record, "explore_chance_cells": 7}],
    }
    (tmp_path / "inverse_control_kl-explore.json").write_text(json.dumps(explore))
    out = tmp_path / "RESULTS.md"
    _script("results_md").main(["--results", str(tmp_path), "--out", str(out)])
    text = out.read_text()
    assert "## 1a. Inverse control, per seed: `inverse_control.json`" in text
    assert "| CIFAR-100 | 100 | 61.20 | 9.96 | **no** | 0.0% | 98.0% | 53 | 1 (2) |" in text
    assert "| CIFAR-100 | 101 | 61.20 | 1.10 | yes |" in text
    assert "At chance: 1 of 2 runs." in text
    published, preset = text.split("## 1b. Inverse control, per seed: `inverse_control_kl-annealed.json`")
    preset, explored = preset.split("## 1c. Inverse control, per seed: `inverse_control_kl-explore.json`")
    assert "DGPO preset `kl-annealed` (`kl_coef=1.0`)" in preset and "At chance: 1 of 1 runs." in preset
    assert "| CIFAR-100 | 100 | 61.20 | 1.00 | yes |" in preset and "kl-annealed" not in published
    assert "starting model" not in preset and "| 53 | 1 (2); starting model 7 |" in explored
    assert "run with `--set explore_advantage=scaled` (the preset's own: `clip`), reward `-R`" in explored
    assert "--set" not in preset


def test_inverse_control_refuses_a_bad_set_before_any_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    script = _script("inverse_control")
    out = ["--out", str(tmp_path / "x.json"), "--model", str(tmp_path / "absent.pt")]
    cases = [
        (["--set", "explore_advantage='clip'"], "--set needs --out"),
        (["--set", "explore_advantage='max'", *out], "explore_advantage must be one of"),
        (["--set", "explore_memory=2.0", *out], "explore_memory must be an int"),
        (["--set", "learning_rate=0.1", *out], "give the learning rate with --lr"),
        (["--set", "nope=1", *out], "has no such setting"),
        (["--set", "kl_coef=1", "--set", "kl_coef=2", *out], "names a setting twice"),
        (["--set", "count_repeats=true", *out], "a bool is written True or False: not count_repeats=true"),
        (["--jobs", "0", *out], "--jobs"),
        (["--seeds", "0,1,0", *out], "--seeds names 0 twice"),
        (["--datasets", "cifar100,cifar100", *out], "--datasets names cifar100 twice"),
        (["--set", "explore_advantage='clip'", *out], "is the kl-explore preset's own value"),
        (["--set", "explore_copies=0", "--set", "explore_memory=3", *out], "only with exploration copies"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as stop:
            script.main(["--variant", "kl-explore", *argv])
        assert stop.value.code == 2 and message in capsys.readouterr().err, argv
    assert not (tmp_path / "absent.pt").exists() and not (tmp_path / "x.json").exists()


def test_inverse_control_reads_the_operations_of_an_arch_string() -> None:
    ops = _script("inverse_control")._ops("|none~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|none~2|")
    assert ops == ["none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none", "none"]


def test_tune_preset_refuses_reporting_seeds_and_unknown_or_mistyped_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tune = _script("tune_preset")
    for argv, words in [
        (["--seeds", "95-104"], "[100, 101, 102, 103, 104] are reporting seeds"),
        (["--set", "per_copy=1"], "SurrogateConfig.per_copy must be a bool"),
        (["--set", "per_copy=true"], "a bool is written True or False: not per_copy=true"),
        (["--set", "restart_after=2.5"], "EliteConfig.restart_after"),
        (["--set", "anchr_prob=0.5"], "preset 'surrogate' has no such setting"),
        (["--set", "ucb_beta"], "--set takes name=value"),
        (["--set", "ucb_beta=1", "--set", "ucb_beta=2"], "names a setting twice"),
        (["--variant", "pareto"], "invalid choice: 'pareto'"),
        (["--table-path", "/nonexistent/nb201.npz"], "--table-path: extended NB201 table not found"),
    ]:
        with pytest.raises(SystemExit) as caught:
            tune.main(["--dataset", "cifar10", "--budget", "60", *argv])
        err = capsys.readouterr().err
        assert caught.value.code == 2 and words in err and "Traceback" not in err, (argv, err)


def test_tune_preset_reports_the_best_at_each_budget_and_the_seeds_at_the_oracle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from types import SimpleNamespace

    tune = _script("tune_preset")
    oracle = 91.60666665039064  # NAS-Bench-201 CIFAR-10's best mean validation accuracy
    curves = {3: [90.0] * 40 + [oracle] * 20, 4: [89.0] * 60}
    calls = []

    def fake_run(
        benchmark_kwargs: dict[str, object], seed: int, budget: int, variant: str, **settings: object
    ) -> object:
        calls.append((seed, budget, variant, settings))
        if seed not in curves:
            raise ValueError("explore_copies=4 leaves fewer than 2 of the n_envs=5 environment copies to the policy")
        return SimpleNamespace(
            curve=curves[seed], wall_time_s=0.5, stop_reason="budget", n_queries=60, settings={"variant": variant}
        )

    monkeypatch.setattr(tune, "run_dgpo", fake_run)
    out = tmp_path / "tuning.json"
    argv = ["--dataset", "cifar10", "--budget", "60", "--seeds", "3,4", "--set", "restart_after=30", "--out", str(out)]
    assert tune.main(argv) == 0
    assert calls == [(3, 60, "surrogate", {"restart_after": 30}), (4, 60, "surrogate", {"restart_after": 30})]
    report = json.loads(out.read_text())
    assert report["complete"] and report["best"] == {"3": {"50": oracle, "60": oracle}, "4": {"50": 89.0, "60": 89.0}}
    assert report["summary"]["50"] == {"mean": (oracle + 89.0) / 2, "at_oracle": 1, "seeds": 2}
    assert report["runs"]["3"]["stop_reason"] == "budget" and report["runs"]["4"]["settings"] == {
        "variant": "surrogate"
    }
    assert "@50: mean 90.303, at the oracle 1/2" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # an existing file is not replaced without --resume or --force
        tune.main(argv)
    assert "--resume continues it" in capsys.readouterr().err
    calls.clear()
    assert tune.main([*argv[:5], "3,4,5", *argv[6:], "--resume"]) == 2  # seed 5 has no curve: the fake fails
    assert [call[0] for call in calls] == [5]  # seeds 3 and 4 were kept
    assert tune.main([*argv, "--resume"]) == 0  # nothing left to run: the report is written again, complete
    resumed = json.loads(out.read_text())  # the first call's command and time stay; the resuming call is added
    assert resumed["command"] == report["command"] and len(resumed["resumed_with"]) == 1
    assert "--resume" in resumed["resumed_with"][0] and resumed["seconds"] >= report["seconds"]
    with pytest.raises(SystemExit):
        tune.main([*argv[:3], "61", *argv[4:], "--resume"])  # another budget
    assert "holds another tuning run: budget 60 (now 61)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tune.main([*argv[:-1], str(tmp_path)])  # a directory
    assert "is a directory" in capsys.readouterr().err


def test_margins_give_the_standard_error_of_the_difference_to_the_best_peer() -> None:
    table = {
        "dgpo-surrogate": {"50": {"val_mean": 91.43, "val_std": 0.3, "share_optimum": 0.44}},
        "tpe": {"50": {"val_mean": 91.41, "val_std": 0.4, "share_optimum": 0.15}},
        "rea": {"50": {"val_mean": 91.14, "val_std": 0.0, "share_optimum": 0.20}},
    }
    entry = {"table": table, "verdicts": {"dgpo-surrogate": {"50": {"peer_share_optimum": 0.20}}}}
    lines = _script("results_md")._margin_lines(entry, ["50"], ["rea", "tpe"], 100)
    # mean: against TPE (the best mean), (0.3² + 0.4²)^½ / 10 = 0.05; share: against REA's 20%
    assert lines[-1] == "| dgpo-surrogate | +0.020 ± 0.050 (tpe) / +24 |"
