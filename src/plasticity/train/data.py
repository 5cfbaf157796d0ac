"""Datasets for the trainers, all as chat-formatted (prompt, completion) pairs.

Every prompt goes through ``models.chat_prompt`` so pretraining, SFT, RL and evaluation see the same
template. Completions carry no EOS: trl's SFTTrainer appends it for prompt/completion data.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Iterable

from plasticity import schema
from plasticity.models import chat_prompt
from plasticity.problems import sample_problem

PRETRAIN_LEVELS = (2, 3, 4, 5, 6)


def read_table(path: str | Path, table_schema: Any) -> Any:
    """Read a parquet file and check it against its declared schema (extra columns allowed)."""
    import pyarrow.parquet as pq

    return schema.validate(pq.read_table(str(path)), table_schema, str(path), allow_extra=True)


def pretrain_pairs(tokenizer: Any, examples: int, seed: int, levels: Iterable[int] = PRETRAIN_LEVELS,
                   exclude: Iterable[str] = ()) -> dict[str, list[str]]:
    """``examples`` problem -> direct-answer pairs (``7-3+5=`` -> ``\\boxed{9}``), levels drawn uniformly.

    Prompts in ``exclude`` (e.g. benchmark problems) are redrawn, so the base never sees them.
    """
    rng = random.Random(seed)
    levels, banned = tuple(levels), set(exclude)
    prompts, completions = [], []
    while len(prompts) < examples:
        problem = sample_problem(rng, rng.choice(levels))
        if problem.prompt in banned:
            continue
        prompts.append(chat_prompt(tokenizer, problem.prompt))
        completions.append(problem.direct())
    return {"prompt": prompts, "completion": completions}


def trajectory_pairs(tokenizer: Any, path: str | Path) -> dict[str, list[str]]:
    """(chat prompt, response) pairs of a schema.TRAJECTORY parquet file, in file order."""
    table = read_table(path, schema.TRAJECTORY)
    prompts = [chat_prompt(tokenizer, p) for p in table.column("prompt").to_pylist()]
    return {"prompt": prompts, "completion": table.column("response").to_pylist()}


def rl_prompts(tokenizer: Any, path: str | Path) -> dict[str, list[str]]:
    """(chat prompt, reference answer) rows of a schema.RL_PROMPT parquet file, in file order."""
    table = read_table(path, schema.RL_PROMPT)
    prompts = [chat_prompt(tokenizer, p) for p in table.column("prompt").to_pylist()]
    return {"prompt": prompts, "reference_answer": table.column("reference_answer").to_pylist()}


def to_dataset(columns: dict[str, list[Any]]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict(columns)
