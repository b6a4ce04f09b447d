"""A user script that imports dgpo_env only inside ``main``, run by tests/test_spawn.py in a fresh interpreter.

``python tests/spawn_job.py MODE LEDGER_PATH`` builds two environment copies in worker processes started
with ``spawn``, steps one episode (``n_steps=1``) with allowed actions and prints a JSON line with the
query counts the workers reported and the count of the shared ``SQLiteLedger`` read in this process.
"""

import json
import sys

ENV_ID = "dgpo_env/NB201-CIFAR10-v0"


def main() -> None:
    import gymnasium as gym
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    import dgpo_env  # noqa: F401  (only here: a spawned worker never runs this line)
    from dgpo_env.ledger import SQLiteLedger

    mode, path = sys.argv[1], sys.argv[2]
    ledger = SQLiteLedger(path)
    rng = np.random.default_rng(0)
    sample = gym.make(ENV_ID, n_steps=1).unwrapped
    nvec, mask = sample.action_space.nvec, sample.action_masks()
    # an allowed value for every entry of the flat action, per environment copy
    starts = np.concatenate([[0], np.cumsum(nvec)[:-1]])
    actions = np.stack(
        [[rng.choice(np.flatnonzero(mask[s : s + n])) for s, n in zip(starts, nvec, strict=True)] for _ in range(2)]
    )
    if mode == "subproc-prefix":  # the ledger as a path: nothing of dgpo_env is pickled, the prefix imports it
        env = make_vec_env(
            f"dgpo_env:{ENV_ID}",
            n_envs=2,
            vec_env_cls=SubprocVecEnv,
            vec_env_kwargs={"start_method": "spawn"},
            env_kwargs={"ledger": path, "n_steps": 1, "mask_in_obs": True},
        )
        obs = env.reset()
        _, _, _, infos = env.step(actions)
        reported = [info["n_queries"] for info in infos]
        keys = sorted(obs)
    elif mode == "subproc-ledger":  # the plain id: unpickling the SQLiteLedger imports dgpo_env first
        env = make_vec_env(
            ENV_ID,
            n_envs=2,
            vec_env_cls=SubprocVecEnv,
            vec_env_kwargs={"start_method": "spawn"},
            env_kwargs={"ledger": ledger, "n_steps": 1},
        )
        obs = env.reset()
        _, _, _, infos = env.step(actions)
        reported = [info["n_queries"] for info in infos]
        keys = sorted(obs)
    elif mode == "async":  # the plain id: make_vec sends the spec, whose entry point imports dgpo_env
        env = gym.make_vec(
            ENV_ID,
            2,
            vectorization_mode="async",
            vector_kwargs={"context": "spawn"},
            ledger=path,
            n_steps=1,
            mask_in_obs=True,
        )
        obs, _ = env.reset(seed=0)
        _, _, _, _, info = env.step(actions)
        reported = info["n_queries"].tolist()
        keys = sorted(obs)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    env.close()
    print(json.dumps({"reported": reported, "n_queries": ledger.n_queries, "obs_keys": keys}))


if __name__ == "__main__":
    main()
