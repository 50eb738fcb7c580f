"""Tests of phaselab.escape: censored estimators, stationary points, zero modes, Kramers-Langer."""

import math

import numpy as np
import pytest
import torch
from scipy.special import gammaln

from phaselab import config, escape, linear_nets

BETA, WIDTHS = 0.2, [2, 10, 10, 2]
SIGMA_YX = linear_nets.cross_covariance(np.array([0.9, 0.8]), 2)


def _points():
    lam1 = linear_nets.stationary_points(0.9, BETA, 3)[1]
    sad2 = linear_nets.stationary_points(0.8, BETA, 3)[0]
    return escape.balanced_weights([lam1, 0.0], WIDTHS), escape.balanced_weights([lam1, sad2], WIDTHS), lam1


def test_censored_mle_recovers_the_mean_and_beats_the_naive_mean():
    rng = config.numpy_rng(0)
    tau, horizon = 10.0, 8.0
    times = rng.exponential(tau, 4000)
    censored = np.where(times <= horizon, times, np.inf)
    est = escape.censored_exponential_mle(censored, horizon)
    assert abs(est.tau - tau) < 4 * est.tau_err, est
    naive = censored[np.isfinite(censored)].mean()
    assert naive < tau - 10 * est.tau_err  # the plain mean of escaped runs is badly biased
    assert est.runs == 4000 and est.escaped == int(np.isfinite(censored).sum())


def test_censored_mle_without_censoring_is_the_mean_and_handles_no_escape():
    times = np.array([1.0, 2.0, 3.0])
    assert escape.censored_exponential_mle(times, 5.0).tau == pytest.approx(2.0)
    none = escape.censored_exponential_mle(np.full(5, np.inf), 5.0)
    assert math.isinf(none.tau) and none.escaped == 0


@pytest.mark.parametrize(
    "times, horizon, match",
    [([1.0], -1.0, "horizon must be > 0"), ([6.0], 5.0, r"\[0, horizon\]"), ([np.nan], 5.0, "nan"), ([], 5.0, "non-empty")],
)
def test_censored_mle_rejects_bad_input(times, horizon, match):
    with pytest.raises(ValueError, match=match):
        escape.censored_exponential_mle(np.array(times), horizon)


