"""Branch status rules: identifiable vs extrapolated ceilings, parameters at their bounds, a poor
validation fit, symmetric rise / fall rules, and the automatic tau / alpha choice that never prefers
an extrapolated fit."""
import numpy as np
import pytest

from plasticity.analysis import fit as F
from plasticity.analysis import status as S
from plasticity.analysis.sigmoid import B_MAX, B_MIN, RobustFit, SigmoidParams, sigmoid


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


def test_b_at_its_bound_is_flagged_and_reports_the_best_observed_value():
    x = np.linspace(0, 10, 21)
    y = np.where(x >= 5.0, 6.0, 0.0) + np.where(x == 7.0, 0.4, 0.0)   # a step between two evaluations
    fit = F.fit_branch(x, y, tau=None, alpha=None, p_sft=50.0)
    assert fit.params.b >= B_MAX - 1e-6
    assert fit.status == "bound" and fit.pl_rl == pytest.approx(6.4)
    assert "bound" not in S.IDENTIFIABLE


def test_status_order():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([0.0, 2.0, 3.0, 3.5])
    p = SigmoidParams(u=4.0, cmid=1.0, b=2.0, c0=0.0)
    assert S.branch_status(p, x, y, 50.0) == "ok"
    assert S.branch_status(SigmoidParams(4.0, 5.0, 2.0, 0.0), x, y, 50.0) == "extrapolated"
    assert S.branch_status(SigmoidParams(4.0, 1.0, B_MAX, 0.0), x, y, 50.0) == "bound"
    assert S.branch_status(SigmoidParams(4.0, 1.0, B_MIN, 0.0), x, y, 50.0) == "bound"
    assert S.branch_status(SigmoidParams(4.0, 1e-9, 2.0, 0.0), x, y, 50.0) == "bound"        # Cmid
    assert S.branch_status(SigmoidParams(60.0, 1.0, 2.0, 0.0), x, y, 50.0) == "implausible"
    assert S.branch_status(SigmoidParams(100.0, 5.0, 2.0, 0.0), x, y, 50.0) == "bound"
    assert S.branch_status(p, x, np.array([0.0, 0.2, 0.3, 0.1]), 50.0) == "flat"
    assert S.branch_status(p, x, y, 50.0, rmse_val=S.RMSE_VAL_MAX + 0.1) == "poor_fit"
    assert S.branch_status(p, x, y, 50.0, rmse_val=S.RMSE_VAL_MAX) == "ok"
    assert S.branch_status(SigmoidParams(4.0, 5.0, 2.0, 0.0), x, y, 50.0, rmse_val=30.0) == "extrapolated"


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
    assert S.detect_collapse([0.0, 5.0, 6.0, -0.1, -0.2, -0.3]) is None      # within FLAT_GAIN of the start
    assert S.detect_collapse([0.0, 5.0, 6.0, -0.1, -2.0, -0.3]) == 2         # on average 0.8 below


def test_rise_and_fall_are_judged_alike():
    """A branch that only falls is collapsed like one that rose first (the miniature's all@800, -4.8,
    and uniform@800, +2.7 then -1.7); both are flagged and left out of Table 5."""
    x = np.linspace(0, 6e-6, 7)
    only_falls = np.array([0.0, -1.0, -2.0, -3.5, -4.0, -4.5, -4.8])
    rose_first = np.array([0.0, 1.5, 2.7, 0.5, -1.0, -1.5, -1.7])
    for y, peak in ((only_falls, 0.0), (rose_first, 2.7)):
        fit = F.fit_branch(x, y, p_sft=64.1)
        assert fit.status == "collapsed" and fit.pl_rl == pytest.approx(peak)
    assert "collapsed" not in S.IDENTIFIABLE
    # the mirror image of a flat branch (never more than FLAT_GAIN above) is flat too
    assert F.fit_branch(x, -np.array([0.0, 0.3, 0.1, 0.4, 0.2, 0.3, 0.4]), p_sft=50.0).status == "flat"
