"""vLLM backend: its contract with vLLM on a stand-in engine (any machine), and the real engine (GPU only).

The stand-in is a module put in ``sys.modules["vllm"]`` (never a ``vllm/`` folder, which breaks
``import trl``). It records what the backend asks of vLLM, so these tests check what the real run
depends on: token-id prompts identical to the transformers backend's, one seed per request, the
study's sampling parameters, safetensors-only loading, the context check, and the Completion shape.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import types
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from plasticity import schema
from plasticity.eval import generate, registry
from plasticity.eval.generate import SamplingConfig, derive_seed, encode_prompts, generate_vllm
from plasticity.io import write_json

PROMPTS = ["1+2=", "7-3=", "12+30="]


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class FakeLLM:
    """Answers request i's sample j with text ``s<seed>-<j>``; sample 0 runs out of budget."""
    made: list[dict] = []        # the constructor arguments of every engine made
    last: "FakeLLM"

    def __init__(self, **kwargs):
        from plasticity.models import load_tokenizer

        FakeLLM.made.append(kwargs)
        FakeLLM.last = self
        self.tokenizer = load_tokenizer(kwargs["model"])
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=96))
        self.calls: list[tuple[list, list]] = []

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, params):
        self.calls.append((prompts, params))
        return [SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[
            SimpleNamespace(text=f"s{sp.seed}-{j}", finish_reason="length" if j == 0 else "stop",
                            token_ids=[0] * (sp.max_tokens if j == 0 else 2)) for j in range(sp.n)])
            for p, sp in zip(prompts, params)]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = FakeLLM, FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    FakeLLM.made = []
    return module


def test_requests_match_the_transformers_backend(fake_vllm, tiny_model_dir):
    sampling = SamplingConfig(max_new_tokens=16, n=3, seed=5)
    out = generate_vllm(tiny_model_dir, PROMPTS, sampling)
    (made,) = FakeLLM.made
    assert made["load_format"] == "safetensors" and made["trust_remote_code"] is False and made["seed"] == 5
    (llm_prompts, params), = FakeLLM.last.calls
    # The same ids the transformers backend feeds its model: vLLM must not re-tokenise (a second BOS).
    assert [p["prompt_token_ids"] for p in llm_prompts] == encode_prompts(FakeLLM.last.tokenizer, PROMPTS)
    assert [p.seed for p in params] == [derive_seed(5, "request", i) for i in range(3)]
    assert len({p.seed for p in params}) == 3
    assert all((p.n, p.temperature, p.top_p, p.top_k, p.max_tokens) == (3, 0.7, 1.0, -1, 16) for p in params)
    assert [len(samples) for samples in out] == [3, 3, 3]
    first = out[0]
    assert first[0].text == f"s{params[0].seed}-0" and first[0].finish_reason == "length"
    assert first[0].completion_tokens == 16 and first[1].finish_reason == "stop"
    assert all(c.prompt_tokens == len(llm_prompts[0]["prompt_token_ids"]) for c in first)


def test_prompt_past_the_context_is_refused_before_generating(fake_vllm, tiny_model_dir):
    with pytest.raises(ValueError, match="exceeds the model's context of 96 tokens"):
        generate_vllm(tiny_model_dir, PROMPTS, SamplingConfig(max_new_tokens=90))
    assert FakeLLM.last.calls == []


def test_refuses_pickled_weights(fake_vllm, tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="safetensors"):
        generate_vllm(tmp_path, PROMPTS, SamplingConfig())
    assert FakeLLM.made == []


