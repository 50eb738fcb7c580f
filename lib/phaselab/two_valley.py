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
estimates (Eqs. 10-12).  Beyond the paper: the transfer operator of the update at fixed y, its
exact stationary law, its per-step sign-change and committed-hop chances, and from them a
finite-step freezing theory (:func:`discrete_freezing`) with no fitted constant.
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


def _y_terms(land: Landscape, y: Any, with_l0: bool = True) -> dict[str, Any]:
    """Q, R, L0 and their first two y-derivatives (see the module docstring); ``with_l0=False``
    leaves out L0 itself, which no derivative needs.

    With ``e = 1 / (y + y_f)`` and ``c = y_f - y_b``: ``Q = p^2`` with ``p = 1 - c e`` and
    ``R = (1 - y_f e) p``, polynomials in e whose y-derivatives follow from ``de/dy = -e^2``
    (fewer tensor operations per step than the quotient rule).
    """
    xp = _xp(y)
    c, yf = land.y_f - land.y_b, land.y_f
    e = 1.0 / (y + yf)
    e2 = e * e
    e3 = e2 * e
    p = 1.0 - c * e
    decay = land.L_d * xp.exp(-y / land.y_d)
    terms = {
        "Q": p * p,
        "dQ": (2.0 * c) * e2 * p,
        "ddQ": e3 * ((2.0 * c * c) * e - (4.0 * c) * p),
        "R": 1.0 + e * ((yf * c) * e - (yf + c)),
        "dR": e2 * ((yf + c) - (2.0 * yf * c) * e),
        "ddR": e3 * ((6.0 * yf * c) * e - 2.0 * (yf + c)),
        "dL0": decay * (-1.0 / land.y_d),
        "ddL0": decay * (1.0 / land.y_d**2),
    }
    if with_l0:
        terms["L0"] = decay + land.L0_star
    return terms


def _side_terms(land: Landscape, x: Any, flat: Any = None) -> tuple[Any, Any]:
    """k = x0^2/(f0 a^2) and s k a (s = +1 for x >= 0, -1 otherwise) for each point; ``flat`` is
    ``x >= 0`` when the caller has it already."""
    flat = x >= 0 if flat is None else flat
    k1, k2 = land.x0**2 / (land.f0 * land.x1**2), land.x0**2 / (land.f0 * land.x2**2)
    where = torch.where if _xp(x) is torch else np.where
    return where(flat, k1, k2), where(flat, k1 * land.x1, -k2 * land.x2)


def loss(x: Any, y: Any, land: Landscape = DEFAULT_LANDSCAPE) -> Any:
    """The loss L(x, y) of Eq. (5); works on numpy arrays and torch tensors."""
    t = _y_terms(land, y)
    k, ka_s = _side_terms(land, x)
    return t["L0"] + k * t["Q"] * x * x - 2.0 * ka_s * t["R"] * x


def derivatives(x: Any, y: Any, land: Landscape = DEFAULT_LANDSCAPE) -> tuple[Any, ...]:
    """Analytic gradient and Hessian of Eq. (5): (L_x, L_y, H_xx, H_xy, H_yy).

    At the cusp x = 0 the one-sided (x >= 0) values are returned.  ``H_yy`` keeps every term
    (the authors' code drops the one from the y-dependence of f_i).
    """
    return _derivatives(x, _y_terms(land, y, with_l0=False), land)


def _derivatives(x: Any, t: dict[str, Any], land: Landscape, flat: Any = None, *, with_gy: bool = True,
                 with_hessian: bool = True) -> tuple[Any, ...]:
    """:func:`derivatives` from precomputed y terms (``_y_terms``) and, optionally, ``x >= 0``;
    the entries not asked for (``with_gy``, ``with_hessian``) are returned as None."""
    k, ka_s = _side_terms(land, x, flat)
    kx = k * x
    gx = 2.0 * (kx * t["Q"] - ka_s * t["R"])
    gy = t["dL0"] + (kx * t["dQ"] - 2.0 * ka_s * t["dR"]) * x if with_gy else None
    if not with_hessian:
        return gx, gy, None, None, None
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


@dataclass(frozen=True)
class _Grid:
    """The transfer operator of the x-update at fixed y on a grid whose middle edge is the ridge."""

    centres: np.ndarray
    n_half: int
    matrix: sparse.csc_matrix
    floors: np.ndarray  # (sharp, flat) valley minima


