"""Exact theory of L2-regularised deep linear networks: rank transitions and effective landscapes.

Two papers, one model.

**Ersoy and Wiesner** (mode theory, their Sec. 2.1 and Appendices C-E).  Conventions, shared by the
book's Chapters 1 and 2:

- ``depth`` ``L`` is the number of weight matrices ``W_1, ..., W_L`` (``L - 1`` hidden layers);
- the training loss of the deep linear network is
  ``(1/2) * mean_samples ||y - W_L ... W_1 x||^2 + (beta / 2) * sum_l ||W_l||_F^2``
  (squared error summed over output dimensions);
- with ``Sigma_xx = I`` the data term equals ``(1/2) ||W - Sigma_yx||_F^2 + const`` for the
  end-to-end map ``W``; on balanced layers the regulariser is ``(L beta / 2) sum_i lambda_i^(2/L)``
  for the singular values ``lambda_i`` of ``W``, so the loss decouples into one *mode loss* per
  singular value ``eta_i`` of ``Sigma_yx``::

      l(lambda) = (1/2) (lambda - eta)^2 + (L beta / 2) lambda^(2/L).

  The paper's Eq. (1) writes ``beta / 2`` without the factor ``L``; its stationarity condition
  Eq. (2), ``lambda - eta + beta lambda^(2/L - 1) = 0``, its critical strength Eq. (3) and its
  barrier Eq. (10) all hold only with the factor ``L`` (the convention used here).

**Ziyin and Ueda** (effective landscape, their Eq. (6) and Appendix B).  Their loss is
``E(f(x) - y)^2 + gamma sum_l ||W_l||_F^2`` (no factor 1/2) for a scalar output and ``D`` hidden
layers of width ``d0``, i.e. twice the loss above with ``beta = gamma`` and ``L = D + 1``.  Their
order parameter is ``b = ||U|| / d0`` with ``U`` the last layer.  We write ``s = d0 * b``, the
singular value of each of the last ``D`` layers on the optimal path, in which Eq. (6) reads
(with ``a_i`` the eigenvalues of ``A_0 = E[x x^T]``, ``c_i = E[x' y]_i`` in its eigenbasis and
``sigma2`` the variance of multiplicative hidden noise, 0 for a deterministic network)::

    lbar(s) = - sum_i s^(2D) c_i^2 / ((1 + sigma2/d0)^D a_i s^(2D) + gamma) + E[y^2] + gamma D s^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from phaselab import config, validation

# ---------------------------------------------------------------------------------------------
# Ersoy-Wiesner mode theory
# ---------------------------------------------------------------------------------------------


def _mode_args(eta: float, depth: int) -> tuple[float, int]:
    return validation.positive("eta", eta), validation.integer("depth", depth, minimum=1)


def _deep_mode_args(eta: float, beta: float, depth: int) -> tuple[float, float, int]:
    eta, depth = _mode_args(eta, depth)
    beta = validation.non_negative("beta", beta)
    if depth < 3:
        raise ValueError(
            f"depth must be >= 3 for a saddle between rank phases (depth 1 and 2 have none), got {depth}"
        )
    return eta, beta, depth


def mode_loss(lam: np.ndarray | float, eta: float, beta: float, depth: int) -> np.ndarray:
    """Loss of one mode, ``(1/2)(lambda - eta)^2 + (L beta / 2) lambda^(2/L)`` (Eq. (1) with factor L).

    ``lam`` (the singular value of the end-to-end map) must be >= 0.
    """
    eta, depth = _mode_args(eta, depth)
    beta = validation.non_negative("beta", beta)
    lam = validation.finite_array("lam", lam)
    if np.any(lam < 0):
        raise ValueError("lam must have entries >= 0")
    return 0.5 * (lam - eta) ** 2 + 0.5 * depth * beta * lam ** (2.0 / depth)


def mode_gradient(lam: np.ndarray | float, eta: float, beta: float, depth: int) -> np.ndarray:
    """Derivative of :func:`mode_loss` in ``lambda`` for ``lambda > 0``: ``lambda - eta + beta lambda^(2/L-1)`` (Eq. 2)."""
    eta, depth = _mode_args(eta, depth)
    beta = validation.non_negative("beta", beta)
    lam = validation.finite_array("lam", lam, positive_entries=True)
    return lam - eta + beta * lam ** (2.0 / depth - 1.0)


def critical_lambda(eta: float, depth: int) -> float:
    """Singular value where saddle and minimum merge, ``eta (1 - k) / (2 - k)`` with ``k = 2/L`` (App. D.1)."""
    eta, depth = _mode_args(eta, depth)
    k = 2.0 / depth
    return eta * (1 - k) / (2 - k) if depth >= 2 else math.nan


def _shallow_threshold(eta: float, depth: int) -> float:
    """``beta_c = beta*`` for ``L <= 2``: ``inf`` for ridge regression (never switched off), ``eta`` for ``L = 2``."""
    return math.inf if depth == 1 else eta


def critical_beta(eta: float, depth: int) -> float:
    """Critical strength above which the learned mode no longer exists, Eq. (3).

    ``beta_c = (eta (1 - k) / (2 - k))^(2 - k) / (1 - k)`` with ``k = 2/L``.  For ``L = 2`` this is
    the limit ``beta_c = eta`` (continuous transition); for ``L = 1`` (ridge regression) the mode is
    learned at every ``beta`` and ``inf`` is returned.
    """
    eta, depth = _mode_args(eta, depth)
    if depth <= 2:
        return _shallow_threshold(eta, depth)
    k = 2.0 / depth
    return (eta * (1 - k) / (2 - k)) ** (2 - k) / (1 - k)


def equal_loss_beta(eta: float, depth: int) -> float:
    """Strength ``beta*`` at which the learned mode and ``lambda = 0`` have equal loss.

    Solving Eq. (2) together with ``l(lambda) = l(0)`` gives ``lambda* = eta (L-2)/(L-1)`` and
    ``beta* = eta^(2-2/L) (1/(L-1)) ((L-2)/(L-1))^(1-2/L)``; below ``beta*`` the learned mode is the
    global minimum.  ``L = 2`` gives ``beta* = eta = beta_c``; ``L = 1`` gives ``inf``.
    """
    eta, depth = _mode_args(eta, depth)
    if depth <= 2:
        return _shallow_threshold(eta, depth)
    k = 2.0 / depth
    u = (depth - 2) / (depth - 1)
    return eta ** (2 - k) * (1 - u) * u ** (1 - k)


def stationary_points(eta: float, beta: float, depth: int) -> tuple[float, float] | None:
    """The non-zero stationary points ``(saddle, minimum)`` of the mode loss, or ``None`` above ``beta_c``.

    They are the two positive roots of Eq. (2) (App. C, D.1), one on each side of
    :func:`critical_lambda`; at ``beta = 0`` they are ``(0, eta)``.  Requires ``depth >= 3``.
    """
    eta, beta, depth = _deep_mode_args(eta, beta, depth)
    if beta == 0:
        return 0.0, eta
    beta_c = critical_beta(eta, depth)
    lam_c = critical_lambda(eta, depth)
    if beta > beta_c:
        return None
    if beta == beta_c:
        return lam_c, lam_c

    def gradient(lam: float) -> float:
        return lam - eta + beta * lam ** (2.0 / depth - 1.0)

    # The gradient is +inf at 0, negative at lam_c (beta < beta_c) and positive at eta.
    low = lam_c
    while gradient(low) < 0 and low > 1e-300:
        low *= 1e-3
    saddle = brentq(gradient, low, lam_c, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    minimum = brentq(gradient, lam_c, eta, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    return float(saddle), float(minimum)


def barrier(eta: float, beta: float, depth: int) -> float | None:
    """Barrier out of the ``lambda = 0`` phase, ``l(lambda_sad) - l(0)`` (Eq. 10); ``None`` above ``beta_c``."""
    points = stationary_points(eta, beta, depth)
    if points is None:
        return None
    return float(mode_loss(points[0], eta, beta, depth) - mode_loss(0.0, eta, beta, depth))


def branches(eta: float, betas: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Saddle and minimum of one mode over a grid of ``betas`` (``nan`` above ``beta_c``), for Fig. 4."""
    betas = validation.finite_array("betas", betas, ndim=1)
    saddle = np.full(betas.shape, np.nan)
    minimum = np.full(betas.shape, np.nan)
    for i, beta in enumerate(betas):
        points = stationary_points(eta, float(beta), depth)
        if points is not None:
            saddle[i], minimum[i] = points
    return saddle, minimum


