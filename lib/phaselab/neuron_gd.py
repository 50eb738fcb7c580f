"""Finite-size full-batch gradient descent on the single neuron of Chapter 4, batched.

One tensor program runs ``seeds x deltas`` gradient-descent trajectories at dimension ``d``: each
seed draws one data set of ``n_max = max(delta) d`` samples and one ``theta_*``, and the run at a
ratio ``delta`` uses its first ``delta d`` rows (nested data sets: runs at different ``delta`` of the
same seed share data, runs of different seeds are independent; call once per ``delta`` with
different ``seed`` for independent data at each ratio).  Conventions are those of
:mod:`phaselab.single_neuron` (same data, network, loss, initialisation, step size as
:mod:`phaselab.dmft`), with the reading of the slides' setup given by ``reading``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from phaselab import config, dmft, single_neuron, validation


@dataclass(frozen=True)
class GDRuns:
    """Trajectories of ``seeds x deltas`` runs; arrays are ``(seeds, deltas, steps + 1)``.

    ``overlap`` is ``theta . theta_*``, ``cosine`` is ``overlap / |theta|``; ``test_risk`` is the exact
    population risk of ``theta(t)``.  ``preactivations[t]`` holds, for each recorded step ``t``, a list
    over deltas of ``(seeds, n)`` arrays of ``theta(t) . x_i`` on the training points.
    ``hessian[t]`` holds ``(eigenvalues, overlaps_squared)`` of the ``count`` smallest Hessian
    eigenvalues, arrays ``(seeds, deltas, count)``.
    """

    activation: str
    d: int
    deltas: np.ndarray
    eta: float
    reading: single_neuron.Reading
    train_risk: np.ndarray
    test_risk: np.ndarray
    norm: np.ndarray
    overlap: np.ndarray
    preactivations: dict[int, list[np.ndarray]] = field(default_factory=dict)
    hessian: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def cosine(self) -> np.ndarray:
        return self.overlap / self.norm


def simulate_gd(
    activation: str,
    deltas,
    d: int,
    steps: int,
    eta: float | None = None,
    seeds: int = 4,
    seed: int = 0,
    *,
    record_preactivations: tuple[int, ...] = (),
    hessian_steps: tuple[int, ...] = (),
    hessian_count: int = 2,
    hessian_deltas: list[float] | tuple[float, ...] | None = None,
    project_out_target: bool | tuple[bool, ...] = False,
    reading: single_neuron.Reading = single_neuron.STANDARD,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> GDRuns:
    """Run full-batch GD ``theta(t+1) = theta(t) - eta grad Risk`` for every seed and ``delta``.

    ``record_preactivations`` lists steps at which ``theta(t) . x_i`` is stored; ``hessian_steps``
    steps at which the ``hessian_count`` smallest eigenpairs of the Hessian are computed (dense, so
    keep ``d`` moderate there), for the runs whose ratio is in ``hessian_deltas`` (default: all;
    ``nan`` for the others).  ``project_out_target`` (one flag, or one per ``delta``) removes the
    ``theta_*`` component of ``theta`` after every step: the finite-``d`` dynamics with the
    ``d -> infinity`` value ``theta . theta_* = 0`` that DMFT describes (no escape along ``theta_*``).
    ``reading`` fixes ``a``, ``b`` and the label shift (:class:`phaselab.single_neuron.Reading`).
    """
    if not isinstance(reading, single_neuron.Reading):
        raise ValueError(f"reading must be a phaselab.single_neuron.Reading, got {type(reading).__name__}")
    name = single_neuron.activation(activation).name
    delta_arr = validation.finite_array("deltas", np.atleast_1d(np.asarray(deltas, dtype=float)), ndim=1, positive_entries=True)
    d = validation.integer("d", d, minimum=4)
    steps = validation.integer("steps", steps, minimum=0)
    eta = dmft.step_size(name, eta)
    seeds = validation.integer("seeds", seeds, minimum=1)
    seed = validation.integer("seed", seed, minimum=0)
    for t in (*record_preactivations, *hessian_steps):
        validation.integer("recorded step", t, minimum=0, maximum=steps)
    if hessian_deltas is None:
        hessian_runs = np.arange(delta_arr.size)
    else:
        wanted = validation.finite_array("hessian_deltas", np.atleast_1d(np.asarray(hessian_deltas, dtype=float)), ndim=1)
        missing = wanted[~np.isin(wanted, delta_arr)]
        if missing.size:
            raise ValueError(f"hessian_deltas must be among deltas {delta_arr.tolist()}, got {missing.tolist()}")
        hessian_runs = np.flatnonzero(np.isin(delta_arr, wanted))
    dev = config.resolve_device(device)
    flags = np.broadcast_to(np.asarray(project_out_target, dtype=bool), delta_arr.shape).copy()
    gen = config.torch_generator(seed, dev)
    sizes = np.maximum(1, np.round(delta_arr * d).astype(int))
    n_max = int(sizes.max())
    act = single_neuron.activation(name)
    x = torch.randn(seeds, n_max, d, generator=gen, dtype=dtype, device=dev)
    theta_star = torch.randn(seeds, d, generator=gen, dtype=dtype, device=dev)
    theta_star = theta_star / theta_star.norm(dim=1, keepdim=True)
    y = single_neuron.phase_retrieval_target(torch.einsum("snd,sd->sn", x, theta_star), reading)
    theta = torch.randn(seeds, d, generator=gen, dtype=dtype, device=dev)
    projected = torch.as_tensor(flags, device=dev, dtype=dtype)[None, :, None]
    theta = _remove_target(theta[:, None, :].repeat(1, delta_arr.size, 1), theta_star, projected)  # (seeds, deltas, d)
    theta = theta / theta.norm(dim=-1, keepdim=True)
    counts = torch.as_tensor(sizes, device=dev, dtype=dtype)
    shape = (seeds, delta_arr.size, steps + 1)
    # Per-step scalars stay on the device and are copied to the host once (no sync per step).
    train, norm, overlap = (torch.zeros(shape, dtype=dtype, device=dev) for _ in range(3))
    preacts: dict[int, list[np.ndarray]] = {}
    hessians: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    weight = torch.zeros(seeds, delta_arr.size, n_max, dtype=dtype, device=dev)  # rows beyond n(delta) stay 0
    for t in range(steps + 1):
        # (seeds, deltas, n_max); one pass over the data, with x as the left (row-major) operand:
        # about twice as fast on the CPU as bmm(theta, x^T), which strides across x
        z = torch.bmm(x, theta.transpose(1, 2)).transpose(1, 2)
        norm[:, :, t] = theta.norm(dim=-1)
        overlap[:, :, t] = torch.einsum("skd,sd->sk", theta, theta_star)
        for j, n in enumerate(sizes):  # elementwise work only on each run's own n rows
            u = z[:, j, :n].contiguous() + reading.bias
            value, first, _ = act.jet(u)
            residual = reading.output_weight * value - y[:, :n]
            train[:, j, t] = (0.5 * residual**2).mean(-1)
            if t < steps:
                weight[:, j, :n] = reading.output_weight * residual * first
        if t in record_preactivations:
            preacts[t] = [z[:, j, : sizes[j]].cpu().numpy() for j in range(delta_arr.size)]
        if t in hessian_steps:
            hessians[t] = _hessian_extremes(x, y, z, theta_star, sizes, name, hessian_count, hessian_runs, reading)
        if t < steps:
            theta = theta - eta * torch.bmm(weight, x) / counts[None, :, None]
            theta = _remove_target(theta, theta_star, projected)
    train, norm, overlap = (a.double().cpu().numpy() for a in (train, norm, overlap))
    test = dmft.population_risk(name, norm**2, overlap, reading)
    return GDRuns(name, d, delta_arr, eta, reading, train, test, norm, overlap, preacts, hessians)


def _remove_target(theta: torch.Tensor, theta_star: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
    """Remove the ``theta_*`` component of the runs flagged in ``projected`` (``(1, deltas, 1)``)."""
    along = torch.einsum("skd,sd->sk", theta, theta_star)[:, :, None] * theta_star[:, None, :]
    return theta - projected * along


def _hessian_extremes(x, y, z, theta_star, sizes, name: str, count: int, runs: np.ndarray,
                      reading: single_neuron.Reading = single_neuron.STANDARD) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` smallest Hessian eigenvalues and their squared overlaps with ``theta_*``.

    The Hessian ``(1/n) X^T diag(g) X`` is formed densely in float64 and diagonalised for the
    delta indices ``runs``; the other entries are ``nan``.
    """
    seeds, n_deltas = z.shape[0], z.shape[1]
    values = np.full((seeds, n_deltas, count), np.nan)
    overlaps = np.full_like(values, np.nan)
    for s in range(seeds):
        xs = x[s].double()
        for j in runs:
            n = int(sizes[j])
            g = single_neuron.hessian_weight(y[s, :n].double(), z[s, j, :n].double(), name, reading)
            hess = (xs[:n].T * g) @ xs[:n] / n
            evals, evecs = torch.linalg.eigh(hess)
            values[s, j] = evals[:count].cpu().numpy()
            overlaps[s, j] = ((theta_star[s].double() @ evecs[:, :count]) ** 2).cpu().numpy()
    return values, overlaps


