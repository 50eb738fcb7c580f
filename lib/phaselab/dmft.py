"""Dynamical mean-field theory (DMFT) of full-batch gradient descent on a single neuron (Chapter 4).

The finite-size problem (conventions of :mod:`phaselab.single_neuron`, one
:class:`~phaselab.single_neuron.Reading` of ``a``, ``b`` and the label shift ``c``): ``n = delta d``
samples ``x_i ~ N(0, I_d)``, labels ``y_i = (theta_* . x_i)^2 - c``, network ``f(x) = a sigma(theta . x + b)``,
empirical risk ``(1/n) sum_i (y_i - f(x_i))^2 / 2`` and::

    theta(t+1) = theta(t) - eta (1/n) sum_i F(theta(t) . x_i, y_i) x_i,
    F(v, y) = a (a sigma(v + b) - y) sigma'(v + b),            dF/dv = g(y, v)  (Hessian weight).

Normalisation.  Write ``A = X / sqrt(d)`` (entries of variance ``1/d``) and ``Theta = sqrt(d) theta``
(coordinates of order one, ``Theta(0) ~ N(0, 1)``).  Then ``theta . x_i = (A Theta)_i`` and
``Theta(t+1) = Theta(t) - (eta / delta) A^T F(t)``.  The cavity method for this iteration gives the
DMFT of the slides (Wang and Montanari, "DMFT: Evolution equations"), with their ``F = eta F``,
``R_theta`` and ``R_l`` (their ``1/eta`` factors cancel that ``eta``)::

    V(t)       = W(t) - (eta/delta) sum_{s<t} R_theta(t, s) F(V(s), y),   W ~ GP(0, C_theta),
    Theta(t+1) = Theta(t) - eta sum_{s<=t} R_l(t, s) Theta(s) - eta R_l(t, *) Theta_* + eta Q(t),
                 Q ~ GP(0, C_l / delta),
    C_theta(t, s) = E[Theta(t) Theta(s)] = theta(t) . theta(s),     C_l(t, s) = E[F(t) F(s)],
    R_theta(t, s) = E[d Theta(t) / d (eta Q(s))],     R_l(t, s) = E[d F(V(t), y) / d W(s)].

``V(t)`` is the law of the pre-activations ``theta(t) . x_i`` on the training points, and the slides'
(1/n)- and (1/d)-averages become expectations.  The orthogonal part of the gradient, of norm
``O(sqrt(d/n))``, is the noise ``eta Q`` with variance ``eta^2 C_l / delta`` per coordinate of
``Theta``.  For phase retrieval ``y = V_*^2 - c`` is even in ``V_*`` and ``Theta(0)`` is independent of
``Theta_*``: then ``C_theta(t, *) = 0`` and ``R_l(t, *) = 0`` at all ``t`` (checked by
``DMFTSolution.target_response``), so the hard direction is never learned in ``O(1)`` time.

Solver.  The ``Theta`` equation is linear: ``Theta(t) = a_t Theta(0) + eta sum_{s<t} K(t, s) Q(s)`` with
deterministic ``a, K`` (and ``K = R_theta``), so ``C_theta`` and ``R_theta`` are exact given the
``l``-kernels.  ``W`` is sampled through the same representation, ``W(t) = a_t W(0) + eta sum_s K(t, s)
q(s)`` with ``q ~ GP(0, C_l / delta)`` drawn causally from an incremental Cholesky factor.  ``V`` is
then Monte Carlo over ``n_samples`` paths, ``R_l`` by exact tangent propagation
``J(t, s) = dV(t)/dW(s)`` on the first ``n_response`` paths.  In discrete time every kernel at time
``t`` depends only on earlier times, so one causal sweep *is* the fixed point of the DMFT map; the
solver reports the residual of one more application of the map (``DMFTSolution.fixed_point_residual``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from phaselab import config, single_neuron, spectra, validation

DEFAULT_STEP_SIZE = {"gelu": 0.5, "quadratic": 0.05}
"""Step sizes ``eta`` used throughout Chapter 4 (GD and DMFT stable for delta >= 2 at both activations;
the quadratic neuron needs the smaller step because its per-sample curvature ``6 z^2 - 2 y`` grows
with the largest labels)."""

_MEMORY_BYTES = 400 * 2**20  # cap on the per-batch arrays; larger delta batches are split
_HERMITE_NODES = 40


def step_size(activation: str, eta: float | None = None) -> float:
    """``eta`` if given (validated), else the chapter's default step size for ``activation``."""
    name = single_neuron.activation(activation).name
    return DEFAULT_STEP_SIZE[name] if eta is None else validation.positive("eta", eta)


