"""Unit tests of phaselab.dmft (DMFT of gradient descent) and phaselab.neuron_gd (finite-size GD)."""

import math

import numpy as np
import pytest
import torch

from phaselab import dmft, neuron_gd, single_neuron, spectra


@pytest.fixture(scope="module")
def gelu_solution():
    return dmft.solve_dmft("gelu", 5.0, 6, n_samples=4000, seed=3, check_fixed_point=True, device="cpu")


def test_population_risk_quadratic_closed_form():
    # E[(u^2 - v^2)^2]/2 with Var u = q, Cov(u, v) = rho, Var v = 1: (3q^2 - 2(q + 2 rho^2) + 3)/2.
    q = np.array([0.5, 1.0, 2.0])
    rho = np.array([0.0, 0.3, -1.0])
    expected = (3 * q**2 - 2 * (q + 2 * rho**2) + 3) / 2
    assert np.allclose(dmft.population_risk("quadratic", q, rho), expected, rtol=1e-10)


def test_population_risk_gelu_matches_monte_carlo():
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((2, 400_000))
    q, rho = 1.7, 0.6
    u = math.sqrt(q) * z1
    v = rho / math.sqrt(q) * z1 + math.sqrt(1 - rho**2 / q) * z2
    loss = 0.5 * (single_neuron.network_output(u, "gelu") - v**2) ** 2
    assert abs(dmft.population_risk("gelu", q, rho) - loss.mean()) < 4 * loss.std() / math.sqrt(loss.size)


def test_first_step_closed_form(gelu_solution):
    # C_theta(1, 1) = (1 - eta E[g(V0)])^2 + eta^2 E[F(V0)^2] / delta, and R_l(0, 0) = E[g(V0)].
    s = gelu_solution
    expected = (1 - s.eta * s.r_ell[0, 0]) ** 2 + s.eta**2 * s.c_ell[0, 0] / s.delta
    assert s.c_theta[1, 1] == pytest.approx(expected, rel=1e-12)
    g0 = s.hessian_weights(0)
    assert s.r_ell[0, 0] == pytest.approx(g0.mean(), rel=1e-12)


def test_initial_law_and_risk(gelu_solution):
    s = gelu_solution
    v0 = s.preactivations[:, 0]
    assert abs(v0.mean()) < 4 / math.sqrt(v0.size) and abs(v0.var() - 1) < 0.1
    assert abs(s.train_risk[0] - s.test_risk[0]) < 4 * s.train_risk_sem[0]
    assert s.c_theta[0, 0] == pytest.approx(1.0)


def test_parity_kills_the_target_response(gelu_solution):
    s = gelu_solution
    assert np.all(np.abs(s.target_response) <= 4 * s.target_response_sem + 1e-12)


def test_fixed_point_residual_vanishes_by_causality(gelu_solution):
    # Every kernel at step t depends only on steps < t, so one causal sweep is the fixed point:
    # applying the DMFT map once more to its kernels reproduces them (a check of causality).
    assert gelu_solution.fixed_point_residual < 1e-10


def test_large_delta_is_population_gradient_descent():
    # delta -> infinity: memory and noise vanish, theta stays orthogonal to theta_* and its norm r
    # follows population GD, r <- r - eta d/dr R_pop(r^2, 0).
    steps, eta = 8, 0.5
    s = dmft.solve_dmft("gelu", 1e6, steps, eta, n_samples=100_000, seed=1)
    r, h = 1.0, 1e-5
    for t in range(1, steps + 1):
        grad = (dmft.population_risk("gelu", (r + h) ** 2, 0.0) - dmft.population_risk("gelu", (r - h) ** 2, 0.0)) / (2 * h)
        r = r - eta * grad
        assert s.norm[t] == pytest.approx(r, rel=0.02), t


def test_dmft_matches_small_gradient_descent():
    steps = 6
    sol = dmft.solve_dmft("gelu", 4.0, steps, n_samples=8000, seed=0)
    runs = neuron_gd.simulate_gd("gelu", [4.0], 400, steps, seeds=6, seed=2, device="cpu")
    norm, sem = runs.norm[:, 0].mean(0), runs.norm[:, 0].std(0, ddof=1) / math.sqrt(6)
    assert np.all(np.abs(norm - sol.norm) < 4 * sem + 0.02), (norm, sol.norm)


def test_project_out_target_keeps_overlap_zero():
    runs = neuron_gd.simulate_gd("quadratic", [3.0], 200, 5, seeds=2, project_out_target=True, device="cpu")
    assert np.all(np.abs(runs.overlap) < 1e-5)
    assert np.allclose(runs.test_risk[:, 0, 0], dmft.population_risk("quadratic", 1.0, 0.0), rtol=1e-5)