def test_kaplan_meier_is_the_empirical_survival():
    t, s = escape.kaplan_meier(np.array([1.0, np.inf, 3.0, 2.0]), 4.0)
    np.testing.assert_allclose(t, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(s, [1, 0.75, 0.5, 0.25, 0.25])


def test_balanced_points_are_stationary_with_the_right_energy():
    trap, saddle, _ = _points()
    for w in (trap, saddle):
        assert escape.gradient_norm(w, SIGMA_YX, BETA) < 1e-12
    # energy difference is the mode barrier of Eq. (10)
    delta = float(escape.potential(escape.flatten(saddle), WIDTHS, torch.tensor(SIGMA_YX), BETA)
                  - escape.potential(escape.flatten(trap), WIDTHS, torch.tensor(SIGMA_YX), BETA))
    assert delta == pytest.approx(linear_nets.barrier(0.8, BETA, 3), rel=1e-10)


def test_rotation_keeps_the_end_to_end_map_and_the_loss():
    trap, _, _ = _points()
    rotated = escape.rotate_hidden(trap, config.torch_generator(1))
    product = lambda ws: ws[2] @ ws[1] @ ws[0]
    torch.testing.assert_close(product(rotated), product(trap))
    assert escape.gradient_norm(rotated, SIGMA_YX, BETA) < 1e-12


def test_unflatten_inverts_flatten_for_one_network_and_for_a_stack():
    weights = escape.balanced_weights([0.7, 0.2], WIDTHS)
    theta = escape.flatten(weights)
    assert all(torch.equal(a, b) for a, b in zip(escape.unflatten(theta, WIDTHS), weights))
    stack = torch.stack([theta, 2 * theta])
    layers = escape.unflatten(stack, WIDTHS)
    assert [tuple(w.shape) for w in layers] == [(2, 10, 2), (2, 10, 10), (2, 2, 10)]
    assert all(torch.equal(w[1], 2 * v) for w, v in zip(layers, weights))


def test_zero_modes_and_index_match_the_symmetry_count():
    """Orbit dimension of O(10)^2 / O(10 - r)^2 is 2 (45 - (10-r)(9-r)/2): 18 for r = 1, 34 for r = 2."""
    trap, saddle, _ = _points()
    at_trap = escape.analyse_stationary_point(trap, SIGMA_YX, BETA, used_modes=1)
    at_saddle = escape.analyse_stationary_point(saddle, SIGMA_YX, BETA, used_modes=2)
    assert (at_trap.zero_modes, at_trap.negative) == (18, 0)
    assert (at_saddle.zero_modes, at_saddle.negative) == (34, 1)
    assert at_trap.zero_modes + at_trap.nonzero.size == 140


def test_orbit_volume_matches_the_product_of_spheres():
    """The rank-1 trap's orbit is S^9 x S^9 of radius sqrt(2) a (a = lambda^(1/3)) in weight space."""
    trap, _, lam1 = _points()
    point = escape.analyse_stationary_point(trap, SIGMA_YX, BETA, used_modes=1)
    radius = math.sqrt(2) * lam1 ** (1 / 3)
    log_sphere9 = math.log(2) + 5 * math.log(math.pi) - gammaln(5)
    assert point.log_orbit_volume == pytest.approx(2 * (9 * math.log(radius) + log_sphere9), rel=1e-10)


def test_orthogonal_group_volumes():
    assert escape.log_volume_orthogonal_group(0) == 0.0
    assert escape.log_volume_orthogonal_group(1) == pytest.approx(math.log(2))  # two points
    assert escape.log_volume_orthogonal_group(2) == pytest.approx(math.log(2 * 2 * math.pi * math.sqrt(2)))  # two circles
    with pytest.raises(ValueError, match="n must be >= 0"):
        escape.log_volume_orthogonal_group(-1)


def test_kramers_langer_reduces_to_the_one_dimensional_formula():
    """Two copies of a 1-d double well written as a 1-1-1-1 network: no zero modes; the formula must
    equal (2 pi / |w_u|) sqrt(|det H_s| / det H_m) * (number of saddle copies)^-1 exp(dE/T)."""
    sad, _ = linear_nets.stationary_points(0.8, BETA, 3)
    thin = [1, 1, 1, 1]
    trap = escape.analyse_stationary_point(escape.balanced_weights([0.0], thin), np.array([[0.8]]), BETA, 0)
    saddle = escape.analyse_stationary_point(escape.balanced_weights([sad], thin), np.array([[0.8]]), BETA, 1)
    temp = np.array([1e-3])
    unstable = abs(saddle.nonzero.min())
    direct = (2 * math.pi / unstable) * math.sqrt(np.prod(np.abs(saddle.nonzero)) / np.prod(trap.nonzero)) / 4
    expected = math.log(direct) + (saddle.energy - trap.energy) / temp[0]
    assert escape.kramers_langer_log_time(trap, saddle, temp)[0] == pytest.approx(expected, rel=1e-12)


def test_analyse_rejects_non_stationary_points_and_kl_rejects_wrong_indices():
    trap, saddle, _ = _points()
    with pytest.raises(ValueError, match="not a stationary point"):
        escape.analyse_stationary_point([w + 0.01 for w in trap], SIGMA_YX, BETA, 1)
    at_trap = escape.analyse_stationary_point(trap, SIGMA_YX, BETA, 1)
    with pytest.raises(ValueError, match="index 1"):
        escape.kramers_langer_log_time(at_trap, at_trap, np.array([1e-3]))


def test_trap_ensemble_is_exactly_low_rank_and_perturbations_leave_it():
    trap = escape.trap_ensemble([0.5, 0.0], WIDTHS, 3, config.torch_generator(0))
    product = trap[2] @ trap[1] @ trap[0]
    assert torch.linalg.svdvals(product)[:, 1].max() < 1e-14
    kicked = escape.trap_ensemble([0.5, 0.0], WIDTHS, 3, config.torch_generator(0), perturbation=np.array([0.0, 0.1, 0.1]))
    sv = torch.linalg.svdvals(kicked[2] @ kicked[1] @ kicked[0])[:, 1]
    assert sv[0] < 1e-14 and sv[1:].min() > 1e-6
    with pytest.raises(ValueError, match="perturbation"):
        escape.trap_ensemble([0.5, 0.0], WIDTHS, 2, config.torch_generator(0), perturbation=-1.0)


def test_unstable_direction_points_out_of_the_trap():
    _, saddle, _ = _points()
    value, direction = escape.unstable_direction(saddle, SIGMA_YX, BETA)
    assert value < 0
    pushed = [w + 0.05 * d for w, d in zip(saddle, direction)]
    sigma2 = torch.linalg.svdvals(pushed[2] @ pushed[1] @ pushed[0])[1]
    assert sigma2 > linear_nets.stationary_points(0.8, BETA, 3)[0]


def test_arrhenius_fit_recovers_the_barrier():
    temps = np.array([0.001, 0.0012, 0.0015, 0.002])
    estimates = [escape.EscapeEstimate(math.exp(1 + 0.01 / t), 0.0, 0.1, 100, 100) for t in temps]
    fit = escape.arrhenius_fit(temps, estimates)
    assert fit.slope == pytest.approx(0.01, rel=1e-9) and fit.intercept == pytest.approx(1.0, rel=1e-9)


def test_balanced_weights_validation():
    with pytest.raises(ValueError, match="mode_values must be >= 0"):
        escape.balanced_weights([-0.1], WIDTHS)
    with pytest.raises(ValueError, match="at most"):
        escape.balanced_weights([0.1, 0.1, 0.1], WIDTHS)


def test_escape_coordinate_density_and_diffusion_have_the_closed_form_moments():
    # lambda = c^T B u with N(0, s^2) entries: E lambda^2 = n^2 s^6, E|grad lambda|^2 = 3 n^2 s^4;
    # without the data term (eta -> 0 limit of the Boltzmann factor) p_T = exp(-F/T) up to the data factor
    n, beta, temp, eta = 9, 0.2, 3e-4, 0.8
    s2 = temp / beta
    coord = escape.escape_coordinate(eta, beta, temp, n, 40 * n * s2**1.5, points=800)
    density = np.exp(-(coord.free_energy - 0.5 * (coord.grid - eta) ** 2) / temp)
    assert np.trapezoid(density, coord.grid) == pytest.approx(1.0, rel=1e-3)
    assert np.trapezoid(density * coord.grid**2, coord.grid) == pytest.approx(n**2 * s2**3, rel=1e-3)
    assert np.trapezoid(density * coord.diffusion, coord.grid) == pytest.approx(temp * 3 * n**2 * s2**2, rel=1e-3)
    np.testing.assert_allclose(coord.diffusion, coord.diffusion[::-1])  # D is even in lambda


def test_mean_first_passage_time_matches_one_dimensional_closed_forms():
    # one degree of freedom, constant D: free diffusion (b^2 / 2D) and a constant force f
    # (tau = T/(f D) [b - (T/f)(1 - exp(-f b / T))]), both reflecting at 0 and started there
    x = np.linspace(0.0, 2.0, 4001)
    free = escape.EscapeCoordinate(x, np.zeros_like(x), np.full_like(x, 0.5), 1.0)
    assert escape.mean_first_passage_time(free) == pytest.approx(2.0**2 / (2 * 0.5), rel=1e-6)
    temp, force, dif, b = 0.3, 0.7, 0.5, 2.0
    pushed = escape.EscapeCoordinate(x, -force * x, np.full_like(x, dif), temp)
    exact = temp / (force * dif) * (b - temp / force * (1 - math.exp(-force * b / temp)))
    assert escape.mean_first_passage_time(pushed) == pytest.approx(exact, rel=1e-6)
    with pytest.raises(ValueError, match="start"):
        escape.mean_first_passage_time(free, start=3.0)


def test_weak_mode_theory_tends_to_kramers_langer_as_t_goes_to_zero():
    # ratio to the harmonic law is 1 + a T + O(T^2): its linear extrapolation to T = 0 is 1
    lam_sad, lam_min = linear_nets.stationary_points(0.8, BETA, 3)
    temps = np.array([1e-5, 2e-5])
    theory = escape.weak_mode_escape_time([0.9, 0.8], BETA, temps, WIDTHS, 0.5 * (lam_sad + lam_min))
    ratio = np.exp(theory.log_tau - theory.log_tau_harmonic)
    extrapolated = (temps[1] * ratio[0] - temps[0] * ratio[1]) / (temps[1] - temps[0])
    assert abs(extrapolated - 1) < 0.02, ratio
    assert ratio[0] < ratio[1]  # anharmonic corrections grow with T and lengthen the escape
    assert theory.hidden == 9


def test_weak_mode_theory_validation():
    with pytest.raises(ValueError, match="widths"):
        escape.weak_mode_escape_time([0.9, 0.8], BETA, np.array([1e-4]), [2, 10, 8, 2], 0.3)
    with pytest.raises(ValueError, match="lambda_out"):
        escape.weak_mode_escape_time([0.9, 0.8], BETA, np.array([1e-4]), WIDTHS, 0.001)
    with pytest.raises(ValueError, match="hidden"):
        escape.escape_coordinate(0.8, BETA, 1e-4, 1, 0.3)
