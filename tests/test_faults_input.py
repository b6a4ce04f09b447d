"""Bad input gets a clear error naming the problem and what is allowed: no silent coercion, no raw traceback.

Environment arguments, ``reset`` options, actions, ``reward_fn`` results, adjacency matrices and
``dgpo`` command lines, each checked for the error type and the key words of its message.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dgpo_env  # noqa: F401  (registers the ids)
from agents.cli import main
from dgpo_env.benchmarks import ToyBenchmark
from dgpo_env.envs import GraphDenoiseEnv
from dgpo_env.search_spaces import DAG, ToySearchSpace
from dgpo_env.search_spaces.nb101 import NB101Spec, graph_hash
from dgpo_env.validation import check_bool, check_count, check_real

TOY = "dgpo_env/ToyDAG-v0"
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

SPACE = ToySearchSpace()
N_ENTRIES = SPACE.n_entries


def toy_env(**kwargs: Any) -> GraphDenoiseEnv:
    return GraphDenoiseEnv(benchmark=ToyBenchmark(), **{"n_steps": 4, **kwargs})


def good_cell() -> np.ndarray:
    return SPACE.sample_uniform(np.random.default_rng(0)).flat()


def final_step(env: GraphDenoiseEnv) -> tuple[Any, ...]:
    env.reset(seed=0)
    cell = good_cell()
    out: tuple[Any, ...] = ()
    for _ in range(env.n_steps):
        out = env.step(cell)
    return out


# ---------------------------------------------------------------------------------------------- the helpers
def test_helpers_name_the_argument_show_the_value_and_say_what_is_allowed() -> None:
    with pytest.raises(TypeError, match=r"inverse must be True or False, got 'no' \(str\)"):
        check_bool("inverse", "no")
    assert check_bool("flag", np.bool_(True)) is True
    with pytest.raises(TypeError, match=r"n must be an integer, got True \(bool\)"):
        check_count("n", True)
    with pytest.raises(TypeError, match=r"n must be an integer, got 2.0 \(float\)"):
        check_count("n", 2.0)
    assert check_count("n", np.int32(3), minimum=1) == 3
    with pytest.raises(ValueError, match=r"n must be an integer in 1 \.\. 5, got 9"):
        check_count("n", 9, minimum=1, maximum=5)
    with pytest.raises(ValueError, match="x must be a finite real number, got nan"):
        check_real("x", float("nan"))
    with pytest.raises(TypeError, match=r"x must be a finite real number, got '0\.5'"):
        check_real("x", "0.5")
    with pytest.raises(ValueError, match=r"x must be > 0, got 0"):
        check_real("x", 0, minimum=0, open_minimum=True)
    assert check_real("x", np.float32(0.5)) == 0.5


# ---------------------------------------------------------------------------------------------- constructor
@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"inverse": "no"}, TypeError, r"inverse must be True or False, got 'no'"),
        ({"inverse": 1}, TypeError, r"inverse must be True or False, got 1"),
        ({"noisy": "False"}, TypeError, r"noisy must be True or False, got 'False'"),
        ({"noisy": None}, TypeError, r"noisy must be True or False, got None"),
        ({"n_steps": 2.0}, TypeError, r"n_steps must be an integer, got 2.0"),
        ({"n_steps": 0}, ValueError, r"n_steps must be an integer in 1 \.\. 800, got 0"),
        ({"n_steps": True}, TypeError, r"n_steps must be an integer, got True"),
        ({"diffusion_steps": "800"}, TypeError, r"diffusion_steps must be an integer, got '800'"),
        ({"diffusion_steps": 0}, ValueError, r"diffusion_steps must be an integer >= 1, got 0"),
        ({"n_steps": 20, "diffusion_steps": 10}, ValueError, r"n_steps must be an integer in 1 \.\. 10, got 20"),
        ({"invalid_reward": float("nan")}, ValueError, "invalid_reward must be a finite real number, got nan"),
        ({"invalid_reward": float("-inf")}, ValueError, "invalid_reward must be a finite real number, got -inf"),
        ({"invalid_reward": "0"}, TypeError, "invalid_reward must be a finite real number, got '0'"),
        ({"invalid_reward": False}, TypeError, "invalid_reward must be a finite real number, got False"),
        ({"reward_scale": "Percent"}, ValueError, "reward_scale must be one of 'fraction', 'percent', got 'Percent'"),
        ({"render_mode": "human"}, ValueError, "render_mode must be one of 'ansi', 'rgb_array', got 'human'"),
        ({"reward_fn": 5}, TypeError, r"reward_fn must be a callable \(a function\), got 5"),
        ({"benchmark_kwargs": [("dataset", "x")]}, TypeError, "benchmark_kwargs must be a mapping"),
        ({"prior": "uniform"}, TypeError, "prior must be a Marginals instance or None"),
        ({"ledger": 3}, TypeError, "ledger must be a QueryLedger, a path"),
    ],
)
def test_bad_constructor_arguments_are_refused(kwargs: dict[str, Any], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        toy_env(**kwargs)


def test_gym_make_refuses_bad_arguments_too() -> None:
    with pytest.raises(TypeError, match="inverse must be True or False, got 'no'"):
        gym.make(TOY, inverse="no")
    with pytest.raises(TypeError, match="reward_fn must be a callable"):
        gym.make(TOY, reward_fn=5)
    with pytest.raises(TypeError, match="benchmark must be a Benchmark instance or a benchmark name"):
        GraphDenoiseEnv(benchmark=3)  # type: ignore[arg-type]


def test_good_arguments_of_every_accepted_kind_work() -> None:
    env = toy_env(
        n_steps=np.int64(3), diffusion_steps=np.int32(50), invalid_reward=np.float32(-1), inverse=np.bool_(True)
    )
    assert (env.n_steps, env.diffusion_steps, env.invalid_reward, env.inverse) == (3, 50, -1.0, True)
    assert isinstance(env.n_steps, int) and isinstance(env.inverse, bool)


@FAST
@given(value=st.one_of(st.text(max_size=3), st.integers(), st.floats(), st.none(), st.lists(st.booleans(), max_size=2)))
def test_boolean_arguments_accept_only_bools(value: Any) -> None:
    for name in ("inverse", "noisy"):
        with pytest.raises(TypeError, match=f"{name} must be True or False"):
            toy_env(**{name: value})


@FAST
@given(value=st.one_of(st.floats(), st.booleans(), st.text(max_size=3), st.integers(max_value=0)))
def test_n_steps_accepts_only_positive_integers(value: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="n_steps must be an integer"):
        toy_env(n_steps=value)


@FAST
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=3)))
def test_invalid_reward_is_a_finite_real(value: Any) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        assert toy_env(invalid_reward=value).invalid_reward == float(value)
    else:
        with pytest.raises((TypeError, ValueError), match="invalid_reward must be a finite real number"):
            toy_env(invalid_reward=value)


# ---------------------------------------------------------------------------------------------- reset options
@pytest.fixture(scope="module")
def env() -> GraphDenoiseEnv:
    return toy_env(n_steps=5)


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ([1, 2], TypeError, r"reset options must be a mapping such as a dict, got \[1, 2\]"),
        ("start_step", TypeError, "reset options must be a mapping"),
        ({"start_step": 1.7, "start_cell": None}, ValueError, "go together"),
        ({"strat_step": 1}, ValueError, r"unknown reset options 'strat_step'; known: 'start_cell', 'start_step'"),
        ({1: 2}, ValueError, "unknown reset options 1; known"),
    ],
)
def test_bad_reset_options_are_refused(env: GraphDenoiseEnv, options: Any, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        env.reset(options=options)


@pytest.mark.parametrize(
    ("k", "error", "words"),
    [
        (1.7, TypeError, r"start_step must be an integer, got 1.7 \(float\)"),
        (2.0, TypeError, r"start_step must be an integer, got 2.0"),
        (float("nan"), TypeError, "start_step must be an integer, got nan"),
        (True, TypeError, "start_step must be an integer, got True"),
        ("2", TypeError, "start_step must be an integer, got '2'"),
        (0, ValueError, r"start_step must be an integer in 1 \.\. 4, got 0"),
        (5, ValueError, r"start_step must be an integer in 1 \.\. 4, got 5"),
    ],
)
def test_start_step_must_be_an_integer_in_range(
    env: GraphDenoiseEnv, k: Any, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        env.reset(options={"start_cell": good_cell(), "start_step": k})


def test_start_step_accepts_numpy_integers(env: GraphDenoiseEnv) -> None:
    _, info = env.reset(seed=0, options={"start_cell": good_cell(), "start_step": np.int64(3)})
    assert info["t"] == env.timesteps[3]


@FAST
@given(
    options=st.one_of(
        st.lists(st.integers(), max_size=3),
        st.text(max_size=4),
        st.dictionaries(
            st.text(max_size=6).filter(lambda k: k not in ("start_cell", "start_step")),
            st.integers(),
            min_size=1,
            max_size=2,
        ),
        st.fixed_dictionaries(
            {
                "start_cell": st.just(list(good_cell())),
                "start_step": st.one_of(
                    st.floats(), st.booleans(), st.integers().filter(lambda k: not 1 <= k <= 4), st.text(max_size=2)
                ),
            }
        ),
    )
)
def test_reset_refuses_every_bad_options_value(env: GraphDenoiseEnv, options: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="reset option"):
        env.reset(options=options)


# ---------------------------------------------------------------------------------------------- actions
@pytest.mark.parametrize(
    ("value", "shown"),
    [(1e20, "1e+20"), (2**64 - 1, "18446744073709551615"), (2**70, "1180591620717411303424"), (-3, "-3"), (7, "7")],
)
def test_out_of_range_actions_show_the_values_passed(env: GraphDenoiseEnv, value: Any, shown: str) -> None:
    env.reset(seed=0)
    action = [0] * N_ENTRIES
    action[1] = value
    with pytest.raises(ValueError, match=rf"entries \[1\] are out of range: values \[{re.escape(shown)}\]"):
        env.step(action)


def test_out_of_range_unsigned_array_shows_its_value(env: GraphDenoiseEnv) -> None:
    env.reset(seed=0)
    action = np.zeros(N_ENTRIES, dtype=np.uint64)
    action[2] = 2**64 - 1
    with pytest.raises(ValueError, match=r"values \[18446744073709551615\]"):
        env.step(action)


@pytest.mark.parametrize("value", [0.5, float("nan"), float("inf"), True, "1", None])
def test_non_integer_actions_are_refused(env: GraphDenoiseEnv, value: Any) -> None:
    env.reset(seed=0)
    action: list[Any] = [0] * N_ENTRIES
    action[3] = value
    with pytest.raises(ValueError, match=r"entries \[3\] must be integers"):
        env.step(action)
    with pytest.raises(ValueError, match="reset option start_cell entries"):
        env.reset(options={"start_cell": action, "start_step": 1})


@FAST
@given(entries=st.lists(st.one_of(st.integers(), st.floats(), st.booleans()), min_size=N_ENTRIES, max_size=N_ENTRIES))
def test_actions_are_taken_exactly_or_refused_with_the_values_given(entries: list[Any]) -> None:
    env = toy_env(n_steps=2)
    env.reset(seed=0)
    nvec = SPACE.nvec.tolist()

    def ok(v: Any, n: int) -> bool:
        if isinstance(v, bool):
            return False
        return (isinstance(v, int) or (math.isfinite(v) and float(v).is_integer())) and 0 <= v < n

    if all(ok(v, n) for v, n in zip(entries, nvec, strict=True)):
        obs, *_ = env.step(entries)
        free = ~SPACE.fixed_mask
        flat = np.concatenate([obs["nodes"], obs["edges"]])
        assert flat[free].tolist() == [int(v) for v, f in zip(entries, free, strict=True) if f]
    else:
        with pytest.raises(ValueError, match="action entries") as caught:
            env.step(entries)
        message = str(caught.value)
        assert "-9223372036854775808" not in message  # no int64 wrap-around in what is shown
        assert "must be integers" in message or "out of range" in message


# ---------------------------------------------------------------------------------------------- reward_fn
@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        (float("nan"), ValueError, "reward_fn returned nan"),
        (float("inf"), ValueError, "reward_fn returned inf"),
        ("0.5", TypeError, r"reward_fn returned '0.5' \(str\)"),
        (True, TypeError, r"reward_fn returned True \(bool\)"),
        (None, TypeError, "reward_fn returned None"),
    ],
)
def test_reward_fn_must_return_a_finite_real_and_the_cell_is_named(
    value: Any, error: type[Exception], words: str
) -> None:
    env = toy_env(n_steps=2, reward_fn=lambda result: value)
    with pytest.raises(error, match=words) as caught:
        final_step(env)
    assert "for cell " in str(caught.value) and "must return a finite real number" in str(caught.value)
    assert SPACE.describe(DAG.from_flat(good_cell(), SPACE.n_nodes)) in str(caught.value)


def test_reward_fn_may_return_numpy_reals() -> None:
    env = toy_env(n_steps=2, reward_fn=lambda result: np.float32(0.25))
    assert final_step(env)[1] == 0.25


# ---------------------------------------------------------------------------------------------- adjacency matrices
C3 = "conv3x3-bn-relu"


def half_edge() -> np.ndarray:
    m = np.zeros((3, 3))
    m[0, 1], m[1, 2], m[0, 2] = 1, 1, 0.5
    return m


def below_diagonal() -> np.ndarray:
    m = np.zeros((3, 3))
    m[0, 1], m[1, 2], m[2, 0] = 1, 1, 0.7
    return m


def test_from_adjacency_accepts_only_exact_zero_one_upper_triangular_matrices() -> None:
    with pytest.raises(ValueError, match=r"must hold only 0 and 1.*\[0\.5\] at \[\(0, 2\)\]"):
        DAG.from_adjacency([0, 2, 1], half_edge())
    with pytest.raises(ValueError, match=r"not upper triangular.*\(2, 0\).*\[0\.7\]"):
        DAG.from_adjacency([0, 2, 1], below_diagonal())
    with pytest.raises(ValueError, match="not upper triangular"):
        DAG.from_adjacency([0, 2, 1], np.eye(3, dtype=int))
    with pytest.raises(ValueError, match="must hold only 0 and 1"):
        DAG.from_adjacency([0, 2, 1], [[0, 2, 0], [0, 0, 1], [0, 0, 0]])
    exact = np.array([[0, 1.0, 0], [0, 0, 1.0], [0, 0, 0]])
    assert DAG.from_adjacency([0, 2, 1], exact) == DAG.from_adjacency([0, 2, 1], exact.astype(bool))


def test_nb101_spec_and_hash_refuse_what_the_official_api_refuses() -> None:
    ops = ("input", C3, "output")
    with pytest.raises(ValueError, match="must hold only 0 and 1"):
        NB101Spec(half_edge(), ops)
    with pytest.raises(ValueError, match="not upper triangular"):
        NB101Spec(below_diagonal(), ops)
    with pytest.raises(ValueError, match="must hold only 0 and 1"):
        graph_hash(half_edge(), [-1, 0, -2])
    with pytest.raises(TypeError, match="ops must be a sequence of op names"):
        NB101Spec(np.zeros((3, 3)), "abc")  # type: ignore[arg-type]


def test_dag_entries_must_be_integers() -> None:
    with pytest.raises(ValueError, match=r"DAG nodes must hold integers.*\[0\.5\]"):
        DAG([0, 0.5, 1], [0, 0, 0])
    with pytest.raises(ValueError, match="DAG edges must hold integers"):
        DAG([0, 2, 1], [0, float("nan"), 0])
    with pytest.raises(ValueError, match="flat DAG vector must hold integers"):
        DAG.from_flat([0, 2, 1, 0, 1.5, 0], 3)


@FAST
@given(m=st.lists(st.sampled_from([0, 1, 0.5, 0.7, -1, 2]), min_size=9, max_size=9))
def test_adjacency_is_taken_exactly_or_refused(m: list[float]) -> None:
    matrix = np.array(m, dtype=float).reshape(3, 3)
    ok = np.isin(matrix, (0, 1)).all() and not np.tril(matrix).any()
    if ok:
        dag = DAG.from_adjacency([0, 2, 1], matrix)
        assert np.array_equal(dag.adjacency(), matrix)
        assert np.array_equal(NB101Spec(matrix, ("input", C3, "output")).matrix, matrix)
    else:
        with pytest.raises(ValueError, match=r"not upper triangular|must hold only 0 and 1"):
            DAG.from_adjacency([0, 2, 1], matrix)
        with pytest.raises(ValueError, match=r"not upper triangular|must hold only 0 and 1"):
            NB101Spec(matrix, ("input", C3, "output"))


# ---------------------------------------------------------------------------------------------- the dgpo command
@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "ckpt.pt", "-n", "8", "--steps", "0"],
        ["sample", "ckpt.pt", "-n", "0"],
        ["sample", "ckpt.pt", "--steps", "2.5"],
        ["sample", "ckpt.pt", "--seed", "-1"],
        ["random-agent", "--env", TOY, "--episodes", "0"],
        ["random-agent", "--env", TOY, "--n-steps", "-2"],
        ["compare", "--env", "toy", "--max-queries", "0"],
        ["compare", "--env", "toy", "--jobs", "zero"],
        ["finetune", "ckpt.pt", "--env", TOY, "--epochs", "0"],
        ["finetune", "ckpt.pt", "--env", TOY, "--n-steps", "0"],
        ["finetune", "ckpt.pt", "--env", TOY, "--max-queries", "-5"],
    ],
)
def test_out_of_range_flags_are_argparse_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(r"dgpo \S+: error: argument .*: expected (an integer|a number)", err), err


def test_library_errors_become_one_line_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    # More denoising steps than the environment's T: the library's ValueError, reported at the command boundary.
    assert main(["random-agent", "--env", TOY, "--episodes", "1", "--n-steps", "5000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dgpo random-agent: error: ")
    assert "n_steps must be an integer in 1 .. 800, got 5000" in err


def test_sample_with_more_steps_than_the_model_has_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agents.diffusion.denoiser import DenoiserConfig
    from agents.diffusion.model import DiffusionModel

    tiny = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=1, n_heads=2, time_dim=8)
    path = DiffusionModel.create(ToySearchSpace(), diffusion_steps=20, config=tiny, seed=0).save(tmp_path / "toy.pt")
    assert main(["sample", str(path), "-n", "4", "--steps", "50", "--no-benchmark", "--show", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dgpo sample: error: ") and err.count("\n") == 1 and "50" in err


# ---------------------------------------------------------------------------------------------- pretraining arguments
@pytest.mark.parametrize(
    ("field", "value", "error", "words"),
    [
        ("steps", 2.9, TypeError, "must be an integer"),
        ("steps", 0, ValueError, ">= 1"),
        ("steps", True, TypeError, "must be an integer"),
        ("epochs", 0, ValueError, ">= 1"),
        ("epochs", "8", TypeError, "must be an integer"),
        ("batch_size", 64.0, TypeError, "must be an integer"),
        ("val_every", -1, ValueError, ">= 1"),
        ("diffusion_steps", 0, ValueError, ">= 1"),
        ("seed", -1, ValueError, ">= 0"),
        ("seed", 1.5, TypeError, "must be an integer"),
        ("lr", 0.0, ValueError, "> 0"),
        ("lr", float("nan"), ValueError, "finite"),
        ("lr", "1e-3", TypeError, "finite real number"),
        ("lr_schedule", "linear", ValueError, "'cosine', 'constant'"),
        ("lr_final_ratio", 1.5, ValueError, "<= 1"),
        ("weight_decay", -0.1, ValueError, ">= 0"),
        ("weight_decay", float("inf"), ValueError, "finite"),
        ("edge_weight", -1.0, ValueError, ">= 0"),
        ("grad_clip", 0.0, ValueError, "> 0"),
        ("val_fraction", 1.0, ValueError, "[0, 1)"),
        ("val_fraction", -0.1, ValueError, ">= 0"),
        ("marginal_smoothing", -1.0, ValueError, ">= 0"),
        ("denoiser", {"hidden_dim": 16}, TypeError, "must be a DenoiserConfig"),
    ],
)
def test_pretrain_config_refuses_bad_fields(field: str, value: Any, error: type[Exception], words: str) -> None:
    from agents.diffusion.pretrain import PretrainConfig

    with pytest.raises(error) as caught:
        PretrainConfig(**{field: value})
    message = str(caught.value)
    assert f"PretrainConfig.{field}" in message and words in message and repr(value) in message


@pytest.mark.parametrize(
    ("field", "value", "error", "words"),
    [
        ("hidden_dim", 63.9, TypeError, "must be an integer"),
        ("n_layers", 0, ValueError, ">= 1"),
        ("n_heads", 3, ValueError, "must divide"),
        ("time_dim", 7, ValueError, "even"),
        ("dropout", 1.0, ValueError, "[0, 1)"),
        ("dropout", "0.1", TypeError, "finite real number"),
        ("positional_encoding", "False", TypeError, "True or False"),
    ],
)
def test_denoiser_config_refuses_bad_fields(field: str, value: Any, error: type[Exception], words: str) -> None:
    from agents.diffusion.denoiser import DenoiserConfig

    with pytest.raises(error) as caught:
        DenoiserConfig(**{field: value})
    message = str(caught.value)
    assert f"DenoiserConfig.{field}" in message and words in message and repr(value) in message


def test_valid_pretrain_configs_are_kept_exactly() -> None:
    from agents.diffusion.denoiser import DenoiserConfig
    from agents.diffusion.pretrain import PretrainConfig

    config = PretrainConfig(steps=np.int64(3), epochs=None, grad_clip=None, val_fraction=0.0, lr_schedule="constant")
    assert config.steps == 3 and config.grad_clip is None
    assert DenoiserConfig(positional_encoding=np.bool_(False)).positional_encoding == np.bool_(False)
    with pytest.raises(TypeError, match="must be a mapping"):
        DenoiserConfig.from_dict([("hidden_dim", 16)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"fraction": 0.0}, ValueError, "fraction must be > 0 and <= 1, got 0.0"),
        ({"fraction": 1.5}, ValueError, "fraction must be > 0 and <= 1, got 1.5"),
        ({"fraction": "0.5"}, TypeError, "fraction must be a finite real number, got '0.5'"),
        ({"max_val_acc": float("nan")}, ValueError, "max_val_acc must be a finite real number"),
        ({"max_val_acc": "85"}, TypeError, "max_val_acc must be a finite real number, got '85'"),
        ({"n_random": 2.9}, TypeError, "n_random must be an integer, got 2.9"),
        ({"n_random": 0}, ValueError, "n_random must be an integer >= 1, got 0"),
        ({"n_random": True}, TypeError, "n_random must be an integer, got True"),
        ({"progress": "False"}, TypeError, "progress must be True or False, got 'False'"),
        ({"config": {"steps": 3}}, TypeError, "config must be a PretrainConfig"),
    ],
)
def test_pretrain_on_benchmark_refuses_bad_selection_arguments(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    from agents.diffusion.pretrain import pretrain_on_benchmark

    bench = ToyBenchmark()
    with pytest.raises(error) as caught:
        pretrain_on_benchmark(bench, **kwargs)
    assert words in str(caught.value)
    assert bench.n_queries == 0  # refused before any label was read


@pytest.mark.parametrize(
    "argv",
    [
        ["--lr", "0"],
        ["--lr", "-0.001"],
        ["--lr", "nan"],
        ["--lr", "inf"],
        ["--fraction", "0"],
        ["--fraction", "1.5"],
        ["--fraction", "nan"],
        ["--n-random", "0"],
        ["--n-random", "2.9"],
        ["--max-val-acc", "nan"],
        ["--max-val-acc", "high"],
        ["--train-steps", "0"],
        ["--epochs", "0"],
        ["--batch-size", "-4"],
        ["--diffusion-steps", "0"],
        ["--layers", "0"],
        ["--width", "2.5"],
        ["--edge-width", "0"],
        ["--heads", "0"],
        ["--seed", "-1"],
        ["--threads", "0"],
    ],
)
def test_pretrain_flags_are_range_checked(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["pretrain", "--benchmark", "toy", "--out", str(tmp_path / "c.pt"), *argv])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and not (tmp_path / "c.pt").exists()
    line = err.strip().splitlines()[-1]
    assert line.startswith("dgpo pretrain: error: argument " + argv[0]), err
    assert re.search(r"expected (an integer|a number|a finite number)", line) and repr(argv[1]) in line, err


def test_pretrain_unknown_dataset_is_an_argparse_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["pretrain", "--dataset", "mnist", "--out", str(tmp_path / "c.pt")])
    assert caught.value.code == 2
    assert "invalid choice: 'mnist'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- benchmark constructors
def test_nb201_dataset_must_be_a_known_string() -> None:
    from dgpo_env.benchmarks import NB201Benchmark

    with pytest.raises(ValueError, match=r"unknown NB201 dataset 'mnist'; known datasets: 'cifar10', 'cifar100'"):
        NB201Benchmark("mnist")
    with pytest.raises(ValueError, match="unknown NB201 dataset 'CIFAR10'"):
        NB201Benchmark("CIFAR10")  # not lower-cased
    with pytest.raises(TypeError, match=r"dataset must be a string.*'cifar10'.*got 10 \(int\)"):
        NB201Benchmark(10)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"dataset must be a string.*got None"):
        NB201Benchmark(None)  # type: ignore[arg-type]


def test_nb201_table_path_must_be_a_path() -> None:
    from dgpo_env.benchmarks import NB201Benchmark

    for bad in (3, b"nb201.npz", ["nb201.npz"]):
        with pytest.raises(TypeError, match=r"table_path must be a file path \(str or os.PathLike\)") as caught:
            NB201Benchmark("cifar10", table_path=bad)  # type: ignore[arg-type]
        assert repr(bad) in str(caught.value)


@pytest.mark.parametrize(
    ("epochs", "error", "words"),
    [
        (2.9, TypeError, "epochs must be an integer, one of 4, 12, 36, 108; got 2.9 (float)"),
        (108.0, TypeError, "got 108.0 (float)"),
        ("108", TypeError, "got '108' (str)"),
        (True, TypeError, "got True (bool)"),
        (50, ValueError, "epochs must be one of 4, 12, 36, 108, got 50"),
        (0, ValueError, "epochs must be one of 4, 12, 36, 108, got 0"),
    ],
)
def test_nb101_epochs_must_be_a_budget(epochs: Any, error: type[Exception], words: str) -> None:
    from dgpo_env.benchmarks.nb101 import NB101Benchmark

    with pytest.raises(error) as caught:  # refused before the data file is looked for
        NB101Benchmark(path="/nonexistent/nb101.tfrecord", epochs=epochs)
    assert words in str(caught.value)


def test_nb101_path_must_be_a_path() -> None:
    from dgpo_env.benchmarks.nb101 import NB101Benchmark

    with pytest.raises(TypeError, match=r"path must be a file path.*got 3 \(int\)"):
        NB101Benchmark(path=3)  # type: ignore[arg-type]


def test_make_benchmark_name_must_be_a_known_string() -> None:
    from dgpo_env.benchmarks import make_benchmark

    with pytest.raises(ValueError, match=r"unknown benchmark 'nb999'; known benchmarks: 'nb201', 'nb101', 'toy'"):
        make_benchmark("nb999")
    with pytest.raises(ValueError, match="unknown benchmark 'Toy'"):
        make_benchmark("Toy")
    with pytest.raises(TypeError, match=r"benchmark name must be a string.*got None \(NoneType\)"):
        make_benchmark(None)  # type: ignore[arg-type]
    assert make_benchmark("toy").name == ToyBenchmark().name


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0", "count must be >= 1"),
        ("1,,2", "comma-separated"),
        ("1,1", "distinct"),
        ("-1,2", "distinct"),
        ("", "count"),
    ],
)
def test_compare_seeds_flag_refuses_bad_lists(text: str, words: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["compare", "--env", "toy", f"--seeds={text}"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and words in err, err


def test_compare_seeds_flag_reads_counts_and_lists() -> None:
    from agents.commands.compare import _seeds

    assert _seeds("3") == [0, 1, 2] and _seeds("7,") == [7] and _seeds("0, 5,9") == [0, 5, 9]


@pytest.mark.parametrize("delay_s", [0.2, 1.0])
def test_ctrl_c_while_the_commands_load_is_one_line_and_exit_130(delay_s: float, tmp_path: Path) -> None:
    """Ctrl-C during the imports (torch loading) neither prints a traceback nor aborts the process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "compare", "--env", "toy", "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    time.sleep(delay_s)
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "Traceback" not in output and "interrupted" in output, output