def _grid_operator(y: float, eta: float, sigma: float, noise: str, bins_per_step: float, land: Landscape) -> _Grid:
    """Transfer operator of Eq. (6) at fixed y with ``bins_per_step`` bins per SD of the smallest step."""
    reach = max(land.g(y, True), land.g(y, False)) / 2
    floors = np.array([-land.g(y, False) / 2, land.g(y, True) / 2])
    step_sd = eta * np.sqrt(x_noise_variance(floors, y, sigma, noise, land))
    h = hessian(floors, y, land)[0]
    if np.any(eta * h >= 2):
        raise ValueError(f"eta must be < 2 / H_xx = {2 / h.max():.3g} (a valley is unstable), got {eta!r}")
    valley_sd = step_sd / np.sqrt(eta * h * (2 - eta * h))  # discrete Ornstein-Uhlenbeck width
    half = reach + 10 * valley_sd.max()
    n_half = int(np.ceil(half / (step_sd.min() / bins_per_step)))
    edges = np.linspace(-half, half, 2 * n_half + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    mean = centres - eta * gradient(centres, y, land)[0]
    std = np.maximum(eta * np.sqrt(x_noise_variance(centres, y, sigma, noise, land)), 1e-12)
    return _Grid(centres, n_half, transfer_matrix(edges, mean, std), floors)


def _check_discrete(y: float, eta: float, sigma: float, noise: str, bins_per_step: float) -> tuple[float, ...]:
    validation.one_of("noise", noise, NOISE_KINDS)
    return (validation.positive("y", y), validation.positive("eta", eta), validation.positive("sigma", sigma),
            validation.in_range("bins_per_step", bins_per_step, 1.0, 50.0))


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
    y, eta, sigma, bins_per_step = _check_discrete(y, eta, sigma, noise, bins_per_step)
    results = []
    for refine in (1, 2):
        grid = _grid_operator(y, eta, sigma, noise, bins_per_step * refine, land)
        results.append(float(_stationary_vector(grid.matrix)[grid.n_half:].sum()))
    coarse, fine = results
    return fine + (fine - coarse) / 3


def _solve_shifted(block: sparse.csc_matrix, rhs: np.ndarray, transpose: bool = False) -> np.ndarray:
    """Solve ((1 + 1e-12) I - block) v = rhs (or its transpose); the shift keeps a frozen valley's
    nearly stochastic block invertible without moving its Perron vector."""
    system = (1.0 + 1e-12) * sparse.identity(block.shape[0], format="csc") - block
    return sparse_linalg.splu((system.T if transpose else system).tocsc()).solve(rhs)


def _discrete_rates_one_grid(y: float, eta: float, sigma: float, noise: str, bins_per_step: float, land: Landscape,
                             x_start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    grid = _grid_operator(y, eta, sigma, noise, bins_per_step, land)
    matrix, c, n_half = grid.matrix, grid.centres, grid.n_half
    n = c.size
    sides = (np.arange(n_half, n), np.arange(n_half))  # flat (x >= 0), sharp
    # committor: chance of reaching the flat floor before the sharp one (absorbing beyond either floor)
    absorb_flat, absorb_sharp = c >= grid.floors[1], c <= grid.floors[0]
    interior = np.flatnonzero(~(absorb_flat | absorb_sharp))
    t_rows = matrix.T.tocsr()
    q = absorb_flat.astype(float)
    q[interior] = _solve_shifted(matrix[interior][:, interior].tocsc(),
                                 np.asarray(t_rows[interior][:, np.flatnonzero(absorb_flat)].sum(axis=1)).ravel(), transpose=True)
    out, settle, drifts = [], [], []
    gy = derivatives(c, y, land)[1]
    stationary = np.clip(_stationary_vector(matrix), 0.0, None)
    gy_side = (gy[sides[0]], gy[sides[1]])
    for k, (side, other) in enumerate((sides, sides[::-1])):
        block = matrix[side][:, side].tocsc()
        exit_chance = np.asarray(matrix[other][:, side].sum(axis=0)).ravel()
        start = np.zeros(side.size)
        start[np.argmin(np.abs(c[side] - grid.floors[1 - k]))] = 1.0
        phi = _solve_shifted(block, start)
        phi = _solve_shifted(block, phi / phi.sum())  # two steps of inverse iteration: the quasi-stationary law
        phi /= phi.sum()
        cross = float(exit_chance @ phi)
        # mean dy per unit time on this side, in the stationary law restricted to it: unlike the
        # quasi-stationary law it holds the runs that have just hopped in, near the ridge.  Where the
        # side holds almost no stationary mass (a frozen valley) the two laws coincide; use phi.
        law = stationary[side] if stationary[side].sum() > 1e-6 else phi
        drifts.append(-float(law @ gy_side[k]) / float(law.sum()))
        landing = matrix[other][:, side] @ phi
        landing = landing / landing.sum() if landing.sum() > 0 else landing
        commit_other = float(landing @ (1.0 - q[other] if k == 0 else q[other]))
        out += [cross, cross * commit_other]
        if x_start is not None:  # chance of settling in this valley without a sign change first
            floor_side = np.flatnonzero(np.abs(c[side]) >= abs(grid.floors[1 - k]))
            inner = np.setdiff1d(np.arange(side.size), floor_side)
            settle_v = np.ones(side.size)
            settle_v[inner] = _solve_shifted(block[inner][:, inner].tocsc(),
                                             np.asarray(block[floor_side][:, inner].sum(axis=0)).ravel(), transpose=True)
            settle.append(np.interp(x_start, c[side], settle_v))
    # cross_flat, cross_sharp, hop flat->sharp, hop sharp->flat (per step); drift_flat, drift_sharp
    rates = np.array([out[0], out[2], out[1], out[3], *drifts])
    if x_start is None:
        return rates, None
    flat_start = x_start >= 0
    return rates, np.stack([np.where(flat_start, settle[0], settle[1]), np.interp(x_start, c, q)])


def discrete_hopping_rates(
    y: float, eta: float, sigma: float, noise: str = "hessian", bins_per_step: float = 2.5,
    land: Landscape = DEFAULT_LANDSCAPE,
) -> np.ndarray:
    """Per-step chances of the discrete update (6) at fixed y, from its transfer operator (beyond the paper).

    Returns ``(c_flat, c_sharp, k_fs, k_sf)``: ``c_i`` is the chance per step that a run in the
    quasi-stationary law of valley i (the Perron vector of the operator restricted to its side)
    changes the sign of x; ``k_ij = c_i * Pr(commit to j)`` is the committed hop, the landing point
    of the sign change weighted by the committor (chance of reaching valley j's floor before valley
    i's).  Divide by eta for rates per unit time.  A sign change of the discrete chain needs a step
    across the ridge, so ``c_i`` is smaller than the continuous-time rate of ridge visits
    (1 / :func:`ridge_passage_times`), and most discrete sign changes commit.  Richardson-extrapolated
    in the bin width like :func:`discrete_stationary_p_flat`.
    """
    y, eta, sigma, bins_per_step = _check_discrete(y, eta, sigma, noise, bins_per_step)
    coarse = _discrete_rates_one_grid(y, eta, sigma, noise, bins_per_step, land)[0][:4]
    fine = _discrete_rates_one_grid(y, eta, sigma, noise, 2 * bins_per_step, land)[0][:4]
    return np.clip(fine + (fine - coarse) / 3, 0.0, 1.0)


@dataclass(frozen=True)
class DiscreteFreezing:
    """Prediction of :func:`discrete_freezing` for each cell.

    ``p_flat``: flat-valley probability after ``n_steps``; ``p_cross``: chance that a run ever
    changes the sign of x; ``mean_y_freeze``: mean y at the last sign change over the runs that
    cross; ``mean_y_freeze_all``: the same with y0 for runs that never cross; ``mean_freezing_step``:
    mean step of the last sign change with 0 for runs that never cross (our convention of
    :func:`simulate`); ``late_fraction``: chance that the last sign change falls in the last tenth of
    the run; ``p_flat_by_start``: (cells, starts) final flat-valley probability of the runs that start
    at each entry of ``x_start``; ``sd_freezing_step``, ``sd_y_freeze_all``: the per-run standard
    deviations of the last-sign-change step and of y there (for standard errors of means);
    ``separation``: ``c_i / (1 - |1 - eta H_xx|)`` at y0, the larger of the two valleys: the
    sign-change chance per step over the within-valley relaxation per step (assumed small);
    ``y_path``: (n_steps + 1, cells) the one mean path y_n the theory follows (y_0 = y0), which
    :func:`simulate` can prescribe to every run (``y_path=``) to test the theory with x alone random.
    """

    p_flat: np.ndarray
    p_cross: np.ndarray
    mean_y_freeze: np.ndarray
    mean_y_freeze_all: np.ndarray
    mean_freezing_step: np.ndarray
    late_fraction: np.ndarray
    p_flat_by_start: np.ndarray
    sd_freezing_step: np.ndarray
    sd_y_freeze_all: np.ndarray
    separation: np.ndarray
    y_path: np.ndarray


def discrete_freezing(
    eta: Any, sigma: Any, y0: float, n_steps: int, x_start: tuple[float, float] = (-0.01, 0.01),
    noise: str = "hessian", n_y: int = 16, bins_per_step: float = 2.5, land: Landscape = DEFAULT_LANDSCAPE,
) -> DiscreteFreezing:
    """Finite-step freezing theory (beyond the paper): no fitted constant, one cell per (eta, sigma).

    y follows the discrete map ``y <- y - eta E[dL/dy]``, the mean taken over the stationary law
    restricted to each side and mixed by the valley occupations (near the floor this is
    :func:`valley_floor_drift`; the spread of x adds a few per cent at strong noise); at each y the
    per-step chances of :func:`discrete_hopping_rates` (interpolated in log between
    ``n_y`` values of y, and taken as zero above the y where both fall below 1e-15, since the barrier
    over the temperature grows with y).  Valley occupations follow the two-state master equation
    (A30) with the committed hops; a run in valley i makes no further sign change with chance
    ``exp(-sum of c_i over the remaining steps)``, so the last sign change has
    ``Pr(last <= n) = P_flat(n) e^{-Lambda_flat(n)} + P_sharp(n) e^{-Lambda_sharp(n)}``.  Runs start
    at ``x_start`` (half each, the authors' protocol); the transient from there is the chance of
    settling in the starting valley without a sign change and the committor, both from the operator at
    y0.  Valid when hops are rare against the relaxation inside a valley (``separation`` small).
    """
    etas = validation.finite_array("eta", np.atleast_1d(eta), ndim=1, positive_entries=True)
    sigmas = validation.finite_array("sigma", np.atleast_1d(sigma), ndim=1, positive_entries=True)
    if etas.shape != sigmas.shape:
        raise ValueError(f"eta and sigma must have the same length, got {etas.shape} and {sigmas.shape}")
    y0 = validation.positive("y0", y0)
    n_steps = validation.integer("n_steps", n_steps, minimum=1)
    n_y = validation.integer("n_y", n_y, minimum=2)
    starts = validation.finite_array("x_start", x_start, ndim=1)
    validation.one_of("noise", noise, NOISE_KINDS)
    out = {}
    y_floor = np.full(etas.size, y0)  # the floor map bounds the y range the tables must cover
    for n in range(n_steps):
        y_floor = y_floor + etas * valley_floor_drift(y_floor, land)
    span = np.log(1.5 * y_floor / y0)  # noise only speeds y up, by a few per cent
    y_grid = y0 * np.exp(np.linspace(0.0, 1.0, n_y)[:, None] * span)  # (n_y, cells), log-spaced
    table = np.full((n_y, 6, etas.size), np.log(1e-300))  # log chances, then the two drifts
    table[:, 4:] = valley_floor_drift(y_grid, land)[:, None]  # the floor drift where the chances vanish
    settle, commit_flat = np.empty((etas.size, starts.size)), np.empty((etas.size, starts.size))
    separation = np.empty(etas.size)
    h_floor = np.array([2 / land.f(y0, True), 2 / land.f(y0, False)])  # H_xx = 2 / f_i in each valley
    for cell, (eta_c, sigma_c) in enumerate(zip(etas, sigmas)):
        for k, yk in enumerate(y_grid[:, cell]):
            with_start = starts if k == 0 else None
            coarse, transient = _discrete_rates_one_grid(yk, eta_c, sigma_c, noise, bins_per_step, land, with_start)
            fine, transient_fine = _discrete_rates_one_grid(yk, eta_c, sigma_c, noise, 2 * bins_per_step, land, with_start)
            extrapolated = fine + (fine - coarse) / 3
            table[k, :4, cell] = np.log(np.clip(extrapolated[:4], 1e-300, 1.0))
            table[k, 4:, cell] = extrapolated[4:]
            if k == 0:
                settle[cell], commit_flat[cell] = np.clip(transient_fine + (transient_fine - transient) / 3, 0.0, 1.0)
            if extrapolated[:2].max() < 1e-15:
                break
        relax = 1 - np.abs(1 - eta_c * h_floor)  # within-valley relaxation per step
        separation[cell] = np.max(np.exp(table[0, :2, cell]) / relax)
    # march: y by the drift of the valley mixture, P_flat by the exact two-state step; P_flat(n) is
    # affine in its start, so it runs from each start (columns) and from their mean (last column)
    cells = np.arange(etas.size)
    y = np.empty((n_steps + 1, etas.size))
    chances = np.empty((n_steps + 1, 4, etas.size))
    p = np.empty((starts.size + 1, etas.size))
    p[:-1] = commit_flat.T
    p[-1] = commit_flat.mean(axis=1)
    p_mean = np.empty((n_steps + 1, etas.size))
    y[0] = y0
    for n in range(n_steps + 1):
        pos = np.log(y[n] / y0) / span * (n_y - 1)
        low = np.clip(np.floor(pos).astype(int), 0, n_y - 2)
        frac = np.clip(pos - low, 0.0, 1.0)[:, None]
        row = table[low, :, cells] * (1 - frac) + table[low + 1, :, cells] * frac  # (cells, 6)
        chances[n] = np.exp(row[:, :4]).T
        p_mean[n] = p[-1]
        if n == n_steps:
            break
        k_fs, k_sf = chances[n, 2], chances[n, 3]
        total = k_fs + k_sf
        target = np.divide(k_sf, total, out=np.full_like(total, 0.5), where=total > 0)
        y[n + 1] = y[n] + etas * (p[-1] * row[:, 4] + (1 - p[-1]) * row[:, 5])
        p = target + (p - target) * np.exp(-total)
    p_by_start, p = p[:-1].T, p_mean
    c_flat, c_sharp = chances[:, 0], chances[:, 1]
    zero = np.zeros((1, etas.size))
    lam_flat = np.concatenate([np.cumsum(c_flat[:0:-1], axis=0)[::-1], zero])  # sign-change hazard after step n
    lam_sharp = np.concatenate([np.cumsum(c_sharp[:0:-1], axis=0)[::-1], zero])
    no_later = p * np.exp(-lam_flat) + (1 - p) * np.exp(-lam_sharp)  # Pr(last sign change <= step n)
    flat_start = starts >= 0
    never = np.mean(settle * np.where(flat_start, np.exp(-lam_flat[0])[:, None], np.exp(-lam_sharp[0])[:, None]), axis=1)
    never = np.minimum(never, no_later[0])
    first = no_later[0] - never  # crossed only in the transient from the start
    mass = np.diff(no_later, axis=0)  # last sign change at step n >= 1
    moved = np.einsum("nc,nc->c", mass, y[1:])
    step_no = np.arange(1, n_steps + 1, dtype=float)
    mean_step = first + mass.T @ step_no
    mean_y_all = (never + first) * y0 + moved
    out["p_flat"] = p[-1]
    out["p_cross"] = 1 - never
    out["mean_y_freeze"] = (first * y0 + moved) / np.maximum(1 - never, 1e-300)
    out["mean_y_freeze_all"] = mean_y_all
    out["mean_freezing_step"] = mean_step
    out["late_fraction"] = 1 - no_later[int(np.floor(0.9 * n_steps))]
    out["p_flat_by_start"] = p_by_start
    out["sd_freezing_step"] = np.sqrt(np.maximum(first + mass.T @ step_no**2 - mean_step**2, 0.0))
    out["sd_y_freeze_all"] = np.sqrt(np.maximum((never + first) * y0**2 + np.einsum("nc,nc->c", mass, y[1:] ** 2)
                                                - mean_y_all**2, 0.0))
    out["separation"] = separation
    out["y_path"] = y
    return DiscreteFreezing(**out)


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


def _isotropic_amplitude(land: Landscape, q: torch.Tensor, scale: Any) -> torch.Tensor:
    """scale * sqrt(h_iso) with h_iso = 2 / sqrt(f1 f2) = 2 x0^2 Q / (f0 x1 x2), Q from ``_y_terms``."""
    return scale * float(np.sqrt(2.0 * land.x0**2 / (land.f0 * land.x1 * land.x2))) * torch.sqrt(q)


def _noise(hxx, hxy, hyy, z, scale, iso_amp, kind: str, with_y: bool):
    """Eta-free noise xi with covariance scale^2 * (H_+, h_iso I or H^2) from standard normals ``z``
    (shape (2, ...), or (1, ...) when only the x-component is wanted: ``with_y=False``)."""
    if kind == "isotropic":
        return iso_amp * z[0], (iso_amp * z[1] if with_y else None)
    z1, z2 = z[0], z[1]
    if kind == "hessian_squared":
        return scale * (hxx * z1 + hxy * z2), (scale * (hxy * z1 + hyy * z2) if with_y else None)
    # sqrt(H_+) = a H + b I for a 2x2 symmetric H with eigenvalues l1 > l2 and f(l) = sqrt(max(l, 0)):
    # a = (f1 - f2) / (l1 - l2), b = (l1 f2 - l2 f1) / (l1 - l2)  (no trigonometry needed)
    half_tr = 0.5 * (hxx + hyy)
    radius = torch.hypot(0.5 * (hxx - hyy), hxy)
    l1, l2 = half_tr + radius, half_tr - radius  # l1 >= H_xx / 2 > 0 on this landscape
    f1, f2 = torch.sqrt(l1), torch.sqrt(torch.clamp(l2, min=0.0))
    inv_gap = (0.5 * scale) / radius
    a = (f1 - f2) * inv_gap
    b = (l1 * f2 - l2 * f1) * inv_gap
    a_xy = a * hxy  # xi = (a H + b I) z
    nx = torch.addcmul(torch.addcmul(b, a, hxx) * z1, a_xy, z2)
    return nx, (torch.addcmul(torch.addcmul(b, a, hyy) * z2, a_xy, z1) if with_y else None)


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
    y_path: Any = None,
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
    tests).  ``y_path`` (shape (n_steps + 1, cells), or (n_steps + 1,) shared by the cells) instead
    prescribes y: every run of a cell takes step k with y = ``y_path[k - 1]`` and records
    ``y_path[k]`` at a sign change, so only x is random (a control for theories that follow one y
    path, e.g. ``DiscreteFreezing.y_path``); y0 is then ``y_path[0]``.  The normal draws are
    the same as without it, so a run with a prescribed path and the free run of the same seed share
    their noise (common random numbers).  ``noise`` is ``"hessian"`` (xi ~ N(0, 2 sigma H_+)), ``"isotropic"`` or
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
    if y_path is not None:
        if hold_y:
            raise ValueError("y_path and hold_y=True exclude each other")
        y_path = validation.finite_array("y_path", y_path, positive_entries=True)
        y_path = np.broadcast_to(y_path.reshape(y_path.shape[0], -1), (y_path.shape[0], etas.size)) \
            if y_path.ndim == 1 or y_path.shape[1:] == (1,) else y_path
        if y_path.shape != (n_steps + 1, etas.size):
            raise ValueError(f"y_path must have shape (n_steps + 1, cells) = {(n_steps + 1, etas.size)}, got {y_path.shape}")
        y0s = y_path[0].copy()
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
    # y-dependent terms once when y is held; one normal draw per step for both components (a draw
    # of only the x-component when nothing else needs the second)
    prescribed = y_path is not None
    path_t = torch.as_tensor(np.array(y_path, dtype=float), dtype=dtype, device=dev)[:, :, None] if prescribed else None
    free_y = not (hold_y or prescribed)
    terms = _y_terms(land, path_t[0] if prescribed else y, with_l0=False)  # (cells, 1) on a prescribed path
    iso_amp = _isotropic_amplitude(land, terms["Q"], scale) if noise == "isotropic" else None
    n_normals = 1 if (hold_y and noise == "isotropic") else 2
    with_hessian = noise != "isotropic"
    for step in range(1, n_steps + 1):
        if not hold_y and step > 1:
            terms = _y_terms(land, path_t[step - 1] if prescribed else y, with_l0=False)
            if noise == "isotropic":
                iso_amp = _isotropic_amplitude(land, terms["Q"], scale)
        gx, gy, hxx, hxy, hyy = _derivatives(x, terms, land, flat, with_gy=free_y, with_hessian=with_hessian)
        z = torch.randn((n_normals, *shape), generator=gen, device=dev, dtype=dtype)
        nx, ny = _noise(hxx, hxy, hyy, z, scale, iso_amp, noise, with_y=free_y)
        x = x - eta_t * (gx + nx)
        if free_y:
            y = y - eta_t * (gy + ny)
        elif prescribed:
            y = path_t[step].expand(shape)
        new_flat = x >= 0
        crossed = new_flat != flat
        last_cross.masked_fill_(crossed, step)
        if not hold_y:  # with y held, y at every crossing is y0
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

