"""Unit tests of the shared modules: config, validation, stats, ledger, single_neuron."""

import numpy as np
import pytest
import torch

from phaselab import config, ledger, single_neuron, stats, validation


def test_scale_reads_environment(monkeypatch):
    monkeypatch.delenv("PHASEBOOK_SCALE", raising=False)
    assert config.scale() == "default" and config.by_scale(1, 2) == 1
    monkeypatch.setenv("PHASEBOOK_SCALE", "paper")
    assert config.by_scale(1, 2) == 2
    monkeypatch.setenv("PHASEBOOK_SCALE", "huge")
    with pytest.raises(ValueError, match="PHASEBOOK_SCALE"):
        config.scale()


@pytest.mark.parametrize(
    "check, args, match",
    [
        (validation.positive, ("beta", 0.0), "beta must be > 0"),
        (validation.non_negative, ("beta", -1.0), "beta must be >= 0"),
        (validation.finite_real, ("eta", float("nan")), "eta must be finite"),
        (validation.finite_real, ("eta", "1"), "eta must be a finite real"),
        (validation.integer, ("depth", 2.0), "depth must be an integer"),
        (validation.integer, ("depth", True), "depth must be an integer"),
        (validation.in_range, ("p", 1.5, 0.0, 1.0), r"p must lie in \[0.0, 1.0\]"),
        (validation.one_of, ("activation", "relu", ("gelu",)), "activation must be one of"),
    ],
)
def test_validation_names_the_parameter(check, args, match):
    with pytest.raises(ValueError, match=match):
        check(*args)


def test_integer_bounds():
    assert validation.integer("depth", np.int64(3), minimum=1) == 3
    with pytest.raises(ValueError, match="depth must be >= 1"):
        validation.integer("depth", 0, minimum=1)


def test_linear_fit_recovers_a_line_and_its_error():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 200)
    slopes = []
    errors = []
    for _ in range(200):
        y = 2.0 * x - 1.0 + 0.1 * rng.standard_normal(x.size)
        fit = stats.linear_fit(x, y, y_err=np.full(x.size, 0.1))
        slopes.append(fit.slope)
        errors.append(fit.slope_err)
    # the quoted standard error matches the scatter of the estimates over repetitions
    assert np.mean(slopes) == pytest.approx(2.0, abs=3 * np.std(slopes) / np.sqrt(200))
    assert np.std(slopes) == pytest.approx(np.mean(errors), rel=0.15)


def test_linear_fit_exact_line_has_unit_r_squared():
    fit = stats.linear_fit(np.arange(5.0), 3 * np.arange(5.0) + 1)
    assert fit.slope == pytest.approx(3) and fit.intercept == pytest.approx(1) and fit.r_squared == pytest.approx(1)


def test_binomial_sem_is_nonzero_at_the_edges():
    assert stats.binomial_sem(0.0, 100) > 0
    assert stats.binomial_sem(0.5, 100) == pytest.approx(0.05)


def test_ledger_verdicts_follow_the_tolerance(tmp_path):
    book = ledger.Ledger("demo", "paper")
    assert book.compare("a", 1.0, 1.05, 0.1, "why", "sec") is True
    assert book.compare("b", 1.0, 1.5, 0.1, "why", "sec") is False
    assert book.check("c", "yes", "no", False, "why", "sec") is False
    assert book.counts() == {ledger.REPRODUCED: 1, ledger.NOT_REPRODUCED: 2}
    assert list(book.table()["Verdict"]) == ["reproduced", "not reproduced", "not reproduced"]
    path = book.save(tmp_path)
    (loaded,) = ledger.load_ledgers(tmp_path)
    assert path.exists() and loaded.claims == book.claims
    with pytest.raises(ValueError, match="tolerance"):
        book.compare("d", 1.0, 1.0, -1.0, "why", "sec")


def test_ledger_show_displays_long_cells_in_full(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    book = ledger.Ledger("demo", "paper")
    reason = "a reason far longer than the fifty characters at which pandas truncates a cell, " * 2
    book.compare("claim", 1.0, 1.05, 0.1, reason, "sec")
    book.show()
    (html,) = shown
    assert reason.strip() in html.data and "table-layout: fixed" in html.data


@pytest.mark.parametrize("name", ["gelu", "quadratic"])
def test_activation_derivatives_match_finite_differences(name):
    act = single_neuron.activation(name)
    z = torch.linspace(-3, 3, 61, dtype=torch.float64)
    h = 1e-5
    assert torch.allclose(act.first(z), (act.value(z + h) - act.value(z - h)) / (2 * h), atol=1e-8)
    assert torch.allclose(act.second(z), (act.first(z + h) - act.first(z - h)) / (2 * h), atol=1e-8)


@pytest.mark.parametrize("name", ["gelu", "quadratic"])
def test_hessian_matches_autograd(name):
    gen = config.torch_generator(1)
    x, y, _ = single_neuron.sample_phase_retrieval(40, 5, gen)
    theta = single_neuron.random_unit_vector(5, gen)
    auto = torch.autograd.functional.hessian(lambda t: single_neuron.empirical_risk(x, y, t, name), theta)
    assert torch.allclose(single_neuron.hessian(x, y, theta, name), auto, atol=1e-10)


def test_hessian_weight_closed_form_for_quadratic():
    # sigma = z^2: g = 4 z^2 + 2 (z^2 - y) = 6 z^2 - 2 y
    y = np.array([0.5, 2.0])
    z = np.array([1.0, -0.3])
    assert np.allclose(single_neuron.hessian_weight(y, z, "quadratic"), 6 * z**2 - 2 * y)


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="activation must be one of"):
        single_neuron.activation("relu")
