"""The synchronized-method trainer on a tiny model: rollout mixing, UPT's gate, Prefix-RFT's mask,
expert rows without behaviour log-probabilities, and trl's own loss reproduced for ``method=grpo``."""
from __future__ import annotations

import math

import pytest
import torch

from plasticity.train import sync_trainer as st
from plasticity.train.sync_trainer import EXPERT, HYBRID, ROLLOUT, SFT

G = 4


def _trainer(tiny_model_dir, tmp_path, method: str, settings=None, **sync):
    from plasticity.config import RlSettings
    from plasticity.grading import Grader
    from plasticity.methods import METHODS
    from plasticity.models import load_model_and_tokenizer
    from plasticity.train.data import to_dataset
    from plasticity.train.rewards import make_reward_fn
    from plasticity.train.rollouts import PromptStream
    from plasticity.train.trainer_config import grpo_config

    settings = RlSettings(**{"method": method, "steps": 4, "lr": 1e-4, "prompts_per_step": 2, "num_generations": G,
                             "temperature": 1.0, "max_completion_length": 12, "eval_every": 10, "precision": "fp32",
                             "sync": sync, **(settings or {})})
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

    def build(method: str, settings=None, **sync):
        trainer, tok, grader = _trainer(tiny_model_dir, tmp_path / f"{method}{len(graders)}", method, settings, **sync)
        graders.append(grader)
        return trainer, tok

    yield build
    for grader in graders:
        grader.close()


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


def test_grpo_loss_and_gradients_are_trls_bit_for_bit_off_policy(make):
    """One generation serves two updates of two micro-batches (accumulation 2, four micro-batches per
    generation); the old log-probabilities are those of an earlier policy, so ratios differ from 1 and
    tokens are clipped on both sides: the loss and every gradient equal trl's own, bit for bit."""
    from trl import GRPOTrainer
    from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

    trainer, _ = make("grpo", settings={"prompts_per_update": 1, "micro_batch_size": 2})
    assert (trainer.args.gradient_accumulation_steps, trainer.args.steps_per_generation) == (2, 4)
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions(None)
    assert batch["row_kind"].tolist() == [ROLLOUT] * 2 * G
    assert int(batch["rl_tokens"]) == int(batch["num_items_in_batch"]) > 0
    batch["advantages"] = torch.linspace(-1, 1, 2 * G)   # a non-trivial advantage on every row
    model, clipped = trainer.model, {"low": 0, "high": 0}
    for micro in split_tensor_dict(shuffle_sequence_dict(batch), trainer.args.steps_per_generation):
        ids = torch.cat([micro["prompt_ids"], micro["completion_ids"]], dim=1)
        attention = torch.cat([micro["prompt_mask"], micro["completion_mask"]], dim=1)
        with torch.no_grad():
            logp, _, _ = trainer._get_per_token_logps_and_entropies(model, ids, attention,
                                                                    micro["completion_ids"].size(1))
        micro["old_per_token_logps"] = logp + (torch.rand_like(logp) - 0.5)   # ratios e^-0.5 .. e^0.5
        ratio, adv, mask = (logp - micro["old_per_token_logps"]).exp(), micro["advantages"].unsqueeze(1), \
            micro["completion_mask"].bool()
        clipped["low"] += int(((ratio < 0.8) & (adv < 0) & mask).sum())
        clipped["high"] += int(((ratio > 1.2) & (adv > 0) & mask).sum())
        model.zero_grad()
        ours = trainer._compute_loss(model, micro)
        ours.backward()
        ours_grads = _grads(model)
        model.zero_grad()
        theirs = GRPOTrainer._compute_loss(trainer, model, micro)
        theirs.backward()
        assert torch.equal(ours, theirs) and ours.item() != 0.0
        assert all(torch.equal(a, b) for a, b in zip(ours_grads, _grads(model)))
    assert clipped["low"] > 0 and clipped["high"] > 0, clipped


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


