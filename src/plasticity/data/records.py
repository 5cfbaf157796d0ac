"""Row-level decoding of raw records, shared by every reader (AM-40M's block and row paths, AM-1.4M,
the verl releases), so the same bytes get the same verdict whichever reader sees them.

A record is either a dict or a ``RowError`` (reason, field, message) that the ingest stage writes to
the ledger with the file and row. The row-level faults:
  invalid_utf8     bytes that are not UTF-8 (in a JSON line, or in a parquet string at any depth)
  lone_surrogate   a JSON ``\\ud800``-style escape without its pair: valid JSON, but not text (it
                   cannot be hashed or written as UTF-8), so the row is dropped naming the field
  malformed_json / wrong_type   a line that is not a JSON object
  record_too_long  a line longer than the maximum record size, skipped unread by the line reader
                   (source_stream.line_blocks; native.too_long gives the verdict)
JSON nested deeper than Python's parser recurses (about 1000 levels; Arrow's parser has no such
limit) is not a fault of its own: the record's top-level members are decoded one by one and a
member too deep to decode becomes a ``TooDeep`` placeholder, so a deep field that no mapper reads
leaves the row as Arrow sees it, and a deep field a mapper needs is a ``wrong_type`` naming it.
A UTF-8 byte-order mark at the start of a line (a file's first line, or files concatenated) is not
part of the record and is removed before parsing.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

BOM = b"\xef\xbb\xbf"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SPACE = re.compile(r"[ \t\n\r]*")
_CLOSING = {"[": "]", "{": "}"}
_SURROGATE = re.compile("[\ud800-\udfff]")


class RowError(Exception):
    """One bad input row: a machine-readable reason, the field concerned and what was wrong."""

    def __init__(self, reason: str, field: str | None, message: str):
        super().__init__(reason, field, message)
        self.reason, self.field, self.message = reason, field, message

    def __str__(self) -> str:
        where = f"field {self.field!r}: " if self.field else ""
        return f"{where}{self.message}"


class TooDeep:
    """Stands in a record for a JSON value nested too deep for Python's parser."""

    def __repr__(self) -> str:
        return "TooDeep()"


def _skip_value(text: str, start: int) -> int:
    """The end of the nested JSON value at ``start``, found without recursion; its brackets must
    match and its strings close (its grammar is not checked further)."""
    stack: list[str] = []
    i, n = start, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            if i >= n:
                break
        elif char in _CLOSING:
            stack.append(_CLOSING[char])
        elif char in "]}":
            if not stack or stack.pop() != char:
                raise json.JSONDecodeError("mismatched bracket", text, i)
            if not stack:
                return i + 1
        i += 1
    raise json.JSONDecodeError("unterminated nested value", text, start)


def _members(text: str) -> dict:
    """A JSON object decoded member by member; a member too deep for ``json`` becomes ``TooDeep``.
    Raises JSONDecodeError for malformed text (as json.loads would)."""
    decoder = json.JSONDecoder()
    i = _SPACE.match(text, 0).end()
    if text[i:i + 1] != "{":
        raise json.JSONDecodeError("a record nested too deep that is not an object", text, i)
    i = _SPACE.match(text, i + 1).end()
    out: dict = {}
    closed = text[i:i + 1] == "}"
    i += closed
    while not closed:
        key, i = decoder.raw_decode(text, i)
        i = _SPACE.match(text, i).end()
        if not isinstance(key, str) or text[i:i + 1] != ":":
            raise json.JSONDecodeError("expecting a string key and ':'", text, i)
        i = _SPACE.match(text, i + 1).end()
        try:
            out[key], i = decoder.raw_decode(text, i)
        except RecursionError:
            out[key], i = TooDeep(), _skip_value(text, i)
        i = _SPACE.match(text, i).end()
        if text[i:i + 1] not in (",", "}"):
            raise json.JSONDecodeError("expecting ',' or '}'", text, i)
        closed = text[i] == "}"
        i = _SPACE.match(text, i + 1).end()
    if text[i:].strip():
        raise json.JSONDecodeError("extra data", text, i)
    return out


def decode_line(line: bytes) -> dict | RowError:
    """One JSON Lines record (with or without its final newline): the dict, or the RowError that
    says why it is not one."""
    line = line.removeprefix(BOM).removesuffix(b"\n")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RowError("invalid_utf8", None, f"invalid UTF-8 at byte {exc.start}")
    try:
        try:
            obj = json.loads(text)
        except RecursionError:
            obj = _members(text)
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
