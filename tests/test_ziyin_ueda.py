"""Unit tests of phaselab.ziyin_ueda: the batched trainer against exact minima and a per-member loop."""

import math

import numpy as np
import pytest

from phaselab import linear_nets as ln
from phaselab import ziyin_ueda as zu


@pytest.fixture(scope="module")
def task():
    x, y = zu.regression_task(64, 4, signal=0.5, noise=0.5, seed=0)
    return x, y, ln.regression_moments(x, y)


def test_layer_shapes():
    assert zu.layer_shapes(5, 8, 0) == [(1, 5)]
    assert zu.layer_shapes(5, 8, 2) == [(8, 5), (8, 8), (1, 8)]


def test_ridge_and_one_hidden_layer_reach_theory(task):
    x, y, moments = task
    gammas = np.array([0.1, 0.3, 0.7])
    ridge = zu.train_grid(x, y, gammas, hidden_layers=0, width=4, n_seeds=2, init_scale=0.1, steps=1500, lr=0.05, device="cpu")
    np.testing.assert_allclose(ridge.loss, np.array([[ln.ridge_loss(g, moments)] * 2 for g in gammas]), atol=1e-10)
    one = zu.train_grid(x, y, gammas, hidden_layers=1, width=4, n_seeds=2, init_scale=0.1, steps=3000, lr=0.05, device="cpu")
    theory = np.array([ln.effective_global_minimum(g, 1, moments) for g in gammas])
    np.testing.assert_allclose(one.loss, np.repeat(theory[:, 1:], 2, axis=1), atol=1e-8)
    np.testing.assert_allclose(one.b, np.repeat(theory[:, :1], 2, axis=1) / 4, atol=1e-5)
    # Lemma 1 in the trained networks: the regulariser equals dL/dgamma of the theory.
    for i, g in enumerate(gammas):
        expected = ln.regularisation_at(theory[i, 0], g, 1, moments)
        np.testing.assert_allclose(one.regulariser[i], expected, atol=1e-5)


def test_members_do_not_interact(task):
    # Changing one member's gamma leaves every other member's trajectory unchanged.
    x, y, _ = task
    kwargs = dict(hidden_layers=1, width=3, n_seeds=1, init_scale=0.2, steps=50, lr=0.05, activation="tanh",
                  device="cpu", seed=4)
    both = zu.train_grid(x, y, np.array([0.1, 0.4]), **kwargs)
    other = zu.train_grid(x, y, np.array([0.1, 0.9]), **kwargs)
    assert other.loss[0, 0] == pytest.approx(both.loss[0, 0], rel=1e-12)
    assert other.loss[1, 0] != pytest.approx(both.loss[1, 0], rel=1e-6)


def test_reproducible(task):
    x, y, _ = task
    kwargs = dict(hidden_layers=2, width=4, n_seeds=2, init_scale=0.3, steps=20, lr=0.02, device="cpu", seed=7)
    a = zu.train_grid(x, y, np.array([0.1]), **kwargs)
    b = zu.train_grid(x, y, np.array([0.1]), **kwargs)
    np.testing.assert_array_equal(a.loss, b.loss)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(hidden_layers=-1), "hidden_layers must be >= 0"),
        (dict(width=0), "width must be >= 1"),
        (dict(init_scale=0.0), "init_scale must be > 0"),
        (dict(lr=-0.1), "lr must be > 0"),
        (dict(activation="relu"), "activation must be one of"),
        (dict(steps=0), "steps must be >= 1"),
        (dict(n_seeds=1.5), "n_seeds must be an integer"),
        (dict(momentum=1.0), r"momentum must lie in \[0, 1\)"),
        (dict(momentum=-0.1), "momentum must be >= 0"),
    ],
)
def test_invalid_arguments(task, kwargs, match):
    x, y, _ = task
    base = dict(hidden_layers=1, width=4, n_seeds=1, init_scale=0.1, steps=5, lr=0.05, device="cpu")
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        zu.train_grid(x, y, np.array([0.1]), **base)
    with pytest.raises(ValueError, match="gammas must have entries >= 0"):
        zu.train_grid(x, y, np.array([-0.1]), hidden_layers=1, width=4, n_seeds=1, init_scale=0.1, steps=5, lr=0.05)


def test_stochastic_neurons_reach_eq6_with_noise(task):
    # The trainer averages over the hidden noise exactly; its minimum is Eq. (6) with (1 + sigma2/d0)^D.
    x, y, moments = task
    gammas = np.array([0.1, 0.3])
    for depth, lr in ((1, 0.05), (2, 0.02)):
        run = zu.train_grid(x, y, gammas, hidden_layers=depth, width=4, n_seeds=1, init_scale=0.3, steps=4000,
                            lr=lr, sigma2=2.0, device="cpu", seed=1)
        theory = [ln.effective_global_minimum(g, depth, moments, sigma2=2.0, width=4)[1] for g in gammas]
        np.testing.assert_allclose(run.loss[:, 0], theory, atol=1e-7)


