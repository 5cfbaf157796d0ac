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
                  (plasticity.grading.Grader, mode ``grader_mode``; parallel over ``--threads``)
  prompt_too_long / response_too_long   more than max_prompt_tokens / max_response_tokens tokens
                  of the model's tokenizer (raw text, no chat template, no special tokens)
  duplicate_prompt  same prompt after normalisation (whitespace collapsed, case folded) as an
                  earlier kept row: the first by (source order, file, row) is the representative
  in_rl_prompts   the prompt is one of the kept RL prompts (set difference; see rl_matched)
Rows of ``exempt_sources`` (e.g. s1k, whose references are worked solutions and whose set the study
uses as released) skip every check.

RL prompts: chinese_prompt (any Chinese character), extreme_difficulty (``rl_difficulty: [lo, hi]``
configured and difficulty outside it; unknown difficulty is kept), duplicate_prompt.

Token counting is exact, but skipped where it cannot matter, so time and memory are bounded by the
limits, not by the longest row:
  * a text of B UTF-8 bytes has at most B + 1 tokens (every token covers at least one byte, plus
    at most one prefix-space marker), so a text with B + 1 <= limit fits without tokenising it;
  * a text of C characters has at least C / M tokens, where M (``max_chars_per_token``) is the
    most characters one token of the tokenizer can cover, so a text with C > limit * M is too long
    without tokenising it. This character bound is applied with the cheap checks, before the
    grader (grading or tokenising a 50 MB answer is what it avoids; the ledger says
    ``not tokenised``); the texts left to tokenise are at most limit * M characters.

Speed and memory (outputs do not depend on ``--threads``, the CPUs the workflow gave the job):
  * map, then reduce in order: the checks that look at one row alone (domain, teacher, format,
    the grader, token counts, the prompt's dedup key) run on whole row groups of the input in
    ``threads`` forked processes (each with its own grader); this process reads the same row
    groups in order and applies what depends on earlier rows (dedup, the RL set difference),
    the ledger and the writing. A row group is the unit because any process can read it by
    number; the workers send back only small per-row results;
  * tables stay Arrow in this process: kept rows are written with ``TableWriter.add_batch``
    (same row groups as adding the dicts one by one), in a background writer thread;
  * dedup keys are 64-bit digests in ``keys.FirstSeen`` (16 bytes per prompt; the first holder is
    stored as (file number, row), not as a string) and the grader's verdict cache is an LRU of
    ``GRADER_CACHE`` entries, so memory does not grow with the corpus.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pyarrow as pa

from plasticity import schema as S
from plasticity.data.keys import ABSENT, FirstSeen, prompt_key
from plasticity.data.tables import (INTERMEDIATE_COMPRESSION, InputDigests, Ledger, TableWriter, iter_batches,
                                    iter_row_groups, keep_rows, num_row_groups, num_rows, open_table, prefetch,
                                    read_row_group, tune_stage_process)
from plasticity.data.text import format_problem, has_cjk
from plasticity.grading import quote   # ledger details quote at most a few hundred characters of a row
from plasticity.io import atomic_path, write_manifest

STAGE = "filter"
DEFAULT_TEACHERS = ("am-0309", "r1", "deepseek-r1", "deepseek-r1-671b", "r1-671b", "deepseek-reasoner")
MATCHED = S.TRAJECTORY.append(pa.field("response_tokens", pa.int64()))
GRADER_CACHE = 1 << 16           # verdict-cache entries (LRU); a cache hit only saves a math-verify call
_ROW_BITS = 40                   # FirstSeen value = file number << 40 | row (row 2^40 - 1 = no row)
_NO_ROW = (1 << _ROW_BITS) - 1
# The field each drop reason is about (the ledger's ``field`` column).
REASON_FIELD = {"not_math": "domain", "other_teacher": "teacher", "bad_format": "response",
                "no_reference": "reference_answer", "wrong_answer": "response", "prompt_too_long": "prompt",
                "response_too_long": "response", "duplicate_prompt": "prompt", "in_rl_prompts": "prompt",
                "chinese_prompt": "prompt", "extreme_difficulty": "difficulty"}

TokenCounter = Callable[[list[str]], list[int]]
GradeFn = Callable[[list[str], list[str]], Sequence[Any]]   # -> objects with .correct/.extracted/.rule/.reason


def load_token_counter(tokenizer_dir: str | Path) -> TokenCounter:
    """Token counts of raw texts with the model's tokenizer (no special tokens, no template); the
    function carries the tokenizer's ``max_chars_per_token`` (None where no bound is known)."""
    from plasticity.models import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)

    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    count.max_chars_per_token = max_chars_per_token(tokenizer)   # type: ignore[attr-defined]
    return count


