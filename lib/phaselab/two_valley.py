"""The two-valley model of Yang et al. (2026): valley hopping and transient freezing under SGD noise.

Landscape (paper Eq. 5 and A1-A4, Table S1 defaults).  Writing ``a`` for the valley scale
(``x1`` on the flatter side ``x >= 0``, ``x2`` on the sharper side ``x < 0``) and
``k = x0**2 / (f0 a**2)``, the loss is::

    L(x, y) = L0(y) + k Q(y) x**2 - 2 k a R(y) |x|,
    Q(y) = ((y + y_b) / (y + y_f))**2 = k**-1 / f(y),   R(y) = y (y + y_b) / (y + y_f)**2,

which is Eq. (5) rewritten so that the gradient and Hessian are cheap to evaluate for many runs.

Dynamics (Eq. 6): ``theta <- theta - eta (grad L + xi)`` with ``xi ~ N(0, 2 sigma H_+)``, ``H_+`` the
Hessian with negative eigenvalues set to zero.  We use the full Hessian (the authors' code drops
one term of ``H_yy``; it only changes the tiny noise along ``y``).  Two controls: isotropic noise
``xi ~ N(0, 2 sigma h_iso(y) I)`` with ``h_iso = 2 / sqrt(f1 f2)`` (the paper's effective
temperature ``T_eff = Delta_S h_iso``, equal in both valleys), and ``Sigma = 2 sigma H**2``.

Theory: effective loss (Eqs. 7-8), mean first-passage times (A23-A24) by quadrature and their erfi
forms (A28), the paper's steady state (Eq. 9), the stationary distribution of the Ito
Fokker-Planck equation that the discrete update (6) actually converges to, and the freezing
estimates (Eqs. 10-12).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import integrate, sparse, special
from scipy.sparse import linalg as sparse_linalg

from phaselab import config, validation

NOISE_KINDS = ("hessian", "isotropic", "hessian_squared")


@dataclass(frozen=True)
class Landscape:
    """Parameters of the two-valley landscape (paper Table S1, via the authors' code)."""

    f0: float = 1.0
    x0: float = 1.0
    x1: float = 0.8
    x2: float = 0.65
    y_f: float = 20.0
    y_b: float = 30.0
    y_d: float = 100.0
    L_d: float = 1.0

    def __post_init__(self) -> None:
        for name in ("f0", "x0", "x1", "x2", "y_f", "y_b", "y_d", "L_d"):
            validation.positive(name, getattr(self, name))

    @property
    def gamma(self) -> float:
        """Flatness ratio gamma = f1 / f2 = (x1 / x2)**2 (> 1 when the x >= 0 valley is flatter)."""
        return (self.x1 / self.x2) ** 2

    @property
    def L0_star(self) -> float:
        """Loss offset L0* = x0**2 / f0 that keeps L >= 0 (A4)."""
        return self.x0**2 / self.f0

    def f(self, y: Any, flat: bool) -> Any:
        """Valley flatness f_1(y) (``flat=True``) or f_2(y) (A2)."""
        a = self.x1 if flat else self.x2
        return self.f0 * a**2 / self.x0**2 * (y + self.y_f) ** 2 / (y + self.y_b) ** 2

    def g(self, y: Any, flat: bool) -> Any:
        """Valley-position function g_1(y) or g_2(y) (A1); the minima sit at x = +-g/2."""
        a = self.x1 if flat else self.x2
        return 2 * a * y / (y + self.y_b)

    def barrier(self, y: Any) -> Any:
        """Common barrier height Delta L(y) = x0**2 y**2 / (f0 (y + y_f)**2) (A3)."""
        return self.x0**2 / self.f0 * y**2 / (y + self.y_f) ** 2

    def L0(self, y: Any) -> Any:
        """Global drift term L0(y) = L_d exp(-y / y_d) + L0* (A4)."""
        return self.L_d * _xp(y).exp(-y / self.y_d) + self.L0_star


DEFAULT_LANDSCAPE = Landscape()


def _xp(a: Any) -> Any:
    """The array namespace (torch or numpy) of ``a``."""
    return torch if isinstance(a, torch.Tensor) else np


def _y_terms(land: Landscape, y: Any) -> dict[str, Any]:
    """Q, R, L0 and their first two y-derivatives (see the module docstring)."""
    xp = _xp(y)
    yf, yb = y + land.y_f, y + land.y_b
    inv_f = 1.0 / yf
    p = yb * inv_f
    dp = (land.y_f - land.y_b) * inv_f**2
    ddp = -2.0 * dp * inv_f
    w = inv_f**2
    dw = -2.0 * w * inv_f
    ddw = 6.0 * w * inv_f**2
    u, du = y * yb, 2.0 * y + land.y_b
    decay = land.L_d * xp.exp(-y / land.y_d)
    return {
        "Q": p * p,
        "dQ": 2.0 * p * dp,
        "ddQ": 2.0 * (dp * dp + p * ddp),
        "R": u * w,
        "dR": du * w + u * dw,
        "ddR": 2.0 * w + 2.0 * du * dw + u * ddw,
        "L0": decay + land.L0_star,
        "dL0": -decay / land.y_d,
        "ddL0": decay / land.y_d**2,
    }


def _side_terms(land: Landscape, x: Any) -> tuple[Any, Any, Any]:
    """Sign s of the side (+1 for x >= 0), k = x0^2/(f0 a^2) and k a for each point."""
    xp = _xp(x)
    flat = x >= 0
    k1, k2 = land.x0**2 / (land.f0 * land.x1**2), land.x0**2 / (land.f0 * land.x2**2)
    if xp is torch:
        one = torch.ones_like(x)
        sign = torch.where(flat, one, -one)
        k = torch.where(flat, k1 * one, k2 * one)
        ka = torch.where(flat, k1 * land.x1 * one, k2 * land.x2 * one)
    else:
        sign = np.where(flat, 1.0, -1.0)
        k = np.where(flat, k1, k2)
        ka = np.where(flat, k1 * land.x1, k2 * land.x2)
    return sign, k, ka


def loss(x: Any, y: Any, land: Landscape = DEFAULT_LANDSCAPE) -> Any:
    """The loss L(x, y) of Eq. (5); works on numpy arrays and torch tensors."""
    t = _y_terms(land, y)
    sign, k, ka = _side_terms(land, x)
    return t["L0"] + k * t["Q"] * x * x - 2.0 * ka * t["R"] * sign * x


def derivatives(x: Any, y: Any, land: Landscape = DEFAULT_LANDSCAPE) -> tuple[Any, ...]:
    """Analytic gradient and Hessian of Eq. (5): (L_x, L_y, H_xx, H_xy, H_yy).

    At the cusp x = 0 the one-sided (x >= 0) values are returned.  ``H_yy`` keeps every term
    (the authors' code drops the one from the y-dependence of f_i).
    """
    t = _y_terms(land, y)
    sign, k, ka = _side_terms(land, x)
    kx = k * x
    ka_s = ka * sign
    gx = 2.0 * (kx * t["Q"] - ka_s * t["R"])
    gy = t["dL0"] + (kx * t["dQ"] - 2.0 * ka_s * t["dR"]) * x
    hxx = 2.0 * k * t["Q"]
    hxy = 2.0 * (kx * t["dQ"] - ka_s * t["dR"])
    hyy = t["ddL0"] + (kx * t["ddQ"] - 2.0 * ka_s * t["ddR"]) * x
    return gx, gy, hxx, hxy, hyy


def gradient(x: Any, y: Any, land: Landscape = DEFAULT_LANDSCAPE) -> tuple[Any, Any]:
    """Analytic gradient (dL/dx, dL/dy) of Eq. (5)."""
    return derivatives(x, y, land)[:2]


def hessian(x: Any, y: Any, land: Landscape = DEFAULT_LANDSCAPE) -> tuple[Any, Any, Any]:
    """Analytic Hessian entries (H_xx, H_xy, H_yy) of Eq. (5)."""
    return derivatives(x, y, land)[2:]


def effective_loss(x: Any, y: Any, land: Landscape = DEFAULT_LANDSCAPE) -> Any:
    """Effective loss L_eff = gamma^{+-1/2} L + (1 - gamma^{+-1/2}) L0 of Eq. (7)."""
    x = np.asarray(x, dtype=float)
    power = np.where(x >= 0, np.sqrt(land.gamma), 1.0 / np.sqrt(land.gamma))
    return power * loss(x, y, land) + (1.0 - power) * land.L0(y)


def sgd_correction(x: Any, y: Any, land: Landscape = DEFAULT_LANDSCAPE) -> Any:
    """SGD-induced correction L_SGD = L_eff - L = (gamma^{+-1/2} - 1)(L - L0) of Eq. (8)."""
    return effective_loss(x, y, land) - loss(np.asarray(x, dtype=float), y, land)


# --------------------------------------------------------------------------------------------
# Steady state at fixed y
# --------------------------------------------------------------------------------------------


def _barrier_exponents(y: Any, delta_s: float, land: Landscape) -> tuple[np.ndarray, np.ndarray]:
    """z_i^2 = Delta L f_i / (2 Delta_S), the barrier over the valley temperature D_11 = 2 Delta_S / f_i."""
    barrier = land.barrier(y)
    return barrier * land.f(y, True) / (2 * delta_s), barrier * land.f(y, False) / (2 * delta_s)


def _check_y_delta(y: Any, delta_s: Any) -> tuple[np.ndarray, float]:
    y = validation.finite_array("y", y)
    if np.any(y <= 0):
        raise ValueError(f"y must be > 0 (the valleys bifurcate at y = 0), got {y!r}")
    return y, validation.positive("delta_s", delta_s)


def steady_state_p_flat(y: Any, delta_s: float, exact: bool = True, land: Landscape = DEFAULT_LANDSCAPE) -> np.ndarray:
    """The paper's steady-state flat-valley probability, Eq. (9) / (A31).

    ``exact=True``: ``[1 + gamma^-1 erfi(z2) / erfi(z1)]^-1``; ``exact=False``: the exponential
    approximation ``[1 + gamma^-1/2 exp((z2^2 - z1^2))]^-1`` with ``z_i^2 = Delta L f_i / (2 Delta_S)``.
    """
    y, delta_s = _check_y_delta(y, delta_s)
    z1_sq, z2_sq = _barrier_exponents(y, delta_s, land)
    if exact:
        # erfi(z) = 2 exp(z^2) D(z) / sqrt(pi) with D the Dawson function: stable for large z.
        z1, z2 = np.sqrt(z1_sq), np.sqrt(z2_sq)
        log_ratio = np.log(special.dawsn(z2)) - np.log(special.dawsn(z1)) + z2_sq - z1_sq
        return 1.0 / (1.0 + np.exp(log_ratio) / land.gamma)
    return 1.0 / (1.0 + np.exp(z2_sq - z1_sq) / np.sqrt(land.gamma))


CONVENTIONS = {"ito": 0.0, "stratonovich": 0.5, "anti-ito": 1.0}


def stationary_p_flat(
    y: Any, delta_s: float, noise: str = "hessian", land: Landscape = DEFAULT_LANDSCAPE, *, convention: str = "ito"
) -> np.ndarray:
    """Flat-valley probability of the stationary Fokker-Planck density at fixed y.

    The flux ``J = -P dL/dx - D^a d(D^(1-a) P)/dx`` with ``a`` = 0 (``"ito"``), 1/2
    (``"stratonovich"``) or 1 (``"anti-ito"``, the Fick form of the paper's A10/A16, where P itself
    is continuous at the ridge).  The zero-flux density is ``P(x) ~ D^(a-1) exp(-(L - L0)/D)`` with
    ``D^(1-a) P`` continuous at the cusp, so the odds are
    ``gamma^(1-a) exp(z1^2 - z2^2) (1 + erf z1) / (1 + erf z2)`` for Hessian-aligned noise
    (``D_11 = 2 Delta_S / f_i``).  The update (6) evaluates the noise at the current point, so its
    diffusion limit is the Ito one.  For isotropic noise ``Z_1 / Z_2 = sqrt(gamma)`` exactly (any
    temperature, any y, any convention: D does not jump).
    """
    y, delta_s = _check_y_delta(y, delta_s)
    validation.one_of("noise", noise, ("hessian", "isotropic"))
    validation.one_of("convention", convention, tuple(CONVENTIONS))
    if noise == "isotropic":
        return np.full_like(y, np.sqrt(land.gamma) / (1.0 + np.sqrt(land.gamma)))
    z1_sq, z2_sq = _barrier_exponents(y, delta_s, land)
    log_odds = ((1.0 - CONVENTIONS[convention]) * np.log(land.gamma) + z1_sq - z2_sq
                + np.log1p(special.erf(np.sqrt(z1_sq))) - np.log1p(special.erf(np.sqrt(z2_sq))))
    return special.expit(log_odds)


def x_noise_variance(x: np.ndarray, y: float, sigma: float, noise: str = "hessian", land: Landscape = DEFAULT_LANDSCAPE) -> np.ndarray:
    """Variance of the x-component of the noise xi of Eq. (6) at (x, y); a step adds eta**2 times it.

    ``2 sigma (H_+)_xx`` for Hessian-aligned noise (``H_+`` the Hessian with negative eigenvalues set
    to zero), ``2 sigma h_iso`` for isotropic noise, ``2 sigma (H^2)_xx`` for ``Sigma = 2 sigma H^2``.
    """
    validation.one_of("noise", noise, NOISE_KINDS)
    sigma = validation.non_negative("sigma", sigma)
    hxx, hxy, hyy = hessian(np.asarray(x, dtype=float), float(y), land)
    if noise == "isotropic":
        return np.full_like(hxx, 2 * sigma * 2 / np.sqrt(land.f(y, True) * land.f(y, False)))
    if noise == "hessian_squared":
        return 2 * sigma * (hxx**2 + hxy**2)
    half_tr, half_diff = 0.5 * (hxx + hyy), 0.5 * (hxx - hyy)
    radius = np.sqrt(half_diff**2 + hxy**2)
    l1, l2 = half_tr + radius, half_tr - radius
    cos_sq = np.where(radius > 0, 0.5 * (1 + half_diff / np.where(radius > 0, radius, 1.0)), 1.0)  # (v1)_x^2
    return 2 * sigma * (np.clip(l1, 0, None) * cos_sq + np.clip(l2, 0, None) * (1 - cos_sq))


def transfer_matrix(edges: np.ndarray, mean: np.ndarray, std: np.ndarray, reach: float = 9.0) -> sparse.csc_matrix:
    """Column-stochastic matrix of a Gaussian step on the bins ``edges``: entry (i, j) is the chance
    that a step from the centre of bin j, with ``mean[j]`` and ``std[j]``, lands in bin i.

    Each column keeps the bins within ``reach`` standard deviations of its mean (the rest carries
    less than 1e-18 of the mass); mass that would leave the grid goes to the outermost bins, so
    every column sums to one.
    """
    edges = validation.finite_array("edges", edges, ndim=1)
    if edges.size < 3 or np.any(np.diff(edges) <= 0):
        raise ValueError("edges must be increasing with at least 3 entries")
    std = validation.finite_array("std", std, ndim=1, positive_entries=True)
    mean = validation.finite_array("mean", mean, ndim=1)
    reach = validation.positive("reach", reach)
    n = edges.size - 1
    if not (mean.size == std.size == n):
        raise ValueError(f"mean and std must have len(edges) - 1 = {n} entries")
    low = np.searchsorted(edges, mean - reach * std) - 1
    high = np.searchsorted(edges, mean + reach * std)
    window = int(min(n, np.max(high - low) + 1))
    start = np.clip(low, 0, n - window)
    rows = start[:, None] + np.arange(window)[None, :]
    z_lo = (edges[rows] - mean[:, None]) / std[:, None]
    z_hi = (edges[rows + 1] - mean[:, None]) / std[:, None]
    cdf_lo = np.where(rows == 0, 0.0, special.ndtr(z_lo))
    cdf_hi = np.where(rows == n - 1, 1.0, special.ndtr(z_hi))
    # the difference of upper tails is exact where both CDFs round to one
    values = np.where(z_lo > 0, special.ndtr(-z_lo) - np.where(rows == n - 1, 0.0, special.ndtr(-z_hi)), cdf_hi - cdf_lo)
    cols = np.broadcast_to(np.arange(n)[:, None], rows.shape)
    return sparse.csc_matrix((values.ravel(), (rows.ravel(), cols.ravel())), shape=(n, n))


def _stationary_vector(matrix: sparse.csc_matrix) -> np.ndarray:
    """Eigenvector of eigenvalue 1 of a column-stochastic matrix, normalised to sum one."""
    n = matrix.shape[0]
    system = (matrix - sparse.identity(n, format="csc")).tolil()
    system[n - 1, :] = np.ones(n)
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    return sparse_linalg.spsolve(system.tocsc(), rhs)


def discrete_stationary_p_flat(
    y: float, eta: float, sigma: float, noise: str = "hessian", bins_per_step: float = 2.5,
    land: Landscape = DEFAULT_LANDSCAPE,
) -> float:
    """Flat-valley probability of the exact stationary law of the discrete update (6) at fixed y.

    Beyond the paper (which works in continuous time): at fixed y the x-update is the Markov chain
    ``x' = x - eta (dL/dx + xi_x)``, ``xi_x ~ N(0, x_noise_variance)``.  Its transfer operator on a
    grid (x = 0 is a bin edge, so no bin straddles the cusp) has the stationary law as its
    eigenvector of eigenvalue 1.  The grid has ``bins_per_step`` bins per standard deviation of the
    smallest step; the result is Richardson-extrapolated from that grid and one twice as fine (the
    midpoint rule errs as the bin width squared).  As eta -> 0 at fixed Delta_S = eta sigma it tends
    to the Ito law of :func:`stationary_p_flat`; in a quadratic valley of curvature h the stationary
    variance is the discrete Ornstein-Uhlenbeck one, ``(1 - eta h / 2)^-1`` times the continuous one.
    """
    y = validation.positive("y", y)
    eta = validation.positive("eta", eta)
    sigma = validation.positive("sigma", sigma)
    bins_per_step = validation.in_range("bins_per_step", bins_per_step, 1.0, 50.0)
    validation.one_of("noise", noise, NOISE_KINDS)
    reach = max(land.g(y, True), land.g(y, False)) / 2
    floors = np.array([-land.g(y, False) / 2, land.g(y, True) / 2])
    step_sd = eta * np.sqrt(x_noise_variance(floors, y, sigma, noise, land))
    h = hessian(floors, y, land)[0]
    if np.any(eta * h >= 2):
        raise ValueError(f"eta must be < 2 / H_xx = {2 / h.max():.3g} (a valley is unstable), got {eta!r}")
    valley_sd = step_sd / np.sqrt(eta * h * (2 - eta * h))  # discrete Ornstein-Uhlenbeck width
    half = reach + 10 * valley_sd.max()
    results = []
    for refine in (1, 2):
        n_half = int(np.ceil(half / (step_sd.min() / (bins_per_step * refine))))
        edges = np.linspace(-half, half, 2 * n_half + 1)
        centres = 0.5 * (edges[1:] + edges[:-1])
        mean = centres - eta * gradient(centres, y, land)[0]
        std = np.maximum(eta * np.sqrt(x_noise_variance(centres, y, sigma, noise, land)), 1e-12)
        results.append(float(_stationary_vector(transfer_matrix(edges, mean, std))[n_half:].sum()))
    coarse, fine = results
    return fine + (fine - coarse) / 3


def equilibrium_p_flat_paper(land: Landscape = DEFAULT_LANDSCAPE) -> float:
    """The paper's isotropic-noise equilibrium gamma / (1 + gamma) (A32)."""
    return land.gamma / (1.0 + land.gamma)


def _valley_temperature(y: float, delta_s: float, flat: bool, noise: str, land: Landscape) -> float:
    if noise == "isotropic":
        return 2 * delta_s / np.sqrt(land.f(y, True) * land.f(y, False))
    return 2 * delta_s / land.f(y, flat)


def mfpt_quadrature(y: float, delta_s: float, flat: bool, noise: str = "hessian", land: Landscape = DEFAULT_LANDSCAPE) -> float:
    """Mean first-passage time from a valley minimum to the ridge x = 0 by quadrature, (A23)/(A24).

    ``flat=True`` gives tau_{f->s} (A24), ``flat=False`` tau_{s->f} (A23), in units of the continuous
    time t = eta * step.  The loss is measured from L0(y) so that the exponentials stay finite.
    """
    y = validation.positive("y", y)
    delta_s = validation.positive("delta_s", delta_s)
    validation.one_of("noise", noise, ("hessian", "isotropic"))
    temp = _valley_temperature(y, delta_s, flat, noise, land)
    f, g = land.f(y, flat), land.g(y, flat)

    def rel_loss(u: float) -> float:  # L - L0 as a function of u = |x| on this side
        return u * (u - g) / f

    def inner(u: float) -> float:  # integral of exp(-(L-L0)/T) from u outwards to |x| = infinity
        width = np.sqrt(f * temp)
        return integrate.quad(lambda v: np.exp(-(rel_loss(v) - rel_loss(g / 2)) / temp), u, g / 2 + 40 * width + g)[0]

    def outer(u: float) -> float:
        return np.exp((rel_loss(u) - rel_loss(g / 2)) / temp) * inner(u)

    return integrate.quad(outer, 0.0, g / 2, limit=200)[0] / temp


def mfpt_erfi(y: Any, delta_s: float, flat: bool, land: Landscape = DEFAULT_LANDSCAPE) -> np.ndarray:
    """Kramers-Gaussian MFPT tau = (pi/2) f_i erfi(sqrt(Delta L f_i / (2 Delta_S))), Eq. (A28)."""
    y, delta_s = _check_y_delta(y, delta_s)
    z_sq = _barrier_exponents(y, delta_s, land)[0 if flat else 1]
    return np.pi / 2 * land.f(y, flat) * special.erfi(np.sqrt(z_sq))


def _log_masses_and_ridge_widths(y: np.ndarray, delta_s: np.ndarray, land: Landscape) -> tuple[np.ndarray, ...]:
    """log M_i and A_i of the Ito speed measure and scale function on each side (i = flat, sharp).

    With T_i = 2 Delta_S / f_i, ``M_i = int exp(-(L-L0)/T_i) / T_i dx`` over the valley (half line)
    and ``A_i = int_0^{x_i*} exp((L-L0)/T_i) dx`` over the ridge side; in closed form
    ``M_i = sqrt(2 Delta_S) / T_i * exp(z_i^2) * sqrt(pi)/2 * (1 + erf z_i)`` and
    ``A_i = sqrt(2 Delta_S) * Dawson(z_i)``, with ``z_i^2 = Delta L f_i / (2 Delta_S)``.
    """
    root = np.sqrt(2 * delta_s)
    out = []
    for flat, z_sq in zip((True, False), _barrier_exponents(y, delta_s, land)):
        z = np.sqrt(z_sq)
        temp = 2 * delta_s / land.f(y, flat)
        out.append(np.log(root / temp) + z_sq + np.log(np.sqrt(np.pi) / 2 * (1 + special.erf(z))))
        out.append(root * special.dawsn(z))
    log_m1, a1, log_m2, a2 = out
    return log_m1, log_m2, a1, a2


def ridge_passage_times(y: Any, delta_s: Any, land: Landscape = DEFAULT_LANDSCAPE) -> tuple[np.ndarray, np.ndarray]:
    """Kramers-decoupled MFPTs to the ridge, ``tau_i = M_i A_i`` (flat, sharp), cf. (A23)-(A24).

    Equals ``(pi/4) f_i (1 + erf z_i) erfi z_i``, which tends to the erfi form (A28) at high barriers.
    """
    y = validation.finite_array("y", y, positive_entries=True)
    delta_s = validation.finite_array("delta_s", delta_s, positive_entries=True)
    log_m1, log_m2, a1, a2 = _log_masses_and_ridge_widths(y, delta_s, land)
    with np.errstate(over="ignore"):  # an infinite passage time is a frozen valley
        return np.exp(log_m1) * a1, np.exp(log_m2) * a2


def hopping_rates(y: Any, delta_s: Any, land: Landscape = DEFAULT_LANDSCAPE) -> tuple[np.ndarray, np.ndarray]:
    """Committed valley-to-valley rates (k_plus: flat -> sharp, k_minus: sharp -> flat).

    The MFPT from one minimum to the other is ``M_i (A_1 + A_2)``: a ridge visit (rate 1 / (M_i A_i))
    ends in the other valley with the splitting probability ``A_j / (A_1 + A_2)``.  Their ratio
    ``k_minus / k_plus = M_1 / M_2`` is the Ito stationary law of :func:`stationary_p_flat`.
    """
    y = validation.finite_array("y", y, positive_entries=True)
    delta_s = validation.finite_array("delta_s", delta_s, positive_entries=True)
    log_m1, log_m2, a1, a2 = _log_masses_and_ridge_widths(y, delta_s, land)
    log_a = np.log(a1 + a2)
    with np.errstate(under="ignore"):
        return np.exp(-log_m1 - log_a), np.exp(-log_m2 - log_a)


def valley_floor_drift(y: Any, land: Landscape = DEFAULT_LANDSCAPE) -> np.ndarray:
    """dy/dt on the common valley floor L0(y) - Delta L(y): L_d/y_d e^{-y/y_d} + 2 x0^2 y_f y / (f0 (y+y_f)^3)."""
    y = np.asarray(y, dtype=float)
    return land.L_d / land.y_d * np.exp(-y / land.y_d) + 2 * land.x0**2 * land.y_f * y / (land.f0 * (y + land.y_f) ** 3)


@dataclass(frozen=True)
class MasterEquationResult:
    """Two-state master-equation prediction along the deterministic valley-floor path y(t).

    ``t``, ``y``: the time grid and path; ``p_flat``: (cells, times) flat-valley probability;
    ``mean_y_freeze``: per cell the predicted mean y at the last ridge visit.
    """

    t: np.ndarray
    y: np.ndarray
    p_flat: np.ndarray
    mean_y_freeze: np.ndarray


def master_equation(delta_s: Any, y0: float, t_end: float, dt: float = 0.05, land: Landscape = DEFAULT_LANDSCAPE) -> MasterEquationResult:
    """Integrate dP/dt = k_minus (1 - P) - k_plus P (A30) with the rates of :func:`hopping_rates`
    along y(t) from :func:`valley_floor_drift`, starting from P = 1/2; no fitted constant.

    The last ridge visit has the distribution Pr(y_last <= y) = exp(-N(y)), N the expected number of
    later visits at rate P / tau_1 + (1 - P) / tau_2 (:func:`ridge_passage_times`).
    """
    delta_s = validation.finite_array("delta_s", delta_s, positive_entries=True).reshape(-1, 1)
    y0 = validation.positive("y0", y0)
    t_end = validation.positive("t_end", t_end)
    dt = validation.positive("dt", dt)
    n = int(np.ceil(t_end / dt))
    t = np.linspace(0.0, t_end, n + 1)
    h = t[1] - t[0]
    y = np.empty(n + 1)
    y[0] = y0
    for i in range(n):  # midpoint rule for the deterministic path
        y[i + 1] = y[i] + h * valley_floor_drift(y[i] + 0.5 * h * valley_floor_drift(y[i], land), land)
    log_m1, log_m2, a1, a2 = _log_masses_and_ridge_widths(np.broadcast_to(y, (delta_s.size, n + 1)), delta_s, land)
    log_a = np.log(a1 + a2)
    with np.errstate(under="ignore"):
        total = np.exp(-log_m1 - log_a) + np.exp(-log_m2 - log_a)
        visit_flat, visit_sharp = np.exp(-log_m1) / a1, np.exp(-log_m2) / a2
    target = special.expit(log_m1 - log_m2)
    p = np.empty((delta_s.size, n + 1))
    p[:, 0] = 0.5
    for i in range(n):  # exact step for piecewise-constant rates: stable at any rate
        p[:, i + 1] = target[:, i] + (p[:, i] - target[:, i]) * np.exp(-total[:, i] * h)
    visit_rate = p * visit_flat + (1 - p) * visit_sharp
    later_visits = np.concatenate([np.cumsum((visit_rate[:, :0:-1]) * h, axis=1)[:, ::-1], np.zeros((delta_s.size, 1))], axis=1)
    cdf = np.exp(-later_visits)
    mean_y = y[0] * cdf[:, 0] + np.sum(np.diff(cdf, axis=1) * y[1:], axis=1)
    return MasterEquationResult(t=t, y=y, p_flat=p, mean_y_freeze=mean_y)


# --------------------------------------------------------------------------------------------
# Freezing
# --------------------------------------------------------------------------------------------


def phi_paper(land: Landscape = DEFAULT_LANDSCAPE) -> float:
    """The upper-bound prefactor Phi of Eq. (A37): 2 (x1^2 - x2^2)/(27 y_b) (L_d/y_d + 8 x0^2/(27 y_f))."""
    return 2 * (land.x1**2 - land.x2**2) / (27 * land.y_b) * (land.L_d / land.y_d + 8 * land.x0**2 / (27 * land.y_f))


def freezing_point(delta_s: Any, eps_phi: float, land: Landscape = DEFAULT_LANDSCAPE) -> np.ndarray:
    """Freezing point y_freeze of Eq. (11) for the product ``eps_phi = epsilon * Phi``.

    Returns ``nan`` outside the validity range 0 < Delta_S ln(Delta_S / (eps Phi)^2) < x2^2.
    """
    delta_s = validation.finite_array("delta_s", delta_s, positive_entries=True)
    eps_phi = validation.positive("eps_phi", eps_phi)
    s = delta_s * np.log(delta_s / eps_phi**2)
    valid = (s > 0) & (s < land.x2**2)
    root = np.sqrt(np.where(valid, s, np.nan))
    return land.y_b * root / (land.x2 - root)


def p_flat_at_freezing(y_freeze: Any, delta_s: Any, land: Landscape = DEFAULT_LANDSCAPE) -> np.ndarray:
    """Eq. (10): the exponential steady state of Eq. (9) evaluated at y = y_freeze."""
    y_freeze = np.asarray(y_freeze, dtype=float)
    delta_s = np.asarray(delta_s, dtype=float)
    b_sq = (y_freeze / (land.y_b + y_freeze)) ** 2
    return 1.0 / (1.0 + np.exp((land.x2**2 - land.x1**2) * b_sq / (2 * delta_s)) / np.sqrt(land.gamma))


def p_flat_after_freezing(delta_s: Any, eps_phi: float, land: Landscape = DEFAULT_LANDSCAPE) -> np.ndarray:
    """Eq. (12): [1 + gamma^-1/2 (sqrt(Delta_S) / (eps Phi))^(1 - gamma)]^-1."""
    delta_s = validation.finite_array("delta_s", delta_s, positive_entries=True)
    eps_phi = validation.positive("eps_phi", eps_phi)
    return 1.0 / (1.0 + (np.sqrt(delta_s) / eps_phi) ** (1 - land.gamma) / np.sqrt(land.gamma))


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulationResult:
    """Outcome of :func:`simulate`; arrays have a leading cell axis when eta/sigma were arrays.

    ``p_flat``: fraction of runs in the flat valley (x >= 0, the side convention of the
    crossings) at the end; ``freezing_steps``: per run the step of the
    last sign change of x (0 for none); ``y_freeze``: y at that step (y0 for none); ``x``, ``y``:
    final positions; ``snapshots``: ``(steps, x, y)`` recorded every ``record_every`` steps or None.
    """

    eta: np.ndarray
    sigma: np.ndarray
    p_flat: np.ndarray
    freezing_steps: np.ndarray
    y_freeze: np.ndarray
    x: np.ndarray
    y: np.ndarray
    n_steps: int
    snapshots: tuple[np.ndarray, np.ndarray, np.ndarray] | None


def _noise(hxx, hxy, hyy, y, scale, kind: str, land: Landscape, gen: torch.Generator):
    """One draw of eta-free noise xi with covariance scale^2 * (H_+, h_iso I or H^2)."""
    z1 = torch.randn(hxx.shape, generator=gen, device=hxx.device, dtype=hxx.dtype)
    z2 = torch.randn(hxx.shape, generator=gen, device=hxx.device, dtype=hxx.dtype)
    if kind == "hessian_squared":
        return scale * (hxx * z1 + hxy * z2), scale * (hxy * z1 + hyy * z2)
    if kind == "isotropic":
        amp = scale * torch.sqrt(2.0 / torch.sqrt(land.f(y, True) * land.f(y, False)))
        return amp * z1, amp * z2
    # sqrt(H_+) = a H + b I for a 2x2 symmetric H with eigenvalues l1 > l2 and f(l) = sqrt(max(l, 0)):
    # a = (f1 - f2) / (l1 - l2), b = (l1 f2 - l2 f1) / (l1 - l2)  (no trigonometry needed)
    half_tr, half_diff = 0.5 * (hxx + hyy), 0.5 * (hxx - hyy)
    radius = torch.sqrt(half_diff * half_diff + hxy * hxy)
    l1, l2 = half_tr + radius, half_tr - radius
    f1, f2 = torch.sqrt(torch.clamp(l1, min=0.0)), torch.sqrt(torch.clamp(l2, min=0.0))
    inv_gap = scale / (2.0 * radius)
    a = (f1 - f2) * inv_gap
    b = (l1 * f2 - l2 * f1) * inv_gap
    return a * (hxx * z1 + hxy * z2) + b * z1, a * (hxy * z1 + hyy * z2) + b * z2


def simulate(
    eta: Any,
    sigma: Any,
    n_runs: int,
    n_steps: int,
    y0: Any = 5.0,
    seed: int = 0,
    *,
    noise: str = "hessian",
    hold_y: bool = False,
    x_start: Any = None,
    record_every: int | None = None,
    land: Landscape = DEFAULT_LANDSCAPE,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> SimulationResult:
    """Run the update (6) for ``n_runs`` runs in each (eta, sigma) cell, all in one tensor program.

    ``eta`` and ``sigma`` are scalars or equal-length 1-d arrays (one entry per cell).  Runs start
    at y = y0 (a scalar, or one value per cell) with x alternating -0.01 / +0.01 (half on each side), as in the authors' code, unless
    ``x_start`` (per run, shared by the cells) is given.  ``hold_y`` keeps y fixed (steady-state
    tests).  ``noise`` is ``"hessian"`` (xi ~ N(0, 2 sigma H_+)), ``"isotropic"`` or
    ``"hessian_squared"`` (Sigma = 2 sigma H^2).
    """
    scalar = np.ndim(eta) == 0 and np.ndim(sigma) == 0
    etas = validation.finite_array("eta", np.atleast_1d(eta), ndim=1, positive_entries=True)
    sigmas = validation.finite_array("sigma", np.atleast_1d(sigma), ndim=1)
    if np.any(sigmas < 0):
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    if etas.shape != sigmas.shape:
        raise ValueError(f"eta and sigma must have the same length, got {etas.shape} and {sigmas.shape}")
    n_runs = validation.integer("n_runs", n_runs, minimum=1)
    n_steps = validation.integer("n_steps", n_steps, minimum=1)
    if np.ndim(y0) > 0 and np.size(y0) != etas.size:
        raise ValueError(f"y0 must be a scalar or have one entry per cell ({etas.size}), got {np.size(y0)}")
    y0s = validation.finite_array("y0", np.broadcast_to(np.asarray(y0, dtype=float), etas.shape).copy(), ndim=1,
                                  positive_entries=True)
    seed = validation.integer("seed", seed, minimum=0)
    validation.one_of("noise", noise, NOISE_KINDS)
    if record_every is not None:
        record_every = validation.integer("record_every", record_every, minimum=1, maximum=n_steps)
    dev = config.resolve_device(device)
    gen = config.torch_generator(seed, dev)
    config.reduce_allocation_overhead()

    shape = (etas.size, n_runs)
    eta_t = torch.as_tensor(etas, dtype=dtype, device=dev)[:, None]
    scale = torch.sqrt(2.0 * torch.as_tensor(sigmas, dtype=dtype, device=dev))[:, None]
    if x_start is None:
        x_start = np.where(np.arange(n_runs) % 2 == 0, -0.01, 0.01)
    x_start = validation.finite_array("x_start", x_start, ndim=1)
    if x_start.size != n_runs:
        raise ValueError(f"x_start must have n_runs = {n_runs} entries, got {x_start.size}")
    x = torch.as_tensor(x_start, dtype=dtype, device=dev).expand(shape).clone()
    y = torch.as_tensor(y0s, dtype=dtype, device=dev)[:, None].expand(shape).clone()
    flat = x >= 0
    last_cross = torch.zeros(shape, dtype=torch.int64, device=dev)
    y_freeze = y.clone()
    records: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    for step in range(1, n_steps + 1):
        gx, gy, hxx, hxy, hyy = derivatives(x, y, land)
        nx, ny = _noise(hxx, hxy, hyy, y, scale, noise, land, gen)
        x = x - eta_t * (gx + nx)
        if not hold_y:
            y = y - eta_t * (gy + ny)
        new_flat = x >= 0
        crossed = new_flat != flat
        last_cross.masked_fill_(crossed, step)
        y_freeze = torch.where(crossed, y, y_freeze)
        flat = new_flat
        if record_every is not None and step % record_every == 0:
            records.append((step, x.cpu().numpy().copy(), y.cpu().numpy().copy()))

    snapshots = None
    if records:
        snapshots = (np.array([r[0] for r in records]), np.stack([r[1] for r in records]), np.stack([r[2] for r in records]))
    p_flat = flat.double().mean(dim=1).cpu().numpy()
    out = {
        "p_flat": p_flat,
        "freezing_steps": last_cross.cpu().numpy(),
        "y_freeze": y_freeze.cpu().numpy(),
        "x": x.cpu().numpy(),
        "y": y.cpu().numpy(),
    }
    if scalar:
        out = {k: v[0] for k, v in out.items()}
        if snapshots is not None:
            snapshots = (snapshots[0], snapshots[1][:, 0], snapshots[2][:, 0])
    return SimulationResult(eta=etas, sigma=sigmas, n_steps=n_steps, snapshots=snapshots, **out)


def unfrozen_fraction(freezing_steps: np.ndarray, n_steps: int, window: float = 0.1) -> np.ndarray:
    """Fraction of runs (last axis) whose last crossing fell in the final ``window`` of the run."""
    window = validation.in_range("window", window, 0.0, 1.0, closed=False)
    return np.mean(np.asarray(freezing_steps) > (1 - window) * n_steps, axis=-1)


# --------------------------------------------------------------------------------------------
# The authors' precomputed phase diagrams
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorsPhaseDiagram:
    """The authors' phase diagram (their Fig. 3c, d): arrays indexed (eta, sigma).

    ``freezing_step`` is their mean t_f: see :func:`authors_freezing_steps` for the convention.
    """

    eta: np.ndarray
    sigma: np.ndarray
    p_flat: np.ndarray
    freezing_step: np.ndarray
    freezing_y: np.ndarray
    diverged: np.ndarray
    n_runs: int


def authors_data_file(noise: str = "hessian") -> Any:
    """Path of the shipped copy of the authors' phase diagram (``book/data/``, with its README).

    Looked for in the book being built (:func:`phaselab.config.book_root`), then in ``data/`` under
    the working directory, then next to this package's checkout (a notebook executed elsewhere).
    """
    from pathlib import Path

    validation.one_of("noise", noise, ("hessian", "hessian_squared"))
    name = f"yang-two-valley-phase-diagram-{noise}.csv"
    root = config.book_root()
    candidates = ([root / "book" / "data"] if root else []) + [Path.cwd() / "data",
                                                               Path(__file__).resolve().parents[2] / "book" / "data"]
    for folder in candidates:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{name} not found in {[str(c) for c in candidates]}")


def load_authors_phase_diagram(path: Any, n_runs: int = 2000) -> AuthorsPhaseDiagram:
    """Read one of the authors' phase-diagram CSV files (columns eta, sigma, p_flat,
    freezing_step_mean, freezing_y_mean, diverged, ness) into (eta, sigma) arrays."""
    import pandas as pd

    n_runs = validation.integer("n_runs", n_runs, minimum=1)
    frame = pd.read_csv(path)
    missing = {"eta", "sigma", "p_flat", "freezing_step_mean", "freezing_y_mean", "diverged"} - set(frame.columns)
    if missing:
        raise ValueError(f"path must be an authors' phase-diagram CSV; columns {sorted(missing)} are missing")
    etas, sigmas = np.unique(frame["eta"].to_numpy()), np.unique(frame["sigma"].to_numpy())
    if len(frame) != etas.size * sigmas.size:
        raise ValueError(f"path must hold a full (eta, sigma) grid, got {len(frame)} rows for {etas.size} x {sigmas.size}")
    frame = frame.sort_values(["eta", "sigma"])

    def grid(column: str) -> np.ndarray:
        return frame[column].to_numpy(dtype=float).reshape(etas.size, sigmas.size)

    return AuthorsPhaseDiagram(etas, sigmas, grid("p_flat"), grid("freezing_step_mean"), grid("freezing_y_mean"),
                               grid("diverged"), n_runs)


def authors_freezing_steps(freezing_steps: Any) -> np.ndarray:
    """Our per-run freezing steps in the authors' convention.

    We record the step k >= 1 after which x first shows its final sign (0 if it never changes).  The
    authors' MATLAB code stores the trajectory with the initial point at index 1, takes the last
    index k of ``diff(sign(x))``, and records ``t_f = k + 1``, which is the same step plus one; a
    run that never crosses records 1.  So their t_f is ours plus one, for every run.
    """
    steps = np.asarray(freezing_steps)
    if np.any(steps < 0):
        raise ValueError("freezing_steps must be >= 0")
    return steps + 1

