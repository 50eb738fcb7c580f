"""CPU and CUDA give the same answers: every device-aware torch code path of phaselab, run on both.

Two kinds of check, chosen by where the randomness comes from:

- Deterministic given its inputs (full-batch training from weights made on the CPU, minibatch
  orders or Monte Carlo noise drawn on the CPU and handed to both runs): CPU and CUDA must agree
  to a float64 tolerance, ``FLOAT64_RTOL`` relative to each array's magnitude.  Only the order
  of floating-point reductions and fused multiply-adds differ between the devices, which moves
  float64 results by ~1e-15 relative; perturbing the inputs of these tests by 1e-13 moves their
  outputs by at most 1e-12, so 1e-8 is a wide margin that still catches any real difference (a
  wrong index, a missed term, a float32 cast).
- Random numbers drawn on the device (CPU and CUDA generators give different streams from the
  same seed): the two runs are independent samples of the same law, so their statistics must
  agree within ``Z`` combined standard errors (Monte Carlo errors, binomial errors of fractions).

Where a function returns tensors, the tests also check that they live on the device asked for
and are finite.  The tests need a CUDA GPU and are skipped elsewhere (the CPU-only CI); run them
on a GPU machine with ``pytest tests/test_devices.py``.  Each test takes a few seconds at most.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import pytest
import torch

from phaselab import config, dmft, ensemble, flatness, linear_nets, neuron_gd, stats, two_valley, ziyin_ueda

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CPU = torch.device("cpu")
CUDA = torch.device("cuda")
FLOAT64_RTOL = 1e-8
Z = 4.0  # standard errors allowed between two independent samples of the same law


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def as_numpy(value: Any) -> np.ndarray:
    """A tensor (on any device), array or number as a NumPy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def assert_agree(cpu: Any, gpu: Any, rtol: float = FLOAT64_RTOL, where: str = "result") -> None:
    """CPU and CUDA results agree: walks dataclasses, lists, tuples and dicts; booleans and
    integers must be equal, floats within ``rtol`` per entry or ``rtol`` times the largest finite
    magnitude of the array (so entries that are zero up to rounding compare absolutely); infinities
    and nans must sit at the same places."""
    if dataclasses.is_dataclass(cpu):
        for field in dataclasses.fields(cpu):
            assert_agree(getattr(cpu, field.name), getattr(gpu, field.name), rtol, f"{where}.{field.name}")
    elif isinstance(cpu, (list, tuple)):
        assert len(cpu) == len(gpu), where
        for i, (a, b) in enumerate(zip(cpu, gpu)):
            assert_agree(a, b, rtol, f"{where}[{i}]")
    elif isinstance(cpu, dict):
        assert cpu.keys() == gpu.keys(), where
        for key in cpu:
            assert_agree(cpu[key], gpu[key], rtol, f"{where}[{key!r}]")
    elif cpu is None or isinstance(cpu, str):
        assert cpu == gpu, where
    else:
        a, b = as_numpy(cpu), as_numpy(gpu)
        assert a.shape == b.shape, (where, a.shape, b.shape)
        if a.dtype.kind in "biu":
            np.testing.assert_array_equal(b, a, err_msg=where)
        else:
            scale = float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))
            np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * scale, err_msg=where)


def assert_on(device: torch.device, tensors: list[torch.Tensor]) -> None:
    """Every tensor lives on ``device`` and has finite entries."""
    for i, t in enumerate(tensors):
        assert t.device.type == device.type, (i, t.device)
        assert bool(torch.isfinite(t).all()), i


def assert_same_mean(cpu_samples: np.ndarray, gpu_samples: np.ndarray, where: str) -> None:
    """Means (over axis 0) of independent CPU and CUDA samples agree within ``Z`` combined
    standard errors, entry by entry."""
    mean_cpu, sem_cpu = stats.mean_and_sem(cpu_samples)
    mean_gpu, sem_gpu = stats.mean_and_sem(gpu_samples)
    tolerance = Z * np.sqrt(sem_cpu**2 + sem_gpu**2)
    assert np.all(np.abs(mean_cpu - mean_gpu) < tolerance), (where, mean_cpu, mean_gpu, tolerance)


def assert_same_fraction(p_cpu: np.ndarray, p_gpu: np.ndarray, count: int, where: str) -> None:
    """Two fractions of ``count`` independent trials each agree within ``Z`` binomial standard
    errors of their difference, ``sqrt(2 p (1 - p) / count)`` at the pooled ``p``."""
    pooled = 0.5 * (np.asarray(p_cpu) + np.asarray(p_gpu))
    tolerance = Z * np.sqrt(2.0) * stats.binomial_sem(pooled, count)
    assert np.all(np.abs(np.asarray(p_cpu) - np.asarray(p_gpu)) < tolerance), (where, p_cpu, p_gpu, tolerance)


