"""Stage ``tokenize``: an SFT set tokenized once, as memory-mapped Arrow shards every SFT rank opens.

Reads a trajectory table (schema.TRAJECTORY: ``problem_id``, ``prompt``, ``response``) and the model's
tokenizer directory; writes::

    OUT/shard-00000.arrow ...   Arrow IPC streams, record batches of ``BATCH_ROWS`` rows, columns
                                input_ids (list<int32>), completion_mask (list<int8>), length (int32)
    OUT/ledger.parquet          rows dropped (schema.LEDGER): the prompt alone fills max_length
    OUT/stats.json              rows in / kept / dropped, tokens, completion tokens, mean length,
                                the tokenizer's fingerprint, max_length
    OUT/manifest.json           last

A row is tokenized as evaluation encodes its prompt (``models.chat_prompt``, no special tokens added:
the template writes them), then the completion and EOS separately after it (as verl's SFT dataset
does), cut to ``max_length`` tokens from the right (PAPER 2.4). A row whose prompt alone fills
``max_length`` has nothing to train on and goes to the ledger; kept + dropped = rows in.

Memory is bounded by the pipeline, not the set: the table is read ``BATCH_ROWS`` rows at a time, at
most ``2 x workers`` batches are in flight (``--threads``: forked workers tokenize, the main process
writes in input order, so the bytes do not depend on the worker count), and each shard is an Arrow
stream written batch by batch. SFT opens the shards with ``open_tokenized`` (``datasets`` memory-maps
them): no rank ever holds the set in Python lists. benchmarks/bench_tokenize.py measures both.

    python -m plasticity tokenize --config CFG.json --tokenizer results/tiny/tokenizer \\
        --data results/data/sets/uniform.parquet --out results/tiny/tokens/uniform/1024 [--threads N]
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import logging
import multiprocessing
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from plasticity import schema
from plasticity.io import atomic_path, read_json, write_json, write_manifest

log = logging.getLogger(__name__)

BATCH_ROWS = 1024                # rows per record batch (read and written)
SHARD_ROWS = 64 * BATCH_ROWS     # rows per shard file
TOKENS = pa.schema([("input_ids", pa.list_(pa.int32())), ("completion_mask", pa.list_(pa.int8())),
                    ("length", pa.int32())])
DROP_REASON = "prompt_fills_max_length"


def fingerprint(tokenizer: Any) -> str:
    """sha256 of what decides the token ids: the tokenizer's vocabulary and rules, its chat template, EOS.

    SFT compares it with its model's tokenizer before training on the shards.
    """
    backend = tokenizer.backend_tokenizer.to_str() if getattr(tokenizer, "backend_tokenizer", None) else \
        repr(sorted(tokenizer.get_vocab().items()))
    blob = "\0".join([backend, str(tokenizer.chat_template or ""), str(tokenizer.eos_token)])
    return hashlib.sha256(blob.encode()).hexdigest()


# ----------------------------------------------------------------------------- encoding one batch

_WORKER: dict[str, Any] = {}     # the forked workers' tokenizer and max_length


def encode_batch(prompts: list[str], completions: list[str], tokenizer: Any, max_length: int
                 ) -> tuple[pa.RecordBatch, list[int], int]:
    """(kept rows as a ``TOKENS`` record batch, indices of dropped rows, completion tokens kept).

    ``prompts`` are chat-formatted already (``models.chat_prompt``); each completion gets EOS.
    """
    eos = tokenizer.eos_token
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    c_ids = tokenizer([c + eos for c in completions], add_special_tokens=False)["input_ids"]
    ids_parts, mask_parts, lengths, dropped, completion = [], [], [], [], 0
    for i, (p, c) in enumerate(zip(p_ids, c_ids)):
        keep_c = max(0, min(len(c), max_length - len(p)))
        if keep_c == 0:
            dropped.append(i)
            continue
        ids_parts.append(np.asarray((p + c)[:len(p) + keep_c], dtype=np.int32))
        mask_parts.append(np.concatenate([np.zeros(len(p), np.int8), np.ones(keep_c, np.int8)]))
        lengths.append(len(p) + keep_c)
        completion += keep_c
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat_ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.int32)
    flat_mask = np.concatenate(mask_parts) if mask_parts else np.zeros(0, np.int8)
    batch = pa.RecordBatch.from_arrays([pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat_ids)),
                                        pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat_mask)),
                                        pa.array(np.asarray(lengths, dtype=np.int32))], schema=TOKENS)
    return batch, dropped, completion


def _encode_in_worker(args: tuple[list[str], list[str]]) -> tuple[pa.RecordBatch, list[int], int]:
    return encode_batch(*args, _WORKER["tokenizer"], _WORKER["max_length"])


def _batches(data: Path, tokenizer: Any) -> Iterator[tuple[list[str], list[str], list[str], int]]:
    """(problem ids, chat prompts, responses, first row index) of the trajectory table, BATCH_ROWS at a time."""
    from plasticity.data.tables import iter_batches
    from plasticity.models import chat_prompt

    first = 0
    for batch in iter_batches(data, schema.TRAJECTORY, columns=["problem_id", "prompt", "response"],
                              batch_size=BATCH_ROWS):
        cols = batch.to_pydict()
        yield cols["problem_id"], [chat_prompt(tokenizer, p) for p in cols["prompt"]], cols["response"], first
        first += batch.num_rows


def _encoded(data: Path, tokenizer: Any, max_length: int, workers: int
             ) -> Iterator[tuple[list[str], int, tuple[pa.RecordBatch, list[int], int]]]:
    """Each input batch's (problem ids, first row, encoding), in input order, with at most
    ``2 x workers`` batches in flight."""
    if workers <= 1:
        for ids, prompts, responses, first in _batches(data, tokenizer):
            yield ids, first, encode_batch(prompts, responses, tokenizer, max_length)
        return
    _WORKER.update(tokenizer=tokenizer, max_length=max_length)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pending: collections.deque = collections.deque()
        for ids, prompts, responses, first in _batches(data, tokenizer):
            pending.append((ids, first, pool.apply_async(_encode_in_worker, ((prompts, responses),))))
            if len(pending) >= 2 * workers:
                ids_, first_, result = pending.popleft()
                yield ids_, first_, result.get()
        while pending:
            ids_, first_, result = pending.popleft()
            yield ids_, first_, result.get()


# ----------------------------------------------------------------------------- the stage

class _ShardWriter:
    """Arrow IPC stream files of SHARD_ROWS rows each, written batch by batch."""

    def __init__(self, out: Path):
        self.out, self.index, self.rows, self._sink, self._writer = out, 0, 0, None, None

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._writer is None or self.rows >= SHARD_ROWS:
            self.close()
            self._sink = pa.OSFile(str(self.out / f"shard-{self.index:05d}.arrow"), "wb")
            self._writer = pa.ipc.new_stream(self._sink, TOKENS)
            self.index, self.rows = self.index + 1, 0
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None


def run(cfg: Any, tokenizer_dir: str | Path, data: str | Path, out: str | Path, *, threads: int = 1) -> Path:
    """Tokenize ``data`` with the tokenizer in ``tokenizer_dir``; write the shards into ``out``."""
    from tqdm import tqdm

    from plasticity.data.tables import Ledger, num_rows
    from plasticity.models import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    data, out = Path(data), Path(out)
    total = num_rows(data)
    stats = {"rows_in": 0, "rows_kept": 0, "rows_dropped": 0, "tokens": 0, "completion_tokens": 0}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        shards = _ShardWriter(tmp)
        with Ledger(tmp / "ledger.parquet", "tokenize") as ledger, \
                tqdm(total=total, desc=f"tokenize {data.name}", unit="row", mininterval=5) as bar:
            for ids, first, (batch, dropped, completion) in _encoded(data, tokenizer, cfg.max_length, threads):
                shards.write(batch)
                for i in dropped:
                    ledger.drop(ids[i], DROP_REASON, f"{data}: row {first + i}: the chat prompt alone fills "
                                f"max_length={cfg.max_length}", file=str(data), row=first + i, field="prompt")
                stats["rows_in"] += len(ids)
                stats["rows_kept"] += batch.num_rows
                stats["rows_dropped"] += len(dropped)
                stats["tokens"] += int(np.asarray(batch.column("length")).sum())
                stats["completion_tokens"] += completion
                bar.update(len(ids))
        shards.close()
        if stats["rows_in"] != stats["rows_kept"] + stats["rows_dropped"]:   # never: every row is one or the other
            raise RuntimeError(f"{data}: {stats['rows_in']} rows in != kept + dropped")
        write_json(tmp / "stats.json", {**stats, "max_length": cfg.max_length, "shards": shards.index,
                                        "mean_length": stats["tokens"] / max(1, stats["rows_kept"]),
                                        "tokenizer_sha256": fingerprint(tokenizer)})
        write_manifest(tmp, stage="tokenize", config=cfg.model_dump(mode="json"),
                       inputs={"tokenizer": tokenizer_dir, "data": data})
    log.info("tokenized %s: %s", data, stats)
    return out


# ----------------------------------------------------------------------------- reading

def open_tokenized(path: str | Path, tokenizer: Any | None = None) -> Any:
    """The shards of ``path`` as one memory-mapped ``datasets.Dataset`` (nothing is read into lists).

    With ``tokenizer``, its fingerprint must equal the one the shards were made with: a set
    tokenized by another tokenizer is an error naming the directory.
    """
    from datasets import Dataset, concatenate_datasets

    path = Path(path)
    stats = read_json(path / "stats.json")
    if tokenizer is not None and stats["tokenizer_sha256"] != fingerprint(tokenizer):
        raise ValueError(f"{path}: tokenized with another tokenizer (fingerprint {stats['tokenizer_sha256'][:12]}) "
                         f"than the model's ({fingerprint(tokenizer)[:12]}); rebuild it")
    shards = sorted(path.glob("shard-*.arrow"))
    if len(shards) != stats["shards"]:
        raise ValueError(f"{path}: {len(shards)} shard files, stats.json lists {stats['shards']}")
    if not shards:
        raise ValueError(f"{path}: no rows left to train on ({stats['rows_dropped']} dropped: see ledger.parquet)")
    sets = [Dataset.from_file(str(s), in_memory=False) for s in shards]
    return sets[0] if len(sets) == 1 else concatenate_datasets(sets)


def main(argv: list[str] | None = None) -> int:
    from plasticity.config import TokenizeSection, load_section

    parser = argparse.ArgumentParser(prog="python -m plasticity tokenize", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON: the tokenize section (plasticity.config.TokenizeSection)")
    parser.add_argument("--tokenizer", required=True, help="the model's tokenizer directory")
    parser.add_argument("--data", required=True, help="trajectories (parquet, schema.TRAJECTORY)")
    parser.add_argument("--out", required=True, help="output directory of shards")
    parser.add_argument("--threads", type=int, default=1, help="tokenizing processes (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    run(load_section(args.config, TokenizeSection), args.tokenizer, args.data, args.out, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
