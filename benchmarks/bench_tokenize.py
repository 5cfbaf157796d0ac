"""Memory of SFT data at two sizes: the ``tokenize`` stage and one SFT rank's data loading.

Synthetic trajectory sets of 100K and 889K rows (SFT889K's size) with the study's length distribution
(PAPER 2.2: prompts of 78 tokens and responses of 3,693 on average, a log-normal tail cut at
max_length 12,000), written in the miniature's character-level vocabulary so one character is one
token. Tokens per row are divided by ``--scale`` (default 10: 3.4 B tokens would need 17 GB of shards
and hours of tokenizing on 2 cores), the max length with them; the number of rows is the study's.

Measured, each in a fresh process:
- ``tokenize`` (``python -m plasticity tokenize``, ``--workers`` processes): wall seconds, tokens/s,
  peak RSS of the largest process and peak PSS of the process tree (``wait4``'s maxrss carries the
  forking parent's high-water mark across exec: the sets are generated in a child, so the parent
  stays small);
- one SFT rank: ``train.tokens.open_tokenized`` (memory-mapped shards), the length column's mean,
  then ``--batches`` micro-batches of 4 random rows through ``train.data.CompletionCollator`` as the
  trainer's sampler and collator draw them: peak RSS (the process's own ``VmHWM``), and peak
  anonymous RSS (the rank's own memory; the shards' pages it touched are file cache the kernel can drop);
- optionally (``--lists``) the previous path at the small size: the whole set tokenized into Python
  lists (``train.data.tokenize_pairs``) and ``Dataset.from_dict``.

    python benchmarks/bench_tokenize.py --rows 100000 889000 --scale 10 --workers 2 --work /tmp/bench-tok
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import timed  # noqa: E402  (the data benchmark's process measurement)

ROOT = Path(__file__).resolve().parents[1]
PROMPT_MEAN, RESPONSE_MEAN, MAX_LENGTH, SIGMA = 78, 3693, 12_000, 0.7
CHARS = np.array(list("0123456789+-*=() "))


def make_set(path: Path, rows: int, scale: int, seed: int = 0) -> dict:
    """A schema.TRAJECTORY parquet file of ``rows`` rows, written 20,000 rows at a time."""
    from plasticity import schema

    rng = np.random.default_rng(seed)
    writer = pq.ParquetWriter(path, schema.TRAJECTORY, compression="zstd")
    chars = 0
    mu = np.log(RESPONSE_MEAN / scale) - SIGMA ** 2 / 2          # log-normal with the study's mean
    for start in range(0, rows, 20_000):
        n = min(20_000, rows - start)
        p_len = np.maximum(4, rng.poisson(PROMPT_MEAN / scale, n))
        r_len = np.clip(rng.lognormal(mu, SIGMA, n).astype(int), 8, 2 * MAX_LENGTH // scale)
        pool = "".join(rng.choice(CHARS, size=int(p_len.sum() + r_len.sum())))
        prompts, responses, at = [], [], 0
        for a, b in zip(p_len, r_len):
            prompts.append(pool[at:at + a]); at += a
            responses.append(pool[at:at + b]); at += b
        chars += at
        table = pa.table({
            "problem_id": [f"p{start + i}" for i in range(n)], "source": ["bench"] * n, "source_file": ["f"] * n,
            "source_row": list(range(start, start + n)), "domain": ["math"] * n, "teacher": ["r1"] * n,
            "prompt": prompts, "response": responses, "reference_answer": ["0"] * n,
            "win_rate_small": [None] * n, "win_rate_mid": [None] * n, "win_rate_teacher": [None] * n,
        }, schema=schema.TRAJECTORY)
        writer.write_table(table)
    writer.close()
    return {"rows": rows, "chars": int(chars)}


def tokenizer_dir(work: Path) -> Path:
    out = work / "tok"
    if not (out / "manifest.json").is_file():
        cfg = work / "model.json"
        cfg.write_text(json.dumps({"seed": 0, "model_name": "tiny", "model": {
            "source": "tiny", "arch": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                       "num_key_value_heads": 1, "intermediate_size": 64,
                                       "max_position_embeddings": 64},
            "pretrain": {"steps": 1, "batch_size": 1, "lr": 1e-3, "examples": 1}}}))
        subprocess.run([sys.executable, "-m", "plasticity", "tokenizer", "--config", str(cfg), "--out", str(out)],
                       check=True)
    return out


LOAD = """
import json, random, sys
sys.path.insert(0, {src!r})
from plasticity.models import load_tokenizer
from plasticity.train.data import CompletionCollator
from plasticity.train.tokens import open_tokenized
import pyarrow.compute as pc
tok = load_tokenizer({tok!r})
data = open_tokenized({shards!r}, tok)
mean = pc.mean(data.data.column("length")).as_py()
collate = CompletionCollator(tok.pad_token_id, padding_free=False)
rng = random.Random(0)
tokens = 0
for _ in range({batches}):
    batch = collate([data[rng.randrange(len(data))] for _ in range(4)])
    tokens += int(batch["input_ids"].numel())
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
print(json.dumps({{"rows": len(data), "mean_length": mean, "tokens_collated": tokens,
                  "vm_hwm_mib": int(status["VmHWM"].split()[0]) / 1024}}))
