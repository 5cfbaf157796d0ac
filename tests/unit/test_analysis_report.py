"""Table 4 and Figure 3 on a real miniature run (compute 1e-7..1e-5 EF, degenerate RL branches)."""
import csv
import json
from pathlib import Path

import pytest

from plasticity.analysis import artifacts as A
from plasticity.analysis import fit as F
from plasticity.analysis import figures, tables
from plasticity.analysis.tables import fmt_ef

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "analysis" / "tiny_run"
VAL = f"uniform={TINY / 'val_loss.json'}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "fits.csv"
    assert F.main(["--curves", str(TINY / "curves.csv"), "--hparams", str(TINY / "branches.csv"),
                   "--tau", "auto", "--alpha", "auto", "--eps", "0", "--out", str(out)]) == 0
    curves = A.overall_curves(A.read_curve_rows(TINY / "curves.csv"))
    return curves, A.read_fits(out), out


def test_fmt_ef_is_adaptive():
    assert fmt_ef(34.9) == "34.9" and fmt_ef(1365.6) == "1365.6" and fmt_ef(0.1) == "0.1"
    assert fmt_ef(5.635661149451058e-06) == "5.64e-06"
    assert fmt_ef(0.0123) == "1.23e-02"
    assert fmt_ef(0.0) == "0.0"
    assert fmt_ef(float("nan")) == "–" and fmt_ef(None) == "–"


def _table(path):
    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[1:]]


def test_table4_tiny_run_precision_regime_and_degenerate_rows(tiny, tmp_path):
    _, _, fits_path = tiny
    prefix = tmp_path / "table4"
    args = ["--name", "table4", "--fits", str(fits_path), "--val-loss", VAL, "--out-prefix", str(prefix)]
    assert tables.main(args) == 0
    rows = {(r["Data"], r["Step"]): r for r in _table(prefix.with_suffix(".md"))}
    assert rows[("uniform", "200")]["x_sft EF"] == "1.88e-06"          # not 0.0
    assert rows[("uniform", "600")]["x_sft EF"] == "5.64e-06"
    assert rows[("(pure RL)", "0")]["x_sft EF"] == "0.0"
    assert rows[("(pure RL)", "0")]["Cmid (EF)"].endswith("e-07")      # not 0.00e+00
    # Regime of each branch's SFT checkpoint (val loss minimal at 600)
    assert rows[("uniform", "200")]["Regime"] == "Adaptive"
    assert rows[("uniform", "600")]["Regime"] == "Stable"
    assert rows[("(pure RL)", "0")]["Regime"] == "–"
    # degenerate branches: best observed value, no fitted Cmid / B
    assert rows[("uniform", "600")]["Status"] == "flat"
    assert rows[("uniform", "600")]["A_post"] == "23.1" and rows[("uniform", "600")]["PL_rl"] == "1.2"
    assert rows[("uniform", "200")]["A_post"] == "5.4" and rows[("uniform", "200")]["PL_rl"] == "0.0"
    assert rows[("uniform", "600")]["Cmid (EF)"] == "–" and rows[("uniform", "600")]["B"] == "–"
    for r in rows.values():
        assert 0.0 <= float(r["A_post"]) <= 100.0
    tex = prefix.with_suffix(".tex").read_text()
    assert "5.64e-06" in tex and "Stable" in tex
    first = [prefix.with_suffix(s).read_bytes() for s in (".md", ".tex", ".csv")]
    assert tables.main(args) == 0
    assert [prefix.with_suffix(s).read_bytes() for s in (".md", ".tex", ".csv")] == first


def test_table4_without_val_loss_has_no_regime_column(tiny, tmp_path):
    _, _, fits_path = tiny
    prefix = tmp_path / "t4"
    assert tables.main(["--name", "table4", "--fits", str(fits_path), "--out-prefix", str(prefix)]) == 0
    assert "Regime" not in prefix.with_suffix(".md").read_text()