# Unicode normalisation can merge code points before tokenising: NFC/NFD compose at most 4 code
# points into one (the longest canonical decomposition), NFKC/NFKD at most 18 (U+FDFA).
_NORMALISER_FACTOR = (("NFK", 18), ("NF", 4))


def max_chars_per_token(tokenizer: Any) -> int | None:
    """The most characters of raw text one token can cover, or None where that is unbounded or unknown.

    Known for byte-level BPE (Qwen, Llama: a vocabulary entry has one character per byte it covers
    and there is no unknown token) and for the character-level tiny tokenizer (every pre-token is
    one character or a vocabulary entry): the longest vocabulary entry, times what the tokenizer's
    Unicode normaliser can merge. Other tokenizers (an unknown token may cover a whole word) get
    no character bound: every text over the byte bound is tokenised.
    """
    from plasticity.models import TINY_CHAT_TEMPLATE

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    byte_level = "ByteLevel" in json.dumps(spec.get("pre_tokenizer"))
    if not byte_level and getattr(tokenizer, "chat_template", None) != TINY_CHAT_TEMPLATE:
        return None
    normaliser = json.dumps(spec.get("normalizer"))
    factor = next((f for name, f in _NORMALISER_FACTOR if name in normaliser), 1)
    return max(len(token) for token in tokenizer.get_vocab()) * factor


def _lengths(texts: list[str], limit: int, count: TokenCounter) -> list[int | None]:
    """Exact token counts where the byte bound cannot decide; None where the text surely fits."""
    out: list[int | None] = [None] * len(texts)
    # A text has at least as many UTF-8 bytes as characters, so only a text with len + 1 <= limit
    # needs its exact byte length (equal to len for ASCII: str.isascii is O(1)).
    todo = [i for i, t in enumerate(texts)
            if len(t) + 1 > limit or (not t.isascii() and len(t.encode("utf-8")) + 1 > limit)]
    for i, n in zip(todo, count([texts[i] for i in todo])):
        out[i] = n
    return out


def _where(row: dict[str, Any]) -> str:
    return f"{row['source_file']} row {row['source_row']}"


@dataclass
class _Checked:
    """What the per-row checks found in one row group, in ledger order (row indices in the group)."""
    exempt: list[bool]
    pre_drops: list[tuple[int, str, str]]           # (row, reason, why) of the checks before the grader
    wrong: list[tuple[int, str]]                    # (row, why) the grader judged wrong
    graded: list[tuple[int, int | None, int | None, int]]   # (row, prompt tokens, response tokens, key)


_CHECK_COLUMNS = ["source", "domain", "teacher", "prompt", "response", "reference_answer"]