def on_both(run: Callable[[torch.device], Any]) -> tuple[Any, Any]:
    """``run`` on the CPU and on CUDA."""
    return run(CPU), run(CUDA)


# ----------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------


def test_config_resolves_cuda_and_seeds_cuda_generators():
    assert config.default_device() == CUDA
    assert config.resolve_device(None).type == "cuda" and config.resolve_device("cuda").type == "cuda"
    draws = [torch.randn(1000, generator=config.torch_generator(seed, "cuda"), device="cuda") for seed in (3, 3, 4)]
    assert all(d.device.type == "cuda" for d in draws)
    assert torch.equal(draws[0], draws[1]), "same seed, same CUDA stream"
    assert not torch.equal(draws[0], draws[2]), "different seeds, different CUDA streams"
    assert config.torch_generator(3).device == CPU


# ----------------------------------------------------------------------------------------------
# ensemble (Chapter 2)
# ----------------------------------------------------------------------------------------------

WIDTHS = [2, 5, 4, 2]


def ensemble_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian data of Ersoy and Wiesner (singular values 0.9, 0.8), float64 on the CPU."""
    x, y = linear_nets.gaussian_data(n, np.array([0.9, 0.8]), 2, seed)
    return torch.as_tensor(x), torch.as_tensor(y)


def test_init_weights_live_on_the_generator_device_with_the_right_scale():
    n_members, init_scale = 500, 0.3
    weights = ensemble.init_weights(n_members, WIDTHS, init_scale, config.torch_generator(1, "cuda"))
    again = ensemble.init_weights(n_members, WIDTHS, init_scale, config.torch_generator(1, "cuda"))
    assert_on(CUDA, weights)
    assert all(w.dtype == torch.float64 and torch.equal(w, v) for w, v in zip(weights, again))
    for w in weights:  # sample std of n normals: relative standard error 1/sqrt(2 n)
        n = w.numel()
        assert abs(float(w.std()) / init_scale - 1.0) < Z / np.sqrt(2 * n), (float(w.std()), n)


def test_full_batch_training_matches_cpu():
    # Deterministic: full-batch gradient descent (T = 0) from the same CPU-made weights, with
    # per-member step sizes and weight decays, a test set and escape detection.
    x, y = ensemble_data(64, seed=0)
    x_test, y_test = ensemble_data(32, seed=1)
    weights = ensemble.init_weights(6, WIDTHS, 0.1, config.torch_generator(2))
    lr = np.linspace(0.05, 0.15, 6)
    beta = np.linspace(0.0, 0.05, 6)

    def run(device: torch.device) -> ensemble.EnsembleResult:
        return ensemble.train(
            weights, x, y, epochs=300, lr=lr, batch_size=64, beta=beta, x_test=x_test, y_test=y_test,
            record_every=20, device=device, escape_index=1, escape_threshold=0.3,
        )

    cpu, gpu = on_both(run)
    assert_on(CUDA, gpu.weights)
    assert np.isfinite(gpu.escape_epoch).any(), "some member must escape for the check to bite"
    assert_agree(cpu, gpu)


@pytest.mark.parametrize("per_member_data", [False, True])
@pytest.mark.parametrize("batch_size", [16, [8, 16, 24, 64, 100, 16]])
def test_minibatch_training_matches_cpu(batch_size, per_member_data):
    # Deterministic: the minibatch orderings are drawn on the host for every device (NumPy), so both
    # devices see the same minibatches.  Covers the shared and the per-member data paths and the
    # uniform and per-member batch-size paths of the engine.
    n_members = 6
    x, y = ensemble_data(64, seed=0)
    if per_member_data:
        x = x + 0.1 * torch.randn(n_members, *x.shape, generator=config.torch_generator(5), dtype=x.dtype)
        y = y.expand(n_members, -1, -1)
    weights = ensemble.init_weights(n_members, WIDTHS, 0.3, config.torch_generator(2))
    batch = batch_size if isinstance(batch_size, int) else np.array(batch_size)

    def run(device: torch.device) -> ensemble.EnsembleResult:
        return ensemble.train(weights, x, y, epochs=20, lr=0.05, batch_size=batch, beta=0.01, seed=9, record_every=5, device=device)

    cpu, gpu = on_both(run)
    assert_on(CUDA, gpu.weights)
    assert_agree(cpu, gpu)


def test_langevin_minibatch_statistics_match_cpu():
    # Langevin noise is drawn on the device (float32 normals on the CPU,
    # float64 on CUDA): the final losses of the members are two samples of one law.  The Langevin
    # noise alone raises the mean final loss by 0.002, about 40 standard errors of the difference.
    x, y = ensemble_data(64, seed=0)
    weights = ensemble.init_weights(2000, [2, 4, 2], 0.5, config.torch_generator(3))

    def run(device: torch.device) -> ensemble.EnsembleResult:
        return ensemble.train(weights, x, y, epochs=60, lr=0.05, batch_size=16, beta=0.01, temperature=1e-3,
                              seed=4, record_every=60, device=device)

    cpu, gpu = on_both(run)
    assert_on(CUDA, gpu.weights)
    assert_same_mean(cpu.train_loss[-1], gpu.train_loss[-1], "final training loss")
    assert_same_mean(cpu.objective[-1], gpu.objective[-1], "final objective")
    assert_same_mean(cpu.singular_values[-1], gpu.singular_values[-1], "final singular values")


# ----------------------------------------------------------------------------------------------
# ziyin_ueda (Chapter 1)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["linear", "tanh"])
def test_converged_grid_matches_cpu(activation):
    # The initial weights are drawn on the device, so the two runs start apart; but at these
    # weight decays (both sides of gamma_c ~ ||E[x y]|| ~ 1) gradient descent converges, from
    # every seed, to the same minimum to machine precision (checked: gradient norm and the spread
    # over seeds), so the converged loss, norms and order parameter b are deterministic.
    x, y = ziyin_ueda.regression_task(200, 3, signal=1.0, noise=0.5, seed=0)
    gammas = np.array([0.1, 0.5, 2.0])

    def run(device: torch.device) -> ziyin_ueda.GridResult:
        return ziyin_ueda.train_grid(x, y, gammas, hidden_layers=1, width=4, n_seeds=4, init_scale=0.3, steps=1500,
                                     lr=0.05, activation=activation, seed=0, device=device)

    cpu, gpu = on_both(run)
    for result in (cpu, gpu):
        assert np.all(result.grad_norm < 1e-12), result.grad_norm
        assert np.all(np.ptp(result.loss, axis=1) < 1e-12 * np.abs(result.loss).max()), result.loss
    for name in ("loss", "data_loss", "regulariser", "norm_sq", "b"):
        assert_agree(getattr(cpu, name), getattr(gpu, name), where=name)


# ----------------------------------------------------------------------------------------------
# two_valley (Chapter 3)
# ----------------------------------------------------------------------------------------------


def test_noiseless_two_valley_dynamics_match_cpu():
    # sigma = 0: plain gradient descent on Eq. (5) from the same starts, deterministic.
    starts = np.linspace(-0.3, 0.3, 50)

    def run(device: torch.device) -> two_valley.SimulationResult:
        return two_valley.simulate([0.01, 0.05], [0.0, 0.0], 50, 400, y0=3.0, x_start=starts, record_every=100, device=device)

    cpu, gpu = on_both(run)
    assert np.all(np.isfinite(gpu.x)) and np.all(np.isfinite(gpu.y))
    assert_agree(cpu, gpu)


@pytest.mark.parametrize("noise", two_valley.NOISE_KINDS)
def test_noisy_two_valley_statistics_match_cpu(noise):
    # Noise drawn on the device, float32 as in Chapter 3.  At y = 2 and Delta_S = 1e-3 the runs
    # hop between the valleys (the occupancy leaves 1/2 and most runs cross at least once), so
    # the flat-valley fraction and the mean last-crossing step are sensitive to the noise law.
    n_runs, eta = 4000, 0.005

    def run(device: torch.device) -> two_valley.SimulationResult:
        return two_valley.simulate(eta, 1e-3 / eta, n_runs, 800, y0=2.0, seed=2, noise=noise, hold_y=True,
                                   device=device, dtype=torch.float32)

    cpu, gpu = on_both(run)
    assert np.all(np.isfinite(gpu.x)) and np.all(gpu.y == 2.0)
    assert np.mean(gpu.freezing_steps > 0) > 0.9, "runs must hop for the check to bite"
    assert_same_fraction(cpu.p_flat, gpu.p_flat, n_runs, f"{noise}: p_flat")
    assert_same_mean(cpu.freezing_steps, gpu.freezing_steps, f"{noise}: last crossing step")


# ----------------------------------------------------------------------------------------------
# flatness (Chapter 3)
# ----------------------------------------------------------------------------------------------

MLP_SIZES = (64, 16, 16, 10)
MIDDLE_DIM = 16 * 16  # parameters of the middle weight matrix, whose Hessian flatness uses


def as_float64(data: flatness.Digits) -> flatness.Digits:
    """The data set in float64 (the flatness functions follow the dtype of their inputs)."""
    return flatness.Digits(data.x_train.double(), data.y_train, data.x_test.double(), data.y_test)


def test_digits_and_initial_parameters_are_identical_on_cuda():
    cpu_data, gpu_data = on_both(lambda device: flatness.load_digits_split(10, seed=0, device=device))
    cpu_params, gpu_params = on_both(lambda device: flatness.init_params(MLP_SIZES, 3, seed=0, device=device))
    assert_on(CUDA, [gpu_data.x_train, gpu_data.x_test, *gpu_params])
    assert gpu_data.y_train.device.type == CUDA.type and gpu_data.y_test.device.type == CUDA.type
    for a, b in zip(dataclasses.astuple(cpu_data) + tuple(cpu_params), dataclasses.astuple(gpu_data) + tuple(gpu_params)):
        assert torch.equal(a, b.cpu())


def test_sgd_statistics_match_cpu():
    # Minibatch orders are drawn on the device; every run starts from the same weights, so the
    # runs' final training losses are independent samples of one law on each device.
    def run(device: torch.device) -> tuple[np.ndarray, list[list[torch.Tensor]], np.ndarray]:
        data = flatness.load_digits_split(10, seed=0, device=device)
        params = flatness.init_params(MLP_SIZES, 48, seed=0, device=device)
        steps, checkpoints = flatness.train_sgd(params, data, eta=0.2, batch_size=10, n_steps=60, n_checkpoints=3, seed=1)
        return steps, checkpoints, flatness.per_run_loss(checkpoints[-1], data.x_train, data.y_train).cpu().numpy()

    (cpu_steps, _, cpu_loss), (gpu_steps, gpu_checkpoints, gpu_loss) = on_both(run)
    np.testing.assert_array_equal(gpu_steps, cpu_steps)
    assert_on(CUDA, [p for checkpoint in gpu_checkpoints for p in checkpoint])
    assert np.std(gpu_loss) > 0, "runs with different minibatch orders must differ"
    assert_same_mean(cpu_loss, gpu_loss, "final SGD training loss")


def sgd_endpoints() -> list[torch.Tensor]:
    """Four different float64 starting points for full-batch descent: CPU SGD runs."""
    data = flatness.load_digits_split(10, seed=0, device=CPU)
    params = flatness.init_params(MLP_SIZES, 4, seed=0, device=CPU)
    _, checkpoints = flatness.train_sgd(params, data, eta=0.1, batch_size=10, n_steps=200, n_checkpoints=2, seed=1)
    return [p.double() for p in checkpoints[-1]]


def test_full_batch_continuation_and_hessian_match_cpu():
    # Deterministic: full-batch GD in float64 from the same starts, then the top Hessian
    # eigenvalues by Lanczos.  The Lanczos start vector is drawn on the device, but with
    # n_lanczos equal to the dimension the Krylov space is the whole space, so the eigenvalues do
    # not depend on it.
    starts = sgd_endpoints()

    def run(device: torch.device) -> dict[str, Any]:
        data = as_float64(flatness.load_digits_split(10, seed=0, device=device))
        ends, used = flatness.continue_full_batch([p.to(device) for p in starts], data, eta=0.1, max_steps=400, loss_tol=0.05)
        return {
            "ends": ends,
            "steps": used,
            "misclassified": flatness.misclassified(ends, data),
            "test_loss": flatness.test_set_loss(ends, data),
            "eigenvalues": flatness.top_hessian_eigenvalues(ends, data, n_top=10, n_lanczos=MIDDLE_DIM),
        }

    cpu, gpu = on_both(run)
    assert_on(CUDA, gpu["ends"])
    assert np.all(gpu["steps"] < 400) and np.ptp(gpu["steps"]) > 0, "runs must stop at different steps"
    assert np.all(gpu["eigenvalues"] > 0)
    assert_agree(cpu, gpu)


# ----------------------------------------------------------------------------------------------
# dmft and neuron_gd (Chapter 4)
# ----------------------------------------------------------------------------------------------


def cpu_path_noise() -> Callable[[int, int, torch.Generator, torch.device], torch.Tensor]:
    """A stand-in for ``dmft._path_noise`` that draws the Monte Carlo paths on the CPU (from the
    seed of the device generator) and moves them to the device: common random numbers."""
    draw = dmft._path_noise

    def noise(n_samples: int, steps: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return draw(n_samples, steps, config.torch_generator(generator.initial_seed()), CPU).to(device)

    return noise


def test_dmft_with_common_noise_matches_cpu(monkeypatch):
    # Deterministic given the path noise: the causal sweep, the Monte Carlo averages and the
    # fixed-point check.  The fixed-point residual is rounding noise (exactly 0 on the CPU), so it
    # is checked for size, not compared.
    monkeypatch.setattr(dmft, "_path_noise", cpu_path_noise())
    cpu, gpu = on_both(lambda device: dmft.solve_dmft_batch("gelu", [2.0, 6.0], 8, n_samples=4000, n_response=1000,
                                                             seed=3, check_fixed_point=True, device=device))
    for cpu_sol, gpu_sol in zip(cpu, gpu):
        assert cpu_sol.fixed_point_residual < 1e-10 and gpu_sol.fixed_point_residual < 1e-10
        assert_agree(dataclasses.replace(cpu_sol, fixed_point_residual=0.0), dataclasses.replace(gpu_sol, fixed_point_residual=0.0))


def test_delta_star_curve_with_common_noise_matches_cpu(monkeypatch):
    # Deterministic given the path noise, down to the outlier equation solved in NumPy (a root
    # solve to relative tolerance 1e-14) on the Hessian weights computed on the device.
    monkeypatch.setattr(dmft, "_path_noise", cpu_path_noise())
    cpu, gpu = on_both(lambda device: dmft.delta_star_curve("gelu", [2.0, 4.0, 8.0, 16.0], 4, dimension=200, seeds=1,
                                                             n_response=500, device=device))
    assert gpu.has_outlier.any() and not gpu.has_outlier.all(), "the grid must bracket the threshold"
    assert_agree(cpu, gpu)


def test_dmft_statistics_match_cpu():
    # Path noise drawn on the device: the training risk and the target response R_l(t, *)
    # (zero by symmetry) agree within their Monte Carlo standard errors; the stratified V_*
    # samples drawn on CUDA have exactly one sample per quantile cell.
    n_samples = 20_000
    cpu, gpu = on_both(lambda device: dmft.solve_dmft("gelu", 4.0, 10, n_samples=n_samples, n_response=2000, seed=0, device=device))
    for name in ("train_risk", "target_response"):
        diff = np.abs(getattr(cpu, name) - getattr(gpu, name))
        tolerance = Z * np.hypot(getattr(cpu, f"{name}_sem"), getattr(gpu, f"{name}_sem"))
        assert np.all(diff <= tolerance), (name, diff, tolerance)
    assert np.all(np.isfinite(gpu.c_theta)) and np.all(np.isfinite(gpu.preactivations))
    cells = np.floor(n_samples * 0.5 * (1.0 + torch.special.erf(torch.as_tensor(gpu.target_projection) / np.sqrt(2.0))).numpy())
    np.testing.assert_array_equal(np.sort(cells), np.arange(n_samples))


def test_finite_size_gradient_descent_statistics_match_cpu():
    # Data, target and initialisation are drawn on the device: per delta, the seeds' training
    # risk, test risk and smallest Hessian eigenvalue at the last step are independent samples.
    seeds, steps = 64, 30

    def run(device: torch.device) -> neuron_gd.GDRuns:
        return neuron_gd.simulate_gd("gelu", [2.0, 6.0], 80, steps, seeds=seeds, seed=1, hessian_steps=(steps,),
                                     record_preactivations=(0,), dtype=torch.float64, device=device)

    cpu, gpu = on_both(run)
    np.testing.assert_allclose(gpu.norm[:, :, 0], 1.0, rtol=1e-12)
    assert [p.shape for p in gpu.preactivations[0]] == [(seeds, 160), (seeds, 480)]
    assert np.all(np.isfinite(gpu.train_risk)) and np.all(np.isfinite(gpu.hessian[steps][0]))
    assert_same_mean(cpu.train_risk[:, :, -1], gpu.train_risk[:, :, -1], "final training risk")
    assert_same_mean(cpu.test_risk[:, :, -1], gpu.test_risk[:, :, -1], "final test risk")
    assert_same_mean(cpu.hessian[steps][0][:, :, 0], gpu.hessian[steps][0][:, :, 0], "smallest Hessian eigenvalue")
