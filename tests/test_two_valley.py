"""Unit tests of phaselab.two_valley: landscape, derivatives, theory limits and the simulator."""

import numpy as np
import pytest
import torch

from phaselab import two_valley as tv

LAND = tv.DEFAULT_LANDSCAPE


def paper_loss(x, y):
    """Eq. (5) written exactly as in the paper, for comparison with the library's rewriting."""
    f1, f2, g1, g2 = LAND.f(y, True), LAND.f(y, False), LAND.g(y, True), LAND.g(y, False)
    return LAND.L0(y) + np.where(x >= 0, x * (x - g1) / f1, x * (x + g2) / f2)


@pytest.fixture
def points():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.0, 1.0, 200)
    x[np.abs(x) < 0.01] += 0.05  # keep finite differences off the cusp
    return x, rng.uniform(0.5, 80.0, 200)


def test_loss_matches_eq5_and_barrier(points):
    x, y = points
    assert np.allclose(tv.loss(x, y), paper_loss(x, y), atol=1e-14)
    for flat in (True, False):
        side = 1 if flat else -1
        minimum = side * LAND.g(y, flat) / 2
        assert np.allclose(tv.loss(np.zeros_like(y), y) - tv.loss(minimum, y), LAND.barrier(y))
    assert LAND.gamma == pytest.approx((0.8 / 0.65) ** 2)


def test_gradient_and_hessian_match_finite_differences(points):
    x, y = points
    h = 1e-6
    gx, gy, hxx, hxy, hyy = tv.derivatives(x, y)
    assert np.allclose(gx, (tv.loss(x + h, y) - tv.loss(x - h, y)) / (2 * h), atol=1e-7)
    assert np.allclose(gy, (tv.loss(x, y + h) - tv.loss(x, y - h)) / (2 * h), atol=1e-7)
    assert np.allclose(hxx, (tv.gradient(x + h, y)[0] - tv.gradient(x - h, y)[0]) / (2 * h), atol=1e-6)
    assert np.allclose(hxy, (tv.gradient(x, y + h)[0] - tv.gradient(x, y - h)[0]) / (2 * h), atol=1e-6)
    assert np.allclose(hxy, (tv.gradient(x + h, y)[1] - tv.gradient(x - h, y)[1]) / (2 * h), atol=1e-6)
    assert np.allclose(hyy, (tv.gradient(x, y + h)[1] - tv.gradient(x, y - h)[1]) / (2 * h), atol=1e-6)
    assert np.allclose(hxx, np.where(x >= 0, 2 / LAND.f(y, True), 2 / LAND.f(y, False)))


def test_derivatives_agree_between_numpy_and_torch(points):
    x, y = points
    for a, b in zip(tv.derivatives(x, y), tv.derivatives(torch.tensor(x), torch.tensor(y))):
        assert np.allclose(a, b.numpy())


def test_effective_loss_eq7_limits():
    y = 10.0
    assert tv.effective_loss(0.0, y) == pytest.approx(LAND.L0(y))
    x1 = LAND.g(y, True) / 2
    assert tv.sgd_correction(x1, y) == pytest.approx(-(np.sqrt(LAND.gamma) - 1) * LAND.barrier(y))
    x2 = -LAND.g(y, False) / 2
    assert tv.sgd_correction(x2, y) == pytest.approx((1 - 1 / np.sqrt(LAND.gamma)) * LAND.barrier(y))


def test_steady_state_limits():
    y = np.array([3.0, 5.0, 10.0])
    exact, approx = tv.steady_state_p_flat(y, 1e-3), tv.steady_state_p_flat(y, 1e-3, exact=False)
    assert np.all(exact > tv.equilibrium_p_flat_paper()) and np.all(approx > 0.5)
    # erfi(z) ~ exp(z^2)/(sqrt(pi) z) at large z: the two forms meet at low noise
    assert tv.steady_state_p_flat(2.0, 1e-5) == pytest.approx(tv.steady_state_p_flat(2.0, 1e-5, exact=False), abs=1e-3)
    # at high noise erfi is linear: the exact form tends to [1 + gamma^-3/2]^-1
    assert tv.steady_state_p_flat(1e-3, 1.0) == pytest.approx(1 / (1 + LAND.gamma**-1.5), rel=1e-4)
    # the Ito stationary law tends to gamma/(1+gamma) at high noise; isotropic: sqrt(gamma)/(1+sqrt(gamma))
    assert tv.stationary_p_flat(1e-3, 1.0) == pytest.approx(LAND.gamma / (1 + LAND.gamma), rel=1e-3)
    assert tv.stationary_p_flat(5.0, 1e-3, noise="isotropic") == pytest.approx(0.8 / 1.45)


