"""Spectra of weighted sample covariances: BBP transitions and spectral thresholds (Chapter 4).

The object throughout is the ``d x d`` matrix

    H = (1/n) sum_{i<=n} G_i x_i x_i^T,    x_i ~ N(0, I_d),    n / d -> delta,

with weights ``G_i`` that may depend on the sample only through a few Gaussian projections of
``x_i`` (a label ``y_i = (theta_* . x_i)^2``, a pre-activation ``theta . x_i``).  This is the Hessian
of a single neuron (slides of Wang and Montanari, "Hessian structure") and the data matrix of
spectral methods for phase retrieval (Mondelli and Montanari 2018; Luo, Alghamdi and Lu 2019).

Conventions (derived in the chapter ``dmft_bbp_thresholds``):

- Stieltjes transform ``m(z) = int mu(d lambda) / (lambda - z)`` of the limiting spectral law
  ``mu`` of ``H`` (eigenvalues counted with weight ``1/d``); ``m > 0`` on the real axis below the
  spectrum and ``Im m > 0`` for ``Im z > 0``.  It solves the generalised Marchenko-Pastur equation
  (the slides' "Stieltjes transform" equation, with their ``alpha = m``)

      z + 1/m = delta * E[ G / (delta + G m) ].                                      (GMP)

- Below the bulk, ``z(m) = -1/m + delta E[G/(delta + G m)]`` is increasing on ``(0, m_c)`` where
  ``psi(m_c) = 1`` with ``psi(m) = delta E[(G m / (delta + G m))^2]`` (increasing in ``m``), or
  ``m_c = A = delta / max(-inf G, 0)`` if ``psi`` stays below one; the left edge is ``z(m_c)``
  (the slides' ``c_j(t) = sup_{alpha in (0, A)} z(alpha)``).

- Outlier equation (rank one, signal ``V_* = theta_* . x``; the slides' hard block with ``r = 1``):
  an eigenvalue ``lambda`` below the left edge exists iff

      F(lambda) = -lambda + E[ delta G V_*^2 / (delta + G m(lambda)) ] = 0,          (OUT)

  equivalently ``1/m + delta E[G (V_*^2 - 1) / (delta + G m)] = 0`` with ``m = m(lambda)``.  ``F`` is
  strictly decreasing, so there is at most one root.  The squared overlap of its eigenvector with
  ``theta_*`` is ``1 / |F'(lambda)| = 1 / (1 + m'(lambda) E[delta G^2 V_*^2 / (delta + G m)^2])`` with
  ``m'(lambda) = m^2 / (1 - psi(m))``.

Laws of ``G`` are given by samples (Monte Carlo or quadrature nodes) with optional probabilities;
all results are exact for the law given.  ``support_min`` overrides the infimum of the support of
``G`` where the samples cannot show it (a law unbounded below has ``support_min = -inf``: its bulk
reaches ``-inf`` and no outlier exists).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import optimize, special

from phaselab import validation

__all__ = [
    "WeightLaw",
    "Outlier",
    "weight_law",
    "gmp_inverse",
    "gmp_stieltjes",
    "gmp_left_edge",
    "gmp_density",
    "outlier",
    "threshold",
    "spiked_covariance_outlier",
    "phase_retrieval_law",
    "spectral_outlier",
    "spectral_threshold",
    "weighted_covariance_extremes",
    "spiked_covariance_top",
]

_PHASE_RETRIEVAL_NODES = 200_000
_UNBOUNDED = 1e8  # |T(y)| beyond this at a probe point counts as unbounded


@dataclass(frozen=True)
class WeightLaw:
    """A law of the weight ``G`` (and of the signal ``V_*^2`` when known): atoms with probabilities.

    ``support_min`` is the infimum of the support of ``G`` used for the bound ``A`` of the slides
    (``-inf`` for a law unbounded below).
    """

    values: np.ndarray
    probabilities: np.ndarray
    support_min: float
    signal_squared: np.ndarray | None = None

    def mean(self, values: np.ndarray) -> np.ndarray:
        """``E[values]`` along the last axis."""
        return values @ self.probabilities


@dataclass(frozen=True)
class Outlier:
    """An outlier eigenvalue below the bulk: ``location``, ``overlap_squared`` with ``theta_*``,
    the Stieltjes transform ``stieltjes`` at the location and the bulk's left edge ``edge``."""

    location: float
    overlap_squared: float
    stieltjes: float
    edge: float


