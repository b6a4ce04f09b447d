"""Ray: the ledger actor and the Ray executor, on a real local Ray runtime (skipped without the ``ray`` extra).

One runtime (``ray.init(num_cpus=2)``, the ``ray_runtime`` fixture of conftest.py) is shared by the whole
module (Ray takes seconds to start), and the module's tests run on one pytest-xdist worker (``xdist_group``).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import harness_jobs
import numpy as np
import pytest
from test_harness import _strip, registry  # noqa: F401  (a fixture: used by name)

from agents.cli import main as cli_main
from agents.harness import (
    ComparisonFailed,
    Job,
    RunStore,
    SerialExecutor,
    comparison_paths,
    register_method,
    run_comparison,
)
from agents.harness.ray_executor import RayExecutor, check_address, check_resource
from dgpo_env.ledger import Admission, LedgerError, RayLedger

pytestmark = pytest.mark.xdist_group("ray")


def test_without_ray_the_package_imports_and_the_errors_name_the_fix(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
        "from dgpo_env.ledger import RayLedger\n"
        "try:\n    RayLedger(max_queries=3)\nexcept ImportError as err:\n    print(err)\n"
        "from agents.cli import main\n"
        f"code = main(['compare', '--env', 'toy', '--algos', 'rs', '--backend', 'ray', '--out', {str(tmp_path)!r}])\n"
        "print('exit', code)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "RayLedger needs Ray" in out.stdout and 'pip install "dgpo-env[ray]"' in out.stdout
    assert "exit 2" in out.stdout and "needs Ray, which is not installed" in out.stderr
    assert 'install the Ray extra: pip install "dgpo-env[ray]"' in out.stderr
    assert not any(tmp_path.iterdir())  # nothing was run or written


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--address", "auto"], "--address applies only with --backend ray"),
        (["--cpus-per-run", "2", "--gpus-per-run", "1"], "--cpus-per-run, --gpus-per-run apply only with"),
        (["--backend", "ray", "--jobs", "2"], "drop --jobs"),
    ],
)
def test_backend_options_that_do_not_fit_are_refused(
    argv: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["compare", "--env", "toy", "--algos", "rs", "--out", str(tmp_path), *argv]) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        ("2", TypeError, "finite real number"),
        (True, TypeError, "finite real number"),
        (None, TypeError, "finite real number"),
        (-1, ValueError, ">= 0"),
        (float("nan"), ValueError, "finite"),
        (0.00001, ValueError, "0.0001"),
    ],
)
def test_resource_amounts_are_validated_not_coerced(value: object, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        check_resource("cpus_per_run", value)


def test_resource_amounts_and_addresses_that_ray_accepts() -> None:
    assert check_resource("cpus_per_run", 2.0) == 2 and type(check_resource("cpus_per_run", 2.0)) is int
    assert check_resource("gpus_per_run", 0.25) == 0.25 and check_resource("cpus_per_run", 0) == 0
    with pytest.raises(ValueError, match="whole number of GPUs"):
        check_resource("gpus_per_run", 1.5)
    for address in (None, "auto", "local", "10.0.0.5:6379", "head-node.example:6379", "ray://10.0.0.5:10001"):
        assert check_address(address) == address
    with pytest.raises(ValueError, match="HOST:PORT"):
        check_address("10.0.0.5")
    with pytest.raises(TypeError, match="string"):
        check_address(6379)


try:
    import ray
except ImportError:  # the tests below skip
    ray = None


# ---------------------------------------------------------------------- ledger actor
@pytest.mark.usefixtures("ray_runtime")
def test_ray_ledger_records_new_known_refused_like_the_other_ledgers() -> None:
    ledger = RayLedger(max_queries=2)
    assert ledger.record("a", 50.0, None) is Admission.NEW
    assert ledger.record("a", 50.0, None) is Admission.KNOWN
    assert ledger.record("b", 70.0, 69.0) is Admission.NEW
    assert ledger.exhausted
    assert ledger.record("c", 90.0, None) is Admission.REFUSED
    assert ledger.counts() == (2, 3) and ledger.was_queried("b") and not ledger.was_queried("c")
    assert [(r.key, r.val_acc_mean, r.test_acc) for r in ledger.history] == [("a", 50.0, None), ("b", 70.0, 69.0)]
    np.testing.assert_array_equal(ledger.best_so_far(), [50.0, 70.0])
    copy = pickle.loads(pickle.dumps(ledger))  # a handle travels; it talks to the same actor
    assert copy.ledger_id == ledger.ledger_id and copy.ledger_id.startswith("ray:")
    copy.set_budget(3)
    assert ledger.max_queries == 3 and ledger.record("c", 90.0, None) is Admission.NEW
    ledger.reset()
    assert copy.counts() == (0, 0) and copy.max_queries == 3
    assert ledger.record_with_extra("e", 80.0, None, {"params_m": 0.5, "curve": [1.0, 2.0]}) is Admission.NEW
    stored = copy.stored("e")
    assert stored is not None and stored.extra == {"params_m": 0.5, "curve": [1.0, 2.0]} and copy.stored("f") is None
    with pytest.raises(TypeError, match="finite"):
        ledger.record_with_extra("f", 1.0, None, {"loss": float("nan")})
    assert ledger.counts() == (1, 1)
    with pytest.raises(TypeError, match="max_queries"):
        ledger.set_budget(2.9)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_queries"):
        RayLedger(max_queries="5")  # type: ignore[arg-type]
    ledger.kill()
    with pytest.raises(LedgerError, match="gone"):
        copy.record("d", 1.0, None)


@pytest.mark.usefixtures("ray_runtime")
def test_a_named_ledger_can_be_attached_and_not_made_twice() -> None:
    ledger = RayLedger(max_queries=5, name="test-queries")
    try:
        other = RayLedger.attach("test-queries")
        assert other.ledger_id == ledger.ledger_id
        other.record("x", 1.0, None)
        assert ledger.counts() == (1, 1)
        with pytest.raises(ValueError, match=r"RayLedger\.attach\('test-queries'\)"):
            RayLedger(name="test-queries")
    finally:
        ledger.kill()
    with pytest.raises(LedgerError, match="no ledger actor named 'absent'"):
        RayLedger.attach("absent")
    with pytest.raises(ValueError, match="needs a name"):
        RayLedger(detached=True)


class _EnvironmentActor:
    """One NB201 environment (one denoising step per episode) counting into the ledger it is given."""

    def __init__(self, ledger: RayLedger, seed: int) -> None:
        import gymnasium as gym

        import dgpo_env  # noqa: F401  (registers the ids)
        from dgpo_env.search_spaces import NB201SearchSpace

        self.env = gym.make("dgpo_env/NB201-CIFAR10-v0", n_steps=1, ledger=ledger)
        self.env.reset(seed=seed)
        space = NB201SearchSpace()
        self.allowed = np.split(space.flat_action_mask, np.cumsum(space.nvec)[:-1])  # per entry: bool[K]
        self.rng = np.random.default_rng(seed)

    def episodes(self, n: int) -> list[dict[str, Any]]:
        """``n`` episodes of random allowed cells; the terminal info of each."""
        infos = []
        for _ in range(n):
            action = np.array([self.rng.choice(np.flatnonzero(ok)) for ok in self.allowed])
            _, _, terminated, truncated, info = self.env.step(action)
            assert terminated or truncated
            infos.append({k: info[k] for k in ("key", "valid", "invalid_reason", "n_queries")})
            self.env.reset()
        return infos


@pytest.mark.usefixtures("ray_runtime")
def test_four_actor_environments_share_one_exact_budget() -> None:
    ledger = RayLedger(max_queries=25)
    actor_class = ray.remote(num_cpus=0)(_EnvironmentActor)
    actors = [actor_class.remote(ledger, seed) for seed in range(4)]
    try:
        per_actor = ray.get([actor.episodes.remote(15) for actor in actors])  # 60 episodes for a budget of 25
    finally:
        for actor in actors:
            ray.kill(actor)
    infos = [info for infos in per_actor for info in infos]
    recorded = {r.key for r in ledger.history}
    n_queries, n_lookups = ledger.counts()
    assert n_queries == 25 == len(recorded)  # exact: not one cell over the budget
    refused = [i for i in infos if i["invalid_reason"] == "query budget exhausted"]
    assert refused and all(i["key"] not in recorded for i in refused)  # refused cells were not recorded
    answered = [i for i in infos if i["valid"]]
    assert {i["key"] for i in answered} == recorded  # every cell answered with a value is in the ledger
    assert n_lookups == len(answered)  # each answered look-up counted once, repeats included
    assert max(i["n_queries"] for i in infos) == 25
    ledger.kill()


# ---------------------------------------------------------------------- executor
@pytest.mark.usefixtures("ray_runtime")
def test_compare_on_ray_equals_the_local_backend(tmp_path: Path) -> None:
    argv = ["compare", "--env", "toy", "--algos", "rs,rea,ls", "--seeds", "0,3", "--max-queries", "15", "--no-progress"]
    assert cli_main([*argv, "--backend", "ray", "--cpus-per-run", "1", "--out", str(tmp_path / "ray")]) == 0
    assert cli_main([*argv, "--jobs", "1", "--out", str(tmp_path / "local")]) == 0
    name = comparison_paths(".", "toy", 15, ["rs", "rea", "ls"], [0, 3]).json.name
    on_ray, local = _strip(tmp_path / "ray" / name), _strip(tmp_path / "local" / name)
    assert on_ray["complete"] and sorted(on_ray["runs"]) == ["ls", "rea", "rs"]
    assert on_ray == local  # every run identical: curves, best cells, query counts


@pytest.mark.usefixtures("ray_runtime", "registry")
def test_a_failed_ray_run_is_kept_and_resume_completes_it_on_the_local_backend(tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    flag.touch()
    register_method("flaky", partial(harness_jobs.rs_failing_on_seed1_while, str(flag)))
    settings: dict[str, Any] = {"progress": False, "echo": False}
    with pytest.raises(ComparisonFailed, match="seed 1 fails while the flag file exists"):
        run_comparison("toy", ["flaky"], 3, 12, out_dir=tmp_path / "out", executor=RayExecutor(), **settings)
    paths = comparison_paths(tmp_path / "out", "toy", 12, ["flaky"], [0, 1, 2])
    stored = set(RunStore(paths.store).load())
    assert "flaky-seed1" not in stored  # the failed run is not stored; the others may have finished first
    flag.unlink()
    done = run_comparison("toy", ["flaky"], 3, 12, out_dir=tmp_path / "out", resume=True, n_jobs=1, **settings)
    ref = run_comparison("toy", ["flaky"], 3, 12, out_dir=tmp_path / "ref", executor=SerialExecutor(), **settings)
    assert done.complete and done.json_path is not None and ref.json_path is not None
    assert _strip(done.json_path) == _strip(ref.json_path)


@pytest.mark.usefixtures("ray_runtime")
def test_ray_executor_yields_failures_as_results() -> None:
    jobs = [
        Job("square", harness_jobs.square, (7,)),
        Job("fail", harness_jobs.fail, ("boom",)),
        Job("die", harness_jobs.die),
        Job("unpicklable", harness_jobs.square, (threading.Lock(),)),
    ]
    with closing(RayExecutor(cpus_per_run=0.5).run(jobs)) as stream:
        results = {r.job_id: r for r in stream}
    assert results["square"].ok and results["square"].value == 49
    assert results["square"].worker_pid not in (None, os.getpid())  # ran in a Ray worker
    assert not results["fail"].ok and "ValueError: boom" in str(results["fail"].error)
    assert not results["die"].ok and "lost its Ray worker" in str(results["die"].error)
    assert not results["unpicklable"].ok and "could not be pickled" in str(results["unpicklable"].error)
    with pytest.raises(ValueError, match="repeated: a"):
        list(RayExecutor().run([Job("a", harness_jobs.square, (1,)), Job("a", harness_jobs.square, (2,))]))


@pytest.mark.usefixtures("ray_runtime")
def test_a_job_no_node_can_hold_is_refused_not_queued_forever() -> None:
    stream = RayExecutor(cpus_per_run=2.5).run([Job("big", harness_jobs.square, (3,))])  # the runtime has 2 CPUs
    with pytest.raises(ValueError, match=r"no node of the Ray cluster has 2\.5 CPUs.*largest has 2 CPUs"):
        list(stream)
    stream = RayExecutor(cpus_per_run=1, gpus_per_run=1).run([Job("gpu", harness_jobs.square, (3,))])
    with pytest.raises(ValueError, match=r"0 GPUs.*lower --cpus-per-run / --gpus-per-run"):
        list(stream)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.usefixtures("ray_runtime")
def test_closing_the_ray_stream_early_cancels_queued_and_running_jobs(tmp_path: Path) -> None:
    # 2 CPUs, 1 per job: at most two sleepers run at once, the third waits in Ray's queue.
    sleepers = [Job(f"sleep{i}", harness_jobs.sleep_and_tell, (str(tmp_path / f"pid{i}"), 120.0)) for i in range(3)]
    stream = RayExecutor(cpus_per_run=1).run([Job("quick", harness_jobs.square, (3,)), *sleepers])
    assert next(stream).job_id == "quick"
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob("pid*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    stream.close()  # what `break` inside `with closing(...)` does
    started = [int(p.read_text()) for p in tmp_path.glob("pid*")]
    assert started  # at least one sleeper was running
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in started)  # running jobs were killed, not left to sleep
    time.sleep(2.0)  # time enough for a queued job to start, were it not cancelled
    assert len(list(tmp_path.glob("pid*"))) <= 2