def test_figure3_layout_tiny_run(tiny):
    curves, fits, _ = tiny
    val = tables.parse_val_losses([VAL])
    lay = figures.figure3_layout(curves, fits, "uniform", val)
    by = {(b["dataset"], b["step"]): b for b in lay["branches"]}
    assert set(by) == {("pure_rl", 0), ("uniform", 200), ("uniform", 600)}
    x_sft = {(r["dataset"], int(r["sft_step"])): float(r["x_sft_ef"])
             for r in csv.DictReader(open(TINY / "branches.csv"))}
    for key in (("uniform", 200), ("uniform", 600)):
        # branch points start at the SFT checkpoint's compute, on the SFT curve
        assert by[key]["x"][0] == pytest.approx(x_sft[key], rel=1e-9)
        assert any(x == pytest.approx(x_sft[key], rel=1e-9) for x, _ in lay["sft"])
        assert min(by[key]["x"]) >= x_sft[key] * (1 - 1e-9)
        assert by[key]["curve"] is None                                          # no rising fit
        assert by[key]["a_post"] == pytest.approx(by[key]["fit"]["max_obs"])   # dashed line: best obs.
    # uniform@200 only falls (the last three 0.53 below its start on average), uniform@600 neither rises
    # past a single bump nor falls
    assert by[("uniform", 200)]["status"] == "collapsed" and by[("uniform", 600)]["status"] == "flat"
    pure = by[("pure_rl", 0)]
    assert pure["x"][0] == 0.0 and pure["curve"] is not None
    assert 0.0 < pure["curve"][0][0] <= min(x for x in pure["x"] if x > 0)   # log axis: from x > 0
    # y-limits from the data (10.5 .. 23.1 and 4.1), not from a fitted curve at -78
    ys = [y for b in lay["branches"] for y in b["y"]] + [y for _, y in lay["sft"]]
    lo, hi = lay["ylim"]
    assert min(ys) - 2.0 < lo < min(ys) and max(ys) < hi < max(ys) + 2.0
    # log axis at the data's scale (1e-7 EF), not 1 EF
    assert lay["xlim"][0] == pytest.approx(1.04285432673e-07 / 10 ** 0.25)
    # regimes at compute positions of the SFT checkpoints: steps 200-400 Adaptive, 600 Stable
    spans = lay["regimes"]
    assert [lab for *_, lab in spans] == ["adaptive"] * 3 + ["stable"]
    stable_lo, stable_hi, _ = spans[-1]
    assert stable_lo < x_sft[("uniform", 600)] <= stable_hi
    assert stable_hi >= max(by[("uniform", 600)]["x"])
    assert any(a <= x_sft[("uniform", 200)] < b for a, b, lab in spans if lab == "adaptive")


def test_figure3_png_is_written_and_byte_identical(tiny, tmp_path):
    _, _, fits_path = tiny
    out = tmp_path / "figure3.png"
    args = ["--name", "figure3", "--curves", str(TINY / "curves.csv"), "--fits", str(fits_path),
            "--val-loss", VAL, "--out", str(out)]
    assert figures.main(args) == 0
    first = out.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    assert figures.main(args) == 0 and out.read_bytes() == first


def test_figure3_layout_is_scale_free(tiny):
    """The same panel with every compute value times 1e9 (the study's EF range) has the same shape."""
    curves, fits, _ = tiny
    k = 1e9
    big = A.Curves(sft={d: [(x * k, y) for x, y in p] for d, p in curves.sft.items()},
                   rl={key: [(x * k, y) for x, y in p] for key, p in curves.rl.items()},
                   per_benchmark={})
    big_fits = [dict(f, x_sft_ef=f["x_sft_ef"] * k, cmid_ef=f["cmid_ef"] * k) for f in fits]
    a = figures.figure3_layout(curves, fits, "uniform")
    b = figures.figure3_layout(big, big_fits, "uniform")
    assert b["xlim"] == pytest.approx([x * k for x in a["xlim"]]) and b["ylim"] == a["ylim"]
    for ba, bb in zip(a["branches"], b["branches"]):
        assert bb["x"] == pytest.approx([x * k for x in ba["x"]])
        assert (bb["curve"] is None) == (ba["curve"] is None)
        if ba["curve"] is not None:
            assert bb["curve"][1] == pytest.approx(ba["curve"][1])