def weight_law(
    weights: np.ndarray,
    *,
    signal: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    support_min: float | None = None,
) -> WeightLaw:
    """Validate samples of ``G`` (and optionally of ``V_*``) and build a :class:`WeightLaw`."""
    values = validation.finite_array("weights", weights, ndim=1)
    if probabilities is None:
        probs = np.full(values.size, 1.0 / values.size)
    else:
        probs = validation.finite_array("probabilities", probabilities, ndim=1)
        if probs.shape != values.shape or np.any(probs < 0) or not math.isclose(probs.sum(), 1.0, rel_tol=1e-9):
            raise ValueError("probabilities must be >= 0, sum to 1 and match the shape of weights")
    sq = None
    if signal is not None:
        sig = validation.finite_array("signal", signal, ndim=1)
        if sig.shape != values.shape:
            raise ValueError(f"signal must have the shape of weights {values.shape}, got {sig.shape}")
        sq = sig * sig
    low = float(values.min())
    if support_min is not None:
        if isinstance(support_min, float) and support_min == -math.inf:
            low = -math.inf
        else:
            low = validation.finite_real("support_min", support_min)
            if low > values.min():
                raise ValueError(f"support_min must be <= min(weights) = {values.min()}, got {low}")
    return WeightLaw(values, probs, low, sq)


def _bound(law: WeightLaw, delta: float) -> float:
    """``A = delta / max(-inf G, 0)``: ``m`` must stay in ``(0, A)`` so that ``delta + G m > 0``."""
    if law.support_min >= 0:
        return math.inf
    return delta / (-law.support_min)


def gmp_inverse(m: np.ndarray | complex | float, law: WeightLaw, delta: float) -> np.ndarray:
    """``z(m) = -1/m + delta E[G / (delta + G m)]``: the inverse of the Stieltjes transform (GMP)."""
    m = np.asarray(m)
    g = law.values
    return -1.0 / m + delta * (g / (delta + g * m[..., None])) @ law.probabilities


def _psi(m: float, law: WeightLaw, delta: float) -> float:
    """``psi(m) = delta E[(G m / (delta + G m))^2]``; ``z'(m) = (1 - psi(m)) / m^2``."""
    r = law.values * m / (delta + law.values * m)
    return float(delta * law.mean(r * r))


def _critical_stieltjes(law: WeightLaw, delta: float) -> float:
    """``m_c``: where ``z(m)`` stops increasing (``psi(m_c) = 1``) or the bound ``A``."""
    bound = _bound(law, delta)
    if bound == 0.0:
        return 0.0
    if math.isfinite(bound):
        top = bound * (1.0 - 1e-13)
    else:
        top = 1.0
        while _psi(top, law, delta) < 1.0 and top < 1e15:
            top *= 4.0
    if _psi(top, law, delta) < 1.0:
        return top
    return optimize.brentq(lambda m: _psi(m, law, delta) - 1.0, 0.0, top, xtol=1e-15 * top, rtol=1e-14)


def _law_from(weights, probabilities, support_min, signal=None) -> WeightLaw:
    if isinstance(weights, WeightLaw):
        return weights
    return weight_law(weights, signal=signal, probabilities=probabilities, support_min=support_min)


