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


def test_minerva_both_variants():
    assert answers(load("minerva", "minerva/train-00000-of-00001.parquet")) == ["5", "5.4 \\times 10^{2}", "0.25"]
    assert answers(load("minerva", "minerva_qa/test.jsonl")) == ["4", "0.2", "3 \\times 10^{5}"]


def test_olympiadbench_list_and_stringified_list():
    assert answers(load("olympiadbench", "olympiadbench/OE_TO_maths_en_COMP.parquet")) == ["2,3", "55", "(0,1]"]
    assert answers(load("olympiadbench", "olympiadbench_str/test.jsonl")) == ["32", "(1, 2)", "\\sqrt{2}"]


def test_aime_zero_padding_removed_both_copies():
    rows = load("aime", "aime24/train-00000-of-00001.parquet", "aime24", "aime")
    assert answers(rows) == ["33", "204", "7"]
    assert [r[0] for r in rows] == ["aime24-60", "aime24-61", "aime24-62"]
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