def test_table1_max_after_the_start_with_start_and_final(tmp_path):
    """maxP_post counts only the evaluations after the start: uniform@200 starts at 5.4 and never gets
    back to it (4.1 .. 5.2), so its row shows 5.2 below the start, not 5.4."""
    assert tables.main(["--name", "table1", "--curves", str(TINY / "curves.csv"), "--min-loss", VAL,
                        "--out-prefix", str(tmp_path / "t1")]) == 0
    rows = {r["Method"]: r for r in _table(tmp_path / "t1.md")}
    assert list(rows) == ["Base", "DAPO_dc from the base", "uniform", "uniform @ 200 → DAPO_dc",
                          "uniform @ 600 → DAPO_dc"]
    assert rows["Base"]["maxP_post"] == "10.5"
    assert [rows["uniform"][k] for k in ("Paradigm", "Start", "maxP_post", "Final")] == ["SFT", "10.5", "21.9", "21.9"]
    assert [rows["uniform @ 200 → DAPO_dc"][k] for k in ("Start", "maxP_post", "Final")] == ["5.4", "5.2", "4.7"]
    assert [rows["uniform @ 600 → DAPO_dc"][k] for k in ("Start", "maxP_post", "Final")] == ["21.9", "23.1", "20.5"]
    assert [rows["DAPO_dc from the base"][k] for k in ("Paradigm", "Start", "maxP_post", "Final")] == \
        ["Pure RL", "10.5", "13.0", "12.2"]
    assert rows["uniform"]["Min. val loss"] != "–"


def _branch_dir(root, name, method, sft_data, step, **rl):
    d = root / name
    d.mkdir(parents=True)
    settings = {"method": method, "prompts_per_step": 16, "prompts_per_update": None, "num_generations": 8,
                "max_completion_length": 64, "lr": 2e-05, "warmup_steps": 5, "warmup_ratio": None,
                "scheduler": "constant", "weight_decay": 0.0, "adam_betas": [0.9, 0.999], "temperature": 0.7,
                "steps": 60, "eval_every": 10, "max_gen_rounds": 10, "max_grad_norm": 1.0, "precision": "bf16",
                "sync": {"agg": "seq_sum_over_lmax"}, **rl}
    (d / "manifest.json").write_text(json.dumps({"config": {"rl": settings}, "precision": "fp32", "world_size": 1}))
    (d / "branch.json").write_text(json.dumps({"sft_data": sft_data, "resolved_step": step, "method": method}))
    return d


def test_table2_rl_settings_per_paradigm_as_run(tmp_path):
    """One column per method in the registry's order; values from each run's manifest (precision as
    run: fp32, though the config asked for bf16); a method whose runs differ lists each value with
    its starts."""
    dirs = [_branch_dir(tmp_path, "a", "dapo_dc", "all", 200),
            _branch_dir(tmp_path, "b", "dapo_dc", "none", 0, steps=20, temperature=1.0),
            _branch_dir(tmp_path, "c", "luffy", "none", 0, steps=20, temperature=1.0, lr=1e-4)]
    args = ["--name", "table2", *[a for d in dirs for a in ("--branch", str(d))], "--out-prefix", str(tmp_path / "t2")]
    assert tables.main(args) == 0
    rows = {r["Setting"]: r for r in _table(tmp_path / "t2.md")}
    assert list(rows["Starts"])[1:] == ["DAPO_dc", "LUFFY"]
    assert rows["Starts"]["DAPO_dc"] == "all@200, base" and rows["Paradigm"]["LUFFY"] == "Syn-SFT-RL"
    assert rows["Precision (as run)"]["DAPO_dc"] == "fp32" and rows["Precision (as run)"]["LUFFY"] == "fp32"
    assert rows["RL steps"]["DAPO_dc"] == "60 (all@200); 20 (base)" and rows["RL steps"]["LUFFY"] == "20"
    assert rows["Learning rate"]["LUFFY"] == "0.0001" and rows["Learning rate"]["DAPO_dc"] == "2e-05"
    assert rows["Clipping"]["DAPO_dc"] == "clip-higher 0.2 / 0.28, dual-clip c = 10"
    assert rows["Clipping"]["LUFFY"].startswith("none")
    assert rows["Std in the group advantage"]["DAPO_dc"] == "yes" and rows["KL loss"]["LUFFY"] == "removed"
    assert rows["Dynamic sampling"]["LUFFY"] == "no" and "refill up to 10" in rows["Dynamic sampling"]["DAPO_dc"]
    assert tables.main(["--name", "table2", "--branch", str(tmp_path / "missing"), "--out-prefix",
                        str(tmp_path / "t2")]) == 2


