"""Write ``benchmarks/RESULTS.md`` from the JSON the benchmark scripts wrote (nothing is typed by hand).

Reads ``reproduce_paper.json`` (:mod:`benchmarks.reproduce_paper`), ``query_efficiency.json``
(:mod:`benchmarks.query_efficiency`) and ``multi_objective.json`` (:mod:`benchmarks.multi_objective`)
from ``--results``, plus any ``reproduce_paper_*.json`` and
``query_efficiency_*.json`` (further settings, each its own section), ``inverse_control.json`` and any
``inverse_control_*.json`` (:mod:`benchmarks.inverse_control`, a preset each); a missing main file gives a
section saying which command produces it.

Usage::

    python benchmarks/results_md.py
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dgpo_env.io import atomic_write_text

CHANCE = {"cifar10": 10.0, "cifar100": 1.0, "imagenet16": 100 / 120}
"""Accuracy of guessing (percent): 10, 100 and 120 classes."""
NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet16": "ImageNet16-120"}
FEW_SEEDS = 10
"""Below this many seeds per method, a query-efficiency section says its verdicts are indicative only."""
PRETRAIN_NAMES = {"full": "(a) all cells", "7pct": "(b) random 7%", "filtered": "(c) filtered"}


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _mean(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def _versions(report: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in report.get("versions", {}).items() if v)


def reproduction_section(
    report: dict[str, Any] | None, title: str, file_name: str, pretrainings: list[dict[str, Any]] | None = None
) -> list[str]:
    """Section 1: oracle hits per dataset and pretraining, inverse control, cost.

    ``pretrainings`` are the pretraining records of the run that trained the models, for a report
    that reused them (``--reuse-models``).
    """
    lines = [title, ""]
    if report is None:
        return [*lines, f"Not run yet: `python benchmarks/reproduce_paper.py` writes `{file_name}`.", ""]
    settings, paper = report["settings"], report["paper"]
    lr = settings.get("dgpo_kwargs", {}).get("learning_rate", settings["lr"])
    records = report["records"]
    own = [r for r in records if r["job"] == "pretrain"]
    pre = {(r["pretraining"], r["dataset"]): r for r in (own or pretrainings or [])}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["job"] == "finetune":
            runs[(r["dataset"], r["pretraining"])].append(r)
    lines += [
        f"Command: `{report['command']}`  ",
        f"Versions: {_versions(report)}  ",
        f"Fine-tuning: variant `{settings.get('variant', 'published')}`, learning rate {lr:g}, "
        f"{settings['n_steps']} denoising steps, at most "
        f"{settings['max_queries']} distinct queries, stop after {settings['max_stale_batches']} batches without "
        f"a new cell, at most {settings['max_epochs']} batches. Filter thresholds: "
        + ", ".join(f"{NAMES[d]} {t:g}%" for d, t in settings["filter_thresholds"].items())
        + ".",
        "",
        "| dataset | pretraining | seeds at the oracle | best validation (mean ± std) | paper | queries to the best "
        "cell (mean) | RL queries used (mean) | label queries for pretraining |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = [*NAMES], [*PRETRAIN_NAMES]
    for (dataset, name), rs in sorted(
        runs.items(), key=lambda kv: (order[0].index(kv[0][0]), order[1].index(kv[0][1]))
    ):
        selection = pre.get((name, dataset)) or pre.get((name, None)) or {}
        hits = sum(r["reached_oracle"] for r in rs)
        best = _mean([r["best_val_acc"] for r in rs])
        lines.append(
            f"| {NAMES[dataset]} | {PRETRAIN_NAMES[name]} | {hits}/{len(rs)} | {best} "
            f"| {paper['oracle'][dataset]:.2f} | {np.mean([r['queries_to_best'] for r in rs]):.0f} "
            f"| {np.mean([r['n_queries'] for r in rs]):.0f} | {selection.get('selection_queries', 'n/a')} |"
        )
    inverse = [r for r in records if r["job"] == "inverse"]
    if inverse:
        lines += [
            "",
            "Inverse control (reward `-R`, 80 batches of 15, from the all-cells model): mean validation accuracy "
            "of 500 fresh samples before and after (paper: about "
            f"{paper['inverse_sample_mean_cifar10']}% on CIFAR-10).",
            "",
            "| dataset | seeds | before | after | after, per seed | chance |",
            "|---|---|---|---|---|---|",
        ]
        by_dataset: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in inverse:
            by_dataset[r["dataset"]].append(r)
        for dataset, rs in sorted(by_dataset.items()):
            per_seed = ", ".join(f"{r['sample_mean_after']:.2f}" for r in sorted(rs, key=lambda r: r["seed"]))
            lines.append(
                f"| {NAMES[dataset]} | {len(rs)} | {_mean([r['sample_mean_before'] for r in rs])} "
                f"| {_mean([r['sample_mean_after'] for r in rs])} "
                f"| {per_seed} "
                f"| {CHANCE[dataset]:.2f} |"
            )
    full = pre.get(("full", None))
    tunes = [r for r in records if r["job"] == "finetune" and r["pretraining"] == "full"]
    if full and tunes:
        worst = max(tunes, key=lambda r: r["job_wall_time_s"])
        mean_tune = np.mean([r["job_wall_time_s"] for r in tunes])
        total = full["job_wall_time_s"] + worst["job_wall_time_s"]
        lines += [
            "",
            "Cost on this machine (each job in its own process, 1 torch thread, while another benchmark used the "
            "second core): pretraining on all cells "
            f"{full['job_wall_time_s']:.0f} s (peak {full['peak_rss_mb']:.0f} MB), fine-tuning "
            f"{mean_tune:.0f} s on average (slowest {worst['job_wall_time_s']:.0f} s, "
            f"peak {max(r['peak_rss_mb'] for r in tunes):.0f} MB). One full reproduction run (pretrain + fine-tune, "
            f"one dataset, one seed) therefore takes at most {total:.0f} s ({total / 60:.1f} min); the target is "
            "15 min.",
        ]
    return [*lines, ""]


def _seed_text(seeds: int | list[int]) -> str:
    """``[100, ..., 119]`` -> ``"100-119"``; ``[0, 1, 5]`` -> ``"0-1, 5"``.

    A count ``S`` (older reports) is the seeds ``0 .. S-1``.
    """
    values = list(range(seeds)) if isinstance(seeds, int) else sorted(seeds)
    parts: list[str] = []
    first = prev = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(f"{first}" if first == prev else f"{first}-{prev}")
        if value is not None:
            first = prev = value
    return ", ".join(parts)


def _shortfall(verdict: dict[str, Any]) -> str:
    """Which peers a DGPO method is below, and in what: ``"tpe (mean, share), rea (share)"``."""
    per_peer = verdict.get("per_peer")
    if per_peer is None:  # older reports: only the comparison with the better peer
        what = [w for w, ok in (("mean", verdict["val_mean_ok"]), ("share", verdict["share_ok"])) if not ok]
        return "the better peer (" + ", ".join(what) + ")"
    below = []
    for peer, ok in per_peer.items():
        what = [w for w, good in (("mean", ok["val_mean_ok"]), ("share", ok["share_ok"])) if not good]
        if what:
            below.append(f"{peer} ({', '.join(what)})")
    return ", ".join(below)


def _constraint_lines(constraints: dict[str, float] | None) -> list[str]:
    """The hard budgets of a constrained comparison, in words (none for the unconstrained task)."""
    if not constraints:
        return []
    units = {"max_latency_ms": ("latency", "ms"), "max_params_m": ("parameters", "M")}
    text = ", ".join(f"{units[k][0]} <= {v:g} {units[k][1]}" for k, v in constraints.items())
    return [
        f"**Under hard budgets: {text}.** Every method sees an over-budget cell as validation accuracy 0 (the look-up "
        "still counts); the oracle and the share at the optimum refer to the best feasible cell "
        "(docs/howto-constrained.md).",
        "",
    ]


def efficiency_section(
    report: dict[str, Any] | None, title: str = "## 2. Query efficiency against the peers"
) -> list[str]:
    """Section 2: per dataset and budget, every method's best validation and share at the optimum; the verdicts."""
    lines = [title, ""]
    if report is None:
        return [*lines, "Not run yet: `python benchmarks/query_efficiency.py` writes `query_efficiency.json`.", ""]
    budgets = [str(b) for b in report["budgets"]]
    peers = report.get("peers", ["rea", "ls"])
    seeds = report["seeds"]
    n_seeds = seeds if isinstance(seeds, int) else len(seeds)
    lines += [
        f"Command: `{report['command']}`  ",
        f"Versions: {_versions(report)}  ",
        f"Seeds: {_seed_text(seeds)} ({n_seeds} per method, the same seeds for every method).  ",
        f"Peers: {', '.join(f'`{p}`' for p in peers)}.",
        "",
        *_constraint_lines(report.get("constraints")),
        "Queries = distinct cells looked up (all counted, a repeated cell is free). Each cell of the first table: mean "
        "best validation accuracy ± std over seeds / share of seeds at the optimum. A DGPO method *matches or beats "
        "the peers* at a budget when its mean best validation accuracy is at least every peer's and its share of "
        "seeds at the optimum is at least every peer's; otherwise the verdict names the peers it is below and in "
        "what (mean, share).",
        "",
    ]
    if n_seeds < FEW_SEEDS:
        lines += [
            f"Only {n_seeds} seed{'' if n_seeds == 1 else 's'} per method: one run moves a share at the optimum by "
            f"{1 / n_seeds:.0%}, so these verdicts are indicative only.",
            "",
        ]
    failures = []
    for dataset, entry in report["datasets"].items():
        oracle = entry["oracle"]["val_acc"]
        lines += [
            f"### {NAMES.get(dataset, dataset)} (oracle {oracle:.4f})",
            "",
            "| method | " + " | ".join(f"@{b} queries" for b in budgets) + " | time per run |",
            "|---|" + "---|" * (len(budgets) + 1),
        ]
        for method, rows in entry["table"].items():
            cells = [
                f"{rows[b]['val_mean']:.2f} ± {rows[b]['val_std']:.2f} / {rows[b]['share_optimum']:.0%}"
                for b in budgets
            ]
            wall = entry["mean_wall_time_per_run_s"][method]
            name = f"{method} (peer)" if method in peers else method
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {wall:.1f} s |")
        if entry["verdicts"]:
            lines += [
                "",
                "| DGPO method | " + " | ".join(f"@{b}" for b in budgets) + " |",
                "|---|" + "---|" * len(budgets),
            ]
        for method, rows in entry["verdicts"].items():
            marks = []
            for b in budgets:
                verdict = rows[b]
                if verdict["beats_peers"]:
                    marks.append("matches or beats")
                    continue
                marks.append(f"**below** {_shortfall(verdict)}")
                own = entry["table"][method][b]
                failures.append(
                    f"{NAMES.get(dataset, dataset)} @{b}: {method} {own['val_mean']:.3f} / "
                    f"{own['share_optimum']:.0%} vs the best peer values {verdict['peer_val_mean']:.3f} / "
                    f"{verdict['peer_share_optimum']:.0%}; below {_shortfall(verdict)}"
                )
            lines.append(f"| {method} | " + " | ".join(marks) + " |")
        if entry["verdicts"] and all(p in entry["table"] for p in peers):
            lines += _margin_lines(entry, budgets, peers, n_seeds)
        lines += ["", f"Curves: `{entry['plot']}`", ""]
    if not any(entry["verdicts"] for entry in report["datasets"].values()):
        return [*lines, "No DGPO method in this comparison, so no verdicts.", ""]
    lines += ["### Where a DGPO method is below the peers", ""]
    lines += [f"- {f}" for f in failures] if failures else ["Nowhere."]
    return [*lines, ""]


