"""Unit tests of phaselab.flatness: data, batched MLP, continuation, Eqs. (1)-(4)."""

import numpy as np
import pytest
import torch

from phaselab import flatness as fl


@pytest.fixture(scope="module")
def data():
    return fl.load_digits_split(5)


def test_digits_split_is_balanced_and_scaled(data):
    assert data.x_train.shape == (50, 64) and torch.bincount(data.y_train).tolist() == [5] * 10
    assert data.x_train.min() >= -1 and data.x_train.max() <= 1
    assert data.x_train.shape[0] + data.x_test.shape[0] == 1797


def test_runs_share_initialisation_and_differ_by_batch_order(data):
    params = fl.init_params((64, 8, 8, 10), n_runs=3)
    assert torch.equal(params[0][0], params[0][2]) and torch.all(params[1] == 0)
    _, checkpoints = fl.train_sgd(params, data, eta=0.1, batch_size=5, n_steps=20, n_checkpoints=3, seed=0)
    assert len(checkpoints) == 3 and torch.equal(checkpoints[0][0], params[0])
    assert not torch.equal(checkpoints[-1][0][0], checkpoints[-1][0][1])


def test_batched_step_equals_single_run_gradient_descent(data):
    params = fl.init_params((64, 8, 8, 10), n_runs=2)
    single = [p[:1].clone().requires_grad_(True) for p in params]
    loss = fl.per_run_loss(single, data.x_train, data.y_train).sum()
    grads = torch.autograd.grad(loss, single)
    ends, steps = fl.continue_full_batch(params, data, eta=0.1, max_steps=1, loss_tol=1e-9)
    assert np.all(steps == 1)
    for p, g, e in zip(single, grads, ends):
        assert torch.allclose(e[0], p.detach()[0] - 0.1 * g[0], atol=1e-6)
        assert torch.allclose(e[1], e[0])


def test_heavy_ball_continuation_follows_its_update_rule(data):
    """Two steps of v <- m v + g, theta <- theta - eta v, by hand; momentum only once fitted leaves
    a run that does not fit its training set on plain GD; momentum outside [0, 1) is refused."""
    params = fl.init_params((64, 6, 5, 10), n_runs=2, seed=3)
    theta = [p[:1].clone() for p in params]
    velocity = [torch.zeros_like(p) for p in theta]
    for _ in range(2):
        grads = torch.autograd.grad(fl.per_run_loss([p.requires_grad_(True) for p in theta], data.x_train,
                                                    data.y_train).sum(), theta)
        with torch.no_grad():
            velocity = [0.9 * v + g for v, g in zip(velocity, grads)]
            theta = [(p - 0.1 * v).detach() for p, v in zip(theta, velocity)]
    ends, steps = fl.continue_full_batch(params, data, 0.1, max_steps=2, loss_tol=1e-9, check_every=2, momentum=0.9)
    assert np.all(steps == 2)
    for e, t in zip(ends, theta):
        assert torch.allclose(e[0], t[0], atol=1e-6)
    plain = fl.continue_full_batch(params, data, 0.1, 2, 1e-9, check_every=2)[0]
    once_fitted = fl.continue_full_batch(params, data, 0.1, 2, 1e-9, check_every=2, momentum=0.9, momentum_once_fitted=True)[0]
    assert float(fl.train_accuracy(params, data).max()) < 1.0
    for a, b in zip(plain, once_fitted):
        assert torch.equal(a, b)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\)"):
            fl.continue_full_batch(params, data, 0.1, 2, 1e-9, momentum=bad)


def test_lanczos_matches_dense_hessian(data):
    params = fl.init_params((64, 6, 5, 10), n_runs=2)
    _, cks = fl.train_sgd(params, data, eta=0.1, batch_size=10, n_steps=30, n_checkpoints=2, seed=1)
    end = cks[-1]
    top = fl.top_hessian_eigenvalues(end, data, layer=1, n_top=5, n_lanczos=30)

    def loss_of(w):
        full = [p[:1].double() for p in end]
        full[2] = w
        return fl.per_run_loss(full, data.x_train.double(), data.y_train).sum()

    dense = torch.autograd.functional.hessian(loss_of, end[2][:1].double()).reshape(30, 30)
    exact = np.sort(np.linalg.eigvalsh(dense.numpy()))[::-1][:5]
    assert np.allclose(top[0], exact, rtol=1e-6, atol=1e-9)


