"""Difficulty: per-prompt win rates of the reference model, from release metadata or by sampling.

Reads:  IN/{trajectories,rl_matched,rl_prompts}.parquet (the decontaminate stage's output) and the
        config section ``data.difficulty`` {source: metadata | sample, samples: N, model, ...}.
Writes: OUT/ the same three tables (win rates filled in when sampling), OUT/ledger.parquet (empty:
        this stage drops nothing) and OUT/manifest.json (how many rows have a known win rate).

Run by hand:
    python -m plasticity difficulty --config difficulty.json --in results/data/decontaminated \
        --out results/data/difficulty [--model REFERENCE_MODEL_DIR]

``metadata``: the release already carries the win rates (AM-40M's pass_rate_* columns were mapped
to win_rate_* at ingest), so the tables pass through unchanged; rows without metadata keep a null
win rate and never enter the easy/hard pools.
``sample``: the reference model (``--model``; the study: DeepSeek-R1-Distill-Qwen-1.5B) answers
each SFT prompt ``samples`` times (N = 4 in the study) and THE grader scores each answer against
the reference; WR = correct / N goes to ``column`` (default win_rate_small). Generation is the
evaluation's own (``plasticity.eval.generate``: same chat template, same prompt encoding): vLLM
(``backend: vllm``, GPU) or transformers (CPU), seeded from the config seed and the batch index.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from plasticity.data.decontaminate import TABLES
from plasticity.data.tables import InputDigests, Ledger, TableWriter, iter_batches, num_rows
from plasticity.io import atomic_path, write_manifest

STAGE = "difficulty"
WIN_RATE_COLUMNS = ("win_rate_small", "win_rate_mid", "win_rate_teacher")
Sampler = Callable[[list[str], int, int], list[list[str]]]   # (prompts, n, seed) -> n completions each
GradeFn = Callable[[list[str], list[str]], Any]


def transformers_sampler(model_dir: str | Path, *, temperature: float = 0.7, max_new_tokens: int = 1024,
                         batch_size: int = 16) -> Sampler:
    """CPU (or single-GPU) sampler: the evaluation's transformers backend, chat-templated prompts."""
    import torch

    from plasticity.eval.generate import SamplingConfig, generate_transformers
    from plasticity.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(model_dir, device="cuda" if torch.cuda.is_available() else "cpu")

    def sample(prompts: list[str], n: int, seed: int) -> list[list[str]]:
        sampling = SamplingConfig(temperature=temperature, max_new_tokens=max_new_tokens, n=n, seed=seed)
        return [[c.text for c in group] for group in generate_transformers(model, tokenizer, prompts, sampling,
                                                                           batch_size)]

    return sample


def vllm_sampler(model_dir: str | Path, *, temperature: float = 0.7, max_new_tokens: int = 1024,
                 seed: int = 0) -> Sampler:
    """GPU sampler: the evaluation's vLLM backend, one engine, ``n`` samples per prompt in one request."""
    from plasticity.eval.generate import SamplingConfig, generate_vllm, load_vllm

    llm = load_vllm(model_dir, seed=seed)

    def sample(prompts: list[str], n: int, batch_seed: int) -> list[list[str]]:
        sampling = SamplingConfig(temperature=temperature, max_new_tokens=max_new_tokens, n=n, seed=batch_seed)
        return [[c.text for c in group] for group in generate_vllm(model_dir, prompts, sampling, llm=llm)]

    return sample


def _sampled(batch: pa.RecordBatch, column: str, n: int, sampler: Sampler, grade: GradeFn,
             seed: int) -> pa.Table:
    prompts = batch.column("prompt").to_pylist()
    references = batch.column("reference_answer").to_pylist()
    completions = sampler(prompts, n, seed)
    flat = [c for group in completions for c in group]
    verdicts = grade(flat, [r or "" for r, group in zip(references, completions) for _ in group])
    rates, at = [], 0
    for group in completions:
        rates.append(sum(v.correct for v in verdicts[at:at + len(group)]) / len(group))
        at += len(group)
    table = pa.Table.from_batches([batch])
    return table.set_column(table.schema.get_field_index(column), column, pa.array(rates, pa.float64()))


