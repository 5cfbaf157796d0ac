"""Robust sigmoid fits: parameter recovery with planted outliers, LTS, free c0, collapse, bad input."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from plasticity.analysis import fit as F
from plasticity.analysis import artifacts as A
from plasticity.analysis import forms
from plasticity.analysis import sigmoid as S
from plasticity.analysis.fit import fit_branch
from plasticity.analysis.sigmoid import robust_fit, sigmoid
from plasticity.analysis.status import STATUSES, detect_collapse

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "analysis" / "tiny_run"


def _synthetic(u=8.0, cmid=10.0, b=1.5, c0=0.0, n=30, noise=0.1, seed=0, xmax=60.0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([[0.0], np.linspace(xmax / n, xmax, n)])
    y = sigmoid(x, u, cmid, b, c0) + np.concatenate([[0.0], rng.normal(0, noise, n)])
    return x, y


def test_sigmoid_shape():
    assert sigmoid(np.array([0.0]), 5, 1, 1)[0] == 0.0
    assert sigmoid(np.array([1.0]), 6, 1, 2)[0] == pytest.approx(3.0)
    assert sigmoid(np.array([1e9]), 6, 1, 2)[0] == pytest.approx(6.0)


def test_outliers_rejected_and_parameters_recovered():
    x, y = _synthetic()
    y_bad = y.copy()
    y_bad[[5, 12, 20]] -= 6.0                       # evaluation glitches
    plain = S.fit_sigmoid(x, y_bad)
    fit = robust_fit(x, y_bad, tau=3.0)
    assert fit.n_outliers >= 3 and not fit.kept[[5, 12, 20]].any()
    assert fit.kept[0]                              # branch point is never dropped
    assert abs(fit.params.u - 8.0) < 0.2 < abs(plain.u - 8.0)
    assert fit.params.cmid == pytest.approx(10.0, rel=0.1)
    assert fit.params.b == pytest.approx(1.5, rel=0.15)


def test_lts_trims_the_worst_points():
    x, y = _synthetic(seed=1)
    y_bad = y.copy()
    y_bad[[25, 28]] += 4.0
    fit = robust_fit(x, y_bad, tau=None, alpha=0.85)
    h = int(np.floor(len(x) * 0.85))
    assert fit.kept.sum() == h and fit.n_trimmed == len(x) - h
    assert not fit.kept[[25, 28]].any()
    assert fit.params.u == pytest.approx(8.0, abs=0.2)


def test_free_c0_recovers_offset_and_fixed_c0_is_respected():
    x, y = _synthetic(c0=2.0, seed=2)
    x, y = x[1:], y[1:]                            # a jump at the switch: no (0, 0) point
    free = robust_fit(x, y, tau=None, eps="free", anchor=None)
    assert free.params.c0 == pytest.approx(2.0, abs=0.6)
    assert free.params.u == pytest.approx(8.0, abs=0.3)
    fixed = robust_fit(x, y, tau=None, eps=1.0, anchor=None)
    assert fixed.params.c0 == 1.0


def test_collapse_needs_a_sustained_fall_below_the_branch_point():
    x = np.arange(0, 16, dtype=float)
    y = np.concatenate([[0], sigmoid(x[1:11], 10, 3, 2), [4.0, -1.0, -2.0, -2.5, -3.0]])
    assert detect_collapse(y) == 10
    fit = fit_branch(x, y, tau=3.0, alpha=None)
    assert fit.collapsed and fit.status == "collapsed"
    assert fit.pl_rl == pytest.approx(y[10])
    stable = sigmoid(x, 10, 3, 2)
    assert detect_collapse(stable) is None
    assert detect_collapse(stable - np.where(x > 12, 1.0, 0.0)) is None   # small dip: not a collapse
    # a fall that stays above the branch point is a decline, not a collapse
    assert detect_collapse(np.concatenate([y[:11], [4.0, 2.0, 1.0, 0.5, 0.1]])) is None
    # two trailing points below P_sft are not sustained (k = max(3, ceil(N / 5)))
    assert detect_collapse([0.0, 3.0, 2.0, 2.5, -1.0, -1.0]) is None
    # one high point followed by three below P_sft: the miniature's easy@400 shape
    assert detect_collapse([0.0, 3.0, -1.0, -1.0, -1.5]) == 1


@pytest.mark.parametrize("y", [[0.0, 0.0, 0.0, 0.0, 0.0], [0.0, -1.0, -2.0, -2.5, -3.0],
                               [0.0, 1.0, 0.5, 1.2, 0.8], [0.0, 2.0]])
def test_tiny_branches_never_crash(y):
    x = np.linspace(0, 4e-6, len(y))               # tiny-model compute: micro-EF
    fit = fit_branch(x, y)
    assert fit.status in STATUSES
    if len(y) < 3:
        assert fit.status == "failed" and fit.params is None
    assert np.isfinite(fit.pl_rl) and fit.pl_rl >= 0.0
    if fit.status != "ok":
        assert fit.pl_rl == max(y)                  # the best observed gain (>= the branch point)


def test_tiny_scale_compute_is_fitted_like_large_scale():
    x, y = _synthetic(noise=0.0)
    small = fit_branch(x * 1e-7, y, tau=None, alpha=None)
    assert small.params.u == pytest.approx(8.0, abs=1e-3)
    assert small.params.cmid == pytest.approx(1e-6, rel=1e-3)


def test_fit_is_scale_invariant():
    """The same branch with x times 1e-9 (study EF -> miniature EF): same U, B, hyperparameters and
    rejected points, Cmid times 1e-9 (x is fitted as x / s, s = the branch's median positive x)."""
    x, y = _synthetic(noise=0.3, seed=4)
    y[[7, 19]] -= 3.0                              # outliers, so Stage 1 / LTS decisions are compared
    big = fit_branch(x, y)                          # tau and alpha chosen by validation RMSE
    small = fit_branch(x * 1e-9, y)
    assert small.scale == pytest.approx(big.scale * 1e-9, rel=1e-12)
    assert (small.tau, small.alpha, small.status) == (big.tau, big.alpha, big.status) == (
        big.tau, big.alpha, "ok")
    assert (small.n_outliers, small.n_trimmed) == (big.n_outliers, big.n_trimmed)
    np.testing.assert_array_equal(small.kept, big.kept)
    assert small.params.u == pytest.approx(big.params.u, rel=1e-6)
    assert small.params.b == pytest.approx(big.params.b, rel=1e-6)
    assert small.params.cmid == pytest.approx(big.params.cmid * 1e-9, rel=1e-6)
    assert small.rmse_val == pytest.approx(big.rmse_val, rel=1e-6)
    assert big.params.u == pytest.approx(8.0, abs=0.5)


def test_cmid_lower_bound_is_relative_to_the_data():
    """At x ~ 1e-7 an absolute Cmid bound of 1e-8 EF would sit inside the data; the bound is 1e-8
    times the median x, so a sharp rise below the first point is still fitted."""
    x = np.concatenate([[0.0], np.linspace(1e-9, 3e-8, 12)])
    y = sigmoid(x, 5.0, 3e-9, 2.0)
    fit = fit_branch(x, y, tau=None, alpha=None)
    assert fit.status == "ok" and fit.params.cmid == pytest.approx(3e-9, rel=1e-3)


def _row(x, y, p_sft):
    fit = fit_branch(x, y, tau=None, alpha=None, p_sft=p_sft)
    return F._branch_row("d", 1, 1.0, p_sft, fit, 0.0, True)


def test_degenerate_branches_report_the_best_observed_value():
    """flat / decreasing / bound / implausible: A_post = P_sft + max gain (never outside [0, 100]);
    the rejected fit's U stays in u_fit."""
    x = np.array([0.0, 3.6e-7, 7.0e-7, 1.03e-6, 1.38e-6])
    # the miniature's uniform@600: a small early bump, then decreasing; used to give U = -100
    r = _row(x, np.array([21.9, 23.1, 21.7, 22.4, 20.5]) - 21.9, 21.9)
    assert r["status"] == "flat" and r["u_fit"] < 0
    assert r["a_post"] == pytest.approx(23.1) and r["pl_rl"] == pytest.approx(1.2)
    # never above the branch point, the last three 0.53 below it on average: a sustained fall, judged
    # as one after a peak would be; A_post is the branch point itself
    r = _row(x, np.array([0.0, -1.3, -0.2, -0.7, -0.7]), 5.4)
    assert r["status"] == "collapsed" and r["a_post"] == 5.4 and r["pl_rl"] == 0.0
    r = _row(x, np.array([0.0, -1.3, -0.2, -0.3, -0.7]), 5.4)           # 0.4 below: within noise
    assert r["status"] == "flat" and r["a_post"] == 5.4 and r["pl_rl"] == 0.0
    # an unsaturated rise: U runs to the +100 bound
    xb = np.concatenate([[0.0], np.linspace(1, 10, 12)])
    r = _row(xb, 0.5 * xb, 40.0)
    assert r["status"] == "bound" and r["u_fit"] == pytest.approx(100.0)
    assert r["a_post"] == pytest.approx(45.0) and r["max_obs"] == pytest.approx(45.0)
    # a ceiling above 100 %
    ys = sigmoid(xb, 8.0, 3.0, 1.5)
    r = _row(xb, ys, 92.5)              # ceiling 100.5 %, best observed 99.4 %
    assert r["status"] == "implausible" and r["u_fit"] == pytest.approx(8.0, rel=1e-4)
    assert r["a_post"] == pytest.approx(92.5 + ys.max()) and r["a_post"] <= 100.0
    # a healthy branch is untouched: A_post = P_sft + U
    r = _row(xb, ys, 70.0)
    assert r["status"] == "ok" and r["a_post"] == pytest.approx(78.0, abs=1e-4)
    assert r["pl_rl"] == r["u_fit"]


def test_fits_csv_keeps_full_precision(tmp_path):
    """Tiny compute (1e-6 EF) must survive FITS.csv (it used to be written as 0.0000)."""
    out = tmp_path / "fits.csv"
    assert F.main(["--curves", str(TINY / "curves.csv"), "--hparams", str(TINY / "branches.csv"),
                   "--out", str(out)]) == 0
    rows = {(r["dataset"], int(r["sft_step"])): r for r in csv.DictReader(open(out))}
    branches = {(r["dataset"], int(r["sft_step"])): float(r["x_sft_ef"])
                for r in csv.DictReader(open(TINY / "branches.csv"))}
    for key, x_sft in branches.items():
        assert float(rows[key]["x_sft_ef"]) == pytest.approx(x_sft, rel=1e-11, abs=0.0)
    cmid = float(rows[("pure_rl", 0)]["cmid_ef"])
    assert 1e-8 < cmid < 1e-5                       # micro-EF, not 0
    for r in rows.values():                         # never a ceiling outside [0, 100]
        assert 0.0 <= float(r["a_post"]) <= 100.0
    assert rows[("uniform", 600)]["status"] == "flat"
    assert float(rows[("uniform", 600)]["a_post"]) == pytest.approx(23.1)
    first = out.read_bytes()
    assert F.main(["--curves", str(TINY / "curves.csv"), "--hparams", str(TINY / "branches.csv"),
                   "--out", str(out)]) == 0
    assert out.read_bytes() == first


def test_auto_hyperparameters_and_best_form():
    x, y = _synthetic(seed=3)
    fit = fit_branch(x, y)                          # tau, alpha chosen
    assert fit.tau in F.TAU_GRID and fit.alpha in F.ALPHA_GRID
    assert np.isfinite(fit.rmse_val) and fit.rmse_val < 0.5
    lin = forms.fit_best_form(np.arange(20.0), 3.0 * np.arange(20.0) + 1.0)
    assert lin["form"] in {"linear", "power"} and lin["rmse_val"] < 1e-3


def _write_curves(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "branch_step", "phase", "x_ef", "benchmark", "accuracy"])
        w.writerows(rows)


