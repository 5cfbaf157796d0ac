"""Data-phase benchmark: a generated AM-40M-schema corpus through ingest -> filter -> decontaminate,
and the common baseline (Hugging Face ``datasets`` map/filter calling math-verify per row, the way
open-r1's scripts do) on a slice of the same corpus.

    nice python benchmarks/bench_data.py --rows 100000 --baseline-rows 50000 --work /tmp/bench_data
    nice python benchmarks/bench_data.py --rows 889000 --baseline-rows 0 --work /tmp/bench_data

Corpus: ``--rows`` rows in the AM-40M schema, 50K rows per shard. Prompts ~80 tokens, trajectories
~3,700 tokens on average with a log-normal long tail (capped at 40K tokens); a token here is one
whitespace-separated piece (each generated word or symbol), and that whitespace counter stands in
for the model tokenizer in the filter's length check (pipeline and baseline alike) (max 1,024 prompt / 16,384 response tokens). Faults: 5%
duplicate prompts, 3% non-math, 5% other teacher, 5% wrong answers, 0.5% benchmark copies; 10% of
answers are LaTeX fractions whose reference is written differently (\\frac{a}{b} vs \\dfrac{a}{b}),
so the grader must call math-verify for them. Benchmarks: 2,157 generated prompts (the study's size).

Each stage runs as its own process (``python -m plasticity <stage>``-equivalent ``run`` calls);
wall time and peak RSS (``wait4`` rusage of the stage process and its children) are printed as a
markdown table and written to WORK/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHARD_ROWS = 50_000
WORDS = ("the of and to a in is we that let for it be by this with so then value number sum since each "
         "therefore consider case term function equation solve check compute find note triangle angle "
         "side area circle radius integer prime divisor remainder modulo sequence series limit derivative "
         "integral probability expected count ways choose arrange polynomial root coefficient factor "
         "wait but actually hmm maybe verify again step first second third next finally thus hence").split()
SYMBOLS = list("+-=*/^()[]{},.;:") + ["\\frac", "\\sqrt", "x", "y", "n", "k", "2", "3", "5", "7", "10", "12"]
_TOKEN = re.compile(r"\w+|[^\w\s]")


def regex_token_count(texts: list[str]) -> list[int]:
    """The tokenizer stand-in of this benchmark: one token per whitespace-separated piece."""
    return [len(t.split()) for t in texts]


# ----------------------------------------------------------------------------------- corpus
def _text_block(rng: np.random.Generator, n_words: int) -> str:
    pool = np.array(WORDS * 3 + SYMBOLS, dtype=object)
    return " ".join(pool[rng.integers(0, len(pool), n_words)])


def make_benchmarks(out: Path, rng: np.random.Generator, block: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from plasticity import schema as S

    out.mkdir(parents=True, exist_ok=True)
    prompts = []
    for i in range(2157):
        start = int(rng.integers(0, len(block) - 2000))
        prompts.append(f"Benchmark problem {i}: " + block[start:start + 300].split(" ", 1)[1])
    rows = [{"problem_id": f"bench-{i}", "benchmark": "bench", "role": "math", "prompt": p, "answer": "1"}
            for i, p in enumerate(prompts)]
    pq.write_table(pa.Table.from_pylist(rows, schema=S.BENCHMARK), out / "bench.parquet")
    return prompts


def make_corpus(out: Path, rows: int, seed: int, bench_dir: Path) -> dict:
    """Write ``rows`` AM-40M rows in 50K-row shards; returns the planted-fault counts."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    block = _text_block(rng, 3_000_000)             # ~17 MB of text that rows are cut from
    bench = make_benchmarks(bench_dir, rng, _text_block(rng, 1_000_000))   # its own text: no chance overlap
    out.mkdir(parents=True, exist_ok=True)
    planted = {"duplicate": 0, "non_math": 0, "other_teacher": 0, "wrong": 0, "benchmark_copy": 0, "latex": 0}
    recent: list[str] = []
    chars_per_token = 5.3                           # measured on the word pool
    with tqdm(total=rows, desc="corpus", unit="rows", mininterval=5) as bar:
        for shard in range(0, rows, SHARD_ROWS):
            n = min(SHARD_ROWS, rows - shard)
            prompt_tokens = np.clip(rng.lognormal(np.log(70), 0.4, n), 10, 1500)
            response_tokens = np.clip(rng.lognormal(np.log(2900), 0.7, n), 200, 40_000)
            kinds = rng.random(n)
            with open(out / f"math_r1_1pass-{shard // SHARD_ROWS:05d}.jsonl", "w", encoding="utf-8") as fh:
                for j in range(n):
                    i = shard + j
                    p_len = int(prompt_tokens[j] * chars_per_token)
                    r_len = int(response_tokens[j] * chars_per_token)
                    ps, rs = (int(x) for x in rng.integers(0, len(block) - 250_000, 2))
                    prompt = f"Problem {i}: " + block[ps:ps + p_len]
                    answer, truth = str(int(rng.integers(0, 1000))), None
                    category, model = "math", "r1"
                    k = kinds[j]
                    if k < 0.05 and recent:
                        prompt = "  " + recent[int(rng.integers(0, len(recent)))].upper() + " "
                        planted["duplicate"] += 1
                    elif k < 0.08:
                        category = "code"
                        planted["non_math"] += 1
                    elif k < 0.13:
                        model = "7b"
                        planted["other_teacher"] += 1
                    elif k < 0.18:
                        truth = str(int(answer) + 1)
                        planted["wrong"] += 1
                    elif k < 0.185:
                        prompt = bench[int(rng.integers(0, len(bench)))]
                        planted["benchmark_copy"] += 1
                    elif k < 0.285:
                        a, b = (int(x) for x in rng.integers(1, 50, 2))
                        answer, truth = f"\\frac{{{a}}}{{{b + 50}}}", f"\\dfrac{{{a}}}{{{b + 50}}}"
                        planted["latex"] += 1
                    if len(recent) < 1000:
                        recent.append(prompt)
                    else:
                        recent[int(rng.integers(0, 1000))] = prompt
                    response = (f"<think>\n{block[rs:rs + r_len]}\n</think>\n<answer>So the answer is "
                                f"\\boxed{{{answer}}}.</answer>")
                    fh.write(json.dumps({
                        "question": prompt, "answer": response, "question_source": "bench",
                        "answer_source": "bench", "category": category, "ground_truth": truth or answer,
                        "test_case": "", "instruction_constrain": "", "pass_rate_r1": 1.0, "pass_rate_7b": 0.75,
                        "pass_rate_1.5b": float(rng.integers(0, 5)) / 4, "verify_score": 1.0, "ppl": 1.5,
                        "model_name": model}, ensure_ascii=False) + "\n")
            bar.update(n)
    return planted