def run(cfg: dict[str, Any], in_dir: str | Path, out: str | Path, *, seed: int = 0,
        model_dir: str | Path | None = None, sampler: Sampler | None = None,
        grade: GradeFn | None = None, threads: int = 1) -> dict[str, Any]:
    """Fill the difficulty of ``in_dir``'s tables into ``out``; sampling grades on ``threads`` CPUs."""
    from tqdm import tqdm

    in_dir = Path(in_dir)
    source = cfg.get("source", "metadata")
    if source not in ("metadata", "sample"):
        raise ValueError(f"difficulty.source must be metadata or sample, got {source!r}")
    column = cfg.get("column", "win_rate_small")
    if column not in WIN_RATE_COLUMNS:
        raise ValueError(f"difficulty.column must be one of {WIN_RATE_COLUMNS}, got {column!r}")
    n = int(cfg.get("samples", 4))
    grader = None
    if source == "sample":
        if sampler is None:
            if model_dir is None:
                raise ValueError("difficulty.source = sample needs a reference model (--model DIR)")
            options = {"temperature": float(cfg.get("temperature", 0.7)),
                       "max_new_tokens": int(cfg.get("max_new_tokens", 1024))}
            sampler = (vllm_sampler(model_dir, seed=seed, **options) if cfg.get("backend") == "vllm"
                       else transformers_sampler(model_dir, **options))
        if grade is None:
            from plasticity.grading import Grader

            grader = Grader(mode=cfg.get("grader_mode", "strict"), workers=max(1, threads))
            grade = grader.grade_many
    counts: dict[str, Any] = {"source": source, "tables": {}}
    try:
        digests = InputDigests({"in": in_dir})
        with atomic_path(out) as tmp:
            Ledger(tmp / "ledger.parquet", STAGE).close()
            for name, schema in TABLES:
                known, rows = 0, 0
                sample_here = source == "sample" and column in schema.names
                with TableWriter(tmp / name, schema) as writer, \
                        tqdm(total=num_rows(in_dir / name), desc=f"difficulty {name}", unit="rows",
                             mininterval=2.0, leave=False) as bar:
                    for index, batch in enumerate(iter_batches(in_dir / name, schema,
                                                               batch_size=256 if sample_here else 4096)):
                        table = (_sampled(batch, column, n, sampler, grade, seed + index) if sample_here
                                 else pa.Table.from_batches([batch]))
                        writer.add_table(table)
                        rows += table.num_rows
                        if column in schema.names:
                            known += table.num_rows - table.column(column).null_count
                        bar.update(batch.num_rows)
                counts["tables"][name] = {"in": rows, "kept": writer.count, "dropped": 0,
                                          **({f"{column}_known": known} if column in schema.names else {})}
            write_manifest(tmp, stage=STAGE, config=cfg, seed=seed,
                           extra={"inputs": digests.manifest_inputs(), "counts": counts})
    finally:
        if grader is not None:
            grader.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plasticity difficulty", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help='JSON: {"seed": int, "difficulty": {...}}')
    parser.add_argument("--in", dest="in_dir", required=True, help="the decontaminate stage's output")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--model", default=None, help="reference model directory (source: sample)")
    parser.add_argument("--threads", type=int, default=1, help="CPUs to use (the rule's {threads}; default 1)")
    args = parser.parse_args(argv)
    from plasticity.data.tables import load_stage_config

    seed, cfg = load_stage_config(args.config, "difficulty")
    counts = run(cfg, args.in_dir, args.out, seed=seed, model_dir=args.model, threads=args.threads)
    print(json.dumps({"stage": STAGE, **counts["tables"]}))
    return 0
