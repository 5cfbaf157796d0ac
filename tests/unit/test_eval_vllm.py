"""vLLM backend (GPU only): n samples per prompt with per-request seeds, the same Completion shape."""
from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.gpu


def _gpu_ready() -> bool:
    if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("torch") is None:
        return False
    import torch
    return torch.cuda.is_available()


@pytest.mark.skipif(not _gpu_ready(), reason="needs CUDA and vllm")
def test_vllm_backend(tmp_path):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from plasticity.eval.generate import SamplingConfig, generate_vllm
    from plasticity.models import build_tiny_tokenizer, save_model_and_tokenizer

    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=128, max_position_embeddings=128,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    save_model_and_tokenizer(Qwen2ForCausalLM(cfg), tok, tmp_path)
    out = generate_vllm(tmp_path, ["1+2=", "7-3="], SamplingConfig(max_new_tokens=16, n=3, seed=1))
    assert len(out) == 2 and all(len(s) == 3 for s in out)
    assert all(c.finish_reason in {"stop", "length"} and c.completion_tokens <= 16 for s in out for c in s)