def gmp_left_edge(
    weights: np.ndarray | WeightLaw, delta: float, *, probabilities: np.ndarray | None = None, support_min: float | None = None
) -> float:
    """Left edge of the generalised Marchenko-Pastur law: ``sup_{0 < m < A} z(m)`` (slides' ``c_j``).

    Returns ``-inf`` when the law of ``G`` is unbounded below (``support_min = -inf``).  When
    ``delta P(G != 0) < 1`` and ``G >= 0`` the edge is the atom at 0.
    """
    delta = validation.positive("delta", delta)
    law = _law_from(weights, probabilities, support_min)
    m_c = _critical_stieltjes(law, delta)
    if m_c == 0.0:
        return -math.inf
    if m_c >= 1e15:
        return 0.0
    return float(gmp_inverse(m_c, law, delta))


def gmp_stieltjes(
    z: np.ndarray | complex | float,
    weights: np.ndarray | WeightLaw,
    delta: float,
    *,
    probabilities: np.ndarray | None = None,
    support_min: float | None = None,
    tol: float = 1e-11,
) -> np.ndarray:
    """The Stieltjes transform ``m(z) = int mu(dl)/(l - z)`` of the GMP law, solving (GMP).

    ``z`` real must lie below the left edge (then ``m`` is real in ``(0, m_c)``, found by
    bisection); ``z`` complex must have ``Im z > 0`` (then ``m`` is found by damped fixed-point
    iteration at large ``Im z`` followed by Newton steps along a path that lowers ``Im z``).
    """
    delta = validation.positive("delta", delta)
    law = _law_from(weights, probabilities, support_min)
    z_arr = np.asarray(z)
    if not np.iscomplexobj(z_arr):
        z_real = validation.finite_array("z", np.atleast_1d(z_arr))
        edge = gmp_left_edge(law, delta)
        if np.any(z_real >= edge):
            raise ValueError(f"real z must lie below the left edge {edge:.6g}; use Im z > 0 inside the bulk")
        m_c = _critical_stieltjes(law, delta)
        roots = [
            optimize.brentq(lambda m, x=x: float(gmp_inverse(m, law, delta)) - x, 1e-300, m_c, xtol=1e-300, rtol=1e-14)
            for x in z_real
        ]
        return np.asarray(roots).reshape(z_arr.shape)
    if not np.all(np.isfinite(z_arr)) or np.any(z_arr.imag <= 0):
        raise ValueError("complex z must be finite with Im z > 0")
    flat = z_arr.ravel()
    out = np.empty(flat.shape, dtype=complex)
    for start in range(0, flat.size, 64):  # chunks bound the (chunk x samples) work arrays
        out[start : start + 64] = _stieltjes_complex(flat[start : start + 64], law, delta, tol)
    return out.reshape(z_arr.shape)


def _stieltjes_complex(z: np.ndarray, law: WeightLaw, delta: float, tol: float) -> np.ndarray:
    g, p = law.values, law.probabilities
    scale = max(1.0, float(np.abs(g) @ p), float(np.max(np.abs(z.real))))
    eta_path = np.geomspace(10.0 * scale, max(float(z.imag.min()), 1e-300), 40)
    m = -1.0 / (z.real + 1j * eta_path[0])
    for eta in eta_path:
        target = z.real + 1j * np.maximum(z.imag, eta)
        for _ in range(100):
            denom = delta + g * m[:, None]
            f = target + 1.0 / m - delta * (g / denom) @ p
            fprime = -1.0 / m**2 + delta * (g * g / denom**2) @ p
            step = f / fprime
            new = m - step
            bad = new.imag <= 0  # leave the upper half-plane: take a damped fixed-point step instead
            if np.any(bad):
                fixed = 1.0 / (-target[bad] + delta * (g / denom[bad]) @ p)
                new[bad] = 0.5 * (m[bad] + fixed)
            m = new
            if np.max(np.abs(step)) < tol * np.max(np.abs(m)) and not np.any(bad):
                break
    return m


def gmp_density(
    x: np.ndarray, weights: np.ndarray | WeightLaw, delta: float, *, probabilities: np.ndarray | None = None, eta: float = 1e-4
) -> np.ndarray:
    """Density of the GMP law at the real points ``x`` by Stieltjes inversion, ``Im m(x + i eta)/pi``.

    An atom at zero (``G >= 0`` with ``delta P(G != 0) < 1``) is not part of the density.
    """
    x = validation.finite_array("x", x, ndim=1)
    eta = validation.positive("eta", eta)
    m = gmp_stieltjes(x + 1j * eta, weights, delta, probabilities=probabilities)
    return m.imag / math.pi


