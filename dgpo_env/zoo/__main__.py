"""``python -m dgpo_env.zoo ALGO``: print the path of the RL Zoo hyperparameter file of ``ALGO``."""

from __future__ import annotations

import argparse

from dgpo_env.zoo import ALGOS, hyperparams_path


def main(argv: list[str] | None = None) -> None:
    """Print :func:`~dgpo_env.zoo.hyperparams_path` of the algorithm named on the command line."""
    parser = argparse.ArgumentParser(prog="python -m dgpo_env.zoo", description=__doc__)
    parser.add_argument("algo", choices=ALGOS, help="RL Zoo's --algo")
    print(hyperparams_path(parser.parse_args(argv).algo))


if __name__ == "__main__":
    main()
