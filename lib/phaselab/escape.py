"""Escape from metastable phases of deep linear networks: censored escape-time statistics, exact
stationary points in weight space, their Hessians, and the Kramers-Langer rate with zero modes.

Conventions are those of :mod:`phaselab.linear_nets` and :mod:`phaselab.ensemble`: with
``Sigma_xx = I`` the loss of weights ``theta = (W_1, ..., W_L)`` is, up to a constant,

    U(theta) = (1/2) ||W_L ... W_1 - Sigma_yx||_F^2 + (beta/2) sum_l ||W_l||_F^2,

and Langevin dynamics at temperature ``T`` is ``d theta = -grad U dt + sqrt(2 T) dB`` (one step of
:func:`phaselab.ensemble.train` with learning rate ``lr`` advances ``dt = lr``).

Kramers-Langer (Ersoy & Wiesner Eq. 11; Langer 1969).  The loss is invariant under the rotations
``W_l -> O_l W_l O_{l-1}^T`` of every hidden layer (``O_0 = O_L = I``), the group
``G = O(h_1) x ... x O(h_{L-1})``.  Each stationary point therefore lies on a manifold (its
``G``-orbit) of equivalent ones along which the Hessian vanishes: ``z`` zero modes, and Eq. (11),
which divides by every eigenvalue, cannot be applied as written.  Integrating the Boltzmann factor
exactly along the orbit and in the Gaussian approximation across it gives the rate

    k = (|w_u| / 2 pi) (V_sad / V_min) (2 pi T)^((z_min - z_sad)/2)
        * sqrt(prod' w_min / prod' |w_sad|) * exp(-Delta E / T),

with ``prod'`` over the non-zero Hessian eigenvalues, ``w_u`` the unstable one and ``V`` the
volume of the orbit (:func:`orbit_log_volume`).  With no zero modes this is Eq. (11).
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
# Traps, perturbations and the anharmonic correction
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


def anharmonic_factor(
    weights: Sequence[torch.Tensor],
    sigma_yx: np.ndarray,
    beta: float,
    temperature: float,
    rng: np.random.Generator,
    *,
    n_samples: int = 100_000,
    escape_index: int | None = None,
    escape_threshold: float | None = None,
) -> tuple[float, float]:
    """``Z / Z_harmonic`` of a stationary point by thermodynamic perturbation (Zwanzig):
    ``< exp(-(U - U_2) / T) >`` over the Gaussian ``U_2`` of its non-zero Hessian modes (the orbit
    directions are integrated exactly and need no correction).  For a saddle only the stable modes
    are sampled.  Samples whose singular value ``escape_index`` exceeds ``escape_threshold`` lie
    outside the trap's basin and count zero.  Returns the factor and its standard error."""
    temperature = validation.positive("temperature", temperature)
    n_samples = validation.integer("n_samples", n_samples, minimum=100)
    widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    target = torch.as_tensor(np.asarray(sigma_yx), dtype=torch.float64)
    theta = flatten(weights).to(torch.float64)
    hess = torch.autograd.functional.hessian(lambda t: potential(t, widths, target, beta), theta).numpy()
    eig, vecs = np.linalg.eigh(hess)
    stable = eig > 1e-8 * np.max(np.abs(eig))
    z = rng.standard_normal((n_samples, int(stable.sum()))) * np.sqrt(temperature / eig[stable])
    samples = torch.as_tensor(theta.numpy()[None, :] + z @ vecs[:, stable].T)
    product = ensemble.end_to_end(unflatten(samples, widths))
    energy = 0.5 * (product - target).square().sum(dim=(1, 2)) + 0.5 * beta * samples.square().sum(dim=1)
    harmonic = float(potential(theta, widths, target, beta)) + 0.5 * np.sum(z**2 * eig[stable], axis=1)
    weight = np.exp(-(energy.numpy() - harmonic) / temperature)
    if escape_index is not None:
        inside = torch.linalg.svdvals(product)[:, escape_index].numpy() < escape_threshold
        weight = np.where(inside, weight, 0.0)
    return float(weight.mean()), float(weight.std(ddof=1) / np.sqrt(n_samples))


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
