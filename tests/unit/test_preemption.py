"""Preemption through the launcher the profiles use: two processes under ``python -m plasticity.launch``,
SIGTERM to the launcher mid-run, exit 143, rerun: the same bytes as an uninterrupted run (SFT and RL).

The launcher passes the signal to accelerate's agent and workers once, lets them save at the next
step boundary (the agent would kill them ``--grace`` seconds later) and waits for every one of them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from plasticity.io import is_complete, read_json
from train_builders import (EVAL, MICRO_MODEL, REGIMES, RL, SEED, SFT, benchmarks, micro_base, rl_prompts,
                            tokenized, trajectories, write_json_file)

pytestmark = pytest.mark.slow

LAUNCH = {"processes_per_node": 2, "strategy": "ddp"}
SFT_P = {**SFT, "steps": 10, "save_steps": [4, 10], "micro_batch_size": 4, "launch": LAUNCH}
RL_P = {**RL, "method": "dapo_dc", "max_gen_rounds": 1, "prompts_per_step": 4, "num_generations": 4,
        "micro_batch_size": 8, "lr": 1.0e-3, "steps": 6, "eval_every": 3, "save_every": 50, "sft_data": "none",
        "switch": 0, "launch": LAUNCH}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("preempt")
    micro_base(work)
    tokenized(work, "train", trajectories(96, 1))
    tokenized(work, "val", trajectories(12, 2))
    pq.write_table(rl_prompts(32, 3), work / "rl.parquet")
    benchmarks(work / "bench")
    write_json_file(work / "sft.json", {"seed": SEED, "model_name": "micro", "model": MICRO_MODEL, "sft": SFT_P,
                                        "regimes": REGIMES})
    write_json_file(work / "rl.json", {"seed": SEED, "model_name": "micro", "model": MICRO_MODEL, "rl": RL_P,
                                       "regimes": REGIMES, "eval": EVAL})
    return work


def _stage(work: Path, stage: str, out: str) -> list[str]:
    if stage == "sft":
        return ["sft", "--config", str(work / "sft.json"), "--base", str(work / "base"),
                "--train", str(work / "tokens/train/128"), "--val", str(work / "tokens/val/128"), "--out", str(work / out)]
    return ["rl", "--config", str(work / "rl.json"), "--start-from", str(work / "base"), "--prompts",
            str(work / "rl.parquet"), "--benchmarks", str(work / "bench"), "--out", str(work / out)]


def _launch(work: Path, stage: str, out: str, *, stop_when: str | None = None) -> tuple[int, str]:
    """Run the stage on two processes under the launcher; with ``stop_when``, send the launcher SIGTERM
    once that text appears in its output. Returns (exit code, output)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "plasticity.launch", "--procs", "2", "--strategy", "ddp", "--grace", "120", "--",
           *_stage(work, stage, out)]
    proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, sent = [], False
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        lines.append(line)
        if stop_when and not sent and stop_when in line:
            proc.send_signal(signal.SIGTERM)
            sent = True
        assert time.monotonic() < deadline, "".join(lines[-50:])
    code = proc.wait(timeout=120)
    return code, "".join(lines)


@pytest.mark.parametrize("stage,stop_when,files", [
    ("sft", "exported", ("checkpoint-10/model.safetensors", "checkpoint-4/model.safetensors", "val_loss.json")),
    ("rl", "rl step 0:", ("model/model.safetensors", "curve.csv", "train_log.jsonl")),
])
def test_sigterm_to_the_launcher_saves_and_the_rerun_matches_an_uninterrupted_run(work, stage, stop_when, files):
    code, log = _launch(work, stage, f"{stage}_whole")
    assert code == 0, log[-4000:]
    code, log = _launch(work, stage, f"{stage}_stopped", stop_when=stop_when)
    assert code == 143, log[-4000:]
    assert "passed to the workers" in log and "stopped on SIGTERM" in log, log[-6000:]
    partial = work / f".{stage}_stopped.partial"
    assert not is_complete(work / f"{stage}_stopped") and partial.is_dir()
    saved = sorted((partial / (".resume" if stage == "sft" else ".trainer")).glob("checkpoint-*"))
    assert saved, "nothing was saved on SIGTERM"
    step = int(saved[-1].name.split("-")[1])
    code, log = _launch(work, stage, f"{stage}_stopped")
    assert code == 0, log[-4000:]
    assert f"checkpoint-{step}" in log   # resumed from the checkpoint saved on SIGTERM
    for name in files:
        assert (work / f"{stage}_stopped" / name).read_bytes() == (work / f"{stage}_whole" / name).read_bytes(), name
    if stage == "sft":
        assert read_json(work / "sft_stopped" / "train_stats.json")["world_size"] == 2
