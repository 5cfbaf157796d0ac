"""Builders shared by the training-stage tests: a micro model config, trajectories, RL prompts, benchmarks."""
from __future__ import annotations

import json
import random
from pathlib import Path

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
