"""Escape from metastable phases of deep linear networks: censored escape-time statistics, exact
stationary points in weight space, their Hessians, the Kramers-Langer rate with zero modes, and an
escape-time theory without fitted constants (the weak mode's escape coordinate, its free energy
``F(lambda)`` and diffusion ``D(lambda)``, and the one-dimensional mean first-passage time).

Conventions are those of :mod:`phaselab.linear_nets` and :mod:`phaselab.ensemble`: with
``Sigma_xx = I`` the loss of weights ``theta = (W_1, ..., W_L)`` is, up to a constant::

    U(theta) = (1/2) ||W_L ... W_1 - Sigma_yx||_F^2 + (beta/2) sum_l ||W_l||_F^2,

and Langevin dynamics at temperature ``T`` is ``d theta = -grad U dt + sqrt(2 T) dB`` (one step of
:func:`phaselab.ensemble.train` with learning rate ``lr`` advances ``dt = lr``).

Kramers-Langer (Ersoy & Wiesner Eq. 11; Langer 1969).  The loss is invariant under the rotations
``W_l -> O_l W_l O_{l-1}^T`` of every hidden layer (``O_0 = O_L = I``), the group
``G = O(h_1) x ... x O(h_{L-1})``.  Each stationary point therefore lies on a manifold (its
``G``-orbit) of equivalent ones along which the Hessian vanishes: ``z`` zero modes, and Eq. (11),
which divides by every eigenvalue, cannot be applied as written.  Integrating the Boltzmann factor
exactly along the orbit and in the Gaussian approximation across it gives the rate::

    k = (|w_u| / 2 pi) (V_sad / V_min) (2 pi T)^((z_min - z_sad)/2)
        * sqrt(prod' w_min / prod' |w_sad|) * exp(-Delta E / T),

with ``prod'`` over the non-zero Hessian eigenvalues, ``w_u`` the unstable one and ``V`` the
volume of the orbit.  With no zero modes this is Eq. (11).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.special import gammaln

from phaselab import ensemble, validation
from phaselab.stats import linear_fit


# ---------------------------------------------------------------------------------------------
# Censored escape times
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EscapeEstimate:
    """Maximum-likelihood mean escape time of an exponential law from right-censored data.

    ``tau``: the estimate (``inf`` when nothing escaped); ``tau_err``: its standard error
    ``tau / sqrt(escaped)``; ``log_tau_err = 1 / sqrt(escaped)``, the standard error of ``ln tau``;
    ``escaped``: how many runs escaped before the horizon; ``runs``: how many runs there were.
    """

    tau: float
    tau_err: float
    log_tau_err: float
    escaped: int
    runs: int


def censored_exponential_mle(times: np.ndarray, horizon: float) -> EscapeEstimate:
    """Mean escape time from escape times with ``inf`` for runs still trapped at ``horizon``.

    For an exponential law of rate ``k`` the log-likelihood of ``n_e`` escapes at ``t_i`` and
    ``n_c`` runs censored at ``t_h`` is ``n_e ln k - k (sum t_i + n_c t_h)``, maximal at
    ``tau = 1/k = (sum t_i + n_c t_h) / n_e`` (total time at risk over escapes); the Fisher
    information gives ``se(tau) = tau / sqrt(n_e)``.  A plain mean over the escaped runs would be
    biased low by the runs that had not escaped yet.
    """
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"times must be a non-empty 1-d array, got shape {times.shape}")
    horizon = validation.positive("horizon", horizon)
    escaped = np.isfinite(times)
    if np.any(times[escaped] < 0) or np.any(times[escaped] > horizon):
        raise ValueError("finite times must lie in [0, horizon]")
    if np.any(np.isnan(times)):
        raise ValueError("times must not contain nan (use inf for runs that did not escape)")
    n_escaped = int(escaped.sum())
    exposure = float(times[escaped].sum() + (times.size - n_escaped) * horizon)
    if n_escaped == 0:
        return EscapeEstimate(math.inf, math.inf, math.inf, 0, times.size)
    tau = exposure / n_escaped
    return EscapeEstimate(tau, tau / math.sqrt(n_escaped), 1 / math.sqrt(n_escaped), n_escaped, times.size)


def kaplan_meier(times: np.ndarray, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Survival curve ``S(t)`` (fraction still trapped) at the escape times, with censoring at
    ``horizon`` (all censored runs share the horizon, so ``S`` is the empirical fraction)."""
    times = np.asarray(times, dtype=float)
    horizon = validation.positive("horizon", horizon)
    events = np.sort(times[np.isfinite(times) & (times <= horizon)])
    steps = np.concatenate([[0.0], events, [horizon]])
    surviving = np.concatenate([[times.size], times.size - np.arange(1, events.size + 1), [times.size - events.size]])
    return steps, surviving / times.size