def global_rank(etas: np.ndarray, beta: float, depth: int) -> int:
    """Rank of the global minimum: the number of modes with ``beta < beta*_i`` (:func:`equal_loss_beta`)."""
    etas = validation.finite_array("etas", etas, ndim=1, positive_entries=True)
    beta = validation.non_negative("beta", beta)
    return int(sum(beta < equal_loss_beta(float(e), depth) for e in etas))


def metastable_ranks(etas: np.ndarray, beta: float, depth: int) -> list[int]:
    """Ranks of the metastable states at ``beta``: 0 up to the number of modes with ``beta < beta_c,i``.

    In the decoupled mode picture every mode with ``beta < beta_c,i`` is bistable (``lambda = 0`` or
    its minimum), so each rank reached by learning the strongest modes first is a local minimum.
    """
    etas = validation.finite_array("etas", etas, ndim=1, positive_entries=True)
    beta = validation.non_negative("beta", beta)
    learnable = sum(beta < critical_beta(float(e), depth) for e in etas)
    return list(range(int(learnable) + 1))


def balanced_rank_loss(etas: np.ndarray, learned: np.ndarray, beta: float, depth: int) -> float:
    """Loss (minus the constant) of the state in which modes with ``learned[i]`` sit at their minimum."""
    etas = validation.finite_array("etas", etas, ndim=1, positive_entries=True)
    total = 0.0
    for eta, on in zip(etas, np.asarray(learned, dtype=bool)):
        lam = 0.0
        if on:
            points = stationary_points(float(eta), beta, depth)
            if points is None:
                raise ValueError(f"beta={beta} is above beta_c of the mode eta={eta}: it cannot be learned")
            lam = points[1]
        total += float(mode_loss(lam, float(eta), beta, depth))
    return total


