"""The synchronized-method trainer on a tiny model: rollout mixing, UPT's gate, Prefix-RFT's mask,
expert rows without behaviour log-probabilities, and trl's own loss reproduced for ``method=grpo``."""
from __future__ import annotations

import math

import pytest
import torch

from plasticity.train import sync_trainer as st
from plasticity.train.sync_trainer import EXPERT, HYBRID, ROLLOUT, SFT

G = 4


def _trainer(tiny_model_dir, tmp_path, method: str, **sync):
    from plasticity.config import RlSettings
    from plasticity.grading import Grader
    from plasticity.methods import METHODS
    from plasticity.models import load_model_and_tokenizer
    from plasticity.train.data import to_dataset
    from plasticity.train.rewards import make_reward_fn
    from plasticity.train.rollouts import PromptStream
    from plasticity.train.trainer_config import grpo_config

    settings = RlSettings(method=method, steps=4, lr=1e-4, prompts_per_step=2, num_generations=G, temperature=1.0,
                          max_completion_length=12, eval_every=10, precision="fp32", sync=sync)
    model, tok = load_model_and_tokenizer(tiny_model_dir, trust_remote_code=False, dtype=torch.float32)
    rows = [{"prompt": [{"role": "user", "content": f"{a}+{a}="}], "reference_answer": str(2 * a)}
            for a in range(1, 5)]
    for row, a in zip(rows, range(1, 5)):
        row["expert"] = f"\\boxed{{{2 * a}}}"
    grader = Grader(mode="strict", workers=1)
    args = grpo_config(settings, output_dir=tmp_path, seed=3, world_size=1, cuda=False)
    cls = st.sync_trainer_class()
    trainer = cls(model=model, reward_funcs=[make_reward_fn(grader)], args=args,
                  train_dataset=to_dataset({"prompt": [r["prompt"] for r in rows],
                                            "reference_answer": [r["reference_answer"] for r in rows]}),
                  processing_class=tok, rows=rows, stream=PromptStream(len(rows), 3), prompts_per_step=2,
                  gen_prompts_per_round=2, max_gen_rounds=1, dynamic_sampling=False,
                  method=METHODS[method], sync=settings.sync, total_steps=settings.steps)
    trainer.current_gradient_accumulation_steps = args.gradient_accumulation_steps
    trainer.model.train()
    return trainer, tok, grader


@pytest.fixture
def make(tiny_model_dir, tmp_path):
    graders = []

    def build(method: str, **sync):
        trainer, tok, grader = _trainer(tiny_model_dir, tmp_path / method, method, **sync)
        graders.append(grader)
        return trainer, tok

    yield build
    for grader in graders:
        grader.close()


def test_grpo_loss_is_trls_bit_for_bit(make):
    from trl import GRPOTrainer

    trainer, _ = make("grpo")
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions(None)
    assert batch["row_kind"].tolist() == [ROLLOUT] * 2 * G
    batch["advantages"] = torch.linspace(-1, 1, 2 * G)   # a non-trivial advantage on every row
    ours = trainer._compute_loss(trainer.model, batch)
    theirs = GRPOTrainer._compute_loss(trainer, trainer.model, batch)
    assert torch.equal(ours, theirs) and ours.item() != 0.0


def test_luffy_groups_hold_seven_rollouts_and_the_expert(make):
    from plasticity.train.rollouts import PromptStream

    trainer, tok = make("luffy")
    batch = trainer._generate_and_score_completions(None)
    kinds = batch["row_kind"].tolist()
    assert kinds == ([ROLLOUT] * (G - 1) + [EXPERT]) * 2
    rec = trainer.generation_records[-1]
    assert rec["group"] == G - 1 and rec["off_policy"] == 1 and rec["mean_offpolicy_tokens"] > 0
    assert rec["experts_cut"] == 0
    drawn = PromptStream(len(trainer.rows), 3).take(2)   # the prompts of the step, in order
    for g, i in enumerate(drawn):   # the expert row is the prompt's MIX trajectory, token for token, + EOS
        row = g * G + G - 1
        n = int(batch["completion_mask"][row].sum())
        ids = batch["completion_ids"][row, :n].tolist()
        assert int(batch["expert_len"][row]) == n
        assert ids == tok(trainer.rows[i]["expert"] + tok.eos_token, add_special_tokens=False)["input_ids"]
        assert batch["reward"][row].item() == 1.0   # graded by the one grader like any completion
    # the advantage is over the union group (7 rollouts + expert), without std
    r = batch["reward"].view(2, G)
    assert torch.allclose(batch["advantages"].view(2, G), r - r.mean(dim=1, keepdim=True))
    loss = trainer._compute_loss(trainer.model, batch)
    assert torch.isfinite(loss)


