"""Unit tests of phaselab.spectra against closed forms and limiting cases."""

import math

import numpy as np
import pytest

from phaselab import spectra


def test_spiked_covariance_closed_form_and_threshold():
    assert spectra.spiked_covariance_outlier(0.5, 0.25) is None  # at threshold sqrt(c) = 0.5
    eigenvalue, overlap = spectra.spiked_covariance_outlier(2.0, 0.25)
    assert eigenvalue == pytest.approx(3.0 * (1 + 0.125))
    assert overlap == pytest.approx((1 - 0.0625) / 1.125)


def test_marchenko_pastur_special_case():
    """G = 1: MP law with ratio c = 1/delta, left edge (1 - sqrt(c))^2, closed-form Stieltjes."""
    delta = 4.0
    c = 1.0 / delta
    assert spectra.gmp_left_edge(np.ones(3), delta) == pytest.approx((1 - math.sqrt(c)) ** 2, rel=1e-9)
    z = 0.5 + 0.3j
    m = spectra.gmp_stieltjes(np.array([z]), np.ones(1), delta)[0]
    # MP: c z m^2 - (1 - c - z) m + 1 = 0 with Im m > 0
    assert abs(c * z * m * m - (1 - c - z) * m + 1) < 1e-9 and m.imag > 0
    x = np.linspace(0.2, 2.4, 2001)
    density = spectra.gmp_density(x, np.ones(1), delta, eta=1e-6)
    lo, hi = (1 - math.sqrt(c)) ** 2, (1 + math.sqrt(c)) ** 2
    exact = np.sqrt(np.clip((hi - x) * (x - lo), 0, None)) / (2 * math.pi * c * x)
    assert np.max(np.abs(density - exact)) < 1e-2


def test_real_stieltjes_inverts_equation():
    weights = np.array([-1.0, 2.0])
    edge = spectra.gmp_left_edge(weights, 3.0)
    m = spectra.gmp_stieltjes(np.array([edge - 1.0]), weights, 3.0)[0]
    assert spectra.gmp_inverse(m, spectra.weight_law(weights), 3.0) == pytest.approx(edge - 1.0)
    with pytest.raises(ValueError, match="left edge"):
        spectra.gmp_stieltjes(np.array([edge + 0.1]), weights, 3.0)


def test_no_outlier_when_weights_ignore_the_signal():
    rng = np.random.default_rng(0)
    v = rng.standard_normal(20000)
    assert spectra.outlier(np.full(v.size, 2.0), v, 3.0) is None
    assert spectra.outlier(rng.choice([-1.0, 2.0], v.size), v, 3.0) is None


def test_outlier_large_delta_limit():
    """delta -> inf: H -> E[G] I + (E[G V^2] - E[G]) theta theta^T, outlier at E[G V^2], overlap 1."""
    v = np.sort(np.random.default_rng(1).standard_normal(50000))
    weights = 1.0 - np.minimum(v * v, 4.0)
    result = spectra.outlier(weights, v, 1e6)
    assert result.location == pytest.approx(np.mean(weights * v * v), abs=1e-4)
    assert result.overlap_squared == pytest.approx(1.0, abs=1e-4)


def test_optimal_preprocessing_threshold_is_one_half():
    assert spectra.spectral_threshold(lambda y: 1.0 - 1.0 / y) == pytest.approx(0.5, abs=1e-3)
    result = spectra.spectral_outlier(lambda y: 1.0 - 1.0 / y, 2.0)
    assert result.location == pytest.approx(0.5, abs=1e-4)  # top eigenvalue 1/delta


def test_unbounded_preprocessing_has_no_threshold():
    assert spectra.spectral_threshold(lambda y: y) == math.inf
    assert spectra.outlier(np.array([-1.0, 1.0]), np.array([1.0, 1.0]), 2.0, support_min=-math.inf) is None


def test_threshold_generic_matches_spectral():
    law = spectra.phase_retrieval_law(lambda y: np.minimum(y, 3.0))
    assert spectra.threshold(lambda delta: law) == pytest.approx(spectra.spectral_threshold(lambda y: np.minimum(y, 3.0)))
    # The (weights, signal, probabilities) branch: the same law as samples with explicit probabilities.
    signal = np.sqrt(law.signal_squared)
    generic = spectra.threshold(lambda delta: (law.values, signal, law.probabilities))
    assert generic == pytest.approx(spectra.spectral_threshold(lambda y: np.minimum(y, 3.0)), rel=1e-6)
    # and with non-uniform probabilities: every other node split into two atoms of half its weight
    # (the same law, so the same threshold).
    split = np.concatenate([law.probabilities[::2] / 2, law.probabilities[1::2], law.probabilities[::2] / 2])
    values = np.concatenate([law.values[::2], law.values[1::2], law.values[::2]])
    signals = np.concatenate([signal[::2], signal[1::2], signal[::2]])
    assert spectra.threshold(lambda delta: (values, signals, split)) == pytest.approx(generic, rel=1e-6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: spectra.spiked_covariance_outlier(-1.0, 0.5), "spike must be >= 0"),
        (lambda: spectra.spiked_covariance_outlier(1.0, 0.0), "ratio must be > 0"),
        (lambda: spectra.gmp_left_edge(np.ones(3), -1.0), "delta must be > 0"),
        (lambda: spectra.outlier(np.ones(3), np.ones(2), 1.0), "signal must have the shape"),
        (lambda: spectra.outlier(np.array([1.0, np.nan]), np.ones(2), 1.0), "weights must have finite"),
        (lambda: spectra.spectral_threshold("identity"), "preprocess must be a vectorised callable"),
        (lambda: spectra.spectral_threshold(lambda y: np.where(y > 1.0, 0.0, np.nan)), "preprocess must return finite"),
        (lambda: spectra.gmp_stieltjes(np.array([1.0 - 1.0j]), np.ones(2), 1.0), "Im z > 0"),
        (lambda: spectra.threshold(lambda d: None, delta_min=2.0, delta_max=1.0), "delta_max must exceed"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
