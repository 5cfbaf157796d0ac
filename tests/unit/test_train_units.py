"""Pure pieces of the training stages: group filter, reward, compute accounting, branch start, labels."""
from __future__ import annotations

import json

import pytest
import torch

from plasticity.train import rewards, rl
from plasticity.train.sft import validation_loss


# ----------------------------------------------------------------------------- dynamic sampling

def test_group_filter_keeps_only_mixed_groups():
    group = 4
    rewards_ = torch.tensor([0, 0, 0, 0,      # all wrong -> dropped
                             1, 1, 1, 1,      # all right -> dropped
                             1, 0, 0, 0,      # 1 of 4 -> kept
                             1, 1, 1, 0],     # 3 of 4 -> kept
                            dtype=torch.float32)
    keep = rewards.group_keep_mask(rewards_, group)
    assert keep.tolist() == [False] * 8 + [True] * 8


def test_group_filter_bounds_and_nan():
    rewards_ = torch.tensor([1, 1, 0, 0, float("nan"), 0, 0, 0])
    assert rewards.group_keep_mask(rewards_, 4, min_correct=2).tolist() == [True] * 4 + [False] * 4
    assert rewards.group_keep_mask(rewards_, 4, max_correct=1).tolist() == [False] * 8
    with pytest.raises(ValueError):
        rewards.group_keep_mask(torch.zeros(6), 4)


def test_group_filter_matches_paper_window_for_eight():
    # PAPER 2.5: keep prompts with 1..7 of 8 correct
    for n_correct in range(9):
        r = torch.tensor([1.0] * n_correct + [0.0] * (8 - n_correct))
        assert bool(rewards.group_keep_mask(r, 8).all()) == (1 <= n_correct <= 7)


# ----------------------------------------------------------------------------- reward

def test_reward_is_binary_grader_verdict():
    from plasticity.grading import Grader

    with Grader(mode="strict", workers=1) as grader:
        fn = rewards.make_reward_fn(grader)
        got = fn(prompts=["p"] * 5,
                 completions=["<think>\n7-3=4\n</think>\n<answer>\\boxed{4}</answer>",  # right
                              "\\boxed{5}",                                              # wrong
                              "<think>\n7-3=4\n</think>\n",                               # no answer
                              "\\boxed{-15}",                                             # right, negative
                              [{"role": "assistant", "content": "\\boxed{4}"}]],          # conversational
                 reference_answer=["4", "4", "4", "-15", "4"])
    assert got == [1.0, 0.0, 0.0, 1.0, 1.0]


# ----------------------------------------------------------------------------- compute

_MICRO_CONFIG = {"model_type": "qwen2", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "num_key_value_heads": 1, "intermediate_size": 64, "vocab_size": 107, "head_dim": 16}


def test_cumulative_ef_matches_flops_module():
    from plasticity.analysis.flops import EF, ModelConstants, dapo_step_flops, grpo_step_flops

    m = ModelConstants.from_hf_config(_MICRO_CONFIG)
    recs = [{"prompts": 16, "group": 8, "gen_rounds": 1, "train_prompts": 10, "mean_prompt_tokens": 12.0,
             "mean_completion_tokens": 30.0},
            {"prompts": 16, "group": 8, "gen_rounds": 1, "train_prompts": 4, "mean_prompt_tokens": 12.0,
             "mean_completion_tokens": 20.0}]
    dapo = rl.cumulative_ef(_MICRO_CONFIG, "dapo", recs, 2, 1)
    assert dapo[0] == pytest.approx(dapo_step_flops(m, 1, 16, 10, 8, 42.0) / EF)
    assert dapo[1] == pytest.approx(dapo[0] + dapo_step_flops(m, 1, 16, 4, 8, 32.0) / EF)
    grpo = rl.cumulative_ef(_MICRO_CONFIG, "grpo", recs, 2, 1)
    assert grpo[0] == pytest.approx(grpo_step_flops(m, 16, 8, 42.0) / EF)
    # two steps per generation (num_iterations 2): the second step pays only the training pass
    reuse = rl.cumulative_ef(_MICRO_CONFIG, "grpo", recs[:1], 2, 2)
    assert reuse[1] - reuse[0] == pytest.approx(0.75 * reuse[0])


# ----------------------------------------------------------------------------- branch start

def test_synchronized_methods_are_rejected_by_name():
    for name in ("luffy", "SRFT", "upt", "prefix-rft"):
        with pytest.raises(NotImplementedError, match="not implemented yet"):
            rl.check_method(name)
    with pytest.raises(ValueError, match="unknown method"):
        rl.check_method("ppo")
    assert rl.check_method("DAPO") == "dapo"


def test_rl_stage_rejects_synchronized_method_before_loading(tmp_path):
    cfg = {"seed": 1, "model_name": "tiny", "model": {}, "rl": {"method": "luffy"}, "regimes": {}, "eval": {}}
    with pytest.raises(NotImplementedError, match="luffy"):
        rl.run(cfg, tmp_path / "nowhere", tmp_path / "p.parquet", tmp_path / "b", tmp_path / "out")


