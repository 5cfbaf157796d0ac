"""FLOPs accounting against the study's published numbers (PAPER 2.6)."""
import json

import pytest

from plasticity.analysis import flops
from plasticity.analysis.flops import (EF, MODEL_REGISTRY, ModelConstants, dapo_step_flops,
                                       forward_flops_per_token, grpo_step_flops, rl_compute_ef,
                                       sft_step_flops)

QWEN = MODEL_REGISTRY["qwen2.5-7b"]


def test_forward_flops_per_token_matches_study():
    assert forward_flops_per_token(QWEN, 3771) / 1e9 == pytest.approx(16.7, abs=0.05)


def test_sft889k_step_and_360_steps():
    step = sft_step_flops(QWEN, 512, 3771) / EF
    assert step == pytest.approx(0.097, abs=0.0005)
    assert 360 * step == pytest.approx(34.9, abs=0.05)
    # Table 4's x_sft column is linear in steps: step 7200 -> 698.4 EF
    assert 7200 * step == pytest.approx(698.4, rel=1e-3)


def test_from_hf_config_and_head_dim_default():
    cfg = {"num_hidden_layers": 28, "hidden_size": 3584, "intermediate_size": 18944,
           "vocab_size": 152064, "num_attention_heads": 28, "num_key_value_heads": 4}
    assert ModelConstants.from_hf_config(cfg) == QWEN
    with pytest.raises(ValueError, match="hidden_size"):
        ModelConstants.from_hf_config({k: v for k, v in cfg.items() if k != "hidden_size"})


def test_rl_formulas_relations():
    s = 1000.0
    grpo = grpo_step_flops(QWEN, 64, 8, s)
    # DAPO with one generation round of 64 prompts and 64 trained = GRPO
    assert dapo_step_flops(QWEN, 1, 64, 64, 8, s) == pytest.approx(grpo)
    # more generation rounds cost more, training share unchanged
    assert dapo_step_flops(QWEN, 3, 128, 64, 8, s) == pytest.approx(
        (3 * 128 + 3 * 64) * 8 * s * forward_flops_per_token(QWEN, s))


def test_rl_compute_ef_is_cumulative_and_uses_logged_lengths():
    recs = [{"prompts": 128, "group": 8, "mean_prompt_tokens": 200, "mean_completion_tokens": 800,
             "gen_rounds": 2, "train_prompts": 64},
            {"prompts": 128, "group": 8, "mean_prompt_tokens": 200, "mean_completion_tokens": 1800,
             "gen_rounds": 1, "train_prompts": 64}]
    cum = rl_compute_ef(QWEN, "dapo_dc", recs)
    assert cum[0] == pytest.approx(dapo_step_flops(QWEN, 2, 128, 64, 8, 1000) / EF)
    assert cum[1] == pytest.approx(cum[0] + dapo_step_flops(QWEN, 1, 128, 64, 8, 2000) / EF)
    with pytest.raises(ValueError, match="record 0: missing field 'group'"):
        rl_compute_ef(QWEN, "grpo", [{"prompts": 1, "mean_prompt_tokens": 1,
                                      "mean_completion_tokens": 1}])
    with pytest.raises(ValueError, match="unknown RL method"):
        rl_compute_ef(QWEN, "ppo", recs)


def test_dapo_charges_masked_groups_and_the_trained_rows_length():
    """A step that kept 40 of 64 groups after its rounds trains 24 masked groups too: they run forward and
    backward, so B_train = 64; the rollout term uses the generated rows' S (1000), the training term the
    trained rows' S (200 + 1300)."""
    rec = {"prompts": 128, "group": 8, "mean_prompt_tokens": 200, "mean_completion_tokens": 800,
           "gen_rounds": 10, "train_prompts": 40, "masked_groups": 24,
           "mean_train_prompt_tokens": 200, "mean_train_completion_tokens": 1300}
    f = forward_flops_per_token
    by_hand = (10 * 128 * 1000 * f(QWEN, 1000) + 3 * 64 * 1500 * f(QWEN, 1500)) * 8
    assert rl_compute_ef(QWEN, "dapo_dc", [rec])[0] == pytest.approx(by_hand / EF)
    assert dapo_step_flops(QWEN, 10, 128, 64, 8, 1000, 1500) == pytest.approx(by_hand)
    # a record without the new fields (older logs, imported curves): kept groups at the one S
    old = {k: v for k, v in rec.items() if not k.startswith("mean_train_") and k != "masked_groups"}
    assert rl_compute_ef(QWEN, "dapo_dc", [old])[0] == pytest.approx(dapo_step_flops(QWEN, 10, 128, 40, 8, 1000) / EF)


def test_cli_sft_and_model_dir(tmp_path, capsys):
    assert flops.main(["sft", "--model", "qwen2.5-7b", "--batch", "512", "--seq-len", "3771",
                       "--steps", "360"]) == 0
    assert json.loads(capsys.readouterr().out)["ef"] == pytest.approx(34.9, abs=0.05)
    (tmp_path / "config.json").write_text(json.dumps(
        {"num_hidden_layers": 4, "hidden_size": 128, "intermediate_size": 512, "vocab_size": 100,
         "num_attention_heads": 4, "num_key_value_heads": 2}))
    assert flops.main(["rl", "--method", "grpo", "--model-dir", str(tmp_path), "--prompts", "16",
                       "--prompt-tokens", "20", "--completion-tokens", "40", "--steps", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    m = ModelConstants(4, 128, 512, 100, 4, 2, 32)
    assert out["ef"] == pytest.approx(3 * grpo_step_flops(m, 16, 8, 60) / EF)
    assert flops.main(["rl", "--method", "grpo", "--model", "tiny"]) == 2


def test_sync_methods_cost_their_logged_on_and_off_policy_lengths():
    """PAPER 2.6 per method, from the records the synchronized trainer logs (S_on over the rollouts,
    S_off over the expert rows)."""
    f = forward_flops_per_token
    on, off = 1000.0, 3000.0
    rec = {"prompts": 128, "group": 7, "off_policy": 1, "mean_prompt_tokens": 200, "mean_completion_tokens": 800,
           "mean_offpolicy_tokens": off}
    luffy = 4 * 128 * (7 * on * f(QWEN, on) + 1 * off * f(QWEN, off))
    for method in ("luffy", "srft"):
        assert flops.rl_step_flops(QWEN, method, rec) == pytest.approx(luffy)
    chord = 4 * 128 * 7 * on * f(QWEN, on) + 3 * 128 * off * f(QWEN, off)
    assert flops.rl_step_flops(QWEN, "chord", rec) == pytest.approx(chord)
    # UPT: 8 rollouts generated; per prompt 6 trained on-policy rows and 0.25 SFT rows on average
    upt = {**rec, "group": 8, "n_on": 6.0, "n_off": 0.25}
    assert flops.rl_step_flops(QWEN, "upt", upt) == pytest.approx(
        128 * (8 * on * f(QWEN, on) + 3 * (6 * on * f(QWEN, on) + 0.25 * off * f(QWEN, off))))
    # Prefix-RFT is costed as GRPO over its 8 rows (the hybrid row's prefix is part of S)
    assert flops.rl_step_flops(QWEN, "prefix_rft", {**rec, "group": 8}) == pytest.approx(
        grpo_step_flops(QWEN, 128, 8, on))
    # the expert rows cost more when they are longer
    assert flops.rl_step_flops(QWEN, "luffy", {**rec, "mean_offpolicy_tokens": 2 * off}) > luffy
