"""Regime labels (PAPER 1.4) and switch rules on constructed validation-loss curves."""
import json

import pytest

from plasticity.analysis import regimes
from plasticity.analysis.regimes import (RegimeError, label_regimes, read_val_loss,
                                         resolve_switch)

# L_min = 1.00 at step 300: 1.02 is the stable edge, 1.10 the severe edge
STEPS = [0, 100, 200, 300, 400, 500, 600, 700]
LOSSES = [3.0, 1.50, 1.03, 1.00, 1.02, 1.05, 1.099, 1.10]


def test_every_regime():
    assert label_regimes(STEPS, LOSSES) == ["adaptive", "adaptive", "adaptive", "stable", "stable",
                                            "mild", "mild", "severe"]


def test_thresholds_are_configurable():
    labels = label_regimes(STEPS, LOSSES, delta=0.05, delta2=0.08)
    assert labels[2] == "stable" and labels[5] == "stable" and labels[6] == "severe"


def test_bump_inside_stable_window_stays_stable_and_step0_is_not_lmin():
    steps = [0, 10, 20, 30, 40]
    losses = [0.5, 1.0, 1.05, 1.01, 1.2]   # base loss is lowest but is not an SFT checkpoint
    assert label_regimes(steps, losses) == ["adaptive", "stable", "stable", "stable", "severe"]


def test_monotone_decreasing_curve_ends_stable():
    assert label_regimes([1, 2, 3], [3.0, 2.0, 1.0]) == ["adaptive", "adaptive", "stable"]


def test_switch_rules():
    assert resolve_switch(200, STEPS, LOSSES) == 200
    assert resolve_switch("200", STEPS, LOSSES) == 200
    assert resolve_switch(0, STEPS, LOSSES) == 0
    assert resolve_switch("min_val_loss", STEPS, LOSSES) == 300
    assert resolve_switch("adaptive", STEPS, LOSSES) == 200
    assert resolve_switch("stable", STEPS, LOSSES) == 400
    assert resolve_switch("mild", STEPS, LOSSES) == 600
    assert resolve_switch("severe", STEPS, LOSSES) == 700


def test_switch_errors():
    with pytest.raises(RegimeError, match="switch step 250 is not a checkpoint"):
        resolve_switch(250, STEPS, LOSSES)
    with pytest.raises(RegimeError, match="unknown switch rule 'best'"):
        resolve_switch("best", STEPS, LOSSES)
    with pytest.raises(RegimeError, match="'severe': no SFT checkpoint"):
        resolve_switch("severe", [0, 1, 2], [2.0, 1.0, 1.01])
    with pytest.raises(RegimeError, match="'adaptive': no SFT checkpoint"):
        resolve_switch("adaptive", [0, 1, 2], [2.0, 1.0, 1.01])   # step 0 never counts
    with pytest.raises(RegimeError, match="no SFT checkpoint"):
        label_regimes([0], [1.0])


def test_read_val_loss_sorts_and_names_bad_points(tmp_path):
    good = tmp_path / "val.json"
    good.write_text(json.dumps({"points": [{"step": 200, "val_loss": 1.0},
                                           {"step": 100, "val_loss": 2.0}]}))
    assert read_val_loss(good) == ([100, 200], [2.0, 1.0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"points": [{"step": 100, "val_loss": "nan"}]}))
    with pytest.raises(RegimeError, match=r"bad.json: points\[0\] \(step 100\) field 'val_loss'"):
        read_val_loss(bad)
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps({"points": [{"step": 1, "val_loss": 1.0}, {"step": 1, "val_loss": 2.0}]}))
    with pytest.raises(RegimeError, match="duplicate steps"):
        read_val_loss(dup)


def test_cli(tmp_path, capsys):
    path = tmp_path / "val_loss.json"
    path.write_text(json.dumps({"points": [{"step": s, "val_loss": v} for s, v in zip(STEPS, LOSSES)]}))
    assert regimes.main(["--val-loss", str(path), "--switch", "stable"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["switch"]["step"] == 400 and out["l_min"] == 1.0
    assert [p["regime"] for p in out["points"]][-1] == "severe"
    assert regimes.main(["--val-loss", str(path), "--switch", "999"]) == 2
    assert "999" in capsys.readouterr().err