def test_cli_on_miniature_curves_with_weights(tmp_path):
    rows = [["uniform", "", "sft", 0.0, "a", 10.0], ["uniform", "", "sft", 0.0, "b", 20.0],
            ["uniform", "", "sft", 1e-6, "a", 30.0], ["uniform", "", "sft", 1e-6, "b", 40.0]]
    for i, xv in enumerate([0.0, 1e-7, 2e-7, 3e-7, 4e-7, 5e-7]):
        gain = 10 * xv / (xv + 1e-7)
        rows += [["uniform", 200, "rl", xv, "a", 30 + gain], ["uniform", 200, "rl", xv, "b", 40 + gain]]
    curves = tmp_path / "curves.csv"
    _write_curves(curves, rows)
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"a": 3, "b": 1}))
    out = tmp_path / "fits.csv"
    assert F.main(["--curves", str(curves), "--weights", str(weights), "--out", str(out)]) == 0
    (row,) = list(csv.DictReader(open(out)))
    assert float(row["p_sft"]) == pytest.approx(32.5)
    assert row["status"] in {"ok", "bound"} and float(row["a_post"]) > 32.5
    first = out.read_bytes()
    assert F.main(["--curves", str(curves), "--weights", str(weights), "--out", str(out)]) == 0
    assert out.read_bytes() == first                # deterministic