def population_risk(activation: str, norm_squared: np.ndarray, overlap: np.ndarray,
                    reading: single_neuron.Reading = single_neuron.STANDARD) -> np.ndarray:
    """Test risk ``E[(y - f(x))^2] / 2`` on a fresh ``x`` given ``|theta|^2`` and ``theta . theta_*``.

    ``(theta . x, theta_* . x)`` is Gaussian with covariance ``[[|theta|^2, rho], [rho, 1]]``; the
    expectation is a 2-d Gauss-Hermite quadrature (exact for the quadratic activation).
    """
    q = np.asarray(norm_squared, dtype=float)
    rho = np.broadcast_to(np.asarray(overlap, dtype=float), q.shape)
    if np.any(q <= 0) or np.any(rho**2 > q * (1 + 1e-9)):
        raise ValueError("norm_squared must be > 0 and overlap^2 <= norm_squared")
    nodes, weights = np.polynomial.hermite_e.hermegauss(_HERMITE_NODES)
    weights = weights / weights.sum()
    z1, z2 = nodes[:, None], nodes[None, :]
    w2 = weights[:, None] * weights[None, :]
    sq = np.sqrt(q)[..., None, None]
    u = sq * z1
    vstar = (rho[..., None, None] / sq) * z1 + np.sqrt(np.clip(1 - rho**2 / q, 0, None))[..., None, None] * z2
    out = single_neuron.network_output(np.broadcast_to(u, vstar.shape).copy(), activation, reading)
    target = single_neuron.phase_retrieval_target(vstar, reading)
    return 0.5 * np.sum(w2 * (out - target) ** 2, axis=(-2, -1))


@dataclass(frozen=True)
class DMFTSolution:
    """The DMFT solution at one ``delta`` for steps ``t = 0..steps``.

    Arrays indexed by time have length ``steps + 1``.  ``preactivations`` (``n_samples x (steps+1)``)
    are samples of ``V(t)``, the law of ``theta(t) . x_i`` on training points; ``target_projection``
    the matching samples of ``V_*`` (``y = V_*^2 - c``).  ``*_sem`` are Monte Carlo standard errors.
    """

    activation: str
    delta: float
    eta: float
    reading: single_neuron.Reading
    train_risk: np.ndarray
    train_risk_sem: np.ndarray
    test_risk: np.ndarray
    c_theta: np.ndarray
    r_theta: np.ndarray
    c_ell: np.ndarray
    r_ell: np.ndarray
    r_ell_sem: np.ndarray
    target_response: np.ndarray
    target_response_sem: np.ndarray
    preactivations: np.ndarray
    target_projection: np.ndarray
    fixed_point_residual: float

    @property
    def steps(self) -> int:
        return self.train_risk.size - 1

    @property
    def norm(self) -> np.ndarray:
        """``|theta(t)| = sqrt(C_theta(t, t))``."""
        return np.sqrt(np.diag(self.c_theta))

    def hessian_weights(self, t: int) -> np.ndarray:
        """Samples of ``G_t = g(y, V(t))``, the weights of the Hessian ``(1/n) sum_i G_i x_i x_i^T``."""
        return self._hessian_weights(t, self.target_projection.size)

    def _hessian_weights(self, t: int, count: int) -> np.ndarray:
        """``G_t`` on the first ``count`` samples only."""
        t = validation.integer("t", t, minimum=0, maximum=self.steps)
        y = single_neuron.phase_retrieval_target(self.target_projection[:count], self.reading)
        return single_neuron.hessian_weight(y, self.preactivations[:count, t], self.activation, self.reading)

    def hessian_outlier(self, t: int, dimension: int | None = None, quantile: float | None = None) -> spectra.Outlier | None:
        """The informative outlier of the Hessian at step ``t`` from the outlier equation (or None).

        The law of ``G_t`` is unbounded below (labels ``y`` are), so the bulk's left edge is set by
        the most negative weight present.  With ``dimension = d`` the equation uses the first
        ``n = delta d`` samples, whose minimum is what a ``d``-dimensional Hessian sees; without it,
        all ``n_samples``.  With ``quantile = q`` the samples below the ``q``-quantile of ``G_t`` are
        dropped (a law truncated where its density becomes negligible, ``q`` of the mass).  (The
        slides' formula with the true infimum, ``-inf``, gives no outlier.)
        """
        count = self.target_projection.size
        if dimension is not None:
            dimension = validation.integer("dimension", dimension, minimum=1)
            count = int(round(self.delta * dimension))
            if count > self.target_projection.size:
                raise ValueError(f"dimension needs delta * dimension = {count} samples, the solution has {self.target_projection.size}")
        weights, signal = self._hessian_weights(t, count), self.target_projection[:count]
        if quantile is not None:
            quantile = validation.in_range("quantile", quantile, 0.0, 0.5)
            keep = weights >= np.quantile(weights, quantile)
            weights, signal = weights[keep], signal[keep]
        return spectra.outlier(weights, signal, self.delta)


