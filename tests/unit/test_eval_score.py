"""The grade stage on hand-written generations: verdicts, avg@k over all samples, scores and summary."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plasticity import schema
from plasticity.eval import registry, score
from plasticity.io import write_json, write_manifest

EVAL = {"benchmarks": ["mini_gsm8k", "mini_aime24"], "backend": "transformers",
        "sampling": {"temperature": 0.7, "top_p": 1.0, "max_new_tokens": 64},
        "samples": {"default": 1, "mini_aime24": 4}, "batch_size": 64,
        "grader": {"mode": "strict", "timeout_s": 5, "workers": 1}}


def _write_generations(root, suites, pattern):
    """pattern(problem index, sample index) -> (correct?, finish_reason)."""
    info = {}
    for name, table in suites.items():
        k = 4 if name == "mini_aime24" else 1
        rows = {n: [] for n in schema.GENERATION.names}
        for i, (pid, ans) in enumerate(zip(table.column("problem_id").to_pylist(), table.column("answer").to_pylist())):
            for j in range(k):
                ok, finish = pattern(name, i, j)
                text = f"<think>\nwork\n</think>\n<answer>\\boxed{{{ans if ok else int(ans) + 1}}}</answer>"
                if finish == "length":
                    text = "<think>\nwork that never ends"
                for col, val in zip(schema.GENERATION.names, [pid, name, j, text, finish, 5, 20]):
                    rows[col].append(val)
        (root / name).mkdir(parents=True)
        pq.write_table(pa.Table.from_pydict(rows, schema=schema.GENERATION), root / name / "generations.parquet")
        info[name] = {"sampling": {"temperature": 0.7, "n": k}}
    write_manifest(root, stage="generate", extra={"generations": info, "prompt_template_sha256": "abc",
                                                  "backend": "transformers"})


def test_grade_stage(tmp_path):
    bench_dir = tmp_path / "bench"
    registry.run({"seed": 5, "benchmarks": EVAL["benchmarks"]}, bench_dir)
    suites = registry.load_suites(bench_dir, EVAL["benchmarks"])

    def pattern(name, i, j):
        if name == "mini_gsm8k":
            return (i % 2 == 0, "stop")                      # 30 of 60 right
        if i == 0:
            return (j != 0, "stop")                          # first sample wrong, the other three right
        return (False, "length" if j == 3 else "stop")      # all wrong, one truncated sample each

    gen = tmp_path / "gen"
    _write_generations(gen, suites, pattern)
    cfg = tmp_path / "cfg.json"
    write_json(cfg, {"seed": 5, "eval": EVAL})
    out = tmp_path / "graded"
    assert score.main(["--config", str(cfg), "--generations", str(gen), "--benchmarks", str(bench_dir),
                       "--out", str(out)]) == 0
    samples = pq.read_table(out / "mini_aime24" / "samples.parquet")
    assert samples.schema.equals(schema.SAMPLE) and samples.num_rows == 80
    s = json.loads((out / "mini_aime24" / "scores.json").read_text())
    assert s["k"] == 4 and s["n_problems"] == 20 and s["n_samples"] == 80
    assert s["avg_at_k"] == pytest.approx(100 * 3 / 80)     # all samples count, not the first only
    assert s["pass_at_k"]["1"] == pytest.approx(100 * 3 / 80)
    assert s["pass_at_k"]["4"] == pytest.approx(100 / 20)
    assert s["maj_at_k"] == pytest.approx(100 / 20)
    assert s["truncation_rate"] == pytest.approx(19 / 80)
    assert s["no_answer_rate"] == pytest.approx(19 / 80)
    assert s["flags"] == {"gold_not_extracted": 0.0, "hit_token_limit": pytest.approx(19 / 80), "parser_error": 0.0}
    assert samples.column("hit_token_limit").to_pylist() == [f == "length" for f in samples.column("finish_reason").to_pylist()]
    assert s["ci95"][0] <= s["avg_at_k"] <= s["ci95"][1]
    fp = s["fingerprint"]
    assert fp["grader_version"] and fp["math_verify"] == "0.9.0" and fp["mode"] == "strict"
    assert fp["prompt_template_sha256"] == "abc" and fp["seed"] == 5
    assert fp["benchmark_sha256"] == json.loads((bench_dir / "manifest.json").read_text())["benchmarks"]["mini_aime24"]["sha256"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["benchmarks"]["mini_gsm8k"] == {"role": "gsm8k", "accuracy": 50.0, "n_problems": 60}
    assert summary["micro"] == pytest.approx((50.0 * 60 + 100 * 3 / 80 * 20) / 80)
    assert summary["macro"] == pytest.approx((50.0 + 100 * 3 / 80) / 2)
    assert (out / "manifest.json").is_file()
    # regrading is byte-identical
    out2 = tmp_path / "graded2"
    score.run({"seed": 5, "eval": EVAL}, gen, bench_dir, out2)
    for rel in ["summary.json", "mini_aime24/scores.json", "mini_aime24/samples.parquet"]:
        assert (out / rel).read_bytes() == (out2 / rel).read_bytes()


def test_generations_for_unknown_problem_is_an_error(tmp_path):
    bench_dir = tmp_path / "bench"
    registry.run({"seed": 5, "benchmarks": ["mini_gsm8k"]}, bench_dir)
    gen = tmp_path / "gen"
    (gen / "mini_gsm8k").mkdir(parents=True)
    rows = {n: [v] for n, v in zip(schema.GENERATION.names, ["nope", "mini_gsm8k", 0, "x", "stop", 1, 1])}
    pq.write_table(pa.Table.from_pydict(rows, schema=schema.GENERATION), gen / "mini_gsm8k" / "generations.parquet")
    write_manifest(gen, stage="generate")
    with pytest.raises(ValueError, match=r"row 0: field problem_id 'nope'"):
        score.run({"seed": 5, "eval": {**EVAL, "benchmarks": ["mini_gsm8k"]}}, gen, bench_dir, tmp_path / "o")


def test_matharena_flags_per_sample():
    from plasticity.grading import Grader, Reference

    bench = registry.rows_to_table([("p1", "q1", "12", "gsm8k"), ("p2", "q2", "69, 84", "olympiad_bench", "$69$,$84$",
                                     ("69", "84"))], "mixed")
    completions = [
        ("p1", "<think>t</think> \\boxed{x} so the answer is 12.", "stop"),      # gold written, box read: flagged
        ("p1", "<think>t</think> \\boxed{\\frac{1}{}}", "stop"),                  # parser error
        ("p1", "<think>t</think> \\boxed{12}", "stop"),                           # right: never flagged
        ("p1", "<think>t</think> 120 and 3.12 and x12", "length"),                # 12 only inside other tokens
        ("p2", "<think>t</think> \\boxed{69}, then 84 too", "stop"),             # one box of two; both written
        ("p2", "<think>t</think> \\boxed{84} \\boxed{69}", "stop"),              # the set, any order
    ]
    rows = {n: [] for n in schema.GENERATION.names}
    for j, (pid, text, finish) in enumerate(completions):
        for col, val in zip(schema.GENERATION.names, [pid, "mixed", j, text, finish, 5, 20]):
            rows[col].append(val)
    gens = pa.Table.from_pydict(rows, schema=schema.GENERATION)
    with Grader("strict") as g:
        samples, _ = score.grade_benchmark("mixed", bench, gens, g)
    assert samples.column("correct").to_pylist() == [False, False, True, False, False, True]
    assert samples.column("gold_not_extracted").to_pylist() == [True, False, False, False, True, False]
    assert samples.column("parser_error").to_pylist() == [False, True, False, False, False, False]
    assert samples.column("hit_token_limit").to_pylist() == [False, False, False, True, False, False]
    assert samples.column("answer").to_pylist()[-1] == "69, 84"
    flags = score.score_samples(samples, 0, "mixed")["flags"]
    assert flags == {"gold_not_extracted": pytest.approx(2 / 6), "hit_token_limit": pytest.approx(1 / 6),
                     "parser_error": pytest.approx(1 / 6)}
    assert score.gold_in_completion("x\\boxed{3}", Reference("3")) and not score.gold_in_completion("13", Reference("3"))
    # a gold longer than the answer part cannot be written in it (and builds no 100,000-character pattern)
    assert not score.gold_in_completion("7" * 5000, Reference("7" * 100_000))
    assert score.gold_in_completion("</think> " + "7" * 900, Reference("7" * 900))


def test_a_sample_whose_grading_raises_is_wrong_and_counted(tmp_path, monkeypatch):
    """One completion on which the grader raises: that sample is wrong with reason error:<class>, the
    stage finishes, the others keep their verdicts, scores.json counts it under grader_errors."""
    from plasticity import grading

    bench_dir = tmp_path / "bench"
    registry.run({"seed": 5, "benchmarks": ["mini_gsm8k"]}, bench_dir)
    suites = registry.load_suites(bench_dir, ["mini_gsm8k"])
    poisoned = suites["mini_gsm8k"].column("answer")[0].as_py()
    original = grading.fast_verdict

    def raising(gold, extracted, kind="box"):
        if extracted == poisoned:
            raise ValueError("planted")
        return original(gold, extracted, kind)

    monkeypatch.setattr(grading, "fast_verdict", raising)
    gen = tmp_path / "gen"
    _write_generations(gen, suites, lambda name, i, j: (True, "stop"))
    out = tmp_path / "graded"
    score.run({"seed": 5, "eval": {**EVAL, "benchmarks": ["mini_gsm8k"]}}, gen, bench_dir, out)
    s = json.loads((out / "mini_gsm8k" / "scores.json").read_text())
    samples = pq.read_table(out / "mini_gsm8k" / "samples.parquet").to_pylist()
    errors = [r for r in samples if r["reason"] == "error:ValueError"]
    assert s["grader_errors"] == len(errors) >= 1 and all(r["rule"] == "error" for r in errors)
    assert all(r["correct"] for r in samples if r["answer"] != poisoned)
    assert s["accuracy"] == pytest.approx(100 * (len(samples) - len(errors)) / len(samples))