def test_hessian_extremes_match_dense_eigenvalues():
    runs = neuron_gd.simulate_gd("gelu", [2.0], 60, 0, seeds=1, hessian_steps=(0,), hessian_count=3, dtype=torch.float64, device="cpu")
    values, overlaps = runs.hessian[0]
    assert values.shape == (1, 1, 3) and np.all(np.diff(values[0, 0]) >= 0)
    assert np.all((overlaps >= 0) & (overlaps <= 1 + 1e-12))
    # Against the Hessian of single_neuron and a dense eigendecomposition, for nested data sets.
    gen = torch.Generator().manual_seed(4)
    d, sizes, count = 30, np.array([60, 90]), 4
    x = torch.randn(1, sizes.max(), d, generator=gen, dtype=torch.float64)
    theta_star = torch.randn(1, d, generator=gen, dtype=torch.float64)
    theta_star = theta_star / theta_star.norm()
    theta = torch.randn(2, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    y = (x @ theta_star[0]) ** 2
    z = torch.einsum("snd,kd->skn", x, theta)
    values, overlaps = neuron_gd._hessian_extremes(x, y, z, theta_star, sizes, "gelu", count, np.arange(2))
    for j, n in enumerate(sizes):
        dense = single_neuron.hessian(x[0, :n], y[0, :n], theta[j], "gelu").numpy()
        evals, evecs = np.linalg.eigh(dense)
        assert np.allclose(values[0, j], evals[:count], atol=1e-10)
        assert np.allclose(overlaps[0, j], (theta_star[0].numpy() @ evecs[:, :count]) ** 2, atol=1e-8)
    skipped, _ = neuron_gd._hessian_extremes(x, y, z, theta_star, sizes, "gelu", count, np.array([1]))
    assert np.all(np.isnan(skipped[:, 0])) and np.allclose(skipped[:, 1], values[:, 1])


def test_hessian_deltas_selects_runs():
    runs = neuron_gd.simulate_gd("gelu", [2.0, 3.0], 20, 1, seeds=1, hessian_steps=(1,), hessian_deltas=[3.0], device="cpu")
    values, _ = runs.hessian[1]
    assert np.all(np.isnan(values[:, 0])) and np.all(np.isfinite(values[:, 1]))
    with pytest.raises(ValueError, match="hessian_deltas must be among deltas"):
        neuron_gd.simulate_gd("gelu", [2.0], 20, 1, hessian_steps=(1,), hessian_deltas=[5.0], device="cpu")


def test_cell_thresholds():
    grid = np.array([1.0, 2.0, 4.0, 8.0])
    has = np.array([[[False, False], [False, True], [True, True], [True, True]]])
    mid, half = dmft._cell_thresholds(grid, has)
    assert mid[0].tolist() == [3.0, 1.5] and half[0].tolist() == [1.0, 0.5]
    mid, _ = dmft._cell_thresholds(grid, np.zeros((1, 4, 1), dtype=bool))
    assert mid[0, 0] == math.inf


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(activation="relu"), "activation must be one of"),
        (dict(delta=-1.0), "delta must be > 0"),
        (dict(steps=-1), "steps must be >= 0"),
        (dict(eta=0.0), "eta must be > 0"),
        (dict(n_samples=10), "n_samples must be >= 100"),
    ],
)
def test_solve_dmft_validates(kwargs, match):
    args = dict(activation="gelu", delta=2.0, steps=2, eta=None, n_samples=200)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        dmft.solve_dmft(**args)


def test_other_validation():
    with pytest.raises(ValueError, match="deltas must have entries > 0"):
        neuron_gd.simulate_gd("gelu", [0.0, 1.0], 10, 1)
    with pytest.raises(ValueError, match="coarse must have high > low"):
        dmft.delta_nn("gelu", coarse=(5.0, 2.0, 4))
    with pytest.raises(ValueError, match="grid must have entries > 0"):
        dmft.delta_nn("gelu", grid=[-1.0, 2.0])
    sol = dmft.solve_dmft("gelu", 2.0, 1, n_samples=200)
    with pytest.raises(ValueError, match="dimension needs"):
        sol.hessian_outlier(0, dimension=1000)
    with pytest.raises(ValueError, match="quantile must lie in"):
        sol.hessian_outlier(0, quantile=0.9)


def test_delta_nn_brackets_the_outlier():
    # Tiny run: the threshold lies inside the grid, with an uncertainty no wider than a grid cell.
    result = dmft.delta_nn("gelu", steps=2, dimension=150, seeds=1, grid=[2.0, 8.0, 32.0], refine=2, n_response=300)
    assert 2.0 <= result.value <= 32.0 and 0 < result.uncertainty <= 12.0
    has = result.curve.has_outlier[0, :, -1]
    assert not has[0] and has[-1]


