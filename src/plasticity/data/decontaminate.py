"""Decontaminate: drop training rows that overlap a benchmark problem; optionally clean the
benchmarks of problems too similar to the training data.

Reads:  FILTERED/{trajectories,rl_matched,rl_prompts}.parquet (the filter stage's output),
        BENCH_DIR/*.parquet (schema.BENCHMARK), the config section ``data.decontaminate``.
Writes: OUT/trajectories.parquet, OUT/rl_matched.parquet, OUT/rl_prompts.parquet (same schemas,
        contaminated rows removed), OUT/ledger.parquet (one row per removed training row, naming
        the shared n-gram and the benchmark problem), OUT/manifest.json (counts per table and per
        benchmark). With ``benchmark_side`` configured also OUT/benchmarks/<file>.parquet (each
        suite minus the removed problems) and OUT/benchmark_ledger.parquet.

Run by hand:
    python -m plasticity decontaminate --config decontaminate.json --filtered results/data/filtered \
        --benchmarks results/benchmarks --out results/data/decontaminated

Training side (always on). A training prompt is contaminated when it shares a word n-gram
(``ngram``, default 8) with any benchmark prompt, or contains the whole word sequence of a benchmark
prompt shorter than n words (the miniature's chain sums are all that short); both sides are first
normalised (Unicode NFKC, zero-width and control characters, LaTeX spacing and brace forms: see
overlap.py). Words are lower-cased ``\\w+`` runs and single punctuation/operator characters
(text.words), so ``7-3+5=`` is six words and never collides with ``7+3-5=``. A benchmark file with
a missing or blank prompt stops the stage naming the file and row. The benchmark index sits in
memory (benchmarks are small); the training side is streamed
in record batches and, above ``PARALLEL_MIN_ROWS`` rows, shingled in a process pool over the
job's CPUs (``--threads``: the rule's threads, ``workers`` in the config). ``fields`` (default [prompt]) may add ``response`` for SFT rows.

Benchmark side (``benchmark_side: {model_path, threshold, pooling}``; the study's choice:
Qwen3-Embedding-8B, last-token pooling, cosine > 0.8). Every benchmark prompt is embedded once;
training prompts (kept SFT and RL prompts) are embedded in batches and only the running maximum
similarity per benchmark problem is kept, so memory is bounded by one batch. OUT/benchmarks/ is then
a complete benchmarks directory (the cleaned files and a manifest with their sha256), and every
evaluation of the workflow reads it instead of the raw suites: the study's 2,157-problem suite is
this cleaning of its six benchmarks. The embedding function is injectable (``embed=``) for tests.

Overlap: the pool matches the next batch while this thread filters, logs and hands the current
one to ``TableWriter``'s background thread; the outputs are the same bytes as a sequential run, and
the inputs are hashed for the manifest while the stage works (``tables.InputDigests``). Batches
are read in this thread, one ahead of the one being finished, not prefetched further: a
prefetched batch cost ~200 MiB of peak memory for no measured gain.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
from pathlib import Path
from typing import Any, Callable, Iterable

import pyarrow as pa

from plasticity import parquet_io
from plasticity import schema as S
from plasticity.data.filters import MATCHED
from plasticity.data.tables import (INTERMEDIATE_COMPRESSION, DataError, InputDigests, Ledger, TableWriter,
                                    iter_batches, keep_rows, num_rows, read_table, tune_stage_process)
from plasticity.data.overlap import OverlapIndex
from plasticity.io import atomic_path, write_manifest

STAGE = "decontaminate"
TABLES = (("trajectories.parquet", S.TRAJECTORY), ("rl_matched.parquet", MATCHED),
          ("rl_prompts.parquet", S.RL_PROMPT))
PARALLEL_MIN_ROWS = 20_000        # below this a pool costs more than it saves
_CHUNK = 2048
_BATCH = 4096
EmbedFn = Callable[[list[str]], Any]   # texts -> array (n, d)

_INDEX = OverlapIndex(8)


# ----------------------------------------------------------------------------------- n-gram side
def benchmark_index(bench_dir: str | Path, n: int) -> tuple[OverlapIndex, list[dict[str, Any]]]:
    """(the benchmark prompts indexed, owner 'benchmark/problem_id'; the benchmark rows)."""
    index = OverlapIndex(n)
    rows: list[dict[str, Any]] = []
    files = sorted(Path(bench_dir).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{bench_dir}: no benchmark parquet files to decontaminate against")
    for path in files:
        table = read_table(path, S.BENCHMARK, columns=["problem_id", "benchmark", "prompt"], allow_extra=True)
        for i, row in enumerate(table.to_pylist()):
            if not isinstance(row["prompt"], str) or not row["prompt"].strip():
                raise DataError(f"{path} row {i}: field 'prompt' is {row['prompt']!r}; a benchmark problem "
                                "needs a prompt to decontaminate against")
            rows.append({**row, "file": path.name, "row": i})
            index.add(row["prompt"], f"{row['benchmark']}/{row['problem_id']}")
    return index, rows


def _init_worker(index: OverlapIndex) -> None:
    global _INDEX
    _INDEX = index


def _first_hits(texts: list[str], n: int) -> list[tuple[str, str] | None]:
    """For each text, (shared words, benchmark problem) of its first overlap, or None."""
    return [_INDEX.first_hit(text) for text in texts]


def _hits_star(args: tuple[list[str], int]) -> list[tuple[str, str] | None]:
    return _first_hits(*args)


class _Matcher:
    """Runs ``_first_hits`` in-process or in a pool, with results in input order."""

    def __init__(self, index: OverlapIndex, n: int, workers: int):
        self.n, self.pool = n, None
        _init_worker(index)
        if workers > 1:
            self.pool = multiprocessing.get_context("fork").Pool(workers, _init_worker, (index,))

    def __call__(self, texts: list[str]) -> list[tuple[str, str] | None]:
        return self.submit(texts)()

    def submit(self, texts: list[str]) -> Callable[[], list[tuple[str, str] | None]]:
        """Start matching ``texts`` (in the pool, without waiting); call the result to get the hits."""
        if self.pool is None:
            hits = _first_hits(texts, self.n)
            return lambda: hits
        chunks = [(texts[i:i + _CHUNK], self.n) for i in range(0, len(texts), _CHUNK)]
        job = self.pool.map_async(_hits_star, chunks)
        return lambda: [hit for part in job.get() for hit in part]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


def _decontaminate_table(path: Path, schema: pa.Schema, fields: list[str], match: _Matcher,
                         ledger: Ledger, out: Path) -> dict[str, Any]:
    from tqdm import tqdm

    fields = [f for f in fields if f in schema.names]
    by_benchmark: dict[str, int] = {}
    with TableWriter(out, schema, INTERMEDIATE_COMPRESSION) as writer, \
            tqdm(total=num_rows(path), desc=f"decontaminate {path.name}", unit="rows",
                 mininterval=2.0, leave=False) as bar:
        rows_in = 0

        def start(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, Callable[[], list] | None]:
            """Read the batch's first field and start matching it."""
            if not fields:
                return batch, None
            return batch, match.submit([v or "" for v in batch.column(fields[0]).to_pylist()])

        def finish(batch: pa.RecordBatch, first_hits: Callable[[], list] | None) -> None:
            hits: list[tuple[str, str, str] | None] = [None] * batch.num_rows
            for k, field in enumerate(fields):
                todo = [i for i in range(batch.num_rows) if hits[i] is None]
                if k == 0:
                    found = first_hits()
                else:
                    column = batch.column(field).to_pylist()
                    found = match([column[i] or "" for i in todo])
                for i, hit in zip(todo, found):
                    if hit is not None:
                        hits[i] = (field, *hit)
            keep = [hit is None for hit in hits]
            writer.add_table(keep_rows(batch, keep))
            ids, files, rownums = (batch.column(c).to_pylist() for c in ("problem_id", "source_file", "source_row"))
            for i, hit in enumerate(hits):
                if hit is not None:
                    field, gram, owner = hit
                    ledger.drop(ids[i], "benchmark_overlap",
                                f"{files[i]} row {rownums[i]}: {field} {gram} {owner}",
                                file=files[i], row=rownums[i], field=field)
                    bench = owner.split("/", 1)[0]
                    by_benchmark[bench] = by_benchmark.get(bench, 0) + 1
            bar.update(batch.num_rows)

        # One batch ahead: the pool matches batch i+1 while this thread filters and logs batch i.
        pending = None
        for batch in iter_batches(path, schema, batch_size=_BATCH):   # no prefetch: see run()
            rows_in += batch.num_rows
            started = start(batch)
            if pending is not None:
                finish(*pending)
            pending = started
        if pending is not None:
            finish(*pending)
    return {"in": rows_in, "kept": writer.count, "dropped": rows_in - writer.count,
            "dropped_by_benchmark": dict(sorted(by_benchmark.items()))}