def split_runs(runs: GDRuns, first: int) -> tuple[GDRuns, GDRuns]:
    """Split a batch along the ``delta`` axis into runs ``[:first]`` and ``[first:]``."""
    first = validation.integer("first", first, minimum=1, maximum=runs.deltas.size - 1)
    parts = []
    for cut in (slice(None, first), slice(first, None)):
        parts.append(
            GDRuns(
                runs.activation, runs.d, runs.deltas[cut], runs.eta, runs.reading,
                runs.train_risk[:, cut], runs.test_risk[:, cut], runs.norm[:, cut], runs.overlap[:, cut],
                {t: v[cut] for t, v in runs.preactivations.items()},
                {t: (v[0][:, cut], v[1][:, cut]) for t, v in runs.hessian.items()},
            )
        )
    return parts[0], parts[1]


@dataclass(frozen=True)
class Crossing:
    """Where a success fraction crosses 1/2: ``value`` with its standard error ``error``.

    From the binomial maximum-likelihood fit of ``p(delta) = 1 / (1 + (delta / value)^(-slope))``
    (a logistic curve in ``log delta``); ``error`` comes from the inverse Fisher information.
    """

    value: float
    error: float
    slope: float


def success_crossing(deltas, successes, trials) -> Crossing:
    """Fit the success fraction ``successes / trials`` at ratios ``deltas`` and locate its 1/2 crossing.

    ``successes`` and ``trials`` are counts per ratio (independent runs: binomial errors).  Every
    point enters the fit, so the crossing does not hinge on the two grid points that bracket it.
    Half a success and half a failure are added at every ratio (the Jeffreys prior of a binomial
    fraction): without them a jump from 0 to 1 between two grid points would send the fitted slope,
    and the error of the crossing, to infinity.
    Raises ``ValueError`` when the fractions do not pass from below 1/2 to above it.
    """
    from scipy import optimize

    x = np.log(validation.finite_array("deltas", np.asarray(deltas, dtype=float), ndim=1, positive_entries=True))
    k = validation.finite_array("successes", np.asarray(successes, dtype=float), ndim=1)
    m = validation.finite_array("trials", np.asarray(trials, dtype=float), ndim=1, positive_entries=True)
    if not (x.shape == k.shape == m.shape) or x.size < 3:
        raise ValueError(f"deltas, successes and trials must share one shape with >= 3 entries, got {x.shape}, {k.shape}, {m.shape}")
    if np.any((k < 0) | (k > m)):
        raise ValueError("successes must lie in [0, trials]")
    fraction = k / m
    if not (fraction.min() < 0.5 < fraction.max()):
        raise ValueError(f"successes / trials must pass through 1/2, got fractions {np.round(fraction, 2).tolist()}")

    k, m = k + 0.5, m + 1.0  # Jeffreys pseudo-counts

    def nll(params: np.ndarray) -> float:
        centre, slope = params
        logits = slope * (x - centre)
        return float(np.sum(m * np.logaddexp(0.0, logits) - k * logits))

    start = np.array([x[np.argmin(np.abs(fraction - 0.5))], 3.0])
    fit = optimize.minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
    centre, slope = fit.x
    p = 1.0 / (1.0 + np.exp(-slope * (x - centre)))
    w = m * p * (1 - p)  # Fisher information of the logistic model
    info = np.array([[slope**2 * w.sum(), -slope * np.sum(w * (x - centre))],
                     [-slope * np.sum(w * (x - centre)), np.sum(w * (x - centre) ** 2)]])
    var_centre = float(np.linalg.inv(info)[0, 0])
    value = float(np.exp(centre))
    return Crossing(value, value * math.sqrt(var_centre), float(slope))