def test_stochastic_neurons_expected_loss_matches_sampled_noise(task):
    # The exact noise average against a Monte Carlo average over sampled noise, for fixed weights.
    import torch

    x, y, _ = task
    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(1, 3, 4, generator=gen, dtype=torch.float64),
               torch.randn(1, 3, 3, generator=gen, dtype=torch.float64),
               torch.randn(1, 1, 3, generator=gen, dtype=torch.float64)]
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    a0, c0, y2 = xt.T @ xt / len(y), xt.T @ yt / len(y), yt @ yt / len(y)
    exact = float(zu._data_loss(weights, "linear", xt, yt, a0, c0, y2, sigma2=0.5)[0])
    draws = 4000
    h = xt.unsqueeze(0).expand(draws, *xt.shape)
    for w in weights[:-1]:
        h = h @ w[0].T
        h = h * (1 + math.sqrt(0.5) * torch.randn(h.shape, generator=gen, dtype=torch.float64))
    per_draw = (((h @ weights[-1][0].T)[..., 0] - yt) ** 2).mean(dim=1)
    assert abs(float(per_draw.mean()) - exact) < 4 * float(per_draw.std()) / math.sqrt(draws)


def test_convergence_error_bounds_the_remaining_decrease(task):
    x, y, _ = task
    kwargs = dict(hidden_layers=2, width=4, n_seeds=1, init_scale=0.3, lr=0.02, device="cpu", seed=3)
    short = zu.train_grid(x, y, np.array([0.05]), steps=300, **kwargs)
    long = zu.train_grid(x, y, np.array([0.05]), steps=20000, **kwargs)
    assert np.all(short.loss - long.loss <= short.convergence_error + 1e-12)
    assert np.all(long.convergence_error < 1e-10)


def test_sigma2_requires_linear_activation(task):
    x, y, _ = task
    with pytest.raises(ValueError, match="sigma2 must be 0"):
        zu.train_grid(x, y, np.array([0.1]), hidden_layers=1, width=4, n_seeds=1, init_scale=0.1, steps=5, lr=0.05,
                      activation="tanh", sigma2=1.0)
    with pytest.raises(ValueError, match="sigma2 must be >= 0"):
        zu.train_grid(x, y, np.array([0.1]), hidden_layers=1, width=4, n_seeds=1, init_scale=0.1, steps=5, lr=0.05,
                      sigma2=-1.0)


def test_tail_estimate_cases():
    # geometric: d1 = 1e-3, d2 = 5e-4 (r = 0.5): what was left at the middle point is d2 / (1 - r) = 1e-3
    assert zu._tail_estimate(np.array([1.0015]), np.array([1.0005]), np.array([1.0]))[0] == pytest.approx(1e-3)
    # stalled at round-off: tiny changes of either sign
    eps = np.finfo(float).eps
    assert zu._tail_estimate(np.array([1.0]), np.array([1.0 + 2 * eps]), np.array([1.0]))[0] <= 4 * eps
    # growing changes: not contracting
    assert zu._tail_estimate(np.array([1.0]), np.array([0.999]), np.array([0.99]))[0] == np.inf


def test_step_gaps_tells_a_kink_from_a_jump():
    gammas = np.linspace(0.0, 1.0, 21)
    kink = np.maximum(0.5 - gammas, 0.0) * (1 + gammas)      # continuous, slope jumps at 0.5
    jump = kink + 0.3 * (gammas < 0.52)                     # the same plus a jump inside [0.5, 0.55]
    smooth = zu.step_gaps(gammas, kink)
    assert np.all(smooth.gap <= 4 * smooth.gap_err + 1e-12)
    jumped = zu.step_gaps(gammas, jump)
    at = int(np.flatnonzero(jumped.interval == 10)[0])
    assert jumped.interval[0] == 3 and jumped.interval[-1] == 16
    assert jumped.gap[at] > 4 * jumped.gap_err[at]
    # the jump less what the left branch (slope -1.5 at 0.5) falls over the step to 0.55
    np.testing.assert_allclose(jumped.gap[at], 0.3 - 1.5 * 0.05, atol=0.02)


def test_step_gaps_validates():
    gammas = np.linspace(0.0, 1.0, 10)
    with pytest.raises(ValueError, match="points"):
        zu.step_gaps(gammas, gammas, points=2)
    with pytest.raises(ValueError, match="gammas"):
        zu.step_gaps(gammas[:5], gammas[:5])
    with pytest.raises(ValueError, match="gammas"):
        zu.step_gaps(gammas[::-1], gammas)
    with pytest.raises(ValueError, match="values"):
        zu.step_gaps(gammas, gammas[:9])
