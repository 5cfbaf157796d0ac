"""Decontamination: planted exact and near copies of benchmark problems are removed, clean rows kept;
the benchmark-side embedding filter with a deterministic toy embedding."""
import numpy as np
import pytest
import pyarrow as pa
import pyarrow.parquet as pq

from plasticity import schema as S
from plasticity.data import decontaminate
from plasticity.data.filters import MATCHED
from plasticity.data.tables import write_rows

BENCH = [
    ("mini_math-0", "mini_math", "Let x be the number of ways to choose three red balls from a bag of ten balls. Find x."),
    ("mini_math-1", "mini_math", "7-3+5="),
    ("mini_gsm8k-0", "mini_gsm8k", "Janet has 16 eggs and eats three for breakfast every single morning; how many are left?"),
]


def traj(i, prompt):
    return {"problem_id": f"p{i}", "source": "am", "source_file": "am/f.jsonl", "source_row": i, "domain": "math",
            "teacher": "r1", "prompt": prompt, "response": "<think>x</think>\\boxed{1}", "reference_answer": "1",
            "win_rate_small": None, "win_rate_mid": None, "win_rate_teacher": None}


def setup(tmp_path, sft_prompts, rl_prompts=()):
    bench = tmp_path / "bench"
    bench.mkdir()
    for name in ("mini_math", "mini_gsm8k"):
        rows = [{"problem_id": p, "benchmark": b, "role": b, "prompt": t, "answer": "1"} for p, b, t in BENCH if b == name]
        pq.write_table(pa.Table.from_pylist(rows, schema=S.BENCHMARK), bench / f"{name}.parquet")
    src = tmp_path / "filtered"
    rows = [traj(i, p) for i, p in enumerate(sft_prompts)]
    write_rows(src / "trajectories.parquet", rows, S.TRAJECTORY)
    write_rows(src / "rl_matched.parquet", [{**rows[0], "response_tokens": 5}] if rows else [], MATCHED)
    write_rows(src / "rl_prompts.parquet", [{"problem_id": f"r{i}", "source": "sky", "source_file": "sky/x", "source_row": i,
                                             "prompt": p, "reference_answer": "1", "difficulty": None}
                                            for i, p in enumerate(rl_prompts)], S.RL_PROMPT)
    return src, bench


def kept_ids(out, name):
    return pq.read_table(out / name).column("problem_id").to_pylist()


SFT = [
    "Let x be the number of ways to choose three red balls from a bag of ten balls. Find x.",   # exact copy
    "Suppose we let x be the number of ways to choose three red balls from a bag; compute x+1.",  # near copy
    "JANET HAS 16 EGGS and eats three for breakfast, every day.",                                # near (case)
    "7-3+5=",                                                                                  # short exact
    "7+3-5=",                                                                                  # short, clean
    "Count the lattice points inside a circle of radius five centred at the origin.",          # clean
    "choose three red balls",                                                                  # short, clean
]


def test_exact_and_near_copies_removed_clean_kept(tmp_path):
    src, bench = setup(tmp_path, SFT, ["7-3+5=", "Find the area of a unit square."])
    out = tmp_path / "out"
    counts = decontaminate.run({"ngram": 8}, src, bench, out)
    assert kept_ids(out, "trajectories.parquet") == ["p4", "p5", "p6"]
    assert kept_ids(out, "rl_prompts.parquet") == ["r1"]
    assert kept_ids(out, "rl_matched.parquet") == []           # rl_matched row 0 is the exact copy
    ledger = pq.read_table(out / "ledger.parquet").to_pylist()
    assert len(ledger) == counts["tables"]["trajectories.parquet"]["dropped"] + 1 + 1
    detail = next(r["detail"] for r in ledger if r["problem_id"] == "p1")
    assert "shares 8-gram" in detail and "mini_math/mini_math-0" in detail
    for c in counts["tables"].values():
        assert c["in"] == c["kept"] + c["dropped"]
    # p2 shares at most 9 words in a row with the gsm8k prompt, p1 shares 14 with mini_math-0
    decontaminate.run({"ngram": 12}, src, bench, tmp_path / "out12")
    assert kept_ids(tmp_path / "out12", "trajectories.parquet") == ["p2", "p4", "p5", "p6"]


