"""The tokenizer -> base -> sft -> rl stages end to end on a micro model (hidden 32, 2 layers)."""
from __future__ import annotations

import csv
import json
import math
import random

import pyarrow.parquet as pq
import pytest

from plasticity.io import is_complete, read_json
from train_builders import (EVAL, MICRO_MODEL, REGIMES, RL, SEED, SFT, benchmarks, kill_rl_stage, rl_argv,
                            rl_prompts, timed_rl_run, tokenized, trajectories, write_json_file)

TRAINING_S: dict[str, float] = {}   # the uninterrupted branch's seconds of training (random kills' range)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="module")
def base_dir(work):
    from plasticity import models
    from plasticity.train import pretrain

    cfg = write_json_file(work / "model.json", {"seed": SEED, "model_name": "micro", "model": MICRO_MODEL})
    assert models.main(["--config", str(cfg), "--out", str(work / "tok")]) == 0
    assert pretrain.main(["--config", str(cfg), "--tokenizer", str(work / "tok"), "--out", str(work / "base")]) == 0
    return work / "base"


@pytest.fixture(scope="module")
def sft_dir(work, base_dir):
    from plasticity.train import sft

    train, val = tokenized(work, "train", trajectories(48, 1)), tokenized(work, "val", trajectories(12, 2))
    cfg = write_json_file(work / "sft.json", {"seed": SEED, "model_name": "micro", "model": MICRO_MODEL, "sft": SFT,
                                     "regimes": REGIMES})
    argv = ["--config", str(cfg), "--base", str(base_dir), "--train", str(train), "--val", str(val),
            "--out", str(work / "sft")]
    assert sft.main(argv) == 0
    return work / "sft"


