"""Each native benchmark format parses into schema.BENCHMARK rows (fixtures in tests/fixtures/benchmarks)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from plasticity.eval import loaders
from plasticity.eval.loaders import LoaderError, parse_verl_rl, read_rows

FIX = Path(__file__).parents[1] / "fixtures" / "benchmarks"


def load(fmt: str, rel: str, benchmark: str = "b", role: str = "r", seed: int = 0):
    return loaders.PARSERS[fmt](read_rows(FIX / rel), benchmark, role, rel, seed)


def answers(rows):
    return [r[2] for r in rows]


def test_gsm8k_gold_after_hashes_commas_stripped():
    rows = load("gsm8k", "gsm8k/test-00000-of-00001.parquet", "gsm8k", "gsm8k")
    assert answers(rows) == ["72", "3600", "-3"]
    assert rows[0][1].startswith("A box holds")
    assert all(r[0].startswith("gsm8k-") for r in rows) and len({r[0] for r in rows}) == 3


def test_math500_answer_column_with_boxed_fallback():
    rows = load("math500", "math500/test.jsonl", "math500", "math")
    assert answers(rows) == ["\\frac{3}{4}", "2\\sqrt{3}", "[1,2)"]
    assert rows[0][0] == "math500-test_prealgebra_101.json"


def test_minerva_both_variants_e_notation_normalised():
    rows = load("minerva", "minerva/train-00000-of-00001.parquet")
    assert answers(rows) == ["5", "5.4 \\times 10^{2}", "0.25", "4.5 \\times 10^{33}"]
    assert [r.answer_raw for r in rows] == [None, None, None, "4.5e33"]
    rows = load("minerva", "minerva_qa/test.jsonl")
    assert answers(rows) == ["4", "0.2", "3 \\times 10^{5}", "1 \\times 10^{-8}"]
    assert rows[-1].answer_raw == "1e-8"


def test_normalise_gold_only_touches_e_notation():
    n = loaders.normalise_gold
    assert n("4.5e33") == "4.5 \\times 10^{33}" and n("1e-08") == "1 \\times 10^{-8}" and n("3.0E+8 m/s") == "3.0 \\times 10^{8} m/s"
    for kept in ("2e", "e^{2}", "3e^x", "x_1e2", "\\frac{1}{e}", "12", "0x1e5", "1.5e"):
        assert n(kept) == kept


def test_olympiadbench_list_and_stringified_list():
    rows = load("olympiadbench", "olympiadbench/OE_TO_maths_en_COMP.parquet")
    assert answers(rows) == ["2, 3", "55", "(0,1]", "69, 84", "166", "0.52"]
    assert [r.answers for r in rows] == [("2", "3"), (), (), ("69", "84"), (), ()]
    assert rows[3].answer_raw == "$69$,$84$"                 # stray inner dollars removed, raw kept
    assert (rows[4].unit, rows[5].tolerance) == ("cm^2", 0.01)
    assert answers(load("olympiadbench", "olympiadbench_str/test.jsonl")) == ["32", "(1, 2)", "\\sqrt{2}"]


def test_olympiadbench_bad_tolerance_names_the_field():
    row = {"question": "q", "final_answer": ["1"], "error": "about one"}
    with pytest.raises(LoaderError, match=r"f.parquet: row 0: field error 'about one'"):
        loaders.parse_olympiadbench([row], "b", "r", "f.parquet", 0)


def test_aime_zero_padding_and_aops_spellings_removed():
    rows = load("aime", "aime24/train-00000-of-00001.parquet", "aime24", "aime")
    assert answers(rows) == ["33", "204", "7", "73", "104"]
    assert [r[0] for r in rows] == ["aime24-60", "aime24-61", "aime24-62", "aime24-63", "aime24-64"]
    rows = load("aime", "aime25/aime2025-I.jsonl") + load("aime", "aime25/aime2025-II.jsonl")
    assert answers(rows) == ["70", "588", "62", "81"]


def test_verl_rows_roles_and_expanded_duplicates():
    rows = load("verl_rl", "retu_benchmark/benchmark.parquet", "retu_benchmark", "")
    assert [(r[3], r[2]) for r in rows] == [("gsm8k", "12"), ("math", "\\frac{3}{4}"), ("aime25", "42")]
    rows = load("verl_rl", "retu_benchmark_json/benchmark.jsonl", "retu_benchmark", "")
    assert [(r[3], r[1], r[2]) for r in rows] == [("olympiad_bench", "Synthetic olympiad.", "5"),
                                                  ("minerva", "Synthetic minerva.", "0.25"),
                                                  ("aime", "Synthetic aime.", "9")]


def test_gpqa_seeded_shuffle_keyed_by_record_id():
    rows = load("gpqa", "gpqa_diamond/gpqa_diamond.csv", "gpqa_diamond", "gpqa", seed=3)
    assert [r[0] for r in rows] == ["gpqa_diamond-recSYNTH001", "gpqa_diamond-recSYNTH002", "gpqa_diamond-recSYNTH003"]
    for row, correct in zip(rows, ["Neutron", "Argon", "Mitochondrion"]):
        letter = row[2]
        assert f"{letter}) {correct}" in row[1]           # the gold letter points at the correct text
        assert all(f"{x}) " in row[1] for x in "ABCD")
    again = load("gpqa", "gpqa_diamond/gpqa_diamond.csv", "gpqa_diamond", "gpqa", seed=3)
    assert again == rows                                    # deterministic
    reversed_rows = loaders.parse_gpqa(list(reversed(read_rows(FIX / "gpqa_diamond/gpqa_diamond.csv"))),
                                       "gpqa_diamond", "gpqa", "x", 3)
    assert sorted(reversed_rows) == sorted(rows)           # keyed by Record ID, not by row order
    letters = {load("gpqa", "gpqa_diamond/gpqa_diamond.csv", seed=s)[0][2] for s in range(12)}
    assert len(letters) > 1                                 # the correct option is not always first


def test_arc_numeric_labels_map_to_letters():
    rows = load("arc", "arc_challenge/test-00000-of-00001.parquet", "arc_challenge", "arc")
    assert answers(rows) == ["B", "B", "E"]
    assert "B) thermometer" in rows[0][1] and "C) trout" in rows[1][1]


def test_bad_rows_name_file_row_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "no gold line"}) + "\n")
    with pytest.raises(LoaderError, match=r"bad.jsonl: row 0: field answer has no '#### <gold>'"):
        loaders.parse_gsm8k(read_rows(bad), "gsm8k", "gsm8k", str(bad), 0)
    with pytest.raises(LoaderError, match=r"row 0: field data_source 'mystery'"):
        parse_verl_rl([{"data_source": "mystery", "prompt": "p", "reward_model": {"ground_truth": "1"}}],
                      "b", "", "f.parquet", 0)
    with pytest.raises(LoaderError, match=r"row 0: missing field final_answer"):
        loaders.parse_olympiadbench([{"question": "q"}], "b", "r", "f.parquet", 0)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(LoaderError, match=r"broken.jsonl: line 1"):
        read_rows(broken)


# Each fixture gold against a correct answer in its natural LaTeX spelling, through the references
# the grade stage uses (registry.references): e-notation, sets, units, tolerances, AoPS spellings.
NATURAL = [
    ("minerva", "minerva/train-00000-of-00001.parquet", 3, ["\\boxed{4.5 \\times 10^{33}}", "\\boxed{4.5\\cdot 10^{33}}"]),
    ("minerva", "minerva_qa/test.jsonl", 3, ["\\boxed{10^{-8}}", "\\boxed{1 \\times 10^{-8}}"]),
    ("olympiadbench", "olympiadbench/OE_TO_maths_en_COMP.parquet", 0, ["\\boxed{3, 2}", "$x=\\boxed{2}$ or $\\boxed{3}$"]),
    ("olympiadbench", "olympiadbench/OE_TO_maths_en_COMP.parquet", 3, ["\\boxed{69} and \\boxed{84}", "\\boxed{84, 69}"]),
    ("olympiadbench", "olympiadbench/OE_TO_maths_en_COMP.parquet", 4, ["\\boxed{166 cm^2}", "\\boxed{166 \\text{ cm}^2}"]),
    ("olympiadbench", "olympiadbench/OE_TO_maths_en_COMP.parquet", 5, ["\\boxed{0.52}", "\\boxed{0.5202}"]),
    ("aime", "aime24/train-00000-of-00001.parquet", 3, ["\\boxed{\\textbf{(073)}}", "\\boxed{73}"]),
    ("aime", "aime24/train-00000-of-00001.parquet", 4, ["\\boxed{104.}", "<answer>104</answer>"]),
]


def test_every_fixture_gold_is_reachable():
    from plasticity.eval.registry import references, rows_to_table
    from plasticity.grading import Grader

    def ref(fmt: str, rel: str, index: int):
        return references(rows_to_table([load(fmt, rel)[index]], "b"))[0]

    items = []
    for fmt, rel, index, completions in NATURAL:
        items += [(c, ref(fmt, rel, index)) for c in completions]
    with Grader("strict", workers=1, timeout_s=10) as g:
        verdicts = g.grade_many([c for c, _ in items], [r for _, r in items])
        wrong = [(c, r.gold, v.rule) for (c, r), v in zip(items, verdicts) if not v.correct]
        assert not wrong
        # ... and wrong answers stay wrong: one of the set, another unit, past the tolerance
        olympiad = NATURAL[3][1]
        bad = g.grade_many(["\\boxed{69}", "\\boxed{69, 84, 1}", "\\boxed{0.53}", "\\boxed{4.6 \\times 10^{33}}"],
                           [ref("olympiadbench", olympiad, 3), ref("olympiadbench", olympiad, 3),
                            ref("olympiadbench", olympiad, 5), ref("minerva", NATURAL[0][1], 3)])
        assert not any(v.correct for v in bad)
