"""One run per output directory (agents.harness.lock), and Pareto comparisons named by their objectives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_scripts import load_script as _script

from agents.cli import main
from agents.harness import OutputDirBusyError, output_dir_lock, run_comparison
from agents.harness.lock import LOCK_NAME

REPO = Path(__file__).resolve().parents[1]
HOLD = """
import sys
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire(timeout=5)
print("locked", flush=True)
sys.stdin.read()  # hold until the parent closes stdin (or kills us)
"""


def hold_lock(directory: Path, name: str = LOCK_NAME) -> subprocess.Popen[str]:
    """Another process holding ``directory``'s lock (as a running ``dgpo compare`` would)."""
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory / name)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


COMPARE = ["compare", "--env", "toy", "--algos", "rs", "--seeds", "1", "--max-queries", "4", "--no-progress"]


def test_a_second_compare_on_the_same_out_refuses_at_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    proc = hold_lock(out)
    try:
        assert main([*COMPARE, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{out} is in use by another run" in err and "choose another --out" in err
        assert "Traceback" not in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing was written
        assert main([*COMPARE, "--out", str(tmp_path / "other")]) == 0  # another directory is free
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=10)
    assert main([*COMPARE, "--out", str(out)]) == 0  # free again once the holder ended


def test_a_killed_run_leaves_no_stale_lock(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    proc = hold_lock(out)
    proc.kill()  # a crash: no clean-up code runs
    proc.wait(timeout=10)
    assert (out / LOCK_NAME).exists()  # the file stays ...
    comparison = run_comparison("toy", ["rs"], 1, 4, n_jobs=1, out_dir=out, progress=False, echo=False)
    assert comparison.complete  # ... but the operating system released the lock with the process


def test_the_lock_is_reentrant_in_one_process_and_refused_across_processes(tmp_path: Path) -> None:
    with output_dir_lock(tmp_path) as lock_file:
        assert lock_file == tmp_path / LOCK_NAME
        comparison = run_comparison("toy", ["rs"], 1, 4, n_jobs=1, out_dir=tmp_path, progress=False, echo=False)
        assert comparison.complete  # a script holding the lock can run comparisons in its directory
        grab = "import sys; from filelock import FileLock; FileLock(sys.argv[1]).acquire(timeout=0)"
        probe = subprocess.run([sys.executable, "-c", grab, str(lock_file)], capture_output=True, text=True)
        assert probe.returncode != 0 and "Timeout" in probe.stderr
    proc = hold_lock(tmp_path)
    try:
        with pytest.raises(OutputDirBusyError, match="wait for that run to finish"), output_dir_lock(tmp_path):
            pass
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=10)


def test_benchmark_scripts_refuse_an_output_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc = hold_lock(tmp_path / "qe")
    try:
        argv = ["--datasets", "cifar10", "--algos", "rs,rea,ls,tpe", "--seeds", "100", "--budgets", "5"]
        with pytest.raises(SystemExit) as exit_info:
            _script("query_efficiency").main(
                [*argv, "--out-dir", str(tmp_path / "qe"), "--out", str(tmp_path / "q.json")]
            )
        assert exit_info.value.code == 2 and "is in use by another run" in capsys.readouterr().err
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=10)
    out = tmp_path / "rp" / "reproduce.json"
    proc = hold_lock(out.parent, f"{out.name}.dgpo.lock")  # the lock of that one output, beside it
    try:
        with pytest.raises(SystemExit) as exit_info:
            _script("reproduce_paper").main(["--datasets", "cifar10", "--seeds", "1", "--out", str(out)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"{out} is in use by another run" in err and "choose another --out" in err
        assert sorted(p.name for p in out.parent.iterdir()) == ["reproduce.json.dgpo.lock"]  # nothing else written
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=10)


# ------------------------------------------------------------------ Pareto comparisons' file names


def pareto_run(out: Path, objectives: list[str], resume: bool = False) -> Path:
    pytest.importorskip("moocore")
    comparison = run_comparison(
        "nb201:cifar10", ["rs"], 1, 5, n_jobs=1, out_dir=out, progress=False, echo=False, objectives=objectives,
        resume=resume,
    )  # fmt: skip
    assert comparison.json_path is not None
    return comparison.json_path


def test_pareto_comparisons_of_other_objectives_get_their_own_files(tmp_path: Path) -> None:
    latency = pareto_run(tmp_path, ["acc", "latency"])
    params = pareto_run(tmp_path, ["acc", "params"])  # was refused: the same file names as the first
    assert latency.name == "compare_nb201-cifar10-acc-vs-latency_5q_1seed_rs.json"
    assert params.name == "compare_nb201-cifar10-acc-vs-params_5q_1seed_rs.json"
    assert (tmp_path / "compare_nb201-cifar10-acc-vs-latency_5q_1seed_rs_pareto.png").is_file()
    assert latency.read_text() != params.read_text()


def test_old_named_pareto_outputs_resume_only_with_their_objectives(tmp_path: Path) -> None:
    new = pareto_run(tmp_path, ["acc", "latency"])
    old = tmp_path / "compare_nb201-cifar10_5q_1seed_rs.json"  # the name before objectives were in names
    new.rename(old)
    assert pareto_run(tmp_path, ["acc", "latency"], resume=True) == old  # resumed from the old file
    assert not new.exists()
    other = pareto_run(tmp_path, ["acc", "params"], resume=True)  # other objectives: a new comparison
    assert other.name == "compare_nb201-cifar10-acc-vs-params_5q_1seed_rs.json" and old.is_file()