def outlier(
    weights: np.ndarray | WeightLaw,
    signal: np.ndarray | None,
    delta: float,
    *,
    probabilities: np.ndarray | None = None,
    support_min: float | None = None,
) -> Outlier | None:
    """The outlier of ``H = (1/n) sum_i G_i x_i x_i^T`` below its bulk, from equation (OUT).

    ``weights`` are samples of ``G`` and ``signal`` the matching samples of ``V_* = theta_* . x``
    (both from the joint law; ``signal`` may be ``None`` when ``weights`` is a :class:`WeightLaw`
    carrying ``signal_squared``).  Returns ``None`` when (OUT) has no root below the left edge
    (at or below the threshold), else an :class:`Outlier` with the location, the squared overlap
    ``1/|F'(lambda)|`` of its eigenvector with ``theta_*``, ``m(lambda)`` and the edge.

    Requirement on the joint law: ``G`` may depend on ``x`` through ``V_*`` and through Gaussian
    directions orthogonal to ``theta_*``, provided ``E[G h(V_*) W] = 0`` for those directions ``W``
    (the slides' hard block decouples; this holds when the law of ``(G, W)`` is even in ``V_*``, as in
    phase retrieval).  If ``V_*`` contains a part independent of everything ``G`` depends on, pass
    instead the projection onto the direction ``G`` depends on (a component of ``V_*`` independent of
    ``G`` contributes ``1/m`` to ``F`` and no outlier).

    The threshold and the location depend on ``inf G`` through ``A``: for samples of a law
    unbounded below, the result depends on the sample size; pass ``support_min=-inf`` to get the
    asymptotic answer (``None``).
    """
    delta = validation.positive("delta", delta)
    law = _law_from(weights, probabilities, support_min, signal)
    if law.signal_squared is None:
        raise ValueError("signal must be given (samples of V_* matching weights)")
    m_c = _critical_stieltjes(law, delta)
    if m_c == 0.0 or _spike_function(m_c, law, delta) >= 0.0:
        return None
    m = optimize.brentq(lambda s: _spike_function(s, law, delta), 1e-300, m_c, xtol=1e-300, rtol=1e-14)
    g, sq = law.values, law.signal_squared
    denom = delta + g * m
    slope = m * m / (1.0 - _psi(m, law, delta))
    overlap_squared = 1.0 / (1.0 + slope * delta * law.mean(g * g * sq / denom**2))
    return Outlier(
        location=float(gmp_inverse(m, law, delta)),
        overlap_squared=float(overlap_squared),
        stieltjes=float(m),
        edge=float(gmp_inverse(m_c, law, delta)),
    )


def _spike_function(m: float, law: WeightLaw, delta: float) -> float:
    """``m F = 1 + m delta E[G (V_*^2 - 1) / (delta + G m)]``: negative iff the root lies below ``m``."""
    g = law.values
    return float(1.0 + m * delta * law.mean(g * (law.signal_squared - 1.0) / (delta + g * m)))


