"""rl.vllm_max_num_seqs reaches the vLLM engine trl builds (train.rollouts.vllm_sequence_cap). vLLM is a
CUDA-only extra, so trl's engine class is replaced by a recorder: what matters is the call trl makes."""
from __future__ import annotations

import pytest

pytest.importorskip("trl")


def test_the_cap_replaces_trls_value_during_construction_only(monkeypatch):
    from trl.trainer import grpo_trainer

    from plasticity.train.rollouts import vllm_sequence_cap

    calls = []
    monkeypatch.setattr(grpo_trainer, "VLLMGeneration", lambda *a, **kw: calls.append(kw))
    recorder = grpo_trainer.VLLMGeneration
    with vllm_sequence_cap(24):
        grpo_trainer.VLLMGeneration(model=None, max_num_seqs=256, tensor_parallel_size=2)
    grpo_trainer.VLLMGeneration(max_num_seqs=256)        # after: trl's own value again
    with vllm_sequence_cap(None):                         # no cap configured: untouched
        grpo_trainer.VLLMGeneration(max_num_seqs=128)
    assert calls == [{"model": None, "max_num_seqs": 24, "tensor_parallel_size": 2}, {"max_num_seqs": 256},
                     {"max_num_seqs": 128}]
    assert grpo_trainer.VLLMGeneration is recorder


def test_the_cap_is_restored_when_construction_fails(monkeypatch):
    from trl.trainer import grpo_trainer

    from plasticity.train.rollouts import vllm_sequence_cap

    def broken(**kw):
        raise RuntimeError("no GPU")

    monkeypatch.setattr(grpo_trainer, "VLLMGeneration", broken)
    with pytest.raises(RuntimeError), vllm_sequence_cap(8):
        grpo_trainer.VLLMGeneration(max_num_seqs=64)
    assert grpo_trainer.VLLMGeneration is broken


def test_trl_builds_its_engine_through_the_name_the_cap_swaps():
    """trl 1.16's GRPOTrainer passes max_num_seqs to VLLMGeneration from its own module: a trl that
    builds the engine otherwise would bypass the cap, and this fails first."""
    import inspect

    from trl.trainer import grpo_trainer

    source = inspect.getsource(grpo_trainer.GRPOTrainer.__init__)
    assert "VLLMGeneration(" in source and "max_num_seqs=" in source
    assert "max_num_seqs" in inspect.signature(grpo_trainer.VLLMGeneration).parameters
