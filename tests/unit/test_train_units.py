"""Pure pieces of the training stages: group filter and prompt stream, reward, compute accounting,
branch start, tokenization, packed vs padded loss, the schedule horizon, DAPO refill on a stub reward."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from plasticity.train import rewards, rl
from plasticity.train.rollouts import PromptStream, concat_rows, kept_groups, take_rows

# ----------------------------------------------------------------------------- dynamic sampling


def test_group_filter_keeps_only_mixed_groups():
    r = torch.tensor([0, 0, 0, 0,      # all wrong -> dropped
                      1, 1, 1, 1,      # all right -> dropped
                      1, 0, 0, 0,      # 1 of 4 -> kept
                      1, 1, 1, float("nan")],   # 3 of 4 (a failed reward counts as wrong) -> kept
                     dtype=torch.float32)
    assert kept_groups(r, 4).tolist() == [False, False, True, True]
    with pytest.raises(ValueError):
        kept_groups(torch.zeros(6), 4)


def test_group_filter_matches_paper_window_for_eight():
    # PAPER 2.5: keep prompts with 1..7 of 8 correct
    for n_correct in range(9):
        r = torch.tensor([1.0] * n_correct + [0.0] * (8 - n_correct))
        assert bool(kept_groups(r, 8)[0]) == (1 <= n_correct <= 7)


def test_prompt_stream_is_seeded_resumable_and_covers_each_pass():
    a = PromptStream(10, seed=3)
    first = a.take(7) + a.take(7)
    assert sorted(first[:10]) == list(range(10))          # one pass is a permutation
    b = PromptStream(10, seed=3, position=7)               # resumed at the saved position
    assert b.take(7) == first[7:]
    assert PromptStream(10, seed=4).take(10) != first[:10]


def test_rows_are_taken_and_concatenated_with_padding_on_the_right_side():
    a = {"prompt_ids": torch.tensor([[0, 5], [6, 7]]), "prompt_mask": torch.tensor([[0, 1], [1, 1]]),
         "completion_ids": torch.tensor([[1, 2, 3], [4, 0, 0]]), "completion_mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
         "advantages": torch.tensor([0.5, -0.5]), "num_items_in_batch": torch.tensor(4)}
    b = {"prompt_ids": torch.tensor([[8, 9, 9]]), "prompt_mask": torch.tensor([[1, 1, 1]]),
         "completion_ids": torch.tensor([[7]]), "completion_mask": torch.tensor([[1]]),
         "advantages": torch.tensor([1.0]), "num_items_in_batch": torch.tensor(1)}
    both = concat_rows([take_rows(a, torch.tensor([1])), b], pad_id=0)
    assert both["prompt_ids"].tolist() == [[0, 6, 7], [8, 9, 9]]          # prompts stay left-padded
    assert both["prompt_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]
    assert both["completion_ids"].tolist() == [[4, 0, 0], [7, 0, 0]]      # completions right-padded
    assert both["completion_mask"].tolist() == [[1, 0, 0], [1, 0, 0]]
    assert both["advantages"].tolist() == [-0.5, 1.0]


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


def test_cumulative_ef_charges_every_round_and_the_trained_prompts():
    from plasticity.analysis.flops import EF, ModelConstants, dapo_step_flops, grpo_step_flops

    m = ModelConstants.from_hf_config(_MICRO_CONFIG)
    recs = [{"prompts": 16, "group": 8, "gen_rounds": 3, "train_prompts": 10, "mean_prompt_tokens": 12.0,
             "mean_completion_tokens": 30.0},
            {"prompts": 16, "group": 8, "gen_rounds": 1, "train_prompts": 4, "mean_prompt_tokens": 12.0,
             "mean_completion_tokens": 20.0}]
    dapo = rl.cumulative_ef(_MICRO_CONFIG, "dapo_dc", recs)
    assert dapo[0] == pytest.approx(dapo_step_flops(m, 3, 16, 10, 8, 42.0) / EF)   # (K*B_gen + 3*B_train)*G*S*F
    assert dapo[1] == pytest.approx(dapo[0] + dapo_step_flops(m, 1, 16, 4, 8, 32.0) / EF)
    grpo = rl.cumulative_ef(_MICRO_CONFIG, "grpo", recs)
    assert grpo[0] == pytest.approx(grpo_step_flops(m, 16, 8, 42.0) / EF)


def test_method_registry_is_what_the_config_accepts():
    from plasticity.config import RlSettings
    from plasticity.methods import METHODS, RUNNABLE

    base = {"steps": 1, "lr": 1e-6, "prompts_per_step": 8, "num_generations": 4, "temperature": 0.7,
            "max_completion_length": 8, "eval_every": 1}
    for name, method in METHODS.items():
        assert RlSettings(**base, method=name).method == name
        assert (method.sync is not None) == (method.paradigm == "sync")
    assert set(RUNNABLE) == set(METHODS) == {"dapo_dc", "dapo_d", "grpo", "luffy", "srft", "upt", "prefix_rft",
                                             "chord"}


# ----------------------------------------------------------------------------- branch start

def test_resolve_start(tmp_path):
    run_dir = tmp_path / "sft"
    run_dir.mkdir()
    (run_dir / "val_loss.json").write_text(json.dumps({"points": [
        {"step": 0, "val_loss": 6.0}, {"step": 100, "val_loss": 1.0}, {"step": 200, "val_loss": 0.5},
        {"step": 400, "val_loss": 0.505}, {"step": 600, "val_loss": 0.6}]}))
    (run_dir / "train_stats.json").write_text(json.dumps({"model_dir": "/base"}))
    regimes = SimpleNamespace(delta=0.02, delta2=0.10)

    def branch(switch, sft_data="uniform"):
        return SimpleNamespace(sft_data=sft_data, switch=switch)

    assert rl.resolve_start(run_dir, branch("min_val_loss"), regimes) == (run_dir / "checkpoint-200", 200)
    assert rl.resolve_start(run_dir, branch("stable"), regimes) == (run_dir / "checkpoint-400", 400)
    assert rl.resolve_start(run_dir, branch(100), regimes) == (run_dir / "checkpoint-100", 100)
    assert rl.resolve_start(run_dir, branch(0), regimes)[1] == 0
    assert rl.resolve_start(tmp_path / "base", branch(0, "none"), regimes) == (tmp_path / "base", 0)
    with pytest.raises(ValueError):
        rl.resolve_start(run_dir, branch(300), regimes)


def test_curve_rows_percent_overall_and_standard_errors():
    summary = {"benchmarks": {"mini_gsm8k": {"role": "gsm8k", "accuracy": 25.0, "n_problems": 4, "stderr": 5.0},
                              "mini_math": {"role": "math", "accuracy": 50.0, "n_problems": 2, "stderr": 7.0}},
               "micro": 100 / 3, "macro": 37.5, "micro_stderr": 4.0}
    rows = rl.curve_rows(10, 1e-9, summary)
    assert [(r["benchmark"], r["accuracy"], r["stderr"]) for r in rows] == [
        ("gsm8k", 25.0, 5.0), ("math", 50.0, 7.0), ("overall", pytest.approx(100 / 3), 4.0)]
    assert all(r["rl_step"] == 10 and r["x_ef"] == 1e-9 for r in rows)


def test_standard_error_over_problems():
    from plasticity.eval.metrics import standard_error

    assert standard_error([1.0]) == 0.0
    assert standard_error([0.0, 1.0, 0.0, 1.0]) == pytest.approx(100 * (1 / 3) ** 0.5 / 2)


# ----------------------------------------------------------------------------- SFT data and loss

@pytest.fixture(scope="module")
def micro():
    from plasticity.config import TinyArch
    from plasticity.models import build_tiny_tokenizer
    from plasticity.train.pretrain import build_tiny_model

    tok = build_tiny_tokenizer()
    arch = TinyArch(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                    intermediate_size=64, max_position_embeddings=160)
    return build_tiny_model(arch, tok, seed=0), tok


def _settings(**kw):
    from plasticity.config import SftRunSettings

    return SftRunSettings(**{"batch_size": 2, "lr": 1e-3, "max_length": 128, "data": "d", "steps": 1,
                             "save_steps": [1], "precision": "fp32", **kw})


def test_completion_only_labels_mask_the_prompt(micro, tmp_path):
    from plasticity.models import chat_prompt
    from plasticity.train.data import to_dataset, tokenize_pairs
    from plasticity.train.sft import build_sft_trainer

    model, tok = micro
    prompt = chat_prompt(tok, "7-3+5=")
    completion = "<think>\n7-3=4\n4+5=9\n</think>\n<answer>\\boxed{9}</answer>"
    columns, dropped = tokenize_pairs(tok, {"prompt": [prompt], "completion": [completion]}, 128)
    trainer = build_sft_trainer(model, tok, to_dataset(columns), _settings(batch_size=1), tmp_path, seed=0,
                                world_size=1, cuda=False)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert dropped == 0 and labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    # the completion is trained up to and including one EOS
    assert tok.decode(ids[n_prompt:]) == completion + tok.eos_token


def test_truncation_keeps_the_start_and_drops_prompt_only_rows(micro):
    from plasticity.train.data import tokenize_pairs

    _, tok = micro
    cols, dropped = tokenize_pairs(tok, {"prompt": ["1234", "12345678"], "completion": ["abcdef", "x"]}, 6)
    assert dropped == 1 and cols["input_ids"] == [tok("1234ab", add_special_tokens=False)["input_ids"]]
    assert cols["completion_mask"] == [[0, 0, 0, 0, 1, 1]]


def test_validation_loss_is_a_token_mean_over_completion_tokens(micro):
    from plasticity.train.data import tokenize_pairs
    from plasticity.train.val_loss import validation_loss

    model, tok = micro
    pairs = {"prompt": ["7-3+5=", "7-3+5-1+2-2="], "completion": ["\\boxed{9}", "\\boxed{8}"]}
    cols, _ = tokenize_pairs(tok, pairs, 128)
    whole = validation_loss(model, cols, micro_batch_size=2, pad_id=tok.pad_token_id)
    one_by_one = validation_loss(model, cols, micro_batch_size=1, pad_id=tok.pad_token_id)
    assert 0 < whole < 2 * torch.log(torch.tensor(float(len(tok)))).item()
    assert whole == pytest.approx(one_by_one, rel=1e-6)   # padding never enters the mean


def test_padding_free_batches_give_the_padded_loss(micro, tmp_path):
    """Padding-free (flattened, position ids restarting per sequence) and padded batches: same loss."""
    from plasticity.train.data import to_dataset, tokenize_pairs
    from plasticity.train.sft import build_sft_trainer

    model, tok = micro
    pairs = {"prompt": ["7-3+5=", "1+1=", "9-8+7-6="], "completion": ["\\boxed{9}", "<think>\n1+1=2\n</think>\\boxed{2}",
                                                                     "\\boxed{2}"]}
    cols, _ = tokenize_pairs(tok, pairs, 128)
    losses = []
    for padding_free in (False, True):
        trainer = build_sft_trainer(model, tok, to_dataset(cols), _settings(batch_size=3, padding_free=padding_free),
                                    tmp_path / str(padding_free), seed=0, world_size=1, cuda=False)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
        assert ("position_ids" in batch) is padding_free and batch["input_ids"].size(0) == (1 if padding_free else 3)
        with torch.no_grad():
            out = model(**{k: v for k, v in batch.items() if k != "labels"})
        shift_logits, shift_labels = out.logits[:, :-1], batch["labels"][:, 1:]
        losses.append(torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)),
                                                        shift_labels.reshape(-1), ignore_index=-100).item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_schedule_horizon_is_the_shorter_run_then_the_longer_one():
    from plasticity.train.sft import horizon_schedule

    f = horizon_schedule(warmup=180, horizon=1800, steps=6120, warmup_total=612)
    assert f(90) == pytest.approx(0.5) and f(180) == pytest.approx(1.0)
    assert f(990) == pytest.approx(0.5) and f(1799) < 1e-5           # a 1800-step cosine reaches 0 at 1800
    # then the 6120-step schedule at the same step: warmup 612, cosine over 5508 steps
    import math
    assert f(1800) == pytest.approx(0.5 * (1 + math.cos(math.pi * (1800 - 612) / (6120 - 612))))
    assert f(6120) == pytest.approx(0.0)


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


# ----------------------------------------------------------------------------- DAPO refill

def _refill_trainer(micro, tmp_path, prompts_per_step, gen_per_round, max_rounds, dynamic, correct):
    """A BranchTrainer on the micro model whose reward is ``correct(prompt index, sample index)``."""
    from datasets import Dataset

    from plasticity.config import RlBranchSettings
    from plasticity.train.rollouts import PromptStream, branch_trainer_class
    from plasticity.train.trainer_config import grpo_config

    model, tok = micro
    rows = [{"prompt": [{"role": "user", "content": f"{i}+0="}], "reference_answer": str(i)} for i in range(40)]
    calls = {"n": 0}

    def reward(prompts, completions, reference_answer, **kw):
        out = []
        for j, ref in enumerate(reference_answer):
            out.append(float(correct(int(ref), j % 4)))
        calls["n"] += 1
        return out

    s = RlBranchSettings(method="dapo_dc" if dynamic else "grpo", steps=1, lr=1e-4, prompts_per_step=prompts_per_step,
                         gen_prompts_per_round=gen_per_round if dynamic else None, max_gen_rounds=max_rounds,
                         num_generations=4, temperature=1.0, max_completion_length=4, eval_every=1, precision="fp32",
                         sft_data="none", switch=0, prompts="rl")
    args = grpo_config(s, output_dir=tmp_path, seed=0, world_size=1, cuda=False)
    trainer = branch_trainer_class()(
        model=model, reward_funcs=[reward], args=args, processing_class=tok,
        train_dataset=Dataset.from_dict({"prompt": [r["prompt"] for r in rows],
                                         "reference_answer": [r["reference_answer"] for r in rows]}),
        rows=rows, stream=PromptStream(len(rows), 0), prompts_per_step=prompts_per_step,
        gen_prompts_per_round=gen_per_round, max_gen_rounds=max_rounds, dynamic_sampling=dynamic)
    trainer.model.train()
    return trainer


def _batch_prompts(batch, tok, group=4):
    """The prompt index of each group of a batch (rows ``{i}+0=``), from its prompt tokens."""
    import re

    texts = tok.batch_decode(batch["prompt_ids"][::group], skip_special_tokens=True)
    return [int(re.search(r"(\d+)\+0=", t).group(1)) for t in texts]


def test_refill_keeps_exactly_the_first_mixed_reward_groups(micro, tmp_path):
    # planted rewards: prompts i % 3 == 0 solved 4 of 4 (dropped), i % 3 == 1 solved 2 of 4 (kept), i % 3 == 2
    # never (dropped)
    trainer = _refill_trainer(micro, tmp_path, prompts_per_step=4, gen_per_round=3, max_rounds=10, dynamic=True,
                              correct=lambda p, j: p % 3 == 0 or (p % 3 == 1 and j < 2))
    order = PromptStream(40, 0).take(30)
    batch = trainer._generate_and_score_completions(None)
    rec = trainer.generation_records[-1]
    rounds = next(r for r in range(1, 11) if sum(i % 3 == 1 for i in order[:3 * r]) >= 4)
    assert (rec["gen_rounds"], rec["train_prompts"], rec["filled"], rec["masked_groups"]) == (rounds, 4, True, 0)
    assert rec["discarded_groups"] == 3 * rounds - 4 and trainer.stream.position == 3 * rounds
    # exactly the first four mixed-reward groups of the stream, in order, each with its four rows
    assert _batch_prompts(batch, micro[1]) == [i for i in order[:3 * rounds] if i % 3 == 1][:4]
    assert batch["completion_ids"].size(0) == 16 and batch["completion_mask"].sum() > 0
    assert rec["mean_train_prompt_tokens"] > 0 and rec["mean_train_completion_tokens"] > 0


def test_refill_stops_at_max_rounds_and_masks_the_missing_groups(micro, tmp_path):
    first = PromptStream(40, 0).take(1)[0]
    trainer = _refill_trainer(micro, tmp_path, prompts_per_step=4, gen_per_round=2, max_rounds=2, dynamic=True,
                              correct=lambda p, j: p == first and j == 0)
    batch = trainer._generate_and_score_completions(None)
    rec = trainer.generation_records[-1]
    assert (rec["gen_rounds"], rec["train_prompts"], rec["filled"], rec["discarded_groups"]) == (2, 1, False, 3)
    assert rec["masked_groups"] == 3   # charged: they run forward and backward
    assert batch["completion_ids"].size(0) == 16                # the batch keeps its shape ...
    assert batch["completion_mask"][4:].sum() == 0               # ... the 3 missing groups carry no loss
    assert batch["num_items_in_batch"] == batch["completion_mask"][:4].sum()
    assert _batch_prompts(batch, micro[1])[0] == first
    # the trained rows' lengths count the masked rows at the lengths of the generated rows they copy
    prompt_lengths = batch["prompt_mask"].sum(dim=1).float()
    assert rec["mean_train_prompt_tokens"] == pytest.approx(prompt_lengths.mean().item())
    assert rec["mean_train_completion_tokens"] > batch["completion_mask"].sum().item() / 16


def test_grpo_trains_every_group_of_one_round(micro, tmp_path):
    trainer = _refill_trainer(micro, tmp_path, prompts_per_step=4, gen_per_round=4, max_rounds=10, dynamic=False,
                              correct=lambda p, j: False)
    trainer._generate_and_score_completions(None)
    rec = trainer.generation_records[-1]
    assert (rec["gen_rounds"], rec["train_prompts"], rec["prompts"]) == (1, 4, 4)


# ----------------------------------------------------------------------------- in-loop evaluation

def test_in_loop_evaluation_scores_every_problem_and_leaves_the_training_state(micro, tmp_path):
    from plasticity.eval.registry import load_suites
    from plasticity.train.trainer_config import process_state
    from train_builders import EVAL, benchmarks

    class ParityGrader:
        """Correct when the completion's length is even: the untrained micro model never solves a problem,
        so the real grader would score every sample 0 and hide which samples were drawn."""
        def grade_many(self, texts, refs):
            return [SimpleNamespace(correct=len(t) % 2 == 0) for t in texts]

    model, tok = micro
    suites = load_suites(benchmarks(tmp_path / "bench"), EVAL["benchmarks"])
    eval_cfg = {**EVAL, "samples": {"default": 3}}
    state, grader = process_state(cuda=False), ParityGrader()
    model.train()
    rng = torch.get_rng_state()
    per_bench = rl.problem_accuracies(model, tok, suites, eval_cfg, 1, grader, state)
    torch.manual_seed(99)   # the trainer's stream moves between evaluations; the evaluation's samples do not
    again = rl.problem_accuracies(model, tok, suites, eval_cfg, 1, grader, state)
    other_seed = rl.problem_accuracies(model, tok, suites, eval_cfg, 2, grader, state)
    torch.set_rng_state(rng)
    summary = rl.evaluate_model(model, tok, suites, eval_cfg, 1, grader, state)
    assert model.training and torch.equal(torch.get_rng_state(), rng)
    assert per_bench == again and per_bench != other_seed
    accs = [a for name in EVAL["benchmarks"] for a in per_bench[name]["per_problem"]]
    assert len(accs) == 12 and set(accs) <= {0.0, 1 / 3, 2 / 3, 1.0} and 0 < sum(accs) < 12
    assert summary["micro"] == pytest.approx(100 * sum(accs) / len(accs))
    assert {n: b["n_problems"] for n, b in summary["benchmarks"].items()} == {"mini_gsm8k": 6, "mini_math": 6}