def test_flatness_eq1():
    assert fl.flatness(np.array([4.0, 1.0])) == pytest.approx(0.5)
    assert np.isnan(fl.flatness(np.array([1.0, -1.0])))


def test_jaccard_and_freezing_index():
    errors = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=bool)
    sim = fl.jaccard_matrix(errors)
    assert sim[0, 1] == pytest.approx(1 / 3) and sim[1, 2] == 1 and sim[3, 4] == 1 and sim[2, 3] == 0
    assert fl.freezing_index(sim) == 3
    assert fl.freezing_index(np.ones((4, 4))) == 0
    assert fl.freezing_index(sim[1:3, 1:3]) == 0


def test_endpoint_radius_eq4():
    params = [torch.tensor([[0.0, 0.0], [2.0, 0.0]])]
    assert fl.endpoint_radius(params) == pytest.approx(1.0)


def test_bad_input_is_rejected(data):
    params = fl.init_params((64, 4, 10), n_runs=1)
    with pytest.raises(ValueError, match="eta"):
        fl.train_sgd(params, data, eta=-0.1, batch_size=5, n_steps=2, n_checkpoints=2)
    with pytest.raises(ValueError, match="batch_size"):
        fl.train_sgd(params, data, eta=0.1, batch_size=500, n_steps=2, n_checkpoints=2)
    with pytest.raises(ValueError, match="threshold"):
        fl.freezing_index(np.ones((2, 2)), threshold=1.5)
    with pytest.raises(ValueError, match="sizes"):
        fl.init_params((64,), n_runs=1)
    with pytest.raises(ValueError, match="n_train_per_class"):
        fl.load_digits_split(0)


def test_spearman_greater_exact_p_value():
    x = np.arange(9.0)
    rho, p = fl.spearman_greater(x, x)
    assert rho == pytest.approx(1.0) and p == pytest.approx(1 / 362880)
    # the exact null is symmetric: P(rho >= r) + P(rho >= -r) = 1 + P(rho = r) for r != 0
    y = np.random.default_rng(0).permutation(9).astype(float)
    rho, p = fl.spearman_greater(x, y)
    rho_neg, p_neg = fl.spearman_greater(x, -y)
    assert rho_neg == pytest.approx(-rho) and 1 <= p + p_neg <= 1.05
    rho_big, p_big = fl.spearman_greater(np.arange(12.0), np.arange(12.0))
    assert rho_big == pytest.approx(1.0) and p_big < 1e-6
    with pytest.raises(ValueError, match="x and y"):
        fl.spearman_greater(np.arange(3.0), np.arange(4.0))


def test_continuation_records_endpoint_training_loss(data):
    params = fl.init_params((64, 8, 8, 10), n_runs=2)
    result = fl.continuation_experiment(params, data, eta=0.5, batch_size=10, n_checkpoints=3,
                                        max_continuation_steps=400, loss_tol=0.3)
    assert result.train_loss.shape == (3, 2)
    ends_ok = result.converged
    assert np.all(result.train_loss[ends_ok] <= 0.3)
    # the last checkpoint is the end of SGD: its continuation can only lower the training loss
    assert np.all(np.isfinite(result.train_loss))


def test_shared_first_continuation_matches_a_full_run(data):
    params = fl.init_params((64, 8, 8, 10), n_runs=2)
    kwargs = dict(eta=0.5, batch_size=10, n_checkpoints=3, max_continuation_steps=40, loss_tol=1e-3, seed=2,
                  continuation_step=0.3)
    full = fl.continuation_experiment(params, data, **kwargs)
    first = fl.continue_full_batch(params, data, 0.3, 40, 1e-3)
    shared = fl.continuation_experiment(params, data, first_continuation=first, **kwargs)
    assert np.array_equal(full.errors, shared.errors)
    assert np.allclose(full.train_loss, shared.train_loss, rtol=1e-5)
    with pytest.raises(ValueError, match="continuation_step"):
        fl.continuation_experiment(params, data, 0.5, 10, 3, 40, 1e-3, first_continuation=first)


def test_jaccard_pairs_matches_the_matrix():
    rng = np.random.default_rng(0)
    errors = rng.random((4, 30)) < 0.3
    errors[3] = False
    pairs = fl.jaccard_pairs(errors[:, None, :], errors[None, :, :])
    assert np.allclose(pairs, fl.jaccard_matrix(errors))
    with pytest.raises(ValueError, match="shape"):
        fl.jaccard_pairs(errors, errors[:2])
