"""Filter and ingest time and peak memory with one very long row: bounded by the limits, not the row.

Filter (``--sizes-mb``): builds an ingested directory of ``--rows`` ordinary AM-style trajectories plus, per case, one row
whose response is 5 MB or 50 MB of well-formed reasoning, and runs the filter stage on it in a
fresh process (wall seconds, CPU seconds, peak RSS via wait4; bench_data.timed). The tokenizer is a
byte-level BPE (the kind Qwen and Llama use) trained here on the generated text, saved as a local
tokenizer directory, so the filter's character bound is the one a real model's tokenizer gets.

Ingest (``--ingest-sizes-mb``): an AM-40M JSONL source of ``--rows`` ordinary rows with, per case,
one line of that many MB of whitespace in the middle (a line no record can be: ingest's maximum
record size is 64 MiB), ingested in a fresh process; the line is skipped unread into the ledger.

Run by hand (writes nothing outside --work; paste the printed table into reports/benchmarks.md):
    python benchmarks/bench_long_rows.py --work /tmp/bench_long_rows
    python benchmarks/bench_long_rows.py --work /tmp/bench_long_rows --sizes-mb --ingest-sizes-mb 0 1000
    python benchmarks/bench_long_rows.py --work /tmp/bench_long_rows --src /path/to/other/checkout/src
``--src`` runs the same cases against another source tree (e.g. the code before the bound).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import timed  # noqa: E402

LIMITS = {"max_prompt_tokens": 1024, "max_response_tokens": 16384}
WORDS = ["let", "x", "be", "the", "sum", "of", "+", "=", "\\frac{1}{2}", "therefore", "we", "get", "2", "3",
         "7", "so", "and", "check", "again", "wait", "compute", "(", ")", "^{2}"]


def _reasoning(rng: random.Random, chars: int) -> str:
    out, size = [], 0
    while size < chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return "<think>\n" + " ".join(out) + "\n</think>\nThe answer is \\boxed{4}."


def build_tokenizer(path: Path, rng: random.Random) -> None:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator([_reasoning(rng, 2000) for _ in range(500)], vocab_size=2000, min_frequency=2,
                                special_tokens=["<|endoftext|>"])
    PreTrainedTokenizerFast(tokenizer_object=trainer._tokenizer, eos_token="<|endoftext|>").save_pretrained(path)


def build_input(path: Path, rows: int, long_chars: int, seed: int) -> None:
    from plasticity import schema as S
    from plasticity.data.tables import write_rows

    rng = random.Random(seed)
    trajectories = [{"problem_id": f"p{i}", "source": "am", "source_file": "am/f.jsonl", "source_row": i,
                     "domain": "math", "teacher": "r1", "prompt": f"What is {i} + 4 - {i}?",
                     "response": _reasoning(rng, 4000), "reference_answer": "4", "win_rate_small": None,
                     "win_rate_mid": None, "win_rate_teacher": None} for i in range(rows)]
    if long_chars:
        trajectories[rows // 2]["response"] = _reasoning(rng, long_chars)
    write_rows(path / "trajectories.parquet", trajectories, S.TRAJECTORY)
    write_rows(path / "rl_prompts.parquet", [], S.RL_PROMPT)


def build_source(path: Path, rows: int, line_bytes: int, seed: int) -> None:
    """An AM-40M JSONL shard: ``rows`` ordinary rows, one whitespace line of ``line_bytes`` in the middle."""
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "math_r1_1pass.jsonl", "w", encoding="utf-8") as fh:
        for i in range(rows):
            if line_bytes and i == rows // 2:
                for _ in range(line_bytes >> 20):
                    fh.write(" " * (1 << 20))
                fh.write(" " * (line_bytes % (1 << 20)) + "\n")
            fh.write(json.dumps({"question": f"What is {i} + 4 - {i}?", "answer": _reasoning(rng, 4000),
                                 "category": "math", "model_name": "r1", "ground_truth": "4"}) + "\n")


def ingest_cases(args: argparse.Namespace, src: str) -> list[dict]:
    rl = {"name": "rl", "format": "skywork_or1",
          "path": str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "data" / "skywork")}
    results = []
    for size in args.ingest_sizes_mb:
        case = args.work / f"source_{size:g}mb"
        if not (case / "math_r1_1pass.jsonl").is_file():
            build_source(case, args.rows, int(size * 2**20), args.seed)
        out = args.work / f"ingested_{size:g}mb"
        sources = [{"name": "am", "format": "am_40m", "path": str(case)}]
        code = (f"import sys, json; sys.path.insert(0, {src!r}); from plasticity.data import ingest; "
                f"c = ingest.run({sources!r}, {rl!r}, {str(args.work / 'raw')!r}, {str(out)!r}); "
                f"print(json.dumps(c['sources']['am']))")
        result = {"line_mb": size, **timed(code)}
        results.append(result)
        print(json.dumps(result), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_long_rows"))
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--sizes-mb", type=float, nargs="*", default=[0, 5, 50],
                        help="filter cases: MB of the one long response (none: no filter cases)")
    parser.add_argument("--ingest-sizes-mb", type=float, nargs="*", default=[],
                        help="ingest cases: MiB of the one whitespace line (e.g. 0 1000)")
    parser.add_argument("--src", type=Path, default=None, help="source tree to run the stages from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    src = str((args.src or Path(__file__).resolve().parents[1] / "src").resolve())
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    ingested = ingest_cases(args, src)
    tok = args.work / "tokenizer"
    if args.sizes_mb and not (tok / "tokenizer.json").is_file():
        build_tokenizer(tok, random.Random(args.seed))
    results = []
    for size in args.sizes_mb:
        case = args.work / f"in_{size:g}mb"
        if not (case / "trajectories.parquet").is_file():
            build_input(case, args.rows, int(size * 1e6), args.seed)
        out = args.work / f"out_{size:g}mb"
        code = (f"import sys, json; sys.path.insert(0, {src!r}); from plasticity.data import filters; "
                f"c = filters.run({LIMITS!r}, {str(case)!r}, {str(out)!r}, tokenizer={str(tok)!r}, threads=1) "
                f"if 'threads' in filters.run.__code__.co_varnames else "
                f"filters.run({{**{LIMITS!r}, 'workers': 1}}, {str(case)!r}, {str(out)!r}, tokenizer={str(tok)!r}); "
                f"print(json.dumps(c['sft']['dropped_by_reason']))")
        result = {"long_row_mb": size, **timed(code)}
        results.append(result)
        print(json.dumps(result), flush=True)
    print(f"\nsource tree: {src}; {args.rows} ordinary rows of ~4 KB; limits {LIMITS}; "
          f"load average before: {load}\n")
    if ingested:
        print("| whitespace line | ingest wall | CPU | peak RSS |\n|---|---|---|---|")
        for r in ingested:
            label = f"{r['line_mb']:g} MiB" if r["line_mb"] else "none (ordinary rows only)"
            print(f"| {label} | {r['seconds']} s | {r['cpu_seconds']} s | {r['peak_rss_mib']:.0f} MiB |")
    if results:
        print("| longest row | filter wall | CPU | peak RSS |\n|---|---|---|---|")
    for r in results:
        label = f"{r['long_row_mb']:g} MB" if r["long_row_mb"] else "none (ordinary rows only)"
        print(f"| {label} | {r['seconds']} s | {r['cpu_seconds']} s | {r['peak_rss_mib']:.0f} MiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