def test_stationary_law_matches_numerical_integration():
    y, ds = 5.0, 2e-3
    xs = np.linspace(-3, 3, 400001)
    temp = np.where(xs >= 0, 2 * ds / LAND.f(y, True), 2 * ds / LAND.f(y, False))
    density = np.exp(-(tv.loss(xs, y) - LAND.L0(y)) / temp) / temp
    p_flat = density[xs >= 0].sum() / density.sum()
    assert tv.stationary_p_flat(y, ds) == pytest.approx(p_flat, rel=1e-5)


def test_mfpt_quadrature_approaches_erfi_form_at_low_noise():
    for flat in (True, False):
        low = tv.mfpt_quadrature(5.0, 3e-4, flat)
        assert low == pytest.approx(tv.mfpt_erfi(5.0, 3e-4, flat), rel=1e-3)
        assert tv.mfpt_quadrature(5.0, 5e-3, flat) < tv.mfpt_erfi(5.0, 5e-3, flat)


def test_freezing_formulas():
    ds = np.array([1e-4, 1e-3])
    eps_phi = 0.01 * tv.phi_paper()
    y_freeze = tv.freezing_point(ds, eps_phi)
    assert np.all(np.diff(y_freeze) > 0)
    # Eq. (12) is Eq. (10) evaluated on Eq. (11)
    assert np.allclose(tv.p_flat_at_freezing(y_freeze, ds), tv.p_flat_after_freezing(ds, eps_phi), rtol=1e-10)
    assert np.isnan(tv.freezing_point(1e-3, 1.0))  # log negative: outside the validity range
    assert tv.phi_paper() == pytest.approx(2 * (0.64 - 0.4225) / 810 * (0.01 + 8 / 540))


def test_simulator_shapes_reproducibility_and_deterministic_limit():
    res = tv.simulate(0.05, 0.01, n_runs=6, n_steps=50, seed=3)
    again = tv.simulate(0.05, 0.01, n_runs=6, n_steps=50, seed=3)
    assert np.array_equal(res.x, again.x) and res.freezing_steps.shape == (6,)
    assert 0 <= res.p_flat <= 1 and np.all((res.freezing_steps >= 0) & (res.freezing_steps <= 50))
    grid = tv.simulate([0.01, 0.02], [0.01, 0.05], n_runs=4, n_steps=20)
    assert grid.p_flat.shape == (2,) and grid.freezing_steps.shape == (2, 4)
    # sigma = 0: plain gradient descent, no run ever changes valley
    gd = tv.simulate(0.05, 0.0, n_runs=4, n_steps=500)
    assert gd.p_flat == 0.5 and np.all(gd.freezing_steps == 0)
    held = tv.simulate(0.01, 0.1, n_runs=4, n_steps=30, hold_y=True, y0=7.0)
    assert np.all(held.y == 7.0)


def test_hessian_noise_has_clipped_hessian_covariance():
    gen = torch.Generator().manual_seed(0)
    hxx, hxy, hyy = (torch.full((200000,), v, dtype=torch.float64) for v in (3.0, 1.0, -0.5))
    z = torch.randn((2, 200000), generator=gen, dtype=torch.float64)
    nx, ny = tv._noise(hxx, hxy, hyy, z, 1.0, None, "hessian", with_y=True)
    h = np.array([[3.0, 1.0], [1.0, -0.5]])
    w, v = np.linalg.eigh(h)
    h_plus = (v * np.clip(w, 0, None)) @ v.T
    cov = np.cov(np.stack([nx.numpy(), ny.numpy()]))
    assert np.allclose(cov, h_plus, atol=0.03)
    nx, ny = tv._noise(hxx, hxy, hyy, z, 1.0, None, "hessian_squared", with_y=True)
    assert np.allclose(np.cov(np.stack([nx.numpy(), ny.numpy()])), h @ h, atol=0.08)