def test_expert_rows_take_no_generation_log_probabilities():
    kinds = [ROLLOUT, EXPERT, HYBRID]
    ids, lp = st.mix_rows([[5, 6], [7, 8, 9]], [[-0.1, -0.2], [-0.3, -0.4, -0.5]], kinds,
                          [[1, 2, 3], [1, 2, 3], [1, 2, 3, 4]], [0, 0, 2], max_tokens=4)
    assert ids == [[5, 6], [1, 2, 3], [1, 2, 7, 8]]
    assert lp[0] == [-0.1, -0.2] and all(math.isnan(x) for x in lp[1])
    assert all(math.isnan(x) for x in lp[2][:2]) and lp[2][2:] == [-0.3, -0.4]


def _fixed_inputs(kinds, expert_len, reward, weight, width=3, old=None):
    n = len(kinds)
    return {"row_kind": torch.tensor(kinds), "expert_len": torch.tensor(expert_len),
            "reward": torch.tensor(reward, dtype=torch.float64), "loss_weight": torch.tensor(weight),
            "completion_mask": torch.ones(n, width, dtype=torch.long),
            "advantages": torch.tensor(reward, dtype=torch.float64) - sum(reward) / n,
            "rl_tokens": torch.tensor(n * width), "sft_tokens": torch.tensor(width), **(
                {"old_per_token_logps": old} if old is not None else {})}


def test_expert_rows_ignore_old_log_probabilities_in_the_loss(make):
    trainer, _ = make("luffy")
    logp = torch.log(torch.full((2, 3), 0.5, dtype=torch.float64))
    ent = torch.ones(2, 3, dtype=torch.float64)
    nan_old = torch.stack([logp[0], torch.full((3,), float("nan"), dtype=torch.float64)])
    other_old = torch.stack([logp[0], torch.full((3,), -9.0, dtype=torch.float64)])
    a, _ = trainer.sync_loss(_fixed_inputs([ROLLOUT, EXPERT], [0, 3], [0.0, 1.0], [1.0, 1.0], old=nan_old), logp, ent)
    b, _ = trainer.sync_loss(_fixed_inputs([ROLLOUT, EXPERT], [0, 3], [0.0, 1.0], [1.0, 1.0], old=other_old), logp,
                             ent)
    assert torch.isfinite(a) and a.item() == b.item()


@pytest.mark.parametrize("correct", [0, 3])
def test_upt_gate(make, correct):
    trainer, _ = make("upt")
    rewards = torch.zeros(2 * G)
    rewards[G:G + min(correct, G)] = 1.0          # group 1: `correct` of G; group 0: none
    if correct == 0:
        rewards[G:] = 0.0
    trainer._last_rewards = rewards.unsqueeze(1)
    width = 5
    ones = torch.ones(2 * G, width, dtype=torch.long)
    out = {"prompt_ids": ones[:, :2].clone(), "prompt_mask": ones[:, :2].clone(),
           "completion_ids": torch.full((2 * G, width), 9), "completion_mask": ones.clone(),
           "advantages": rewards - rewards.view(2, G).mean(1).repeat_interleave(G),
           "old_per_token_logps": torch.zeros(2 * G, width)}
    experts = [[1, 2, 3, 4, 5, 6, 7]] * (2 * G)   # longer than the rollouts: the tensors widen
    kinds = st.row_layout(2 * G, G, "gate")
    assert kinds == [ROLLOUT] * 2 * G
    out = trainer._annotate(out, kinds, experts, [0] * 2 * G)
    kind, weight = out["row_kind"].tolist(), out["loss_weight"].tolist()
    # group 0 (0 of G correct): the rollouts dropped, one SFT row on the expert trajectory
    assert kind[:G] == [ROLLOUT] * (G - 1) + [SFT] and weight[:G] == [0.0] * (G - 1) + [1.0]
    assert out["completion_ids"][G - 1].tolist() == experts[0] and out["completion_mask"][G - 1].sum() == 7
    assert out["old_per_token_logps"].shape == (2 * G, 7)
    # group 1: GRPO on its G rollouts unless none is correct
    if correct:
        assert kind[G:] == [ROLLOUT] * G and weight[G:] == [1.0] * G
        assert out["advantages"][G:].tolist() == pytest.approx([1 - correct / G] * correct + [-correct / G] * (
            G - correct))
    else:
        assert kind[2 * G - 1] == SFT
    assert int(out["sft_tokens"]) == 7 * (1 if correct else 2)
    # the loss of the unsolved group is its expert row's SFT term only (the rollouts add nothing, not even
    # to the entropy): token probabilities [0.5, 0.25] give SYNC_METHODS.md's 1.039721
    inputs = {**_fixed_inputs([ROLLOUT, SFT], [0, 2], [0.0, 0.0], [0.0, 1.0], width=2),
              "sft_tokens": torch.tensor(2), "rl_tokens": torch.tensor(0)}
    logp = torch.log(torch.tensor([[0.9, 0.9], [0.5, 0.25]], dtype=torch.float64))
    ent = torch.tensor([[7.0, 7.0], [0.0, 0.0]], dtype=torch.float64)
    trainer.current_gradient_accumulation_steps = trainer.args.steps_per_generation = 1
    loss, metrics = trainer.sync_loss(inputs, logp, ent)
    assert loss.item() == pytest.approx(1.039721, abs=1e-6) and metrics["entropy"] == 0.0