# ----------------------------------------------------------------------------------- embedding side
def load_embedder(model_path: str | Path, pooling: str = "last", batch_size: int = 64) -> EmbedFn:
    """L2-normalised sentence embeddings from a local model directory (safetensors weights only).

    With sentence-transformers installed, its own pipeline (the model's configured pooling);
    otherwise the transformers encoder's last hidden states pooled by ``pooling``: ``last`` (the
    last real token, what Qwen3-Embedding uses) or ``mean`` (over real tokens, BERT-style encoders).
    Either pooling ignores padding, so a text's vector does not depend on its batch.
    """
    import numpy as np

    from plasticity.models import load_tokenizer, require_safetensors

    if pooling not in ("last", "mean"):
        raise ValueError(f"benchmark_side.pooling must be last or mean, got {pooling!r}")
    require_safetensors(model_path)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        SentenceTransformer = None
    if SentenceTransformer is not None:
        model = SentenceTransformer(str(model_path), local_files_only=True, model_kwargs={"use_safetensors": True})
        return lambda texts: model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    import torch
    from transformers import AutoModel

    tokenizer = load_tokenizer(model_path)
    model = AutoModel.from_pretrained(str(model_path), local_files_only=True, use_safetensors=True).eval()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)

    @torch.no_grad()
    def embed(texts: list[str]) -> Any:
        outs = []
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, return_tensors="pt").to(device)
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"]
            if pooling == "last":   # the last real token, whichever side the tokenizer pads
                positions = torch.arange(mask.shape[1], device=device)
                vec = hidden[torch.arange(len(hidden), device=device), (mask * positions).argmax(1)]
            else:
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                vec = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
            outs.append(torch.nn.functional.normalize(vec.float(), dim=-1).cpu().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, 1))

    return embed


