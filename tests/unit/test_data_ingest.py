"""Ingest: every native schema maps to the canonical tables; bad input becomes ledger rows or a
clear error naming the file; counts reconcile."""
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plasticity.data import ingest, native
from plasticity.data.source_stream import SourceStream
from plasticity.data.tables import DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
SKYWORK = {"name": "sky", "format": "skywork_or1", "path": str(FIXTURES / "skywork")}


def _run(tmp_path, sources, rl=SKYWORK):
    out = tmp_path / "out"
    counts = ingest.run(sources, rl, tmp_path / "raw", out)
    tables = {name: pq.read_table(out / f"{name}.parquet").to_pylist()
              for name in ("trajectories", "rl_prompts", "ledger")}
    return counts, tables


def _src(name, fmt, sub):
    return {"name": name, "format": fmt, "path": str(FIXTURES / sub)}


def test_am_14m_plain_and_zst_agree(tmp_path):
    counts, t = _run(tmp_path, [_src("plain", "am_1.4m", "am14m"), _src("zst", "am_1.4m", "am14m_zst")])
    plain = [r for r in t["trajectories"] if r["source"] == "plain"]
    zst = [r for r in t["trajectories"] if r["source"] == "zst"]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("source", "source_file", "problem_id")} for r in rows]
    assert strip(plain) == strip(zst) and len(plain) == 4
    first = plain[0]
    assert first["prompt"] == "Compute 7-3+5." and first["reference_answer"] == "9"
    assert first["teacher"] == "am-0309" and first["domain"] == "math"
    assert [r["domain"] for r in plain] == ["math", "math", "code", "other"]
    assert plain[1]["teacher"] == "openR1Math_default"
    assert first["source_file"] == "plain/am_0.9M_sample_1k.jsonl" and first["source_row"] == 0


def test_am_40m_maps_pass_rates_to_win_rates(tmp_path):
    _, t = _run(tmp_path, [_src("am40m", "am_40m", "am40m")])
    rows = t["trajectories"]
    assert [r["teacher"] for r in rows] == ["r1", "7b", "r1", "r1"]
    assert rows[2]["domain"] == "science"
    assert (rows[0]["win_rate_small"], rows[0]["win_rate_mid"], rows[0]["win_rate_teacher"]) == (0.25, 0.75, 1.0)
    assert rows[0]["reference_answer"] == "2"


def test_am_40m_falls_back_to_file_name(tmp_path):
    src = tmp_path / "src" / "science_7b_2pass.jsonl"
    src.parent.mkdir()
    src.write_text(json.dumps({"question": "q?", "answer": "<think>a</think>\\boxed{1}"}) + "\n")
    _, t = _run(tmp_path, [{"name": "x", "format": "am_40m", "path": str(src.parent)}])
    assert (t["trajectories"][0]["domain"], t["trajectories"][0]["teacher"]) == ("science", "7b")


def test_s1k_builds_think_answer_response(tmp_path):
    _, t = _run(tmp_path, [_src("s1k", "s1k", "s1k")])
    row = t["trajectories"][0]
    assert row["response"].startswith("<think>\nEach element") and "</think>\n<answer>The answer is \\boxed{128}.</answer>" in row["response"]
    assert row["reference_answer"] == "128" and row["teacher"] == "deepseek-r1"
    assert [r["domain"] for r in t["trajectories"]] == ["math", "science"]


def test_retu_sft_struct_and_json_text_agree(tmp_path):
    _, t = _run(tmp_path, [_src("a", "retu_sft", "retu_sft_struct"), _src("b", "retu_sft", "retu_sft_json")])
    a = [r for r in t["trajectories"] if r["source"] == "a"]
    b = [r for r in t["trajectories"] if r["source"] == "b"]
    assert [(r["prompt"], r["response"], r["reference_answer"]) for r in a] == \
           [(r["prompt"], r["response"], r["reference_answer"]) for r in b]
    assert a[0]["prompt"] == "What is 7 + 5?" and a[1]["reference_answer"] == "1/2"


def test_skywork_prompt_answer_difficulty(tmp_path):
    _, t = _run(tmp_path, [_src("am40m", "am_40m", "am40m")])
    rl = t["rl_prompts"]
    assert [r["prompt"] for r in rl][0] == "If 3x + 1 = 10, find x."
    assert [r["reference_answer"] for r in rl] == ["3", "4", "7"]          # first of the JSON list
    assert [r["difficulty"] for r in rl] == [0.5, 0.25, 1.0]                # 1.5B difficulty / 16


