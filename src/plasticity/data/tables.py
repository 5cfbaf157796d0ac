"""Streaming parquet I/O, the drop ledger and stage-config loading for the data stages.

Tables are read as record batches and written through a buffered ``ParquetWriter``, so a stage's
memory is bounded by the batch size, not by the corpus. Writer settings are fixed (codec per table,
row groups cut at a fixed row/byte budget) so the same rows always give the same bytes.

Speed without changing bytes (the stages are CPU-bound on 2 cores):
  * ``TableWriter`` encodes and compresses row groups in one background thread (pyarrow releases
    the GIL there), so the stage's Python work overlaps the parquet writing. The thread writes the
    same tables in the same order as a synchronous writer would, so the file is byte-identical.
  * ``TableWriter.add_batch`` appends Arrow rows with the same row-group cut rule as ``add`` (the
    rows' string lengths are counted exactly as for dicts), so a stage that only drops rows need
    not round-trip them through Python dicts.
  * ``prefetch`` reads the next record batch in a background thread while the stage works on
    the current one. ``iter_batches`` decodes single-threaded: pyarrow's threaded column decoding
    cost 2.7x the CPU (2.4 s vs 0.9 s for the 50K-row table) for no gain on 2 cores.
  * ``tune_stage_process`` sets the memory behaviour of a stage process (huge pages, allocator).
  * ``open_table`` turns pyarrow's pre-buffering off: with it on, the reader keeps every
    compressed column chunk it has read until the file is closed, so memory grew with the table.

Every table is written with page checksums and read with them checked (``plasticity.parquet_io``):
a damaged page is a ``DataError`` naming the file, the row group and the column.
"""
from __future__ import annotations

import collections
import json
import queue
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from plasticity import parquet_io
from plasticity import schema as S

BATCH_ROWS = 4096                 # rows per record batch read
_FLUSH_ROWS = 8192                # row-group cut: whichever of rows / bytes comes first
_FLUSH_BYTES = 64 << 20
COMPRESSION = "zstd"              # named sets and other outputs people keep
# The stage-to-stage trajectory tables (ingested, filtered, decontaminated) are written once and
# read once or twice by the next stage: lz4 costs 0.4 s less to write and 0.85 s less to read per
# 41K trajectories (0.8 GB of text) than zstd, for files 1.6x the size (measured on the data benchmark).
INTERMEDIATE_COMPRESSION = "lz4"
# Columns of long free text: no dictionary encoding (every value is distinct; the writer would hash
# them before falling back to plain) and no min/max statistics (useless for text): 0.3 s less per
# 0.8 GB written.
LONG_TEXT = ("prompt", "response")


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


class _BackgroundWriter:
    """Runs ``ParquetWriter.write_table`` calls in one thread, in submission order.

    At most ``depth`` tables wait in the queue, so memory stays bounded by a few row groups; an
    error in the thread is re-raised in the caller at the next ``submit`` or at ``close``.
    """

    def __init__(self, writer: pq.ParquetWriter, depth: int = 1):
        self._writer = writer
        self._queue: queue.Queue[tuple[pa.Table, int | None] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="parquet-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:               # after an error, drain without writing
                try:
                    table, row_group_size = item
                    self._writer.write_table(table, row_group_size=row_group_size)
                except BaseException as exc:      # noqa: BLE001 - re-raised in the caller
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, table: pa.Table, row_group_size: int | None = None) -> None:
        self._raise()
        self._queue.put((table, row_group_size))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._raise()


