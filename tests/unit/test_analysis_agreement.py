"""The Table 4 agreement report counts what it says it counts (synthetic fits, no fitting)."""
import pytest

from plasticity.analysis import agreement


def _fit(ds, step, a_post, status="ok", max_obs=None):
    return {"dataset": ds, "sft_step": step, "a_post": a_post, "p_sft": 70.0, "u_fit": a_post - 70.0,
            "status": status, "tau": 2.5, "alpha": "none", "cmid_ef": 10.0, "x_last_ef": 50.0,
            "b": 1.5, "max_obs": a_post if max_obs is None else max_obs}


def test_counts_and_table5():
    published = {("A", 1): {"a_post": 80.0, "cmid_ef": 10, "b": 1.5},
                 ("A", 2): {"a_post": 81.0, "cmid_ef": 10, "b": 1.5},
                 ("B", 1): {"a_post": 82.0, "cmid_ef": 10, "b": 1.5}}
    fits = [_fit("A", 1, 80.3), _fit("A", 2, 81.8), _fit("B", 1, 84.5, max_obs=81.0),
            _fit("C", 1, 75.0, "extrapolated")]
    text = agreement.report({"published": fits, "auto": fits}, published,
                            {"A": 0.5, "B": 0.4, "C": 0.45}, "cmd")
    assert "within 0.5 points: 1/3; within 1.0: 2/3; largest gap 2.50" in text
    assert "| B | 1 | 82.0 | 84.5 | +2.50 |" in text and "| A | 1 | 80.0" not in text
    assert "| C | 1 | extrapolated | 75.0 |" in text           # listed, and not in Table 5
    assert "| B | 1 | 84.5 | 81.0 |" in text                    # identified far above the data
    assert "| auto | -1.00 | -1.00 | A @ 2 (81.8), B @ 1 (84.5) | 3/4 |" in text


def test_published_rows_need_numbers(tmp_path):
    path = tmp_path / "t4.csv"
    path.write_text("dataset,sft_step,p_sft,a_post,cmid_ef,b\nA,1,70,x,10,1\n")
    with pytest.raises(ValueError, match=r"t4.csv:2"):
        agreement.read_published(path)