def test_retu_rl_plain_string_ground_truth(tmp_path):
    _, t = _run(tmp_path, [_src("am40m", "am_40m", "am40m")],
                rl={"name": "rl62k", "format": "retu_rl", "path": str(FIXTURES / "retu_rl")})
    assert [(r["prompt"], r["reference_answer"], r["difficulty"]) for r in t["rl_prompts"]] == \
           [("Solve 2x = 8.", "4", None), ("Solve x + 1 = 3.", "2", None)]


def test_bad_rows_go_to_the_ledger_and_counts_reconcile(tmp_path):
    counts, t = _run(tmp_path, [_src("bad", "am_40m", "bad")])
    reasons = {r["reason"]: r["detail"] for r in t["ledger"]}
    assert set(reasons) == {"malformed_json", "invalid_utf8", "missing_field", "wrong_type", "empty_shard"}
    assert reasons["malformed_json"].startswith("bad/am40m_bad.jsonl row 1")
    assert "row 2" in reasons["invalid_utf8"]
    assert "row 3" in reasons["missing_field"] and "'answer'" in reasons["missing_field"]
    assert "'pass_rate_1.5b'" in reasons["wrong_type"]
    assert reasons["empty_shard"] == "bad/empty.jsonl: file has no records"
    assert len(t["trajectories"]) == 2
    assert counts["in"] == counts["kept"] + counts["dropped"] == 2 + 3 + 5 + 0
    assert counts["in"] == len(t["trajectories"]) + len(t["rl_prompts"]) + len(t["ledger"])


def test_non_math_rl_rows_dropped(tmp_path):
    table = pq.read_table(FIXTURES / "skywork" / "math-00000.parquet")
    table = table.set_column(2, "ability", pa.array(["math", "code", "math"]))
    (tmp_path / "sky").mkdir()
    pq.write_table(table, tmp_path / "sky" / "x.parquet")
    counts, t = _run(tmp_path, [_src("am40m", "am_40m", "am40m")],
                     rl={"name": "sky", "format": "skywork_or1", "path": str(tmp_path / "sky")})
    assert len(t["rl_prompts"]) == 2 and [r["reason"] for r in t["ledger"]] == ["not_math"]


def test_wrong_type_in_parquet_column(tmp_path):
    rows = [{"extra_info": {"question": "q", "answer": "a"}}, {"extra_info": {"question": "q2", "answer": None}}]
    (tmp_path / "r").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "r" / "x.parquet")
    counts, t = _run(tmp_path, [{"name": "r", "format": "retu_sft", "path": str(tmp_path / "r")}])
    assert len(t["trajectories"]) == 1
    assert t["ledger"][0]["detail"] == "r/x.parquet row 1: field 'answer': missing or null"


