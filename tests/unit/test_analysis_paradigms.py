"""The paradigm comparison from result files: curves keeps the grid's method, paradigms.csv the
others; Table 1 has a row per start and method; Figure 2 a panel per start, one colour per method."""
import csv
import json
import shutil
from pathlib import Path

import pytest

from plasticity.analysis import curves, figures, paradigms, tables
from plasticity.analysis.fit import overall_curves, read_curve_rows

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "analysis" / "mini"


def _branch(root: Path, source: str, method: str, bump: float) -> Path:
    """A copy of a fixture branch, re-labelled with ``method`` and its accuracies shifted by ``bump``."""
    out = root / f"{source}-{method}"
    shutil.copytree(MINI / "rl" / source, out)
    meta = json.loads((out / "branch.json").read_text())
    (out / "branch.json").write_text(json.dumps({**meta, "method": method}))
    rows = list(csv.DictReader(open(out / "curve.csv")))
    with open(out / "curve.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "accuracy": f"{float(r['accuracy']) + bump:.4f}"} for r in rows)
    return out


@pytest.fixture
def collected(tmp_path):
    dirs = [MINI / "rl/uniform@200", MINI / "rl/none@0"]   # the grid's method ("dapo")
    for i, method in enumerate(("grpo", "luffy", "upt")):
        dirs += [_branch(tmp_path, "none@0", method, i), _branch(tmp_path, "uniform@200", method, -i)]
    out = tmp_path / "curves.csv"
    argv = ["--sft-run", f"uniform={MINI / 'sft/uniform'}", "--sft-eval", f"uniform:200={MINI / 'eval/sft-200'}",
            "--base-eval", str(MINI / "eval/base"), "--method", "dapo", "--out", str(out)]
    for d in dirs:
        argv += ["--rl", str(d)]
    assert curves.main(argv) == 0
    return out


def test_curves_keep_the_grid_and_paradigms_the_comparison(collected):
    rows = read_curve_rows(collected)
    overall_curves(rows)   # one branch per (dataset, step): no duplicate rows
    assert {(r["dataset"], r["branch_step"]) for r in rows if r["phase"] == "rl"} == {("uniform", 200), ("pure_rl", 0)}
    par = paradigms.read_paradigms(collected.with_name(paradigms.NAME))
    assert {(r["dataset"], r["branch_step"], r["method"]) for r in par} == {
        (ds, step, m) for ds, step in (("pure_rl", 0), ("uniform", 200)) for m in ("grpo", "luffy", "upt")}
    # branches from the checkpoint start at its SFT compute; from the base at 0
    assert {r["x_sft_ef"] > 0 for r in par if r["dataset"] == "uniform"} == {True}
    assert {r["x_sft_ef"] for r in par if r["dataset"] == "pure_rl"} == {0.0}


def test_table1_has_a_row_per_start_and_method(collected, tmp_path):
    par = paradigms.read_paradigms(collected.with_name(paradigms.NAME))
    tables.table1(read_curve_rows(collected), {}, tmp_path / "t1", par)
    rows = list(csv.reader(open(tmp_path / "t1.csv")))
    labels = {r[0]: r[1] for r in rows[1:]}
    assert labels["LUFFY (from the base)"] == "Syn-SFT-RL" and labels["UPT (from uniform @ 200)"] == "Syn-SFT-RL"
    assert labels["GRPO (from the base)"] == "Pure RL" and labels["GRPO (from uniform @ 200)"] == "SFT-then-RL"
    assert "uniform" in labels   # the Pure-SFT row beside them


def test_figure2_panels_share_colours_and_labels_are_distinct(collected, tmp_path):
    c = figures.with_paradigms(overall_curves(read_curve_rows(collected)),
                               paradigms.read_paradigms(collected.with_name(paradigms.NAME)))
    panels = figures.figure2_layout(c)
    assert [p["title"] for p in panels] == ["from the base model", "from the SFT checkpoint uniform @ 200"]
    for p in panels:   # the grid's method beside the comparison's, in the registry's colour order
        assert [line["method"] for line in p["lines"]] == ["dapo_dc", "grpo", "upt", "luffy"] or \
            [line["method"] for line in p["lines"]] == ["dapo_dc", "grpo", "luffy", "upt"]
        assert {figures.METHOD_COLORS[line["method"]] for line in p["lines"]} == \
            {figures.METHOD_COLORS[m] for m in ("dapo_dc", "grpo", "luffy", "upt")}
    # a branch from the checkpoint is drawn in RL compute since the checkpoint: it starts at 0
    luffy = next(line for line in panels[1]["lines"] if line["method"] == "luffy")
    assert luffy["x"][0] == 0.0
    assert figures.main(["--name", "figure2", "--curves", str(collected), "--out", str(tmp_path / "f2.png")]) == 0
    assert (tmp_path / "f2.png").read_bytes()[:4] == b"\x89PNG"


def test_a_malformed_paradigms_file_names_the_line(tmp_path):
    path = tmp_path / paradigms.NAME
    path.write_text(",".join(paradigms.COLUMNS) + "\npure_rl,0,grpo,0.0,x,overall,1.0\n")
    with pytest.raises(paradigms.ParadigmError, match=r"paradigms.csv:2"):
        paradigms.read_paradigms(path)
    assert paradigms.read_paradigms(tmp_path / "none.csv") == []
