"""Each figure's drawn series against the data it is drawn from, read back from the PNG's drawn-data
record (analysis.drawn): what a reader sees is what the curves and fits hold."""
import math
from pathlib import Path

import pytest

from plasticity.analysis import artifacts as A
from plasticity.analysis import drawn, figure3, figures, status, tables


ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "analysis" / "tiny_run"
REF = ROOT / "reference"
COMMITTED = ROOT / "reports" / "reference"


def _lines(ax, prefix):
    return {ln["gid"].removeprefix(prefix): ln for ln in ax["lines"] if (ln["gid"] or "").startswith(prefix)}


def _segments(ax, prefix):
    return {c["gid"].removeprefix(prefix): c for c in ax["collections"] if (c["gid"] or "").startswith(prefix)}


def _check_figure3_panel(ax, lay, ds):
    """Points, fitted curves, A_post lines, labels, regime shading and styles of one panel."""
    low = lay["ylim"][0]
    points, fits, a_post = _lines(ax, "points "), _lines(ax, "fit "), _segments(ax, "a_post ")
    keys = [f"{b['dataset']}@{b['step']}" for b in lay["branches"]]
    assert sorted(points) == sorted(keys)
    for b, key in zip(lay["branches"], keys):
        inside = [(x, y) for x, y in zip(b["x"], b["y"]) if x > 0 and y >= low]
        assert points[key]["x"] == pytest.approx([x for x, _ in inside], rel=1e-9)
        assert points[key]["y"] == pytest.approx([y for _, y in inside], rel=1e-9)
        ok = b["status"] in status.IDENTIFIABLE
        if b["curve"] is not None:
            assert fits[key]["ls"] == ("-" if ok else ":")
            assert fits[key]["y"] == pytest.approx(list(b["curve"][1]), rel=1e-6)
        else:
            assert key not in fits
        if math.isfinite(b["a_post"]):
            seg = a_post[key]
            (x0, y0, x1, y1), = seg["segments"]                              # flattened [[x0, y0], [x1, y1]]
            assert y0 == y1 == pytest.approx(b["a_post"]) and x1 == pytest.approx(lay["xlim"][1])
            assert seg["ls"] == ("dashed" if ok else "dotted")
        # the step (or "RL") written at the branch's end, in the branch's colour
        label = "RL" if b["step"] == 0 else str(b["step"])
        assert any(t["text"] == label for t in ax["texts"]), label
    colours = [points[k]["color"] for k in keys]
    assert len(set(colours)) == len(colours), "branches must be told apart by colour"
    spans = [p for p in ax["patches"] if (p["gid"] or "").startswith("regime ")]
    assert spans, f"{ds}: no regime shading"
    assert len([e for e in ax["legend"] if e.startswith(tuple(k.replace("@", " @ ") for k in keys))
                or e.startswith("pure RL")]) == len(keys)


def test_figure3_draws_every_branch_of_the_tiny_run(tmp_path):
    curves = A.overall_curves(A.read_curve_rows(TINY / "curves.csv"))
    fits = A.read_fits(_fit(tmp_path))
    val = tables.parse_val_losses([f"uniform={TINY / 'val_loss.json'}"])
    out = tmp_path / "f3.png"
    record = figure3.figure3(curves, fits, out, val)
    assert drawn.read_png(out) == record                       # the PNG carries what was drawn
    (ax,) = record["axes"]
    lay = figure3.figure3_layout(curves, fits, "uniform", val)
    _check_figure3_panel(ax, lay, "uniform")
    assert {p["gid"] for p in ax["patches"]} == {"regime adaptive", "regime stable"}
    sft = _lines(ax, "sft ")["uniform"]
    assert sft["y"] == pytest.approx([y for x, y in lay["sft"] if x > 0])
    # the title's style key is the legend's
    assert "dotted" in record["suptitle"] and "dashed" in record["suptitle"] and "solid" in record["suptitle"]
    assert {"solid: fitted sigmoid (identifiable)", "dashed: A_post (identifiable)",
            "dotted: flagged fit / A_post"} <= set(ax["legend"])


def _fit(tmp_path):
    from plasticity.analysis import fit as F

    out = tmp_path / "fits.csv"
    assert F.main(["--curves", str(TINY / "curves.csv"), "--hparams", str(TINY / "branches.csv"),
                   "--out", str(out)]) == 0
    return out


def test_figure3_of_the_studys_curves_shades_every_panel_and_tells_a_dozen_branches_apart(tmp_path):
    curves = A.overall_curves(A.read_curve_rows(REF / "retu_curves.csv"))
    fits = A.read_fits(COMMITTED / "retu_fits.csv")
    record = figure3.figure3(curves, fits, tmp_path / "f3.png")
    names = sorted(curves.sft)
    assert [ax["title"].split(":")[0] for ax in record["axes"]] == names
    for ax, ds in zip(record["axes"], names):
        _check_figure3_panel(ax, figure3.figure3_layout(curves, fits, ds), ds)
    sft889k = record["axes"][names.index("SFT889K")]
    assert len(_lines(sft889k, "points SFT889K@")) == 12
    assert {p["gid"] for p in sft889k["patches"]} == {"regime adaptive", "regime stable"}
    hard = record["axes"][names.index("Hard102K")]
    assert {p["gid"] for p in hard["patches"]} == {"regime unknown"}        # the study states none