def _cholesky_row(factor: torch.Tensor, row: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
    """Row ``t`` of the Cholesky factor of a growing PSD matrix: ``factor`` holds rows ``< t``.

    ``row`` is ``C[t, :t+1]`` (batched); ``jitter`` keeps the pivot positive when the new entry is
    (numerically) determined by the past, so a frozen process does not produce inf or nan.
    """
    t = row.shape[-1] - 1
    out = torch.zeros_like(row)
    if t > 0:
        out[..., :t] = torch.linalg.solve_triangular(factor[..., :t, :t], row[..., :t, None], upper=False)[..., 0]
    pivot = row[..., t] + jitter - (out[..., :t] ** 2).sum(-1)
    out[..., t] = torch.sqrt(torch.clamp(pivot, min=0.0) + jitter)
    return out


def _sweep(name: str, deltas: torch.Tensor, steps: int, eta: float, noise: torch.Tensor, n_response: int,
           reading: single_neuron.Reading, kernels=None):
    """One causal sweep of the DMFT map for a batch of ``deltas``.

    ``noise`` is ``n_samples x (steps + 3)`` standard Gaussians: column 0 is ``V_*``, column 1 is
    ``W(0)``, column ``2 + s`` drives ``q(s)``.  When ``kernels = (c_ell, r_ell)`` is given the
    Theta side uses those instead of the ones being computed (one application of the DMFT map, for
    the fixed-point residual); otherwise the sweep is self-consistent.
    """
    act = single_neuron.activation(name)
    batch, n = deltas.shape[0], noise.shape[0]
    opts = dict(dtype=noise.dtype, device=noise.device)
    vstar, w0, innovations = noise[:, 0], noise[:, 1], noise[:, 2:]
    y = single_neuron.phase_retrieval_target(vstar, reading)
    ratio = (eta / deltas)[:, None]
    v = torch.zeros(batch, steps + 1, n, **opts)  # time-major: the slice at one t is contiguous
    f = torch.zeros_like(v)
    g = torch.zeros(batch, steps + 1, n_response, **opts)
    jac = torch.zeros(batch, n_response, steps + 1, steps + 1, **opts)
    dv_dy = torch.zeros(batch, steps + 1, n_response, **opts)
    df_dy = torch.zeros_like(dv_dy)
    q = torch.zeros(batch, steps + 1, n, **opts)
    chol = torch.zeros(batch, steps + 1, steps + 1, **opts)
    a = torch.zeros(batch, steps + 2, **opts)
    a[:, 0] = 1.0
    k = torch.zeros(batch, steps + 2, steps + 1, **opts)
    c_ell = torch.zeros(batch, steps + 1, steps + 1, **opts)
    r_ell = torch.zeros_like(c_ell)
    r_ell_sem = torch.zeros_like(c_ell)
    for t in range(steps + 1):
        kt = k[:, t, :t]
        w = a[:, t, None] * w0 + eta * torch.einsum("bs,bsn->bn", kt, q[:, :t])
        v[:, t] = w - ratio * torch.einsum("bs,bsn->bn", kt, f[:, :t])
        value, first, second = act.jet(v[:, t] + reading.bias)  # one pass of the special functions
        residual = reading.output_weight * value - y
        f[:, t] = reading.output_weight * residual * first  # F = single_neuron.gradient_weight
        g[:, t] = (reading.output_weight**2 * first**2 + reading.output_weight * residual * second)[:, :n_response]  # dF/dv
        df_dy[:, t] = -reading.output_weight * first[:, :n_response]
        jac[:, :, t, t] = 1.0
        if t > 0:
            coeff = -ratio[:, :, None] * kt[:, :, None] * g[:, :t]  # (batch, t, n_response)
            jac[:, :, t, :t] = torch.einsum("brn,bnrs->bns", coeff, jac[:, :, :t, :t])
            dv_dy[:, t] = (coeff * dv_dy[:, :t]).sum(1) - ratio * (kt[:, :, None] * df_dy[:, :t]).sum(1)
        c_ell[:, t, : t + 1] = torch.einsum("bn,bsn->bs", f[:, t], f[:, : t + 1]) / n
        c_ell[:, : t + 1, t] = c_ell[:, t, : t + 1].clone()
        contributions = g[:, t, :, None] * jac[:, :, t, : t + 1]
        r_ell[:, t, : t + 1] = contributions.mean(1)
        r_ell_sem[:, t, : t + 1] = contributions.std(1) / math.sqrt(n_response)
        c_use, r_use = (c_ell, r_ell) if kernels is None else kernels
        # Theta side: a_{t+1} and K(t+1, .) from R_l(t, .).
        a[:, t + 1] = a[:, t] - eta * (r_use[:, t, : t + 1] * a[:, : t + 1]).sum(-1)
        k[:, t + 1, :t] = k[:, t, :t] - eta * torch.einsum("br,brs->bs", r_use[:, t, : t + 1], k[:, : t + 1, :t])
        k[:, t + 1, t] = 1.0
        scaled = c_use[:, t, : t + 1] / deltas[:, None]
        jitter = 1e-13 * (1.0 + c_use[:, 0, 0] / deltas)
        chol[:, t, : t + 1] = _cholesky_row(chol, scaled, jitter)
        q[:, t] = torch.einsum("bs,ns->bn", chol[:, t, : t + 1], innovations[:, : t + 1])
    kk = k[:, : steps + 1, :]
    c_theta = a[:, : steps + 1, None] * a[:, None, : steps + 1] + eta**2 * torch.einsum(
        "bts,bsr,bur->btu", kk, c_ell if kernels is None else kernels[0], kk
    ) / deltas[:, None, None]
    # R_l(t, *) = E[dF(t)/dV_*] at fixed W; dF/dV_* = (g dV/dy + dF/dy) 2 V_*.
    target = (g * dv_dy + df_dy) * (2.0 * vstar[:n_response])[None, None, :]
    return dict(v=v, f=f, y=y, vstar=vstar, c_ell=c_ell, r_ell=r_ell, r_ell_sem=r_ell_sem, c_theta=c_theta, r_theta=kk, target=target)


def _stratified_normal(count: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """``count`` standard normals stratified on the quantiles (one per cell ``[k, k+1)/count``),
    in random order: an unbiased sample with far smaller Monte Carlo error for heavy functions such
    as ``V_*^8``."""
    cells = torch.randperm(count, generator=gen, device=device).to(torch.float64)
    uniform = (cells + torch.rand(count, generator=gen, dtype=torch.float64, device=device)) / count
    return math.sqrt(2.0) * torch.special.erfinv(2.0 * uniform - 1.0)


def _path_noise(n_samples: int, steps: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Noise for ``n_samples`` DMFT paths: stratified ``V_*`` and ``W(0)``, Gaussian innovations."""
    noise = torch.randn(n_samples, steps + 3, generator=gen, dtype=torch.float64, device=device)
    noise[:, 0] = _stratified_normal(n_samples, gen, device)
    noise[:, 1] = _stratified_normal(n_samples, gen, device)
    return noise


def _batch_size(n_samples: int, n_response: int, steps: int, itemsize: int) -> int:
    """How many deltas to solve at once: the paths (``v, f, q``) and tangents fit in a fixed budget."""
    per_delta = (3 * n_samples * (steps + 1) + n_response * (steps + 1) ** 2) * itemsize
    return max(1, _MEMORY_BYTES // per_delta)


def solve_dmft_batch(
    activation: str,
    deltas,
    steps: int,
    eta: float | None = None,
    n_samples: int = 20_000,
    seed: int = 0,
    *,
    n_response: int | None = None,
    check_fixed_point: bool = False,
    reading: single_neuron.Reading = single_neuron.STANDARD,
    device: str | torch.device | None = None,
) -> list[DMFTSolution]:
    """DMFT solutions at several ``deltas`` with common random numbers (one batched tensor program).

    ``n_response`` (default ``n_samples``) paths carry the exact tangents for ``R_l``;
    memory is ``O(n_samples steps + n_response steps^2)`` per ``delta`` (batches are split above a
    fixed cap).
    ``check_fixed_point`` applies the DMFT map once more to the solution's kernels and stores the
    largest change of ``C_theta`` and ``R_l`` in ``fixed_point_residual`` (``nan`` when not checked).
    ``reading`` fixes ``a``, ``b`` and the label shift (:class:`phaselab.single_neuron.Reading`).
    """
    name = single_neuron.activation(activation).name
    _check_reading(reading)
    delta_arr = validation.finite_array("deltas", np.atleast_1d(np.asarray(deltas, dtype=float)), ndim=1, positive_entries=True)
    steps = validation.integer("steps", steps, minimum=0, maximum=2000)
    eta = step_size(name, eta)
    n_samples = validation.integer("n_samples", n_samples, minimum=100)
    n_response = n_samples if n_response is None else validation.integer("n_response", n_response, minimum=100, maximum=n_samples)
    seed = validation.integer("seed", seed, minimum=0)
    dev = config.resolve_device(device)
    gen = config.torch_generator(seed, dev)
    noise = _path_noise(n_samples, steps, gen, dev)
    chunk = _batch_size(n_samples, n_response, steps, 8)
    solutions: list[DMFTSolution] = []
    for start in range(0, delta_arr.size, chunk):
        part = torch.as_tensor(delta_arr[start : start + chunk], dtype=torch.float64, device=dev)
        sol = _sweep(name, part, steps, eta, noise, n_response, reading)
        residual = torch.full((part.shape[0],), math.nan, dtype=part.dtype)
        if check_fixed_point:
            again = _sweep(name, part, steps, eta, noise, n_response, reading, kernels=(sol["c_ell"], sol["r_ell"]))
            residual = torch.amax(torch.abs(again["c_theta"] - sol["c_theta"]), dim=(1, 2)) + torch.amax(
                torch.abs(again["r_ell"] - sol["r_ell"]), dim=(1, 2)
            )
        solutions.extend(_package(name, float(part[i]), eta, reading, sol, i, float(residual[i])) for i in range(part.shape[0]))
    return solutions


def _check_reading(reading) -> None:
    if not isinstance(reading, single_neuron.Reading):
        raise ValueError(f"reading must be a phaselab.single_neuron.Reading, got {type(reading).__name__}")


def _package(name: str, delta: float, eta: float, reading: single_neuron.Reading, sol: dict, i: int,
             residual: float) -> DMFTSolution:
    loss = 0.5 * (single_neuron.network_output(sol["v"][i], name, reading) - sol["y"][None, :]) ** 2
    n = loss.shape[1]
    c_theta = sol["c_theta"][i].cpu().numpy()
    target = sol["target"][i]
    return DMFTSolution(
        activation=name,
        delta=delta,
        eta=eta,
        reading=reading,
        train_risk=loss.mean(1).cpu().numpy(),
        train_risk_sem=(loss.std(1) / math.sqrt(n)).cpu().numpy(),
        test_risk=population_risk(name, np.diag(c_theta), np.zeros(c_theta.shape[0]), reading),
        c_theta=c_theta,
        r_theta=sol["r_theta"][i].cpu().numpy(),
        c_ell=sol["c_ell"][i].cpu().numpy(),
        r_ell=sol["r_ell"][i].cpu().numpy(),
        r_ell_sem=sol["r_ell_sem"][i].cpu().numpy(),
        target_response=target.mean(1).cpu().numpy(),
        target_response_sem=(target.std(1) / math.sqrt(target.shape[1])).cpu().numpy(),
        preactivations=sol["v"][i].T.cpu().numpy(),
        target_projection=sol["vstar"].cpu().numpy(),
        fixed_point_residual=residual,
    )


def solve_dmft(
    activation: str,
    delta: float,
    steps: int,
    eta: float | None = None,
    n_samples: int = 20_000,
    seed: int = 0,
    *,
    n_response: int | None = None,
    check_fixed_point: bool = False,
    reading: single_neuron.Reading = single_neuron.STANDARD,
    device: str | torch.device | None = None,
) -> DMFTSolution:
    """Solve the DMFT of gradient descent at sample ratio ``delta = n/d`` for ``steps`` steps.

    ``eta`` defaults to :data:`DEFAULT_STEP_SIZE`; ``n_samples`` Monte Carlo paths of ``(V(t), V_*)``.
    Returns a :class:`DMFTSolution` (train and test risk per step with Monte Carlo errors, kernels,
    samples of ``(V(t), V_*)`` for the outlier equation, the fixed-point residual).
    """
    delta = validation.positive("delta", delta)
    return solve_dmft_batch(
        activation, [delta], steps, eta, n_samples, seed, n_response=n_response, check_fixed_point=check_fixed_point,
        reading=reading, device=device,
    )[0]


@dataclass(frozen=True)
class ThresholdCurve:
    """``delta*(t)`` from the outlier equation with the DMFT law of ``(G_t, V_*)``.

    ``has_outlier``, ``location`` and ``overlap_squared`` are ``(seeds, deltas, times)`` (``nan``
    where there is no outlier) at the steps ``times``.  ``delta_star[k]`` (at step ``times[k]``) is the midpoint of the grid cell where the outlier
    appears (averaged over the Monte Carlo seeds) and ``delta_star_err`` its uncertainty: half the
    cell width combined with the standard error over seeds.  ``inf`` where no grid point has one.
    """

    activation: str
    eta: float
    deltas: np.ndarray
    times: np.ndarray
    has_outlier: np.ndarray
    location: np.ndarray
    overlap_squared: np.ndarray
    delta_star: np.ndarray
    delta_star_err: np.ndarray

    def replica_thresholds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per Monte Carlo replica and evaluated step: midpoint and half-width of the grid cell where the
        outlier appears, arrays ``(seeds, times)`` (``inf`` midpoint where no grid point has one)."""
        return _cell_thresholds(self.deltas, self.has_outlier)


def _cell_thresholds(deltas: np.ndarray, has_outlier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per seed and step: midpoint and half-width of the cell above the last grid point without outlier."""
    seeds, _, times = has_outlier.shape
    mid = np.full((seeds, times), np.inf)
    half = np.zeros((seeds, times))
    for s in range(seeds):
        for t in range(times):
            missing = np.flatnonzero(~has_outlier[s, :, t])
            if missing.size == 0:
                mid[s, t], half[s, t] = deltas[0] / 2, deltas[0] / 2
            elif missing[-1] + 1 < deltas.size:
                low, high = deltas[missing[-1]], deltas[missing[-1] + 1]
                mid[s, t], half[s, t] = (low + high) / 2, (high - low) / 2
    return mid, half


def delta_star_curve(
    activation: str,
    deltas,
    steps: int,
    eta: float | None = None,
    dimension: int = 1000,
    seeds: int = 2,
    **options,
) -> ThresholdCurve:
    """``delta*(t)`` for ``t = 0..steps`` on a grid of ``deltas`` (slides, "Formulas for computing delta_NN").

    At each grid point the DMFT is solved once (all ``t`` at a time) for each of ``seeds`` Monte
    Carlo seeds and :func:`phaselab.spectra.outlier` is applied to ``n = delta * dimension`` samples
    of ``(G_t, V_*)`` (see :meth:`DMFTSolution.hessian_outlier`: the law of ``G_t`` is unbounded
    below, and its ``n``-sample minimum sets the bulk edge of a ``dimension``-dimensional Hessian).
    The keyword ``options`` are those of :func:`delta_star_curves`: ``quantile`` drops the weights
    below that quantile first, the kernels use ``n_response`` tangent paths, the outlier equation is
    evaluated every ``every`` steps (and at ``steps``); ``reading`` and ``device`` as there.
    """
    dimension = validation.integer("dimension", dimension, minimum=1)
    return delta_star_curves(activation, deltas, steps, eta, (dimension,), seeds, **options)[dimension]


def delta_star_curves(
    activation: str,
    deltas,
    steps: int,
    eta: float | None = None,
    dimensions=(1000,),
    seeds: int = 2,
    *,
    every: int = 1,
    quantile: float | None = None,
    n_response: int = 4000,
    reading: single_neuron.Reading = single_neuron.STANDARD,
    device: str | torch.device | None = None,
) -> dict[int, ThresholdCurve]:
    """:func:`delta_star_curve` for several Hessian dimensions from the same DMFT solutions.

    Returns ``{dimension: ThresholdCurve}``: the outlier equation with the bulk edge of ``n = delta d``
    samples for each ``d`` in ``dimensions`` (the DMFT is solved once per seed and grid point).
    """
    name = single_neuron.activation(activation).name
    _check_reading(reading)
    grid = np.sort(validation.finite_array("deltas", np.atleast_1d(np.asarray(deltas, dtype=float)), ndim=1, positive_entries=True))
    seeds = validation.integer("seeds", seeds, minimum=1)
    dims = tuple(validation.integer("dimensions", dim, minimum=1) for dim in np.atleast_1d(dimensions))
    if not dims:
        raise ValueError("dimensions must hold at least one dimension")
    n_response = validation.integer("n_response", n_response, minimum=100)
    eta = step_size(name, eta)
    times = _times(steps, every)
    n_samples = _scan_samples(grid, max(dims), n_response)
    scans = _scan(name, grid, times, eta, n_samples, dims, n_response, seeds, device, quantile, reading)
    return {dim: _curve(name, eta, grid, times, scans[dim]) for dim in dims}


def _times(steps: int, every: int) -> np.ndarray:
    steps = validation.integer("steps", steps, minimum=0, maximum=2000)
    every = validation.integer("every", every, minimum=1)
    return np.union1d(np.arange(0, steps + 1, every), [steps])


def _scan_samples(grid: np.ndarray, dimension: int, n_response: int) -> int:
    """DMFT paths needed so that every grid point has its ``delta * dimension`` samples."""
    return max(int(math.ceil(grid.max() * dimension)), n_response)


def _scan(
    name: str,
    grid: np.ndarray,
    times: np.ndarray,
    eta: float,
    n_samples: int,
    dimensions: tuple[int, ...],
    n_response: int,
    seeds: int,
    device,
    quantile: float | None = None,
    reading: single_neuron.Reading = single_neuron.STANDARD,
) -> dict[int, tuple[np.ndarray, ...]]:
    """Per Hessian dimension: outlier existence, location and squared overlap, ``(seeds, deltas, times)``.

    Seed ``s`` solves the DMFT with ``n_samples`` paths drawn from seed ``s``: scans with the same
    ``n_samples`` share their random numbers, so points added to a grid are comparable with it.
    """
    steps = int(times[-1])
    shape = (seeds, grid.size, times.size)
    out = {dim: (np.zeros(shape, dtype=bool), np.full(shape, np.nan), np.full(shape, np.nan)) for dim in dimensions}
    for s in range(seeds):
        solutions = solve_dmft_batch(name, grid, steps, eta, n_samples, seed=s, n_response=n_response, reading=reading,
                                     device=device)
        for j, sol in enumerate(solutions):
            for k, t in enumerate(times):
                for dim, (has, loc, ovl) in out.items():
                    found = sol.hessian_outlier(int(t), dim, quantile)
                    if found is not None:
                        has[s, j, k], loc[s, j, k], ovl[s, j, k] = True, found.location, found.overlap_squared
    return out


def _curve(name: str, eta: float, grid: np.ndarray, times: np.ndarray, scan: tuple[np.ndarray, ...]) -> ThresholdCurve:
    has, loc, ovl = scan
    seeds = has.shape[0]
    mid, half = _cell_thresholds(grid, has)
    mean = mid.mean(0)
    spread = mid.std(0, ddof=1) / math.sqrt(seeds) if seeds > 1 else np.zeros(times.size)
    err = np.sqrt(half.max(0) ** 2 + np.nan_to_num(spread, nan=np.inf) ** 2)
    return ThresholdCurve(name, eta, grid, times, has, loc, ovl, mean, err)


@dataclass(frozen=True)
class Threshold:
    """``delta_NN`` estimated as ``delta*(steps)`` with its uncertainty, and the ``delta*(t)`` curve.

    ``value`` and ``uncertainty`` use the refined grid at the last step; ``curve`` is the coarse
    grid at all evaluated steps (to judge whether ``delta*(t)`` has settled).
    """

    value: float
    uncertainty: float
    steps: int
    curve: ThresholdCurve


def delta_nn(
    activation: str,
    steps: int = 30,
    eta: float | None = None,
    dimension: int = 1000,
    seeds: int = 2,
    *,
    grid=None,
    coarse: tuple[float, float, int] = (2.0, 30.0, 8),
    refine: int = 4,
    every: int | None = None,
    quantile: float | None = None,
    n_response: int = 4000,
    reading: single_neuron.Reading = single_neuron.STANDARD,
    device: str | torch.device | None = None,
) -> Threshold:
    """The threshold ``delta_NN = lim_t delta*(t)`` (slides), estimated at the horizon ``steps``.

    ``grid`` (or a geometric ``coarse = (low, high, points)`` grid) brackets ``delta*(t)``, evaluated
    every ``every`` steps (default: first and last step); ``refine`` extra points inside the bracket
    at the last step narrow the estimate.  ``dimension`` sets the Hessian size whose bulk edge is
    used (:meth:`DMFTSolution.hessian_outlier`).  The uncertainty combines the final cell width and
    the spread over ``seeds`` Monte Carlo seeds; whether ``steps`` is long enough shows in ``curve``.
    """
    name = single_neuron.activation(activation).name
    _check_reading(reading)
    eta = step_size(name, eta)
    if grid is None:
        low, high, points = coarse
        low, high = validation.positive("coarse low", low), validation.positive("coarse high", high)
        if high <= low:
            raise ValueError(f"coarse must have high > low, got {coarse}")
        grid = np.geomspace(low, high, validation.integer("coarse points", points, minimum=2))
    grid = np.sort(validation.finite_array("grid", np.atleast_1d(np.asarray(grid, dtype=float)), ndim=1, positive_entries=True))
    refine = validation.integer("refine", refine, minimum=0)
    steps = validation.integer("steps", steps, minimum=1, maximum=2000)
    seeds = validation.integer("seeds", seeds, minimum=1)
    dimension = validation.integer("dimension", dimension, minimum=1)
    n_response = validation.integer("n_response", n_response, minimum=100)
    times = _times(steps, steps if every is None else every)
    n_samples = _scan_samples(grid, dimension, n_response)  # one set of paths for both scans
    scan = _scan(name, grid, times, eta, n_samples, (dimension,), n_response, seeds, device, quantile, reading)[dimension]
    curve = _curve(name, eta, grid, times, scan)
    value, uncertainty = float(curve.delta_star[-1]), float(curve.delta_star_err[-1])
    fine = np.empty(0)
    if refine and math.isfinite(value):
        low, high = _bracket(grid, scan[0][:, :, -1])
        fine = np.setdiff1d(np.linspace(low, high, refine + 2)[1:-1], grid)
    if fine.size:
        last = np.array([steps])
        extra = _scan(name, fine, last, eta, n_samples, (dimension,), n_response, seeds, device, quantile, reading)[dimension]
        merged = np.concatenate([grid, fine])
        order = np.argsort(merged)
        final_scan = tuple(np.concatenate([a[:, :, -1:], b], axis=1)[:, order] for a, b in zip(scan, extra))
        final = _curve(name, eta, merged[order], last, final_scan)
        value, uncertainty = float(final.delta_star[-1]), float(final.delta_star_err[-1])
    return Threshold(value, uncertainty, steps, curve)


def _bracket(grid: np.ndarray, has_outlier: np.ndarray) -> tuple[float, float]:
    """The widest grid interval (over seeds) containing the appearance of the outlier."""
    lows, highs = [], []
    for row in has_outlier:
        missing = np.flatnonzero(~row)
        lows.append(grid[missing[-1]] if missing.size else grid[0] / 2)
        highs.append(grid[min(missing[-1] + 1, grid.size - 1)] if missing.size else grid[0])
    return min(lows), max(highs)
