"""Unit tests of phaselab.linear_nets against closed forms, limiting cases and each other."""

import math

import numpy as np
import pytest

from phaselab import linear_nets as ln


@pytest.mark.parametrize("depth", [3, 4, 6])
@pytest.mark.parametrize("eta", [0.5, 0.8, 1.7])
def test_critical_beta_is_where_saddle_and_minimum_merge(eta, depth):
    beta_c = ln.critical_beta(eta, depth)
    lam_c = ln.critical_lambda(eta, depth)
    # Eq. (2) and its derivative vanish together at (lambda_c, beta_c).
    assert ln.mode_gradient(lam_c, eta, beta_c, depth) == pytest.approx(0.0, abs=1e-12)
    assert 1 + beta_c * (2 / depth - 1) * lam_c ** (2 / depth - 2) == pytest.approx(0.0, abs=1e-12)
    below = ln.stationary_points(eta, beta_c * (1 - 1e-6), depth)
    assert below is not None and below[0] < lam_c < below[1]
    assert ln.stationary_points(eta, beta_c * (1 + 1e-6), depth) is None
    assert ln.barrier(eta, beta_c * (1 + 1e-6), depth) is None


def test_depth_three_closed_forms():
    # L = 3: beta_c = 3 (eta/4)^(4/3), beta* = eta^(4/3) / 2^(4/3), lambda* = eta / 2.
    for eta in (0.9, 0.8):
        assert ln.critical_beta(eta, 3) == pytest.approx(3 * (eta / 4) ** (4 / 3), rel=1e-14)
        assert ln.equal_loss_beta(eta, 3) == pytest.approx(0.5 * 0.5 ** (1 / 3) * eta ** (4 / 3), rel=1e-14)
    assert ln.critical_beta(0.9, 3) == pytest.approx(0.41055, abs=1e-5)
    assert ln.critical_beta(0.8, 3) == pytest.approx(0.35088, abs=1e-5)


@pytest.mark.parametrize("depth", [3, 5])
def test_equal_loss_beta_equalises_losses(depth):
    eta = 0.8
    beta_star = ln.equal_loss_beta(eta, depth)
    _, minimum = ln.stationary_points(eta, beta_star, depth)
    assert minimum == pytest.approx(eta * (depth - 2) / (depth - 1), rel=1e-10)
    assert ln.mode_loss(minimum, eta, beta_star, depth) == pytest.approx(ln.mode_loss(0.0, eta, beta_star, depth), abs=1e-13)
    assert beta_star < ln.critical_beta(eta, depth)


def test_stationary_points_solve_eq2_and_barrier_is_eq10():
    eta, beta, depth = 0.8, 0.32, 3
    saddle, minimum = ln.stationary_points(eta, beta, depth)
    for lam in (saddle, minimum):
        assert ln.mode_gradient(lam, eta, beta, depth) == pytest.approx(0.0, abs=1e-13)
    eq10 = 0.5 * (saddle - eta) ** 2 + 1.5 * beta * saddle ** (2 / 3) - 0.5 * eta**2
    assert ln.barrier(eta, beta, depth) == pytest.approx(eq10, rel=1e-12)
    assert saddle == pytest.approx(0.0925, abs=1e-4) and ln.barrier(eta, beta, depth) == pytest.approx(0.0285, abs=1e-4)
    # The barrier vanishes as beta -> 0 like beta^3 / (2 eta^2).
    small = 1e-3
    assert ln.barrier(eta, small, depth) == pytest.approx(small**3 / (2 * eta**2), rel=1e-2)


def test_low_depth_limits():
    assert ln.critical_beta(0.7, 2) == 0.7 and ln.equal_loss_beta(0.7, 2) == 0.7
    assert math.isinf(ln.critical_beta(0.7, 1)) and math.isinf(ln.equal_loss_beta(0.7, 1))
    # Eq. (3) tends to eta as L -> 2 from above (k -> 1).
    k = 1 - 1e-7
    assert (0.7 * (1 - k) / (2 - k)) ** (2 - k) / (1 - k) == pytest.approx(0.7, rel=1e-5)
    with pytest.raises(ValueError, match="depth must be >= 3"):
        ln.stationary_points(0.7, 0.1, 2)