def test_table6_switch_points(tiny, tmp_path):
    _, _, fits_path = tiny
    assert tables.main(["--name", "table6", "--fits", str(fits_path), "--val-loss", VAL,
                        "--out-prefix", str(tmp_path / "t6")]) == 0
    rows = _table(tmp_path / "t6.md")
    assert [r["Switch"] for r in rows] == ["0 (zero-RL)", "200 steps", "600 steps"]     # the study's order
    by_switch = {r["Switch"]: r for r in rows}
    assert by_switch["0 (zero-RL)"]["Regime"] == "Adaptive"
    assert by_switch["600 steps"]["Regime"] == "Stable" and by_switch["200 steps"]["Regime"] == "Adaptive"
    # uniform@200 starts at 5.4 and its RL evaluations reach 5.2 at best: a negative gain
    assert by_switch["200 steps"]["Max RL gain"] == "-0.2" and by_switch["200 steps"]["maxP_post"] == "5.2"
    for r in rows:
        assert abs(float(r["P_sft"]) + float(r["Max RL gain"]) - float(r["maxP_post"])) < 0.11


def test_figure2_png(tiny, tmp_path):
    _, _, fits_path = tiny
    out = tmp_path / "f2.png"
    assert figures.main(["--name", "figure2", "--curves", str(TINY / "curves.csv"), "--fits", str(fits_path),
                         "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fit_row(ds, step, a_post, status, x_sft=1.0, regime=""):
    return {"dataset": ds, "sft_step": step, "x_sft_ef": x_sft, "p_sft": a_post - 2, "a_post": a_post,
            "pl_rl": 2.0, "status": status, "regime": regime}


def test_table5_uses_identifiable_ceilings_and_imported_losses(tmp_path):
    fits = [_fit_row("S", 1, 70.0, "ok"), _fit_row("S", 2, 90.0, "extrapolated"),
            _fit_row("E", 1, 75.0, "flat"), _fit_row("E", 2, 99.0, "collapsed"),
            _fit_row("H", 1, 80.0, "ok"), _fit_row("X", 1, 60.0, "extrapolated"),
            _fit_row("pure_rl", 0, 72.0, "ok", 0.0)]
    losses = tmp_path / "loss.csv"
    losses.write_text("dataset,min_val_loss\nS,0.5\nE,0.45\nH,0.4\nX,0.3\nU,0.2\n")
    res = tables.table5(fits, tables.parse_min_losses([str(losses)]), tmp_path / "t5")
    assert res["datasets"] == ["E", "H", "S"] and res["spearman"] == pytest.approx(-1.0)
    rows = {r["SFT data"]: r for r in _table(tmp_path / "t5.md")}
    assert rows["S"]["Best A_post"] == "70.0" and rows["S"]["Identifiable"] == "1/2"
    assert rows["E"]["Best step"] == "1"
    text = (tmp_path / "t5.md").read_text()
    assert "X (no identifiable ceiling)" in text and "U" not in rows


def test_figure3_regimes_from_the_imported_column(tiny):
    curves, fits, _ = tiny
    imported = [dict(f, regime={200: "adaptive", 600: "stable"}.get(f["sft_step"], "")) for f in fits]
    lay = figures.figure3_layout(curves, imported, "uniform")
    assert [lab for *_, lab in lay["regimes"]] == ["adaptive", "stable"]
    lo, hi, _ = lay["regimes"][1]
    x600 = next(f["x_sft_ef"] for f in fits if f["sft_step"] == 600)
    assert lo < x600 < hi


def test_figure2_one_panel_per_start_and_one_colour_per_method(tiny):
    curves, fits, _ = tiny
    methods = dict(curves.methods)
    methods[("other", 0, "dapo_dc")] = methods[("pure_rl", 0, "dapo_dc")]      # pure RL repeated
    methods[("uniform", 600, "luffy")] = [(1e-7, 20.0), (2e-7, 21.0)]
    c = A.Curves(sft=curves.sft, rl=curves.rl, per_benchmark={}, methods=methods)
    panels = figures.figure2_layout(c, fits)
    assert [p["start"] for p in panels] == [("base", 0), ("uniform", 600)]     # most methods
    assert [ln["method"] for ln in panels[0]["lines"]] == ["dapo_dc"]          # pure RL once
    assert [ln["method"] for ln in panels[1]["lines"]] == ["dapo_dc", "luffy"]
    dapo, luffy = panels[1]["lines"]
    assert dapo["x"].count(0.0) == 1                       # its own branch point, not a second one
    assert luffy["x"][0] == 0.0 and luffy["y"][0] == pytest.approx(dapo["y"][0])   # starts at P_sft
    assert panels[1]["x0"] == pytest.approx(next(f["x_sft_ef"] for f in fits if f["sft_step"] == 600))
    assert len(set(figures.METHOD_COLORS.values())) == len(figures.METHOD_COLORS)
    from plasticity.methods import METHODS
    assert set(figures.METHOD_COLORS) == set(METHODS)
    with pytest.raises(ValueError, match="no RL curves from"):
        figures.figure2_layout(c, fits, ["uniform@999"])


def test_metrics_best_ceiling_is_identifiable(tiny, tmp_path):
    from plasticity.analysis import metrics

    _, fits, fits_path = tiny
    rows = list(csv.DictReader(open(fits_path)))
    rows.append(dict(rows[0], dataset="uniform", sft_step="999", a_post="99.0", status="extrapolated"))
    path = tmp_path / "fits.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = metrics.summarize(TINY / "curves.csv", path)
    assert out["branches"]["uniform@999"]["status"] == "extrapolated"
    assert out["best_a_post"] == pytest.approx(max(f["a_post"] for f in fits if f["status"] in
                                                   ("ok", "flat")), abs=1e-4)


def test_table5_and_figure8_with_one_identifiable_set_say_why_there_is_no_correlation(tmp_path):
    """A study with one SFT set (or all but one flagged) still gets its Table 5 and Figure 8."""
    from plasticity.analysis import figures

    fits = [_fit_row("S", 1, 70.0, "ok"), _fit_row("E", 1, 75.0, "bound"), _fit_row("pure_rl", 0, 72.0, "ok", 0.0)]
    losses = {"S": 0.5, "E": 0.45}
    res = tables.table5(fits, losses, tmp_path / "t5")
    assert res["too_few"] and res["datasets"] == ["S"]
    text = (tmp_path / "t5.md").read_text()
    assert "No correlation: it needs two or more SFT sets" in text and "E (no identifiable ceiling)" in text
    assert "nan" not in text.lower()
    record = figures.figure8(fits, losses, tmp_path / "f8.png")
    (ax,) = record["axes"]
    assert ax["title"].endswith("and 1 here") and not ax["lines"]     # one point, no fitted line
