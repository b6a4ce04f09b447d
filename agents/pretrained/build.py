"""Rebuild the shipped pretrained models from :data:`agents.pretrained.RECIPES` and record them.

Usage (from a source checkout, with the package installed in editable mode)::

    python -m agents.pretrained.build            # every model
    python -m agents.pretrained.build nb201 toy  # some of them

Each model is made by running ``dgpo pretrain <recipe> --out <file>`` in a child process; the file,
its sha256, the exact command, the versions and the pretraining summary are written atomically
(``manifest.json`` is rewritten after each model, so an interrupted build keeps the finished ones).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from agents.diffusion.model import package_version
from agents.pretrained import MANIFEST, RECIPES, manifest
from dgpo_env.io import atomic_write_text

HERE = Path(__file__).resolve().parent


def build(name: str) -> dict[str, Any]:
    """Pretrain the model ``name`` with its recipe into this folder; return its manifest record.

    Raises:
        subprocess.CalledProcessError: If ``dgpo pretrain`` fails (its output is shown).
    """
    recipe = RECIPES[name]
    target = HERE / f"{name}.pt"
    command = ["dgpo", "pretrain", *recipe, "--out", f"agents/pretrained/{target.name}"]
    completed = subprocess.run(
        [sys.executable, "-m", "agents.cli", "pretrain", *recipe, "--out", str(target)],
        check=True,
        capture_output=True,
        text=True,
    )
    summary = json.loads(completed.stdout)
    summary.pop("checkpoint", None)
    return {
        "file": target.name,
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "search_space": recipe[recipe.index("--space") + 1],
        "command": shlex.join(command),
        "seed": int(recipe[recipe.index("--seed") + 1]),
        "package_version": package_version(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "summary": summary,
    }


def main(argv: list[str] | None = None) -> int:
    """Build the named models (default: all) and update the manifest after each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"models to build (default: all of {sorted(RECIPES)})")
    names = parser.parse_args(argv).names or sorted(RECIPES)
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; known: {sorted(RECIPES)}")
    records = manifest()
    for name in names:
        print(f"pretraining {name}: dgpo pretrain {shlex.join(RECIPES[name])}", flush=True)
        try:
            records[name] = build(name)
        except subprocess.CalledProcessError as err:
            print(err.stdout, err.stderr, sep="\n", file=sys.stderr)
            return 1
        atomic_write_text(HERE / MANIFEST, json.dumps(dict(sorted(records.items())), indent=2) + "\n")
        print(f"  {name}: {records[name]['summary']['wall_time_s']} s, sha256 {records[name]['sha256'][:16]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