def test_global_rank_and_metastable_ranks():
    etas = np.array([0.9, 0.8])
    assert ln.global_rank(etas, 0.32, 3) == 1
    assert ln.global_rank(etas, 0.2, 3) == 2 and ln.global_rank(etas, 0.5, 3) == 0
    assert ln.metastable_ranks(etas, 0.32, 3) == [0, 1, 2]
    assert ln.balanced_rank_loss(etas, [True, False], 0.32, 3) < ln.balanced_rank_loss(etas, [True, True], 0.32, 3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ln.critical_beta(0.0, 3), "eta must be > 0"),
        (lambda: ln.critical_beta(-1.0, 3), "eta must be > 0"),
        (lambda: ln.critical_beta(float("nan"), 3), "eta must be finite"),
        (lambda: ln.critical_beta(0.8, 0), "depth must be >= 1"),
        (lambda: ln.critical_beta(0.8, 3.0), "depth must be an integer"),
        (lambda: ln.equal_loss_beta(0.8, 2.5), "depth must be an integer"),
        (lambda: ln.stationary_points(0.8, -0.1, 3), "beta must be >= 0"),
        (lambda: ln.stationary_points(0.8, float("inf"), 3), "beta must be finite"),
        (lambda: ln.barrier(0.8, 0.3, 0), "depth must be >= 1"),
        (lambda: ln.mode_loss(-0.1, 0.8, 0.3, 3), "lam must have entries >= 0"),
        (lambda: ln.effective_loss(1.0, -0.1, 1, ln.Moments(np.ones(2), np.ones(2), 1.0)), "gamma must be >= 0"),
    ],
)
def test_invalid_input_names_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_whitened_data_has_exact_moments():
    x, y = ln.whitened_data(64, [0.9, 0.8], 5, seed=3)
    n = x.shape[0]
    np.testing.assert_allclose(x.T @ x / n, np.eye(5), atol=1e-12)
    np.testing.assert_allclose(y.T @ x / n, ln.cross_covariance([0.9, 0.8], 5), atol=1e-12)
    np.testing.assert_allclose(y.T @ y / n, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(ln.effective_singular_values(x, y), [0.9, 0.8], atol=1e-12)
    with pytest.raises(ValueError, match="n must be >= d_in"):
        ln.whitened_data(6, [0.9, 0.8], 5, seed=0)


def test_gaussian_data_moments_converge():
    x, y = ln.gaussian_data(20000, [0.9, 0.8], 3, seed=0)
    assert np.max(np.abs(ln.effective_singular_values(x, y) - [0.9, 0.8])) < 0.03


def _moments(seed=1, d=6, n=300):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * np.linspace(0.5, 1.5, d)
    y = x @ rng.standard_normal(d) * 0.2 + 0.5 * rng.standard_normal(n)
    return ln.regression_moments(x, y), x, y


def test_effective_loss_matches_explicit_network_loss():
    # One hidden layer on the path of Eq. (B16): U = sqrt(d0) b r, W = r u^T with u the ridge solution.
    moments, x, y = _moments()
    d0, b, gamma = 4, 0.11, 0.2
    s = d0 * b
    a_mat = x.T @ x / x.shape[0]
    c = x.T @ y / x.shape[0]
    r = np.ones(d0)
    u = np.sqrt(d0) * b * np.linalg.solve(s**2 * a_mat + gamma * np.eye(a_mat.shape[0]), c)
    U, W = np.sqrt(d0) * b * r, np.outer(r, u)
    f = x @ W.T @ U
    explicit = np.mean((f - y) ** 2) + gamma * (U @ U + np.sum(W**2))
    assert ln.effective_loss(s, gamma, 1, moments) == pytest.approx(explicit, rel=1e-12)


def test_one_hidden_layer_transition_at_signal():
    moments, _, _ = _moments()
    gamma_c = moments.signal
    assert ln.effective_global_minimum(gamma_c * 1.01, 1, moments)[0] == 0.0
    s_below = ln.effective_global_minimum(gamma_c * 0.99, 1, moments)[0]
    assert s_below > 0
    # Landau amplitude: s^2 ~ (gamma_c - gamma) E0^2 / E1^2.
    predicted = 0.01 * gamma_c * moments.signal**2 / np.sum(moments.a * moments.c**2)
    assert s_below**2 == pytest.approx(predicted, rel=0.03)


def test_two_hidden_layers_first_order_and_lemma1():
    moments, _, _ = _moments()
    gamma_star = ln.first_order_point(2, moments)
    learned = [m for m in ln.effective_minima(gamma_star, 2, moments) if m[0] > 0]
    assert learned and learned[0][1] == pytest.approx(moments.y2, abs=1e-9)
    assert ln.effective_minima(gamma_star, 2, moments)[0][0] == 0.0  # origin is a local minimum
    assert ln.spinodal_point(2, moments) > gamma_star
    # Lemma 1: dL/dgamma equals the regulariser at the minimum.
    gamma, h = 0.8 * gamma_star, 1e-5
    s = ln.effective_global_minimum(gamma, 2, moments)[0]
    derivative = (ln.effective_global_minimum(gamma + h, 2, moments)[1] - ln.effective_global_minimum(gamma - h, 2, moments)[1]) / (2 * h)
    assert derivative == pytest.approx(float(ln.regularisation_at(s, gamma, 2, moments)), rel=1e-5)


@pytest.mark.parametrize("depth", [1, 2])
def test_power_two_profile_agrees_with_eq6(depth):
    moments, _, _ = _moments()
    for gamma in (0.05, 0.1):
        s_eq6, loss_eq6 = ln.effective_global_minimum(gamma, depth, moments)
        s_prof, loss_prof = ln.power_regularised_minimum(gamma, depth, moments, 2.0)
        assert loss_prof == pytest.approx(loss_eq6, abs=1e-10)
        assert s_prof == pytest.approx(s_eq6, rel=1e-5, abs=1e-6)


def test_ridge_loss_is_depth_zero_limit():
    moments, x, y = _moments()
    gamma = 0.3
    a_mat = x.T @ x / x.shape[0]
    c = x.T @ y / x.shape[0]
    w = np.linalg.solve(a_mat + gamma * np.eye(a_mat.shape[0]), c)
    assert ln.ridge_loss(gamma, moments) == pytest.approx(np.mean((x @ w - y) ** 2) + gamma * w @ w, rel=1e-12)
    assert ln.ridge_regularisation(gamma, moments) == pytest.approx(w @ w, rel=1e-12)


@pytest.mark.parametrize("depth, gamma", [(10, 0.036), (16, 0.03)])
def test_deep_effective_minima_match_dense_minimisation(depth, gamma):
    # For many hidden layers the learned minimum sits far out in s; every local minimum of Eq. (6)
    # found on a dense grid reaching well past the stationary-point bound must be found.
    moments, _, _ = _moments()
    bound = math.sqrt(np.sum(moments.c**2 / moments.a) / (4 * gamma))
    s = np.linspace(0.0, 3 * bound, 300_001)
    values = ln.effective_loss(s, gamma, depth, moments)
    inner = np.flatnonzero((values[1:-1] < values[:-2]) & (values[1:-1] < values[2:])) + 1
    dense = s[inner]
    assert dense.size >= 1 and np.all(dense <= bound)
    found = [m for m in ln.effective_minima(gamma, depth, moments) if m[0] > 0]
    assert [m[0] for m in found] == pytest.approx(list(dense), abs=2 * (s[1] - s[0]))
    # The refined minima are at least as low as the best grid point next to them.
    assert np.all(np.array([m[1] for m in found]) <= values[inner] + 1e-12)


@pytest.mark.parametrize("sigma2", [0.0, 8.0])
def test_one_layer_order_parameter_solves_eq6_and_expands_as_landau(sigma2):
    moments, _, _ = _moments()
    width = 4
    gamma_c = moments.signal
    assert ln.one_layer_order_parameter(gamma_c * 1.01, moments, sigma2=sigma2, width=width) == 0.0
    gamma = 0.9 * gamma_c
    s2 = ln.one_layer_order_parameter(gamma, moments, sigma2=sigma2, width=width)
    s_eq6 = ln.effective_global_minimum(gamma, 1, moments, sigma2=sigma2, width=width)[0]
    assert s2 == pytest.approx(s_eq6**2, rel=1e-6)
    # (p1, p2) against a cubic fit of the exact root close to gamma_c.
    p1, p2 = ln.landau_coefficients(moments, sigma2=sigma2, width=width)
    delta = -np.linspace(1e-4, 1e-3, 10)
    roots = [ln.one_layer_order_parameter(gamma_c + d, moments, sigma2=sigma2, width=width) for d in delta]
    coef = np.linalg.lstsq(np.stack([delta, delta**2, delta**3], axis=1), roots, rcond=None)[0]
    assert coef[0] == pytest.approx(p1, rel=1e-6)
    assert coef[1] == pytest.approx(p2, rel=1e-3)
    assert ln.landau_amplitude(moments, width, sigma2=sigma2) == pytest.approx(-p1 / width**2, rel=1e-12)


def test_curvature_jump_is_second_derivative_of_eq6():
    moments, _, _ = _moments()
    h = 1e-4
    gammas = moments.signal - h * np.array([2.0, 3.0, 4.0])
    values = [ln.effective_loss(math.sqrt(ln.one_layer_order_parameter(g, moments, sigma2=2.0, width=4)), g, 1,
                                moments, sigma2=2.0, width=4) for g in gammas]
    second = (values[0] - 2 * values[1] + values[2]) / h**2
    assert second == pytest.approx(ln.curvature_jump(moments, sigma2=2.0, width=4), rel=0.01)
    # Their Eq. (B47) is half of it.
    assert ln.curvature_jump(moments) == pytest.approx(-2 * moments.signal**2 / moments.signal_a0**2, rel=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: ln.one_layer_order_parameter(0.0, m), "gamma must be > 0"),
        (lambda m: ln.one_layer_order_parameter(0.1, m, sigma2=-1.0), "sigma2 must be >= 0"),
        (lambda m: ln.landau_coefficients(m, width=0), "width must be >= 1"),
        (lambda m: ln.landau_amplitude(m, 0), "width must be >= 1"),
        (lambda m: ln.curvature_jump(m, sigma2=-0.5), "sigma2 must be >= 0"),
    ],
)
def test_landau_functions_validate(call, match):
    moments, _, _ = _moments()
    with pytest.raises(ValueError, match=match):
        call(moments)
