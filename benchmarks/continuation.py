"""Benchmark: faster full-batch continuations for Chapter 3's network experiment, and whether they
land in the same valleys.

Chapter 3 continues every SGD checkpoint with full-batch gradient descent until the training loss
is below ``--loss-tol`` with 100% training accuracy (Yang et al., Sec. II.1), then calls two
endpoints the same valley when the Jaccard similarity of their misclassified test sets is at least
0.9 (Eq. 2).  At the paper's size (1000 training images, 101 checkpoints x 20 runs for each of 36
settings) the continuation is almost all of the chapter's paper-scale cost.  This script measures,
on the checkpoints of one SGD run of the grid (default: eta = 0.1, B = 10, the paper's sizes):

- the **faithful** continuation: GD at the SGD step eta (the paper's protocol);
- GD at larger fixed steps (the chapter uses ``phaselab.flatness.continue_full_batch`` at 0.2);
- heavy-ball momentum from the start, and momentum switched on only once a run fits its
  training set (100% accuracy), both at step 0.2 (``continue_full_batch(..., momentum=)``).

For each it prints the wall time, the mean number of steps, the speedup against the faithful one
and the share of endpoints in the same valley as the faithful endpoint (by checkpoint), next to the
share for endpoints of two different runs (chance).  A variant is usable only where its share is
near one at every checkpoint.

Usage: python benchmarks/continuation.py [--eta 0.1] [--batch 10] [--per-class 100] [--runs 20]
                                         [--checkpoints 1,10,40] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from phaselab import flatness

SIZES = (64, 50, 50, 10)
MOMENTUM = 0.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eta", type=float, default=0.1, help="the SGD step of the setting")
    parser.add_argument("--batch", type=int, default=10, help="the SGD batch size of the setting")
    parser.add_argument("--per-class", type=int, default=100, help="training images per class (paper: 100)")
    parser.add_argument("--runs", type=int, default=20, help="SGD runs (paper: 20)")
    parser.add_argument("--checkpoints", default="1,10,40", help="indices among the paper's 101 checkpoints")
    parser.add_argument("--loss-tol", type=float, default=5e-3)
    parser.add_argument("--max-steps", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = flatness.load_digits_split(args.per_class, seed=0)
    params0 = flatness.init_params(SIZES, args.runs, seed=0)
    _, checkpoints = flatness.train_sgd(params0, data, args.eta, args.batch, int(round(100 / args.eta)), 101, seed=11)
    chosen = [int(c) for c in args.checkpoints.split(",")]
    starts = [torch.cat([checkpoints[c][i] for c in chosen]) for i in range(len(params0))]
    variants = {
        f"GD at the SGD step {args.eta:g} (faithful)": lambda: flatness.continue_full_batch(
            starts, data, args.eta, args.max_steps, args.loss_tol),
        "GD at 0.2 (the chapter's)": lambda: flatness.continue_full_batch(starts, data, 0.2, args.max_steps, args.loss_tol),
        "GD at 0.4": lambda: flatness.continue_full_batch(starts, data, 0.4, args.max_steps, args.loss_tol),
        f"momentum {MOMENTUM} at 0.2": lambda: flatness.continue_full_batch(
            starts, data, 0.2, args.max_steps, args.loss_tol, momentum=MOMENTUM),
        f"momentum {MOMENTUM} at 0.2 once fitted": lambda: flatness.continue_full_batch(
            starts, data, 0.2, args.max_steps, args.loss_tol, momentum=MOMENTUM, momentum_once_fitted=True),
    }
    print(f"setting eta = {args.eta:g}, B = {args.batch}; {args.runs} runs x checkpoints {chosen} of 101; "
          f"{data.x_train.shape[0]} training images; stop at loss <= {args.loss_tol:g} with 100% accuracy")
    reference = None
    for name, run in variants.items():
        start = time.perf_counter()
        ends, used = run()
        seconds = time.perf_counter() - start
        errors = flatness.misclassified(ends, data).reshape(len(chosen), args.runs, -1)
        if reference is None:
            reference, reference_seconds = errors, seconds
            chance = flatness.jaccard_pairs(errors, np.roll(errors, 1, axis=1)) >= 0.9
            print(f"{name}: {seconds:.1f} s, {used.mean():.0f} steps on average; "
                  f"different runs in the same valley (chance): {chance.mean():.2f}")
            continue
        same = (flatness.jaccard_pairs(reference, errors) >= 0.9).mean(axis=1)
        print(f"{name}: {seconds:.1f} s, {used.mean():.0f} steps, speedup {reference_seconds / seconds:.1f}x; "
              f"same valley as faithful by checkpoint: " + ", ".join(f"{c}: {s:.2f}" for c, s in zip(chosen, same)))


if __name__ == "__main__":
    main()