def test_isotropic_noise_has_isotropic_covariance_of_the_mean_curvature():
    gen = torch.Generator().manual_seed(1)
    n = 200000
    hxx, hxy, hyy = (torch.full((n,), v, dtype=torch.float64) for v in (3.0, 1.0, -0.5))
    y = torch.full((n,), 5.0, dtype=torch.float64)
    amp = tv._isotropic_amplitude(LAND, tv._y_terms(LAND, y)["Q"], 1.0)
    z = torch.randn((2, n), generator=gen, dtype=torch.float64)
    nx, ny = tv._noise(hxx, hxy, hyy, z, 1.0, amp, "isotropic", with_y=True)
    h_iso = 2 / np.sqrt(LAND.f(5.0, True) * LAND.f(5.0, False))  # the Hessian entries play no part
    # a sample variance of n normals has standard error var * sqrt(2 / n): allow 5 of them
    assert np.allclose(np.cov(np.stack([nx.numpy(), ny.numpy()])), h_iso * np.eye(2), rtol=0, atol=5 * h_iso * np.sqrt(2 / n))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eta": 0.0}, "eta"),
        ({"sigma": -1.0}, "sigma"),
        ({"n_runs": 0}, "n_runs"),
        ({"n_steps": 2.5}, "n_steps"),
        ({"y0": -1.0}, "y0"),
        ({"noise": "white"}, "noise"),
        ({"eta": [0.1, 0.2], "sigma": [0.1]}, "same length"),
    ],
)
def test_simulate_rejects_bad_input(kwargs, match):
    args = {"eta": 0.01, "sigma": 0.01, "n_runs": 2, "n_steps": 5} | kwargs
    with pytest.raises(ValueError, match=match):
        tv.simulate(**args)


def test_theory_rejects_bad_input():
    with pytest.raises(ValueError, match="delta_s"):
        tv.steady_state_p_flat(5.0, 0.0)
    with pytest.raises(ValueError, match="y must be > 0"):
        tv.steady_state_p_flat(-1.0, 1e-3)
    with pytest.raises(ValueError, match="eps_phi"):
        tv.freezing_point(1e-3, -1.0)
    with pytest.raises(ValueError, match="x1"):
        tv.Landscape(x1=0.0)


def test_hopping_rates_balance_to_stationary_law():
    y, ds = np.array([2.0, 5.0, 9.0]), 2e-3
    k_plus, k_minus = tv.hopping_rates(y, ds)
    assert np.allclose(k_minus / (k_plus + k_minus), tv.stationary_p_flat(y, ds), rtol=1e-10)
    tau_flat, tau_sharp = tv.ridge_passage_times(5.0, 3e-4)
    assert tau_flat == pytest.approx(tv.mfpt_quadrature(5.0, 3e-4, True), rel=1e-3)
    assert tau_sharp == pytest.approx(tv.mfpt_quadrature(5.0, 3e-4, False), rel=1e-3)


def test_valley_floor_drift_is_minus_dL_dy_on_the_floor():
    y = np.array([1.0, 5.0, 30.0])
    for flat in (True, False):
        side = 1 if flat else -1
        x_min = side * LAND.g(y, flat) / 2
        assert np.allclose(tv.valley_floor_drift(y), -tv.gradient(x_min, y)[1])


def test_master_equation_limits():
    frozen = tv.master_equation([1e-6], y0=5.0, t_end=50.0)
    assert np.allclose(frozen.p_flat, 0.5)  # barriers far too high to hop: stays at the start
    fast = tv.master_equation([5e-3], y0=5.0, t_end=50.0)
    assert fast.p_flat[0, -1] == pytest.approx(tv.stationary_p_flat(fast.y[-1], 5e-3), abs=1e-3)
    assert np.all(np.diff(fast.y) > 0) and fast.mean_y_freeze[0] > 5.0


def test_fokker_planck_conventions():
    y, ds = np.array([2.0, 5.0, 9.0]), 2e-3
    ito, strat, anti = (tv.stationary_p_flat(y, ds, convention=c) for c in ("ito", "stratonovich", "anti-ito"))
    odds = lambda p: p / (1 - p)  # noqa: E731
    # the conventions differ by the factor gamma^(1 - a) in the odds, a = 0, 1/2, 1
    assert np.allclose(odds(ito) / odds(strat), np.sqrt(LAND.gamma)) and np.allclose(odds(ito) / odds(anti), LAND.gamma)
    # anti-Ito: P itself continuous at the ridge; check against direct integration
    xs = np.linspace(-3, 3, 400001)
    temp = np.where(xs >= 0, 2 * ds / LAND.f(5.0, True), 2 * ds / LAND.f(5.0, False))
    density = np.exp(-(tv.loss(xs, 5.0) - LAND.L0(5.0)) / temp)
    assert anti[1] == pytest.approx(density[xs >= 0].sum() / density.sum(), rel=1e-5)
    with pytest.raises(ValueError, match="convention"):
        tv.stationary_p_flat(5.0, ds, convention="hanggi")