def _paradigm_curves():
    curves = A.overall_curves(A.read_curve_rows(TINY / "curves.csv"))
    methods = dict(curves.methods)
    methods[("pure_rl", 0, "luffy")] = [(0.0, 10.5), (1e-7, 11.0), (2e-7, 9.5)]
    methods[("uniform", 600, "luffy")] = [(1e-7, 20.0), (2e-7, 21.0)]
    methods[("uniform", 600, "grpo")] = [(1.5e-7, 22.5), (3e-7, 23.5)]
    return A.Curves(sft=curves.sft, rl=curves.rl, per_benchmark={}, methods=methods)


def test_figure2_keeps_x0_one_panel_per_start_methods_told_apart(tmp_path):
    curves = _paradigm_curves()
    fits = A.read_fits(_fit(tmp_path))
    record = figures.figure2(curves, tmp_path / "f2.png", fits)
    panels = figures.figure2_layout(curves, fits)
    assert [ax["title"] for ax in record["axes"]] == [p["title"] for p in panels]
    assert record["suptitle"].startswith("Figure 2: paradigm comparison")
    for ax, panel in zip(record["axes"], panels):
        assert ax["xlim"][0] <= 0.0 <= ax["xlim"][1]                          # x = 0 is on the axis
        assert ax["xscale"] == ("symlog" if panel["start"][0] == "base" else "linear")
        lines = _lines(ax, "method ")
        assert sorted(lines) == sorted(ln["method"] for ln in panel["lines"])
        for ln in panel["lines"]:
            assert lines[ln["method"]]["x"] == pytest.approx(ln["x"]) and lines[ln["method"]]["y"] == pytest.approx(ln["y"])
            assert lines[ln["method"]]["x"][0] == 0.0                          # from its start
        styles = {(ln["color"], ln["marker"]) for ln in lines.values()}
        assert len(styles) == len(lines)
        assert lines["luffy"]["ls"] == "--" and lines["dapo_dc"]["ls"] == "-"  # synchronized: dashed
    base = record["axes"][0]
    assert _lines(base, "method ")["luffy"]["y"][0] == pytest.approx(10.5)     # the base model's value
    assert _lines(base, "sft")[""]["x"][0] == 0.0


def test_figure2_with_one_method_is_titled_by_it(tmp_path):
    curves = A.overall_curves(A.read_curve_rows(TINY / "curves.csv"))
    record = figures.figure2(curves, tmp_path / "f2.png")
    assert record["suptitle"] == ("Figure 2: DAPO_dc from the base model and the SFT checkpoint "
                                  "uniform @ 600 vs Pure-SFT")


def test_figure8_draws_table5s_rows_and_counts_the_flagged(tmp_path):
    fits = A.read_fits(COMMITTED / "retu_fits.csv")
    losses = A.read_min_losses(REF / "min_val_loss.csv")
    record = figures.figure8(fits, losses, tmp_path / "f8.png")
    res = tables.table5(fits, losses, tmp_path / "t5")
    (ax,) = record["axes"]
    (points,) = [c for c in ax["collections"] if c["gid"] == "sets"]
    assert [v for pt in points["offsets"] for v in pt] == pytest.approx(
        [v for x, y in zip(res["min_loss"], res["a_post"]) for v in (x, y)])
    n, total, _ = status.flagged_counts(fits)
    assert any(f"{n} of {total} branches flagged and left out" in t["text"] for t in ax["texts"])
    assert f"Pearson r = {res['pearson']:.2f}" in ax["title"]


def test_records_compare_by_value_within_tolerance():
    a = {"axes": [{"lines": [{"x": [0.0, 1.0], "y": [70.0, 71.2]}]}], "suptitle": "t"}
    assert drawn.compare(a, {"axes": [{"lines": [{"x": [0.0, 1.0], "y": [70.0, 71.2 * (1 + 1e-9)]}]}],
                             "suptitle": "t"}) == []
    diff = drawn.compare(a, {"axes": [{"lines": [{"x": [0.0, 1.0], "y": [70.0, 71.3]}]}], "suptitle": "t"})
    assert diff == [".axes[0].lines[0].y[1]: 71.2 vs 71.3"]
    assert drawn.compare(a, {**a, "suptitle": "u"}) == [".suptitle: 't' vs 'u'"]


def test_a_png_without_a_record_is_named(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.savefig(tmp_path / "plain.png", format="png")
    plt.close(fig)
    with pytest.raises(drawn.DrawnError, match="plain.png: no drawn-data record"):
        drawn.read_png(tmp_path / "plain.png")