def test_chord_mu_follows_the_schedule_from_step_zero(make):
    """Three RL steps on a warm-up of 2 and a decay of 2: mu(0) = 0, mu(1) = 0.45, mu(2) = 0.9 (the schedule's
    first values, indexed from the branch's step 0); each step's loss is (1 - mu) x RL + mu x SFT."""
    trainer, _ = make("chord", chord_mu_warmup_steps=2, chord_mu_decay_steps=2, chord_mu_peak=0.9,
                      chord_mu_valley=0.1, chord_phi=False)
    trainer.current_gradient_accumulation_steps = trainer.args.steps_per_generation = 1
    for step, mu in enumerate([0.0, 0.45, 0.9]):
        batch = trainer._generate_and_score_completions(None)
        assert batch["row_kind"].tolist() == ([ROLLOUT] * (G - 1) + [SFT]) * 2
        assert (batch["advantages"].view(2, G)[:, -1] == 0).all()
        assert trainer.generation_records[-1]["mu"] == pytest.approx(mu)
        trainer._metrics["train"].clear()
        loss = trainer._compute_loss(trainer.model, batch)
        m = trainer._metrics["train"]
        assert m["mu"] == [pytest.approx(mu)]
        # both terms are token means: the SFT term is the expert rows' mean NLL (phi off)
        assert loss.item() == pytest.approx((1 - mu) * m["policy_loss"][0] + mu * m["sft_loss"][0], rel=1e-6)
        assert m["sft_loss"][0] > 0
        if step == 0:   # mu(0) = 0: nothing of the SFT term
            assert loss.item() == pytest.approx(m["policy_loss"][0], abs=1e-12)


def test_upt_skipped_update_leaves_the_weights_unchanged(make):
    """A real optimizer step (trainer.train) whose gradient norm exceeds the skip limit changes no weight;
    the same step under the study's limit of 80 does."""
    from dataclasses import replace

    before = None
    for limit in (1e-9, 80.0):
        trainer, _ = make("upt")
        trainer.args.max_steps = 1
        trainer.recipe = replace(trainer.recipe, skip_grad_norm=limit)
        if before is None:
            before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.train()
        after = trainer.model.state_dict()
        unchanged = all(torch.equal(before[k], after[k]) for k in before)
        assert trainer.state.global_step == 1
        assert (unchanged, trainer.skipped_updates) == ((True, 1) if limit < 1 else (False, 0))


# ----------------------------------------------------------------------------- one update by hand

LOG = {0.5: math.log(0.5), 0.25: math.log(0.25), 0.9: math.log(0.9)}


def _row(kind, p, old=None, h=1.0, reward=0.0, adv=0.0, expert_len=0, weight=1.0):
    """One row of a fixed micro-batch: token probabilities ``p`` (current policy), ``old`` those of the policy
    that generated it (default: the same, ratio 1), entropies ``h`` (a number or one per token)."""
    old = p if old is None else old
    h = [h] * len(p) if not isinstance(h, list) else h
    return dict(kind=kind, p=p, old=old, h=h, reward=reward, adv=adv, expert_len=expert_len, weight=weight)


def _micro(rows, rl_tokens=0, sft_tokens=0):
    """(inputs, log-probabilities, entropies) of a micro-batch of ``rows``, right-padded."""
    width = max(len(r["p"]) for r in rows)
    pad = lambda xs, fill: list(xs) + [fill] * (width - len(xs))   # noqa: E731
    f64 = dict(dtype=torch.float64)
    logp = torch.tensor([pad([math.log(x) for x in r["p"]], 0.0) for r in rows], **f64)
    inputs = {"row_kind": torch.tensor([r["kind"] for r in rows]),
              "expert_len": torch.tensor([r["expert_len"] for r in rows]),
              "reward": torch.tensor([r["reward"] for r in rows], **f64),
              "loss_weight": torch.tensor([r["weight"] for r in rows], **f64),
              "advantages": torch.tensor([r["adv"] for r in rows], **f64),
              "completion_mask": torch.tensor([pad([1] * len(r["p"]), 0) for r in rows]),
              "old_per_token_logps": torch.tensor([pad([math.log(x) for x in r["old"]], 0.0) for r in rows], **f64),
              "rl_tokens": torch.tensor(rl_tokens), "sft_tokens": torch.tensor(sft_tokens)}
    ent = torch.tensor([pad(r["h"], 0.0) for r in rows], **f64)
    return inputs, logp.requires_grad_(), ent


L = 12   # max_completion_length of the test trainer: the padded response width
F = 0.5 / 0.6   # LUFFY's shaping f(p) = p / (p + 0.1) at p = 0.5 (SYNC_METHODS.md 1: 0.833333)

