"""The READMEs' quoted numbers against their sources (analysis.quoted): a number no file holds fails."""
import json

from plasticity.analysis import quoted as Q


def _repo(tmp_path, readme_block, manifest):
    (tmp_path / "reports" / "default" / "tables").mkdir(parents=True, exist_ok=True)
    (tmp_path / "reports" / "default" / "tables" / "table4.csv").write_text(
        "Data,Step,P_sft,A_post\nuniform,400,12.04,22.3\nuniform,800,64.1,66.8\n")
    (tmp_path / "reports" / "default" / "metrics.json").write_text(json.dumps({"best": {"rl": 66.75}}))
    (tmp_path / "reports" / "benchmarks.md").write_text("took 12 min 17 s on the idle machine\n")
    (tmp_path / "README.md").write_text("Intro 2 cores, 24 GiB.\n" + Q.BEGIN + readme_block + Q.END + "\nAfter: 7.\n")
    return Q.check(tmp_path, manifest)


GOOD = {"README.md": {
    "400": {"file": "reports/default/tables/table4.csv", "row": {"Data": "uniform", "Step": "400"}, "column": "Step"},
    "12.0": {"file": "reports/default/tables/table4.csv", "row": {"Data": "uniform", "Step": "400"}, "column": "P_sft"},
    "+22.3": {"file": "reports/default/tables/table4.csv", "row": {"Step": "400"}, "column": "A_post"},
    "66.8": {"file": "reports/default/metrics.json", "key": ["best", "rl"]},
    "12": {"file": "reports/benchmarks.md", "text": "12 min 17 s"},
    "17": {"file": "reports/benchmarks.md", "text": "12 min 17 s"}}}
BLOCK = ("Table 4: from step 400 (Figures 2, 3) SFT reaches 12.0 and RL +22.3; peak 66.8 "
         "(`results/x-9.csv`, [link](reports/a1.md)). The suite took 12 min 17 s.")


def test_every_quoted_number_resolves(tmp_path):
    assert _repo(tmp_path, BLOCK, GOOD) == []


def test_a_number_no_file_holds_fails(tmp_path):
    problems = _repo(tmp_path, BLOCK + " It gained 9.1 points.", GOOD)
    assert problems == [f"README.md: 9.1 is quoted but no file is given for it in {Q.MANIFEST}"]


def test_a_source_that_does_not_hold_its_number_fails(tmp_path):
    bad = {"README.md": {**GOOD["README.md"], "66.8": {"file": "reports/default/metrics.json", "key": ["best", "sft"]}}}
    assert _repo(tmp_path, BLOCK, bad) == ["README.md: 66.8: reports/default/metrics.json: no key ['best', 'sft']"]
    bad = {"README.md": {**GOOD["README.md"], "12.0": {"file": "reports/default/tables/table4.csv",
                                                       "row": {"Step": "800"}, "column": "P_sft"}}}
    assert _repo(tmp_path, BLOCK, bad) == [
        "README.md: 12.0: reports/default/tables/table4.csv {'Step': '800'} P_sft = '64.1', not 12.0"]


def test_stale_entries_and_uncommitted_files_fail(tmp_path):
    stale = {"README.md": {**GOOD["README.md"], "5.5": GOOD["README.md"]["66.8"]}}
    assert _repo(tmp_path, BLOCK, stale) == [f"README.md: 5.5 has a source in {Q.MANIFEST} but is not quoted"]
    _repo(tmp_path / "x", BLOCK, GOOD)
    assert Q.check(tmp_path / "x", GOOD, committed={"reports/benchmarks.md"})[0] == \
        "README.md: 400: reports/default/tables/table4.csv is not a committed file"


def test_tokens_leave_out_names_and_code():
    """Branch names (all@800), avg@4, table and figure names, code and link targets are not quoted
    numbers; signs, thousands separators, scientific notation and a 1.38x factor are."""
    assert Q.quoted_numbers("all@800 has 80.4 (avg@4), lr 2e-5, −4.8, +6.05 ± 1.41, 2,756 rows, 1.38x, "
                            "Tables 1, 2 and 4, Figure 3, step-200, `uniform@400 9.9`, [a](b/c-7.md)") == \
        ["80.4", "2e-5", "−4.8", "+6.05", "1.41", "2,756", "1.38", "200"]
    assert Q.holds("+6.05", "6.0512") and Q.holds("−4.8", -4.79) and not Q.holds("4.8", -4.8)
    assert Q.holds("2,756", 2756) and Q.holds("0.0", -0.01) and not Q.holds("12.0", "n/a")
