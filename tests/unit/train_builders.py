"""Builders shared by the training-stage tests: a micro model config, trajectories, RL prompts, benchmarks."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from plasticity import schema
from plasticity.io import is_complete, write_manifest
from plasticity.problems import problem_id, sample_problem

SEED = 7
MICRO_MODEL = {
    "source": "tiny", "trust_remote_code": False,
    "arch": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
             "intermediate_size": 64, "max_position_embeddings": 160},
    "pretrain": {"steps": 5, "batch_size": 8, "lr": 1.0e-3, "warmup_steps": 1, "examples": 100},
}
SFT = {"batch_size": 8, "lr": 1.0e-3, "scheduler": "cosine", "warmup_steps": 1, "weight_decay": 0.0,
       "max_length": 128, "data": "uniform", "steps": 6, "save_steps": [3, 6]}
REGIMES = {"delta": 0.02, "delta2": 0.10}
EVAL = {"benchmarks": ["mini_gsm8k", "mini_math"], "backend": "transformers",
        "sampling": {"temperature": 0.7, "top_p": 1.0, "max_new_tokens": 16},
        "samples": {"default": 1}, "batch_size": 64, "grader": {"mode": "strict", "timeout_s": 5, "workers": 1}}
RL = {"method": "dapo_dc", "steps": 2, "lr": 1.0e-4, "warmup_steps": 0, "prompts_per_step": 2, "num_generations": 4,
      "max_gen_rounds": 3, "temperature": 0.7, "max_completion_length": 16, "eval_every": 2, "save_every": 1,
      "sft_data": "uniform", "switch": "min_val_loss", "prompts": "rl"}


def write_json_file(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def trajectories(n: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        p = sample_problem(rng, rng.randint(2, 6))
        rows.append({"problem_id": problem_id("t", p.prompt), "source": "sim", "source_file": "f", "source_row": i,
                     "domain": "math", "teacher": "r1", "prompt": p.prompt, "response": p.trajectory(),
                     "reference_answer": p.answer, "win_rate_small": None, "win_rate_mid": None,
                     "win_rate_teacher": None})
    return pa.Table.from_pylist(rows, schema=schema.TRAJECTORY)


def micro_base(work: Path) -> Path:
    """The micro model's tokenizer (``work/tok``) and pretrained base (``work/base``), as the stages build them."""
    from plasticity import models
    from plasticity.train import pretrain

    cfg = write_json_file(work / "model.json", {"seed": SEED, "model_name": "micro", "model": MICRO_MODEL})
    assert models.main(["--config", str(cfg), "--out", str(work / "tok")]) == 0
    assert pretrain.main(["--config", str(cfg), "--tokenizer", str(work / "tok"), "--out", str(work / "base")]) == 0
    return work / "base"


def tokenized(work: Path, name: str, table: pa.Table, max_length: int = SFT["max_length"]) -> Path:
    """``table`` (trajectories) written and tokenized with ``work/tok`` as the tokenize stage does for SFT."""
    from plasticity.train import tokens

    out = work / "tokens" / name / str(max_length)
    if not is_complete(out):
        pq.write_table(table, work / f"{name}.parquet")
        cfg = write_json_file(work / f"tokenize-{max_length}.json", {"max_length": max_length})
        assert tokens.main(["--config", str(cfg), "--tokenizer", str(work / "tok"), "--data",
                            str(work / f"{name}.parquet"), "--out", str(out)]) == 0
    return out


