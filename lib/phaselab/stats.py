"""Small statistical tools shared by the chapters: fits with uncertainties and standard errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phaselab import config, validation


@dataclass(frozen=True)
class LinearFit:
    """Result of a straight-line fit ``y = slope * x + intercept``.

    ``slope_err`` and ``intercept_err`` are one-standard-error uncertainties; ``r_squared`` is the
    coefficient of determination; ``chi2_dof`` is the reduced chi-square when errors were given
    (``nan`` otherwise).
    """

    slope: float
    intercept: float
    slope_err: float
    intercept_err: float
    r_squared: float
    chi2_dof: float


def linear_fit(x: np.ndarray, y: np.ndarray, y_err: np.ndarray | None = None) -> LinearFit:
    """Least-squares line through ``(x, y)``, weighted by ``1 / y_err**2`` when errors are given.

    Without ``y_err`` the parameter errors come from the residual scatter; with ``y_err`` they are
    the standard errors implied by the given errors (not rescaled by the reduced chi-square).
    """
    x = validation.finite_array("x", x, ndim=1)
    y = validation.finite_array("y", y, ndim=1)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    if x.size < 3:
        raise ValueError(f"x must have at least 3 points for a fit with errors, got {x.size}")
    if y_err is None:
        weights = np.ones_like(x)
    else:
        y_err = validation.finite_array("y_err", y_err, ndim=1, positive_entries=True)
        if y_err.shape != x.shape:
            raise ValueError(f"y_err must have the shape of x, got {y_err.shape}")
        weights = 1.0 / y_err**2
    design = np.stack([x, np.ones_like(x)], axis=1)
    normal = design.T @ (design * weights[:, None])
    coef = np.linalg.solve(normal, design.T @ (weights * y))
    residual = y - design @ coef
    cov = np.linalg.inv(normal)
    dof = x.size - 2
    chi2 = float(np.sum(weights * residual**2))
    if y_err is None:
        cov = cov * chi2 / dof
    total = float(np.sum((y - np.mean(y)) ** 2))
    r_squared = 1.0 - float(np.sum(residual**2)) / total if total > 0 else 1.0
    return LinearFit(
        slope=float(coef[0]),
        intercept=float(coef[1]),
        slope_err=float(np.sqrt(cov[0, 0])),
        intercept_err=float(np.sqrt(cov[1, 1])),
        r_squared=r_squared,
        chi2_dof=chi2 / dof if y_err is not None else float("nan"),
    )


def mean_and_sem(samples: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and its standard error along ``axis``."""
    samples = np.asarray(samples, dtype=float)
    count = samples.shape[axis]
    if count < 2:
        raise ValueError(f"samples must have at least 2 entries along axis {axis}, got {count}")
    return samples.mean(axis=axis), samples.std(axis=axis, ddof=1) / np.sqrt(count)


def binomial_sem(fraction: np.ndarray | float, count: int) -> np.ndarray:
    """Standard error of a fraction estimated from ``count`` Bernoulli trials.

    Uses ``sqrt(p (1 - p) / count)`` with ``p`` clipped to ``[1/(2 count), 1 - 1/(2 count)]`` so
    that a fraction of exactly 0 or 1 still gets a non-zero error.
    """
    count = validation.integer("count", count, minimum=1)
    p = np.clip(np.asarray(fraction, dtype=float), 0.5 / count, 1 - 0.5 / count)
    return np.sqrt(p * (1 - p) / count)


@dataclass(frozen=True)
class GoodnessOfFit:
    """A chi-square test of a theory against measurements with standard errors.

    ``chi2`` is the sum of squared standardised residuals, ``dof`` the degrees of freedom (points
    minus fitted parameters), ``p_value`` the upper-tail probability of ``chi2`` under the theory,
    ``beyond`` how many points lie more than ``sigmas`` standard errors away.
    """

    chi2: float
    dof: int
    p_value: float
    beyond: int
    sigmas: float

    @property
    def reduced_chi2(self) -> float:
        return self.chi2 / self.dof


def goodness_of_fit(measured: np.ndarray, predicted: np.ndarray, sem: np.ndarray, *, fitted_parameters: int = 0,
                    sigmas: float = 4.0) -> GoodnessOfFit:
    """Chi-square of ``measured`` against ``predicted`` with standard errors ``sem``.

    The same test serves every theory the book compares (a paper's and the book's own), so that
    competing theories are judged alike.  Raises ``ValueError`` for non-positive errors, shapes
    that differ, or no degree of freedom left.
    """
    from scipy import stats as scipy_stats

    measured, predicted, sem = (np.asarray(a, dtype=float).ravel() for a in (measured, predicted, sem))
    if not (measured.shape == predicted.shape == sem.shape):
        raise ValueError(f"measured, predicted and sem must have one shape, got {measured.shape}, "
                         f"{predicted.shape}, {sem.shape}")
    if not np.all(np.isfinite(sem) & (sem > 0)) and config.statistics_checked():
        raise ValueError("sem must be finite and > 0 everywhere")
    dof = measured.size - int(fitted_parameters)
    if dof < 1:
        raise ValueError(f"fitted_parameters must leave at least one degree of freedom, got {fitted_parameters} "
                         f"for {measured.size} points")
    with np.errstate(divide="ignore", invalid="ignore"):  # only reached with a bad sem at the smoke scale
        z = (measured - predicted) / sem
    chi2 = float(np.sum(z**2))
    return GoodnessOfFit(chi2, dof, float(scipy_stats.chi2.sf(chi2, dof)), int(np.sum(np.abs(z) > sigmas)), sigmas)
