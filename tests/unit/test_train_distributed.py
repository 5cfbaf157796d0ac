"""SFT and RL under ``torchrun --nproc_per_node 2`` (gloo, CPU) against one process with gradient accumulation 2.

The two layouts see the same sequences in every optimizer step (SFT: accelerate's sharded sampler
deals the global batch's micro-batches to the ranks in order; RL: the prompt stream is split by rank
and every group is sampled from its own seed), so the updates differ only in the order fp32 sums are
taken (the gradient all-reduce against accumulation in place): about 1e-7 relative per step. AdamW's
first steps move every weight by about ``lr`` times the sign of its gradient, so rounding alone changes
little, except on weights whose gradient is within rounding of zero, which may step differently. The
bound is 1% of the largest weight change (measured: SFT 0, RL 0.014%); a data-order or
normalisation fault (a rank training on the other's rows, a loss averaged per rank instead of per
token) moves weights by a large share of ``lr`` and fails it by orders of magnitude.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plasticity import schema
from plasticity.io import is_complete, read_json
from train_builders import EVAL, MICRO_MODEL, REGIMES, RL, SEED, SFT, benchmarks, micro_base, rl_argv, rl_prompts, \
    tokenized, trajectories, write_json_file

pytestmark = pytest.mark.slow

SFT_2 = {**SFT, "steps": 4, "save_steps": [2, 4], "micro_batch_size": 4}          # 8 = 2 x 4 either way
# DAPO_dc (no entropy bonus: trl averages it per micro-batch, a layout-dependent term), one round a step
RL_2 = {**RL, "method": "dapo_dc", "max_gen_rounds": 1, "prompts_per_step": 4, "num_generations": 4,
        "micro_batch_size": 8, "lr": 1.0e-3, "steps": 2, "eval_every": 2, "save_every": 1}   # 16 = 2 x 8
# ... and with refill: rounds of 4 prompts (2 per process) until 4 groups are kept, at most 4 rounds a step
RL_REFILL = {**RL_2, "max_gen_rounds": 4, "gen_prompts_per_round": 4}


def _torchrun(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "plasticity", *args]
    done = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _assert_close(one: dict, two: dict, start: dict) -> None:
    moved = max(float((one[k] - start[k]).abs().max()) for k in one)
    diff = max(float((one[k] - two[k]).abs().max()) for k in one)
    print(f"largest weight change {moved:.3e}, largest 1-process vs 2-process difference {diff:.3e}")
    assert moved > 1e-4, "training did not move the weights: the comparison would be empty"
    assert diff <= 0.01 * moved


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("distributed")
    micro_base(work)
    tokenized(work, "train", trajectories(48, 1))
    tokenized(work, "val", trajectories(12, 2))
    benchmarks(work / "bench")
    return work


@pytest.fixture(scope="module")
def boxed_start(work):
    """An RL start that answers ``\\boxed{1}`` often but not always, with RL prompts whose answer is 1.

    The micro model learns no arithmetic in seconds; this gives the RL test groups with 1..G-1 correct,
    so the policy-gradient term (not only the entropy bonus) moves the weights.
    """
    from plasticity.train import sft

    boxed = [{**row, "response": "\\boxed{1}"} for row in trajectories(48, 1).to_pylist()]
    boxed_tokens = tokenized(work, "boxed", pa.Table.from_pylist(boxed, schema=schema.TRAJECTORY))
    pq.write_table(pa.Table.from_pylist([{**row, "reference_answer": "1"} for row in rl_prompts(32, 3).to_pylist()],
                                        schema=schema.RL_PROMPT), work / "rl.parquet")
    cfg = write_json_file(work / "sft_boxed.json", {"seed": SEED, "model_name": "micro", "model": MICRO_MODEL,
                                                    "sft": {**SFT, "steps": 40, "save_steps": [40], "lr": 1.0e-2},
                                                    "regimes": REGIMES})
    assert sft.main(["--config", str(cfg), "--base", str(work / "base"), "--train", str(boxed_tokens),
                     "--val", str(boxed_tokens), "--out", str(work / "sft_boxed")]) == 0
    return work / "sft_boxed"


def _sft_argv(work: Path, out: str, **launch) -> list[str]:
    sft = {**SFT_2, "launch": launch} if launch else SFT_2
    cfg = write_json_file(work / f"{out}.json", {"seed": SEED, "model_name": "micro", "model": MICRO_MODEL,
                                                 "sft": sft, "regimes": REGIMES})
    return ["--config", str(cfg), "--base", str(work / "base"), "--train", str(work / "tokens/train/128"),
            "--val", str(work / "tokens/val/128"), "--out", str(work / out)]


@pytest.fixture(scope="module")
def sft_pair(work):
    from plasticity.train import sft

    assert sft.main(_sft_argv(work, "sft_1proc")) == 0
    done = _torchrun(["sft", *_sft_argv(work, "sft_2proc")], work)
    return work / "sft_1proc", work / "sft_2proc", done.stderr


def test_sft_on_two_processes_equals_one_process_with_accumulation(work, sft_pair):
    one, two, log = sft_pair
    assert is_complete(two) and not list(work.glob(".sft_2proc*"))
    for step in (2, 4):   # the main process alone exported each checkpoint (into the run's partial dir)
        assert log.count(f"exported {work / '.sft_2proc.partial' / f'checkpoint-{step}'} ") == 1
    stats = read_json(two / "train_stats.json")
    assert (stats["world_size"], stats["per_device_batch"], stats["grad_accum"]) == (2, 4, 1)
    assert read_json(one / "train_stats.json")["grad_accum"] == 2
    _assert_close(_weights(one / "checkpoint-4"), _weights(two / "checkpoint-4"), _weights(work / "base"))
    # the distributed validation loss (sums all-reduced over the ranks' shards) is the same number
    for a, b in zip(read_json(one / "val_loss.json")["points"], read_json(two / "val_loss.json")["points"]):
        assert a["step"] == b["step"] and a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)


def test_rl_on_two_processes_equals_one_process_with_accumulation(work, boxed_start):
    from plasticity.train import rl

    one_sft = boxed_start
    cfg = write_json_file(work / "rl2.json", {"seed": SEED, "model_name": "micro", "model": MICRO_MODEL,
                                              "rl": RL_2, "regimes": REGIMES, "eval": EVAL})
    assert rl.main(rl_argv(cfg, one_sft, work / "rl.parquet", work / "bench", work / "rl_1proc")) == 0
    _torchrun(["rl", *rl_argv(cfg, one_sft, work / "rl.parquet", work / "bench", work / "rl_2proc")], work)
    one, two = work / "rl_1proc", work / "rl_2proc"
    assert is_complete(two) and not (two / ".trainer").exists() and not list(work.glob(".rl_2proc*"))
    assert read_json(two / "manifest.json")["world_size"] == 2
    # the same completions: identical lengths per step, as generated and as trained
    logs = [[json.loads(line) for line in (d / "train_log.jsonl").read_text().splitlines()] for d in (one, two)]
    for a, b in zip(*logs):
        assert (a["mean_completion_tokens"], a["train_prompts"]) == (b["mean_completion_tokens"], b["train_prompts"])
    assert 0.0 < logs[0][0]["reward"] < 1.0, "no group with mixed rewards: the policy gradient would be zero"
    start = _weights(one_sft / f"checkpoint-{read_json(one / 'branch.json')['resolved_step']}")
    _assert_close(_weights(one / "model"), _weights(two / "model"), start)
    # the curve holds one evaluation per evaluated step (not one per rank)
    rows = (two / "curve.csv").read_text().splitlines()[1:]
    assert sorted({int(r.split(",")[0]) for r in rows}) == [0, 2]
    assert len(rows) == 2 * 3   # two steps x (two benchmarks + overall)


def test_rl_refill_pools_the_rounds_over_processes(work, boxed_start):
    """Dynamic sampling with refill on two processes keeps what one process keeps (verl's pooled round).

    Planted: every round's first two prompts (process 0's share) ask for 1, which the start answers often
    but not always (mixed groups, kept); the last two (process 1's share) ask for 999, never answered (all
    wrong, dropped). Pooled, a step keeps the round's groups wherever they were generated and needs about
    two rounds, as one process does; a per-process quota would leave process 1 short for all 4 rounds. The
    kept groups of later slots move from process 0 to process 1 to be trained there.
    """
    from plasticity.train import rl
    from plasticity.train.rollouts import PromptStream

    table = rl_prompts(32, 3).to_pylist()
    order = PromptStream(len(table), SEED).take(len(table))   # 2 steps x 4 rounds x 4 prompts: one pass
    for position, index in enumerate(order):
        table[index]["reference_answer"] = "1" if position % 4 < 2 else "999"
    pq.write_table(pa.Table.from_pylist(table, schema=schema.RL_PROMPT), work / "rl_refill.parquet")
    cfg = write_json_file(work / "rl_refill.json", {"seed": SEED, "model_name": "micro", "model": MICRO_MODEL,
                                                    "rl": RL_REFILL, "regimes": REGIMES, "eval": EVAL})
    prompts = work / "rl_refill.parquet"
    assert rl.main(rl_argv(cfg, boxed_start, prompts, work / "bench", work / "refill_1proc")) == 0
    _torchrun(["rl", *rl_argv(cfg, boxed_start, prompts, work / "bench", work / "refill_2proc")], work)
    one, two = work / "refill_1proc", work / "refill_2proc"
    logs = [[json.loads(line) for line in (d / "train_log.jsonl").read_text().splitlines()] for d in (one, two)]
    keys = ("gen_rounds", "train_prompts", "masked_groups", "discarded_groups", "mean_completion_tokens")
    for a, b in zip(*logs):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert [r["gen_rounds"] for r in logs[0]] != [4, 4] and max(r["gen_rounds"] for r in logs[0]) > 1
    assert sum(r["train_prompts"] for r in logs[0]) > 2, "too few kept groups: the exchange would not run"
    start = _weights(boxed_start / f"checkpoint-{read_json(one / 'branch.json')['resolved_step']}")
    _assert_close(_weights(one / "model"), _weights(two / "model"), start)


def _launch(strategy: str, args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "plasticity.launch", "--procs", "2", "--strategy", strategy, "--", *args]
    return subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=600)


def test_accelerate_ddp_launch_equals_one_process(work, sft_pair):
    """The launcher the rules use (accelerate with configs/accelerate/ddp.yaml) on 2 CPU processes."""
    done = _launch("ddp", ["sft", *_sft_argv(work, "sft_accelerate")], work)
    assert done.returncode == 0, done.stderr[-4000:]
    assert read_json(work / "sft_accelerate" / "train_stats.json")["world_size"] == 2
    _assert_close(_weights(sft_pair[0] / "checkpoint-4"), _weights(work / "sft_accelerate" / "checkpoint-4"),
                  _weights(work / "base"))


def test_accelerate_fsdp_on_cpu_processes_is_refused_not_run_as_ddp(work):
    """accelerate 1.15 enables FSDP for accelerator devices only; on CPU it would silently run DDP."""
    done = _launch("fsdp", ["sft", *_sft_argv(work, "sft_fsdp", strategy="fsdp", processes_per_node=2)], work)
    assert done.returncode != 0 and not (work / "sft_fsdp").exists()
    assert "launch.strategy 'fsdp' was configured, but accelerate runs this 2-process job as MULTI_CPU" in done.stderr
