"""Branch status rules: identifiable vs extrapolated ceilings, B at its bound, and the automatic
tau / alpha choice that never prefers an extrapolated fit."""
import numpy as np
import pytest

from plasticity.analysis import fit as F
from plasticity.analysis import status as S
from plasticity.analysis.sigmoid import B_MAX, RobustFit, SigmoidParams, sigmoid


def _branch(u, cmid, b, xmax, n=30, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([[0.0], np.linspace(xmax / n, xmax, n)])
    return x, sigmoid(x, u, cmid, b) + np.concatenate([[0.0], rng.normal(0, noise, n)])


def test_identifiable_when_cmid_inside_the_observed_compute():
    x, y = _branch(u=8.0, cmid=10.0, b=1.5, xmax=60.0)
    fit = F.fit_branch(x, y, tau=3.0, alpha=None, p_sft=70.0)
    assert fit.status == "ok" and fit.pl_rl == pytest.approx(8.0, abs=0.3)
    assert fit.x_last == pytest.approx(60.0)


def test_extrapolated_when_the_data_only_show_the_lower_half():
    x, y = _branch(u=8.0, cmid=100.0, b=1.5, xmax=40.0, noise=0.02)
    fit = F.fit_branch(x, y, tau=3.0, alpha=None, p_sft=70.0)
    assert fit.params.cmid > 40.0
    assert fit.status == "extrapolated"
    assert fit.pl_rl == pytest.approx(float(np.max(y)))      # best observed, not the fitted U
    assert fit.u_fit != pytest.approx(fit.pl_rl)


def test_b_at_its_bound_is_flagged_and_keeps_the_plateau():
    x = np.linspace(0, 10, 21)
    y = np.where(x >= 5.0, 6.0, 0.0)                          # a step between two evaluations
    fit = F.fit_branch(x, y, tau=None, alpha=None, p_sft=50.0)
    assert fit.params.b >= B_MAX - 1e-6
    assert fit.status == "b_bound" and fit.pl_rl == pytest.approx(6.0, abs=0.5)


def test_status_order():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([0.0, 2.0, 3.0, 3.5])
    p = SigmoidParams(u=4.0, cmid=1.0, b=2.0, c0=0.0)
    assert S.branch_status(p, x, y, 50.0) == "ok"
    assert S.branch_status(SigmoidParams(4.0, 5.0, 2.0, 0.0), x, y, 50.0) == "extrapolated"
    assert S.branch_status(SigmoidParams(4.0, 1.0, B_MAX, 0.0), x, y, 50.0) == "b_bound"
    assert S.branch_status(SigmoidParams(60.0, 1.0, 2.0, 0.0), x, y, 50.0) == "implausible"
    assert S.branch_status(SigmoidParams(100.0, 5.0, 2.0, 0.0), x, y, 50.0) == "bound"
    assert S.branch_status(p, x, np.array([0.0, 0.2, 0.3, 0.1]), 50.0) == "flat"


def test_auto_choice_never_prefers_an_extrapolated_fit(monkeypatch):
    """(2.5, none) validates best but its fit puts Cmid past the data; (4, 0.85) is identifiable."""
    x, y = _branch(u=8.0, cmid=10.0, b=1.5, xmax=60.0)
    fits = {(2.5, None): 600.0, (3.0, None): 70.0, (4.0, 0.85): 12.0}       # Cmid of each choice
    rmses = {(2.5, None): 0.1, (3.0, None): 0.2, (4.0, 0.85): 0.5}

    def fake_fit(xf, yf, t, a, eps):
        if (t, a) not in fits:
            raise RuntimeError("no fit")
        return RobustFit(SigmoidParams(8.0, fits[(t, a)] / F.branch_scale(x), 1.5, 0.0),
                         np.ones(len(xf), bool), 0, 0)

    monkeypatch.setattr(F, "robust_fit", fake_fit)
    monkeypatch.setattr(F, "_validation_rmse", lambda xf, yf, t, a, eps: rmses.get((t, a), float("nan")))
    fit = F.fit_branch(x, y, p_sft=70.0)
    assert (fit.tau, fit.alpha) == (4.0, 0.85) and fit.status == "ok"
    # with no identifiable choice at all, the best validation RMSE is taken and flagged
    fits.update({(3.0, None): 700.0, (4.0, 0.85): 800.0})
    fit = F.fit_branch(x, y, p_sft=70.0)
    assert (fit.tau, fit.alpha) == (2.5, None) and fit.status == "extrapolated"


def test_collapse_needs_the_fall_to_last():
    assert S.detect_collapse([0.0, 5.0, 6.0, -1.0, -2.0, -1.5]) == 2
    assert S.detect_collapse([0.0, 5.0, 6.0, -1.0, -2.0, 0.5]) is None       # recovered
    assert S.detect_collapse([0.0, 0.3, -1.0, -1.0, -1.0]) is None           # never rose