def test_resolve_start(tmp_path):
    run_dir = tmp_path / "sft"
    run_dir.mkdir()
    (run_dir / "val_loss.json").write_text(json.dumps({"points": [
        {"step": 0, "val_loss": 6.0}, {"step": 100, "val_loss": 1.0}, {"step": 200, "val_loss": 0.5},
        {"step": 400, "val_loss": 0.505}, {"step": 600, "val_loss": 0.6}]}))
    (run_dir / "train_stats.json").write_text(json.dumps({"model_dir": "/base"}))
    regimes = {"delta": 0.02, "delta2": 0.10}
    cfg = {"sft_data": "uniform"}
    assert rl.resolve_start(run_dir, {**cfg, "switch": "min_val_loss"}, regimes) == (run_dir / "checkpoint-200", 200)
    assert rl.resolve_start(run_dir, {**cfg, "switch": "stable"}, regimes) == (run_dir / "checkpoint-400", 400)
    assert rl.resolve_start(run_dir, {**cfg, "switch": 100}, regimes) == (run_dir / "checkpoint-100", 100)
    assert rl.resolve_start(run_dir, {**cfg, "switch": 0}, regimes)[1] == 0
    assert rl.resolve_start(tmp_path / "base", {"sft_data": "none", "switch": 0}, regimes) == (tmp_path / "base", 0)
    with pytest.raises(ValueError):
        rl.resolve_start(run_dir, {**cfg, "switch": 300}, regimes)


def test_curve_rows_percent_and_overall():
    summary = {"benchmarks": {"mini_gsm8k": {"role": "gsm8k", "accuracy": 25.0, "n_problems": 4},
                              "mini_math": {"role": "math", "accuracy": 50.0, "n_problems": 2}},
               "micro": 100 / 3, "macro": 37.5}
    rows = rl.curve_rows(10, 1e-9, summary)
    assert [(r["benchmark"], r["accuracy"]) for r in rows] == [
        ("gsm8k", 25.0), ("math", 50.0), ("overall", pytest.approx(100 / 3))]
    assert all(r["rl_step"] == 10 and r["x_ef"] == 1e-9 for r in rows)


# ----------------------------------------------------------------------------- SFT labels and loss

@pytest.fixture(scope="module")
def micro():
    from plasticity.models import build_tiny_tokenizer
    from plasticity.train.pretrain import build_tiny_model

    tok = build_tiny_tokenizer()
    arch = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
            "intermediate_size": 64, "max_position_embeddings": 160}
    return build_tiny_model(arch, tok, seed=0), tok


def test_completion_only_labels_mask_the_prompt(micro, tmp_path):
    from plasticity.models import chat_prompt
    from plasticity.train.sft import build_sft_trainer

    model, tok = micro
    prompt = chat_prompt(tok, "7-3+5=")
    completion = "<think>\n7-3=4\n4+5=9\n</think>\n<answer>\\boxed{9}</answer>"
    trainer = build_sft_trainer(model, tok, {"prompt": [prompt], "completion": [completion]}, tmp_path,
                                steps=1, batch_size=1, lr=1e-3, seed=0, max_length=128)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    n_prompt = len(tok(prompt)["input_ids"])
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    # the completion is trained up to and including one EOS appended by trl (not by us)
    assert tok.decode(ids[n_prompt:]) == completion + tok.eos_token


def test_validation_loss_counts_completion_tokens_only(micro):
    from plasticity.models import chat_prompt

    model, tok = micro
    model.eval()
    completion = "\\boxed{9}"
    short = validation_loss(model, tok, {"prompt": [chat_prompt(tok, "7-3+5=")], "completion": [completion]})
    # a longer prompt changes the context but the loss is still a mean over the same 4 target tokens,
    # so it stays finite, positive and near log(vocab) for an untrained model
    long = validation_loss(model, tok, {"prompt": [chat_prompt(tok, "7-3+5-1+2-2=")], "completion": [completion]})
    for value in (short, long):
        assert 0 < value < 2 * torch.log(torch.tensor(float(len(tok)))).item()
    both = validation_loss(model, tok, {"prompt": [chat_prompt(tok, "7-3+5=")] * 2, "completion": [completion] * 2},
                           batch_size=1)
    assert both == pytest.approx(short, rel=1e-5)


def test_pretrain_pairs_are_seeded_and_skip_excluded_prompts():
    from plasticity.models import build_tiny_tokenizer, chat_prompt
    from plasticity.train.data import pretrain_pairs

    tok = build_tiny_tokenizer()
    a = pretrain_pairs(tok, 300, seed=5)
    assert a == pretrain_pairs(tok, 300, seed=5) and a != pretrain_pairs(tok, 300, seed=6)
    assert all(c.startswith("\\boxed{") and c.endswith("}") for c in a["completion"])
    banned = {"1+1=", "2-1=", "9+9="}
    b = pretrain_pairs(tok, 300, seed=5, exclude=banned)
    assert len(b["prompt"]) == 300
    assert not {chat_prompt(tok, p) for p in banned} & set(b["prompt"])