def threshold(
    weights_fn: Callable[[float], tuple],
    *,
    delta_min: float = 0.05,
    delta_max: float = 1000.0,
    grid_points: int = 40,
    rtol: float = 1e-6,
) -> float:
    """The smallest ``delta`` in ``[delta_min, delta_max]`` at which the outlier (OUT) exists.

    ``weights_fn(delta)`` returns ``(weights, signal)`` or ``(weights, signal, probabilities)`` or a
    :class:`WeightLaw` with ``signal_squared`` (the law may depend on ``delta``, as the DMFT laws do).
    The criterion is the sign of ``m_c F(m_c)`` (negative: an outlier); it is scanned on a log grid
    and the first sign change refined by Brent's method.  Returns ``inf`` when no outlier exists up
    to ``delta_max``; ``delta_min`` when one exists already there.
    """
    delta_min = validation.positive("delta_min", delta_min)
    delta_max = validation.positive("delta_max", delta_max)
    if delta_max <= delta_min:
        raise ValueError(f"delta_max must exceed delta_min = {delta_min}, got {delta_max}")
    grid_points = validation.integer("grid_points", grid_points, minimum=2)

    def margin(delta: float) -> float:
        spec = weights_fn(delta)
        law = spec if isinstance(spec, WeightLaw) else weight_law(spec[0], signal=spec[1], probabilities=spec[2] if len(spec) > 2 else None)
        m_c = _critical_stieltjes(law, delta)
        return 1.0 if m_c == 0.0 else _spike_function(m_c, law, delta)

    grid = np.geomspace(delta_min, delta_max, grid_points)
    if margin(grid[0]) < 0:
        return float(delta_min)
    for low, high in zip(grid[:-1], grid[1:]):
        if margin(high) < 0:
            return float(optimize.brentq(margin, low, high, rtol=rtol))
    return math.inf


def spiked_covariance_outlier(spike: float, ratio: float) -> tuple[float, float] | None:
    """BBP for the sample covariance of ``n`` vectors ``N(0, I + spike v v^T)`` in ``d = ratio n`` dims.

    Above the threshold ``spike > sqrt(ratio)`` (Baik, Ben Arous and Peche 2005; Paul 2007) the top
    eigenvalue converges to ``(1 + l)(1 + c/l)`` and the squared overlap of its eigenvector with
    ``v`` to ``(1 - c/l^2) / (1 + c/l)`` (``l = spike``, ``c = ratio``); at or below it, ``None``
    (the top eigenvalue sticks to the edge ``(1 + sqrt(c))^2`` and the overlap vanishes).
    """
    spike = validation.non_negative("spike", spike)
    ratio = validation.positive("ratio", ratio)
    if spike <= math.sqrt(ratio):
        return None
    eigenvalue = (1.0 + spike) * (1.0 + ratio / spike)
    overlap_squared = (1.0 - ratio / spike**2) / (1.0 + ratio / spike)
    return eigenvalue, overlap_squared