# Each method's update: two micro-batches of several rows (accumulation 2), from SYNC_METHODS.md's vectors.
# The expected loss is written out by hand: per micro-batch, sum of RL token losses / L + SFT mean - 0.001 x
# mean entropy, each micro-batch / 2 (CHORD: two token means over the update, mixed by mu).
UPDATES = {
    # group 1: rollouts r = [1, 0, 0] + expert r* = 1 -> mean 0.5, A = [.5, -.5, -.5], A* = .5; one rollout token
    # at ratio 2; group 2: rollouts [0, 0, 0] + expert -> A = -.25, A* = .75 (expert tokens -0.75 f = -0.625)
    "luffy": ([[_row(ROLLOUT, [.5, .5, .5], adv=.5, h=1.0), _row(ROLLOUT, [.5, .5], old=[.5, .25], adv=-.5, h=2.0),
                _row(ROLLOUT, [.5], adv=-.5, h=3.0), _row(EXPERT, [.5, .5], adv=.5, expert_len=2, h=.5)],
               [_row(ROLLOUT, [.5, .5], adv=-.25), _row(ROLLOUT, [.5, .5], adv=-.25), _row(ROLLOUT, [.5, .5], adv=-.25),
                _row(EXPERT, [.5, .5, .5], adv=.75, expert_len=3)]],
              ((-1.5 + (0.5 + 1.0) + 0.5 - 2 * 0.5 * F) / L - 0.001 * 11 / 8) / 2
              + ((6 * 0.25 - 3 * 0.75 * F) / L - 0.001 * 1.0) / 2),
    # SRFT: correct rollout H = 0.2 -> +0.084661 per token (p = .5); wrong rollouts -0.693147 per token; the expert
    # row (H = 0.5): LUFFY's shaped term with A* = r* - mean = 0.5 (group 1) / 0.75 (group 2), and the SFT term
    # w1 (-log p) = 0.210208 per token, a mean over the micro-batch's expert tokens
    "srft": ([[_row(ROLLOUT, [.5, .5], reward=1.0, h=.2), _row(ROLLOUT, [.5], h=1.0), _row(ROLLOUT, [.5, .5], h=1.0),
               _row(EXPERT, [.5, .5], reward=1.0, adv=.5, expert_len=2, h=.5)],
              [_row(ROLLOUT, [.5], h=.5), _row(ROLLOUT, [.5], h=.5), _row(ROLLOUT, [.5], h=.5),
               _row(EXPERT, [.5], reward=1.0, adv=.75, expert_len=1, h=.5)]],
             ((2 * 0.084661 - 3 * 0.693147 - 2 * 0.5 * F) / L + 0.210208 - 0.001 * 4.4 / 7) / 2
             + ((-3 * 0.693147 - 0.75 * F) / L + 0.210208 - 0.001 * 0.5) / 2),
    # UPT: a solved group r = [1, 0, 0, 0] (A = [.75, -.25, -.25, -.25], no clipping) beside an unsolved one whose
    # 3 dropped rollouts carry nothing (entropy 7 would show) and whose expert row's SFT loss at p = [.5, .25]
    # is 1.039721; micro-batch 2: r = [1, 1, 0, 0] with one token at ratio 2 (-2 x .5) and an SFT row at p = .5
    "upt": ([[_row(ROLLOUT, [.5, .5], adv=.75), _row(ROLLOUT, [.5], adv=-.25), _row(ROLLOUT, [.5], adv=-.25),
              _row(ROLLOUT, [.5], adv=-.25), *[_row(ROLLOUT, [.5, .5], weight=0.0, h=7.0)] * 3,
              _row(SFT, [.5, .25], expert_len=2, h=0.0)],
             [_row(ROLLOUT, [.5], old=[.25], adv=.5), _row(ROLLOUT, [.5], adv=.5), _row(ROLLOUT, [.5], adv=-.5),
              _row(ROLLOUT, [.5], adv=-.5), *[_row(ROLLOUT, [.5], weight=0.0, h=7.0)] * 3,
              _row(SFT, [.5], expert_len=1)]],
            ((-1.5 + 3 * 0.25) / L + 1.039721 - 0.001 * 5 / 7) / 2
            + ((-1.0 - 0.5 + 0.5 + 0.5) / L + 0.693147 - 0.001 * 1.0) / 2),
    # Prefix-RFT: GRPO's clipped surrogate (0.8 .. 1.2); the hybrid row's prefix keeps its advantage on its top
    # 20% entropy tokens only (1 of 5: H = .5; 2 of 10: H = .9, 1.0), its continuation everywhere
    "prefix_rft": ([[_row(ROLLOUT, [.5, .5], old=[.5, .25], adv=.5), _row(ROLLOUT, [.25], old=[.5], adv=-.5),
                     _row(ROLLOUT, [.5], adv=-.5),
                     _row(HYBRID, [.5] * 6, adv=.5, expert_len=5, h=[.1, .2, .3, .4, .5, 1.0])],
                    [_row(ROLLOUT, [.5], adv=-.25), _row(ROLLOUT, [.5], adv=-.25), _row(ROLLOUT, [.5], adv=-.25),
                     _row(HYBRID, [.5] * 10, adv=.75, expert_len=10, h=[.1 * (i + 1) for i in range(10)])]],
                   ((-0.5 - 1.2 * 0.5 + 0.8 * 0.5 + 0.5 - 2 * 0.5) / L - 0.001 * 6.5 / 10) / 2
                   + ((3 * 0.25 - 2 * 0.75) / L - 0.001 * 8.5 / 13) / 2),
}