class _RowChecker:
    """The SFT checks that look at one row alone (everything but dedup and the RL set difference):
    pure functions of the row, so row groups can be checked in any process and any order."""

    def __init__(self, cfg: dict[str, Any], grade: GradeFn | None, count: TokenCounter, grader_workers: int):
        self.domains = {d.casefold() for d in cfg.get("domains") or ["math"]}
        self.teachers = {t.casefold() for t in cfg.get("teachers") or DEFAULT_TEACHERS}
        self.exempt = set(cfg.get("exempt_sources") or [])
        self.max_prompt, self.max_response = int(cfg["max_prompt_tokens"]), int(cfg["max_response_tokens"])
        self.grader_mode, self.grader_workers = cfg.get("grader_mode", "strict"), grader_workers
        self.count, self._grade, self._grader = count, grade, None
        self.max_chars = getattr(count, "max_chars_per_token", None)

    def grade(self, completions: list[str], references: list[str]) -> Sequence[Any]:
        if self._grade is None:   # THE grader, started in the process that first needs it
            from plasticity.grading import Grader

            self._grader = Grader(mode=self.grader_mode, workers=self.grader_workers, timeout_s=5.0,
                                  cache_size=GRADER_CACHE)
            self._grade = self._grader.grade_many
        return self._grade(completions, references)

    def close(self) -> None:
        if self._grader is not None:
            self._grader.close()

    def __call__(self, table: pa.Table) -> _Checked:
        c = {name: table.column(name).to_pylist() for name in _CHECK_COLUMNS}
        exempt = [s in self.exempt for s in c["source"]]
        pre_drops: list[tuple[int, str, str]] = []
        survivors = []
        for i in range(table.num_rows):
            if exempt[i]:
                continue
            problem = self._pre_check(c, i)
            if problem is None:
                survivors.append(i)
            else:
                pre_drops.append((i, *problem))
        responses = [c["response"][i] for i in survivors]
        references = [c["reference_answer"][i] for i in survivors]
        verdicts = self.grade([r[r.rfind("</think>"):] for r in responses], references) if survivors else []
        wrong, right = [], []
        for k, (i, verdict) in enumerate(zip(survivors, verdicts)):
            if verdict.correct:
                right.append(k)
            else:
                why = verdict.reason or f"answer {quote(verdict.extracted)} != reference {quote(references[k])}"
                wrong.append((i, f"{why} (rule {verdict.rule})"))
        prompt_len = _lengths([c["prompt"][survivors[k]] for k in right], self.max_prompt, self.count)
        response_len = _lengths([responses[k] for k in right], self.max_response, self.count)
        graded = [(survivors[k], n_prompt, n_response, prompt_key(c["prompt"][survivors[k]]))
                  for k, n_prompt, n_response in zip(right, prompt_len, response_len)]
        return _Checked(exempt, pre_drops, wrong, graded)

    def _pre_check(self, c: dict[str, list], i: int) -> tuple[str, str] | None:
        """(reason, why) of the first check before the grader that the row fails, or None."""
        domain, teacher = (c["domain"][i] or "").casefold(), (c["teacher"][i] or "").casefold()
        if domain not in self.domains:
            return "not_math", f"domain {quote(c['domain'][i])}"
        if teacher not in self.teachers:
            return "other_teacher", f"teacher {quote(c['teacher'][i])}"
        if (problem := format_problem(c["response"][i])) is not None:
            return "bad_format", problem
        if not c["reference_answer"][i]:
            return "no_reference", "no reference answer"
        if self.max_chars:
            for name, limit in (("prompt", self.max_prompt), ("response", self.max_response)):
                if len(c[name][i]) > limit * self.max_chars:
                    return (f"{name}_too_long", f"{len(c[name][i])} characters > {limit} tokens x "
                            f"{self.max_chars} characters per token (not tokenised)")
        return None


# The row checker of a worker process: set in the parent just before the pool forks, so injected
# functions (tests, the benchmark's token counter) reach the workers without pickling.
_WORKER_CHECKER: _RowChecker | None = None


def _check_row_group(path: str, group: int) -> _Checked:
    return _WORKER_CHECKER(read_row_group(path, S.TRAJECTORY, group, _CHECK_COLUMNS))


class _CheckPool:
    """Row groups checked in ``workers`` forked processes, results in row-group order.

    Fork is used deliberately: the pool is made before the stage starts any thread, and it lets
    the workers inherit the checker (and its tokenizer) instead of loading or pickling them. Each
    worker starts its own grader (one math-verify process) on first need and closes it on exit.
    """

    def __init__(self, checker: _RowChecker, workers: int):
        import multiprocessing

        global _WORKER_CHECKER
        _WORKER_CHECKER = checker
        self._pool = multiprocessing.get_context("fork").Pool(workers, initializer=_close_checker_at_exit)

    def map(self, path: Path, groups: int) -> Iterator[_Checked]:
        """The checks of every row group of ``path``, in order (the workers run ahead: results are small)."""
        return self._pool.imap(_star_check, [(str(path), g) for g in range(groups)])

    def close(self, ok: bool) -> None:
        if ok:
            self._pool.close()
        else:
            self._pool.terminate()
        self._pool.join()


def _star_check(args: tuple[str, int]) -> _Checked:
    return _check_row_group(*args)


def _close_checker_at_exit() -> None:
    from multiprocessing.util import Finalize

    Finalize(None, _WORKER_CHECKER.close, exitpriority=10)


