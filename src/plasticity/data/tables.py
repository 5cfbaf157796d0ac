"""Streaming parquet I/O, the drop ledger and stage-config loading for the data stages.

Tables are read as record batches and written through a buffered ``ParquetWriter``, so a stage's
memory is bounded by the batch size, not by the corpus. Writer settings are fixed (zstd, row groups
cut at a fixed row/byte budget) so the same rows always give the same bytes.
"""
from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from plasticity import schema as S

BATCH_ROWS = 4096                 # rows per record batch read
_FLUSH_ROWS = 8192                # row-group cut: whichever of rows / bytes comes first
_FLUSH_BYTES = 64 << 20
COMPRESSION = "zstd"


class DataError(RuntimeError):
    """Unreadable input: the message names the file (and row/field where there is one)."""


def load_stage_config(path: str | Path, key: str) -> tuple[int, dict[str, Any]]:
    """Read a stage's ``{"seed": int, key: {...}}`` JSON file; return (seed, section)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read stage config: {exc}") from exc
    if not isinstance(raw, dict) or "seed" not in raw or key not in raw:
        raise DataError(f"{path}: stage config needs keys 'seed' and {key!r}")
    if not isinstance(raw["seed"], int):
        raise DataError(f"{path}: 'seed' must be an int, got {raw['seed']!r}")
    return raw["seed"], raw[key]


class TableWriter:
    """Append rows (dicts) or tables to one parquet file with a fixed schema, flushing in chunks.

    The file is always created, even with no rows, so an empty result is still a valid table.
    """

    def __init__(self, path: str | Path, schema: pa.Schema):
        self.path, self.schema = Path(path), schema
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self.path, schema, compression=COMPRESSION)
        self._rows: list[dict[str, Any]] = []
        self._bytes = 0
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        self.count += 1
        self._bytes += sum(len(v) for v in row.values() if isinstance(v, str))
        if len(self._rows) >= _FLUSH_ROWS or self._bytes >= _FLUSH_BYTES:
            self.flush()

    def add_table(self, table: pa.Table) -> None:
        if table.num_rows:
            self.flush()
            self._writer.write_table(table.select(self.schema.names).cast(self.schema),
                                     row_group_size=_FLUSH_ROWS)
            self.count += table.num_rows

    def flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows, self._bytes = [], 0

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Ledger:
    """The drop ledger of one stage: one row per dropped input row (schema.LEDGER)."""

    def __init__(self, path: str | Path, stage: str):
        self.stage = stage
        self.counts: collections.Counter[str] = collections.Counter()
        self._writer = TableWriter(path, S.LEDGER)

    def drop(self, problem_id: str | None, reason: str, detail: str) -> None:
        self.counts[reason] += 1
        self._writer.add({"problem_id": problem_id, "stage": self.stage, "reason": reason,
                          "detail": detail})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_table(path: str | Path, schema: pa.Schema, *, allow_extra: bool = False) -> pq.ParquetFile:
    """Open a stage table, checking its schema (names and types) with the file named on mismatch."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing input table")
    try:
        handle = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({exc})") from exc
    S.validate(handle.schema_arrow.empty_table(), schema, str(path), allow_extra=allow_extra)
    return handle


def iter_batches(path: str | Path, schema: pa.Schema, *, columns: list[str] | None = None,
                 batch_size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Record batches of a stage table (schema-checked), ``batch_size`` rows at a time."""
    handle = open_table(path, schema)
    try:
        yield from handle.iter_batches(batch_size=batch_size, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: corrupt parquet data ({exc})") from exc


def num_rows(path: str | Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def read_column(path: str | Path, schema: pa.Schema, column: str) -> list[Any]:
    open_table(path, schema)
    return pq.read_table(path, columns=[column]).column(column).to_pylist()


def write_rows(path: str | Path, rows: Iterable[dict[str, Any]], schema: pa.Schema) -> int:
    with TableWriter(path, schema) as writer:
        for row in rows:
            writer.add(row)
    return writer.count