def make_rl(out: Path) -> None:
    """A small Skywork-schema RL file (the RL side is not what this benchmark measures)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    rows = [{"data_source": "bench", "prompt": [{"content": f"RL problem {i}", "role": "user"}], "ability": "math",
             "reward_model": {"ground_truth": json.dumps([str(i)]), "style": "rule"},
             "extra_info": {"index": i}} for i in range(1000)]
    pq.write_table(pa.Table.from_pylist(rows), out / "math-00000.parquet")


# ----------------------------------------------------------------------------------- timing
def timed(code: str) -> dict:
    """Run ``code`` in a fresh Python process; wall seconds and peak RSS (MiB) of it and its children."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code])
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"benchmark step failed: {code[:200]}")
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def run_pipeline(work: Path, raw: Path, bench: Path, label: str, workers: int) -> dict:
    sources = [{"name": "corpus", "format": "am_40m", "path": str(raw / "corpus")}]
    rl = {"name": "rl", "format": "skywork_or1", "path": str(raw / "rl")}
    out = work / label
    steps = {
        "ingest": f"from plasticity.data import ingest; ingest.run({sources!r}, {rl!r}, {str(raw)!r}, {str(out / 'ingested')!r})",
        "filter": ("import sys; sys.path.insert(0, 'benchmarks'); from bench_data import regex_token_count; "
                   "from plasticity.data import filters; "
                   f"filters.run({{'max_prompt_tokens': 1024, 'max_response_tokens': 16384, 'workers': {workers}}}, "
                   f"{str(out / 'ingested')!r}, {str(out / 'filtered')!r}, count_tokens=regex_token_count)"),
        "decontaminate": (f"from plasticity.data import decontaminate; decontaminate.run({{'ngram': 8, 'workers': {workers}}}, "
                          f"{str(out / 'filtered')!r}, {str(bench)!r}, {str(out / 'decontaminated')!r})"),
    }
    results = {}
    for name, code in steps.items():
        results[name] = timed(code)
        print(f"[{label}] {name}: {results[name]}", flush=True)
    results["total_seconds"] = round(sum(r["seconds"] for r in results.values()), 1)
    results["peak_rss_mib"] = max(r["peak_rss_mib"] for r in results.values() if isinstance(r, dict))
    manifest = json.loads((out / "filtered" / "manifest.json").read_text())["counts"]["sft"]
    results["filter_counts"] = manifest
    results["decontaminated"] = json.loads((out / "decontaminated" / "manifest.json").read_text())["counts"]["tables"]["trajectories.parquet"]
    return results


