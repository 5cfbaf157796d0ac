"""Parquet files with page checksums: every file the project writes carries them, every read checks them.

Writing: ``writer(path, schema, ...)`` (a ``pq.ParquetWriter``) and ``write_table(table, path, ...)``
set ``write_page_checksum=True``, so every page header (data, dictionary and dictionary-index pages
alike) holds the CRC32 of the page. Reading: ``open_file`` opens a file with
``page_checksum_verification=True`` and pre-buffering off (pre-buffered column chunks stay in memory
until the file is closed), and ``read_table`` / ``iter_batches`` / ``read_row_group`` read through
it. A page without a checksum (a file written elsewhere, e.g. a hub release) is read as before:
there is nothing to check it against.

Why: without the check a flipped byte in a dictionary-index page decodes to other valid indices, so
rows come back with other values and no error; with it every damaged page is an error.

A failed checksum or a page that does not decode raises ``error`` (``CorruptParquet`` unless the
caller passes its own class, as the data stages pass ``DataError``) naming the file, the row group
and the column: after the failure the row groups from the one being read are read again column by
column, and the first that fails is the one named. A footer that does not parse names the file only.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

READ_ERRORS = (pa.ArrowException, OSError)


class CorruptParquet(RuntimeError):
    """A parquet file that cannot be read as written: the message names the file, row group and column."""


def writer(where: str | os.PathLike, schema: pa.Schema, **options: Any) -> pq.ParquetWriter:
    """A ``ParquetWriter`` for ``where`` whose pages carry CRC32 checksums."""
    return pq.ParquetWriter(where, schema, write_page_checksum=True, **options)


def write_table(table: pa.Table, where: str | os.PathLike, **options: Any) -> None:
    """``pq.write_table`` with page checksums."""
    pq.write_table(table, where, write_page_checksum=True, **options)


def open_file(source: Any, where: str | os.PathLike | None = None, *,
              error: type[Exception] = CorruptParquet) -> pq.ParquetFile:
    """``source`` (a path or an open binary file) as a ``ParquetFile`` that checks page checksums;
    ``where`` names it in errors (default: ``source``)."""
    where = source if where is None else where
    try:
        return pq.ParquetFile(source, pre_buffer=False, page_checksum_verification=True)
    except READ_ERRORS as exc:
        raise error(f"{where}: not a readable parquet file ({exc})") from exc


def read_table(where: str | os.PathLike, *, columns: list[str] | None = None,
               error: type[Exception] = CorruptParquet) -> pa.Table:
    """The whole table (or ``columns``) of the file ``where``, every page checked."""
    return read(open_file(where, error=error), where, columns=columns, error=error)


def read(handle: pq.ParquetFile, where: str | os.PathLike, *, columns: list[str] | None = None,
         error: type[Exception] = CorruptParquet) -> pa.Table:
    """The whole table (or ``columns``) of an open file, every page checked."""
    try:
        return handle.read(columns=columns)
    except READ_ERRORS as exc:
        raise damage_error(handle, where, 0, exc, error) from exc


def read_row_group(handle: pq.ParquetFile, where: str | os.PathLike, group: int, *,
                   columns: list[str] | None = None, error: type[Exception] = CorruptParquet) -> pa.Table:
    """Row group ``group`` of an open file, every page checked."""
    try:
        return handle.read_row_group(group, columns=columns, use_threads=False)
    except READ_ERRORS as exc:
        raise damage_error(handle, where, group, exc, error) from exc


def iter_batches(handle: pq.ParquetFile, where: str | os.PathLike, *, error: type[Exception] = CorruptParquet,
                 **options: Any) -> Iterator[pa.RecordBatch]:
    """``handle.iter_batches(**options)`` (single-threaded decoding unless ``use_threads`` is given),
    every page checked; a failure names the row group at or after the last row handed out."""
    options.setdefault("use_threads", False)
    rows = 0
    try:
        for batch in handle.iter_batches(**options):
            yield batch
            rows += batch.num_rows
    except READ_ERRORS as exc:
        raise damage_error(handle, where, group_of_row(handle, rows), exc, error) from exc


def group_of_row(handle: pq.ParquetFile, row: int) -> int:
    """The row group that holds row ``row`` of the file (the last group if past the end)."""
    meta = handle.metadata
    for group in range(meta.num_row_groups):
        row -= meta.row_group(group).num_rows
        if row < 0:
            return group
    return max(meta.num_row_groups - 1, 0)


def locate_damage(handle: pq.ParquetFile, first_group: int = 0) -> tuple[int, str, BaseException] | None:
    """(row group, column, error) of the first column chunk from ``first_group`` on that fails to read."""
    for group in range(first_group, handle.metadata.num_row_groups):
        for name in handle.schema_arrow.names:
            try:
                handle.read_row_group(group, columns=[name], use_threads=False)
            except READ_ERRORS as exc:
                return group, name, exc
    return None


def damage_error(handle: pq.ParquetFile, where: str | os.PathLike, first_group: int, exc: BaseException,
                 error: type[Exception]) -> Exception:
    """The error naming the file, row group and column of the damage that made a read fail with ``exc``."""
    found = locate_damage(handle, first_group)
    if found is None:
        return error(f"{where}: corrupt parquet data at or after row group {first_group} ({exc})")
    group, column, cause = found
    return error(f"{where}: corrupt parquet data in row group {group} (of {handle.metadata.num_row_groups}), "
                 f"column {column!r}: {cause}")