@pytest.mark.parametrize("method", sorted(UPDATES))
def test_one_update_equals_the_scripts_by_hand(make, method):
    trainer, _ = make(method)
    trainer.current_gradient_accumulation_steps, trainer.args.steps_per_generation = 2, 2
    micro_batches, expected = UPDATES[method]
    total = sum(trainer.sync_loss(*_micro(rows))[0].item() for rows in micro_batches)
    assert total == pytest.approx(expected, abs=1e-6)


def test_chord_update_mixes_two_token_means_by_hand(make):
    """CHORD at mu(5) = 0.45 (warm-up 10 to 0.9): (1 - mu) x the clipped surrogate's token mean over the update's
    7 rollout tokens + mu x the phi-weighted NLL's token mean over its 3 expert tokens (p = .5: 0.173287 per
    token, p = .9: 0.009482), whatever the aggregation setting says."""
    micro_batches = [[_row(ROLLOUT, [.5, .5], adv=2 / 3), _row(ROLLOUT, [.5], adv=-1 / 3), _row(ROLLOUT, [.5], adv=-1 / 3),
                      _row(SFT, [.5, .5], expert_len=2)],
                     [_row(ROLLOUT, [.5], adv=-1 / 3), _row(ROLLOUT, [.5], adv=-1 / 3),
                      _row(ROLLOUT, [.5], old=[.25], adv=2 / 3), _row(SFT, [.9], expert_len=1)]]
    expected = 0.55 * (-4 / 3 + 2 / 3 + 2 / 3 - 1.2 * 2 / 3) / 7 + 0.45 * (2 * 0.173287 + 0.009482) / 3
    for agg in ("seq_sum_over_lmax", "token_mean"):
        trainer, _ = make("chord", agg=agg)
        trainer.current_gradient_accumulation_steps, trainer.args.steps_per_generation = 2, 2
        trainer._chord_mu = trainer._mu(5)
        total = sum(trainer.sync_loss(*_micro(rows, rl_tokens=7, sft_tokens=3))[0].item() for rows in micro_batches)
        assert trainer._chord_mu == pytest.approx(0.45) and total == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("rollouts", [3, 7])
def test_rl_to_sft_gradient_ratio_is_the_scripts(make, rollouts):
    """UPT, one micro-batch of ``rollouts`` one-token rollouts (A = 0.5, ratio 1) and an SFT row of 4 tokens,
    accumulation 2: d loss / d log p is -A / (L x 2) on a rollout token and -1 / (4 x 2) on an expert token, so
    their ratio is A x 4 / L whatever the number of rows (a per-row mean would divide it by the rows)."""
    trainer, _ = make("upt")
    trainer.current_gradient_accumulation_steps, trainer.args.steps_per_generation = 2, 2
    inputs, logp, ent = _micro([_row(ROLLOUT, [.5], adv=.5)] * rollouts + [_row(SFT, [.5] * 4, expert_len=4)])
    loss, _ = trainer.sync_loss(inputs, logp, ent)
    loss.backward()
    rl_grad, sft_grad = logp.grad[0, 0].item(), logp.grad[-1, 0].item()
    assert rl_grad == pytest.approx(-0.5 / (L * 2)) and sft_grad == pytest.approx(-1 / (4 * 2))
    assert rl_grad / sft_grad == pytest.approx(0.5 * 4 / L)


def test_token_mean_divides_the_rl_term_by_the_update_tokens(make):
    """``agg: token_mean``: the RL term over the update's trained RL tokens (trl's dapo normaliser); the SFT
    term stays the micro-batch's mean / accumulation."""
    trainer, _ = make("upt", agg="token_mean")
    trainer.current_gradient_accumulation_steps, trainer.args.steps_per_generation = 2, 2
    inputs, logp, ent = _micro([_row(ROLLOUT, [.5, .5], adv=.5, h=0.0), _row(SFT, [.5, .25], expert_len=2, h=0.0)],
                               rl_tokens=10, sft_tokens=4)
    loss, _ = trainer.sync_loss(inputs, logp, ent)
    assert loss.item() == pytest.approx(-2 * 0.5 / 10 + 1.039721 / 2, abs=1e-6)
