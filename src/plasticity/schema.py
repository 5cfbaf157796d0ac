"""pyarrow schemas of every table passed between stages (DESIGN.md section 3).

Stages write parquet with exactly these schemas (extra columns are allowed only where noted) and
check them on read with ``validate``, so a contract break fails at the boundary with the file named.
"""
from __future__ import annotations

import pyarrow as pa

# Canonical SFT trajectory row (after ingest). Win rates are per-prompt success fractions of the
# reference models (DeepSeek-R1-Distill-Qwen-1.5B / -7B / R1-671B in the study); null when unknown.
TRAJECTORY = pa.schema([
    ("problem_id", pa.string()),
    ("source", pa.string()),            # dataset the row came from (e.g. am_40m, am_1.4m, s1k)
    ("source_file", pa.string()),       # file the row was read from
    ("source_row", pa.int64()),         # row index inside that file
    ("domain", pa.string()),            # math, code, science, ... (as the release labels it)
    ("teacher", pa.string()),           # generating model as the release names it
    ("prompt", pa.string()),
    ("response", pa.string()),          # <think>...</think> then the answer with \boxed{}
    ("reference_answer", pa.string()),
    ("win_rate_small", pa.float64()),   # WR of the small reference model (1.5B): the difficulty axis
    ("win_rate_mid", pa.float64()),     # WR of the mid reference model (7B)
    ("win_rate_teacher", pa.float64()), # WR of the teacher itself (R1-671B)
])

# RL prompt row (RL62K role); MIX rows add `response` (the matched expert trajectory).
RL_PROMPT = pa.schema([
    ("problem_id", pa.string()),
    ("source", pa.string()),
    ("source_file", pa.string()),
    ("source_row", pa.int64()),
    ("prompt", pa.string()),
    ("reference_answer", pa.string()),
    ("difficulty", pa.float64()),       # release's difficulty metadata normalised to [0, 1]; null if none
])
MIX = RL_PROMPT.append(pa.field("response", pa.string()))

# One row per dropped input row, for every stage that drops rows: in = kept + dropped.
LEDGER = pa.schema([
    ("problem_id", pa.string()),        # null when the row was too broken to get one
    ("stage", pa.string()),
    ("reason", pa.string()),            # short machine-readable reason, e.g. not_math, duplicate_prompt
    ("detail", pa.string()),            # human-readable: file, row, field and what was wrong
    ("file", pa.string()),              # the input file (source/relative path) or table; null if none
    ("row", pa.int64()),                # the row in that file; null for a whole-file entry
    ("field", pa.string()),             # the field concerned (dotted path); null when the whole row
])

# Benchmark problem (one per problem; avg@k repeats generation, not rows).
BENCHMARK = pa.schema([
    ("problem_id", pa.string()),
    ("benchmark", pa.string()),         # registry name, e.g. math500 or mini_math
    ("role", pa.string()),              # the study's key: gsm8k, math, minerva, olympiad_bench, aime, aime25
    ("prompt", pa.string()),
    ("answer", pa.string()),            # the normalised gold (eval.loaders.normalise_gold)
    ("answer_raw", pa.string()),        # the gold as the source file writes it; null when identical
    ("answers", pa.list_(pa.string())), # a multi-answer gold, graded as a set; null or empty otherwise
    ("unit", pa.string()),              # the benchmark's unit of the answer, where it gives one
    ("tolerance", pa.float64()),        # the benchmark's absolute numeric tolerance, where it gives one
])

# One row per generated completion.
GENERATION = pa.schema([
    ("problem_id", pa.string()),
    ("benchmark", pa.string()),
    ("sample_index", pa.int32()),
    ("completion", pa.string()),
    ("finish_reason", pa.string()),     # stop | length
    ("prompt_tokens", pa.int32()),
    ("completion_tokens", pa.int32()),
])

# A graded completion: GENERATION plus the grader's verdict.
SAMPLE = pa.schema(list(GENERATION) + [
    pa.field("answer", pa.string()),
    pa.field("extracted", pa.string()),
    pa.field("correct", pa.bool_()),
    pa.field("rule", pa.string()),      # which rule decided (math_verify, fast_numeric, string, ...)
    pa.field("reason", pa.string()),    # why wrong when no answer could be judged (timeout, ...)
    # MathArena's per-sample flags (eval/score.py): wrong yet the gold is written in the answer part,
    # finish_reason == length, an answer math-verify could not parse
    pa.field("gold_not_extracted", pa.bool_()),
    pa.field("hit_token_limit", pa.bool_()),
    pa.field("parser_error", pa.bool_()),
])

# Accuracy curves, in the layout of reference/sft889k_curves.csv (the study's published curves).
CURVE = pa.schema([
    ("dataset", pa.string()),           # SFT set name (or pure_rl)
    ("branch_step", pa.int64()),        # SFT step the RL branch started from; null for phase=sft
    ("phase", pa.string()),             # sft | rl
    ("x_ef", pa.float64()),             # SFT compute (phase sft) or RL compute since the branch (rl), EF
    ("benchmark", pa.string()),         # role key
    ("accuracy", pa.float64()),         # percent
])


class SchemaError(ValueError):
    """A table does not match its declared schema; the message names the file and the column."""


def validate(table: pa.Table, schema: pa.Schema, where: str, *, allow_extra: bool = False) -> pa.Table:
    """Check ``table`` against ``schema`` (names and types); return it with the schema's column order."""
    names = set(table.column_names)
    missing = [f.name for f in schema if f.name not in names]
    if missing:
        raise SchemaError(f"{where}: missing column(s) {missing}; expected {schema.names}")
    extra = sorted(names - set(schema.names))
    if extra and not allow_extra:
        raise SchemaError(f"{where}: unexpected column(s) {extra}")
    for field in schema:
        actual = table.schema.field(field.name).type
        if actual != field.type and not (pa.types.is_null(actual)):
            raise SchemaError(f"{where}: column {field.name!r} has type {actual}, expected {field.type}")
    cols = schema.names + (extra if allow_extra else [])
    return table.select(cols).cast(pa.schema(list(schema) + [table.schema.field(n) for n in extra]
                                             if allow_extra else schema))