def _validated_preprocess(preprocess: Callable[[np.ndarray], np.ndarray], y: np.ndarray) -> np.ndarray:
    if not callable(preprocess):
        raise ValueError(f"preprocess must be a vectorised callable T(y), got {preprocess!r}")
    values = np.asarray(preprocess(y), dtype=float)
    if values.shape != y.shape:
        raise ValueError(f"preprocess must return an array of the shape of y {y.shape}, got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("preprocess must return finite values for y > 0")
    return values


def phase_retrieval_law(preprocess: Callable[[np.ndarray], np.ndarray], *, nodes: int = _PHASE_RETRIEVAL_NODES) -> WeightLaw:
    """The law of ``G = -T(y)`` with ``y = V_*^2``, ``V_* ~ N(0, 1)``, for the *top* outlier of ``T``.

    Quadrature: ``V_*`` at the Gaussian quantiles of the midpoints of ``nodes`` equal cells (exact
    up to ``O(1/nodes)`` for bounded ``T``, also when ``T`` jumps).  The infimum of ``-T`` is taken
    from the nodes and from probes ``y`` in ``[1e-12, 1e12]``; when ``T`` exceeds ``1e8`` there
    the law is treated as unbounded (``support_min = -inf``).
    """
    nodes = validation.integer("nodes", nodes, minimum=100)
    v = special.ndtri((np.arange(nodes) + 0.5) / nodes)
    y = v * v
    values = -_validated_preprocess(preprocess, y)
    probes = np.geomspace(1e-12, 1e12, 241)
    probe_values = -_validated_preprocess(preprocess, probes)
    low = min(float(values.min()), float(probe_values.min()))
    if low < -_UNBOUNDED:
        low = -math.inf
    return WeightLaw(values, np.full(nodes, 1.0 / nodes), low, y)


def spectral_outlier(preprocess: Callable[[np.ndarray], np.ndarray], delta: float) -> Outlier | None:
    """Top outlier of ``D = (1/n) sum_i T(y_i) x_i x_i^T`` for phase retrieval ``y = (theta_* . x)^2``.

    Applies (OUT) to ``G = -T`` (the top of ``D`` is minus the bottom of ``-D``) and returns the
    :class:`Outlier` with ``location`` and ``edge`` in the spectrum of ``D`` (signs flipped back).
    """
    delta = validation.positive("delta", delta)
    result = outlier(phase_retrieval_law(preprocess), None, delta)
    if result is None:
        return None
    return Outlier(-result.location, result.overlap_squared, result.stieltjes, -result.edge)


def spectral_threshold(
    preprocess: Callable[[np.ndarray], np.ndarray], *, delta_min: float = 0.05, delta_max: float = 1000.0
) -> float:
    """Weak-recovery threshold ``delta_u`` of the spectral method with preprocessing ``T``.

    The smallest ``delta`` at which ``(1/n) sum_i T(y_i) x_i x_i^T`` has an informative top outlier
    (``inf`` when there is none up to ``delta_max``, e.g. for ``T`` unbounded above).  For
    ``T(y) = 1 - 1/y`` this is ``1/2`` (Mondelli and Montanari 2018; Luo, Alghamdi and Lu 2019).
    """
    law = phase_retrieval_law(preprocess)
    return threshold(lambda delta: law, delta_min=delta_min, delta_max=delta_max)


def weighted_covariance_extremes(
    x: np.ndarray, weights: np.ndarray, direction: np.ndarray, *, count: int = 1, largest: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Extreme eigenpairs of ``(1/n) X^T diag(G) X``: ``(eigenvalues, overlaps_squared)``.

    The ``count`` smallest (or largest) eigenvalues, sorted from the extreme inwards, with the
    squared overlaps of their eigenvectors with the unit vector ``direction``.  The matrix is formed
    and a subset of its spectrum computed by LAPACK (Lanczos converges badly here: heavy-tailed
    weights spread the spectrum far on the other side).
    """
    from scipy.linalg import eigh

    x = np.asarray(x, dtype=float)
    g = validation.finite_array("weights", weights, ndim=1)
    n, d = x.shape
    if g.size != n:
        raise ValueError(f"weights must have one entry per row of x ({n}), got {g.size}")
    count = validation.integer("count", count, minimum=1, maximum=d)
    matrix = (x.T * g) @ x / n
    index = (d - count, d - 1) if largest else (0, count - 1)
    values, vectors = eigh(matrix, subset_by_index=index)
    if largest:
        values, vectors = values[::-1], vectors[:, ::-1]
    u = np.asarray(direction, dtype=float)
    return values, (u @ vectors) ** 2 / (u @ u)


def spiked_covariance_top(
    d: int, n: int, spike: float, rng: np.random.Generator, *, seeds: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Top eigenvalue of the sample covariance of ``n`` draws of ``N(0, I_d + spike e_1 e_1^T)`` and
    the squared overlap of its eigenvector with ``e_1``, for ``seeds`` independent samples (Lanczos
    on the implicit matrix; the Marchenko-Pastur spectrum is well conditioned)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    d = validation.integer("d", d, minimum=3)
    n = validation.integer("n", n, minimum=1)
    spike = validation.non_negative("spike", spike)
    seeds = validation.integer("seeds", seeds, minimum=1)
    tops, overlaps = np.empty(seeds), np.empty(seeds)
    for k in range(seeds):
        x = rng.standard_normal((n, d))
        x[:, 0] *= math.sqrt(1.0 + spike)
        operator = LinearOperator((d, d), matvec=lambda v: x.T @ (x @ v.ravel()) / n, dtype=float)
        value, vector = eigsh(operator, k=1, which="LA", v0=np.ones(d), tol=1e-9)
        tops[k], overlaps[k] = value[0], vector[0, 0] ** 2
    return tops, overlaps
