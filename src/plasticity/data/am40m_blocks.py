"""AM-40M JSONL read a block at a time by Arrow's JSON parser: the ingest stage's hot path.

The 40M-row release (DATASETS.md 2) is the bulk of the study's corpus, and parsing it line by line
with ``json.loads`` and building Arrow tables from Python dicts was most of the ingest stage's CPU.
``blocks(stream)`` cuts a ``.jsonl`` / ``.jsonl.zst`` file (a ``source_stream.SourceStream``) into
line-aligned blocks of about ``BLOCK_BYTES`` and yields, per block, one of

* ``("table", first_row, table)``: the block parsed by Arrow (C++, no Python objects) and mapped
  to the canonical columns of ``native.map_am_40m``, when every line of the block is a record
  that map_am_40m's plain path takes as it is (see ``_mapped``); row ``first_row + i`` is line
  ``first_row + i`` of the file;
* ``("records", None, [(row, record), ...])``: the block's lines as ``native.iter_records`` gives
  them, for the row path, which names the bad row and field. Any block with something unusual
  goes there whole: a malformed or blank line, invalid UTF-8, a lone surrogate escape, a
  byte-order mark after the file's start, a repeated key, a missing or differently typed field,
  an empty category, a blank prompt, a rate outside [0, 1] or NaN. A line longer than the maximum
  record size is skipped unread (``source_stream.line_blocks``) and comes out alone, as the row
  path's ``record_too_long`` error.

So the output is the same as the row path's, row for row (tests/unit/test_data_ingest.py runs
both on the same files). A file without any record yields the row path's ``empty_shard`` error.
"""
from __future__ import annotations

from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from plasticity.data import native, records
from plasticity.data.source_stream import LongLine, SourceStream, content_chunks, line_blocks

BLOCK_BYTES = 16 << 20
_FIELDS = pa.schema([("category", pa.string()), ("model_name", pa.string()), ("question", pa.string()),
                     ("answer", pa.string()), ("ground_truth", pa.string()), ("pass_rate_1.5b", pa.float64()),
                     ("pass_rate_7b", pa.float64()), ("pass_rate_r1", pa.float64())])
_RATES = (("win_rate_small", "pass_rate_1.5b"), ("win_rate_mid", "pass_rate_7b"), ("win_rate_teacher", "pass_rate_r1"))
# Exactly the characters Python's str.strip() removes (str.isspace), as an RE2 class: a value that
# matches is blank for the row path.
_BLANK = (r"^[\t-\r\x{1c}- \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}"
          r"\x{3000}]*$")


def _mapped(block: bytes, lines: int) -> pa.Table | None:
    """The block's records in map_am_40m's columns, or None when the row path must handle it."""
    try:
        table = pj.read_json(pa.py_buffer(block), read_options=pj.ReadOptions(block_size=len(block) + 1),
                             parse_options=pj.ParseOptions(explicit_schema=_FIELDS,
                                                           unexpected_field_behavior="ignore"))
        table.validate(full=True)                          # Arrow does not check UTF-8 by itself
    except (pa.ArrowException, UnicodeDecodeError):
        return None
    if table.num_rows != lines:                            # blank lines (Arrow skips them)
        return None
    col = {name: table.column(name) for name in _FIELDS.names}
    for name in ("category", "model_name"):                # else the row path reads the file name
        if col[name].null_count or pc.min(pc.utf8_length(col[name])).as_py() == 0:
            return None
    for name in ("question", "answer"):
        if col[name].null_count or pc.any(pc.match_substring_regex(col[name], _BLANK)).as_py():
            return None
    for _, name in _RATES:
        values = col[name]
        if values.null_count < len(values):
            if pc.any(pc.is_nan(values)).as_py():
                return None
            low_high = pc.min_max(values)
            if not 0.0 <= low_high["min"].as_py() <= low_high["max"].as_py() <= 1.0:
                return None
    truth = col["ground_truth"]
    blank = pc.fill_null(pc.match_substring_regex(truth, _BLANK), False)
    return pa.table({
        "domain": col["category"], "teacher": col["model_name"], "prompt": col["question"],
        "response": col["answer"], "reference_answer": pc.if_else(blank, pa.scalar(None, pa.string()), truth),
        **{name: col[key] for name, key in _RATES},
    })


def blocks(stream: SourceStream, max_record_bytes: int = native.MAX_RECORD_BYTES
           ) -> Iterator[tuple[str, int | None, pa.Table | list]]:
    """The blocks of one AM-40M JSONL file, as the module docstring describes."""
    row, seen = 0, False
    with native.file_errors(stream.path):
        for block in line_blocks(content_chunks(stream, BLOCK_BYTES), BLOCK_BYTES, max_record_bytes):
            if isinstance(block, LongLine):
                seen = True
                yield "records", None, [(row, native.too_long(block, max_record_bytes))]
                row += 1
                continue
            lines = block.count(b"\n") + (not block.endswith(b"\n"))
            table = _mapped(block, lines)
            if table is not None:
                seen = seen or table.num_rows > 0
                yield "table", row, table
            else:
                parts = block.split(b"\n")
                if block.endswith(b"\n"):
                    parts.pop()
                decoded = [(row + i, records.decode_line(line)) for i, line in enumerate(parts)
                           if line.strip()]
                seen = seen or bool(decoded)
                yield "records", None, decoded
            row += lines
    if not seen:
        yield "records", None, [native.empty_shard()]
