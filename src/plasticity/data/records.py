"""Row-level decoding of raw records, shared by every reader (AM-40M's block and row paths, AM-1.4M,
the verl releases), so the same bytes get the same verdict whichever reader sees them.

A record is either a dict or a ``RowError`` (reason, field, message) that the ingest stage writes to
the ledger with the file and row. The row-level faults:
  invalid_utf8     bytes that are not UTF-8 (in a JSON line, or in a parquet string at any depth)
  lone_surrogate   a JSON ``\\ud800``-style escape without its pair: valid JSON, but not text (it
                   cannot be hashed or written as UTF-8), so the row is dropped naming the field
  too_deep         JSON nested deeper than ``MAX_DEPTH`` (no release nests beyond 5; Python's
                   parser recurses per level and fails near 1000, Arrow's does not: one explicit
                   bound, well inside both, makes the readers agree)
  malformed_json / wrong_type   a line that is not a JSON object
A UTF-8 byte-order mark at the start of a line (a file's first line, or files concatenated) is not
part of the record and is removed before parsing.
"""
from __future__ import annotations

import itertools
import json
import re
from typing import Any, Iterator

BOM = b"\xef\xbb\xbf"
MAX_DEPTH = 512
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_SURROGATE = re.compile("[\ud800-\udfff]")


class RowError(Exception):
    """One bad input row: a machine-readable reason, the field concerned and what was wrong."""

    def __init__(self, reason: str, field: str | None, message: str):
        super().__init__(reason, field, message)
        self.reason, self.field, self.message = reason, field, message

    def __str__(self) -> str:
        where = f"field {self.field!r}: " if self.field else ""
        return f"{where}{self.message}"


def structure(text: bytes) -> bytes:
    """The brackets of a JSON text that are not inside strings, in order (C-speed bytes operations:
    escaped backslashes, then escaped quotes are removed, so every remaining quote delimits a string)."""
    outside = text.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2]
    return b"".join(outside).translate(None, _NOT_BRACKETS)


def too_deep(text: bytes) -> bool:
    """True when the JSON text ``text`` (one record, or whole records) nests deeper than MAX_DEPTH."""
    shape = structure(text)
    if len(shape) <= MAX_DEPTH:
        return False
    return max(itertools.accumulate((1 if c in b"[{" else -1 for c in shape), initial=0)) > MAX_DEPTH


def decode_line(line: bytes) -> dict | RowError:
    """One JSON Lines record (with or without its final newline): the dict, or the RowError that
    says why it is not one."""
    line = line.removeprefix(BOM).removesuffix(b"\n")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RowError("invalid_utf8", None, f"invalid UTF-8 at byte {exc.start}")
    if line.count(b"[") + line.count(b"{") > MAX_DEPTH and too_deep(line):   # counts: a cheap pre-test
        return RowError("too_deep", None, f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return RowError("malformed_json", None, f"malformed JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(obj, dict):
        return RowError("wrong_type", None, f"record is a JSON {type(obj).__name__}, not an object")
    if _SURROGATE_ESCAPE.search(line):        # only then can a string hold a lone surrogate
        return checked_text(obj)
    return obj


def checked_text(record: Any, field: str = "") -> Any:
    """``record``, or a RowError naming the first string (or key) under it, ``field`` its path, that
    holds a lone surrogate (a surrogate pair is one character in Python, so any surrogate is lone)."""
    for path, value in _strings(record, field):
        if (bad := _SURROGATE.search(value)) is not None:
            return RowError("lone_surrogate", path or None,
                            f"lone surrogate U+{ord(bad.group()):04X} at character {bad.start()}")
    return record


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(dotted path, string) for every string and key in a JSON value, iteratively (any depth)."""
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            for key, sub in item.items():
                child = f"{where}.{key}" if where else str(key)
                yield child, key
                stack.append((child, sub))
        elif isinstance(item, list):
            stack.extend((f"{where}.{i}" if where else str(i), sub) for i, sub in enumerate(item))


def batch_records(batch: Any) -> list[dict | RowError]:
    """The rows of an Arrow record batch as dicts; a row with invalid UTF-8 in a string (at any
    depth of a list or struct column) becomes a RowError naming the column. (Arrow strings are
    UTF-8 bytes, so they cannot hold a lone surrogate: an encoded one is invalid UTF-8.)"""
    try:
        return batch.to_pylist()
    except UnicodeDecodeError:
        pass
    out: list[dict | RowError] = []
    for i in range(batch.num_rows):
        row = batch.slice(i, 1)
        try:
            out.append(row.to_pylist()[0])
            continue
        except UnicodeDecodeError:
            pass
        for name, column in zip(row.schema.names, row.columns):
            try:
                column.to_pylist()
            except UnicodeDecodeError as exc:
                out.append(RowError("invalid_utf8", name, f"invalid UTF-8 at byte {exc.start}"))
                break
    return out
