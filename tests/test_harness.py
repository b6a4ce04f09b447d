"""The run harness: executors, store, compact curves, resume and interrupt semantics (docs/harness.md)."""

from __future__ import annotations

import json
import math
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from benchmark_scripts import load_script as _script
from harness_jobs import die, fail, pid, sleep_and_tell, square

from agents.baselines import SearchResult
from agents.cli import main as cli_main
from agents.harness import (
    ComparisonFailed,
    ComparisonInterrupted,
    DamagedOutputError,
    Job,
    LocalExecutor,
    OutputsExistError,
    RunStore,
    SerialExecutor,
    SettingsMismatchError,
    benchmark_kwargs_for,
    comparison_paths,
    comparison_settings,
    decode_curve,
    encode_curve,
    output_stem,
    register_method,
    result_from_dict,
    result_to_dict,
    run_baseline,
    run_comparison,
)
from agents.harness import registry as harness_registry
from agents.harness.lock import LOCK_NAME
from dgpo_env.io import atomic_write_bytes, atomic_write_text, dumps_json, ensure_writable_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo registrations made by a test."""
    monkeypatch.setattr(harness_registry, "_REGISTRY", dict(harness_registry._REGISTRY))
    monkeypatch.setattr(harness_registry, "_RESOLVED", dict(harness_registry._RESOLVED))


# ---------------------------------------------------------------------- compact curves
def _bits(values: Any) -> list[str]:
    """Exact identity of floats (``-0.0`` differs from ``0.0``; NaNs compare equal)."""
    return [repr(float(v)) for v in values]


def outputs(directory: Path) -> list[str]:
    """The names in an output directory, without the lock file every comparison leaves (agents.harness.lock)."""
    return sorted(p.name for p in directory.iterdir() if p.name != LOCK_NAME)


def _random_curves(n: int) -> Iterator[list[float]]:
    rng = np.random.default_rng(0)
    yield []
    yield [0.0, -0.0, 0.0]
    yield [math.nan, math.nan, 1.0, math.inf, -math.inf]
    for _ in range(n):
        length = int(rng.integers(1, 300))
        if rng.random() < 0.5:  # best-so-far: a non-decreasing step function
            values = np.maximum.accumulate(rng.choice(rng.normal(90, 2, size=8), size=length))
        else:  # anything: repeats, decreases, tiny differences
            values = rng.choice([1.0, 1.0 + 1e-15, -2.5, 91.60666656494141, 1e300], size=length)
        yield [float(v) for v in values]


def test_curve_steps_round_trip_exactly_through_json() -> None:
    for curve in _random_curves(300):
        encoded = encode_curve(curve)
        assert encoded["length"] == len(curve)
        assert [n for n, _ in encoded["steps"]] == sorted({n for n, _ in encoded["steps"]})
        again = json.loads(json.dumps(encoded))
        assert _bits(decode_curve(again)) == _bits(curve)
        assert isinstance(decode_curve(again), tuple)
    best_so_far = [78.5, 78.5, 89.6, 89.6, 89.6, 91.0]
    assert encode_curve(best_so_far) == {"length": 6, "steps": [[1, 78.5], [3, 89.6], [6, 91.0]]}
    assert decode_curve(best_so_far) == tuple(best_so_far)  # the old format: the full list


@pytest.mark.parametrize(
    "bad",
    [
        {"length": 3, "steps": [[2, 1.0]]},
        {"length": 3, "steps": [[1, 1.0], [1, 2.0]]},
        {"length": 3, "steps": [[1, 1.0], [4, 2.0]]},
        {"length": 2, "steps": []},
        {"length": 0, "steps": [[1, 1.0]]},
    ],
)
def test_malformed_curve_steps_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="malformed curve steps"):
        decode_curve(bad)


def test_search_results_read_old_and_new_json() -> None:
    result = run_baseline("rea", {"name": "toy"}, 3, 60)
    new = json.loads(json.dumps(result_to_dict(result)))
    assert isinstance(new["curve"], dict) and len(new["curve"]["steps"]) < len(result.curve)
    assert result_from_dict(new) == result
    old = json.loads(json.dumps(result.to_dict()))  # the format before compact curves
    assert result_from_dict(old) == result == SearchResult.from_dict(old)


# ---------------------------------------------------------------------- atomic files
def test_atomic_writes_replace_whole_files_and_leave_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_text(target, "first")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    target.chmod(0o600)
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second" and stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "missing" / "b.json", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    with pytest.raises(OSError, match=r"cannot write to '/dev/null/x': Not a directory"):
        ensure_writable_dir("/dev/null/x")
    assert ensure_writable_dir(tmp_path / "new" / "dir").is_dir()
    assert list((tmp_path / "new" / "dir").iterdir()) == []


def test_dumps_json_is_json_with_short_arrays_inline() -> None:
    data = {"a": [1, 2.5, None], "steps": [[1, 0.1], [4, math.inf]], "nested": {"x": [{"y": []}], "e": {}}, "s": "é"}
    text = dumps_json(data)
    assert '"steps": [[1, 0.1], [4, Infinity]]' in text and '"a": [1, 2.5, null]' in text
    assert json.loads(text) == data
    assert json.loads(dumps_json([Path("p")], default=str)) == ["p"]


# ---------------------------------------------------------------------- executors
def _gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_gone(pids: list[int], timeout: float) -> float:
    start = time.monotonic()
    while not all(_gone(p) for p in pids):
        if time.monotonic() - start > timeout:
            alive = [p for p in pids if not _gone(p)]
            raise AssertionError(f"processes still alive after {timeout} s: {alive}")
        time.sleep(0.02)
    return time.monotonic() - start


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (read from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                out.append(int(entry.name))
    return out


def test_executors_stream_results_errors_and_worker_deaths() -> None:
    jobs = [Job(f"sq{i}", square, (i,)) for i in range(4)]
    jobs += [Job("boom", fail, ("no good",)), Job("die", die), Job("lambda", lambda: 1)]
    serial = {r.job_id: r for r in SerialExecutor().run(jobs[:5])}
    local = {r.job_id: r for r in LocalExecutor(2).run(jobs)}
    for results in (serial, local):
        assert {i: results[f"sq{i}"].value for i in range(4)} == {0: 0, 1: 1, 2: 4, 3: 9}
        boom = results["boom"]
        assert not boom.ok and "Traceback" in str(boom.error) and "ValueError: no good" in str(boom.error)
    death = local["die"]
    assert not death.ok and death.exit_code == -signal.SIGKILL
    assert "job 'die' lost its worker process" in str(death.error)
    assert "exit code -9 (killed by SIGKILL" in str(death.error)
    assert "could not be pickled" in str(local["lambda"].error)
    with pytest.raises(ValueError, match="distinct"):
        list(SerialExecutor().run([Job("a", pid), Job("a", pid)]))


def test_an_idle_worker_never_blocks_the_end_of_the_stream() -> None:
    import threading

    results: list[Any] = []  # one worker, idle after the first job, while the last job fails in the parent
    jobs = [Job("sq", square, (2,)), Job("lambda", lambda: 1)]
    thread = threading.Thread(target=lambda: results.extend(LocalExecutor(1).run(jobs)), daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive() and [r.ok for r in results] == [True, False]


def test_one_process_per_job() -> None:
    pids = [r.value for r in LocalExecutor(2, max_jobs_per_worker=1).run([Job(str(i), pid) for i in range(5)])]
    assert len(set(pids)) == 5 and os.getpid() not in pids
    shared = [r.value for r in LocalExecutor(1).run([Job(str(i), pid) for i in range(3)])]
    assert len(set(shared)) == 1


def test_closing_the_stream_stops_running_workers(tmp_path: Path) -> None:
    files = [tmp_path / f"pid{i}" for i in range(2)]
    jobs = [Job(f"slow{i}", sleep_and_tell, (str(f), 60.0)) for i, f in enumerate(files)]
    with closing(LocalExecutor(3).run([Job("quick", square, (3,)), *jobs])) as stream:
        assert next(stream).value == 9  # the stream is paused here: no new job starts, running ones go on
        deadline = time.monotonic() + 30
        while not all(f.exists() and f.read_text() for f in files):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    # leaving the block closed the stream: the workers were sent SIGTERM and joined
    assert _wait_gone([int(f.read_text()) for f in files], 0.5) < 0.5


# ---------------------------------------------------------------------- store and naming
def test_output_names_come_from_the_settings() -> None:
    assert (
        output_stem("nb201-cifar10", 300, ["rs", "rea", "ls"], [0, 1, 2])
        == "compare_nb201-cifar10_300q_3seeds_rs+rea+ls"
    )
    assert output_stem("toy", 20, ["rs"], [0]) == "compare_toy_20q_1seed_rs"
    other = output_stem("toy", 20, ["rs"], [5, 7])
    assert other.startswith("compare_toy_20q_2seeds-") and other != output_stem("toy", 20, ["rs"], [7, 5])
    long = output_stem("toy", 20, [f"method-{i}" for i in range(10)], [0])
    assert long.startswith("compare_toy_20q_1seed_10methods-") and len(long) < 60
    assert output_stem("toy", 20, ["a/b"], [0]).startswith("compare_toy_20q_1seed_1methods-")
    paths = comparison_paths("out", "toy", 20, ["rs"], [0])
    assert (paths.json.name, paths.png.name, paths.store.name) == tuple(
        f"compare_toy_20q_1seed_rs.{s}" for s in ("json", "png", "runs")
    )


def test_store_keeps_records_and_refuses_other_settings(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "x.runs")
    store.create({"max_queries": 10, "seeds": (0, 1)})
    store.put("rs-seed0", {"value": 1.5})
    store.put("odd/id with space", {"value": [1, 2]})
    (store.directory / "broken.run.json").write_text("{")
    with pytest.warns(UserWarning, match="unreadable"):
        assert store.load() == {"rs-seed0": {"value": 1.5}, "odd/id with space": {"value": [1, 2]}}
    assert store.settings() == {"max_queries": 10, "seeds": [0, 1]}
    from agents.harness.store import check_settings

    with pytest.raises(SettingsMismatchError, match=r"max_queries 10 there, 20 now") as err:
        check_settings(store.settings() or {}, {"max_queries": 20, "seeds": [0, 1]}, store.directory)
    assert "seeds" not in str(err.value)
    store.remove()
    assert not store.directory.exists()


# ---------------------------------------------------------------------- comparisons in process
FLAKY_CALLS: list[int] = []


def _flaky(benchmark_kwargs: dict[str, Any], seed: int, max_queries: int) -> SearchResult:
    FLAKY_CALLS.append(seed)
    if seed == 1:
        raise ValueError("flaky fails on seed 1")
    return run_baseline("rs", benchmark_kwargs, seed, max_queries)


def _interrupting(benchmark_kwargs: dict[str, Any], seed: int, max_queries: int) -> SearchResult:
    if seed == 1:
        raise KeyboardInterrupt  # what Ctrl-C does to an in-process run
    return run_baseline("ls", benchmark_kwargs, seed, max_queries)


def _strip(path: Path) -> dict[str, Any]:
    """A comparison JSON without what differs between equal runs: versions and measured wall times."""
    data = json.loads(path.read_text())
    data.pop("versions")
    for runs in data["runs"].values():
        for run in runs:
            run.pop("wall_time_s")
    for summary in data["summary"]:
        summary.pop("mean_wall_time_s")
    return dict(data)


def test_a_failing_run_keeps_finished_runs_and_resume_completes(
    tmp_path: Path, registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    register_method("flaky", _flaky)
    FLAKY_CALLS.clear()
    kwargs: dict[str, Any] = {"out_dir": tmp_path, "progress": False, "echo": False, "executor": SerialExecutor()}
    with pytest.raises(ComparisonFailed, match="flaky fails on seed 1") as err:
        run_comparison("toy", ["rs", "flaky"], 3, 30, **kwargs)
    assert "run 'flaky' seed 1 failed" in str(err.value) and "Traceback" in str(err.value)
    paths = comparison_paths(tmp_path, "toy", 30, ["rs", "flaky"], [0, 1, 2])
    assert err.value.store == paths.store
    assert sorted(RunStore(paths.store).load()) == ["flaky-seed0", "rs-seed0", "rs-seed1", "rs-seed2"]
    partial = json.loads(paths.json.read_text())
    assert partial["complete"] is False and partial["missing"] == [["flaky", 1], ["flaky", 2]]
    assert [r["seed"] for r in partial["runs"]["flaky"]] == [0]

    register_method("flaky", _fixed_flaky, overwrite=True)
    FLAKY_CALLS.clear()
    done = run_comparison("toy", ["rs", "flaky"], 3, 30, resume=True, **kwargs)
    assert done.complete and FLAKY_CALLS == [1, 2]  # nothing finished ran again
    assert not paths.store.exists()  # the complete JSON holds every run
    ref = run_comparison("toy", ["rs", "flaky"], 3, 30, n_jobs=1, out_dir=tmp_path / "ref", progress=False, echo=False)
    assert ref.json_path is not None and _strip(paths.json) == _strip(ref.json_path)

    # the CLI: exit 1 with the traceback and a hint
    register_method("flaky", _flaky, overwrite=True)
    argv = ["compare", "--env", "toy", "--algos", "flaky", "--seeds", "2", "--max-queries", "10", "--jobs", "1"]
    assert cli_main([*argv, "--out", str(tmp_path / "cli"), "--no-progress"]) == 1
    stderr = capsys.readouterr().err
    assert "ValueError: flaky fails on seed 1" in stderr and "--resume" in stderr


def _fixed_flaky(benchmark_kwargs: dict[str, Any], seed: int, max_queries: int) -> SearchResult:
    FLAKY_CALLS.append(seed)
    return run_baseline("rs", benchmark_kwargs, seed, max_queries)


def test_in_process_interrupt_writes_the_partial_comparison(
    tmp_path: Path, registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    register_method("interrupting", _interrupting)
    argv = ["compare", "--env", "toy", "--algos", "ls,interrupting", "--seeds", "2", "--max-queries", "10"]
    assert cli_main([*argv, "--jobs", "1", "--out", str(tmp_path), "--no-progress"]) == 130
    out, err = capsys.readouterr()
    assert "INCOMPLETE: 3 of 4 runs finished" in out and "--resume" in err
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert data["complete"] is False and data["missing"] == [["interrupting", 1]]
    with pytest.raises(ComparisonInterrupted) as caught:
        run_comparison(
            "toy", ["interrupting"], [1], 10, n_jobs=1, out_dir=tmp_path / "none", progress=False, echo=False
        )
    assert caught.value.comparison.runs == {} and caught.value.store is not None
    assert outputs(tmp_path / "none") == [caught.value.store.name]  # nothing but the store


def test_a_run_stored_just_as_ctrl_c_comes_is_in_the_partial_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = RunStore.put

    def put_then_interrupt(self: RunStore, job_id: str, record: dict[str, Any]) -> Path:
        path = original(self, job_id, record)
        if job_id == "rs-seed1":
            raise KeyboardInterrupt  # after the file is written, before the run is counted in memory
        return path

    monkeypatch.setattr(RunStore, "put", put_then_interrupt)
    with pytest.raises(ComparisonInterrupted) as caught:
        run_comparison("toy", ["rs"], 3, 10, n_jobs=1, out_dir=tmp_path, progress=False, echo=False)
    assert caught.value.comparison.missing == [("rs", 2)]
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert [r["seed"] for r in data["runs"]["rs"]] == [0, 1] and data["missing"] == [["rs", 2]]


def test_outputs_are_never_replaced_silently(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["compare", "--env", "toy", "--max-queries", "20", "--jobs", "1", "--out", str(tmp_path), "--no-progress"]
    assert cli_main([*base, "--algos", "rs", "--seeds", "2"]) == 0
    assert cli_main([*base, "--algos", "ls", "--seeds", "3"]) == 0
    names = outputs(tmp_path)
    assert names == [f"compare_toy_20q_{s}.{x}" for s in ("2seeds_rs", "3seeds_ls") for x in ("json", "png")]
    first = tmp_path / "compare_toy_20q_2seeds_rs.json"
    before = first.stat().st_mtime_ns
    capsys.readouterr()
    start = time.perf_counter()
    assert cli_main([*base, "--algos", "rs", "--seeds", "2"]) == 2
    err = capsys.readouterr().err
    assert "already exist" in err and "--resume" in err and "--force" in err and str(first) in err
    assert time.perf_counter() - start < 2 and first.stat().st_mtime_ns == before
    assert not (tmp_path / "compare_toy_20q_2seeds_rs.runs").exists()
    with pytest.raises(OutputsExistError):
        run_comparison("toy", ["rs"], 2, 20, n_jobs=1, out_dir=tmp_path, progress=False, echo=False)
    assert cli_main([*base, "--algos", "rs", "--seeds", "2", "--resume"]) == 0  # complete: only rewritten
    assert cli_main([*base, "--algos", "rs", "--seeds", "2", "--force"]) == 0
    with pytest.raises(SystemExit) as both:  # argparse: mutually exclusive
        cli_main([*base, "--algos", "rs", "--seeds", "2", "--force", "--resume"])
    assert both.value.code == 2
    # resuming a comparison made from another spec of the same benchmark is refused, naming the setting
    with pytest.raises(SettingsMismatchError, match=r"env 'toy' there, 'dgpo_env/ToyDAG-v0' now"):
        run_comparison("dgpo_env/ToyDAG-v0", ["rs"], 2, 20, n_jobs=1, out_dir=tmp_path, resume=True, echo=False)
    capsys.readouterr()
    start = time.perf_counter()
    assert cli_main([*base[:-3], "--out", "/dev/null/x", "--algos", "rs", "--seeds", "2"]) == 2
    assert time.perf_counter() - start < 2
    assert capsys.readouterr().err.strip() == "dgpo compare: error: cannot write to '/dev/null/x': Not a directory"


# ---------------------------------------------------------------------- resume: refusals write nothing
TOY = ["compare", "--env", "toy", "--max-queries", "10", "--jobs", "1", "--no-progress"]


def test_a_refused_resume_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*TOY, "--algos", "ls", "--seeds", "3", "--out", str(tmp_path)]
    assert cli_main(argv) == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    other_spec = [a if a != "toy" else "dgpo_env/ToyDAG-v0" for a in argv]  # the same file names
    assert cli_main([*other_spec, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "different settings" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no store with the wrong settings
    assert cli_main([*argv, "--resume"]) == 0  # so the right resume still works


def test_resume_with_nothing_to_resume_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main([*TOY, "--algos", "rs", "--seeds", "1", "--out", str(tmp_path), "--resume"]) == 0
    assert capsys.readouterr().err.strip() == "nothing to resume for these settings; starting a new comparison"
    assert cli_main([*TOY, "--algos", "rs", "--seeds", "1", "--out", str(tmp_path), "--resume"]) == 0
    assert "nothing to resume" not in capsys.readouterr().err


def _rs_copy(benchmark_kwargs: dict[str, Any], seed: int, max_queries: int) -> SearchResult:
    return run_baseline("rs", benchmark_kwargs, seed, max_queries)


def test_method_names_with_dots_get_their_own_files(tmp_path: Path, registry: None) -> None:
    assert comparison_paths("o", "toy", 10, ["rs.v2"], [0]).json.name == "compare_toy_10q_1seed_rs.v2.json"
    register_method("rs.v2", _rs_copy)
    kwargs: dict[str, Any] = {"n_jobs": 1, "out_dir": tmp_path, "progress": False, "echo": False}
    run_comparison("toy", ["rs"], 1, 10, **kwargs)
    run_comparison("toy", ["rs.v2"], 1, 10, **kwargs)  # not refused as "already exists"
    assert outputs(tmp_path) == [f"compare_toy_10q_1seed_{m}.{x}" for m in ("rs", "rs.v2") for x in ("json", "png")]
    assert list(json.loads((tmp_path / "compare_toy_10q_1seed_rs.v2.json").read_text())["runs"]) == ["rs.v2"]


def test_counts_are_checked_before_any_work_and_numpy_integers_are_ints(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"out_dir": tmp_path, "progress": False, "echo": False}
    done = run_comparison("toy", ["rs"], np.int64(2), np.int64(7), n_jobs=np.int64(1), **kwargs)
    assert type(done.max_queries) is int and done.seeds == [0, 1]
    assert all(type(r.max_queries) is int and r.max_queries == 7 for r in done.runs["rs"])
    assert json.loads(next(tmp_path.glob("*.json")).read_text())["max_queries"] == 7
    assert run_comparison("toy", ["rs"], [np.int64(3)], 7, n_jobs=1, **kwargs).seeds == [3]
    good: dict[str, Any] = {"seeds": 1, "max_queries": 5, "n_jobs": 1}
    empty = tmp_path / "none"
    for name in good:
        for bad in (True, 2.9, 2.0, "3", None, math.nan, 0):
            args = {**good, name: bad}
            error = ValueError if bad == 0 else TypeError
            with pytest.raises(error, match=name):
                run_comparison("toy", ["rs"], out_dir=empty, progress=False, echo=False, **args)
    with pytest.raises(TypeError, match=r"seeds\[1\]"):
        run_comparison("toy", ["rs"], [0, 1.0], 5, n_jobs=1, out_dir=empty, progress=False, echo=False)
    assert not empty.exists()


def _record(**changes: Any) -> dict[str, Any]:
    record = result_to_dict(run_baseline("rs", {"name": "toy"}, 0, 10))
    return {**record, **changes}


def _store_with(record: Any = None, manifest: Any = None) -> Any:
    def make(paths: Any) -> Path:
        paths.json.unlink()
        store = RunStore(paths.store)
        settings = comparison_settings("toy", benchmark_kwargs_for("toy", None), 10, ["rs"], [0, 1])
        store.create(settings)
        if manifest is not None:
            target = store.directory / "manifest.json"
            if manifest == "dir":
                target.unlink()
                target.mkdir()
            else:
                target.write_text(manifest)
            return target
        if record is not None:
            return store.put("rs-seed0", record)
        return store.directory

    return make


def _json_with(edit: Any) -> Any:
    def make(paths: Any) -> Path:
        data = json.loads(paths.json.read_text())
        edit(data)
        paths.json.write_text(json.dumps(data))
        return paths.json

    return make


DAMAGE = {
    "manifest-shape": _store_with(manifest='{"foo": 1}'),
    "manifest-list": _store_with(manifest="[1, 2]"),
    "manifest-null": _store_with(manifest='{"settings": null}'),
    "manifest-garbage": _store_with(manifest="\x00garbage{"),
    "manifest-dir": _store_with(manifest="dir"),
    "record-empty": _store_with(record={}),
    "record-no-curve": _store_with(record={k: v for k, v in _record().items() if k != "curve"}),
    "record-bad-curve": _store_with(record=_record(curve={"length": 3, "steps": [[2, 1.0]]})),
    "record-curve-int": _store_with(record=_record(curve=5)),
    "record-budget": _store_with(record=_record(max_queries=99)),
    "record-method": _store_with(record=_record(method="rea")),
    "record-seed": _store_with(record=_record(seed=1)),
    "record-over-budget": _store_with(record=_record(n_queries=11, curve=[1.0] * 11)),
    "json-runs-list": _json_with(lambda d: d.update(runs=[1])),
    "json-run-budget": _json_with(lambda d: d["runs"]["rs"][0].update(max_queries=3)),
    "json-run-seed": _json_with(lambda d: d["runs"]["rs"][0].update(seed=9)),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_outputs_are_named_with_the_fix(
    damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*TOY, "--algos", "rs", "--seeds", "2", "--out", str(tmp_path)]
    assert cli_main(argv) == 0
    damaged = DAMAGE[damage](comparison_paths(tmp_path, "toy", 10, ["rs"], [0, 1]))
    capsys.readouterr()
    assert cli_main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"{damaged} is damaged: " in err and "pass --force to start over or remove the file" in err
    with pytest.raises(DamagedOutputError):
        run_comparison("toy", ["rs"], 2, 10, n_jobs=1, out_dir=tmp_path, resume=True, progress=False, echo=False)
    assert cli_main([*argv, "--force"]) == 0 and cli_main([*argv, "--resume"]) == 0


# ---------------------------------------------------------------------- the CLI in a subprocess
CLI = [sys.executable, "-m", "agents.cli", "compare", "--env", "toy", "--algos", "rs,rea", "--jobs", "2"]
SLOW = ["--seeds", "6", "--max-queries", "500", "--no-progress"]


def _start(out: Path, *extra: str) -> subprocess.Popen[str]:
    log = out.parent / f"{out.name}.log"
    return subprocess.Popen(
        [*CLI, *SLOW, "--out", str(out), *extra],
        cwd=REPO,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a shell job
    )


def _wait_for_stored_run(process: subprocess.Popen[str], out: Path) -> list[Path]:
    deadline = time.monotonic() + 60
    while True:
        stored = list(out.glob("*.runs/*.run.json"))
        if stored:
            return stored
        assert process.poll() is None, (out.parent / f"{out.name}.log").read_text()
        assert time.monotonic() < deadline, "no run was stored within 60 s"
        time.sleep(0.02)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_workers_keeps_finished_runs_and_resume_completes(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    process = _start(out)
    _wait_for_stored_run(process, out)
    workers = _children(process.pid)
    assert len(workers) >= 2
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
    # Bounded, not timed to the second: on a loaded machine writing the partial report takes seconds.
    # That Ctrl-C did not wait for the remaining runs is checked below ("missing" is not empty).
    assert process.wait(timeout=15) == 130
    _wait_gone(workers, 1.0)
    log = (tmp_path / "cmp.log").read_text()
    assert "INCOMPLETE" in log and "--resume" in log and "Traceback" not in log, log
    (json_path,) = out.glob("*.json")
    assert json_path.name == "compare_toy_500q_6seeds_rs+rea.json"
    partial = json.loads(json_path.read_text())
    stored = RunStore(json_path.with_suffix(".runs")).load()
    finished = [[r["method"], r["seed"]] for rs in partial["runs"].values() for r in rs]
    assert partial["complete"] is False and partial["missing"] and finished
    assert sorted(finished + partial["missing"]) == sorted([m, s] for m in ("rs", "rea") for s in range(6))
    assert {f"{m}-seed{s}" for m, s in finished} <= set(stored)

    resumed = _start(out, "--resume")
    assert resumed.wait(timeout=120) == 0, (tmp_path / "cmp.log").read_text()
    complete = json.loads(json_path.read_text())
    assert complete["complete"] is True and complete["missing"] == []
    assert not json_path.with_suffix(".runs").exists()
    reference = run_comparison(
        "toy", ["rs", "rea"], 6, 500, n_jobs=1, out_dir=tmp_path / "ref", echo=False, progress=False
    )
    assert reference.json_path is not None
    assert _strip(json_path) == _strip(reference.json_path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux's")
def test_killing_the_parent_leaves_no_worker(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    process = _start(out)
    _wait_for_stored_run(process, out)
    workers = _children(process.pid)  # the workers (and multiprocessing's resource tracker)
    assert len(workers) >= 2
    process.kill()
    process.wait(timeout=10)
    assert _wait_gone(workers, 5.0) < 5.0


# ---------------------------------------------------------------------- the benchmark scripts


def test_reproduce_paper_stores_jobs_and_reads_committed_reports(tmp_path: Path) -> None:
    from harness_jobs import record

    from agents.harness import JobFailed

    rp = _script("reproduce_paper")
    store = RunStore(tmp_path / "r.runs")
    store.create({"x": 1})
    records = rp._run([Job(f"toy/{i}", record, (i,)) for i in range(3)], store, 2)
    assert sorted(r["value"] for r in records) == [0, 1, 2] and sorted(store.load()) == ["toy/0", "toy/1", "toy/2"]
    with pytest.raises(JobFailed, match="boom"):
        rp._run([Job("bad", fail, ("boom",))], store, 1)
    committed = json.loads((REPO / "benchmarks" / "results" / "reproduce_paper.json").read_text())
    ids = [rp.record_id(r) for r in committed["records"]]
    assert len(set(ids)) == len(ids) and "pretrain/full" in ids and "finetune/cifar10/full/seed0" in ids
    rp.plot(committed, tmp_path / "plot.png")  # compact curves decode for the plot
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "old.json").write_text(json.dumps(committed))
    with pytest.raises(SettingsMismatchError, match="records no settings"):
        rp.finished_records(tmp_path / "old.json", store, {"x": 1})


def test_query_efficiency_reuses_a_matching_comparison_under_the_old_name(tmp_path: Path) -> None:
    qe = _script("query_efficiency")
    legacy = {
        "seeds": [0, 1],
        "max_queries": 20,
        "checkpoints": [10],
        "benchmark_kwargs": {"name": "nb201", "dataset": "cifar10"},
        "runs": {"rea": [], "ls": []},
    }
    (tmp_path / "compare_nb201-cifar10_20q.json").write_text(json.dumps(legacy))
    args = qe.argparse.Namespace(seeds=[0, 1], table_path=None, out_dir=tmp_path, resume=True, force=False)
    found = qe.load_or_run(tmp_path / "new.json", "cifar10", ["ls", "rea"], [10, 20], args)
    assert found["json_path"] == str(tmp_path / "compare_nb201-cifar10_20q.json")
    other_seeds = qe.argparse.Namespace(seeds=[0, 1, 2], table_path=None)
    assert qe.legacy_json(tmp_path, "cifar10", ["ls", "rea"], [10, 20], other_seeds) is None