# ---------------------------------------------------------------------------------------------
# Data with prescribed moments
# ---------------------------------------------------------------------------------------------


def cross_covariance(singular_values: np.ndarray, d_in: int) -> np.ndarray:
    """``Sigma_yx`` of shape ``(p, d_in)`` with the given singular values on its leading diagonal."""
    singular_values = validation.finite_array("singular_values", singular_values, ndim=1, positive_entries=True)
    d_in = validation.integer("d_in", d_in, minimum=singular_values.size)
    sigma_yx = np.zeros((singular_values.size, d_in))
    sigma_yx[np.arange(singular_values.size), np.arange(singular_values.size)] = singular_values
    return sigma_yx


def _orthonormal_columns(matrix: np.ndarray, n: int) -> np.ndarray:
    """Columns with ``(1/n) M^T M = I`` exactly (symmetric whitening)."""
    cov = matrix.T @ matrix / n
    vals, vecs = np.linalg.eigh(cov)
    return matrix @ (vecs / np.sqrt(vals)) @ vecs.T


def whitened_data(n: int, singular_values: np.ndarray, d_in: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples whose empirical moments are *exactly* the target ones.

    Returns ``x`` of shape ``(n, d_in)`` and ``y`` of shape ``(n, p)`` with ``(1/n) x^T x = I``,
    ``(1/n) y^T x = Sigma_yx`` (singular values exactly ``singular_values``, see
    :func:`cross_covariance`) and ``(1/n) y^T y = I`` (as for the unit-variance joint Gaussian of
    Ersoy and Wiesner, App. A): Gaussian draws are whitened, the residual is made exactly
    orthogonal to ``x`` and given covariance ``I - Sigma_yx Sigma_xy``.
    """
    n = validation.integer("n", n, minimum=1)
    sigma_yx = cross_covariance(singular_values, d_in)
    p = sigma_yx.shape[0]
    if n < d_in + p:
        raise ValueError(f"n must be >= d_in + p = {d_in + p}, got {n}")
    if np.max(singular_values) >= 1:
        raise ValueError("singular_values must be < 1 so that the residual covariance is positive")
    rng = config.numpy_rng(seed)
    x = _orthonormal_columns(rng.standard_normal((n, d_in)), n)
    noise = rng.standard_normal((n, p))
    noise -= x @ (x.T @ noise) / n
    noise = _orthonormal_columns(noise, n)
    residual_cov = np.eye(p) - sigma_yx @ sigma_yx.T
    vals, vecs = np.linalg.eigh(residual_cov)
    y = x @ sigma_yx.T + noise @ (vecs * np.sqrt(vals)) @ vecs.T
    return x, y


def gaussian_data(n: int, singular_values: np.ndarray, d_in: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain draws from the joint Gaussian with ``Sigma_xx = I``, ``Sigma_yy = I`` and ``Sigma_yx`` (App. A).

    The empirical moments of a finite sample differ from the target by ``O(n^(-1/2))``.
    """
    n = validation.integer("n", n, minimum=1)
    sigma_yx = cross_covariance(singular_values, d_in)
    p = sigma_yx.shape[0]
    joint = np.block([[np.eye(d_in), sigma_yx.T], [sigma_yx, np.eye(p)]])
    chol = np.linalg.cholesky(joint)
    z = config.numpy_rng(seed).standard_normal((n, d_in + p)) @ chol.T
    return z[:, :d_in], z[:, d_in:]


def effective_singular_values(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Singular values of the empirical ``Sigma_yx Sigma_xx^(-1/2)``, the mode strengths a sample sees.

    With ``Sigma_xx = I`` these are the singular values of ``Sigma_yx``; otherwise the modes couple
    weakly through the regulariser and these are the natural first-order estimate.
    """
    x = validation.finite_array("x", x, ndim=2)
    y = validation.finite_array("y", y, ndim=2)
    n = x.shape[0]
    sigma_xx = x.T @ x / n
    vals, vecs = np.linalg.eigh(sigma_xx)
    whitening = (vecs / np.sqrt(vals)) @ vecs.T
    return np.linalg.svd(y.T @ x / n @ whitening, compute_uv=False)


# ---------------------------------------------------------------------------------------------
# Ziyin-Ueda effective landscape, Eq. (6)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moments:
    """Second moments of scalar-output regression data in the eigenbasis of ``A_0 = E[x x^T]``.

    ``a``: eigenvalues of ``A_0``; ``c``: ``E[x' y]`` with ``x' = R x`` rotated into that basis;
    ``y2``: ``E[y^2]``.  Empirical moments of a training set make Eq. (6) exact for its loss.
    """

    a: np.ndarray
    c: np.ndarray
    y2: float

    @property
    def signal(self) -> float:
        """``||E[x y]||``, the critical strength of one hidden layer (Theorem 3)."""
        return float(np.linalg.norm(self.c))

    @property
    def signal_a0(self) -> float:
        """``||E[x y]||_{A_0} = sqrt(E[xy]^T A_0 E[xy])``, the ``E_1`` of their Eq. (B42)."""
        return float(np.sqrt(np.sum(self.a * self.c**2)))


def regression_moments(x: np.ndarray, y: np.ndarray) -> Moments:
    """Empirical :class:`Moments` of samples ``x`` (n, d) and scalar targets ``y`` (n,)."""
    x = validation.finite_array("x", x, ndim=2)
    y = validation.finite_array("y", y, ndim=1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have one entry per row of x, got {y.shape[0]} and {x.shape[0]}")
    n = x.shape[0]
    a, rotation = np.linalg.eigh(x.T @ x / n)
    c = rotation.T @ (x.T @ y / n)
    return Moments(a=a, c=c, y2=float(y @ y / n))


def _path_terms(
    s: np.ndarray | float, gamma: float, hidden_layers: int, moments: Moments, sigma2: float, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, float]:
    """Validated ``s`` and, per eigen-direction, the numerator ``s^(2D) c_i^2`` and denominator of Eq. (6)."""
    gamma = validation.non_negative("gamma", gamma)
    depth = validation.integer("hidden_layers", hidden_layers, minimum=1)
    sigma2 = validation.non_negative("sigma2", sigma2)
    width = validation.integer("width", width, minimum=1)
    s = np.abs(validation.finite_array("s", s))
    gain = s[..., None] ** (2 * depth)
    denominator = (1 + sigma2 / width) ** depth * moments.a * gain + gamma
    return s, gain * moments.c**2, denominator, depth, gamma


def effective_loss(
    s: np.ndarray | float, gamma: float, hidden_layers: int, moments: Moments, *, sigma2: float = 0.0, width: int = 1
) -> np.ndarray:
    """Eq. (6) of Ziyin and Ueda in ``s = d0 b`` (module docstring); ``sigma2 = 0`` needs no ``width``."""
    s, numerator, denominator, depth, gamma = _path_terms(s, gamma, hidden_layers, moments, sigma2, width)
    return -np.sum(numerator / denominator, axis=-1) + moments.y2 + gamma * depth * s**2


def regularisation_at(
    s: np.ndarray | float, gamma: float, hidden_layers: int, moments: Moments, *, sigma2: float = 0.0, width: int = 1
) -> np.ndarray:
    """``R = sum_l ||W_l||_F^2`` on the optimal path at ``s`` (Lemma 1, Eq. B23): ``dL/dgamma`` at a minimum."""
    s, numerator, denominator, depth, _ = _path_terms(s, gamma, hidden_layers, moments, sigma2, width)
    return np.sum(numerator / denominator**2, axis=-1) + depth * s**2


def landau_amplitude(moments: Moments, width: int, *, sigma2: float = 0.0) -> float:
    """Leading-order ``b^2 / (gamma_c - gamma)`` of one hidden layer just below ``gamma_c``, from Eq. (6).

    Linearising the stationarity condition ``sum_i c_i^2 / (a_i' s^2 + gamma)^2 = 1`` about
    ``s = 0``, ``gamma = ||E[xy]||`` gives ``s^2 = (gamma_c - gamma) E_0^2 / ((1 + sigma2/d0) E_1^2)``
    with ``E_0 = ||E[xy]||``, ``E_1 = ||E[xy]||_{A_0}``; ``b = s / d0``.  (Their Eq. (B36) is the
    same law in the normalisation ``b^2 = s^2 / d0`` of their Eq. (B28).)
    """
    width = validation.integer("width", width, minimum=1)
    sigma2 = validation.non_negative("sigma2", sigma2)
    return moments.signal**2 / ((1 + sigma2 / width) * moments.signal_a0**2) / width**2


def one_layer_order_parameter(gamma: float, moments: Moments, *, sigma2: float = 0.0, width: int = 1) -> float:
    """``s^2 = d0^2 b^2`` at the learned minimum of Eq. (6) for one hidden layer (0 for ``gamma >= ||E[xy]||``).

    The root of the stationarity condition ``sum_i c_i^2 / (a_i' s^2 + gamma)^2 = 1`` (their Eq. (B31)
    in ``s``), ``a_i' = (1 + sigma2/d0) a_i``, found by bracketing to machine precision: the left
    side falls monotonically from ``E_0^2 / gamma^2`` at ``s = 0``.
    """
    gamma = validation.positive("gamma", gamma)
    width = validation.integer("width", width, minimum=1)
    sigma2 = validation.non_negative("sigma2", sigma2)
    if gamma >= moments.signal:
        return 0.0
    a = (1 + sigma2 / width) * moments.a

    def excess(u: float) -> float:
        return float(np.sum(moments.c**2 / (a * u + gamma) ** 2)) - 1.0

    high = float(np.sqrt(np.sum(moments.c**2 / a**2)))  # there every term is below its value at gamma = 0
    return float(brentq(excess, 0.0, high, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500))


def landau_coefficients(moments: Moments, *, sigma2: float = 0.0, width: int = 1) -> tuple[float, float]:
    """``(p1, p2)`` of ``s^2 = p1 Delta + p2 Delta^2 + O(Delta^3)``, ``Delta = gamma - ||E[xy]||`` (D = 1).

    Expanding the stationarity condition to second order in ``s^2`` (their Eq. (B39)) and in
    ``Delta`` gives ``p1 = -E_0^2 / (q E_1^2)`` and ``p2 = 3 E_0 (E_0^2 E_2^2 - E_1^4) / (2 q E_1^6)``
    with ``q = 1 + sigma2/d0``, ``E_k = ||E[xy]||_{A_0^k}``.  In the normalisation ``b^2 = s^2 / d0``
    of their Eq. (B28) these are their ``beta_1`` (Eq. B36) and ``beta_2`` (Eq. B43); their (B43),
    ``3 E_0 (E_2^2 - E_1^2) / (2 (sigma2 + d0) E_1^4)``, agrees with ``p2 / d0`` only when
    ``E_0^2 E_2^2 = E_1^4`` (e.g. ``A_0 = I``).
    """
    width = validation.integer("width", width, minimum=1)
    sigma2 = validation.non_negative("sigma2", sigma2)
    q = 1 + sigma2 / width
    e0, e1 = moments.signal, moments.signal_a0
    e2_sq = float(np.sum(moments.a**2 * moments.c**2))
    return -(e0**2) / (q * e1**2), 3 * e0 * (e0**2 * e2_sq - e1**4) / (2 * q * e1**6)


def curvature_jump(moments: Moments, *, sigma2: float = 0.0, width: int = 1) -> float:
    """Left limit of ``L''(gamma)`` at ``gamma_c = ||E[xy]||`` for one hidden layer, exact from Eq. (6).

    At a minimum ``L'(gamma) = sum_l ||W_l||_F^2`` (Lemma 1, Eq. B23), which on the path of Eq. (6)
    with ``D = 1`` is ``2 s^2`` (the stationarity condition makes the first term of (B23) equal to
    ``s^2``).  With ``s^2`` from :func:`landau_amplitude`,
    ``L''(gamma_c^-) = -2 E_0^2 / ((1 + sigma2/d0) E_1^2)``; to the right ``L'' = 0``, so this is the
    jump.  Their Eq. (B47) states half this value.
    """
    width = validation.integer("width", width, minimum=1)
    sigma2 = validation.non_negative("sigma2", sigma2)
    return -2.0 * moments.signal**2 / ((1 + sigma2 / width) * moments.signal_a0**2)


def _s_upper_bound(gamma: float, moments: Moments) -> float:
    """Bound ``s^2 <= sum_i (c_i^2 / a_i) / (4 gamma)`` on every stationary point ``s > 0`` of Eq. (6).

    ``d lbar / ds = 0`` at ``s > 0`` reads ``s^(2D-2) sum_i c_i^2 / (a_i' s^(2D) + gamma)^2 = 1`` with
    ``a_i' = (1 + sigma2/d0)^D a_i >= a_i``; since ``(a_i' s^(2D) + gamma)^2 >= 4 a_i' s^(2D) gamma``
    (AM-GM) the left side is at most ``sum_i c_i^2 / (4 gamma a_i s^2)``.  The bound holds for every
    depth ``D`` and every ``sigma2 >= 0``.
    """
    gain = float(np.sum(moments.c**2 / np.maximum(moments.a, 1e-300)))
    return math.sqrt(gain / (4 * gamma))


def effective_minima(
    gamma: float, hidden_layers: int, moments: Moments, *, sigma2: float = 0.0, width: int = 1, grid: int = 4000
) -> list[tuple[float, float]]:
    """All local minima ``(s, lbar)`` of Eq. (6) in ``s >= 0`` (``s = 0`` included when it is one)."""
    gamma = validation.non_negative("gamma", gamma)
    depth = validation.integer("hidden_layers", hidden_layers, minimum=1)
    if gamma == 0:
        raise ValueError("gamma must be > 0 for the effective landscape to have bounded minima")
    # Every minimum lies below the bound; the margin keeps it away from the end of the grid.
    s_max = 1.1 * _s_upper_bound(gamma, moments)
    s_grid = np.linspace(0.0, s_max, grid)
    values = effective_loss(s_grid, gamma, depth, moments, sigma2=sigma2, width=width)
    minima = []
    for i in np.flatnonzero((values[1:-1] <= values[:-2]) & (values[1:-1] <= values[2:])) + 1:
        result = minimize_scalar(
            lambda s: float(effective_loss(s, gamma, depth, moments, sigma2=sigma2, width=width)),
            bounds=(s_grid[i - 1], s_grid[i + 1]),
            method="bounded",
            options={"xatol": 1e-12 * s_max},
        )
        minima.append((float(result.x), float(result.fun)))
    if values[0] <= values[1]:
        minima.insert(0, (0.0, float(values[0])))
    return minima


def effective_global_minimum(
    gamma: float, hidden_layers: int, moments: Moments, *, sigma2: float = 0.0, width: int = 1
) -> tuple[float, float]:
    """Global minimiser ``(s*, L(gamma))`` of Eq. (6); ``L(gamma) = min_w loss`` (Theorem 5)."""
    return min(effective_minima(gamma, hidden_layers, moments, sigma2=sigma2, width=width), key=lambda m: m[1])


def ridge_loss(gamma: float, moments: Moments) -> float:
    """Depth-0 training loss ``L(gamma) = E[y^2] - sum_i c_i^2 / (a_i + gamma)`` (Eq. B4): analytic in gamma."""
    gamma = validation.non_negative("gamma", gamma)
    return float(moments.y2 - np.sum(moments.c**2 / (moments.a + gamma)))


def ridge_regularisation(gamma: float, moments: Moments) -> float:
    """``||w*||^2`` of ridge regression, ``sum_i c_i^2 / (a_i + gamma)^2`` (``dL/dgamma`` at depth 0)."""
    gamma = validation.non_negative("gamma", gamma)
    return float(np.sum(moments.c**2 / (moments.a + gamma) ** 2))


def first_order_point(hidden_layers: int, moments: Moments, *, bracket: tuple[float, float] | None = None) -> float:
    """``gamma*`` where the learned minimum of Eq. (6) and ``s = 0`` have equal loss (``D >= 2``, Theorem 4)."""
    depth = validation.integer("hidden_layers", hidden_layers, minimum=2)

    def gap(gamma: float) -> float:
        learned = [m for m in effective_minima(gamma, depth, moments) if m[0] > 0]
        return (min(m[1] for m in learned) if learned else math.inf) - moments.y2

    low, high = bracket if bracket is not None else (1e-4 * moments.signal, moments.signal)
    while gap(high) < 0:
        high *= 2
    return float(brentq(gap, low, high, xtol=1e-12))


def spinodal_point(hidden_layers: int, moments: Moments, gamma_max: float | None = None) -> float:
    """Largest ``gamma`` at which Eq. (6) still has a learned local minimum (``D >= 2``)."""
    depth = validation.integer("hidden_layers", hidden_layers, minimum=2)

    def has_learned(gamma: float) -> bool:
        return any(m[0] > 0 for m in effective_minima(gamma, depth, moments))

    low = first_order_point(depth, moments)
    high = gamma_max if gamma_max is not None else 4 * moments.signal
    while has_learned(high):
        high *= 2
    for _ in range(50):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if has_learned(mid) else (low, mid)
    return 0.5 * (low + high)


def power_regularised_minimum(gamma: float, hidden_layers: int, moments: Moments, power: float) -> tuple[float, float]:
    """Global minimum ``(s*, loss)`` under the regulariser ``gamma ||w||^power`` (Ziyin-Ueda Sec. IV C).

    ``||w||^2 = sum_l ||W_l||_F^2``.  For a fixed end-to-end vector ``v`` of norm ``r`` the
    cheapest factorisation is balanced, with ``||w||^2 = (D + 1) r^(2/(D+1))``, and the cheapest data
    term at norm ``r`` is ``min_{|v| = r} v^T A v - 2 c.v + E[y^2]`` (a trust-region problem solved
    through its secular equation).  Returns ``s = r^(1/(D+1))``, the per-layer singular value.
    """
    gamma = validation.positive("gamma", gamma)
    depth = validation.integer("hidden_layers", hidden_layers, minimum=1)
    power = validation.positive("power", power)
    layers = depth + 1

    def data_at_norm(r: float) -> float:
        if r == 0:
            return moments.y2
        a_min = float(np.min(moments.a))

        def norm_gap(mu: float) -> float:
            return float(np.linalg.norm(moments.c / (moments.a + mu))) - r

        high = max(1.0, float(np.linalg.norm(moments.c)) / r)
        while norm_gap(high) > 0:
            high *= 2
        low = -a_min + 1e-12
        mu = brentq(norm_gap, low, high, xtol=1e-14) if norm_gap(low) > 0 else low
        v = moments.c / (moments.a + mu)
        v *= r / np.linalg.norm(v)
        return float(v @ (moments.a * v) - 2 * moments.c @ v + moments.y2)

    def total(s: float) -> float:
        r = s**layers
        return data_at_norm(r) + gamma * (layers * s**2) ** (power / 2)

    s_ols = float(np.linalg.norm(moments.c / moments.a)) ** (1 / layers)
    grid = np.linspace(0, s_ols, 400)
    values = np.array([total(s) for s in grid])
    i = int(np.argmin(values))
    result = minimize_scalar(total, bounds=(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]), method="bounded",
                             options={"xatol": 1e-12})
    return float(result.x), float(result.fun)