# ---------------------------------------------------------------------------------------------
# Stationary points of the full weight space, the loss U and its Hessian
# ---------------------------------------------------------------------------------------------


def balanced_weights(mode_values: Sequence[float], widths: Sequence[int], *, dtype=torch.float64) -> list[torch.Tensor]:
    """Balanced weights whose end-to-end map has singular values ``mode_values`` on the leading
    diagonal (``Sigma_yx`` of :func:`phaselab.linear_nets.cross_covariance`).

    Each layer carries ``lambda_i^(1/L)`` for mode ``i`` in hidden unit ``i``; zero entries of
    ``mode_values`` leave their units unused.  With ``lambda_i`` a stationary point of the mode
    loss (``0``, saddle or minimum) this is a stationary point of ``U`` (App. D).
    """
    values = validation.finite_array("mode_values", mode_values, ndim=1)
    if np.any(values < 0):
        raise ValueError(f"mode_values must be >= 0, got {values}")
    widths = [validation.integer(f"widths[{i}]", w, minimum=1) for i, w in enumerate(widths)]
    if len(widths) < 2 or values.size > min(widths):
        raise ValueError(f"need len(widths) >= 2 and at most min(widths)={min(widths)} modes, got {values.size}")
    depth = len(widths) - 1
    per_layer = torch.as_tensor(values ** (1.0 / depth), dtype=dtype)
    weights = []
    for d_in, d_out in zip(widths[:-1], widths[1:]):
        w = torch.zeros(d_out, d_in, dtype=dtype)
        w[range(values.size), range(values.size)] = per_layer
        weights.append(w)
    return weights


def rotate_hidden(weights: Sequence[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """Apply a Haar-random rotation to every hidden layer: ``W_l -> O_l W_l O_{l-1}^T``.  The loss
    and the end-to-end map are unchanged; the state is moved along its symmetry orbit."""
    rotations = [torch.eye(weights[0].shape[1], dtype=weights[0].dtype)]
    rotated = []
    for l, w in enumerate(weights):
        last = l == len(weights) - 1
        out_rot = torch.eye(w.shape[0], dtype=w.dtype) if last else _haar_orthogonal(w.shape[0], generator, w.dtype)
        in_rot = rotations[-1] if l > 0 else torch.eye(w.shape[1], dtype=w.dtype)
        rotated.append(out_rot @ w @ in_rot.T)
        rotations.append(out_rot)
    return rotated


def _haar_orthogonal(n: int, generator: torch.Generator, dtype) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=dtype))
    return q * torch.sign(torch.diagonal(r))


