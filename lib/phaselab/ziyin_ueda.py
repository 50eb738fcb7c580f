"""Batched full-batch training of scalar-output deep networks over a grid of weight decays.

The networks of Ziyin and Ueda (Sec. II, Appendix A): ``D`` hidden layers of width ``d0``, no
biases, a scalar output, activation ``identity`` or ``tanh`` after every hidden layer, weights
initialised i.i.d. ``N(0, init_scale^2)`` (their Fig. 4 "standard deviation s").  Their loss is
``E(f(x) - y)^2 + gamma * Reg(w)`` with ``Reg(w) = ||w||^power`` and ``||w||^2 = sum_l ||W_l||_F^2``
(``power = 2`` is weight decay; ``power = D + 2`` their trivial-phase-free fix, Sec. IV C).
Linear networks may have *stochastic neurons* (their Eq. (5)): every hidden unit's output is
multiplied by independent noise of mean 1 and variance ``sigma2``; the trainer minimises the loss
averaged over that noise exactly (see ``_data_loss``), the reading under which their Eq. (6)
carries the factor ``(1 + sigma2 / d0)^D``.

Every (gamma, seed) pair is one member of a single batched tensor program: weights have shape
``(members, d_out, d_in)`` and one gradient step updates all members at once.  Because the members
do not interact, the gradient of the summed loss is each member's own gradient.  For linear
networks the full-batch loss depends on the data only through ``E[x x^T]``, ``E[x y]`` and
``E[y^2]``, so the trainer uses these moments (exactly the full-batch gradient, at a cost
independent of the number of samples); tanh networks use the samples.

Optimiser: full-batch gradient descent with heavy-ball momentum, which has the same fixed points
as plain gradient descent and reaches them faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from phaselab import config, validation

ACTIVATIONS = ("linear", "tanh")


@dataclass(frozen=True)
class GridResult:
    """Converged networks, each array of shape ``(n_gamma, n_seeds)``.

    ``loss``: the Ziyin-Ueda training loss ``E(f - y)^2 + gamma Reg``; ``data_loss``: ``E(f - y)^2``;
    ``regulariser``: ``Reg(w)`` (``sum_l ||W_l||_F^2`` for ``power = 2``); ``norm_sq``:
    ``sum_l ||W_l||_F^2``; ``b``: the order parameter ``||U|| / d0`` (``U`` the last layer; for depth
    0 the norm of the weight vector); ``grad_norm``: the final gradient norm (convergence check);
    ``convergence_error``: how far ``loss`` may still be from the limit of the iteration, estimated
    from the run itself (``_tail_estimate``; ``inf`` where the run is not yet contracting).
    """

    gammas: np.ndarray
    loss: np.ndarray
    data_loss: np.ndarray
    regulariser: np.ndarray
    norm_sq: np.ndarray
    b: np.ndarray
    grad_norm: np.ndarray
    convergence_error: np.ndarray | None = None


def layer_shapes(d_in: int, width: int, hidden_layers: int) -> list[tuple[int, int]]:
    """``(d_out, d_in)`` of each of the ``hidden_layers + 1`` weight matrices (scalar output)."""
    d_in = validation.integer("d_in", d_in, minimum=1)
    width = validation.integer("width", width, minimum=1)
    hidden_layers = validation.integer("hidden_layers", hidden_layers, minimum=0)
    dims = [d_in] + [width] * hidden_layers + [1]
    return [(dims[i + 1], dims[i]) for i in range(hidden_layers + 1)]


def _forward_end_to_end(weights: list[torch.Tensor]) -> torch.Tensor:
    """End-to-end row vector ``W_D ... W_0`` of a linear network, shape ``(members, d_in)``.

    Multiplied from the scalar output down, so each product is a vector-matrix product.
    """
    product = weights[-1]
    for w in reversed(weights[:-1]):
        product = product @ w
    return product[:, 0, :]


def _data_loss(weights, activation, x, y, a0, c0, y2, sigma2=0.0) -> torch.Tensor:
    """``E(f - y)^2`` per member (moments for linear nets, samples for tanh nets).

    With ``sigma2 > 0`` (linear nets only) the expectation also runs over the multiplicative noise
    of the hidden units: the second-moment matrix ``M`` of each hidden layer, ``W M W^T``, gains
    ``sigma2 * diag(M)`` (independent noise of mean 1), and ``E[f y]`` is unchanged.
    """
    if activation == "linear":
        v = _forward_end_to_end(weights)
        if sigma2 == 0:
            return ((v @ a0) * v).sum(dim=1) - 2 * v @ c0 + y2
        second = a0.expand(v.shape[0], *a0.shape)
        for w in weights[:-1]:
            second = w @ second @ w.transpose(1, 2)
            second = second + sigma2 * torch.diag_embed(torch.diagonal(second, dim1=1, dim2=2))
        u = weights[-1]
        return (u @ second @ u.transpose(1, 2))[:, 0, 0] - 2 * v @ c0 + y2
    hidden = x.unsqueeze(0)
    for w in weights[:-1]:
        hidden = torch.tanh(hidden @ w.transpose(1, 2))
    out = (hidden @ weights[-1].transpose(1, 2))[..., 0]
    return ((out - y.unsqueeze(0)) ** 2).mean(dim=1)


def _tail_estimate(early: np.ndarray, middle: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Loss decrease still to come, by geometric extrapolation of three equally spaced losses.

    With ``d1 = early - middle``, ``d2 = middle - last`` and ratio ``r = d2 / d1``, a run converging
    geometrically still has ``|d2| |r| / (1 - |r|)`` to go after ``last``; we return the larger
    ``|d2| / (1 - |r|)`` (what was still to go at ``middle``), which also covers a rate that slows
    down within the window.  A run whose changes are at the float64 round-off of its loss has
    stopped: its estimate is ``|d2|``.  ``inf`` where ``|r| >= 1`` otherwise (not contracting).
    """
    d1, d2 = early - middle, middle - last
    noise = 16 * np.finfo(float).eps * np.maximum(np.abs(last), 1.0)
    stopped = (np.abs(d1) <= noise) & (np.abs(d2) <= noise)
    ratio = np.abs(np.divide(d2, d1, out=np.zeros_like(d2), where=d1 != 0))
    with np.errstate(divide="ignore"):
        geometric = np.where(ratio < 1, np.abs(d2) / np.maximum(1 - ratio, 0), np.inf)
    return np.where(stopped, np.abs(d2), geometric)


