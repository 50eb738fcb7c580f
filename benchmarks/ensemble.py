"""Benchmark: the batched ensemble engine against two implementations a user would write.

All three train the paper's network (depth L = 3, widths 2-10-10-2, Ersoy & Wiesner Appendix A) on the
same Gaussian data (N = 512 samples, eta = (0.9, 0.8)), with SGD (B = 64, lr = 0.08) and weight
decay beta, from the same initial weights and with the same minibatch orders
(:func:`phaselab.ensemble.epoch_permutations`).  The baselines:

- **batched autograd**, what a savvy user writes: every member's weights in ``(members, out, in)``
  tensors, the forward pass as a chain of ``torch.bmm`` over all members at once, the gradient by
  autograd, the update in place;
- **per-seed loop**, the straightforward implementation: one ``nn.Sequential`` of bias-free
  ``nn.Linear`` layers and one ``torch.optim.SGD(weight_decay=beta)`` per seed, stepped in a Python
  loop.

The script checks that all three produce the same trajectories (training loss at every epoch and
final weights, float64, to a relative tolerance of 1e-9) and prints the engine's speedup against
each; the last line is ``speedup: <ratio>x`` against the per-seed loop.

The per-seed baseline's training loop is linear in the number of members (it is a loop over them), so to
keep the default run short it trains only the first ``--baseline-members`` members and the time of
that loop is scaled up to the full ensemble (the ensemble-wide minibatch orders it draws every
epoch are timed apart and not scaled); pass ``--baseline-members 200`` to time all of them.

Usage: python benchmarks/ensemble.py [--members 200] [--epochs 300] [--baseline-members 20] [--threads 1]
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


def batched_autograd(weights, x, y, epochs: int, seed: int) -> tuple[list[torch.Tensor], np.ndarray]:
    """All members at once: ``torch.bmm`` forward pass, autograd backward pass, in-place SGD with
    weight decay.  Returns the final weights and the per-epoch training losses."""
    params = [w.clone().requires_grad_(True) for w in weights]
    n_members = params[0].shape[0]
    generator = config.numpy_rng(seed)
    steps = ensemble.steps_per_epoch(N_SAMPLES, BATCH)
    losses = np.empty((epochs, n_members))

    def data_loss(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-member (1/2) mean ||y - W_L ... W_1 x||^2 for inputs (members, samples, d_in)."""
        out = inputs.transpose(1, 2)
        for w in params:
            out = torch.bmm(w, out)
        return 0.5 * (out - targets.transpose(1, 2)).square().sum(dim=1).mean(dim=1)

    for epoch in range(epochs):
        order = ensemble.epoch_permutations(n_members, N_SAMPLES, generator)
        for step in range(steps):
            index = order[:, step * BATCH:(step + 1) * BATCH]
            grads = torch.autograd.grad(data_loss(x[index], y[index]).sum(), params)
            with torch.no_grad():
                for w, g in zip(params, grads):
                    w.sub_(LR * (g + BETA * w))
        with torch.no_grad():
            losses[epoch] = data_loss(x.expand(n_members, -1, -1), y.expand(n_members, -1, -1)).numpy()
    return [w.detach() for w in params], losses


def per_seed_loop(weights, x, y, epochs: int, seed: int, n_members: int) -> tuple[list[torch.Tensor], np.ndarray, float]:
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
    generator = config.numpy_rng(seed)
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
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = paper_data(seed=0)
    weights = ensemble.init_weights(args.members, WIDTHS, 1 / np.sqrt(WIDTHS[1]), config.torch_generator(1))
    seed = 7

    start = time.perf_counter()
    result = ensemble.train(weights, x, y, epochs=args.epochs, lr=LR, batch_size=BATCH, beta=BETA, seed=seed, device="cpu")
    engine_s = time.perf_counter() - start

    start = time.perf_counter()
    batched_final, batched_losses = batched_autograd(weights, x, y, args.epochs, seed)
    batched_s = time.perf_counter() - start

    start = time.perf_counter()
    final, losses, order_s = per_seed_loop(weights, x, y, args.epochs, seed, args.baseline_members)
    loop_s = time.perf_counter() - start - order_s
    per_seed_s = order_s + loop_s * args.members / args.baseline_members

    k = args.baseline_members
    print(f"members {args.members}, epochs {args.epochs}, steps/epoch {ensemble.steps_per_epoch(N_SAMPLES, BATCH)}, threads {args.threads}")
    print(f"per-seed loop run on {k} members, its member loop scaled by {args.members}/{k} (minibatch orders {order_s:.2f} s, not scaled)")
    for name, got_weights, got_losses, members in (("batched autograd", batched_final, batched_losses, args.members),
                                                   ("per-seed loop", final, losses, k)):
        weight_err = max(float((a[:members] - b).abs().max() / b.abs().max()) for a, b in zip(result.weights, got_weights))
        loss_err = float(np.max(np.abs(result.train_loss[1:, :members] - got_losses) / np.abs(got_losses)))
        print(f"{name}: max relative difference from the engine: final weights {weight_err:.2e}, per-epoch training loss {loss_err:.2e}")
        if not (weight_err < 1e-9 and loss_err < 1e-9):
            raise SystemExit(f"engine and {name} trajectories differ")
    print(f"engine {engine_s:.2f} s, batched autograd {batched_s:.2f} s, per-seed loop {per_seed_s:.2f} s")
    print(f"speedup against batched autograd: {batched_s / engine_s:.1f}x")
    print(f"speedup: {per_seed_s / engine_s:.1f}x")


if __name__ == "__main__":
    main()