def test_prefix_rft_trains_only_high_entropy_prefix_tokens(make):
    trainer, _ = make("prefix_rft")
    width = 12
    inputs = _fixed_inputs([ROLLOUT, HYBRID], [0, 10], [0.0, 1.0], [1.0, 1.0], width=width)
    logp = torch.full((2, width), math.log(0.5), dtype=torch.float64, requires_grad=True)
    ent = torch.tensor([[1.0] * width, [0.1 * (i + 1) for i in range(10)] + [0.05, 0.05]], dtype=torch.float64)
    loss, _ = trainer.sync_loss(inputs, logp, ent)
    loss.backward()
    g = logp.grad[1]
    assert (g[:8] == 0).all() and (g[8:10] != 0).all()   # prefix: only H = 0.9, 1.0 keep their advantage
    assert (g[10:] != 0).all() and (logp.grad[0] != 0).all()   # the continuation and the rollouts unchanged


def test_prefix_rft_builds_hybrid_rows(make):
    trainer, tok = make("prefix_rft")
    batch = trainer._generate_and_score_completions(None)
    assert batch["row_kind"].tolist() == ([ROLLOUT] * (G - 1) + [HYBRID]) * 2
    for g in range(2):
        row = g * G + G - 1
        n = int(batch["expert_len"][row])
        experts = [tok(r["expert"] + tok.eos_token, add_special_tokens=False)["input_ids"] for r in trainer.rows]
        assert 0 <= n < len(experts[0])   # lengths are equal for all rows here
        assert batch["completion_ids"][row, :n].tolist() in [e[:n] for e in experts]


def test_chord_mixes_sft_with_the_mu_schedule(make):
    trainer, _ = make("chord", chord_mu_warmup_steps=0, chord_mu_decay_steps=2, chord_mu_peak=0.5,
                      chord_mu_valley=0.5)
    batch = trainer._generate_and_score_completions(None)
    assert batch["row_kind"].tolist() == ([ROLLOUT] * (G - 1) + [SFT]) * 2
    assert (batch["advantages"].view(2, G)[:, -1] == 0).all()
    assert trainer.generation_records[-1]["mu"] == 0.5
    loss = trainer._compute_loss(trainer.model, batch)
    assert torch.isfinite(loss) and trainer._metrics["train"]["mu"] == [0.5]


def test_upt_skips_an_update_with_a_huge_gradient(make):
    trainer, _ = make("upt")
    p = next(trainer.model.parameters())
    p.grad = torch.full_like(p, 1e3)
    trainer._clip_grad_norm(trainer.model)
    assert p.grad is None and trainer.skipped_updates == 1


def test_srft_loss_composes_its_terms(make):
    """SYNC_METHODS.md's SRFT vectors through the trainer's loss: rollout term / (rows x L_max), the expert
    row's entropy-weighted SFT term as a mean over expert tokens, minus 0.001 x mean entropy."""
    trainer, _ = make("srft")
    trainer.current_gradient_accumulation_steps = trainer.args.steps_per_generation = 1
    inputs = {**_fixed_inputs([ROLLOUT, EXPERT], [0, 1], [1.0, 1.0], [1.0, 1.0], width=1),
              "sft_tokens": torch.tensor(1)}
    logp = torch.log(torch.full((2, 1), 0.5, dtype=torch.float64))
    ent = torch.tensor([[0.2], [0.5]], dtype=torch.float64)
    loss, metrics = trainer.sync_loss(inputs, logp, ent)
    rollout = 0.084661 / (2 * 12)   # a = 0.1 e^0.2; the expert's off-policy term is 0 (A* = 0 here)
    assert metrics["sft_loss"] == pytest.approx(0.210208, abs=1e-6)
    assert loss.item() == pytest.approx(rollout + 0.210208 - 0.001 * 0.35, abs=1e-6)


def test_aggregation_setting_picks_the_normaliser(make):
    inputs = _fixed_inputs([ROLLOUT, ROLLOUT], [0, 0], [1.0, 0.0], [1.0, 1.0], width=3)
    for agg, expected in (("seq_sum_over_lmax", 2 * 12), ("token_mean", 6)):
        trainer, _ = make("luffy", agg=agg)
        trainer.current_gradient_accumulation_steps = trainer.args.steps_per_generation = 1
        rl_norm, _ = trainer._normalisers(inputs, rows=2)
        assert float(rl_norm) == expected
