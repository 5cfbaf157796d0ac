"""Filter: keep math trajectories of the R1-671B teacher that are correct, well-formed, short enough,
unique, and not RL prompts; keep RL prompts without Chinese (and, if configured, without extreme
difficulty).

Reads:  IN/trajectories.parquet, IN/rl_prompts.parquet (the ingest stage's output), the config
        section ``data.filter`` and the model's tokenizer from TOK_DIR.
Writes: OUT/trajectories.parquet  (schema.TRAJECTORY) the SFT rows kept
        OUT/rl_prompts.parquet    (schema.RL_PROMPT) the RL prompts kept
        OUT/rl_matched.parquet    (``MATCHED`` = TRAJECTORY + response_tokens) SFT rows that passed
                                  every SFT filter but whose prompt is a kept RL prompt: dropped from
                                  the SFT data by the set difference, kept aside as the expert
                                  trajectories of the MIX set (PAPER 2.3)
        OUT/ledger.parquet        one row per dropped row (rl_matched rows are in it too)
        OUT/manifest.json         counts per reason; in = kept + dropped for each table

Run by hand:
    python -m plasticity filter --config filter.json --ingested results/data/ingested \
        --tokenizer results/models/tiny/tokenizer --out results/data/filtered

SFT rows, in this order (cheap checks before the grader; dedup after the quality checks, so a
broken first copy never shadows a good later one):
  not_math        domain not in ``domains`` (default [math])
  other_teacher   teacher not in ``teachers`` (default: the R1-671B names, case-insensitive)
  bad_format      no closed <think> block or no \\boxed{} after it (text.format_problem)
  no_reference    no reference answer to check against
  wrong_answer    the final answer is wrong for the reference, judged by THE grader
                  (plasticity.grading.Grader, mode ``grader_mode``; parallel over ``workers``)
  prompt_too_long / response_too_long   more than max_prompt_tokens / max_response_tokens tokens
                  of the model's tokenizer (raw text, no chat template, no special tokens)
  duplicate_prompt  same prompt after normalisation (whitespace collapsed, case folded) as an
                  earlier kept row: the first by (source order, file, row) is the representative
  in_rl_prompts   the prompt is one of the kept RL prompts (set difference; see rl_matched)
Rows of ``exempt_sources`` (e.g. s1k, whose references are worked solutions and whose set the study
uses as released) skip every check.

RL prompts: chinese_prompt (any Chinese character), extreme_difficulty (``rl_difficulty: [lo, hi]``
configured and difficulty outside it; unknown difficulty is kept), duplicate_prompt.

Token counting is exact, but skipped where it cannot matter: a text of B UTF-8 bytes has at most
B + 1 tokens (every token covers at least one byte, plus at most one prefix-space marker), so a
text with B + 1 <= limit is within the limit without tokenising it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow as pa

from plasticity import schema as S
from plasticity.data.tables import Ledger, TableWriter, iter_batches, num_rows
from plasticity.data.text import format_problem, has_cjk, normalise_prompt
from plasticity.io import atomic_path, write_manifest

STAGE = "filter"
DEFAULT_TEACHERS = ("am-0309", "r1", "deepseek-r1", "deepseek-r1-671b", "r1-671b", "deepseek-reasoner")
MATCHED = S.TRAJECTORY.append(pa.field("response_tokens", pa.int64()))

TokenCounter = Callable[[list[str]], list[int]]
GradeFn = Callable[[list[str], list[str]], Sequence[Any]]   # -> objects with .correct/.extracted/.rule/.reason


def load_token_counter(tokenizer_dir: str | Path) -> TokenCounter:
    """Token counts of raw texts with the model's tokenizer (no special tokens, no template)."""
    from plasticity.models import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)

    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    return count


def _lengths(texts: list[str], limit: int, count: TokenCounter) -> list[int | None]:
    """Exact token counts where the byte bound cannot decide; None where the text surely fits."""
    out: list[int | None] = [None] * len(texts)
    todo = [i for i, t in enumerate(texts) if len(t.encode("utf-8")) + 1 > limit]
    for i, n in zip(todo, count([texts[i] for i in todo])):
        out[i] = n
    return out


def _key(text: str) -> bytes:
    return hashlib.blake2b(normalise_prompt(text).encode("utf-8"), digest_size=16).digest()