def test_transfer_matrix_gives_the_discrete_ornstein_uhlenbeck_variance():
    eta, h, sigma = 0.1, 9.0, 0.02  # eta h = 0.9: far from the continuous-time limit
    edges = np.linspace(-0.6, 0.6, 3001)
    centres = 0.5 * (edges[1:] + edges[:-1])
    matrix = tv.transfer_matrix(edges, (1 - eta * h) * centres, np.full(centres.size, eta * np.sqrt(2 * sigma * h)))
    assert np.allclose(np.asarray(matrix.sum(axis=0)).ravel(), 1.0)
    p = tv._stationary_vector(matrix)
    variance = np.sum(p * centres**2) - (2 * (edges[1] - edges[0])) ** 2 / 24  # minus the bin-width term
    # x' = (1 - eta h) x + eta sqrt(2 sigma h) z has variance eta sigma / (1 - eta h / 2): the
    # continuous-time variance Delta_S = eta sigma times the step factor (1 - eta h / 2)^-1
    assert variance == pytest.approx(eta * sigma / (1 - eta * h / 2), rel=2e-3)


def test_discrete_stationary_law_limits():
    y, ds = 5.0, 2e-3
    ito = float(tv.stationary_p_flat(y, ds))
    coarse, fine = (tv.discrete_stationary_p_flat(y, eta, ds / eta) for eta in (0.004, 0.001))
    # eta -> 0 at fixed Delta_S: approaches the Ito law, the error shrinking like sqrt(eta)
    assert abs(fine - ito) < abs(coarse - ito) < 0.03
    assert (ito - coarse) / (ito - fine) == pytest.approx(2.0, rel=0.25)
    # isotropic noise: tends to sqrt(gamma)/(1+sqrt(gamma)), and the finite step favours the flat valley
    iso_small = tv.discrete_stationary_p_flat(y, 0.002, ds / 0.002, noise="isotropic")
    iso_large = tv.discrete_stationary_p_flat(y, 0.1, ds / 0.1, noise="isotropic")
    assert iso_small == pytest.approx(0.8 / 1.45, abs=3e-3) and iso_large > iso_small + 0.05
    with pytest.raises(ValueError, match="eta"):
        tv.discrete_stationary_p_flat(y, 0.5, 0.01)


def test_x_noise_variance_is_the_clipped_hessian_entry():
    x = np.array([-0.2, 0.3])
    hxx = tv.hessian(x, 5.0)[0]
    var = tv.x_noise_variance(x, 5.0, 0.5)
    for v, xi in zip(var, x):
        h = np.array([[tv.hessian(xi, 5.0)[0], tv.hessian(xi, 5.0)[1]], [tv.hessian(xi, 5.0)[1], tv.hessian(xi, 5.0)[2]]])
        w, vec = np.linalg.eigh(h)
        assert v == pytest.approx(((vec * np.clip(w, 0, None)) @ vec.T)[0, 0], rel=1e-10)
    assert np.all(var <= hxx * (1 + 1e-12))


def test_authors_phase_diagram_loader_and_convention(tmp_path):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "book" / "data" / "yang-two-valley-phase-diagram-hessian.csv"
    assert tv.authors_data_file("hessian").read_bytes() == shipped.read_bytes()
    pd_ = tv.load_authors_phase_diagram(shipped)
    assert pd_.p_flat.shape == (10, 10) and np.allclose(pd_.eta, np.logspace(-2, -1, 10))
    # cells where no run crosses read t_f = 1 and y = 5: the never-crossing convention
    never = pd_.p_flat == 0.5
    assert np.all(pd_.freezing_step[never & (pd_.freezing_y == 5.0)] >= 1.0)
    assert np.array_equal(tv.authors_freezing_steps(np.array([0, 7])), np.array([1, 8]))
    bad = tmp_path / "bad.csv"
    bad.write_text("eta,sigma\n0.1,0.1\n")
    with pytest.raises(ValueError, match="path"):
        tv.load_authors_phase_diagram(bad)


def test_simulate_takes_one_start_per_cell():
    both = tv.simulate([0.01, 0.01], [0.1, 0.1], n_runs=4, n_steps=10, y0=[2.0, 7.0], hold_y=True, seed=2)
    assert np.all(both.y[0] == 2.0) and np.all(both.y[1] == 7.0)
    alone = tv.simulate(0.01, 0.1, n_runs=4, n_steps=10, y0=7.0, hold_y=True, seed=5)
    assert alone.x.shape == (4,)
    with pytest.raises(ValueError, match="y0"):
        tv.simulate([0.01, 0.01], [0.1, 0.1], n_runs=4, n_steps=10, y0=[1.0, 2.0, 3.0])