def test_pool_path_gives_the_same_result(tmp_path, monkeypatch):
    prompts = SFT * 30
    src, bench = setup(tmp_path, prompts)
    decontaminate.run({"ngram": 8}, src, bench, tmp_path / "one", threads=1)
    monkeypatch.setattr(decontaminate, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(decontaminate, "_CHUNK", 16)
    decontaminate.run({"ngram": 8}, src, bench, tmp_path / "two", threads=2)
    for name in ("trajectories.parquet", "ledger.parquet"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_response_field_optional(tmp_path):
    src, bench = setup(tmp_path, ["clean prompt about geometry"])
    table = pq.read_table(src / "trajectories.parquet")
    table = table.set_column(table.schema.get_field_index("response"), "response", pa.array([BENCH[0][2]]))
    pq.write_table(table, src / "trajectories.parquet")
    decontaminate.run({"ngram": 8}, src, bench, tmp_path / "a")
    decontaminate.run({"ngram": 8, "fields": ["prompt", "response"]}, src, bench, tmp_path / "b")
    assert kept_ids(tmp_path / "a", "trajectories.parquet") == ["p0"]
    assert kept_ids(tmp_path / "b", "trajectories.parquet") == []


def toy_embed(texts):
    """Bag of letters: deterministic, similar texts get similar vectors."""
    out = np.zeros((len(texts), 26))
    for i, t in enumerate(texts):
        for ch in t.lower():
            if "a" <= ch <= "z":
                out[i, ord(ch) - 97] += 1
    return out


def test_benchmark_side_removes_similar_benchmark_problems(tmp_path):
    # a paraphrase that shares no 8-gram but is close in the toy embedding
    src, bench = setup(tmp_path, ["Janet owns sixteen eggs, eating three each breakfast morning: how many left?",
                                  "zzz qqq"])
    out = tmp_path / "out"
    counts = decontaminate.run({"ngram": 8, "benchmark_side": {"model_path": "unused", "threshold": 0.9}},
                               src, bench, out, embed=toy_embed)
    assert kept_ids(out, "trajectories.parquet") == ["p0", "p1"]        # the training side keeps both
    assert pq.read_table(out / "benchmarks" / "mini_gsm8k.parquet").num_rows == 0
    assert pq.read_table(out / "benchmarks" / "mini_math.parquet").num_rows == 2
    ledger = pq.read_table(out / "benchmark_ledger.parquet").to_pylist()
    assert [r["problem_id"] for r in ledger] == ["mini_gsm8k-0"] and "training prompt p0" in ledger[0]["detail"]
    assert counts["benchmark_side"]["removed"] == 1


def test_cleaned_suite_is_a_benchmarks_directory(tmp_path):
    from plasticity.eval.registry import benchmark_sha256, load_suites
    from plasticity.io import sha256_file

    src, bench = setup(tmp_path, ["Janet owns sixteen eggs, eating three each breakfast morning: how many left?"])
    out = tmp_path / "out"
    decontaminate.run({"ngram": 8, "benchmark_side": {"model_path": "unused", "threshold": 0.9}},
                      src, bench, out, embed=toy_embed)
    suites = load_suites(out / "benchmarks", ["mini_gsm8k", "mini_math"])   # what generate/grade/rl read
    assert (suites["mini_gsm8k"].num_rows, suites["mini_math"].num_rows) == (0, 2)
    cleaned = out / "benchmarks" / "mini_math.parquet"
    assert benchmark_sha256(out / "benchmarks", "mini_math") == sha256_file(cleaned)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_embedder_on_a_local_model(tiny_model_dir, pooling):
    embed = decontaminate.load_embedder(tiny_model_dir, pooling, batch_size=8)
    texts = ["7-3+5=", "Janet has 16 eggs and eats three for breakfast; how many are left?", "1+1="]
    together = np.asarray(embed(texts))
    alone = np.asarray(embed(texts[:1]))
    assert together.shape[0] == 3 and np.allclose(np.linalg.norm(together, axis=1), 1.0)
    assert np.allclose(alone[0], together[0], atol=1e-5)          # padding does not move a text's vector
    assert float(together[0] @ together[2]) < 0.99999              # different texts, different vectors


def test_embedder_refuses_pickled_weights(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(ValueError, match="safetensors"):
        decontaminate.load_embedder(tmp_path)


def test_stage_catches_normalised_variants_and_contained_short_problems(tmp_path):
    """The stage end to end: zero-width spaces, LaTeX spacing and a short benchmark problem inside a
    longer prompt are removed, with the ledger's file / row / field columns; clean controls stay."""
    wordy = BENCH[0][2]
    prompts = [
        wordy.replace(" ", "\u200b"),                                      # no raw 8-gram in common
        wordy.replace(" ", "~"),
        "Warm up first: 7-3+5= and then explain each step to a friend in words.",   # contains mini_math-1
        "Warm up first: 17-3+5= and then explain each step to a friend in words.",  # clean: 17, not 7
        "Let y be the count of ways to pick four blue cubes from a box of twelve cubes. Find y.",  # clean
    ]
    src, bench = setup(tmp_path, prompts)
    decontaminate.run({"ngram": 8}, src, bench, tmp_path / "out")
    assert kept_ids(tmp_path / "out", "trajectories.parquet") == ["p3", "p4"]
    ledger = [r for r in pq.read_table(tmp_path / "out" / "ledger.parquet").to_pylist()
              if r["file"] == "am/f.jsonl" and r["reason"] == "benchmark_overlap"]
    assert [(r["problem_id"], r["row"], r["field"]) for r in ledger][:3] == \
           [("p0", 0, "prompt"), ("p1", 1, "prompt"), ("p2", 2, "prompt")]
    assert "whole prompt of mini_math/mini_math-1" in ledger[2]["detail"]