def test_pretrain_is_byte_identical_across_runs(work, base_dir):
    from plasticity.train import pretrain

    again = work / "base_again"
    assert pretrain.main(["--config", str(work / "model.json"), "--tokenizer", str(work / "tok"),
                          "--out", str(again)]) == 0
    assert is_complete(base_dir) and is_complete(again)
    assert (base_dir / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()
    assert not (base_dir / ".trainer").exists()


def test_base_model_loads_with_its_tokenizer(base_dir):
    from plasticity.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(base_dir)
    assert model.config.vocab_size == len(tok)
    assert model.config.tie_word_embeddings
    assert model.config.eos_token_id == tok.eos_token_id and model.config.pad_token_id == tok.pad_token_id


def test_sft_writes_checkpoints_losses_and_regimes(sft_dir, base_dir):
    from safetensors.torch import load_file

    assert is_complete(sft_dir)
    for step in (3, 6):
        assert (sft_dir / f"checkpoint-{step}" / "model.safetensors").is_file()
        assert (sft_dir / f"checkpoint-{step}" / "tokenizer.json").is_file()
    assert not (sft_dir / ".resume").exists()
    points = read_json(sft_dir / "val_loss.json")["points"]
    assert [p["step"] for p in points] == [0, 3, 6]
    assert all(math.isfinite(p["val_loss"]) and p["val_loss"] > 0 for p in points)
    assert points[-1]["val_loss"] < points[0]["val_loss"]
    stats = read_json(sft_dir / "train_stats.json")
    assert stats["steps"] == [3, 6] and stats["batch_size"] == 8 and stats["model_dir"] == str(base_dir)
    assert 20 < stats["mean_seq_len"] < 128
    assert stats["train_loss"] and all(math.isfinite(e["loss"]) for e in stats["train_loss"])
    regimes = read_json(sft_dir / "regimes.json")["points"]
    assert [r["step"] for r in regimes] == [0, 3, 6]
    assert {r["regime"] for r in regimes} <= {"adaptive", "stable", "mild", "severe"}
    before = load_file(str(base_dir / "model.safetensors"))
    after = load_file(str(sft_dir / "checkpoint-6" / "model.safetensors"))
    assert any(not (before[k] == after[k]).all() for k in before)


def test_sft_resumes_after_a_crash(work, base_dir, sft_dir, monkeypatch):
    from plasticity.train import sft

    original = sft.export_callback

    def crashing(*args, **kwargs):
        inner = original(*args, **kwargs)
        base_on_step_end = inner.on_step_end

        def on_step_end(args, state, control, **kw):
            if state.global_step == 5:
                raise RuntimeError("simulated crash")
            return base_on_step_end(args, state, control, **kw)

        inner.on_step_end = on_step_end
        return inner

    out = work / "sft_crash"
    argv = ["--config", str(work / "sft.json"), "--base", str(base_dir), "--train", str(work / "tokens/train/128"),
            "--val", str(work / "tokens/val/128"), "--out", str(out)]
    monkeypatch.setattr(sft, "export_callback", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sft.main(argv)
    partial = out.with_name(f".{out.name}.partial")
    assert not out.exists() and not is_complete(partial)
    assert (partial / "checkpoint-3").is_dir() and not (partial / "checkpoint-6").exists()
    assert list((partial / ".resume").glob("checkpoint-3"))
    exported_at = (partial / "checkpoint-3" / "model.safetensors").stat().st_mtime_ns
    out.mkdir()  # what a workflow engine may leave (or clear) at the output path: irrelevant
    monkeypatch.setattr(sft, "export_callback", original)
    assert sft.main(argv) == 0
    assert is_complete(out) and (out / "checkpoint-6").is_dir() and not partial.exists()
    assert not (out / ".resume").exists()
    # resumed from step 3: that checkpoint was not trained or exported again
    assert (out / "checkpoint-3" / "model.safetensors").stat().st_mtime_ns == exported_at
    # and the resumed run ends with exactly the weights of an uninterrupted one
    assert (out / "checkpoint-6" / "model.safetensors").read_bytes() == \
        (sft_dir / "checkpoint-6" / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def bench(work):
    return benchmarks(work / "bench")


@pytest.fixture(scope="module")
def rl_parquet(work):
    pq.write_table(rl_prompts(32, 3), work / "rl.parquet")
    return work / "rl.parquet"


@pytest.fixture(scope="module")
def branch(work, sft_dir, bench, rl_parquet):
    from plasticity.train import rl

    cfg = write_json_file(work / "rl.json", {"seed": SEED, "model_name": "micro", "model": MICRO_MODEL, "rl": RL,
                                    "regimes": REGIMES, "eval": EVAL})
    out = work / "branch"
    TRAINING_S["branch"] = timed_rl_run(rl.main, rl_argv(cfg, sft_dir, rl_parquet, bench, out))
    return out


def test_rl_branch_writes_curve_logs_and_model(work, branch, sft_dir):
    out = branch
    assert is_complete(out)
    with open(out / "curve.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["rl_step", "x_ef", "benchmark", "accuracy", "stderr"]
    assert sorted({int(r["rl_step"]) for r in rows}) == [0, 2]
    assert {r["benchmark"] for r in rows} == {"gsm8k", "math", "overall"}
    assert all(0.0 <= float(r["accuracy"]) <= 100.0 and float(r["stderr"]) >= 0.0 for r in rows)
    x = {int(r["rl_step"]): float(r["x_ef"]) for r in rows}
    assert x[0] == 0.0 and x[2] > 0.0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    for row in log:
        assert row["prompts"] == 2 and row["group"] == 4 and 1 <= row["gen_rounds"] <= 3
        assert row["mean_prompt_tokens"] > 0 and row["mean_completion_tokens"] > 0
        # dynamic sampling: every generated group is either trained on or discarded
        assert row["train_prompts"] + row["discarded_groups"] == 2 * row["gen_rounds"]
        assert row["filled"] == (row["train_prompts"] == 2) and row["kept_groups"] == row["train_prompts"]
        assert row["grading_errors"] == 0 and row["grading_error_rate"] == 0.0   # every completion graded
    assert log[1]["x_ef"] == pytest.approx(x[2])
    info = read_json(out / "branch.json")
    assert info["resolved_step"] in (3, 6) and info["method"] == "dapo_dc"
    assert info["start_dir"] == str(sft_dir / f"checkpoint-{info['resolved_step']}")
    assert (out / "model" / "model.safetensors").is_file() and not (out / ".trainer").exists()
    manifest = read_json(out / "manifest.json")
    assert manifest["vllm_importance_sampling_correction"] is False
    assert (manifest["reward"]["mode"], manifest["reward"]["order"]) == ("strict", "reward")   # rl.reward default


def test_rl_branch_rerun_is_byte_identical(work, branch, sft_dir, bench, rl_parquet):
    from plasticity.train import rl

    again = work / "branch_again"
    assert rl.main(rl_argv(work / "rl.json", sft_dir, rl_parquet, bench, again)) == 0
    for name in ("model/model.safetensors", "curve.csv", "train_log.jsonl"):
        assert (again / name).read_bytes() == (branch / name).read_bytes(), name


def test_rl_branch_resumes_from_its_last_checkpoint(work, branch, sft_dir, bench, rl_parquet, monkeypatch):
    """A branch that dies after its step-1 checkpoint resumes there and ends as the uninterrupted one."""
    from plasticity.train import rl

    original = rl.branch_callback

    def crashing(*args, **kwargs):
        inner = original(*args, **kwargs)
        base = inner.on_step_end

        def on_step_end(args_, state, control, **kw):
            if state.global_step == 2:
                raise RuntimeError("simulated crash")
            return base(args_, state, control, **kw)

        inner.on_step_end = on_step_end
        return inner

    out = work / "branch_crash"
    monkeypatch.setattr(rl, "branch_callback", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        rl.main(rl_argv(work / "rl.json", sft_dir, rl_parquet, bench, out))
    partial = out.with_name(f".{out.name}.partial")
    assert [p.name for p in (partial / ".trainer").glob("checkpoint-*")] == ["checkpoint-1"]
    monkeypatch.setattr(rl, "branch_callback", original)
    assert rl.main(rl_argv(work / "rl.json", sft_dir, rl_parquet, bench, out)) == 0
    for name in ("model/model.safetensors", "curve.csv", "train_log.jsonl"):
        assert (out / name).read_bytes() == (branch / name).read_bytes(), name


@pytest.mark.parametrize("kill", ["at_save", (0.05, 0.5), (0.5, 0.85)])
def test_rl_branch_killed_at_any_moment_reruns_to_the_same_bytes(work, branch, sft_dir, bench, rl_parquet, kill):
    """kill -9 of the DAPO branch (refill on) between the trainer's save of its last checkpoint and that
    checkpoint's branch state (the rerun resumes from the one before), or at a seeded random moment of its
    training (one in each half of the uninterrupted run's training time); the rerun ends with the
    uninterrupted branch's bytes."""
    from plasticity.train import rl

    rng = random.Random(f"dapo-{kill}")
    out = work / f"branch_kill_{kill if kill == 'at_save' else kill[0]}"
    argv = rl_argv(work / "rl.json", sft_dir, rl_parquet, bench, out)
    where = kill_rl_stage(argv, out, at_save=2) if kill == "at_save" else \
        kill_rl_stage(argv, out, after_s=rng.uniform(*kill) * TRAINING_S["branch"])
    assert not out.exists()
    print(f"killed {where}")
    assert rl.main(argv) == 0, where
    for name in ("model/model.safetensors", "curve.csv", "train_log.jsonl"):
        assert (out / name).read_bytes() == (branch / name).read_bytes(), f"{name} differs after a kill {where}"


def test_rl_branch_from_the_base_with_grpo(work, base_dir, bench, rl_parquet):
    from plasticity.train import rl

    rl_cfg = {**RL, "method": "grpo", "steps": 1, "eval_every": 5, "sft_data": "none", "switch": 0,
              "reward": "released"}
    del rl_cfg["max_gen_rounds"]
    cfg = write_json_file(work / "rl_base.json", {"seed": SEED, "model_name": "micro", "model": MICRO_MODEL, "rl": rl_cfg,
                                         "regimes": REGIMES, "eval": EVAL})
    out = work / "branch_base"
    assert rl.main(rl_argv(cfg, base_dir, rl_parquet, bench, out)) == 0
    with open(out / "curve.csv", newline="") as fh:
        assert sorted({int(r["rl_step"]) for r in csv.DictReader(fh)}) == [0, 1]
    info = read_json(out / "branch.json")
    assert (info["resolved_step"], info["method"], info["start_dir"]) == (0, "grpo", str(base_dir))
    # GRPO has no group filter: every prompt of its one round is trained on
    row = json.loads((out / "train_log.jsonl").read_text())
    assert (row["train_prompts"], row["gen_rounds"], row["grading_errors"]) == (2, 1, 0)
    reward = read_json(out / "manifest.json")["reward"]
    assert (reward["mode"], reward["order"]) == ("released", "reward")   # the study's reward, as configured


def test_path_source_checks_sha256_then_copies(work, base_dir, tmp_path):
    import shutil

    from plasticity import models
    from plasticity.io import sha256_tree
    from plasticity.train import pretrain

    local = tmp_path / "local_model"
    shutil.copytree(base_dir, local, ignore=shutil.ignore_patterns("manifest.json"))
    spec = {"source": "path", "path": str(local), "sha256": sha256_tree(local), "trust_remote_code": False}
    cfg = write_json_file(tmp_path / "cfg.json", {"seed": SEED, "model_name": "local", "model": spec})
    assert models.main(["--config", str(cfg), "--out", str(tmp_path / "tok")]) == 0
    assert pretrain.main(["--config", str(cfg), "--tokenizer", str(tmp_path / "tok"),
                          "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == (base_dir / "model.safetensors").read_bytes()

    bad = write_json_file(tmp_path / "bad.json", {"seed": SEED, "model_name": "local", "model": {**spec, "sha256": "0" * 64}})
    with pytest.raises(ValueError, match="does not match the pinned"):
        pretrain.main(["--config", str(bad), "--tokenizer", str(tmp_path / "tok"), "--out", str(tmp_path / "m2")])
    assert not (tmp_path / "m2").exists()


def test_config_overrides_replace_keys_of_the_written_config(base_dir, tmp_path):
    """LUFFY's recipe on Qwen2.5-Math-7B widens its context (rope_theta, max_position_embeddings of its hub
    config): the base stage writes the pinned model with such keys replaced and its weights untouched."""
    import shutil

    from plasticity import models
    from plasticity.io import sha256_tree
    from plasticity.train import pretrain

    local = tmp_path / "local_model"
    shutil.copytree(base_dir, local, ignore=shutil.ignore_patterns("manifest.json"))
    spec = {"source": "path", "path": str(local), "sha256": sha256_tree(local), "trust_remote_code": False,
            "config_overrides": {"attention_dropout": 0.5, "max_position_embeddings": 320}}
    cfg = write_json_file(tmp_path / "cfg.json", {"seed": SEED, "model_name": "local", "model": spec})
    assert models.main(["--config", str(cfg), "--out", str(tmp_path / "tok")]) == 0
    assert pretrain.main(["--config", str(cfg), "--tokenizer", str(tmp_path / "tok"), "--out", str(tmp_path / "m")]) == 0
    written, source = read_json(tmp_path / "m" / "config.json"), read_json(local / "config.json")
    assert (written["attention_dropout"], written["max_position_embeddings"]) == (0.5, 320)
    assert {k: v for k, v in written.items() if k not in spec["config_overrides"]} == \
        {k: v for k, v in source.items() if k not in spec["config_overrides"]}
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == (local / "model.safetensors").read_bytes()
    bad = write_json_file(tmp_path / "bad.json", {"seed": SEED, "model_name": "local", "model": {
        **spec, "config_overrides": {"rope_thetta": 1.0}}})
    with pytest.raises(ValueError, match=r"\['rope_thetta'\] are not keys of"):
        pretrain.main(["--config", str(bad), "--tokenizer", str(tmp_path / "tok"), "--out", str(tmp_path / "m2")])
    assert not (tmp_path / "m2").exists()