def test_discrete_hopping_rates_balance_and_tend_to_the_ito_rates():
    y, ds = 5.0, 6e-4
    k_fs_ito, k_sf_ito = (float(k) for k in tv.hopping_rates(y, ds))
    visit_flat, visit_sharp = (1 / float(t) for t in tv.ridge_passage_times(y, ds))
    gaps = []
    for eta in (0.004, 0.00025):
        c_flat, c_sharp, k_fs, k_sf = tv.discrete_hopping_rates(y, eta, ds / eta) / eta
        p = tv.discrete_stationary_p_flat(y, eta, ds / eta)
        assert k_sf / k_fs == pytest.approx(p / (1 - p), rel=0.02)  # the two-state reduction keeps the stationary odds
        assert c_flat < visit_flat and c_sharp < visit_sharp  # a sign change needs a step across the ridge
        assert k_fs <= c_flat and k_sf <= c_sharp
        gaps.append(abs(k_sf / k_sf_ito - 1) + abs(k_fs / k_fs_ito - 1))
    assert gaps[1] < gaps[0] < 0.2  # committed hops approach the Ito rates as eta -> 0 at fixed Delta_S
    with pytest.raises(ValueError, match="eta"):
        tv.discrete_hopping_rates(y, 0.5, 0.01)


def test_discrete_freezing_limits_and_bookkeeping():
    both = tv.discrete_freezing([0.01, 0.01], [1e-4, 0.2], y0=5.0, n_steps=2000)
    assert both.p_cross[0] < 1e-3 and both.mean_freezing_step[0] < 1.0  # cold: frozen from the start
    assert both.p_flat_by_start[0, 0] < 0.05 and both.p_flat_by_start[0, 1] > 0.95  # each run stays where it settles
    assert both.p_flat[0] == pytest.approx(both.p_flat_by_start[0].mean())
    assert both.p_cross[1] > 0.9 and both.p_flat[1] > 0.75  # hot: nearly every run hops, toward the flat valley
    mix = both.p_cross * both.mean_y_freeze + (1 - both.p_cross) * 5.0
    assert np.allclose(both.mean_y_freeze_all, mix)
    assert np.all(both.sd_freezing_step >= 0) and np.all(both.separation >= 0)
    with pytest.raises(ValueError, match="same length"):
        tv.discrete_freezing([0.01, 0.02], [0.1], y0=5.0, n_steps=10)
    with pytest.raises(ValueError, match="n_steps"):
        tv.discrete_freezing(0.01, 0.1, y0=5.0, n_steps=0)
    assert both.y_path.shape == (2001, 2) and np.all(both.y_path[0] == 5.0)
    assert np.all(np.diff(both.y_path, axis=0) > 0)  # the valleys deepen: y climbs along the mean path


def test_simulate_prescribed_y_path_indexing_and_common_draws():
    # noise-free: a path prescribed as the free run's own y trajectory reproduces its x step for step
    for start in (-0.01, 0.01):  # one run per side: each run's y path differs
        free = tv.simulate(0.05, 0.0, n_runs=1, n_steps=50, y0=2.0, x_start=[start], record_every=1)
        path = np.concatenate([[2.0], free.snapshots[2][:, 0]])  # y after each step, y0 first
        fixed = tv.simulate(0.05, 0.0, n_runs=1, n_steps=50, y_path=path, x_start=[start], record_every=1)
        assert np.allclose(fixed.snapshots[1], free.snapshots[1], rtol=0, atol=1e-12)
        assert np.allclose(fixed.y, free.y, rtol=0, atol=1e-12)
    # a constant path is y held at y0, draw for draw (same seed: common random numbers)
    held = tv.simulate([0.05, 0.05], [0.3, 0.3], n_runs=8, n_steps=200, y0=3.0, hold_y=True, seed=4)
    const = tv.simulate([0.05, 0.05], [0.3, 0.3], n_runs=8, n_steps=200, y_path=np.full(201, 3.0), seed=4)
    assert np.array_equal(const.freezing_steps, held.freezing_steps) and np.allclose(const.x, held.x)
    assert np.any(held.freezing_steps > 0)
    # a sign change records y_path at its step
    rising = np.linspace(3.0, 4.0, 201)
    moving = tv.simulate(0.05, 0.3, n_runs=8, n_steps=200, y_path=rising, seed=4)
    crossed = moving.freezing_steps > 0
    assert np.allclose(moving.y_freeze[crossed], rising[moving.freezing_steps[crossed]])
    with pytest.raises(ValueError, match="hold_y"):
        tv.simulate(0.05, 0.3, n_runs=2, n_steps=10, y_path=np.full(11, 3.0), hold_y=True)
    with pytest.raises(ValueError, match="y_path"):
        tv.simulate(0.05, 0.3, n_runs=2, n_steps=10, y_path=np.full(10, 3.0))
