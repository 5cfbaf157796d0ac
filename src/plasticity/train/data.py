"""Datasets for the trainers, all from chat-formatted (prompt, completion) pairs.

Every prompt goes through ``models.chat_prompt`` so pretraining, SFT, RL and evaluation see the same
template. SFT sets are tokenized once by the ``tokenize`` stage (``train.tokens``: the prompt exactly
as the evaluation encodes it, then the completion and EOS, right-truncated to ``max_length``);
training and the validation loss read the same memory-mapped token ids.
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
    from plasticity import parquet_io

    return schema.validate(parquet_io.read_table(path), table_schema, str(path), allow_extra=True)


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


def rl_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a schema.RL_PROMPT parquet file, in file order, as the RL trainer takes them.

    The prompt is one user turn (conversational): trl renders it with the model's chat template and
    tokenizes the result as one piece, so no second BOS is added (Llama's template writes its own).
    """
    table = read_table(path, schema.RL_PROMPT)
    return [{"prompt": [{"role": "user", "content": p}], "reference_answer": str(a)}
            for p, a in zip(table.column("prompt").to_pylist(), table.column("reference_answer").to_pylist())]


def tokenize_pairs(tokenizer: Any, pairs: dict[str, list[str]], max_length: int) -> tuple[dict[str, list], int]:
    """``({"input_ids", "completion_mask"}, dropped)`` for SFT on a few ``pairs`` held in memory.

    The tokenization is the ``tokenize`` stage's (``train.tokens.encode_batch``): the prompt encoded
    as generation encodes it, the completion + EOS after it, cut to ``max_length`` from the right; a
    pair whose prompt alone fills ``max_length`` is dropped and counted. For whole SFT sets the stage
    writes the same rows as memory-mapped shards instead (``train.tokens.open_tokenized``).
    """
    from plasticity.train.tokens import encode_batch

    batch, dropped, _ = encode_batch(pairs["prompt"], pairs["completion"], tokenizer, max_length)
    columns = batch.to_pydict()
    return {"input_ids": columns["input_ids"], "completion_mask": columns["completion_mask"]}, len(dropped)


def to_dataset(columns: dict[str, list[Any]]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict(columns)


class CompletionCollator:
    """Batches of tokenized rows (``input_ids``, ``completion_mask``) for trl's SFT loss.

    The labels are the input ids with -100 where ``completion_mask`` is 0 (completion-only loss),
    built per micro-batch here rather than by trl's dataset preparation, which would rewrite a
    memory-mapped set into new cache files; padding and padding-free flattening are trl's own
    collator's (``DataCollatorForLanguageModeling``).
    """

    def __init__(self, pad_token_id: int, padding_free: bool):
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.inner = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=padding_free)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        return self.inner([{"input_ids": ex["input_ids"],
                            "labels": [t if m else -100 for t, m in zip(ex["input_ids"], ex["completion_mask"])]}
                           for ex in examples])


def expert_responses(path: str | Path, rows: list[dict[str, Any]], prompts_path: str | Path) -> list[str]:
    """The expert trajectory of each RL row: the ``response`` of a schema.MIX file with the same rows.

    The MIX set is both the prompt table and the expert source of the synchronized methods (the
    MIX37K role), so the two files must list the same prompts in the same order; a mismatch or an
    empty response is an error naming the file, the row and the field.
    """
    table = read_table(path, schema.MIX)
    if table.num_rows != len(rows):
        raise ValueError(f"{path}: {table.num_rows} rows, but the RL prompts {prompts_path} have {len(rows)}")
    out = []
    for i, (prompt, response) in enumerate(zip(table.column("prompt").to_pylist(),
                                               table.column("response").to_pylist())):
        if prompt != rows[i]["prompt"][0]["content"]:
            raise ValueError(f"{path}: row {i}, field 'prompt' differs from row {i} of {prompts_path}")
        if not response or not response.strip():
            raise ValueError(f"{path}: row {i}, field 'response' is empty (no expert trajectory)")
        out.append(response)
    return out
