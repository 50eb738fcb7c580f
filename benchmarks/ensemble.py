"""Benchmark: the batched ensemble engine against the per-seed loop a user would write.

Both train the paper's network (depth L = 3, widths 2-10-10-2, Ersoy & Wiesner Appendix A) on the
same Gaussian data (N = 512 samples, eta = (0.9, 0.8)), with SGD (B = 64, lr = 0.08) and weight
decay beta, from the same initial weights and with the same minibatch order.  The baseline is the
straightforward implementation: one ``nn.Sequential`` of bias-free ``nn.Linear`` layers and one
``torch.optim.SGD(weight_decay=beta)`` per seed, stepped in a Python loop.  The script checks that
both produce the same trajectories (training loss at every epoch and final weights, float64, to a
relative tolerance of 1e-9) and prints ``speedup: <ratio>x`` as its last line.

The baseline's training loop is linear in the number of members (it is a loop over them), so to
keep the default run short it trains only the first ``--baseline-members`` members and the time of
that loop is scaled up to the full ensemble (the ensemble-wide minibatch orders it draws every
epoch are timed apart and not scaled); pass ``--baseline-members 200`` to time all of them.

Usage: python benchmarks/ensemble.py [--members 200] [--epochs 300] [--baseline-members 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from phaselab import config, ensemble, linear_nets

WIDTHS = [2, 10, 10, 2]
ETA = (0.9, 0.8)
N_SAMPLES, BATCH, LR, BETA = 512, 64, 0.08, 0.1


def paper_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's data (App. A), :func:`phaselab.linear_nets.gaussian_data`, as float64 tensors."""
    x, y = linear_nets.gaussian_data(N_SAMPLES, np.array(ETA), 2, seed=seed)
    return torch.as_tensor(x), torch.as_tensor(y)


def baseline(weights, x, y, epochs: int, seed: int, n_members: int) -> tuple[list[torch.Tensor], np.ndarray, float]:
    """Per-seed loop: nn.Linear layers and torch.optim.SGD(weight_decay=beta) for the first
    ``n_members`` members (their minibatch orders are rows of the ensemble-wide permutations).

    Returns the final weights, the per-epoch training losses and the seconds spent drawing the
    ensemble-wide minibatch orders (a cost that does not grow with ``n_members``)."""
    n_total = weights[0].shape[0]
    models, optimisers = [], []
    for m in range(n_members):
        layers = [nn.Linear(w.shape[2], w.shape[1], bias=False).double() for w in weights]
        with torch.no_grad():
            for layer, w in zip(layers, weights):
                layer.weight.copy_(w[m])
        model = nn.Sequential(*layers)
        models.append(model)
        optimisers.append(torch.optim.SGD(model.parameters(), lr=LR, weight_decay=BETA))
    generator = config.torch_generator(seed)
    steps = ensemble.steps_per_epoch(N_SAMPLES, BATCH)
    losses = np.empty((epochs, n_members))
    order_s = 0.0
    for epoch in range(epochs):
        start = time.perf_counter()
        order = ensemble.epoch_permutations(n_total, N_SAMPLES, generator)
        order_s += time.perf_counter() - start
        for m, (model, optimiser) in enumerate(zip(models, optimisers)):
            for step in range(steps):
                index = order[m, step * BATCH:(step + 1) * BATCH]
                optimiser.zero_grad()
                loss = 0.5 * (model(x[index]) - y[index]).square().sum(dim=1).mean()
                loss.backward()
                optimiser.step()
            with torch.no_grad():
                losses[epoch, m] = 0.5 * (model(x) - y).square().sum(dim=1).mean().item()
    final = [torch.stack([model[l].weight.detach() for model in models]) for l in range(len(weights))]
    return final, losses, order_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--baseline-members", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = paper_data(seed=0)
    weights = ensemble.init_weights(args.members, WIDTHS, 1 / np.sqrt(WIDTHS[1]), config.torch_generator(1))
    seed = 7

    start = time.perf_counter()
    result = ensemble.train(weights, x, y, epochs=args.epochs, lr=LR, batch_size=BATCH, beta=BETA, seed=seed, device="cpu")
    engine_s = time.perf_counter() - start

    start = time.perf_counter()
    final, losses, order_s = baseline(weights, x, y, args.epochs, seed, args.baseline_members)
    loop_s = time.perf_counter() - start - order_s
    baseline_s = order_s + loop_s * args.members / args.baseline_members

    k = args.baseline_members
    weight_err = max(float((a[:k] - b).abs().max() / b.abs().max()) for a, b in zip(result.weights, final))
    loss_err = float(np.max(np.abs(result.train_loss[1:, :k] - losses) / np.abs(losses)))
    print(f"members {args.members}, epochs {args.epochs}, steps/epoch {ensemble.steps_per_epoch(N_SAMPLES, BATCH)}, threads {args.threads}")
    print(f"baseline run on {k} members, its member loop scaled by {args.members}/{k} (minibatch orders {order_s:.2f} s, not scaled)")
    print(f"max relative difference: final weights {weight_err:.2e}, per-epoch training loss {loss_err:.2e}")
    if not (weight_err < 1e-9 and loss_err < 1e-9):
        raise SystemExit("engine and baseline trajectories differ")
    print(f"engine {engine_s:.2f} s, baseline {baseline_s:.2f} s")
    print(f"speedup: {baseline_s / engine_s:.1f}x")


if __name__ == "__main__":
    main()