def test_bad_rows_name_file_line_and_field(tmp_path):
    curves = tmp_path / "c.csv"
    _write_curves(curves, [["d", "", "sft", "zero", "a", 1.0]])
    with pytest.raises(A.FitError, match=r"c.csv:2: fields 'x_ef'"):
        A.read_curve_rows(curves)
    _write_curves(curves, [["d", "x", "rl", 1.0, "a", 1.0]])
    with pytest.raises(A.FitError, match=r"c.csv:2: field 'branch_step'"):
        A.read_curve_rows(curves)
    _write_curves(curves, [["d", 1, "rl", 1.0, "gsm8k", 1.0]])
    with pytest.raises(A.FitError, match=r"no accuracy for benchmark\(s\)"):
        A.overall_curves(A.read_curve_rows(curves))
    hp = tmp_path / "h.csv"
    hp.write_text("dataset,sft_step,x_sft_ef,outlier_tau,lts_alpha,eps\nd,1,1.0,3,0.3,0\n")
    with pytest.raises(A.FitError, match=r"h.csv:2: field 'lts_alpha'"):
        A.read_hparams(hp)


def test_branch_point_from_the_sft_curve_without_hparams(tmp_path):
    """Curves without x = 0 RL rows: each branch starts from the SFT checkpoint paired with it."""
    rows = [["d", "", "sft", 0.0, "overall", 40.0], ["d", "", "sft", 1.0, "overall", 60.0],
            ["d", "", "sft", 2.0, "overall", 65.0]]
    for step, p_sft in ((100, 60.0), (200, 65.0)):
        for xv in (0.5, 1, 2, 3, 4, 6, 8, 10):
            rows.append(["d", step, "rl", xv, "overall", p_sft + 6 * xv / (xv + 2)])
    for xv in (0.5, 1, 2, 4, 8):
        rows.append(["d", 0, "rl", xv, "overall", 40.0 + 20 * xv / (xv + 1)])
    curves = tmp_path / "curves.csv"
    _write_curves(curves, rows)
    out = tmp_path / "fits.csv"
    assert F.main(["--curves", str(curves), "--out", str(out)]) == 0
    got = {int(r["sft_step"]): r for r in csv.DictReader(open(out))}
    assert float(got[100]["p_sft"]) == 60.0 and float(got[100]["x_sft_ef"]) == 1.0
    assert float(got[200]["p_sft"]) == 65.0 and float(got[200]["x_sft_ef"]) == 2.0
    assert float(got[0]["p_sft"]) == 40.0 and float(got[0]["x_sft_ef"]) == 0.0
    # an SFT curve with more checkpoints than branches cannot be paired: the error says what to give
    _write_curves(curves, rows + [["d", "", "sft", 3.0, "overall", 66.0]])
    with pytest.raises(A.FitError, match=r"d branch_step 100: .*1 branch|give --hparams with x_sft_ef"):
        F.fit_all(A.overall_curves(A.read_curve_rows(curves)))


def test_method_column_is_optional_and_the_grid_is_the_default_method(tmp_path):
    path = tmp_path / "curves.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "branch_step", "phase", "x_ef", "benchmark", "accuracy", "method"])
        w.writerows([["d", "", "sft", 0.0, "overall", 40.0, ""],
                     ["d", 0, "rl", 1.0, "overall", 50.0, ""],
                     ["d", 0, "rl", 1.0, "overall", 45.0, "luffy"]])
    c = A.overall_curves(A.read_curve_rows(path))
    assert c.rl == {("d", 0): [(1.0, 50.0)]}                   # blank method = dapo_dc, the grid's
    assert c.methods[("d", 0, "luffy")] == [(1.0, 45.0)]


def test_min_loss_file_errors_name_the_line(tmp_path):
    path = tmp_path / "loss.csv"
    path.write_text("dataset,min_val_loss\nA,0.4\nB,zero\n")
    with pytest.raises(A.FitError, match=r"loss.csv:3: field 'min_val_loss'"):
        A.read_min_losses(path)
    path.write_text("dataset,min_val_loss\nA,0.4\nA,0.5\n")
    with pytest.raises(A.FitError, match=r"loss.csv:3: field 'dataset'"):
        A.read_min_losses(path)
