"""Benchmark: the two kernel choices inside ``phaselab.ensemble.train``, each against the obvious one.

1. Matrix products of members-last weight stacks ``(i, j, M) x (j, k, M)``: the broadcast
   multiply-and-sum of ``phaselab.ensemble._mm`` against ``torch.bmm`` on members-first copies
   (one small GEMM per member), for the shapes of the paper's network (widths 2-10-10-2).
2. Langevin noise on the CPU: float32 normals (cast to float64) against float64 normals, for the
   ensemble's flat ``(D, M)`` parameter tensor.

Each timing is the best of ``--repeats`` runs of ``--calls`` calls.  Prints one ratio per choice;
the last line is ``speedup: <ratio>x`` for the matrix product.

Usage: python benchmarks/ensemble_kernels.py [--members 200] [--calls 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from phaselab import config
from phaselab.ensemble import _mm

WIDTHS = [2, 10, 10, 2]


def best_time(work: Callable[[], object], calls: int, repeats: int) -> float:
    """Seconds per call: the best of ``repeats`` runs of ``calls`` calls."""
    work()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            work()
        runs.append((time.perf_counter() - start) / calls)
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = config.torch_generator(0)
    m = args.members
    # the chain W3 W2 W1 of the paper's network, members last and members first
    last = [torch.randn(WIDTHS[i + 1], WIDTHS[i], m, generator=gen, dtype=torch.float64) for i in range(3)]
    first = [w.permute(2, 0, 1).contiguous() for w in last]
    product_last = _mm(_mm(last[2], last[1]), last[0])
    product_first = torch.bmm(torch.bmm(first[2], first[1]), first[0])
    if not torch.allclose(product_last.permute(2, 0, 1), product_first, rtol=1e-12, atol=0):
        raise SystemExit("broadcast product and bmm differ")
    broadcast_s = best_time(lambda: _mm(_mm(last[2], last[1]), last[0]), args.calls, args.repeats)
    bmm_s = best_time(lambda: torch.bmm(torch.bmm(first[2], first[1]), first[0]), args.calls, args.repeats)

    n_params = sum(WIDTHS[i] * WIDTHS[i + 1] for i in range(3))
    noise64_s = best_time(lambda: torch.randn(n_params, m, generator=gen, dtype=torch.float64), args.calls, args.repeats)
    noise32_s = best_time(
        lambda: torch.randn(n_params, m, generator=gen, dtype=torch.float32).to(torch.float64), args.calls, args.repeats
    )
    print(f"members {m}, widths {'-'.join(map(str, WIDTHS))}, threads {args.threads}, best of {args.repeats} x {args.calls} calls")
    print(f"noise ({n_params} x {m}): float64 {noise64_s * 1e6:.1f} us, float32 cast to float64 {noise32_s * 1e6:.1f} us, ratio {noise64_s / noise32_s:.1f}x")
    print(f"product W3 W2 W1: bmm {bmm_s * 1e6:.1f} us, broadcast {broadcast_s * 1e6:.1f} us")
    print(f"speedup: {bmm_s / broadcast_s:.1f}x")


if __name__ == "__main__":
    main()
