"""Generation on a tiny random Qwen2 model: sampling by default, no hidden cap, determinism, the stages."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from plasticity import schema
from plasticity.eval import generate, registry, score
from plasticity.eval.evaluate import evaluate_in_memory
from plasticity.eval.generate import Completion, SamplingConfig, generate_transformers
from plasticity.grading import Grader
from plasticity.io import write_json

EVAL = {"benchmarks": ["mini_gsm8k", "mini_aime24"], "backend": "transformers",
        "sampling": {"temperature": 0.7, "top_p": 1.0, "max_new_tokens": 24},
        "samples": {"default": 1, "mini_aime24": 3}, "batch_size": 32,
        "grader": {"mode": "strict", "timeout_s": 5, "workers": 1}}


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    from plasticity.models import load_model_and_tokenizer

    return load_model_and_tokenizer(tiny_model_dir)


def test_samples_by_default_with_the_configured_budget(loaded, monkeypatch):
    model, tok = loaded
    seen = {}
    original = model.generate

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    s = SamplingConfig(max_new_tokens=17, n=2, seed=1)
    out = generate_transformers(model, tok, ["7-3=", "1+2+3="], s, batch_size=8)
    assert seen["do_sample"] is True and seen["temperature"] == 0.7 and seen["top_p"] == 1.0
    assert seen["top_k"] == 0                         # the study's top-k -1: no hidden top-50
    assert seen["max_new_tokens"] == 17               # exactly the configured budget
    assert SamplingConfig().max_new_tokens == 8192 and SamplingConfig().temperature == 0.7
    assert len(out) == 2 and all(len(x) == 2 for x in out)
    for c in (c for x in out for c in x):
        assert isinstance(c, Completion) and c.finish_reason in {"stop", "length"}
        assert 1 <= c.completion_tokens <= 17
        assert c.finish_reason == "stop" or c.completion_tokens == 17
    with pytest.raises(ValueError, match="greedy"):
        SamplingConfig(temperature=0)


def test_deterministic_given_the_seed_and_different_across_seeds(loaded):
    model, tok = loaded
    prompts = [f"{a}+{b}=" for a in range(1, 9) for b in range(1, 4)]
    a = generate_transformers(model, tok, prompts, SamplingConfig(max_new_tokens=12, n=2, seed=3), 16)
    b = generate_transformers(model, tok, prompts, SamplingConfig(max_new_tokens=12, n=2, seed=3), 16)
    c = generate_transformers(model, tok, prompts, SamplingConfig(max_new_tokens=12, n=2, seed=4), 16)
    assert a == b and a != c
    assert any(x[0].text != x[1].text for x in a)     # the two samples of a prompt differ


def test_context_overflow_is_an_error_not_a_silent_cap(loaded):
    model, tok = loaded
    with pytest.raises(ValueError, match="exceeds the model's context"):
        generate_transformers(model, tok, ["1+1="], SamplingConfig(max_new_tokens=500), 4)


def test_difficulty_sampler_is_the_transformers_backend(tiny_model_dir, loaded):
    from plasticity.data.difficulty import transformers_sampler

    prompts = ["1+2=", "7-3=", "2+2+2="]
    sample = transformers_sampler(tiny_model_dir, max_new_tokens=10, batch_size=16)
    out = sample(prompts, 4, 7)
    model, tok = loaded
    same = generate_transformers(model, tok, prompts, SamplingConfig(max_new_tokens=10, n=4, seed=7), 16)
    assert out == [[c.text for c in group] for group in same]
    assert sample(prompts, 4, 7) == out and sample(prompts, 4, 8) != out


def test_generate_and_grade_stages_match_in_memory_eval(tiny_model_dir, loaded, tmp_path):
    bench = tmp_path / "bench"
    registry.run({"seed": 11, "benchmarks": EVAL["benchmarks"]}, bench)
    cfg = tmp_path / "cfg.json"
    write_json(cfg, {"seed": 11, "eval": EVAL})
    gen = tmp_path / "gen"
    assert generate.main(["--config", str(cfg), "--model", str(tiny_model_dir), "--benchmarks", str(bench),
                          "--out", str(gen)]) == 0
    table = pq.read_table(gen / "mini_aime24" / "generations.parquet")
    assert table.schema.equals(schema.GENERATION) and table.num_rows == 20 * 3
    assert sorted(set(table.column("sample_index").to_pylist())) == [0, 1, 2]
    manifest = json.loads((gen / "manifest.json").read_text())
    assert manifest["generations"]["mini_aime24"]["sampling"]["n"] == 3
    assert len(manifest["prompt_template_sha256"]) == 64
    # rerun: byte-identical generations
    gen2 = tmp_path / "gen2"
    generate.run({"seed": 11, "eval": EVAL}, tiny_model_dir, bench, gen2)
    assert (gen / "mini_gsm8k" / "generations.parquet").read_bytes() == \
        (gen2 / "mini_gsm8k" / "generations.parquet").read_bytes()
    graded = tmp_path / "graded"
    assert score.main(["--config", str(cfg), "--generations", str(gen), "--benchmarks", str(bench),
                       "--out", str(graded)]) == 0
    summary = json.loads((graded / "summary.json").read_text())
    model, tok = loaded
    suites = registry.load_suites(bench, EVAL["benchmarks"])
    with Grader("strict") as g:
        in_memory = evaluate_in_memory(model, tok, suites, EVAL, 11, g)
    assert in_memory["benchmarks"] == summary["benchmarks"]
    assert in_memory["micro"] == pytest.approx(summary["micro"])
    assert set(in_memory) >= {"benchmarks", "micro", "macro"}