def test_truncated_parquet_stops_with_the_file_named(tmp_path):
    src = tmp_path / "s1k"
    src.mkdir()
    data = (FIXTURES / "s1k" / "train-00000-of-00001.parquet").read_bytes()
    (src / "part.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="part.parquet"):
        _run(tmp_path, [{"name": "s1k", "format": "s1k", "path": str(src)}])
    assert not (tmp_path / "out").exists()                 # nothing half-written


def test_truncated_zst_stops_with_the_file_named(tmp_path):
    src = tmp_path / "z"
    src.mkdir()
    data = (FIXTURES / "am14m_zst" / "am_0.9M.jsonl.zst").read_bytes()
    (src / "cut.jsonl.zst").write_bytes(data[: len(data) - 40])
    with pytest.raises(DataError, match="cut.jsonl.zst"):
        _run(tmp_path, [{"name": "z", "format": "am_1.4m", "path": str(src)}])


def test_missing_source_path_is_an_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        _run(tmp_path, [{"name": "x", "format": "am_40m", "path": str(tmp_path / "nope")}])


def test_json_array_file(tmp_path):
    src = tmp_path / "j" / "rows.json"
    src.parent.mkdir()
    src.write_text(json.dumps([json.loads(l) for l in (FIXTURES / "am40m" / "math_r1_1pass.jsonl").read_text().splitlines()]))
    _, t = _run(tmp_path, [{"name": "j", "format": "am_40m", "path": str(src)}])
    assert len(t["trajectories"]) == 4 and t["trajectories"][0]["source_file"] == "j/rows.json"


def test_first_answer_variants():
    assert native.first_answer('["3", "x=3"]', "f") == "3"
    assert native.first_answer(["", "5"], "f") == "5"
    assert native.first_answer("[1, 2] is an interval", "f") == "[1, 2] is an interval"
    assert native.first_answer(7, "f") == "7"
    with pytest.raises(native.RowError):
        native.first_answer("[]", "f")


def test_rerun_is_byte_identical(tmp_path):
    sources = [_src("am14m", "am_1.4m", "am14m_zst"), _src("bad", "am_40m", "bad")]
    ingest.run(sources, SKYWORK, tmp_path / "raw", tmp_path / "a")
    ingest.run(sources, SKYWORK, tmp_path / "raw", tmp_path / "b")
    for name in ("trajectories.parquet", "rl_prompts.parquet", "ledger.parquet", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def _faulty_am40m(path: Path, n: int, seed: int) -> None:
    """AM-40M lines with every oddity the block path must hand to the row path, spread at random."""
    import random

    rng = random.Random(seed)
    good = {"question": "What is 2+2?", "answer": "<think>\nfour\n</think>\n\\boxed{4}", "question_source": "q",
            "answer_source": "a", "category": "math", "ground_truth": "4", "test_case": "", "instruction_constrain": "",
            "pass_rate_r1": 1.0, "pass_rate_7b": 0.75, "pass_rate_1.5b": 0.25, "verify_score": 1.0, "ppl": 1.5,
            "model_name": "r1"}
    faults = [
        lambda r: b"{not json\n", lambda r: b"\n", lambda r: b"   \n",
        lambda r: json.dumps({**r, "question": "caf\u00e9"}).encode().replace(b"caf\\u00e9", b"caf\xff") + b"\n",
        lambda r: json.dumps({**r, "question": "\x1c\u3000 "}).encode() + b"\n",    # blank for str.strip()
        lambda r: json.dumps({**r, "answer": None}).encode() + b"\n",
        lambda r: json.dumps({k: v for k, v in r.items() if k != "category"}).encode() + b"\n",
        lambda r: json.dumps({**r, "model_name": ""}).encode() + b"\n",
        lambda r: json.dumps({**r, "ground_truth": " \t"}).encode() + b"\n",          # becomes null
        lambda r: json.dumps({**r, "ground_truth": ["4"]}).encode() + b"\n",
        lambda r: json.dumps({**r, "pass_rate_7b": 1.5}).encode() + b"\n",
        lambda r: json.dumps({**r, "pass_rate_7b": True}).encode() + b"\n",
        lambda r: json.dumps({**r, "pass_rate_1.5b": 1}).encode() + b"\n",            # an int rate is fine
        lambda r: json.dumps(r).encode()[:-1] + b', "pass_rate_r1": NaN}\n',
        lambda r: json.dumps(r).encode()[:-1] + b', "category": "code"}\n',            # repeated key
        lambda r: b"[1, 2]\n", lambda r: json.dumps({**r, "extra": {"x": [1]}}).encode() + b"\r\n",
    ]
    with open(path, "wb") as fh:
        for i in range(n):
            row = {**good, "question": f"Problem {i}: what is {i}+{i}?", "ground_truth": str(2 * i)}
            fh.write(rng.choice(faults)(row) if rng.random() < 0.15 else json.dumps(row).encode() + b"\n")
        fh.write(json.dumps(good).encode())                                            # no final newline


@pytest.mark.parametrize("block_bytes", [300, 4096, 1 << 24])
def test_am40m_block_path_equals_row_path(tmp_path, monkeypatch, block_bytes):
    from plasticity.data import am40m_blocks

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _faulty_am40m(corpus / "math_r1_1pass.jsonl", 600, seed=block_bytes)
    sources = [_src("am40m", "am_40m", "am40m"), _src("bad", "am_40m", "bad"),
               {"name": "gen", "format": "am_40m", "path": str(corpus)}]
    monkeypatch.setattr(am40m_blocks, "BLOCK_BYTES", block_bytes)
    outputs = {}
    for arrow in (False, True):
        monkeypatch.setattr(ingest, "ARROW_BLOCKS", arrow)
        out = tmp_path / f"out_{arrow}"
        counts = ingest.run(sources, SKYWORK, tmp_path / "raw", out)
        outputs[arrow] = ({n: (out / f"{n}.parquet").read_bytes() for n in ("trajectories", "ledger")}, counts)
    assert outputs[True] == outputs[False]
    ledger = pq.read_table(tmp_path / "out_True" / "ledger.parquet").to_pylist()
    assert len({r["reason"] for r in ledger}) >= 4 and len(ledger) > 40


def test_am40m_blocks_use_arrow_for_clean_blocks(tmp_path, monkeypatch):
    from plasticity.data import am40m_blocks

    path = tmp_path / "math_r1_1pass.jsonl"
    _faulty_am40m(path, 300, seed=1)
    monkeypatch.setattr(am40m_blocks, "BLOCK_BYTES", 2048)
    with SourceStream(path) as stream:
        kinds = [kind for kind, _, _ in am40m_blocks.blocks(stream)]
    assert "table" in kinds and "records" in kinds
