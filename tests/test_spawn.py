"""Ids in worker processes started with ``spawn``, from a script that imports dgpo_env only inside ``main``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

JOB = Path(__file__).with_name("spawn_job.py")


@pytest.mark.parametrize(
    ("mode", "keys"),
    [
        ("subproc-prefix", ["action_mask", "edges", "nodes", "t"]),  # "dgpo_env:<id>", ledger as a path
        ("subproc-ledger", ["edges", "nodes", "t"]),  # plain id, an SQLiteLedger in env_kwargs
        ("async", ["action_mask", "edges", "nodes", "t"]),  # plain id, gym.make_vec(..., "async")
    ],
)
def test_spawned_workers_make_the_id_and_share_one_ledger(tmp_path, mode, keys):
    # The job inherits DGPO_CACHE_DIR (the session's cache, see conftest.py).
    done = subprocess.run(
        [sys.executable, str(JOB), mode, str(tmp_path / "queries.sqlite")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["obs_keys"] == keys
    # both workers counted into the one file: 2 distinct cells (or 1 if both drew the same cell)
    assert result["n_queries"] == max(result["reported"]) >= 1
