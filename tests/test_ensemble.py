"""Tests of phaselab.ensemble against a per-member autograd loop, closed forms and invariances."""

import numpy as np
import pytest
import torch

from phaselab import config, ensemble, escape, linear_nets

WIDTHS = [2, 5, 4, 2]


def _data(n=48, seed=0):
    x, y = linear_nets.gaussian_data(n, np.array([0.9, 0.8]), 2, seed)
    return torch.as_tensor(x), torch.as_tensor(y)


def _autograd_loop(weights, x, y, epochs, lr, beta, batch, seed):
    """The straightforward per-member implementation, for comparison."""
    n_members, n = weights[0].shape[0], x.shape[0]
    current = [w.clone() for w in weights]
    generator = config.numpy_rng(seed)
    for _ in range(epochs):
        order = ensemble.epoch_permutations(n_members, n, generator)
        for m in range(n_members):
            for step in range(ensemble.steps_per_epoch(n, batch[m])):
                index = order[m, step * batch[m] : (step + 1) * batch[m]]
                params = [w[m].clone().requires_grad_() for w in current]
                out = x[index]
                for p in params:
                    out = out @ p.T
                loss = 0.5 * (out - y[index]).square().sum(1).mean() + 0.5 * beta[m] * sum(p.square().sum() for p in params)
                loss.backward()
                with torch.no_grad():
                    for w, p in zip(current, params):
                        w[m] -= lr[m] * p.grad
    return current


def test_init_weights_shapes_and_seed():
    a = ensemble.init_weights(3, WIDTHS, 0.5, config.torch_generator(4))
    b = ensemble.init_weights(3, WIDTHS, 0.5, config.torch_generator(4))
    assert [tuple(w.shape) for w in a] == [(3, 5, 2), (3, 4, 5), (3, 2, 4)]
    assert all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("batch", [[8, 8, 8], [8, 13, 48]])
