"""Ingest: map every configured source from its native schema to the canonical tables.

Reads:  the config sections ``data.sources`` (SFT trajectory sources) and ``data.rl_source``; each
        source is read from a local path (``path: teacher`` = RAW_DIR/<name>; otherwise a file or a
        directory of .jsonl / .jsonl.zst / .json / .parquet files) or, for ``hub_id`` + pinned
        ``revision``, the snapshot the ``download_source`` rule fetched on the submit host
        (DOWNLOADS/<name>; compute jobs never reach the hub).
Writes: OUT/trajectories.parquet (schema.TRAJECTORY), OUT/rl_prompts.parquet (schema.RL_PROMPT),
        OUT/ledger.parquet (schema.LEDGER), OUT/manifest.json (counts per source and reason; per
        source, the sha256 of the data files as they were read: ``io.sha256_tree``'s digest over the
        files ingested, which for a file or a directory holding only data files is sha256_tree's).

Run by hand:
    python -m plasticity ingest --config ingest.json --raw results/data/raw --out results/data/ingested \
        [--downloads results/data/downloads]

Rows are streamed (one line / one record batch at a time) in config order, then sorted file order,
then row order, so "first occurrence" downstream means the first by (source, file, row).
``problem_id`` = ``<source>-<sha256(normalised prompt)[:16]>``: stable across reruns and file
orders, shared by exact-duplicate prompts of one source (dedup happens in the filter stage).
Bad rows (invalid UTF-8, malformed JSON, missing fields, wrong types) become ledger rows naming the
file, row and field; an empty shard counts as one input record with a ledger row ``empty_shard``,
so rows in = rows kept + ledger rows holds exactly; ledger rows carry ``file``, ``row`` and
``field`` as columns (records.py lists the row-level reasons). A file-level fault stops the stage
with an error naming the file (source_files.py): unreadable, a broken or looping link, not in its
format, corrupt or truncated, not a regular file, or changed while it was read
(source_stream.py); so does an output directory inside an input tree. A line longer than the
maximum record size (``--max-record-bytes``, default ``native.MAX_RECORD_BYTES``) is skipped
unread into the ledger as ``record_too_long``. RL rows whose
``ability`` is not math are dropped here (``not_math``), since schema.RL_PROMPT carries no domain.
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from plasticity import schema as S
from plasticity.data import am40m_blocks, native
from plasticity.data.records import checked_text
from plasticity.data.source_files import check_out_outside, list_files
from plasticity.data.source_stream import SourceStream
from plasticity.data.tables import INTERMEDIATE_COMPRESSION, DataError, Ledger, TableWriter, tune_stage_process
from plasticity.data.text import normalise_prompt
from plasticity.io import atomic_path, tree_digest, write_manifest
from plasticity.problems import problem_id

STAGE = "ingest"
ARROW_BLOCKS = True      # AM-40M JSONL through am40m_blocks (same rows as the row path; tests turn it off)
_PROGRESS_EVERY = 2000


def resolve_source(source: dict[str, Any], raw_dir: Path, downloads: Path | None = None) -> Path:
    """The local file or directory holding ``source`` (a hub source: its downloaded snapshot)."""
    if source.get("path") == "teacher":
        return raw_dir / source["name"]
    if source.get("path"):
        return Path(source["path"])
    if not source.get("hub_id") or not source.get("revision"):
        raise DataError(f"source {source.get('name')!r}: needs `path` or `hub_id` + pinned `revision`")
    snapshot = Path(downloads or raw_dir / "downloads") / source["name"]
    if not (snapshot / "manifest.json").is_file():
        raise DataError(f"source {source['name']!r}: no downloaded snapshot of {source['hub_id']}@{source['revision']} "
                        f"at {snapshot} (the download_source rule fetches it on the submit host)")
    return snapshot


def _ingest_source(source: dict[str, Any], root: Path, writer: TableWriter, ledger: Ledger,
                   rl: bool, max_record_bytes: int) -> tuple[dict[str, Any], str]:
    """Ingest one source; returns its counts and the digest of its data files as read."""
    from tqdm import tqdm

    fmt, name = source["format"], source["name"]
    expected = native.RL_FORMATS if rl else native.SFT_FORMATS
    if fmt not in expected:
        raise DataError(f"source {name!r}: format {fmt!r} is not one of {expected}")
    mapper = native.MAPPERS[fmt]
    counts: dict[str, Any] = {"in": 0, "kept": 0, "dropped": collections.Counter()}
    files = list_files(root)
    bar = tqdm(desc=f"ingest {name}", unit="rows", mininterval=2.0, leave=False)

    def add_record(source_file: str, file_name: str, row: int | None, record: dict | native.RowError) -> None:
        where = f"{source_file} row {row}" if row is not None else source_file
        try:
            if isinstance(record, native.RowError):
                raise record
            mapped = mapper(record, file_name)
            # Text that reached a field through JSON text inside a column (verl's extra_info,
            # ground-truth lists) has not been through records.decode_line's check.
            if isinstance(bad := checked_text(mapped), native.RowError):
                raise bad
        except native.RowError as err:
            ledger.drop(None, err.reason, f"{where}: {err}", file=source_file, row=row, field=err.field)
            counts["dropped"][err.reason] += 1
            return
        pid = problem_id(name, normalise_prompt(mapped["prompt"]))
        if rl and mapped.pop("domain") != "math":
            ledger.drop(pid, "not_math", f"{where}: ability is not math", file=source_file, row=row,
                        field="ability")
            counts["dropped"]["not_math"] += 1
            return
        writer.add({"problem_id": pid, "source": name, "source_file": source_file, "source_row": row, **mapped})
        counts["kept"] += 1

    digests: list[tuple[str, str]] = []
    for path in files:
        rel = path.name if root.is_file() else path.relative_to(root).as_posix()
        source_file = f"{name}/{rel}"
        with SourceStream(path) as stream:
            if fmt == "am_40m" and ARROW_BLOCKS and path.name.endswith((".jsonl", ".jsonl.zst")):
                for kind, first_row, part in am40m_blocks.blocks(stream, max_record_bytes):
                    if kind == "table":
                        writer.add_batch(_with_provenance(part, name, source_file, first_row))
                        counts["in"] += part.num_rows
                        counts["kept"] += part.num_rows
                        bar.update(part.num_rows)
                    else:
                        for row, record in part:
                            counts["in"] += 1
                            add_record(source_file, path.name, row, record)
                        bar.update(len(part))
            else:
                for row, record in native.iter_records(stream, max_record_bytes=max_record_bytes):
                    counts["in"] += 1
                    if counts["in"] % _PROGRESS_EVERY == 0:
                        bar.update(_PROGRESS_EVERY)
                    add_record(source_file, path.name, row, record)
            digests.append((rel, stream.finish()))
    bar.close()
    counts["files"] = len(files)
    counts["dropped"] = dict(sorted(counts["dropped"].items()))
    return counts, digests[0][1] if root.is_file() else tree_digest(digests)


def _with_provenance(mapped: pa.Table, name: str, source_file: str, first_row: int) -> pa.Table:
    """A block of mapped AM-40M rows with the columns ``add_record`` adds to each dict row."""
    ids = [problem_id(name, normalise_prompt(p)) for p in mapped.column("prompt").to_pylist()]
    n = mapped.num_rows
    return mapped.append_column("problem_id", pa.array(ids, pa.string())) \
        .append_column("source", pa.array([name] * n, pa.string())) \
        .append_column("source_file", pa.array([source_file] * n, pa.string())) \
        .append_column("source_row", pa.array(range(first_row, first_row + n), pa.int64()))


def run(sources: list[dict[str, Any]], rl_source: dict[str, Any], raw_dir: str | Path,
        out: str | Path, *, seed: int | None = None, config: Any = None,
        downloads: str | Path | None = None, max_record_bytes: int = native.MAX_RECORD_BYTES) -> dict[str, Any]:
    """Ingest every source into ``out``; return the manifest's counts."""
    tune_stage_process()
    raw_dir = Path(raw_dir)
    names = [s["name"] for s in sources] + [rl_source["name"]]
    if len(set(names)) != len(names):
        raise DataError(f"source names must be unique, got {names}")
    roots = {s["name"]: resolve_source(s, raw_dir, Path(downloads) if downloads else None)
             for s in [*sources, rl_source]}
    check_out_outside(out, roots)
    with atomic_path(out) as tmp:
        per_source: dict[str, Any] = {}
        inputs: dict[str, Any] = {}

        def ingest_one(source: dict[str, Any], writer: TableWriter, rl: bool) -> None:
            name = source["name"]
            per_source[name], digest = _ingest_source(source, roots[name], writer, ledger, rl, max_record_bytes)
            inputs[name] = {"path": str(roots[name]), "sha256": digest}

        with Ledger(tmp / "ledger.parquet", STAGE) as ledger:
            with TableWriter(tmp / "trajectories.parquet", S.TRAJECTORY, INTERMEDIATE_COMPRESSION) as writer:
                for source in sources:
                    ingest_one(source, writer, rl=False)
            with TableWriter(tmp / "rl_prompts.parquet", S.RL_PROMPT) as writer:
                ingest_one(rl_source, writer, rl=True)
        total_in = sum(c["in"] for c in per_source.values())
        kept = sum(c["kept"] for c in per_source.values())
        if total_in != kept + ledger.total:      # the stage's own invariant, checked every run
            raise AssertionError(f"ingest: {total_in} rows in != {kept} kept + {ledger.total} dropped")
        counts = {"in": total_in, "kept": kept, "dropped": ledger.total,
                  "dropped_by_reason": dict(sorted(ledger.counts.items())), "sources": per_source}
        write_manifest(tmp, stage=STAGE, config=config, seed=seed,
                       extra={"inputs": inputs, "counts": counts})
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plasticity ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True,
                        help='JSON: {"seed": int, "sources": [...], "rl_source": {...}}')
    parser.add_argument("--raw", required=True, help="raw directory (the simulated teacher's output)")
    parser.add_argument("--downloads", help="directory of the hub sources' snapshots (stage download)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--max-record-bytes", type=int, default=native.MAX_RECORD_BYTES,
                        help="a JSON line longer than this is skipped unread into the ledger "
                             f"(record_too_long; default {native.MAX_RECORD_BYTES})")
    args = parser.parse_args(argv)
    from plasticity.data.tables import load_stage_config

    seed, sources = load_stage_config(args.config, "sources")
    _, rl_source = load_stage_config(args.config, "rl_source")
    counts = run(sources, rl_source, args.raw, args.out, seed=seed,
                 config={"sources": sources, "rl_source": rl_source}, downloads=args.downloads,
                 max_record_bytes=args.max_record_bytes)
    print(json.dumps({"stage": STAGE, "in": counts["in"], "kept": counts["kept"],
                      "dropped": counts["dropped"]}))
    return 0