class _SftFilter:
    """The order-dependent part of the SFT checks (dedup, RL set difference) and the writing, one
    row group at a time in file order, given what ``_RowChecker`` found in that group."""

    def __init__(self, count: TokenCounter, rl_keys: set[int], max_prompt: int, max_response: int,
                 ledger: Ledger, kept: TableWriter, matched: TableWriter):
        self.count, self.rl_keys = count, rl_keys
        self.max_prompt, self.max_response = max_prompt, max_response
        self.ledger, self.kept, self.matched = ledger, kept, matched
        self.seen = FirstSeen()
        self.files: dict[str, int] = {}          # source_file -> its number in FirstSeen values
        self.file_names: list[str] = []
        self.rows_in = 0

    # -- the first holder of a prompt, packed into one int ------------------------------------
    def _pack(self, source_file: str, source_row: int | None) -> int:
        number = self.files.setdefault(source_file, len(self.files))
        if number == len(self.file_names):
            self.file_names.append(source_file)
        return number << _ROW_BITS | (_NO_ROW if source_row is None else source_row)

    def _unpack(self, value: int) -> str:
        row = value & _NO_ROW
        return f"{self.file_names[value >> _ROW_BITS]} row {None if row == _NO_ROW else row}"

    # -- one row group -------------------------------------------------------------------------
    def apply(self, table: pa.Table, checked: _Checked) -> None:
        n = table.num_rows
        self.rows_in += n
        c = {name: table.column(name).to_pylist() for name in ("problem_id", "source_file", "source_row")}
        where = [f"{f} row {r}" for f, r in zip(c["source_file"], c["source_row"])]

        def drop(i: int, reason: str, why: str) -> None:
            self.ledger.drop(c["problem_id"][i], reason, f"{where[i]}: {why}", file=c["source_file"][i],
                             row=c["source_row"][i], field=REASON_FIELD[reason])

        for i, reason, why in checked.pre_drops:
            drop(i, reason, why)
        for i, why in checked.wrong:
            drop(i, "wrong_answer", why)
        keep = [False] * n
        frozen = self.seen.lookup_frozen([key for *_, key in checked.graded])
        for (i, n_prompt, n_response, key), first in zip(checked.graded, frozen):
            if n_prompt is not None and n_prompt > self.max_prompt:
                drop(i, "prompt_too_long", f"{n_prompt} > {self.max_prompt} prompt tokens")
                continue
            if n_response is not None and n_response > self.max_response:
                drop(i, "response_too_long", f"{n_response} > {self.max_response} response tokens")
                continue
            first = self.seen.get(key, first)
            if first != ABSENT:
                drop(i, "duplicate_prompt", f"same prompt as {self._unpack(first)}")
                continue
            self.seen.add(key, self._pack(c["source_file"][i], c["source_row"][i]))
            if key in self.rl_keys:
                drop(i, "in_rl_prompts", "prompt is an RL prompt (kept aside in rl_matched)")
                row = table.slice(i, 1).to_pylist()[0]
                self.matched.add({**row, "response_tokens": n_response if n_response is not None
                                  else self.count([row["response"]])[0]})
            else:
                keep[i] = True
        self.seen.compact()
        # Exempt rows first, then the kept rows: the order of the row-at-a-time version.
        if any(checked.exempt):
            self.kept.add_batch(keep_rows(table, checked.exempt))
        self.kept.add_batch(keep_rows(table, keep))


def filter_rl(path: Path, cfg: dict[str, Any], ledger: Ledger, kept: TableWriter) -> tuple[int, set[int]]:
    """Filter the RL prompts; return (rows in, normalised-prompt keys of the kept prompts)."""
    bounds = cfg.get("rl_difficulty")
    keys: set[int] = set()
    rows_in = 0
    for batch in iter_batches(path, S.RL_PROMPT):
        for row in batch.to_pylist():
            rows_in += 1
            where = _where(row)
            key = prompt_key(row["prompt"])

            def drop(reason: str, why: str) -> None:
                ledger.drop(row["problem_id"], reason, f"{where}: {why}", file=row["source_file"],
                            row=row["source_row"], field=REASON_FIELD[reason])

            if has_cjk(row["prompt"]):
                drop("chinese_prompt", "prompt contains Chinese characters")
            elif bounds and row["difficulty"] is not None and not bounds[0] <= row["difficulty"] <= bounds[1]:
                drop("extreme_difficulty", f"difficulty {row['difficulty']} outside [{bounds[0]}, {bounds[1]}]")
            elif key in keys:
                drop("duplicate_prompt", "repeats an earlier RL prompt")
            else:
                keys.add(key)
                kept.add(row)
    return rows_in, keys