def _margin_lines(entry: dict[str, Any], budgets: list[str], peers: list[str], n_seeds: int) -> list[str]:
    """A table of each DGPO method's margin over the best peer: mean difference ± its standard error / share.

    The mean difference is to the peer with the highest mean; its standard error is
    ``sqrt(σ_method² / n + σ_peer² / n)`` over the ``n`` seeds of each (independent runs). The share difference is
    to the highest share of any peer (the verdict's ``peer_share_optimum``), in percentage points.
    """
    lines = [
        "",
        f"Margin over the best peer: the mean difference to the peer with the highest mean (named) ± the standard "
        f"error of that difference over {n_seeds} seeds each / the share difference, in points, to the highest "
        "share of any peer (not necessarily the named one). A mean difference within about two standard errors is "
        "a tie that more seeds could turn either way.",
        "",
        "| DGPO method | " + " | ".join(f"@{b}" for b in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    table = entry["table"]
    for method in entry["verdicts"]:
        cells = []
        for b in budgets:
            own = table[method][b]
            best = max(peers, key=lambda peer: table[peer][b]["val_mean"])
            error = float(np.hypot(own["val_std"], table[best][b]["val_std"])) / np.sqrt(n_seeds)
            share = entry["verdicts"][method][b]["peer_share_optimum"]  # the verdict's own best peer share
            cells.append(
                f"{own['val_mean'] - table[best][b]['val_mean']:+.3f} ± {error:.3f} ({best}) / "
                f"{100 * (own['share_optimum'] - share):+.0f}"
            )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def multi_objective_section(report: dict[str, Any] | None) -> list[str]:
    """Section 3: accuracy against latency; hypervolume ratio and share of the true front per method and budget."""
    lines = ["## 3. Accuracy against latency: Pareto fronts (NB201 CIFAR-10)", ""]
    if report is None:
        return [*lines, "Not run yet: `python benchmarks/multi_objective.py` writes `multi_objective.json`.", ""]
    budgets = [str(b) for b in report["budgets"]]
    lines += [
        f"Command: `{report['command']}`  ",
        f"Versions: {_versions(report)}  ",
        f"Seeds: {_seed_text(report['seeds'])} ({len(report['seeds'])} per method, the same for every method).  ",
        f"Objectives: {' vs '.join(report['objectives'])}; the true front has {report['true_front_size']} points; "
        f"hypervolume reference point {[round(v, 3) for v in report['reference']]} ({report['reference_rule']}).",
        "",
        "Each cell: mean ± std over seeds of the hypervolume of the front found divided by the true front's "
        "(HV ratio) / mean share of the true front's points queried. Queries are distinct cells (a repeated cell "
        "is free); the true front is computed from the whole table and not counted.",
        "",
        "| method | " + " | ".join(f"@{b} queries" for b in budgets) + " | time per run |",
        "|---|" + "---|" * (len(budgets) + 1),
    ]
    for method, stats in report["summary"].items():
        cells = [
            f"{stats['hv_ratio'][b][0]:.4f} ± {stats['hv_ratio'][b][1]:.4f} / {stats['share'][b][0]:.1%}"
            for b in budgets
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {report['mean_wall_time_s'][method]:.1f} s |")
    lines += [
        "",
        "Verdicts (DGPO's best multi-objective preset, the first of `dgpo-mo-gp`, `dgpo-mo` in the run, against "
        "the best Optuna sampler, by mean HV ratio):",
        "",
    ]
    lines += [f"- @{q}: {text}" for q, text in report["verdicts"].items()] or ["- no verdicts (a method is missing)"]
    below = [f"@{q}" for q, text in report["verdicts"].items() if " is below " in text]
    if report["verdicts"]:
        lines += ["", f"Where DGPO's best preset is below: {', '.join(below) if below else 'nowhere'}."]
    return [*lines, "", f"Fronts and hypervolume curves: `{report['pareto_png']}`", ""]


def inverse_section(report: dict[str, Any] | None, letter: str, file_name: str = "inverse_control.json") -> list[str]:
    """Section 1 ``letter``: where the inverse control ends, per seed (``inverse_control.json`` or a variant's file)."""
    title = f"## 1{letter}. Inverse control, per seed: `{file_name}`"
    if report is None:
        return [title, "", "Not run yet: `python benchmarks/inverse_control.py`.", ""]
    settings = report["settings"]
    margin = report["chance_margin"]
    variant = settings["variant"]
    changed = settings.get("preset_settings") or {}
    method = (
        f"DGPO as published (variant `{variant}`)"
        if variant == "published"
        else f"DGPO preset `{variant}` ({', '.join(f'`{k}={v}`' for k, v in changed.items())})"
    )
    if settings.get("changed"):
        own = settings.get("preset_values") or {}
        given = "; ".join(
            f"`--set {k}={v}`" + (f" (the preset's own: `{own[k]}`)" if k in own else "")
            for k, v in settings["changed"].items()
        )
        method += f", run with {given}"
    records = report["records"]
    reached = sum(bool(r["at_chance"]) for r in records)
    lines = [
        title,
        "",
        f"Command: `{report['command']}`  ",
        f"{method}, reward `-R`, {settings['epochs']} batch{'' if settings['epochs'] == 1 else 'es'} of 15, "
        f"learning rate {settings['lr']:g}, {settings['n_steps']} denoising steps, from the all-cells model. "
        f'"at chance": within {margin:g} points of chance. Shares are of 500 fresh samples (uncounted); '
        '"parameter-free": no convolution and not at chance; "chance cells in training": sampled episodes at '
        "chance (last batch with one)"
        + (
            " the policy drew, then those the starting model drew for the exploration copies."
            if "explore_copies" in changed
            else "."
        ),
        "",
        f"At chance: {reached} of {len(records)} runs.",
        "",
        "| dataset | seed | before | after | at chance | chance share | parameter-free share | distinct samples "
        "| chance cells in training (last batch) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["records"]:
        explored = f"; starting model {r['explore_chance_cells']}" if "explore_copies" in changed else ""
        lines.append(
            f"| {NAMES[r['dataset']]} | {r['seed']} | {r['sample_mean_before']:.2f} | {r['sample_mean_after']:.2f} "
            f"| {'yes' if r['at_chance'] else '**no**'} | {r['chance_share']:.1%} | {r['param_free_share']:.1%} "
            f"| {r['distinct_samples']} | {r['train_chance_cells']} ({r['last_chance_batch'] or '-'}){explored} |"
        )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    """Read the JSON, write the Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/RESULTS.md"))
    args = parser.parse_args(argv)
    published = _load(args.results / "reproduce_paper.json")
    models = [r for r in (published or {}).get("records", []) if r["job"] == "pretrain"]
    further: list[str] = []
    for letter, extra in zip("abcdefgh", sorted(args.results.glob("reproduce_paper_*.json")), strict=False):
        title = f"## 1{letter}. Reproduction, further settings: `{extra.name}` (the models of section 1)"
        further += reproduction_section(_load(extra), title, extra.name, models)
    letters = "abcdefghijklmnop"
    inverse_letter = letters[len(sorted(args.results.glob("reproduce_paper_*.json"))[:8])]
    further_inverse: list[str] = []
    variants = sorted(args.results.glob("inverse_control_*.json"))[:6]
    for letter, extra in zip(letters[letters.index(inverse_letter) + 1 :], variants, strict=False):
        further_inverse += inverse_section(_load(extra), letter, extra.name)
    further_efficiency: list[str] = []
    for letter, extra in zip("abcdefgh", sorted(args.results.glob("query_efficiency_*.json")), strict=False):
        title = f"## 2{letter}. Query efficiency, further settings: `{extra.name}`"
        further_efficiency += efficiency_section(_load(extra), title)
    lines = [
        "# Results",
        "",
        "Generated by `python benchmarks/results_md.py` from the JSON files in `benchmarks/results/`; do not edit by "
        "hand. Validation accuracy is the 200-epoch mean over training seeds (percent); the oracle is the best cell "
        "of the benchmark. Machine: 2 CPU cores, no GPU.",
        "",
        *reproduction_section(published, "## 1. Paper reproduction (DGPO as published)", "reproduce_paper.json"),
        *further,
        *inverse_section(_load(args.results / "inverse_control.json"), inverse_letter),
        *further_inverse,
        *efficiency_section(_load(args.results / "query_efficiency.json")),
        *further_efficiency,
        *multi_objective_section(_load(args.results / "multi_objective.json")),
    ]
    atomic_write_text(args.out, "\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
