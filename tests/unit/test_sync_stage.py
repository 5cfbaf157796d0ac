"""The rl stage running synchronized methods on a tiny model: a branch with expert rows, its resume
from a checkpoint, and a two-process (gloo) run."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plasticity import schema
from plasticity.io import is_complete, read_json, write_manifest
from plasticity.problems import problem_id, sample_problem
from train_builders import kill_rl_stage, timed_rl_run

ROOT = Path(__file__).resolve().parents[2]
TRAINING_S: dict[str, float] = {}   # the uninterrupted LUFFY branch's seconds of training (random kills' range)
SEED = 5
MODEL = {"source": "tiny", "trust_remote_code": False,   # the section's record; the start is tiny_model_dir
         "arch": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                  "intermediate_size": 64, "max_position_embeddings": 96},
         "pretrain": {"steps": 1, "batch_size": 1, "lr": 1.0e-3, "warmup_steps": 0, "examples": 1}}
EVAL = {"benchmarks": ["mini_gsm8k"], "backend": "transformers",
        "sampling": {"temperature": 0.7, "top_p": 1.0, "max_new_tokens": 8},
        "samples": {"default": 1}, "batch_size": 64, "grader": {"mode": "strict", "timeout_s": 5, "workers": 1}}
RL = {"steps": 2, "lr": 1.0e-4, "warmup_steps": 0, "prompts_per_step": 2, "num_generations": 4, "temperature": 1.0,
      "max_completion_length": 12, "eval_every": 2, "save_every": 1, "precision": "fp32", "sft_data": "none",
      "switch": 0, "prompts": "mix"}


# torchrun's own argument parser would take the stage's --start for an abbreviation of its --start-method,
# so the stage's arguments are handed to it after parsing
TORCHRUN = """import sys
from torch.distributed.run import parse_args, run
args = parse_args(["--standalone", "--nproc_per_node", "2", "-m", "plasticity", "rl"])
args.training_script_args = ["rl", *sys.argv[1:]]
run(args)
"""


def _mix(path: Path, n: int) -> Path:
    rng = random.Random(SEED)
    rows = []
    for i in range(n):
        p = sample_problem(rng, 2)
        rows.append({"problem_id": problem_id("m", p.prompt), "source": "sim", "source_file": "f", "source_row": i,
                     "prompt": p.prompt, "reference_answer": p.answer, "difficulty": None,
                     "response": f"\\boxed{{{p.answer}}}"})
    pq.write_table(pa.Table.from_pylist(rows, schema=schema.MIX), path)
    return path


def _bench(directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    rng = random.Random(11)
    rows = [{"problem_id": f"b{i}", "benchmark": "mini_gsm8k", "role": "gsm8k", "prompt": p.prompt, "answer": p.answer}
            for i, p in enumerate(sample_problem(rng, 2) for _ in range(4))]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema.BENCHMARK), directory / "mini_gsm8k.parquet")
    write_manifest(directory, stage="benchmarks")
    return directory


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    work = tmp_path_factory.mktemp("sync")
    return work, _mix(work / "mix.parquet", 8), _bench(work / "bench")


def _argv(work: Path, method: str, start: Path, mix: Path, bench: Path, out: Path, **rl) -> list[str]:
    cfg = work / f"{method}.json"
    cfg.write_text(json.dumps({"seed": SEED, "model_name": "tiny", "model": MODEL, "rl": {**RL, **rl, "method": method},
                               "regimes": {"delta": 0.02, "delta2": 0.10}, "eval": EVAL}))
    return ["--config", str(cfg), "--start", str(start), "--prompts", str(mix), "--benchmarks", str(bench),
            "--experts", str(mix), "--out", str(out)]


@pytest.fixture(scope="module")
def luffy_branch(inputs, tiny_model_dir):
    from plasticity.train import rl

    work, mix, bench = inputs
    out = work / "luffy"
    TRAINING_S["luffy"] = timed_rl_run(rl.main, _argv(work, "luffy", tiny_model_dir, mix, bench, out))
    return out


def test_luffy_branch_logs_on_and_off_policy_lengths(luffy_branch):
    assert is_complete(luffy_branch)
    log = [json.loads(line) for line in (luffy_branch / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    for row in log:
        assert row["group"] == 3 and row["off_policy"] == 1 and row["mean_offpolicy_tokens"] > 0
        assert row["x_ef"] > 0 and row["experts_cut"] == 0
    manifest = read_json(luffy_branch / "manifest.json")
    assert manifest["experts"] == 8 and "experts" in manifest["inputs"]


def test_sync_branch_resumes_from_its_last_checkpoint(inputs, tiny_model_dir, luffy_branch, monkeypatch):
    """A LUFFY branch stopped by SIGTERM after step 1 (checkpoint, exit 143) resumes there and ends
    byte-identical to the uninterrupted one."""
    from plasticity.train import rl

    work, mix, bench = inputs

    class NoticeAtOnce(rl.Preemption):   # the scheduler's SIGTERM, already received at the first step
        def __init__(self):
            super().__init__()
            self.received = True

    out = work / "luffy_stopped"
    monkeypatch.setattr(rl, "Preemption", NoticeAtOnce)
    with pytest.raises(SystemExit) as stop:
        rl.main(_argv(work, "luffy", tiny_model_dir, mix, bench, out))
    assert stop.value.code == rl.SIGTERM_EXIT
    partial = out.with_name(f".{out.name}.partial")
    assert [p.name for p in (partial / ".trainer").glob("checkpoint-*")] == ["checkpoint-1"]
    monkeypatch.undo()
    assert rl.main(_argv(work, "luffy", tiny_model_dir, mix, bench, out)) == 0
    for name in ("model/model.safetensors", "curve.csv", "train_log.jsonl"):
        assert (out / name).read_bytes() == (luffy_branch / name).read_bytes(), name


@pytest.mark.parametrize("kill", ["at_save", "random"])
def test_sync_branch_killed_at_any_moment_reruns_to_the_same_bytes(inputs, tiny_model_dir, luffy_branch, kill):
    """kill -9 of a LUFFY branch between the trainer's save of its last checkpoint and its branch state (the
    rerun resumes from the one before), or at a seeded random moment of the second half of its training;
    the rerun ends with the uninterrupted branch's bytes."""
    from plasticity.train import rl

    work, mix, bench = inputs
    rng = random.Random(f"luffy-{kill}")
    out = work / f"luffy_kill_{kill}"
    argv = _argv(work, "luffy", tiny_model_dir, mix, bench, out)
    where = kill_rl_stage(argv, out, at_save=2) if kill == "at_save" else \
        kill_rl_stage(argv, out, after_s=rng.uniform(0.5, 0.85) * TRAINING_S["luffy"])
    print(f"killed {where}")
    assert rl.main(argv) == 0, where
    for name in ("model/model.safetensors", "curve.csv", "train_log.jsonl"):
        assert (out / name).read_bytes() == (luffy_branch / name).read_bytes(), f"{name} differs after a kill {where}"