def run(cfg: dict[str, Any], ingested: str | Path, out: str | Path, *, tokenizer: str | Path | None = None,
        count_tokens: TokenCounter | None = None, grade: GradeFn | None = None,
        seed: int | None = None, threads: int = 1) -> dict[str, Any]:
    """Filter ``ingested`` into ``out`` on ``threads`` CPUs. ``count_tokens`` / ``grade`` replace the
    tokenizer / THE grader (tests inject stand-ins); otherwise the tokenizer is loaded from ``tokenizer``."""
    from tqdm import tqdm

    tune_stage_process()
    ingested = Path(ingested)
    path = ingested / "trajectories.parquet"
    open_table(path, S.TRAJECTORY)
    groups = num_row_groups(path)
    if count_tokens is None:
        if tokenizer is None:
            raise ValueError("filter: give a tokenizer directory or a count_tokens function")
        count_tokens = load_token_counter(tokenizer)
    workers = max(1, min(threads, groups))
    # One process: its grader gets every thread; several: each worker's grader gets one.
    checker = _RowChecker(cfg, grade, count_tokens, grader_workers=1 if workers > 1 else max(1, threads))
    pool = _CheckPool(checker, workers) if workers > 1 else None   # forked before any thread starts
    ok = False
    try:
        digests = InputDigests({"ingested": ingested, **({"tokenizer": tokenizer} if tokenizer else {})})
        with atomic_path(out) as tmp:
            with Ledger(tmp / "ledger.parquet", STAGE) as ledger, \
                    TableWriter(tmp / "rl_prompts.parquet", S.RL_PROMPT) as rl_kept:
                rl_in, rl_keys = filter_rl(ingested / "rl_prompts.parquet", cfg, ledger, rl_kept)
                rl_counts = {"in": rl_in, "kept": rl_kept.count, "dropped": dict(sorted(ledger.counts.items()))}
                rl_dropped = ledger.total
                with TableWriter(tmp / "trajectories.parquet", S.TRAJECTORY, INTERMEDIATE_COMPRESSION) as kept, \
                        TableWriter(tmp / "rl_matched.parquet", MATCHED) as matched, \
                        tqdm(total=num_rows(path), desc="filter", unit="rows", mininterval=2.0, leave=False) as bar:
                    sft = _SftFilter(count_tokens, rl_keys, int(cfg["max_prompt_tokens"]),
                                     int(cfg["max_response_tokens"]), ledger, kept, matched)
                    tables = prefetch(iter_row_groups(path, S.TRAJECTORY))
                    pairs = zip(tables, pool.map(path, groups)) if pool else ((t, checker(t)) for t in tables)
                    for table, checked in pairs:
                        sft.apply(table, checked)
                        bar.update(table.num_rows)
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
                           extra={"inputs": digests.manifest_inputs(), "counts": counts})
        ok = True
    finally:
        if pool is not None:
            pool.close(ok)
        checker.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plasticity filter", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help='JSON: {"seed": int, "filter": {...}}')
    parser.add_argument("--ingested", required=True, help="the ingest stage's output directory")
    parser.add_argument("--tokenizer", required=True, help="directory of the model's tokenizer")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--threads", type=int, default=1, help="CPUs to use (the rule's {threads}; default 1)")
    args = parser.parse_args(argv)
    from plasticity.data.tables import load_stage_config

    seed, cfg = load_stage_config(args.config, "filter")
    counts = run(cfg, args.ingested, args.out, tokenizer=args.tokenizer, seed=seed, threads=args.threads)
    print(json.dumps({"stage": STAGE, "sft": {k: counts["sft"][k] for k in ("in", "kept", "dropped")},
                      "rl": {k: counts["rl"][k] for k in ("in", "kept", "dropped")}}))
    return 0