def train_grid(
    x: np.ndarray,
    y: np.ndarray,
    gammas: np.ndarray,
    *,
    hidden_layers: int,
    width: int,
    n_seeds: int,
    init_scale: float,
    steps: int,
    lr: float,
    activation: str = "linear",
    power: float = 2.0,
    sigma2: float = 0.0,
    momentum: float = 0.9,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> GridResult:
    """Train ``len(gammas) * n_seeds`` networks by full-batch gradient descent, all at once.

    Minimises half the Ziyin-Ueda loss, ``(1/2) E(f-y)^2 + (gamma/2) ||w||^power`` (same minima), for
    ``steps`` steps of size ``lr`` with heavy-ball ``momentum``.  ``x`` is ``(n, d)``, ``y`` is ``(n,)``.
    ``sigma2`` is the variance of the stochastic hidden neurons of their Eq. (5) (linear nets only).
    The losses at steps ``steps - 2k``, ``steps - k`` and ``steps`` (``k = max(1, steps // 10)``)
    give each member's ``convergence_error``.
    """
    x = validation.finite_array("x", x, ndim=2)
    y = validation.finite_array("y", y, ndim=1)
    gammas = validation.finite_array("gammas", gammas, ndim=1)
    if np.any(gammas < 0):
        raise ValueError("gammas must have entries >= 0")
    n_seeds = validation.integer("n_seeds", n_seeds, minimum=1)
    init_scale = validation.positive("init_scale", init_scale)
    steps = validation.integer("steps", steps, minimum=1)
    lr = validation.positive("lr", lr)
    momentum = validation.non_negative("momentum", momentum)
    if momentum >= 1:
        raise ValueError(f"momentum must lie in [0, 1) (the heavy ball does not converge at 1 or above), got {momentum!r}")
    power = validation.positive("power", power)
    activation = validation.one_of("activation", activation, ACTIVATIONS)
    sigma2 = validation.non_negative("sigma2", sigma2)
    if sigma2 > 0 and activation != "linear":
        raise ValueError(f"sigma2 must be 0 for activation {activation!r} (stochastic neurons are linear only)")
    shapes = layer_shapes(x.shape[1], width, hidden_layers)
    dev = config.resolve_device(device)
    dtype = torch.float64
    members = gammas.size * n_seeds

    generator = config.torch_generator(seed, dev)
    weights = [
        (init_scale * torch.randn((members, *shape), generator=generator, device=dev, dtype=dtype)).requires_grad_()
        for shape in shapes
    ]
    gamma_t = torch.as_tensor(np.repeat(gammas, n_seeds), device=dev, dtype=dtype)
    xt = torch.as_tensor(x, device=dev, dtype=dtype)
    yt = torch.as_tensor(y, device=dev, dtype=dtype)
    n = x.shape[0]
    a0, c0, y2 = xt.T @ xt / n, xt.T @ yt / n, yt @ yt / n
    velocity = [torch.zeros_like(w) for w in weights]

    def objective() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        data = _data_loss(weights, activation, xt, yt, a0, c0, y2, sigma2)
        norm_sq = sum((w**2).sum(dim=(1, 2)) for w in weights)
        reg = norm_sq ** (power / 2)
        return data, norm_sq, reg

    k = max(1, steps // 10)
    checkpoints = {}
    for step in range(steps):
        data, norm_sq, reg = objective()
        if step in (steps - 2 * k, steps - k):
            checkpoints[step] = (data + gamma_t * reg).detach().cpu().numpy()
        total = (0.5 * data + 0.5 * gamma_t * reg).sum()
        grads = torch.autograd.grad(total, weights)
        with torch.no_grad():
            for w, v, g in zip(weights, velocity, grads):
                v.mul_(momentum).add_(g)
                w.sub_(lr * v)

    data, norm_sq, reg = objective()
    grads = torch.autograd.grad((0.5 * data + 0.5 * gamma_t * reg).sum(), weights)
    grad_norm = torch.sqrt(sum((g**2).sum(dim=(1, 2)) for g in grads))
    with torch.no_grad():
        last = weights[-1]
        b = last.flatten(1).norm(dim=1) / (width if hidden_layers > 0 else 1)
        shape = (gammas.size, n_seeds)

        def out(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().numpy().reshape(shape)

        final = (data + gamma_t * reg).detach().cpu().numpy()
        if len(checkpoints) == 2:
            error = _tail_estimate(checkpoints[steps - 2 * k], checkpoints[steps - k], final)
        else:  # fewer than two steps: nothing to extrapolate from
            error = np.full(final.shape, np.inf)
        return GridResult(
            gammas=gammas,
            loss=out(data + gamma_t * reg),
            data_loss=out(data),
            regulariser=out(reg),
            norm_sq=out(norm_sq),
            b=out(b),
            grad_norm=out(grad_norm),
            convergence_error=error.reshape(shape),
        )


def regression_task(n: int, d: int, signal: float, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs with unequal variances and a noisy linear teacher, ``y = x . w* + noise``.

    Input variances are spread over ``[0.5, 1.5]`` so that ``A_0 != I`` and all terms of Eq. (6)
    matter; the teacher is scaled so that ``||E[x y]|| ~ signal``.
    """
    n = validation.integer("n", n, minimum=2)
    d = validation.integer("d", d, minimum=1)
    signal = validation.positive("signal", signal)
    noise = validation.non_negative("noise", noise)
    rng = config.numpy_rng(seed)
    scales = np.sqrt(np.linspace(0.5, 1.5, d))
    x = rng.standard_normal((n, d)) * scales
    teacher = rng.standard_normal(d)
    teacher *= signal / np.linalg.norm(scales**2 * teacher)
    y = x @ teacher + noise * rng.standard_normal(n)
    return x, y


@dataclass(frozen=True)
class StepGaps:
    """Result of :func:`step_gaps`: one entry per tested grid interval ``[gammas[i], gammas[i + 1]]``.

    ``interval``: the index ``i``; ``gap``: the smallest distance, over the interval, between the
    straight lines fitted to the values on either side of it; ``gap_err``: its standard error at the
    place where the distance is smallest.
    """

    interval: np.ndarray
    gap: np.ndarray
    gap_err: np.ndarray


def step_gaps(gammas: np.ndarray, values: np.ndarray, points: int = 4) -> StepGaps:
    """Is a curve such as ``L'(gamma)`` (their Lemma 1, Eq. (B23)) continuous across each grid interval?

    For every interval with ``points`` grid values on each side, a straight line is fitted by least
    squares to the ``points`` values left of it and another to the ``points`` values right of it.  A
    continuous, piecewise smooth curve (no transition, or a second-order one with a kink inside the
    interval) gives lines that meet inside the interval, up to their curvature bias, which the fit
    residuals measure; a jump of the curve (a first-order transition, their Theorem 1) leaves a gap of
    the size of the jump.  The gap is the smallest ``|left(t) - right(t)|`` over the interval (zero
    where the lines cross inside it); its error is ``sqrt(s_l^2 (1/m + (t - t_l)^2 / S_l) + (same
    right))`` at that ``t``, ``s^2`` the residual variance of each fit (``points - 2`` degrees of
    freedom), ``t_l`` the mean and ``S_l`` the sum of squared deviations of its gammas.
    """
    gammas = validation.finite_array("gammas", gammas, ndim=1)
    values = validation.finite_array("values", values, ndim=1)
    if values.shape != gammas.shape:
        raise ValueError(f"values must have the shape of gammas, got {values.shape} and {gammas.shape}")
    if np.any(np.diff(gammas) <= 0):
        raise ValueError("gammas must be strictly increasing")
    points = validation.integer("points", points, minimum=3)
    if gammas.size < 2 * points:
        raise ValueError(f"gammas must have at least 2 * points = {2 * points} entries, got {gammas.size}")
    windows_g = np.lib.stride_tricks.sliding_window_view(gammas, points)
    windows_v = np.lib.stride_tricks.sliding_window_view(values, points)
    centre = windows_g.mean(axis=1)
    dev = windows_g - centre[:, None]
    sxx = np.sum(dev**2, axis=1)
    slope = np.sum(dev * (windows_v - windows_v.mean(axis=1, keepdims=True)), axis=1) / sxx
    mean = windows_v.mean(axis=1)
    s2 = np.sum((windows_v - mean[:, None] - slope[:, None] * dev) ** 2, axis=1) / (points - 2)
    left = np.arange(gammas.size - 2 * points + 1)  # window index of the left fit
    right = left + points                            # window index of the right fit
    interval = left + points - 1
    lo, hi = gammas[interval], gammas[interval + 1]

    def difference(t):
        return (mean[left] + slope[left] * (t - centre[left])) - (mean[right] + slope[right] * (t - centre[right]))

    d_lo, d_hi = difference(lo), difference(hi)
    crosses = np.sign(d_lo) != np.sign(d_hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_cross = lo + d_lo * (hi - lo) / (d_lo - d_hi)
    t = np.where(crosses, t_cross, np.where(np.abs(d_lo) <= np.abs(d_hi), lo, hi))
    gap = np.where(crosses, 0.0, np.abs(difference(t)))
    var = (s2[left] * (1 / points + (t - centre[left]) ** 2 / sxx[left])
           + s2[right] * (1 / points + (t - centre[right]) ** 2 / sxx[right]))
    return StepGaps(interval, gap, np.sqrt(var))