BASELINE = r'''
import json, re, sys
from datasets import load_dataset
from math_verify import parse, verify
sys.path.insert(0, "benchmarks")
from bench_data import regex_token_count
files, bench, workers = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ds = load_dataset("json", data_files=files, split="train", cache_dir=sys.argv[4])
ds = ds.filter(lambda r: r["category"] == "math" and r["model_name"] == "r1", num_proc=workers)
fmt = re.compile(r"<think>.*?</think>\s*<answer>.*\\boxed\{.*\}.*</answer>", re.S)
ds = ds.filter(lambda r: fmt.search(r["answer"]) is not None, num_proc=workers)
def correct(r):
    return verify(parse("\\boxed{" + r["ground_truth"] + "}"), parse(r["answer"]))
ds = ds.filter(correct, num_proc=workers)
ds = ds.filter(lambda r: regex_token_count([r["question"]])[0] <= 1024 and regex_token_count([r["answer"]])[0] <= 16384,
               num_proc=workers)
seen = set()
keep = []
for i, q in enumerate(ds["question"]):
    key = " ".join(q.split()).casefold()
    if key not in seen:
        seen.add(key); keep.append(i)
ds = ds.select(keep)
import pyarrow.parquet as pq
words = lambda t: re.findall(r"\w+|[^\w\s]", t.lower())
grams = set()
for p in pq.read_table(bench, columns=["prompt"]).column("prompt").to_pylist():
    w = words(p)
    grams.update(" ".join(w[i:i + 8]) for i in range(max(1, len(w) - 7)))
def clean(r):
    w = words(r["question"])
    return not any(" ".join(w[i:i + 8]) in grams for i in range(max(1, len(w) - 7)))
ds = ds.filter(clean, num_proc=workers)
print("baseline kept", len(ds))
'''


def run_baseline(work: Path, raw: Path, bench: Path, workers: int) -> dict:
    files = sorted(str(p) for p in (raw / "corpus").glob("*.jsonl"))
    code = (f"import sys; sys.argv = ['x', {json.dumps(files)!r}, {str(bench / 'bench.parquet')!r}, "
            f"'{workers}', {str(work / 'hf_cache')!r}]\n" + BASELINE)
    result = timed(code)
    print(f"[baseline] {result}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="corpus rows for the pipeline run (0: skip)")
    parser.add_argument("--baseline-rows", type=int, default=50_000,
                        help="rows of the side-by-side slice: the pipeline and the baseline (0: skip)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_data"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    results: dict = {"cores": os.cpu_count(), "workers": args.workers}
    for label, rows in (("slice", args.baseline_rows), ("full", args.rows)):
        if rows <= 0:
            continue
        raw = args.work / f"raw_{rows}"
        if not (raw / "done.json").is_file():
            planted = make_corpus(raw / "corpus", rows, args.seed, raw / "bench")
            make_rl(raw / "rl")
            (raw / "done.json").write_text(json.dumps(planted))
        size_gib = sum(p.stat().st_size for p in (raw / "corpus").glob("*.jsonl")) / 2**30
        entry = {"rows": rows, "corpus_gib": round(size_gib, 2), "planted": json.loads((raw / "done.json").read_text()),
                 "pipeline": run_pipeline(args.work, raw, raw / "bench", f"pipeline_{rows}", args.workers)}
        if label == "slice":
            entry["baseline"] = run_baseline(args.work, raw, raw / "bench", args.workers)
            entry["speedup"] = round(entry["baseline"]["seconds"] / entry["pipeline"]["total_seconds"], 1)
        results[label] = entry
        print(json.dumps(entry, indent=1), flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