def test_train_matches_per_member_autograd(batch):
    x, y = _data()
    weights = ensemble.init_weights(3, WIDTHS, 0.4, config.torch_generator(1))
    lr, beta = [0.05, 0.1, 0.02], [0.0, 0.1, 0.3]
    batch_size = batch[0] if len(set(batch)) == 1 else np.array(batch)
    result = ensemble.train(weights, x, y, epochs=3, lr=np.array(lr), batch_size=batch_size, beta=np.array(beta), seed=5, device="cpu")
    expected = _autograd_loop(weights, x, y, 3, lr, beta, batch, seed=5)
    for got, want in zip(result.weights, expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_records_and_losses_are_consistent():
    x, y = _data()
    weights = ensemble.init_weights(2, WIDTHS, 0.4, config.torch_generator(2))
    res = ensemble.train(weights, x, y, epochs=5, lr=0.05, batch_size=16, beta=0.1, x_test=x, y_test=y, record_every=2, device="cpu")
    assert list(res.epochs) == [0, 2, 4, 5]
    assert res.singular_values.shape == (4, 2, 2) and res.train_loss.shape == (4, 2)
    np.testing.assert_allclose(res.train_loss, res.test_loss)
    product = ensemble.end_to_end(res.weights)
    direct = 0.5 * (x @ product.transpose(1, 2) - y).square().sum(-1).mean(-1)
    np.testing.assert_allclose(res.train_loss[-1], direct.numpy(), rtol=1e-12)


def test_full_batch_gradient_descent_reaches_the_mode_minima():
    """Whitened data: GD from a random start converges to the minima of the mode loss (Eq. 2)."""
    x, y = linear_nets.whitened_data(16, np.array([0.9, 0.8]), 2, seed=0)
    weights = ensemble.init_weights(4, [2, 6, 6, 2], 0.5, config.torch_generator(3))
    res = ensemble.train(weights, x, y, epochs=3000, lr=0.2, batch_size=16, beta=0.1, record_every=3000, device="cpu")
    minima = [linear_nets.stationary_points(eta, 0.1, 3)[1] for eta in (0.9, 0.8)]
    np.testing.assert_allclose(res.singular_values[-1], np.tile(minima, (4, 1)), rtol=1e-6)


def test_langevin_noise_has_the_stated_variance():
    """Without data the update is W <- (1 - lr beta) W + sqrt(2 lr T) xi, whose stationary variance
    is T / (beta (1 - lr beta / 2))."""
    n_members, lr, beta, temp = 2000, 0.1, 0.5, 0.01
    weights = [torch.zeros(n_members, 1, 1, dtype=torch.float64) for _ in range(3)]
    zeros = torch.zeros(4, 1, dtype=torch.float64)
    res = ensemble.train(weights, zeros, zeros, epochs=400, lr=lr, batch_size=4, beta=beta, temperature=temp, seed=3, device="cpu")
    samples = torch.cat([w.flatten() for w in res.weights]).numpy()
    expected = temp / (beta * (1 - lr * beta / 2))
    sem = expected * np.sqrt(2 / samples.size)
    assert abs(samples.var() - expected) < 4 * sem, (samples.var(), expected)


def test_exact_low_rank_trap_is_invariant_under_sgd_with_label_noise():
    x, y = _data(n=64, seed=4)
    y = y + 2.0 * torch.randn(y.shape, generator=config.torch_generator(9), dtype=y.dtype)
    beta = 0.2
    lam = linear_nets.stationary_points(0.9, beta, 3)[1]
    trap = escape.trap_ensemble([lam, 0.0], [2, 10, 10, 2], 4, config.torch_generator(0))
    res = ensemble.train(trap, x, y, epochs=200, lr=0.08, batch_size=8, beta=beta, record_every=10, device="cpu")
    assert res.singular_values[:, :, 1].max() < 1e-12
    assert res.singular_values[-1, :, 0].min() > 0.1


def test_escape_detection_agrees_with_records():
    x, y = linear_nets.whitened_data(16, np.array([0.9, 0.8]), 2, seed=0)
    weights = ensemble.init_weights(5, [2, 6, 6, 2], 0.3, config.torch_generator(3))
    args = dict(epochs=600, lr=0.1, batch_size=16, beta=0.05, device="cpu", escape_index=1, escape_threshold=0.6)
    res = ensemble.train(weights, x, y, **args)
    np.testing.assert_array_equal(res.escape_epoch, res.first_crossing(1, 0.6))
    assert np.all(np.isfinite(res.escape_epoch)) and res.escape_epoch.min() > 0
    early = ensemble.train(weights, x, y, **args, stop_when_escaped=True)
    assert early.epochs_run == int(res.escape_epoch.max())


def test_recorded_mode_amplitudes_are_projections_of_the_end_to_end_map():
    x, y = _data()
    weights = ensemble.init_weights(3, WIDTHS, 0.4, config.torch_generator(2))
    left = np.linalg.qr(config.numpy_rng(0).standard_normal((2, 2)))[0]
    right = np.eye(2)[:, ::-1]
    res = ensemble.train(weights, x, y, epochs=4, lr=0.05, batch_size=16, beta=0.1, record_every=2, device="cpu",
                         record_modes=(left, right))
    assert res.mode_amplitudes.shape == (3, 3, 2)
    product = ensemble.end_to_end(res.weights).numpy()
    expected = np.einsum("ok,moi,ik->mk", left, product, right)
    np.testing.assert_allclose(res.mode_amplitudes[-1], expected, rtol=1e-12)
    plain = ensemble.train(weights, x, y, epochs=4, lr=0.05, batch_size=16, beta=0.1, record_every=2, device="cpu")
    assert plain.mode_amplitudes is None
    np.testing.assert_array_equal(plain.singular_values, res.singular_values)  # recording changes nothing


def test_mode_crossing_tracks_each_data_mode():
    """Whitened data (Sigma_yx diagonal): mode k is the entry E_kk, and each crosses halfway to its own
    minimum (Eq. 2), whatever the order of the singular values."""
    eta = np.array([0.9, 0.8])
    x, y = linear_nets.whitened_data(16, eta, 2, seed=0)
    weights = ensemble.init_weights(4, [2, 6, 6, 2], 0.3, config.torch_generator(3))
    res = ensemble.train(weights, x, y, epochs=600, lr=0.1, batch_size=16, beta=0.05, device="cpu", record_modes=(np.eye(2), np.eye(2)))
    minima = [linear_nets.stationary_points(e, 0.05, 3)[1] for e in eta]
    np.testing.assert_allclose(res.mode_amplitudes[-1], np.tile(minima, (4, 1)), rtol=1e-6)
    for k in range(2):
        crossing = res.mode_crossing(k, 0.5 * minima[k])
        first = np.argmax(res.mode_amplitudes[:, :, k] > 0.5 * minima[k], axis=0)
        np.testing.assert_array_equal(crossing, res.epochs[first])
    assert np.all(np.isinf(res.mode_crossing(0, 2.0)))
    with pytest.raises(ValueError, match="index must be"):
        res.mode_crossing(2, 0.1)
    with pytest.raises(ValueError, match="record_modes"):
        ensemble.train(weights, x, y, epochs=1, lr=0.1, batch_size=16, beta=0.05, device="cpu").mode_crossing(0, 0.1)


def test_same_seed_same_numbers_and_per_member_data():
    x, y = _data()
    xs, ys = torch.stack([x, x.flip(0)]), torch.stack([y, y.flip(0)])
    weights = ensemble.init_weights(2, WIDTHS, 0.4, config.torch_generator(1))
    a = ensemble.train(weights, xs, ys, epochs=2, lr=0.05, batch_size=8, beta=0.1, temperature=1e-3, seed=7, device="cpu")
    b = ensemble.train(weights, xs, ys, epochs=2, lr=0.05, batch_size=8, beta=0.1, temperature=1e-3, seed=7, device="cpu")
    assert all(torch.equal(u, v) for u, v in zip(a.weights, b.weights))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lr=-0.1), "lr must be > 0"),
        (dict(beta=np.array([0.1, -1.0])), "beta must have entries >= 0"),
        (dict(temperature=np.ones(3)), r"temperature must be a number or have shape \(2,\)"),
        (dict(batch_size=0), "batch_size must be >= 1"),
        (dict(epochs=1.5), "epochs must be an integer"),
        (dict(escape_index=1), "escape_index and escape_threshold must be given together"),
        (dict(stop_when_escaped=True), "stop_when_escaped needs"),
        (dict(x_test=np.zeros((3, 2))), "x_test and y_test must be given together"),
        (dict(record_modes=np.eye(2)), "record_modes must be a pair"),
        (dict(record_modes=(np.eye(2), np.eye(3))), r"record_modes must have shapes \(2, k\) and \(2, k\)"),
        (dict(record_modes=(np.eye(2), np.full((2, 2), np.nan))), r"record_modes\[1\] must have finite entries"),
    ],
)
def test_train_rejects_bad_arguments(kwargs, match):
    x, y = _data()
    weights = ensemble.init_weights(2, WIDTHS, 0.4, config.torch_generator(1))
    args = dict(epochs=1, lr=0.1, batch_size=8, beta=0.1, device="cpu") | kwargs
    with pytest.raises(ValueError, match=match):
        ensemble.train(weights, x, y, **args)


def test_shape_errors_name_the_argument():
    weights = ensemble.init_weights(2, WIDTHS, 0.4, config.torch_generator(1))
    with pytest.raises(ValueError, match="x_train must have shape"):
        ensemble.train(weights, np.zeros((5, 3)), np.zeros((5, 2)), epochs=1, lr=0.1, batch_size=2, beta=0.0, device="cpu")
    with pytest.raises(ValueError, match="widths"):
        ensemble.init_weights(2, [3], 0.1, config.torch_generator(0))
    with pytest.raises(ValueError, match="init_scale must be > 0"):
        ensemble.init_weights(2, WIDTHS, 0.0, config.torch_generator(0))