"""

LISTS = """
import sys
sys.path.insert(0, {src!r})
import pyarrow.parquet as pq
from plasticity.models import chat_prompt, load_tokenizer
from plasticity.train.data import to_dataset, tokenize_pairs
tok = load_tokenizer({tok!r})
t = pq.read_table({data!r}, columns=["prompt", "response"])
cols, _ = tokenize_pairs(tok, {{"prompt": [chat_prompt(tok, p) for p in t.column("prompt").to_pylist()],
                                "completion": t.column("response").to_pylist()}}, {max_length})
ds = to_dataset(cols)
print(len(ds))
"""


def _anon_peak(pid: int, stop: threading.Event, peak: list[int]) -> None:
    while not stop.wait(0.1):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    peak[0] = max(peak[0], int(line.split()[1]))
        except OSError:
            return


def rank_loading(src: str, tok: Path, shards: Path, batches: int) -> dict:
    code = LOAD.format(src=src, tok=str(tok), shards=str(shards), batches=batches)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    peak, stop = [0], threading.Event()
    sampler = threading.Thread(target=_anon_peak, args=(proc.pid, stop, peak), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    stop.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError("rank loading failed")
    out = json.loads(proc.stdout.read())
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mib": round(out.pop("vm_hwm_mib"), 1),
            "peak_anon_rss_mib": round(peak[0] / 1024, 1), **out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 889_000])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--lists", action="store_true", help="also the in-memory list path at the first size")
    parser.add_argument("--work", default="/tmp/bench-tokenize")
    parser.add_argument("--make-set", nargs=3, metavar=("PATH", "ROWS", "SCALE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make_set:
        path, rows, scale = args.make_set
        make_set(Path(path), int(rows), int(scale))
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src, tok = str(ROOT / "src"), tokenizer_dir(work)
    max_length = MAX_LENGTH // args.scale
    (work / "tok.json").write_text(json.dumps({"max_length": max_length}))
    results = []
    for rows in args.rows:
        data = work / f"set-{rows}.parquet"
        if not data.is_file():   # in a child: this process stays small (its RSS would count in its children's)
            subprocess.run([sys.executable, __file__, "--make-set", str(data), str(rows), str(args.scale)], check=True)
        shards = work / f"tokens-{rows}"
        subprocess.run(["rm", "-rf", str(shards)], check=True)
        code = (f"import sys; sys.path.insert(0, {src!r}); from plasticity.train import tokens; "
                f"tokens.main(['--config', {str(work / 'tok.json')!r}, '--tokenizer', {str(tok)!r}, "
                f"'--data', {str(data)!r}, '--out', {str(shards)!r}, '--threads', '{args.workers}'])")
        tokenize = timed(code)
        stats = json.loads((shards / "stats.json").read_text())
        tokenize["tokens_per_s"] = round(stats["tokens"] / tokenize["seconds"])
        entry = {"rows": rows, "tokens": stats["tokens"], "mean_length": stats["mean_length"],
                 "shard_gb": round(sum(p.stat().st_size for p in shards.glob("*.arrow")) / 1e9, 2),
                 "tokenize": tokenize, "rank": rank_loading(src, tok, shards, args.batches)}
        if args.lists and rows == args.rows[0]:
            entry["lists"] = timed(LISTS.format(src=src, tok=str(tok), data=str(data), max_length=max_length))
        results.append(entry)
        print(json.dumps(entry), flush=True)
    load = os.getloadavg()
    print(json.dumps({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                      "load_avg_at_end": [round(x, 1) for x in load], "scale": args.scale,
                      "max_length": max_length, "workers": args.workers}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