def _where(row: dict[str, Any]) -> str:
    return f"{row['source_file']} row {row['source_row']}"


class _SftFilter:
    def __init__(self, cfg: dict[str, Any], grade: GradeFn, count: TokenCounter, rl_keys: set[bytes],
                 ledger: Ledger, kept: TableWriter, matched: TableWriter):
        self.domains = {d.casefold() for d in cfg.get("domains") or ["math"]}
        self.teachers = {t.casefold() for t in cfg.get("teachers") or DEFAULT_TEACHERS}
        self.exempt = set(cfg.get("exempt_sources") or [])
        self.max_prompt, self.max_response = int(cfg["max_prompt_tokens"]), int(cfg["max_response_tokens"])
        self.grade, self.count, self.rl_keys = grade, count, rl_keys
        self.ledger, self.kept, self.matched = ledger, kept, matched
        self.seen: dict[bytes, str] = {}
        self.rows_in = 0

    def drop(self, row: dict[str, Any], reason: str, why: str) -> None:
        self.ledger.drop(row["problem_id"], reason, f"{_where(row)}: {why}")

    def batch(self, rows: list[dict[str, Any]]) -> None:
        self.rows_in += len(rows)
        survivors = []
        for row in rows:
            if row["source"] in self.exempt:
                self.kept.add(row)
                continue
            domain, teacher = (row["domain"] or "").casefold(), (row["teacher"] or "").casefold()
            if domain not in self.domains:
                self.drop(row, "not_math", f"domain {row['domain']!r}")
            elif teacher not in self.teachers:
                self.drop(row, "other_teacher", f"teacher {row['teacher']!r}")
            elif (problem := format_problem(row["response"])) is not None:
                self.drop(row, "bad_format", problem)
            elif not row["reference_answer"]:
                self.drop(row, "no_reference", "no reference answer")
            else:
                survivors.append(row)
        verdicts = self.grade([r["response"][r["response"].rfind("</think>"):] for r in survivors],
                              [r["reference_answer"] for r in survivors]) if survivors else []
        graded = []
        for row, verdict in zip(survivors, verdicts):
            if verdict.correct:
                graded.append(row)
            else:
                why = verdict.reason or f"answer {verdict.extracted!r} != reference {row['reference_answer']!r}"
                self.drop(row, "wrong_answer", f"{why} (rule {verdict.rule})")
        prompt_len = _lengths([r["prompt"] for r in graded], self.max_prompt, self.count)
        response_len = _lengths([r["response"] for r in graded], self.max_response, self.count)
        for row, n_prompt, n_response in zip(graded, prompt_len, response_len):
            if n_prompt is not None and n_prompt > self.max_prompt:
                self.drop(row, "prompt_too_long", f"{n_prompt} > {self.max_prompt} prompt tokens")
                continue
            if n_response is not None and n_response > self.max_response:
                self.drop(row, "response_too_long", f"{n_response} > {self.max_response} response tokens")
                continue
            key = _key(row["prompt"])
            if key in self.seen:
                self.drop(row, "duplicate_prompt", f"same prompt as {self.seen[key]}")
                continue
            self.seen[key] = _where(row)
            if key in self.rl_keys:
                self.drop(row, "in_rl_prompts", "prompt is an RL prompt (kept aside in rl_matched)")
                self.matched.add({**row, "response_tokens": n_response if n_response is not None
                                  else self.count([row["response"]])[0]})
            else:
                self.kept.add(row)


def filter_rl(path: Path, cfg: dict[str, Any], ledger: Ledger, kept: TableWriter) -> tuple[int, set[bytes]]:
    """Filter the RL prompts; return (rows in, normalised-prompt keys of the kept prompts)."""
    bounds = cfg.get("rl_difficulty")
    keys: set[bytes] = set()
    rows_in = 0
    for batch in iter_batches(path, S.RL_PROMPT):
        for row in batch.to_pylist():
            rows_in += 1
            where = _where(row)
            key = _key(row["prompt"])
            if has_cjk(row["prompt"]):
                ledger.drop(row["problem_id"], "chinese_prompt", f"{where}: prompt contains Chinese characters")
            elif bounds and row["difficulty"] is not None and not bounds[0] <= row["difficulty"] <= bounds[1]:
                ledger.drop(row["problem_id"], "extreme_difficulty",
                            f"{where}: difficulty {row['difficulty']} outside [{bounds[0]}, {bounds[1]}]")
            elif key in keys:
                ledger.drop(row["problem_id"], "duplicate_prompt", f"{where}: repeats an earlier RL prompt")
            else:
                keys.add(key)
                kept.add(row)
    return rows_in, keys


