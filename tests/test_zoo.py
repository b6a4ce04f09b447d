"""The RL Zoo hyperparameter files: every id covered, and a real ``python -m rl_zoo3.train`` run."""

import subprocess
import sys

import pytest

import dgpo_env
from dgpo_env.envs.graph_denoise import DEFAULT_N_STEPS
from dgpo_env.ledger import SQLiteLedger
from dgpo_env.zoo import ALGOS, hyperparams_path

yaml = pytest.importorskip("yaml")  # rl_zoo3 brings it (the "integrations" extra)


@pytest.mark.parametrize("algo", ALGOS)
def test_every_id_has_settings_that_fit_the_episodes(algo):
    path = hyperparams_path(algo)
    assert path.is_file()
    settings = yaml.safe_load(path.read_text())
    assert set(settings) == set(dgpo_env.ENV_SPECS)
    for env_id, hyper in settings.items():
        assert hyper["policy"] == "MultiInputPolicy", env_id
        assert hyper["gamma"] == 1.0, env_id
        assert hyper["n_steps"] % DEFAULT_N_STEPS == 0, env_id


def test_an_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="algo must be one of 'ppo', 'a2c'"):
        hyperparams_path("dqn")


def test_the_module_prints_the_path():
    done = subprocess.run(
        [sys.executable, "-m", "dgpo_env.zoo", "a2c"], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == str(hyperparams_path("a2c"))


@pytest.mark.parametrize(("algo", "env_id"), [("ppo", "dgpo_env/NB201-CIFAR10-v0"), ("a2c", "dgpo_env/ToyDAG-v0")])
def test_rl_zoo_trains_with_the_shipped_settings(tmp_path, algo, env_id):
    pytest.importorskip("rl_zoo3")
    # The documented command, shortened to one rollout (-n) and without evaluation.
    command = [
        sys.executable, "-m", "rl_zoo3.train", "--algo", algo, "--env", env_id, "--gym-packages", "dgpo_env",
        "-conf", str(hyperparams_path(algo)), "-n", "200", "--seed", "0", "-f", str(tmp_path), "--device", "cpu",
        "--eval-freq", "-1", "--env-kwargs", f"ledger:'{tmp_path / 'queries.sqlite'}'",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    name = env_id.replace("/", "-")
    assert (tmp_path / algo / f"{name}_1" / f"{name}.zip").is_file()
    assert (tmp_path / "queries.sqlite").is_file()  # --env-kwargs reached the copies: they opened that ledger
    ledger = SQLiteLedger(tmp_path / "queries.sqlite")
    assert ledger.n_lookups >= ledger.n_queries >= 0
