"""Build the PyTorch network of a NAS-Bench-201 cell and train it for a few steps on scikit-learn's digits.

The cell is the best NB201 cell on CIFAR-10 (read from the packaged benchmark table: no query is
counted) unless ``--arch`` names another one. :func:`dgpo_env.networks.to_torch` builds the benchmark's
network for it (docs/networks.md): stem, 3 stages of 5 cells, residual blocks, classifier, here with 10
classes. The data are the 1,797 8x8 grey-scale digits that ship inside scikit-learn (no download),
scaled to ``--size`` pixels and repeated over the 3 colour channels. Prints the parameter count (equal
to the benchmark's), the training loss and the accuracy on held-out digits.

Needs scikit-learn: ``pip install -e ".[examples]"`` (the ``dev`` extra includes it).

Run::

    python examples/train_generated_cell.py                     # about 10-20 s on one CPU core
    python examples/train_generated_cell.py --arch "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dgpo_env.networks import count_params, n_parameters, to_torch

N_TRAIN = 1500
"""Digits used for training (a seeded random subset); the remaining 297 are held out."""


def load_digits_images(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits as ``float32[1797, 3, size, size]`` standardised images and ``int64[1797]`` labels.

    Raises:
        SystemExit: If scikit-learn is not installed (with the command that installs it).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # an optional dependency
        raise SystemExit('this example needs scikit-learn: pip install -e ".[examples]"') from None
    digits = load_digits()
    images = torch.as_tensor(np.asarray(digits.images, dtype=np.float32) / 16.0).unsqueeze(1)  # [N, 1, 8, 8]
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = (images - images.mean()) / images.std()
    return images.expand(-1, 3, -1, -1).contiguous(), torch.as_tensor(digits.target, dtype=torch.int64)


def best_cifar10_cell() -> str:
    """The arch string of the best NB201 cell on CIFAR-10 (benchmark oracle, no query counted)."""
    from dgpo_env.benchmarks import NB201Benchmark

    bench = NB201Benchmark("cifar10")
    return bench.search_space.to_arch_str(bench.oracle.cell)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the example; returns the arch string, parameter count, losses and held-out accuracy (%)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=None, help="NB201 arch string (default: the best CIFAR-10 cell)")
    parser.add_argument("--steps", type=int, default=60, help="SGD steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--size", type=int, default=16, help="image side in pixels (divisible by 4)")
    parser.add_argument("--channels", type=int, default=16, help="C of the skeleton (benchmark: 16)")
    parser.add_argument("--cells-per-stage", type=int, default=5, help="N of the skeleton (benchmark: 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small convolutions: 1 is fastest)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.size < 4 or args.size % 4:
        parser.error("--steps and --batch-size must be >= 1 and --size a multiple of 4")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    start = time.perf_counter()
    arch = args.arch if args.arch is not None else best_cifar10_cell()
    if args.channels == 16 and args.cells_per_stage == 5:
        net = to_torch(arch, "nb201", num_classes=10)
    else:  # a smaller skeleton than the benchmark's
        from dgpo_env.networks import nb201_network

        net = nb201_network(arch, 10, channels=args.channels, cells_per_stage=args.cells_per_stage)
    params = n_parameters(net)
    print(f"cell {arch}")
    benchmark_note = " (the benchmark's CIFAR-10 count)" if params == count_params(arch, "nb201") else ""
    print(f"network: {params:,} parameters{benchmark_note}")

    images, labels = load_digits_images(args.size)
    generator = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(labels), generator=generator)  # a random split: the file is ordered by writer
    train_x, train_y = images[order[:N_TRAIN]], labels[order[:N_TRAIN]]
    test_x, test_y = images[order[N_TRAIN:]], labels[order[N_TRAIN:]]
    # NB201's training recipe (paper section 2.3): SGD, Nesterov momentum 0.9, weight decay 5e-4
    optimizer = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    losses: list[float] = []
    net.train()
    for step in range(1, args.steps + 1):
        batch = torch.randint(0, N_TRAIN, (args.batch_size,), generator=generator)
        loss = F.cross_entropy(net(train_x[batch]), train_y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step == 1 or step % 10 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {losses[-1]:.4f}")

    net.eval()
    with torch.no_grad():
        accuracy = 100.0 * float((net(test_x).argmax(1) == test_y).float().mean())
    print(f"held-out accuracy {accuracy:.1f}% on {len(test_y)} digits ({time.perf_counter() - start:.1f} s)")
    return {"arch": arch, "params": params, "losses": losses, "accuracy": accuracy}


if __name__ == "__main__":
    main()