def run(cfg: dict[str, Any], ingested: str | Path, out: str | Path, *, tokenizer: str | Path | None = None,
        count_tokens: TokenCounter | None = None, grade: GradeFn | None = None,
        seed: int | None = None) -> dict[str, Any]:
    """Filter ``ingested`` into ``out``. ``count_tokens`` / ``grade`` replace the tokenizer / THE
    grader (tests inject stand-ins); otherwise the tokenizer is loaded from ``tokenizer``."""
    from tqdm import tqdm

    ingested = Path(ingested)
    if count_tokens is None:
        if tokenizer is None:
            raise ValueError("filter: give a tokenizer directory or a count_tokens function")
        count_tokens = load_token_counter(tokenizer)
    grader = None
    if grade is None:
        from plasticity.grading import Grader

        workers = int(cfg.get("workers") or os.cpu_count() or 1)
        grader = Grader(mode=cfg.get("grader_mode", "strict"), workers=workers, timeout_s=5.0)
        grade = grader.grade_many
    try:
        with atomic_path(out) as tmp:
            with Ledger(tmp / "ledger.parquet", STAGE) as ledger, \
                    TableWriter(tmp / "rl_prompts.parquet", S.RL_PROMPT) as rl_kept:
                rl_in, rl_keys = filter_rl(ingested / "rl_prompts.parquet", cfg, ledger, rl_kept)
                rl_counts = {"in": rl_in, "kept": rl_kept.count, "dropped": dict(sorted(ledger.counts.items()))}
                rl_dropped = ledger.total
                with TableWriter(tmp / "trajectories.parquet", S.TRAJECTORY) as kept, \
                        TableWriter(tmp / "rl_matched.parquet", MATCHED) as matched:
                    sft = _SftFilter(cfg, grade, count_tokens, rl_keys, ledger, kept, matched)
                    path = ingested / "trajectories.parquet"
                    with tqdm(total=num_rows(path), desc="filter", unit="rows", mininterval=2.0,
                              leave=False) as bar:
                        for batch in iter_batches(path, S.TRAJECTORY):
                            sft.batch(batch.to_pylist())
                            bar.update(batch.num_rows)
            sft_dropped = {k: v - rl_counts["dropped"].get(k, 0) for k, v in sorted(ledger.counts.items())}
            sft_dropped = {k: v for k, v in sft_dropped.items() if v}
            counts = {
                "sft": {"in": sft.rows_in, "kept": kept.count, "dropped": ledger.total - rl_dropped,
                        "dropped_by_reason": sft_dropped, "rl_matched": matched.count},
                "rl": {"in": rl_in, "kept": rl_kept.count, "dropped": rl_dropped,
                       "dropped_by_reason": rl_counts["dropped"]},
            }
            for name, c in counts.items():
                if c["in"] != c["kept"] + c["dropped"]:
                    raise AssertionError(f"filter {name}: {c['in']} in != {c['kept']} kept + {c['dropped']} dropped")
            write_manifest(tmp, stage=STAGE, config=cfg, seed=seed,
                           inputs={"ingested": ingested, **({"tokenizer": tokenizer} if tokenizer else {})},
                           extra={"counts": counts})
    finally:
        if grader is not None:
            grader.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plasticity filter", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help='JSON: {"seed": int, "filter": {...}}')
    parser.add_argument("--ingested", required=True, help="the ingest stage's output directory")
    parser.add_argument("--tokenizer", required=True, help="directory of the model's tokenizer")
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args(argv)
    from plasticity.data.tables import load_stage_config

    seed, cfg = load_stage_config(args.config, "filter")
    counts = run(cfg, args.ingested, args.out, tokenizer=args.tokenizer, seed=seed)
    print(json.dumps({"stage": STAGE, "sft": {k: counts["sft"][k] for k in ("in", "kept", "dropped")},
                      "rl": {k: counts["rl"][k] for k in ("in", "kept", "dropped")}}))
    return 0