@pytest.mark.parametrize("method", ["srft", "upt", "chord"])
def test_branches_with_an_sft_term_log_it(inputs, tiny_model_dir, method):
    from plasticity.train import rl

    work, mix, bench = inputs
    out = work / f"{method}_sft"
    sync = {"chord_mu_warmup_steps": 0, "chord_mu_decay_steps": 1, "chord_mu_peak": 0.3, "chord_mu_valley": 0.3}
    assert rl.main(_argv(work, method, tiny_model_dir, mix, bench, out, eval_every=5, sync=sync)) == 0
    # step 1 (not an evaluation step: there the trainer's metrics are logged as evaluation metrics)
    row = json.loads((out / "train_log.jsonl").read_text().splitlines()[0])
    assert row["sft_loss"] > 0 and row["x_ef"] > 0
    if method == "upt":   # each prompt trains its G rollouts or, unsolved, its expert row alone
        assert row["group"] == 4 and row["n_on"] / 4 + row["n_off"] == pytest.approx(1.0)
        assert row["n_off"] > 0   # the random tiny model solves next to nothing
    else:
        assert row["group"] == 3 and row["off_policy"] == 1
    if method == "chord":
        assert row["mu"] == 0.3


def test_sync_method_without_experts_is_a_clear_error(inputs, tiny_model_dir):
    from plasticity.train import rl

    work, mix, bench = inputs
    argv = _argv(work, "upt", tiny_model_dir, mix, bench, work / "upt_no_experts")
    del argv[argv.index("--experts"):argv.index("--experts") + 2]
    with pytest.raises(ValueError, match="give --experts"):
        rl.main(argv)


def test_two_process_prefix_rft_run(inputs, tiny_model_dir):
    """torchrun, 2 CPU processes (gloo): each generates its share of the groups, hybrid rows included."""
    work, mix, bench = inputs
    out = work / "prefix_two"
    argv = _argv(work, "prefix_rft", tiny_model_dir, mix, bench, out, steps=1, eval_every=5)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run([sys.executable, "-c", TORCHRUN, *argv], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert is_complete(out) and read_json(out / "manifest.json")["world_size"] == 2
    row = json.loads((out / "train_log.jsonl").read_text())
    assert row["train_prompts"] == 2 and row["group"] == 4