def flatten(weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """All weights of one network as one vector ``theta`` (row-major, layer by layer)."""
    return torch.cat([w.reshape(-1) for w in weights])


def unflatten(theta: torch.Tensor, widths: Sequence[int]) -> list[torch.Tensor]:
    """Inverse of :func:`flatten` for the given widths; a ``(n, D)`` stack of vectors gives layers
    of shape ``(n, d_out, d_in)``, the ensemble layout of :mod:`phaselab.ensemble`."""
    shapes = [(o, i) for i, o in zip(widths[:-1], widths[1:])]
    blocks = theta.split([o * i for o, i in shapes], dim=-1)
    return [block.reshape(*theta.shape[:-1], *shape) for block, shape in zip(blocks, shapes)]


def potential(theta: torch.Tensor, widths: Sequence[int], sigma_yx: torch.Tensor, beta: float) -> torch.Tensor:
    """``U(theta) = (1/2)||W_L...W_1 - Sigma_yx||^2 + (beta/2)||theta||^2`` (Eq. 1 in weight space,
    ``Sigma_xx = I``, constant dropped)."""
    weights = unflatten(theta, widths)
    product = weights[0]
    for w in weights[1:]:
        product = w @ product
    return 0.5 * (product - sigma_yx).square().sum() + 0.5 * beta * theta.square().sum()


def hessian_eigenvalues(weights: Sequence[torch.Tensor], sigma_yx: np.ndarray, beta: float) -> np.ndarray:
    """Eigenvalues (ascending) of the Hessian of :func:`potential` at ``weights``."""
    widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    target = torch.as_tensor(np.asarray(sigma_yx), dtype=torch.float64)
    theta = flatten(weights).to(torch.float64)
    hess = torch.autograd.functional.hessian(lambda t: potential(t, widths, target, beta), theta)
    return np.linalg.eigvalsh(hess.numpy())


def gradient_norm(weights: Sequence[torch.Tensor], sigma_yx: np.ndarray, beta: float) -> float:
    """``||grad U||`` at ``weights`` (zero at a stationary point)."""
    widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    target = torch.as_tensor(np.asarray(sigma_yx), dtype=torch.float64)
    theta = flatten(weights).to(torch.float64).requires_grad_()
    (grad,) = torch.autograd.grad(potential(theta, widths, target, beta), theta)
    return float(grad.norm())


# ---------------------------------------------------------------------------------------------
# Symmetry orbits and the Kramers-Langer rate
# ---------------------------------------------------------------------------------------------


def orbit_tangents(weights: Sequence[torch.Tensor]) -> np.ndarray:
    """Tangent vectors of the hidden-layer rotation orbit at ``weights``, one row per generator.

    The generators ``(E_ab - E_ba)/sqrt(2)`` of each hidden layer's ``o(h)`` are orthonormal in
    the Frobenius metric; generator ``A`` of hidden layer ``l`` moves ``W_l`` by ``A W_l`` and
    ``W_{l+1}`` by ``-W_{l+1} A``.
    """
    rows = []
    for l in range(len(weights) - 1):
        width = weights[l].shape[0]
        for a in range(width):
            for b in range(a + 1, width):
                gen = torch.zeros(width, width, dtype=torch.float64)
                gen[a, b], gen[b, a] = -1 / math.sqrt(2), 1 / math.sqrt(2)
                moved = [torch.zeros_like(w, dtype=torch.float64) for w in weights]
                moved[l] = gen @ weights[l].to(torch.float64)
                moved[l + 1] = -weights[l + 1].to(torch.float64) @ gen
                rows.append(flatten(moved).numpy())
    return np.array(rows).reshape(len(rows), sum(w.numel() for w in weights))


def log_volume_orthogonal_group(n: int) -> float:
    """``ln Vol(O(n))`` in the metric induced by the Frobenius norm on ``n x n`` matrices.

    ``Vol(SO(n)) = prod_{k=1}^{n-1} 2^(k/2) Vol(S^k)`` (each fibre ``SO(k+1)/SO(k) = S^k`` has
    radius ``sqrt 2`` in this metric) and ``Vol(O(n)) = 2 Vol(SO(n))`` (``Vol(O(0)) = 1``).
    """
    n = validation.integer("n", n, minimum=0)
    if n == 0:
        return 0.0
    total = math.log(2.0)
    for k in range(1, n):
        sphere = math.log(2.0) + 0.5 * (k + 1) * math.log(math.pi) - gammaln(0.5 * (k + 1))
        total += 0.5 * k * math.log(2.0) + sphere
    return total


@dataclass(frozen=True)
class StationaryPoint:
    """Spectral data of a stationary point for the Kramers-Langer rate.

    ``energy``: ``U`` there; ``nonzero``: the non-zero Hessian eigenvalues; ``zero_modes``: how
    many vanish; ``log_orbit_volume``: ``ln`` of the volume of its symmetry orbit;
    ``orbit_dimension``: the dimension of that orbit (equal to ``zero_modes`` when every flat
    direction is a symmetry, which :func:`analyse_stationary_point` checks).
    """

    energy: float
    nonzero: np.ndarray
    zero_modes: int
    log_orbit_volume: float
    orbit_dimension: int

    @property
    def negative(self) -> int:
        """Number of negative Hessian eigenvalues (the index of the stationary point)."""
        return int(np.sum(self.nonzero < 0))


def analyse_stationary_point(
    weights: Sequence[torch.Tensor], sigma_yx: np.ndarray, beta: float, used_modes: int, *, rtol: float = 1e-8
) -> StationaryPoint:
    """Hessian spectrum, zero modes and orbit volume of the stationary point ``weights``.

    ``used_modes`` is the number of non-zero singular values: the stabiliser of the point is
    ``prod_l O(h_l - used_modes)``, so the orbit ``G/H`` has volume
    ``Vol(G)/Vol(H) * sqrt(det' Gram)`` with the Gram matrix of :func:`orbit_tangents`.
    Raises if the point is not stationary or if the flat directions are not all symmetries.
    """
    widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    target = torch.as_tensor(np.asarray(sigma_yx), dtype=torch.float64)
    theta = flatten(weights).to(torch.float64)
    scale = 1.0 + float(theta.norm())
    if gradient_norm(weights, sigma_yx, beta) > 1e-9 * scale:
        raise ValueError("weights are not a stationary point of the loss")
    eig = hessian_eigenvalues(weights, sigma_yx, beta)
    zero = np.abs(eig) <= rtol * np.max(np.abs(eig))
    tangents = orbit_tangents(weights)
    gram_eig = np.linalg.eigvalsh(tangents @ tangents.T) if tangents.size else np.zeros(0)
    orbit = gram_eig > rtol * gram_eig.max() if gram_eig.size else np.zeros(0, dtype=bool)
    if int(orbit.sum()) != int(zero.sum()):
        raise ValueError(f"{int(zero.sum())} zero modes but an orbit of dimension {int(orbit.sum())}")
    hidden = widths[1:-1]
    log_group = sum(log_volume_orthogonal_group(h) - log_volume_orthogonal_group(h - used_modes) for h in hidden)
    return StationaryPoint(
        energy=float(potential(theta, widths, target, beta)),
        nonzero=eig[~zero],
        zero_modes=int(zero.sum()),
        log_orbit_volume=log_group + 0.5 * float(np.sum(np.log(gram_eig[orbit]))),
        orbit_dimension=int(orbit.sum()),
    )


def kramers_langer_log_time(minimum: StationaryPoint, saddle: StationaryPoint, temperature: np.ndarray) -> np.ndarray:
    """``ln tau`` of the Kramers-Langer mean escape time with zero modes (module docstring), in the
    time of ``d theta = -grad U dt + sqrt(2T) dB``.  Eq. (11) is the case without zero modes."""
    temperature = validation.finite_array("temperature", temperature, positive_entries=True)
    if minimum.negative != 0 or saddle.negative != 1:
        raise ValueError(f"need a minimum (index 0) and a saddle of index 1, got {minimum.negative} and {saddle.negative}")
    unstable = float(np.abs(saddle.nonzero[saddle.nonzero < 0][0]))
    log_rate = (
        math.log(unstable / (2 * math.pi))
        + saddle.log_orbit_volume
        - minimum.log_orbit_volume
        + 0.5 * (minimum.zero_modes - saddle.zero_modes) * np.log(2 * math.pi * temperature)
        + 0.5 * (np.sum(np.log(minimum.nonzero)) - np.sum(np.log(np.abs(saddle.nonzero))))
        - (saddle.energy - minimum.energy) / temperature
    )
    return -log_rate


# ---------------------------------------------------------------------------------------------
# Traps and perturbations
# ---------------------------------------------------------------------------------------------


def trap_ensemble(
    mode_values: Sequence[float], widths: Sequence[int], n_members: int, generator: torch.Generator, *, perturbation: float | np.ndarray = 0.0
) -> list[torch.Tensor]:
    """``n_members`` copies of the balanced state :func:`balanced_weights`, each moved to a random
    point of its symmetry orbit (:func:`rotate_hidden`, so that the trap is not aligned with the
    coordinate axes), plus isotropic Gaussian noise of standard deviation ``perturbation`` per
    weight (a float or one value per member) that leaves the exactly low-rank manifold."""
    n_members = validation.integer("n_members", n_members, minimum=1)
    eps = np.broadcast_to(np.asarray(perturbation, dtype=float), (n_members,))
    if not np.all(np.isfinite(eps)) or np.any(eps < 0):
        raise ValueError(f"perturbation must be finite and >= 0, got {perturbation!r}")
    base = balanced_weights(mode_values, widths)
    members = [rotate_hidden(base, generator) for _ in range(n_members)]
    layers = [torch.stack([m[l] for m in members]) for l in range(len(base))]
    scale = torch.tensor(eps, dtype=torch.float64).view(-1, 1, 1)
    return [w + scale * torch.randn(w.shape, generator=generator, dtype=w.dtype) for w in layers]


def arrhenius_fit(temperatures: np.ndarray, estimates: Sequence[EscapeEstimate]):
    """Weighted straight line ``ln tau = ln tau_0 + Delta E / T`` through censored estimates
    (weights from ``se(ln tau) = 1/sqrt(escapes)``); the slope is the apparent barrier."""
    temperatures = validation.finite_array("temperatures", temperatures, ndim=1, positive_entries=True)
    log_tau = np.array([math.log(e.tau) for e in estimates])
    errors = np.array([e.log_tau_err for e in estimates])
    return linear_fit(1.0 / temperatures, log_tau, errors)


def unstable_direction(weights: Sequence[torch.Tensor], sigma_yx: np.ndarray, beta: float) -> tuple[float, list[torch.Tensor]]:
    """The negative Hessian eigenvalue of a saddle and its unit eigenvector (in the layout of
    ``weights``, sign chosen so that the first singular value it moves grows)."""
    widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    target = torch.as_tensor(np.asarray(sigma_yx), dtype=torch.float64)
    theta = flatten(weights).to(torch.float64)
    hess = torch.autograd.functional.hessian(lambda t: potential(t, widths, target, beta), theta).numpy()
    eig, vecs = np.linalg.eigh(hess)
    if eig[0] >= 0:
        raise ValueError("weights are not a saddle: the Hessian has no negative eigenvalue")
    direction = torch.as_tensor(vecs[:, 0])
    if float(direction @ theta) < 0:
        direction = -direction
    return float(eig[0]), unflatten(direction, widths)


# ---------------------------------------------------------------------------------------------
# Escape-time theory without fitted constants: the escape coordinate of the weak-mode sub-network
# ---------------------------------------------------------------------------------------------
#
# At the rank-1 trap of a depth-3 network of hidden width w, the weak data mode (strength eta) can
# only be carried by the n = w - 1 hidden units the strong mode leaves free in each hidden layer:
# u in R^n (first layer, from the weak input direction), M in R^(n x n) (second layer, free to
# free) and c in R^n (third layer, to the weak output direction).  The weak mode's end-to-end
# amplitude is lambda = c^T M u and the loss of this sub-network is the loss of a 1-n-n-1 linear
# network,
#
#     U_sub = (1/2) (c^T M u - eta)^2 + (beta/2) (|u|^2 + |M|_F^2 + |c|^2).
#
# Integrating every direction except lambda out exactly gives the free energy and the diffusion
# coefficient of the escape coordinate (Zwanzig's projection of overdamped Langevin dynamics):
#
#     F(lambda) = (1/2)(lambda - eta)^2 - T ln p_T(lambda),     D(lambda) = T <|grad lambda|^2>_lambda,
#
# where p_T is the density of c^T M u when every entry is N(0, s^2), s^2 = T / beta (the weight
# decay alone, at temperature T), and <.>_lambda averages over that Gaussian at fixed lambda.  In
# units lambda = s^3 z, with a = |c|^2 / s^2 and b = |u|^2 / s^2 (independent chi^2_n variables),
# z given (a, b) is N(0, a b) and
#
#     |grad lambda|^2 / s^4 = z^2 / b + z^2 / a + (n - 1)(a + b) + a b     (in mean, given a, b, z),
#
# so both need one integral over a (quadrature) and one over b (closed form, a Bessel function:
# int_0^inf x^(mu-1) exp(-x/2 - q/x) dx = 2 (2 q)^(mu/2) K_mu(sqrt(2 q))).  p_T and D are even in
# lambda, F is not (the data term pulls towards +eta).  The mean first-passage time from the trap
# lambda = 0 to lambda_out, reflecting far on the other side, is the one-dimensional formula
#
#     tau = int_0^lambda_out dy exp(F(y)/T) / D(y) int_-lambda_out^y dx exp(-F(x)/T).


@dataclass(frozen=True)
class EscapeCoordinate:
    """Free energy and diffusion coefficient of the escape coordinate ``lambda`` on a grid.

    ``grid``: values of ``lambda`` from near 0 to the absorbing point; ``free_energy``: ``F`` there
    (additive constant arbitrary); ``diffusion``: ``D`` there; ``temperature``: ``T``.
    """

    grid: np.ndarray
    free_energy: np.ndarray
    diffusion: np.ndarray
    temperature: float


def _log_bessel_moments(z: np.ndarray, a: np.ndarray, n: int) -> dict[int, np.ndarray]:
    """``ln I_k(z, a)`` for ``k = -1, 0, 1``: ``I_k = int chi2_n(b) b^k N(z; 0, a b) db``."""
    from scipy.special import kve

    log_norm = -0.5 * n * math.log(2.0) - float(gammaln(0.5 * n))  # chi^2_n density constant
    q2 = z[:, None] ** 2 / a[None, :]  # 2 q = z^2 / a
    root = np.sqrt(q2)
    out = {}
    for k in (-1, 0, 1):
        mu = 0.5 * (n - 1) + k
        # int b^(n/2 - 1 + k - 1/2) exp(-b/2 - z^2/(2ab)) db = 2 (z^2/a)^(mu/2) K_mu(|z|/sqrt a)
        out[k] = (log_norm - 0.5 * np.log(2 * math.pi * a[None, :]) + math.log(2.0) + 0.5 * mu * np.log(q2)
                  + np.log(kve(mu, root)) - root)
    return out


def escape_coordinate(eta: float, beta: float, temperature: float, hidden: int, lambda_out: float, *,
                      points: int = 600, quadrature: int = 400) -> EscapeCoordinate:
    """``F(lambda)`` and ``D(lambda)`` of the weak mode's escape coordinate ``lambda = c^T M u``.

    The sub-network is the ``1-hidden-hidden-1`` linear network of strength ``eta`` (EW Eq. 1 for one
    mode, in weight space); ``lambda`` runs from ``-lambda_out`` to ``lambda_out`` on a grid dense
    near 0 (uniform in ``|lambda|^(1/3)``, ``2 points`` values).  Exact up to quadrature: ``quadrature`` log-spaced points in ``a`` and
    ``points`` grid points (see the comment above this function for the formulas).
    """
    eta = validation.positive("eta", eta)
    beta = validation.positive("beta", beta)
    temperature = validation.positive("temperature", temperature)
    n = validation.integer("hidden", hidden, minimum=2)
    lambda_out = validation.positive("lambda_out", lambda_out)
    points = validation.integer("points", points, minimum=50)
    quadrature = validation.integer("quadrature", quadrature, minimum=100)
    from scipy.special import logsumexp

    scale = (temperature / beta) ** 1.5  # lambda = scale * z
    grid = lambda_out * np.linspace(0.0, 1.0, points) ** 3
    grid[0] = lambda_out * 1e-6 / points**3  # z = 0 is a removable singularity of the Bessel form
    z = grid / scale
    a_max = n + 12 * math.sqrt(2 * n) + 6 * float(z.max()) ** (2 / 3) + 20
    log_a = np.linspace(math.log(1e-6), math.log(a_max), quadrature)
    a = np.exp(log_a)
    # chi^2_n(a) da on the log grid (trapezoid weights)
    log_w = (0.5 * n - 1) * log_a - 0.5 * a - 0.5 * n * math.log(2.0) - float(gammaln(0.5 * n)) + log_a
    log_w += np.log(np.gradient(log_a))
    log_p, log_g = np.empty(points), np.empty(points)
    for chunk in np.array_split(np.arange(points), max(1, points * quadrature // 400_000)):
        moments = _log_bessel_moments(z[chunk], a, n)
        base = log_w[None, :]
        zz = z[chunk, None] ** 2
        log_p[chunk] = logsumexp(base + moments[0], axis=1)
        terms = np.stack([
            np.log(zz) + moments[-1],                                   # z^2 / b
            np.log(zz) - log_a[None, :] + moments[0],                   # z^2 / a
            math.log(n - 1) + log_a[None, :] + moments[0],              # (n-1) a
            math.log(n - 1) + moments[1],                               # (n-1) b
            log_a[None, :] + moments[1],                                # a b
        ])
        log_g[chunk] = logsumexp(base[None] + terms, axis=(0, 2))
    # p_T(lambda) = p(z) / scale is even in lambda, the data term is not: mirror the grid to -lambda_out
    log_density = np.concatenate([log_p[::-1], log_p]) - math.log(scale)
    full = np.concatenate([-grid[::-1], grid])
    free_energy = 0.5 * (full - eta) ** 2 - temperature * log_density
    diffusion = temperature * scale ** (4 / 3) * np.exp(np.concatenate([(log_g - log_p)[::-1], log_g - log_p]))
    return EscapeCoordinate(full, free_energy, diffusion, temperature)


def mean_first_passage_time(coordinate: EscapeCoordinate, start: float = 0.0) -> float:
    """Mean time to reach the end of ``coordinate.grid`` from ``start``, reflecting at the grid's
    first point: ``tau = int_start^end dy exp(F(y)/T) / D(y) int_first^y dx exp(-F(x)/T)``
    (one-dimensional Smoluchowski equation with position-dependent ``D``; Gardiner 5.2.7)."""
    from scipy.special import logsumexp

    x, phi = coordinate.grid, coordinate.free_energy / coordinate.temperature
    if not (np.all(np.isfinite(phi)) and np.all(coordinate.diffusion > 0) and np.all(np.diff(x) > 0)):
        raise ValueError("coordinate must have finite F, positive D and an increasing grid")
    start = float(start)
    if not x[0] <= start < x[-1]:
        raise ValueError(f"start must lie in [{x[0]:g}, {x[-1]:g}), got {start}")
    # both integrals as trapezoid sums in log space: exp(F/T) spans hundreds of e-folds at low T
    log_dx = np.log(np.diff(x))
    pieces = log_dx + np.logaddexp(-phi[:-1], -phi[1:]) - math.log(2.0)
    log_inner = np.concatenate([[-np.inf], np.logaddexp.accumulate(pieces)])
    log_outer = phi + log_inner - np.log(coordinate.diffusion)
    outer = log_dx + np.logaddexp(log_outer[:-1], log_outer[1:]) - math.log(2.0)
    return float(np.exp(logsumexp(outer[x[:-1] >= start])))


@dataclass(frozen=True)
class EscapeTheory:
    """The escape-time theory of :func:`weak_mode_escape_time` at a set of temperatures.

    ``log_tau``: ``ln tau`` of the theory; ``log_tau_harmonic``: ``ln tau`` of Kramers-Langer with
    zero modes for the whole network (:func:`kramers_langer_log_time`), the theory's ``T -> 0``
    limit; ``log_stiff_factor``: ``ln`` of the harmonic factor of the directions outside the
    weak-mode sub-network (independent of ``T``); ``hidden``: the sub-network's width ``n``.
    """

    temperature: np.ndarray
    log_tau: np.ndarray
    log_tau_harmonic: np.ndarray
    log_stiff_factor: float
    hidden: int


def weak_mode_escape_time(etas: Sequence[float], beta: float, temperatures: np.ndarray, widths: Sequence[int],
                          lambda_out: float, *, points: int = 600, quadrature: int = 400) -> EscapeTheory:
    """Mean escape time of the weakest data mode from the trap where every other mode is learned,
    for the depth-3 network ``widths = [d_in, h, h, d_out]`` under ``d theta = -grad U dt + sqrt(2T) dB``;
    escape is ``lambda`` reaching ``lambda_out``.  No fitted constant.

    The weak-mode sub-network (``n = h - len(etas) + 1`` free units per hidden layer) is treated
    exactly: :func:`escape_coordinate` and :func:`mean_first_passage_time`.  The other directions
    are stiff (curvature of order ``beta`` plus the learned modes) and enter harmonically, through
    the ratio of the whole network's Kramers-Langer time to the sub-network's (EW Eq. 11 with zero
    modes), which does not depend on ``T`` because both gain the same number of zero modes from
    trap to saddle.  As ``T -> 0`` the theory tends to that Kramers-Langer time.
    """
    from phaselab import linear_nets

    etas = validation.finite_array("etas", etas, ndim=1, positive_entries=True)
    beta = validation.positive("beta", beta)
    temperatures = validation.finite_array("temperatures", temperatures, ndim=1, positive_entries=True)
    widths = [validation.integer(f"widths[{i}]", w, minimum=1) for i, w in enumerate(widths)]
    if len(widths) != 4 or widths[1] != widths[2]:
        raise ValueError(f"widths must be [d_in, h, h, d_out] (depth 3, equal hidden widths), got {widths}")
    d = etas.size
    n = widths[1] - (d - 1)
    if d > min(widths[0], widths[3]) or n < 2:
        raise ValueError(f"need len(etas) <= min(d_in, d_out) and h - len(etas) + 1 >= 2, got {d} modes, widths {widths}")
    points_weak = linear_nets.stationary_points(float(etas[-1]), beta, 3)
    learned = [linear_nets.stationary_points(float(e), beta, 3) for e in etas[:-1]]
    if points_weak is None or any(p is None for p in learned):
        raise ValueError(f"every mode needs a saddle and a minimum at beta={beta} (beta below every beta_c)")
    saddle = points_weak[0]
    lambda_out = validation.in_range("lambda_out", lambda_out, saddle * (1 + 1e-9), points_weak[1])
    strong = [p[1] for p in learned]
    sigma_yx = np.zeros((widths[3], widths[0]))
    sigma_yx[range(d), range(d)] = etas
    full_trap = analyse_stationary_point(balanced_weights(strong + [0.0], widths), sigma_yx, beta, used_modes=d - 1)
    full_saddle = analyse_stationary_point(balanced_weights(strong + [saddle], widths), sigma_yx, beta, used_modes=d)
    sub_widths, sub_target = [1, n, n, 1], np.array([[etas[-1]]])
    sub_trap = analyse_stationary_point(balanced_weights([0.0], sub_widths), sub_target, beta, used_modes=0)
    sub_saddle = analyse_stationary_point(balanced_weights([saddle], sub_widths), sub_target, beta, used_modes=1)
    if (full_saddle.zero_modes - full_trap.zero_modes) != (sub_saddle.zero_modes - sub_trap.zero_modes):
        raise ValueError("the sub-network does not carry all the zero modes gained at the saddle")
    log_harmonic = kramers_langer_log_time(full_trap, full_saddle, temperatures)
    log_stiff = float(log_harmonic[0] - kramers_langer_log_time(sub_trap, sub_saddle, temperatures[:1])[0])
    log_mfpt = np.array([
        math.log(mean_first_passage_time(escape_coordinate(float(etas[-1]), beta, float(t), n, lambda_out,
                                                           points=points, quadrature=quadrature)))
        for t in temperatures
    ])
    return EscapeTheory(temperatures, log_mfpt + log_stiff, log_harmonic, log_stiff, n)