def test_reading_shifts_the_labels_in_the_population_risk():
    # With y = v^2 - c: E[(u^2 - v^2 + c)^2]/2 = (closed form at c = 0) + c (q - 1) + c^2 / 2.
    q, rho, c = np.array([0.5, 2.0]), np.array([0.2, -0.7]), 1.0
    centred = single_neuron.Reading(label_shift=c)
    expected = dmft.population_risk("quadratic", q, rho) + c * (q - 1) + c**2 / 2
    assert np.allclose(dmft.population_risk("quadratic", q, rho, centred), expected, rtol=1e-10)


def test_reading_enters_gd_and_dmft_alike():
    # One GD step from theta(0): the DMFT train risk at t = 0 is the risk of the reading's network.
    reading = single_neuron.Reading(output_weight=1.5, bias=0.3, label_shift=1.0)
    sol = dmft.solve_dmft("gelu", 4.0, 2, n_samples=20_000, seed=0, reading=reading, device="cpu")
    runs = neuron_gd.simulate_gd("gelu", [4.0], 300, 2, seeds=8, seed=1, reading=reading, device="cpu")
    assert runs.reading == reading and sol.reading == reading
    assert abs(runs.train_risk[:, 0, 0].mean() - sol.train_risk[0]) < 6 * sol.train_risk_sem[0] + 0.05
    standard = dmft.solve_dmft("gelu", 4.0, 2, n_samples=20_000, seed=0, device="cpu")
    assert abs(standard.train_risk[0] - sol.train_risk[0]) > 10 * sol.train_risk_sem[0]


def test_reading_validates():
    with pytest.raises(ValueError, match="output_weight"):
        single_neuron.Reading(output_weight=0.0)
    with pytest.raises(ValueError, match="label_shift"):
        single_neuron.Reading(label_shift=math.nan)
    with pytest.raises(ValueError, match="reading"):
        dmft.solve_dmft("gelu", 4.0, 2, n_samples=200, reading="centred")


def test_success_crossing_recovers_a_logistic_curve():
    rng = np.random.default_rng(4)
    deltas = np.geomspace(2, 30, 12)
    trials = np.full(deltas.size, 400)
    truth, slope = 7.0, 4.0
    p = 1 / (1 + (deltas / truth) ** (-slope))
    found = neuron_gd.success_crossing(deltas, rng.binomial(trials, p), trials)
    assert abs(found.value - truth) < 4 * found.error
    assert found.error < 0.3
    with pytest.raises(ValueError, match="1/2"):
        neuron_gd.success_crossing(deltas, np.zeros(deltas.size), trials)


def test_delta_star_curves_share_solutions_across_dimensions():
    curves = dmft.delta_star_curves("gelu", [3.0, 8.0, 20.0], 2, dimensions=(100, 400), seeds=1, n_response=200, device="cpu")
    single = dmft.delta_star_curve("gelu", [3.0, 8.0, 20.0], 2, dimension=400, seeds=1, n_response=200, device="cpu")
    assert set(curves) == {100, 400}
    assert np.array_equal(curves[400].has_outlier, single.has_outlier)


@pytest.mark.parametrize("name", sorted(single_neuron.ACTIVATIONS))
def test_activation_jet_matches_the_separate_derivatives(name):
    act = single_neuron.activation(name)
    z = torch.linspace(-5, 5, 101, dtype=torch.float64)
    for joint, separate in zip(act.jet(z), (act.value(z), act.first(z), act.second(z))):
        assert torch.allclose(joint, separate, rtol=1e-12, atol=1e-12)
    # and the jet is the derivative of the value (finite differences)
    h = 1e-5
    assert torch.allclose(act.jet(z)[1], (act.value(z + h) - act.value(z - h)) / (2 * h), atol=1e-6)


def test_hessian_outlier_uses_the_first_n_samples(gelu_solution):
    t, dimension = gelu_solution.steps, 100
    count = int(round(gelu_solution.delta * dimension))
    full = gelu_solution.hessian_weights(t)
    y = single_neuron.phase_retrieval_target(gelu_solution.target_projection, gelu_solution.reading)
    assert np.allclose(full, single_neuron.hessian_weight(y, gelu_solution.preactivations[:, t], "gelu"))
    expected = spectra.outlier(full[:count], gelu_solution.target_projection[:count], gelu_solution.delta)
    found = gelu_solution.hessian_outlier(t, dimension)
    assert (found is None) == (expected is None)
    if found is not None:
        assert found.location == pytest.approx(expected.location)
