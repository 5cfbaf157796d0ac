"""The findings across seeds (analysis.findings) on synthetic report bundles with known answers:
paired differences per seed, their mean, standard error and t interval, the verdicts, single-seed
labelling, and the refusal to pool seeds from different data worlds."""
import csv
import json
import math

import pytest

from plasticity.analysis import findings as F

KINDS = {"all": "all", "uniform": "uniform", "easy": "easy", "hard": "hard", "val": "val", "rl": "rl", "mix": "mix"}


def _csv(path, columns, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def bundle(root, name, *, adaptive_gain, stable_gain, all_minus_uniform, luffy_final, data_hash="d1"):
    """One seed's bundle: all@200 (Adaptive) and all@800 (Stable) DAPO_dc branches starting at 30 and
    70, pure RL, SFT all / uniform at 800, LUFFY from the base, the all SFT curve in compute."""
    d = root / name
    branch = []
    for ds, step, switch, start, gain in (("all", 200, "200", 30.0, adaptive_gain),
                                          ("all", 800, "min_val_loss", 70.0, stable_gain)):
        for rl_step, x, acc in ((0, 0.0, start), (10, 1e-7, start + gain / 2), (20, 2e-7, start + gain)):
            branch.append({"dataset": ds, "sft_step": step, "switch": switch, "method": "dapo_dc",
                           "rl_step": rl_step, "x_ef": x, "benchmark": "overall", "accuracy": acc, "stderr": 1.0})
    for rl_step, x, acc in ((0, 0.0, 10.0), (10, 1e-7, 10.5), (20, 2e-7, 11.0)):
        branch.append({"dataset": "pure_rl", "sft_step": 0, "switch": "0", "method": "dapo_dc",
                       "rl_step": rl_step, "x_ef": x, "benchmark": "overall", "accuracy": acc, "stderr": 1.0})
    for rl_step, x, acc in ((0, 0.0, 10.0), (5, 2.5e-7, 10.0), (10, 5e-7, luffy_final)):
        branch.append({"dataset": "pure_rl", "sft_step": 0, "switch": "0", "method": "luffy",
                       "rl_step": rl_step, "x_ef": x, "benchmark": "overall", "accuracy": acc, "stderr": 1.0})
    _csv(d / "data" / "branch_curves.csv", F_COLUMNS, branch)
    _csv(d / "data" / "sft_evals.csv", ["dataset", "step", "benchmark", "accuracy", "stderr", "n_problems"],
         [{"dataset": "base", "step": 0, "benchmark": "overall", "accuracy": 10.0, "stderr": 1, "n_problems": 250},
          {"dataset": "all", "step": 800, "benchmark": "overall", "accuracy": 60.0 + all_minus_uniform,
           "stderr": 1, "n_problems": 250},
          {"dataset": "uniform", "step": 800, "benchmark": "overall", "accuracy": 60.0, "stderr": 1,
           "n_problems": 250}])
    _csv(d / "data" / "val_loss.csv", ["dataset", "step", "val_loss", "regime"],
         [{"dataset": "all", "step": 200, "val_loss": 0.5, "regime": "adaptive"},
          {"dataset": "all", "step": 800, "val_loss": 0.1, "regime": "stable"}])
    _csv(d / "data" / "curves.csv", ["dataset", "branch_step", "phase", "x_ef", "benchmark", "accuracy"],
         [{"dataset": "all", "branch_step": "", "phase": "sft", "x_ef": x, "benchmark": "overall", "accuracy": y}
          for x, y in ((0.0, 10.0), (1e-6, 20.0), (2e-6, 40.0))])
    _csv(d / "data" / "paradigms.csv", ["dataset", "branch_step", "method", "x_sft_ef", "x_ef", "benchmark", "accuracy"],
         [{"dataset": "pure_rl", "branch_step": 0, "method": "luffy", "x_sft_ef": 0.0, "x_ef": 0.0,
           "benchmark": "overall", "accuracy": 10.0}])
    _csv(d / "data" / "branches.csv", ["dataset", "sft_step", "x_sft_ef"],
         [{"dataset": "all", "sft_step": 200, "x_sft_ef": 5e-7}, {"dataset": "all", "sft_step": 800, "x_sft_ef": 2e-6}])
    (d / "provenance.json").write_text(json.dumps({"data_sets_sha256": data_hash, "base_model_sha256": "b",
                                                   "train_seed": name}))
    return d


F_COLUMNS = ["dataset", "sft_step", "switch", "method", "rl_step", "x_ef", "benchmark", "accuracy", "stderr"]


def _by(rows):
    return {(r["finding"], r["comparison"]): r for r in rows}


def test_three_seeds_paired_differences_mean_se_and_verdicts(tmp_path):
    seeds = [bundle(tmp_path, f"s{i}", adaptive_gain=g, stable_gain=s, all_minus_uniform=u, luffy_final=lf)
             for i, (g, s, u, lf) in enumerate([(2.0, -3.0, 1.0, 11.0), (3.0, -4.0, -1.0, 12.0),
                                                (4.0, -5.0, 0.5, 13.0)])]
    rows = _by(F.aggregate([F.read_bundle(d) for d in seeds], KINDS, "dapo_dc"))
    gain = rows[("RL gain (final − start)", "all @ 200")]
    assert gain["per_seed"] == "2.0; 3.0; 4.0" and gain["mean"] == "3.00" and gain["se"] == "0.58"
    assert float(gain["ci95_low"]) == pytest.approx(3 - 4.303 * 1 / math.sqrt(3), abs=0.01)
    assert gain["verdict"] == "supported"
    assert rows[("RL gain (final − start)", "mean over Adaptive checkpoints")]["mean"] == "3.00"
    assert rows[("RL gain (final − start)", "all @ min_val_loss")]["verdict"] == "contradicted"
    assert rows[("Data scale", "SFT all − uniform at step 800")]["verdict"] == "within noise"
    assert rows[("RL gain (final − start)", "pure RL from the base")]["per_seed"] == "1.0; 1.0; 1.0"
    # matched compute: LUFFY spent 5e-7 EF; the all set's SFT curve there is 15 (between 10 and 20)
    seq = rows[("Sequential − synchronized at matched compute", "all SFT(-then-RL) − LUFFY")]
    assert seq["per_seed"] == "4.0; 3.0; 2.0" and seq["verdict"] == "supported"


def test_one_seed_is_labelled_and_two_are_preliminary(tmp_path):
    one = bundle(tmp_path, "a", adaptive_gain=6.0, stable_gain=1.0, all_minus_uniform=5.0, luffy_final=10.0)
    rows = F.aggregate([F.read_bundle(one)], KINDS, "dapo_dc")
    assert {r["verdict"] for r in rows} == {"single seed"} and {r["se"] for r in rows} == {"–"}
    two = bundle(tmp_path, "b", adaptive_gain=5.0, stable_gain=1.0, all_minus_uniform=5.0, luffy_final=10.0)
    rows = F.aggregate([F.read_bundle(one), F.read_bundle(two)], KINDS, "dapo_dc")
    assert {r["verdict"] for r in rows} == {"preliminary (2 seeds)"}


def test_seeds_from_another_data_world_are_refused(tmp_path):
    a = bundle(tmp_path, "a", adaptive_gain=1, stable_gain=1, all_minus_uniform=1, luffy_final=10)
    b = bundle(tmp_path, "b", adaptive_gain=1, stable_gain=1, all_minus_uniform=1, luffy_final=10, data_hash="d2")
    with pytest.raises(F.FindingsError, match="data_sets_sha256 differs"):
        F.aggregate([F.read_bundle(a), F.read_bundle(b)], KINDS, "dapo_dc")


def test_cli_writes_the_table(tmp_path):
    from pathlib import Path

    seeds = [bundle(tmp_path, f"s{i}", adaptive_gain=g, stable_gain=0.0, all_minus_uniform=1.0, luffy_final=11.0)
             for i, g in enumerate((1.0, 2.0, 3.0))]
    config = Path(__file__).resolve().parents[2] / "configs" / "mini-study.yaml"
    args = ["--configfile", str(config), *[a for d in seeds for a in ("--bundle", str(d))],
            "--out", str(tmp_path / "findings")]
    assert F.main(args) == 0
    text = (tmp_path / "findings.md").read_text()
    assert "| RL gain (final − start) | all @ 200 | 3 | 1.0; 2.0; 3.0 | 2.00 | 0.58 |" in text
    assert F.main(["--configfile", str(config), "--bundle", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
