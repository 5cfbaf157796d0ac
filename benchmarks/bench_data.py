"""Data-phase benchmark: a generated AM-40M-schema corpus through ingest -> filter -> decontaminate,
and the common baseline (Hugging Face ``datasets`` map/filter calling math-verify per row, the way
open-r1's scripts do) side by side on a slice of the same corpus.

    nice -n 5 .venv/bin/python benchmarks/bench_data.py --baseline-rows 50000 --repeat 3 --rows 100000 \
        --large-rows 889000 --work /tmp/bench_data --report reports/benchmarks.md

Runs, one at a time: the ``--baseline-rows`` slice through the pipeline and then the baseline
(``--repeat`` rounds, alternating; medians reported), the ``--rows`` corpus through the pipeline,
the ``--large-rows`` corpus through the pipeline (0 skips any of them). ``--report`` rewrites the ``## Data pipeline`` section of that markdown
file (and nothing else) from WORK/results.json, which accumulates the latest entry per corpus.

Corpus: rows in the AM-40M schema (DATASETS.md 2), 50K rows per shard. Prompts ~80 tokens,
trajectories ~3,700 tokens on average with a log-normal long tail (capped at 40K tokens); a token
here is one whitespace-separated piece (each generated word or symbol), and that whitespace counter
stands in for the model tokenizer in the filter's length check (pipeline and baseline alike; max
1,024 prompt / 16,384 response tokens). Faults: 5% duplicate prompts, 3% non-math, 5% other teacher,
5% wrong answers, 0.5% benchmark copies; 10% of answers are LaTeX fractions whose reference is
written differently (\\frac{a}{b} vs \\dfrac{a}{b}). The grader decides those in-process (its exact
fast path for fractions, plasticity.grading_fastpath); the baseline calls math-verify on every row.
Benchmarks: 2,157 generated prompts (the study's size). RL source: 1,000 Skywork-schema rows.

Each stage runs as its own process (the stage's ``run`` call, as ``python -m plasticity <stage>``
would make it). Per stage: wall seconds, CPU seconds of the process tree, peak RSS of its largest
process (``wait4`` maxrss, exact) and the peak total PSS of the whole process tree (the stage
process, its threads, grader workers and pool processes; sampled every 0.25 s from
/proc/PID/smaps_rollup, so a very short spike can be missed). PSS counts pages shared after fork
once, so the tree total is the real memory footprint.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
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
def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (via /proc/*/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return out


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(code: str) -> dict:
    """Run ``code`` in a fresh Python process: wall and CPU seconds, peak RSS of the largest process
    (wait4, exact) and sampled peak PSS of the whole process tree, in MiB."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code])
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            peak[0] = max(peak[0], sum(_pss_kib(p) for p in _tree(proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"benchmark step failed: {code[:200]}")
    return {"seconds": round(seconds, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "peak_tree_pss_mib": round(peak[0] / 1024, 1)}


def run_pipeline(work: Path, raw: Path, bench: Path, label: str, workers: int) -> dict:
    sources = [{"name": "corpus", "format": "am_40m", "path": str(raw / "corpus")}]
    rl = {"name": "rl", "format": "skywork_or1", "path": str(raw / "rl")}
    out = work / label
    steps = {
        "ingest": f"from plasticity.data import ingest; ingest.run({sources!r}, {rl!r}, {str(raw)!r}, {str(out / 'ingested')!r})",
        "filter": ("import sys; sys.path.insert(0, 'benchmarks'); from bench_data import regex_token_count; "
                   "from plasticity.data import filters; "
                   f"filters.run({{'max_prompt_tokens': 1024, 'max_response_tokens': 16384}}, "
                   f"{str(out / 'ingested')!r}, {str(out / 'filtered')!r}, count_tokens=regex_token_count, threads={workers})"),
        "decontaminate": (f"from plasticity.data import decontaminate; decontaminate.run({{'ngram': 8}}, "
                          f"{str(out / 'filtered')!r}, {str(bench)!r}, {str(out / 'decontaminated')!r}, threads={workers})"),
    }
    results = {}
    for name, code in steps.items():
        results[name] = timed(code)
        print(f"[{label}] {name}: {results[name]}", flush=True)
    stages = [results[name] for name in steps]
    results["total_seconds"] = round(sum(r["seconds"] for r in stages), 1)
    results["cpu_seconds"] = round(sum(r["cpu_seconds"] for r in stages), 1)
    results["peak_rss_mib"] = max(r["peak_rss_mib"] for r in stages)
    results["peak_tree_pss_mib"] = max(r["peak_tree_pss_mib"] for r in stages)
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
json.dump({"kept": len(ds)}, open(sys.argv[5], "w"))
'''


def run_baseline(work: Path, raw: Path, bench: Path, workers: int) -> dict:
    """The baseline on the same files; its JSON -> Arrow cache is built fresh each run, since the
    pipeline's ingest also starts from the JSONL."""
    shutil.rmtree(work / "hf_cache", ignore_errors=True)
    files = sorted(str(p) for p in (raw / "corpus").glob("*.jsonl"))
    kept = work / "baseline_kept.json"
    code = (f"import sys; sys.argv = ['x', {json.dumps(files)!r}, {str(bench / 'bench.parquet')!r}, "
            f"'{workers}', {str(work / 'hf_cache')!r}, {str(kept)!r}]\n" + BASELINE)
    result = timed(code)
    result["kept"] = json.loads(kept.read_text())["kept"]
    shutil.rmtree(work / "hf_cache", ignore_errors=True)
    print(f"[baseline] {result}", flush=True)
    return result


def side_by_side(args: argparse.Namespace, raw: Path, rows: int) -> dict:
    """Pipeline, then baseline, ``--repeat`` times in alternation on the same corpus; the entry's
    numbers are the run with the median pipeline time and the median baseline run, and the
    speedup is the ratio of the two medians (on a shared machine, load drifts between runs)."""
    pairs = []
    for _ in range(args.repeat):
        pipeline = run_pipeline(args.work, raw, raw / "bench", f"pipeline_{rows}", args.workers)
        pairs.append((pipeline, run_baseline(args.work, raw, raw / "bench", args.workers)))
    median = lambda items, key: sorted(items, key=key)[len(items) // 2]
    pipeline = median([p for p, _ in pairs], lambda r: r["total_seconds"])
    baseline = median([b for _, b in pairs], lambda r: r["seconds"])
    return {"pipeline": pipeline, "baseline": baseline,
            "speedup": round(baseline["seconds"] / pipeline["total_seconds"], 2),
            "runs": [{"pipeline_seconds": p["total_seconds"], "pipeline_cpu_seconds": p["cpu_seconds"],
                      "baseline_seconds": b["seconds"], "baseline_cpu_seconds": b["cpu_seconds"]} for p, b in pairs]}


# ----------------------------------------------------------------------------------- report
SECTION = "## Data pipeline"


def _machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) / 2**20
    return f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB"


def _row(entry: dict) -> str:
    p = entry["pipeline"]
    stage = lambda name: f"{p[name]['seconds']} s"
    return (f"| {entry['rows']:,} rows ({entry['corpus_gib']} GiB) | {stage('ingest')} | {stage('filter')} | "
            f"{stage('decontaminate')} | **{p['total_seconds']} s** | {p['cpu_seconds']} s | "
            f"{p['peak_rss_mib']:.0f} MiB | {p['peak_tree_pss_mib']:.0f} MiB | "
            f"{p['decontaminated']['kept']:,} |")


NOTES = """\
How the pipeline gets there (every output is the same bytes whatever the number of workers and
whichever read path a block takes: tests/unit/test_data_parallel.py, tests/unit/test_data_ingest.py):

- Ingest: AM-40M JSONL is parsed a 16 MiB block at a time by Arrow's JSON reader and mapped to the
  canonical columns with Arrow compute (`data/am40m_blocks.py`); a block with anything unusual (a
  malformed line, invalid UTF-8, a missing or mistyped field, a blank prompt, a rate outside [0, 1])
  goes whole to the row path, which names the file, row and field in the ledger.
- Filter: the checks that look at one row alone (domain, teacher, format, THE grader, token counts,
  the prompt's dedup key) run on whole row groups in forked worker processes, each with its own
  grader; the stage process reads the same row groups in order and applies what depends on earlier
  rows (dedup, the RL set difference), the ledger and the writing. The grader decides the benchmark's
  integer and LaTeX-fraction answers in-process on its exact fast path (verdicts equal to
  math-verify's by construction and by test), so math-verify runs only where the fast path abstains.
- Decontaminate: the n-gram pool matches the next batch while the stage process filters and writes
  the current one.
- Everywhere: kept rows are written as zero-copy Arrow slices (no dict round trip) by a background
  writer thread (encoding and compression release the GIL); the stage-to-stage trajectory tables
  (ingested, filtered, decontaminated) use lz4, the named sets and ledgers zstd; long text columns get
  no dictionary or statistics; manifest input hashes are computed in a thread from stage start.
- Flat memory: pyarrow's pre-buffering is off (it kept every compressed column chunk until the file
  closed), dedup keys are 64-bit digests in sorted numpy arrays (16 bytes per prompt), the grader's
  verdict cache is an LRU of 65,536 entries, Arrow buffers come from jemalloc and the stage processes
  opt out of transparent huge pages. The filter's tree PSS is larger than its largest process because
  it counts the forked workers' private pages.

What bounds the ratio: both keep the two cores about equally busy (CPU time ~1.7-1.8x wall time in
the rounds above), so the wall-time speedup follows the ratio of CPU seconds, the baseline's
per-row math-verify and Python filters against the pipeline's work in Arrow and the fast path.
"""


def render(results: dict) -> str:
    """The markdown of the ``## Data pipeline`` section from the accumulated results."""
    entries = [results[k] for k in ("slice", "full", "large") if k in results]
    lines = [SECTION, ""]
    runs: dict[tuple, list[str]] = {}
    for e in entries:
        runs.setdefault((e["date"], e["command"], e["machine"], e["load_before"]), []).append(f"{e['rows']:,}")
    lines.append("Commands:" if len(runs) > 1 else "Command:")
    lines.append("")
    for (date, command, machine, load), corpora in sorted(runs.items()):
        lines += [f"    {command}", "", f"run {date} on {machine}; load average before the run {load}; "
                  f"corpus {' and '.join(corpora)} rows.", ""]
    lines += [
        "What stands in for what: the corpus is generated in the AM-40M schema (prompts ~80 tokens,",
        "trajectories ~3,700 tokens on average, log-normal tail to 40K; 5% duplicate prompts, 3% non-math,",
        "5% other teacher, 5% wrong answers, 0.5% benchmark copies, 10% LaTeX-fraction answers spelled",
        "differently from their reference, which the grader's exact fast path decides without math-verify);",
        "2,157 generated benchmark prompts; a whitespace token counter (one token per",
        "whitespace-separated piece) stands in for the model tokenizer in the length filter, in the",
        "pipeline and the baseline alike. Each stage runs in its own process. Peak RSS = largest single",
        "process (`wait4` maxrss); tree PSS = peak total PSS of the stage process and all its children",
        "(grader workers, match pool), sampled every 0.25 s.",
        "",
        "| corpus | ingest | filter | decontaminate | total | CPU time | peak RSS | peak tree PSS | rows kept |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(e) for e in entries]
    lines += ["", "Peak memory per stage, largest process RSS / whole-tree PSS (MiB):", "",
              "| stage | " + " | ".join(f"{e['rows']:,} rows" for e in entries) + " |",
              "|---|" + "---|" * len(entries)]
    for stage in ("ingest", "filter", "decontaminate"):
        cells = [f"{e['pipeline'][stage]['peak_rss_mib']:.0f} / {e['pipeline'][stage]['peak_tree_pss_mib']:.0f}"
                 for e in entries]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("")
    if "slice" in results and "baseline" in results["slice"]:
        e = results["slice"]
        b = e["baseline"]
        same = "the same" if b["kept"] == e["pipeline"]["decontaminated"]["kept"] else "NOT the same"
        lines += [
            f"Baseline, same run, same {e['rows']:,}-row corpus: Hugging Face `datasets` `load_dataset(\"json\")`",
            "(fresh cache) then `filter(num_proc=2)` for domain/teacher, the format regex,",
            "`verify(parse(gold), parse(response))` per row, the length check, a dedup pass and an 8-gram",
            f"decontamination `filter`: **{b['seconds']} s** (CPU {b['cpu_seconds']} s, peak RSS "
            f"{b['peak_rss_mib']:.0f} MiB, tree PSS {b['peak_tree_pss_mib']:.0f} MiB), keeping {b['kept']:,} rows: "
            f"{same} count as the pipeline.",
            f"Speedup: **{e['speedup']}x** (goal: at least 5x): median baseline run / median pipeline run.",
            "",
        ]
        if len(e.get("runs", [])) > 1:
            lines += [f"All {len(e['runs'])} rounds, pipeline then baseline (wall / CPU seconds; other jobs on the "
                      "shared machine can load some rounds more than others, which the medians damp):", ""]
            lines += [f"- pipeline {r['pipeline_seconds']} / {r['pipeline_cpu_seconds']} s, baseline "
                      f"{r['baseline_seconds']} / {r['baseline_cpu_seconds']} s: "
                      f"{r['baseline_seconds'] / r['pipeline_seconds']:.1f}x wall, "
                      f"{r['baseline_cpu_seconds'] / r['pipeline_cpu_seconds']:.1f}x CPU" for r in e["runs"]]
            lines.append("")
    goals = []
    if "large" in results:
        large = results["large"]["pipeline"]
        goals.append(f"- {results['large']['rows']:,} rows in {large['total_seconds'] / 60:.1f} min "
                     f"(goal: under 20 min).")
        goals.append(f"- Peak memory at {results['large']['rows']:,} rows: {large['peak_rss_mib']:.0f} MiB largest "
                     f"process, {large['peak_tree_pss_mib']:.0f} MiB whole tree (goal: under 4 GB).")
        if "full" in results:
            full = results["full"]["pipeline"]
            ratio = lambda k: large[k] / full[k] - 1
            goals.append(f"- Flatness vs the {results['full']['rows']:,}-row run: largest process "
                         f"{ratio('peak_rss_mib'):+.0%}, whole tree {ratio('peak_tree_pss_mib'):+.0%} (goal: within 20%).")
    if goals:
        lines += ["Goals:", ""] + goals + [""]
    return "\n".join(lines)


def write_report(path: Path, results: dict) -> None:
    """Replace the ``## Data pipeline`` section of ``path`` (up to the next ``## `` heading)."""
    text = path.read_text(encoding="utf-8")
    start = text.index(SECTION)
    nxt = text.find("\n## ", start + len(SECTION))
    tail = text[nxt + 1:] if nxt >= 0 else ""
    section = render(results) + "\n" + NOTES
    path.write_text(text[:start] + section + ("\n" + tail if tail else ""), encoding="utf-8")


# ----------------------------------------------------------------------------------- main
def _command(argv: list[str]) -> str:
    nice = os.nice(0)
    return (f"nice -n {nice} " if nice else "") + shlex.join([".venv/bin/python", "benchmarks/bench_data.py", *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-rows", type=int, default=50_000,
                        help="rows of the side-by-side slice: the pipeline and the baseline (0: skip)")
    parser.add_argument("--rows", type=int, default=100_000, help="corpus rows for a pipeline run (0: skip)")
    parser.add_argument("--large-rows", type=int, default=0, help="rows of the large pipeline run (0: skip)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_data"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3,
                        help="side-by-side rounds (pipeline then baseline) on the slice; medians are reported")
    parser.add_argument("--keep-outputs", action="store_true", help="keep the large run's stage outputs")
    parser.add_argument("--report", type=Path, help="markdown file whose '## Data pipeline' section is rewritten")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results_path = args.work / "results.json"
    results: dict = json.loads(results_path.read_text()) if results_path.is_file() else {}
    meta = {"command": _command(argv), "machine": _machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_before": " / ".join(f"{x:.2f}" for x in os.getloadavg())}
    for label, rows in (("slice", args.baseline_rows), ("full", args.rows), ("large", args.large_rows)):
        if rows <= 0:
            continue
        raw = args.work / f"raw_{rows}"
        if not (raw / "done.json").is_file():
            planted = make_corpus(raw / "corpus", rows, args.seed, raw / "bench")
            make_rl(raw / "rl")
            (raw / "done.json").write_text(json.dumps(planted))
        size_gib = sum(p.stat().st_size for p in (raw / "corpus").glob("*.jsonl")) / 2**30
        entry = {"rows": rows, "corpus_gib": round(size_gib, 2), "planted": json.loads((raw / "done.json").read_text()),
                 **meta, "workers": args.workers}
        if label == "slice":
            entry.update(side_by_side(args, raw, rows))
        else:
            entry["pipeline"] = run_pipeline(args.work, raw, raw / "bench", f"pipeline_{rows}", args.workers)
        if label == "large" and not args.keep_outputs:
            shutil.rmtree(args.work / f"pipeline_{rows}", ignore_errors=True)   # ~13 GiB of parquet
        results[label] = entry
        results_path.write_text(json.dumps(results, indent=1))
        print(json.dumps(entry, indent=1), flush=True)
    if args.report:
        write_report(args.report, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
