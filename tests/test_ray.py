"""Ray: the ledger actor and the Ray executor, on a real local Ray runtime (skipped without the ``ray`` extra).

One runtime (``ray.init(num_cpus=2)``) is shared by the whole module (Ray takes seconds to start), and
the module's tests run on one pytest-xdist worker (``xdist_group``).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dgpo_env.ledger import Admission, LedgerError, RayLedger

pytestmark = pytest.mark.xdist_group("ray")


def test_the_package_imports_without_ray_and_names_the_fix() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
        "from dgpo_env.ledger import RayLedger\n"
        "try:\n    RayLedger(max_queries=3)\nexcept ImportError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "RayLedger needs Ray" in out.stdout and 'pip install "dgpo-env[ray]"' in out.stdout


try:
    import ray
except ImportError:  # the tests below skip
    ray = None


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[None]:
    """A local Ray runtime of 2 CPUs for this module, shut down afterwards (skips without Ray)."""
    if ray is None:
        pytest.skip('needs the ray extra: pip install "dgpo-env[ray]"')
    if ray.is_initialized():
        ray.shutdown()
    # The workers import this module and tests/harness_jobs.py by name, hence tests/ on their path.
    path = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield
    ray.shutdown()


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
