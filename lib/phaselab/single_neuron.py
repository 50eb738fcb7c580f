"""The single-neuron network of Wang and Montanari (slides), shared by both parts of Chapter 4.

Conventions (fixed here once, used by :mod:`phaselab.spectra` and :mod:`phaselab.dmft`):

- data: ``x ~ N(0, I_d)``, target ``theta_*`` a unit vector, phase retrieval ``y = (theta_* . x)^2``
  (noiseless, so ``V_* = theta_* . x ~ N(0, 1)``);
- network: ``f(x) = a * sigma(theta . x + b)`` with fixed ``a`` and ``b`` (slides: two-layer
  network with ``m = 1``; only ``theta`` is trained);
- loss: squared, ``l(y, yhat) = (y - yhat)^2 / 2``, so ``l' = yhat - y`` and ``l'' = 1`` (derivatives
  in ``yhat``); empirical risk ``(1/n) sum_i l(y_i, f(x_i))``;
- initialisation: ``theta(0)`` uniform on the unit sphere, so ``theta(0) . x ~ N(0, 1)``.

With these, the Hessian of the empirical risk is exactly
``H = (1/n) sum_i g(y_i, theta . x_i) x_i x_i^T`` with the weight function of the slides
``g(y, z) = a^2 l''(y, a sigma(z + b)) sigma'(z + b)^2 + a l'(y, a sigma(z + b)) sigma''(z + b)``.

The slides state neither ``a``, ``b``, nor whether the labels are centred.  A :class:`Reading`
fixes these choices: ``f(x) = a sigma(theta . x + b)`` and ``y = (theta_* . x)^2 - c`` with the label
shift ``c`` (``c = 1`` centres the labels, ``E[y] = 0``).  ``STANDARD`` (``a = 1, b = 0, c = 0``)
is the chapter's main reading; every function takes ``reading=`` to use another.

Functions accept NumPy arrays or torch tensors and return the same kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from phaselab import validation


@dataclass(frozen=True)
class Reading:
    """One reading of the slides' setup: ``f(x) = a sigma(theta . x + b)``, ``y = V_*^2 - c``.

    ``output_weight`` is ``a`` (nonzero), ``bias`` is ``b``, ``label_shift`` is ``c``.
    """

    output_weight: float = 1.0
    bias: float = 0.0
    label_shift: float = 0.0

    def __post_init__(self) -> None:
        for name in ("output_weight", "bias", "label_shift"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.output_weight == 0:
            raise ValueError("output_weight must be nonzero, got 0")


STANDARD = Reading()

ArrayLike = np.ndarray | torch.Tensor
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _normal_pdf(z: torch.Tensor) -> torch.Tensor:
    return _INV_SQRT_2PI * torch.exp(-0.5 * z * z)


def _normal_cdf(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.special.erf(z / math.sqrt(2.0)))


@dataclass(frozen=True)
class Activation:
    """An activation ``sigma`` with its first and second derivatives (torch implementations).

    ``jet(z)`` returns ``(sigma, sigma', sigma'')`` at once, sharing the special functions (for GeLU
    one ``erf`` and one ``exp`` instead of two of each).
    """

    name: str
    value: Callable[[torch.Tensor], torch.Tensor]
    first: Callable[[torch.Tensor], torch.Tensor]
    second: Callable[[torch.Tensor], torch.Tensor]
    jet: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def _gelu_jet(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    cdf, pdf = _normal_cdf(z), _normal_pdf(z)
    return z * cdf, cdf + z * pdf, pdf * (2.0 - z * z)


ACTIVATIONS: dict[str, Activation] = {
    # GeLU(z) = z Phi(z); GeLU' = Phi + z phi; GeLU'' = phi (2 - z^2).
    "gelu": Activation(
        "gelu",
        value=lambda z: z * _normal_cdf(z),
        first=lambda z: _normal_cdf(z) + z * _normal_pdf(z),
        second=lambda z: _normal_pdf(z) * (2.0 - z * z),
        jet=_gelu_jet,
    ),
    "quadratic": Activation(
        "quadratic",
        value=lambda z: z * z,
        first=lambda z: 2.0 * z,
        second=lambda z: 2.0 * torch.ones_like(z),
        jet=lambda z: (z * z, 2.0 * z, 2.0 * torch.ones_like(z)),
    ),
}


def activation(name: str) -> Activation:
    """Look up an activation by name (``"gelu"`` or ``"quadratic"``)."""
    return ACTIVATIONS[validation.one_of("activation", name, tuple(ACTIVATIONS))]


def _as_tensor(value: ArrayLike) -> tuple[torch.Tensor, bool]:
    if isinstance(value, torch.Tensor):
        return value, False
    return torch.as_tensor(np.asarray(value, dtype=float)), True


def _like_input(result: torch.Tensor, was_numpy: bool) -> ArrayLike:
    return result.numpy() if was_numpy else result


def network_output(preactivation: ArrayLike, name: str, reading: Reading = STANDARD) -> ArrayLike:
    """``a * sigma(z + b)`` for pre-activations ``z = theta . x``."""
    z, was_numpy = _as_tensor(preactivation)
    return _like_input(reading.output_weight * activation(name).value(z + reading.bias), was_numpy)


def gradient_weight(y: ArrayLike, preactivation: ArrayLike, name: str, reading: Reading = STANDARD) -> ArrayLike:
    """``a l'(y, f) sigma'(z + b)``: the empirical-risk gradient is ``(1/n) sum_i weight_i x_i``."""
    z, was_numpy = _as_tensor(preactivation)
    y_t, _ = _as_tensor(y)
    a, u = reading.output_weight, z + reading.bias
    value, first, _ = activation(name).jet(u)
    return _like_input(a * (a * value - y_t.to(z.dtype)) * first, was_numpy)


def hessian_weight(y: ArrayLike, preactivation: ArrayLike, name: str, reading: Reading = STANDARD) -> ArrayLike:
    """The weight ``g(y, z)`` of the slides: ``H = (1/n) sum_i g(y_i, z_i) x_i x_i^T``.

    ``g(y, z) = a^2 l'' sigma'(z + b)^2 + a l'(y, a sigma(z + b)) sigma''(z + b)`` with ``l'' = 1``.
    """
    z, was_numpy = _as_tensor(preactivation)
    y_t, _ = _as_tensor(y)
    a, u = reading.output_weight, z + reading.bias
    value, first, second = activation(name).jet(u)
    g = a**2 * first**2 + a * (a * value - y_t.to(z.dtype)) * second
    return _like_input(g, was_numpy)


def phase_retrieval_target(projection: ArrayLike, reading: Reading = STANDARD) -> ArrayLike:
    """``y = (theta_* . x)^2 - c`` from the projections ``theta_* . x`` (``c``: the label shift)."""
    v, was_numpy = _as_tensor(projection)
    return _like_input(v * v - reading.label_shift, was_numpy)


def sample_phase_retrieval(
    n: int, d: int, generator: torch.Generator, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
    reading: Reading = STANDARD,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``(X, y, theta_star)``: ``X`` is ``n x d`` standard Gaussian, ``theta_star`` a unit vector.

    ``generator`` must live on ``device``.
    """
    n = validation.integer("n", n, minimum=1)
    d = validation.integer("d", d, minimum=1)
    theta_star = torch.randn(d, generator=generator, dtype=dtype, device=device)
    theta_star = theta_star / theta_star.norm()
    x = torch.randn(n, d, generator=generator, dtype=dtype, device=device)
    return x, phase_retrieval_target(x @ theta_star, reading), theta_star


def random_unit_vector(d: int, generator: torch.Generator, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """``theta(0)``: uniform on the unit sphere of R^d."""
    d = validation.integer("d", d, minimum=1)
    theta = torch.randn(d, generator=generator, dtype=dtype, device=device)
    return theta / theta.norm()


def empirical_risk(x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, name: str, reading: Reading = STANDARD) -> torch.Tensor:
    """``(1/n) sum_i (y_i - f(x_i))^2 / 2``; ``theta`` may carry leading batch dimensions ``(..., d)``."""
    z = torch.einsum("nd,...d->...n", x, theta)
    return 0.5 * ((network_output(z, name, reading) - y) ** 2).mean(dim=-1)


def hessian(x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, name: str, reading: Reading = STANDARD) -> torch.Tensor:
    """The ``d x d`` Hessian ``(1/n) X^T diag(g) X`` of the empirical risk at ``theta``."""
    g = hessian_weight(y, x @ theta, name, reading)
    return (x.T * g) @ x / x.shape[0]
