"""Filter time and peak memory with one very long row: bounded by the length limits, not the row.

Builds an ingested directory of ``--rows`` ordinary AM-style trajectories plus, per case, one row
whose response is 5 MB or 50 MB of well-formed reasoning, and runs the filter stage on it in a
fresh process (wall seconds, CPU seconds, peak RSS via wait4; bench_data.timed). The tokenizer is a
byte-level BPE (the kind Qwen and Llama use) trained here on the generated text, saved as a local
tokenizer directory, so the filter's character bound is the one a real model's tokenizer gets.

Run by hand (writes nothing outside --work; paste the printed table into reports/benchmarks.md):
    python benchmarks/bench_long_rows.py --work /tmp/bench_long_rows
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_long_rows"))
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[0, 5, 50])
    parser.add_argument("--src", type=Path, default=None, help="source tree to run the filter from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    tok = args.work / "tokenizer"
    if not (tok / "tokenizer.json").is_file():
        build_tokenizer(tok, random.Random(args.seed))
    src = str((args.src or Path(__file__).resolve().parents[1] / "src").resolve())
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
          f"load average before: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| longest row | filter wall | CPU | peak RSS |\n|---|---|---|---|")
    for r in results:
        label = f"{r['long_row_mb']:g} MB" if r["long_row_mb"] else "none (ordinary rows only)"
        print(f"| {label} | {r['seconds']} s | {r['cpu_seconds']} s | {r['peak_rss_mib']:.0f} MiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