class TableWriter:
    """Append rows (dicts or Arrow batches) or tables to one parquet file with a fixed schema,
    flushing in chunks: a row group is cut after the row that brings the pending rows to
    ``_FLUSH_ROWS`` rows or to ``_FLUSH_BYTES`` characters of string values.

    The file is always created, even with no rows, so an empty result is still a valid table.
    Row groups are written by a background thread (see the module docstring).
    """

    def __init__(self, path: str | Path, schema: pa.Schema, compression: str = COMPRESSION):
        self.path, self.schema = Path(path), schema
        self.path.parent.mkdir(parents=True, exist_ok=True)
        short = [f.name for f in schema if f.name not in LONG_TEXT]
        self._writer = parquet_io.writer(self.path, schema, compression=compression, use_dictionary=short,
                                         write_statistics=short)
        self._background = _BackgroundWriter(self._writer)
        self._parts: list[pa.Table | list[dict[str, Any]]] = []   # pending rows, in order
        self._rows: list[dict[str, Any]] = []                       # the open run of dict rows
        self._pending = 0
        self._bytes = 0
        self._strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        if not self._rows:
            self._parts.append(self._rows)
        self._rows.append(row)
        self.count += 1
        self._pending += 1
        self._bytes += sum(len(v) for v in row.values() if isinstance(v, str))
        if self._pending >= _FLUSH_ROWS or self._bytes >= _FLUSH_BYTES:
            self.flush()

    def add_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append the rows of ``batch`` (it must hold this schema's columns) as ``add`` would one
        by one: same row-group cuts, hence the same file bytes."""
        if batch.num_rows == 0:
            return
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        table = table.select(self.schema.names)
        sizes = self.string_lengths(table)
        start = 0
        while start < table.num_rows:
            end = self._cut(sizes, start)
            self._rows = []                            # a dict row after this starts a new run
            self._parts.append(table.slice(start, end - start))
            self.count += end - start
            self._pending += end - start
            self._bytes += int(sizes[start:end].sum())
            start = end
            if self._pending >= _FLUSH_ROWS or self._bytes >= _FLUSH_BYTES:
                self.flush()

    def string_lengths(self, table: pa.Table) -> Any:
        """Per row, the characters in its string columns (``len`` of each str value, nulls 0)."""
        total = np.zeros(table.num_rows, dtype=np.int64)
        for name in self._strings:
            total += pc.fill_null(pc.utf8_length(table.column(name)), 0).to_numpy()
        return total

    def _cut(self, sizes: Any, start: int) -> int:
        """End (exclusive) of the rows from ``start`` that fit before the next row-group cut."""
        room_rows = _FLUSH_ROWS - self._pending
        end = min(len(sizes), start + room_rows)
        cumulative = self._bytes + np.cumsum(sizes[start:end])
        over = np.flatnonzero(cumulative >= _FLUSH_BYTES)
        return start + int(over[0]) + 1 if len(over) else end

    def add_table(self, table: pa.Table) -> None:
        """Write ``table`` as row groups of ``_FLUSH_ROWS`` rows, after any pending rows."""
        if table.num_rows:
            self.flush()
            self._background.submit(table.select(self.schema.names).cast(self.schema), _FLUSH_ROWS)
            self.count += table.num_rows

    def flush(self) -> None:
        if not self._parts:
            return
        tables = [pa.Table.from_pylist(p, schema=self.schema) if isinstance(p, list) else p.cast(self.schema)
                  for p in self._parts]
        # Not combined into one chunk (a copy of every value): the writer copies the values into
        # pages anyway, and page boundaries that follow the chunking are as deterministic as the
        # chunking itself, which only depends on the rows and how the stage appended them.
        self._background.submit(tables[0] if len(tables) == 1 else pa.concat_tables(tables))
        self._parts, self._rows, self._pending, self._bytes = [], [], 0, 0

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._background.close()
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

    def drop(self, problem_id: str | None, reason: str, detail: str, *, file: str | None = None,
             row: int | None = None, field: str | None = None) -> None:
        """One dropped row: why (``reason``, ``detail``) and where (``file``, ``row``, ``field``)."""
        self.counts[reason] += 1
        self._writer.add({"problem_id": problem_id, "stage": self.stage, "reason": reason,
                          "detail": detail, "file": file, "row": row, "field": field})

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
    """Open a stage table, checking its schema (names and types) with the file named on mismatch;
    its pages are checked against their checksums as they are read."""
    path = Path(path)
    if not path.is_file():
        what = "missing input table" if not path.exists() else "input table is not a regular file"
        raise DataError(f"{path}: {what}")
    handle = parquet_io.open_file(path, error=DataError)
    S.validate(handle.schema_arrow.empty_table(), schema, str(path), allow_extra=allow_extra)
    return handle


def read_table(path: str | Path, schema: pa.Schema, *, columns: list[str] | None = None,
               allow_extra: bool = False) -> pa.Table:
    """A whole stage table (or ``columns`` of it), schema-checked."""
    handle = open_table(path, schema, allow_extra=allow_extra)
    return parquet_io.read(handle, path, columns=columns, error=DataError)


def iter_batches(path: str | Path, schema: pa.Schema, *, columns: list[str] | None = None,
                 batch_size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Record batches of a stage table (schema-checked), ``batch_size`` rows at a time."""
    handle = open_table(path, schema)
    yield from parquet_io.iter_batches(handle, path, error=DataError, batch_size=batch_size, columns=columns)


def keep_rows(table: pa.Table | pa.RecordBatch, keep: list[bool]) -> pa.Table:
    """The rows of ``table`` where ``keep`` is true, as zero-copy slices (``Table.filter`` copies
    every kept value; a stage that drops a few rows per batch keeps long runs)."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    mask = np.asarray(keep, dtype=bool)
    if mask.all():
        return table
    edges = np.flatnonzero(np.diff(np.concatenate(([False], mask, [False])).astype(np.int8)))
    runs = [table.slice(start, end - start) for start, end in zip(edges[::2], edges[1::2])]
    return pa.concat_tables(runs) if runs else table.slice(0, 0)


def read_row_group(path: str | Path, schema: pa.Schema, group: int, columns: list[str] | None = None) -> pa.Table:
    """Row group ``group`` of a stage table (schema-checked): the unit of work that stages hand to
    worker processes, since any process can read it from the file by its number."""
    return parquet_io.read_row_group(open_table(path, schema), path, group, columns=columns, error=DataError)


def iter_row_groups(path: str | Path, schema: pa.Schema) -> Iterator[pa.Table]:
    """Every row group of a stage table, in order (schema-checked)."""
    for group in range(num_row_groups(path)):
        yield read_row_group(path, schema, group)


def tune_stage_process() -> None:
    """Memory settings for a stage process; they change only memory layout, never an output.

    * Transparent huge pages off for this process (``prctl(PR_SET_THP_DISABLE)``, Linux >= 3.15,
      inherited by children). With THP set to ``always`` (as on the benchmark VM), every fresh
      64 MB row-group buffer faulted in 2 MiB pages with memory compaction inside the fault:
      up to 0.4 s of kernel time each, 0.9 s of ingest's main thread on the 50K-row corpus.
      Ordinary 4 KiB pages fault in about 8 ms per 64 MB.
    * Arrow buffers from jemalloc where pyarrow has it. With the default mimalloc, buffers
      allocated in one thread and freed in another (reader, stage, writer threads) were returned
      late, and the peak RSS of a stage rose with the length of the run; measured at 100K rows:
      decontaminate 920 -> 636 MiB, ingest 708 -> 533 MiB, same CPU time.
    """
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0)   # PR_SET_THP_DISABLE
        except (OSError, AttributeError):
            pass
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except (NotImplementedError, pa.ArrowException):
        pass


_T = TypeVar("_T")


def prefetch(items: Iterable[_T], depth: int = 1) -> Iterator[_T]:
    """``items``, produced one ahead in a background thread (for readers that release the GIL).

    At most ``depth`` items wait; an exception in the producer is re-raised here, in order.
    """
    done = object()
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put((True, item))
            slots.put((True, done))
        except BaseException as exc:          # noqa: BLE001 - handed to the consumer
            slots.put((False, exc))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = slots.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():              # unblock a producer waiting on a full queue
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


class InputDigests:
    """The ``inputs`` entry of a stage manifest, hashed in a background thread from stage start.

    ``plasticity.io.write_manifest`` hashes its inputs at the very end of a stage, serially (16.7
    GiB of raw JSONL for the 889K corpus: about 16 s). ``manifest_inputs()`` returns the exact dict
    write_manifest would build, passed to it as ``extra={"inputs": ...}`` (``extra`` entries
    override the computed ones, and write_manifest is then given no inputs to hash).

    The digests describe the bytes the stage read because every input file is checked unchanged
    from the start (before the stage reads it) to ``manifest_inputs()`` (after it has): same
    identity, size, modification and change times (``io.file_signature``). A file changed, added
    or removed meanwhile is a ``DataError`` naming it.
    """

    def __init__(self, inputs: dict[str, str | Path]):
        from plasticity.io import sha256_tree

        self._inputs = {name: Path(path) for name, path in inputs.items()}
        self._before = {name: _signatures(path) for name, path in self._inputs.items()}
        self._digests: dict[str, Any] = {}
        self._error: BaseException | None = None

        def work() -> None:
            try:
                for name, path in self._inputs.items():
                    if path.exists():
                        self._digests[name] = {"path": str(path), "sha256": sha256_tree(path)}
            except BaseException as exc:      # noqa: BLE001 - re-raised by manifest_inputs
                self._error = exc

        self._thread = threading.Thread(target=work, name="input-digests", daemon=True)
        self._thread.start()

    def manifest_inputs(self) -> dict[str, Any]:
        self._thread.join()
        for name, path in self._inputs.items():
            before, after = self._before[name], _signatures(path)
            if before != after:
                changed = sorted(set(before.items()) ^ set(after.items()))[0][0]
                raise DataError(f"{path / changed if changed else path}: input {name!r} changed while the "
                                f"stage read it; its hash would not describe the rows read: rerun once "
                                f"nothing is writing it")
        if self._error is not None:
            raise self._error
        return self._digests


def _signatures(path: Path) -> dict[str, tuple[int, ...]]:
    """``io.file_signature`` of ``path`` (key "") or of every file under it (relative names)."""
    from plasticity.io import MANIFEST, file_signature

    if path.is_file():
        return {"": file_signature(path.stat())}
    if not path.is_dir():
        return {}
    return {str(p.relative_to(path)): file_signature(p.stat()) for p in path.rglob("*")
            if p.is_file() and p.name != MANIFEST}


def num_rows(path: str | Path) -> int:
    return parquet_io.open_file(path, error=DataError).metadata.num_rows


def num_row_groups(path: str | Path) -> int:
    return parquet_io.open_file(path, error=DataError).metadata.num_row_groups


def read_column(path: str | Path, schema: pa.Schema, column: str) -> list[Any]:
    return read_table(path, schema, columns=[column]).column(column).to_pylist()


def write_rows(path: str | Path, rows: Iterable[dict[str, Any]], schema: pa.Schema) -> int:
    with TableWriter(path, schema) as writer:
        for row in rows:
            writer.add(row)
    return writer.count