def _unit(matrix: Any) -> Any:
    import numpy as np

    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def benchmark_side(bench_rows: list[dict[str, Any]], bench_dir: Path, training: Iterable[tuple[list[str], list[str]]],
                   embed: EmbedFn, threshold: float, out: Path) -> dict[str, Any]:
    """Remove benchmark problems whose cosine similarity to some training prompt exceeds
    ``threshold``; write the cleaned suites under ``out/benchmarks`` and their ledger."""
    from collections import Counter

    import numpy as np

    from plasticity.eval.registry import MANIFEST_KEY
    from plasticity.io import MANIFEST, is_complete, read_json, sha256_file

    bench_vecs = _unit(embed([r["prompt"] for r in bench_rows]))
    best = np.full(len(bench_rows), -np.inf)
    nearest: list[str | None] = [None] * len(bench_rows)
    for ids, texts in training:
        if not texts:
            continue
        sims = _unit(embed(texts)) @ bench_vecs.T          # (batch, benchmarks)
        arg = sims.argmax(axis=0)
        top = sims[arg, np.arange(len(bench_rows))]
        better = top > best
        for j in np.nonzero(better)[0]:
            best[j], nearest[j] = top[j], ids[arg[j]]
    removed = {(r["file"], r["row"]) for r, s in zip(bench_rows, best) if s > threshold}
    suite = out / "benchmarks"
    suite.mkdir(parents=True, exist_ok=True)
    # The cleaned suite is a benchmarks directory the evaluation reads like the benchmarks stage's
    # own (eval.registry.load_suites): one manifest entry per file, with its sha256, count and roles.
    source = read_json(bench_dir / MANIFEST).get(MANIFEST_KEY, {}) if is_complete(bench_dir) else {}
    per_file: dict[str, dict[str, int]] = {}
    entries: dict[str, dict[str, Any]] = {}
    with Ledger(out / "benchmark_ledger.parquet", STAGE) as ledger:
        for r, s, near in zip(bench_rows, best, nearest):
            if (r["file"], r["row"]) in removed:
                ledger.drop(r["problem_id"], "similar_to_training",
                            f"{r['file']} row {r['row']}: cosine {s:.3f} > {threshold} with training prompt {near}",
                            file=r["file"], row=r["row"], field="prompt")
        for path in sorted(bench_dir.glob("*.parquet")):
            table = read_table(path, S.BENCHMARK, allow_extra=True)
            keep = [(path.name, i) not in removed for i in range(table.num_rows)]
            cleaned = table.filter(pa.array(keep, type=pa.bool_()))
            parquet_io.write_table(cleaned, suite / path.name, compression="zstd")
            per_file[path.name] = {"in": table.num_rows, "kept": cleaned.num_rows}
            roles = Counter(cleaned.column("role").to_pylist())
            entries[path.stem] = {
                "file": path.name, "sha256": sha256_file(suite / path.name), "count": cleaned.num_rows,
                "roles": dict(sorted(roles.items())),
                "provenance": {"cleaned_from": {"file": str(path), "sha256": sha256_file(path),
                                                "count": table.num_rows},
                               "rule": f"cosine similarity to a training prompt > {threshold}",
                               "source": source.get(path.stem, {}).get("provenance")}}
    write_manifest(suite, stage="decontaminate-benchmarks", extra={MANIFEST_KEY: entries})
    return {"threshold": threshold, "removed": len(removed), "files": per_file}