def test_generate_stage_on_vllm(fake_vllm, tiny_model_dir, tmp_path):
    bench = tmp_path / "bench"
    registry.run({"seed": 3, "benchmarks": ["mini_gsm8k", "mini_aime24"]}, bench)
    eval_cfg = {"benchmarks": ["mini_gsm8k", "mini_aime24"], "backend": "vllm", "tensor_parallel_size": 2,
                "sampling": {"max_new_tokens": 8}, "samples": {"default": 1, "mini_aime24": 4}}
    cfg = tmp_path / "cfg.json"
    write_json(cfg, {"seed": 3, "eval": eval_cfg})
    assert generate.main(["--config", str(cfg), "--model", str(tiny_model_dir), "--benchmarks", str(bench),
                          "--out", str(tmp_path / "gen")]) == 0
    (made,) = FakeLLM.made                        # one engine for every benchmark
    assert made["tensor_parallel_size"] == 2 and made["seed"] == 3
    table = pq.read_table(tmp_path / "gen" / "mini_aime24" / "generations.parquet")
    assert table.schema.equals(schema.GENERATION) and table.num_rows == 20 * 4
    assert table.column("finish_reason").to_pylist().count("length") == 20
    manifest = json.loads((tmp_path / "gen" / "manifest.json").read_text())
    assert manifest["backend"] == "vllm" and manifest["generations"]["mini_aime24"]["truncated"] == 20
    # Each benchmark has its own seed stream: no request seed repeats across benchmarks.
    seeds = [p.seed for prompts, params in FakeLLM.last.calls for p in params]
    problems = sum(manifest["generations"][b]["n_problems"] for b in eval_cfg["benchmarks"])
    assert len(seeds) == len(set(seeds)) == problems == 60 + 20


def test_difficulty_samples_through_the_same_backend(fake_vllm, tiny_model_dir):
    from plasticity.data.difficulty import vllm_sampler

    sample = vllm_sampler(tiny_model_dir, max_new_tokens=8, seed=9)
    out = sample(PROMPTS, 4, 123)
    assert [len(group) for group in out] == [4, 4, 4]
    (_, params), = FakeLLM.last.calls
    assert out[1][2] == f"s{derive_seed(123, 'request', 1)}-2" and params[1].max_tokens == 8


def _gpu_ready() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch
    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs CUDA and vllm")
def test_real_vllm_engine(tiny_model_dir):
    out = generate_vllm(tiny_model_dir, ["1+2=", "7-3="], SamplingConfig(max_new_tokens=16, n=3, seed=1))
    assert len(out) == 2 and all(len(s) == 3 for s in out)
    assert all(c.finish_reason in {"stop", "length"} and c.completion_tokens <= 16 for s in out for c in s)


def test_rl_in_loop_evaluation_runs_on_the_trainers_engine(fake_vllm, tiny_model_dir, tmp_path):
    """The rl stage's in-loop evaluation with eval.backend vllm: the engine it is handed generates every
    sample (the transformers model is never asked), avg@k from rl.eval_samples, one grade per sample."""
    from plasticity.grading import Grader
    from plasticity.train.rl import evaluate_model

    bench = tmp_path / "bench"
    registry.run({"seed": 3, "benchmarks": ["mini_gsm8k", "mini_aime24"]}, bench)
    suites = registry.load_suites(bench, ["mini_gsm8k", "mini_aime24"])
    engine = FakeLLM(model=str(tiny_model_dir))
    eval_cfg = {"backend": "vllm", "sampling": {"max_new_tokens": 8}, "samples": {"default": 2}, "batch_size": 8}
    state = SimpleNamespace(num_processes=1, process_index=0, is_main_process=True)
    with Grader(mode="strict", workers=1, timeout_s=5) as grader:
        summary = evaluate_model(None, engine.tokenizer, suites, eval_cfg, 3, grader, state, engine=engine)
    assert [len(prompts) for prompts, _ in engine.calls] == [60, 20]
    assert all(p.n == 2 and p.max_tokens == 8 for _, params in engine.calls for p in params)
    assert set(summary["benchmarks"]) == {"mini_gsm8k", "mini_aime24"}
    assert summary["micro"] == 0.0 and summary["micro_stderr"] == 0.0   # the stand-in answers "s<seed>-<j>"


def test_rl_config_refuses_vllm_evaluation_without_a_colocated_engine(root):
    import yaml

    from plasticity.config import ConfigError, validate

    raw = yaml.safe_load((root / "configs" / "paper-qwen2.5-7b.yaml").read_text())
    validate(raw, "paper")   # the shipped config evaluates on the colocated engine
    raw["rl"]["defaults"]["vllm_mode"] = "server"
    with pytest.raises(ConfigError, match=r"rl.branches.0: eval.backend vllm evaluates RL branches"):
        validate(raw, "paper")
