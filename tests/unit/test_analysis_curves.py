"""Collecting the project's result files into a curves CSV, then fitting it."""
import csv
import json
from pathlib import Path

import pytest

from plasticity.analysis import curves, fit
from plasticity.analysis.flops import EF, ModelConstants, sft_step_flops

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "analysis" / "mini"


def _args(out):
    return ["--sft-run", f"uniform={MINI / 'sft/uniform'}",
            "--sft-eval", f"uniform:200={MINI / 'eval/sft-200'}", "--base-eval", str(MINI / "eval/base"),
            "--rl", str(MINI / "rl/uniform@200"), "--rl", str(MINI / "rl/none@0"), "--out", str(out)]


def test_collect_writes_curves_weights_branches(tmp_path):
    out = tmp_path / "curves.csv"
    assert curves.main(_args(out)) == 0
    rows = list(csv.DictReader(open(out)))
    x_sft = 200 * sft_step_flops(ModelConstants(4, 128, 512, 64, 4, 2, 32), 32, 100.0) / EF
    sft = [r for r in rows if r["phase"] == "sft"]
    assert {(float(r["x_ef"]), r["benchmark"]) for r in sft} == {
        (0.0, "gsm8k"), (0.0, "math"), (0.0, "overall"), (x_sft, "gsm8k"), (x_sft, "math"),
        (x_sft, "overall")}
    assert {r["dataset"] for r in rows if r["phase"] == "rl"} == {"uniform", "pure_rl"}
    assert json.loads((tmp_path / "weights.json").read_text()) == {"gsm8k": 30, "math": 10}
    branches = list(csv.DictReader(open(tmp_path / "branches.csv")))
    assert [(b["dataset"], b["sft_step"]) for b in branches] == [("pure_rl", "0"), ("uniform", "200")]
    assert float(branches[1]["x_sft_ef"]) == pytest.approx(x_sft)
    first = out.read_bytes()
    assert curves.main(_args(out)) == 0 and out.read_bytes() == first

    fits_path = tmp_path / "fits.csv"
    assert fit.main(["--curves", str(out), "--hparams", str(tmp_path / "branches.csv"),
                     "--weights", str(tmp_path / "weights.json"), "--out", str(fits_path)]) == 0
    fits = {r["dataset"]: r for r in csv.DictReader(open(fits_path))}
    assert float(fits["uniform"]["p_sft"]) == pytest.approx(35.0)
    assert float(fits["pure_rl"]["p_sft"]) == pytest.approx(17.5)
    assert float(fits["uniform"]["a_post"]) > 35.0


@pytest.mark.parametrize("text", [
    "dataset,branch_step,phase,x_ef,benchmark,accuracy\nD,,sft,0.0,gsm8k,67.81\nD,0,rl,0.53,gsm8k,70.1\n",
    # the method column stays when a run used another method than the grid's
    "dataset,branch_step,phase,x_ef,benchmark,accuracy,method\nD,,sft,0.0,gsm8k,67.81,\n"
    "D,0,rl,0.53,gsm8k,70.1,dapo_dc\nD,0,rl,0.53,gsm8k,69.0,luffy\n"])
def test_import_keeps_rows(tmp_path, text):
    src = tmp_path / "in.csv"
    src.write_text(text)
    out = tmp_path / "out.csv"
    assert curves.main(["--import", str(src), "--out", str(out)]) == 0
    assert sorted(out.read_text().splitlines()) == sorted(src.read_text().splitlines())


def test_errors_name_the_file(tmp_path, capsys):
    bad = tmp_path / "branch"
    bad.mkdir()
    (bad / "branch.json").write_text(json.dumps({"sft_data": "u", "resolved_step": 1}))
    (bad / "curve.csv").write_text("rl_step,x_ef,benchmark,accuracy\n0,abc,gsm8k,1\n")
    assert curves.main(["--rl", str(bad), "--out", str(tmp_path / "c.csv")]) == 2
    assert "curve.csv:2" in capsys.readouterr().err