def _training_prompts(tables: list[tuple[Path, pa.Schema]]) -> Iterable[tuple[list[str], list[str]]]:
    for path, schema in tables:
        for batch in iter_batches(path, schema, columns=["problem_id", "prompt"], batch_size=1024):
            yield batch.column("problem_id").to_pylist(), batch.column("prompt").to_pylist()


# ----------------------------------------------------------------------------------- stage
def run(cfg: dict[str, Any], filtered: str | Path, bench_dir: str | Path, out: str | Path, *,
        embed: EmbedFn | None = None, seed: int | None = None, threads: int = 1) -> dict[str, Any]:
    """Decontaminate ``filtered`` against ``bench_dir`` into ``out`` on ``threads`` CPUs."""
    tune_stage_process()
    filtered, bench_dir = Path(filtered), Path(bench_dir)
    n = int(cfg.get("ngram", 8))
    fields = list(cfg.get("fields") or ["prompt"])
    index, bench_rows = benchmark_index(bench_dir, n)
    total = sum(num_rows(filtered / name) for name, _ in TABLES)
    workers = max(1, threads) if total >= PARALLEL_MIN_ROWS else 1
    counts: dict[str, Any] = {"ngram": n, "fields": fields, "benchmark_shingles": len(index), "tables": {}}
    with atomic_path(out) as tmp:
        match = _Matcher(index, n, workers)
        # Started after the pool has forked: no thread of ours is ever copied into a child.
        digests = InputDigests({"filtered": filtered, "benchmarks": bench_dir})
        try:
            with Ledger(tmp / "ledger.parquet", STAGE) as ledger:
                for name, schema in TABLES:
                    counts["tables"][name] = _decontaminate_table(filtered / name, schema, fields, match,
                                                                  ledger, tmp / name)
        finally:
            match.close()
        dropped = sum(c["dropped"] for c in counts["tables"].values())
        if dropped != ledger.total:
            raise AssertionError(f"decontaminate: {dropped} rows removed but {ledger.total} ledger rows")
        side = cfg.get("benchmark_side")
        if side:
            embed = embed or load_embedder(side["model_path"], side.get("pooling", "last"))
            counts["benchmark_side"] = benchmark_side(
                bench_rows, bench_dir,
                _training_prompts([(tmp / "trajectories.parquet", S.TRAJECTORY),
                                   (tmp / "rl_prompts.parquet", S.RL_PROMPT)]),
                embed, float(side.get("threshold", 0.8)), tmp)
        write_manifest(tmp, stage=STAGE, config=cfg, seed=seed,
                       extra={"inputs": digests.manifest_inputs(), "counts": counts})
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plasticity decontaminate", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help='JSON: {"seed": int, "decontaminate": {...}}')
    parser.add_argument("--filtered", required=True, help="the filter stage's output directory")
    parser.add_argument("--benchmarks", required=True, help="directory of benchmark parquet files")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--threads", type=int, default=1, help="CPUs to use (the rule's {threads}; default 1)")
    args = parser.parse_args(argv)
    from plasticity.data.tables import load_stage_config

    seed, cfg = load_stage_config(args.config, "decontaminate")
    counts = run(cfg, args.filtered, args.benchmarks, args.out, seed=seed, threads=args.threads)
    print(json.dumps({"stage": STAGE, **{name: {k: c[k] for k in ("in", "kept", "dropped")}
                                         for name, c in counts["tables"].items()}}))
    return 0
