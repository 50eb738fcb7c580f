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


def test_ledger_kinds_follow_the_tests(tmp_path):
    book = ledger.Ledger("demo", ["ziyin2023zeroth", "ersoy2026metastable"])
    assert book.compare("a", 1.0, 1.05, 0.1, "why", "sec") is True
    assert book.compare("b", 1.0, 1.5, 0.1, "why", "sec", if_not=ledger.CONTRADICTED) is False
    assert book.check("c", "yes", "no", False, "why", "sec", paper="ersoy2026metastable") is False
    assert book.compare("d", 2.0, 2.3, 0.1, "why", "sec", ours=True) is False
    assert book.check("e", "theory", "simulation", True, "why", "sec", ours=True, finding="row-4") is True
    kinds = [claim.kind for claim in book.claims]
    assert kinds == [ledger.REPRODUCED, ledger.CONTRADICTED, ledger.DOES_NOT_REPRODUCE, ledger.PREDICTION,
                     ledger.PREDICTION]
    assert [claim.paper for claim in book.claims][2] == "ersoy2026metastable"
    assert book.claims[3].verdict == "our prediction: fails"
    # rows 4 and 5 rest on one finding: the first counts, once
    assert book.tally() == {ledger.REPRODUCED: 1, ledger.CONTRADICTED: 1, ledger.DOES_NOT_REPRODUCE: 1,
                            ledger.DEPENDS: 0, "our prediction: holds": 0, "our prediction: fails": 1}
    assert book.source == "Ziyin and Ueda (2023); Ersoy and Wiesner (2026)"
    path = book.save(tmp_path)
    (loaded,) = ledger.load_ledgers(tmp_path)
    assert path.exists() and loaded.claims == book.claims and loaded.papers == book.papers
    with pytest.raises(ValueError, match="tolerance"):
        book.compare("f", 1.0, 1.0, -1.0, "why", "sec")
    with pytest.raises(ValueError, match="if_not"):
        book.compare("g", 1.0, 1.0, 1.0, "why", "sec", if_not=ledger.REPRODUCED)
    with pytest.raises(ValueError, match="paper must be one of"):
        book.check("h", "x", "y", True, "why", "sec", paper="wang2026phase")
    with pytest.raises(ValueError, match="key must be a key"):
        ledger.Ledger("demo", ["nobody1999"])


def test_readings_report_the_range_and_depend_on_the_choice():
    book = ledger.Ledger("demo", ["wang2026phase"])
    assert book.readings("x", 6.0, {"centred": 6.2, "raw": 9.0}, 0.5, "why", "sec") == ledger.DEPENDS
    assert book.readings("y", 6.0, {"centred": 6.2, "raw": 5.9}, 0.5, "why", "sec") == ledger.REPRODUCED
    assert book.readings("z", 6.0, {"centred": 8.2, "raw": 9.0}, 0.5, "why", "sec") == ledger.DOES_NOT_REPRODUCE
    assert book.claims[0].our_value == "6.2 to 9 over 2 readings; agreeing: centred"


def test_readings_take_one_tolerance_per_reading():
    book = ledger.Ledger("demo", ["wang2026phase"])
    per_reading = {"centred": 0.3, "raw": 4.0}
    assert book.readings("x", 6.0, {"centred": 6.2, "raw": 9.0}, per_reading, "why", "sec") == ledger.REPRODUCED
    assert book.readings("y", 6.0, {"centred": 6.5, "raw": 9.0}, per_reading, "why", "sec") == ledger.DEPENDS
    assert book.claims[0].tolerance == "± 0.3 to 4 (per reading)"
    with pytest.raises(ValueError, match="tolerance must name exactly the readings"):
        book.readings("z", 6.0, {"centred": 6.2, "raw": 9.0}, {"centred": 0.3}, "why", "sec")
    with pytest.raises(ValueError, match="reading 'raw'"):
        book.readings("z", 6.0, {"centred": 6.2, "raw": 9.0}, {"centred": 0.3, "raw": -1.0}, "why", "sec")


def test_ledger_table_typesets_math_folds_the_reason_and_links_the_evidence(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    book = ledger.Ledger("demo", ["ziyin2023zeroth"])
    reason = "a reason far longer than the fifty characters at which pandas truncates a cell, " * 2
    book.compare("$\\beta_c$ at $\\eta = 0.9$ < 1 & more", 1.0, 1.05, 0.1, reason, "sec-demo")
    book.show()
    (html,) = shown
    assert reason.strip() in html.data and "table-layout:fixed" in html.data
    assert '<span class="math notranslate nohighlight">\\(\\beta_c\\)</span>' in html.data
    assert "&lt; 1 &amp; more" in html.data
    assert '<a href="#sec-demo">evidence</a>' in html.data and "<details><summary>tolerance" in html.data
    assert ledger.KIND_COLOURS[ledger.REPRODUCED] in html.data


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


def test_goodness_of_fit_counts_chi2_and_outliers():
    fit = stats.goodness_of_fit(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.5]), np.full(3, 0.1))
    assert fit.chi2 == pytest.approx(25.0) and fit.dof == 3 and fit.beyond == 1
    assert fit.p_value == pytest.approx(1.5440e-5, rel=1e-3) and fit.reduced_chi2 == pytest.approx(25 / 3)
    assert stats.goodness_of_fit(np.zeros(4), np.zeros(4), np.ones(4), fitted_parameters=1).dof == 3
    with pytest.raises(ValueError, match="sem"):
        stats.goodness_of_fit(np.zeros(2), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="fitted_parameters"):
        stats.goodness_of_fit(np.zeros(2), np.zeros(2), np.ones(2), fitted_parameters=2)


def test_citations_come_from_the_bibliography():
    from phaselab import references

    assert references.cite("ziyin2023zeroth") == "Ziyin and Ueda (2023)"
    assert references.cite("yang2026freezing") == "Yang et al. (2026)"
    for key in ("ziyin2023zeroth", "ersoy2026metastable", "yang2026freezing", "wang2026phase"):
        assert references.work(key).identifier.startswith(("arXiv:", "doi:")), key
    with pytest.raises(ValueError, match="key must be a key"):
        references.cite("nobody1999")


def test_book_root_is_found_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("PHASEBOOK_ROOT", raising=False)
    monkeypatch.delenv("PHASEBOOK_LEDGER_DIR", raising=False)
    (tmp_path / "book" / "sub").mkdir(parents=True)
    (tmp_path / "_toc.yml").write_text("root: book/intro\n")
    monkeypatch.chdir(tmp_path / "book" / "sub")
    assert config.book_root() == tmp_path.resolve()
    assert ledger.ledger_directory() == tmp_path.resolve() / "_build" / "ledgers"
    monkeypatch.setenv("PHASEBOOK_ROOT", str(tmp_path / "other"))
    assert config.book_root() == (tmp_path / "other").resolve()