def rl_prompts(n: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        p = sample_problem(rng, rng.randint(2, 3))
        rows.append({"problem_id": problem_id("r", p.prompt), "source": "sim", "source_file": "f", "source_row": i,
                     "prompt": p.prompt, "reference_answer": p.answer, "difficulty": None})
    return pa.Table.from_pylist(rows, schema=schema.RL_PROMPT)


def benchmarks(directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    for name, role, levels, seed in (("mini_gsm8k", "gsm8k", (2, 3), 11), ("mini_math", "math", (4, 5), 12)):
        rng = random.Random(seed)
        rows = []
        for _ in range(6):
            p = sample_problem(rng, rng.choice(levels))
            rows.append({"problem_id": problem_id(name, p.prompt), "benchmark": name, "role": role,
                         "prompt": p.prompt, "answer": p.answer})
        pq.write_table(pa.Table.from_pylist(rows, schema=schema.BENCHMARK), directory / f"{name}.parquet")
    write_manifest(directory, stage="benchmarks")
    return directory


def rl_argv(cfg: Path, start: Path, rl_parquet: Path, bench: Path, out: Path) -> list[str]:
    return ["--config", str(cfg), "--start-from", str(start), "--prompts", str(rl_parquet), "--benchmarks", str(bench),
            "--out", str(out)]


# ----------------------------------------------------------------------------- kill -9 and resume

# The rl stage in a child process that SIGKILLs itself right after the trainer saved checkpoint-N and
# before the branch's own state (branch_state.json) joins it: the window a resume must not mistake for a
# complete checkpoint.
_KILL_AT_SAVE = """
import os, signal, sys
from plasticity.train import rl

step, argv = sys.argv[1], sys.argv[2:]
write_json = rl.write_json

def dying_write_json(path, obj):
    if os.path.basename(str(path)) == rl.BRANCH_STATE and os.path.basename(os.path.dirname(str(path))) == f"checkpoint-{step}":
        os.kill(os.getpid(), signal.SIGKILL)
    return write_json(path, obj)

rl.write_json = dying_write_json
sys.exit(rl.main(argv))
"""


TRAINING_STARTS = "rl step 0:"   # the rl stage's log line after the evaluation before the first step


def timed_rl_run(main: Any, argv: list[str]) -> float:
    """Run the rl stage in this process; seconds from its ``rl step 0`` log line (training starts) to its end."""
    import logging
    import time

    logger, started = logging.getLogger("plasticity.train.rl"), []

    class Start(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not started and record.getMessage().startswith(TRAINING_STARTS):
                started.append(time.monotonic())

    handler, level = Start(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        assert main(argv) == 0
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert started, "the stage never logged the start of training"
    return time.monotonic() - started[0]


def kill_rl_stage(argv: list[str], out: Path, *, at_save: int | None = None, after_s: float | None = None) -> str:
    """Run ``python -m plasticity rl ARGV`` in a child process group and kill it with SIGKILL, either
    between the trainer's save of checkpoint-``at_save`` and that checkpoint's ``branch_state.json``, or
    ``after_s`` seconds after its training started (its ``rl step 0`` log line). Returns where it died. A
    stage that finished (or renamed its output) before the kill tested nothing: it is run again with half
    the delay, three times at most, then the test fails."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import threading
    import time

    partial = out.with_name(f".{out.name}.partial")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    if at_save is not None:
        done = subprocess.run([sys.executable, "-c", _KILL_AT_SAVE, str(at_save), *argv], env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
        ckpt = partial / ".trainer" / f"checkpoint-{at_save}"
        assert ckpt.is_dir() and not (ckpt / "branch_state.json").exists()
        return f"between the trainer's save of checkpoint-{at_save} and its branch_state.json"
    for _ in range(3):   # a machine faster than the reference run may finish first: then kill earlier
        proc = subprocess.Popen([sys.executable, "-m", "plasticity", "rl", *argv], env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines, training = [], threading.Event()

        def drain() -> None:   # keep reading: a full pipe would stall the stage
            for line in proc.stderr:
                lines.append(line)
                if TRAINING_STARTS in line:
                    training.set()

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        while not training.wait(0.05):
            assert proc.poll() is None, "".join(lines)[-3000:]
        time.sleep(after_s)
        in_time = proc.poll() is None and not out.exists()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        reader.join(timeout=60)
        if in_time:
            break
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
        after_s /= 2
    assert in_time, f"the stage ended before every kill (last {after_s * 2:.2f} s into training): {''.join(lines)[-2000:]}"
    saved = sorted(p.parent.name for p in (partial / ".trainer").glob("checkpoint-*/branch_state.json"))
    return f"{after_s:.2f} s into training (complete checkpoints: {saved or 'none'})"
