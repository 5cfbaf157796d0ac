"""Readers of each release's native schema (DATASETS.md sections 0-5), one row at a time.

Two layers:
  * ``iter_records(stream)`` streams the raw records of one file (.jsonl, .jsonl.zst, .json, .parquet),
    opened as a ``source_stream.SourceStream`` (which hashes what is read), as ``(row, record)``
    pairs, where ``record`` is a dict or a ``RowError`` (records.py decides, the same way for every
    reader). Memory is bounded by the maximum record size (a longer line is skipped while streaming
    and becomes a ``record_too_long`` RowError) or one parquet record batch; a .json array file is
    parsed whole. Which files a source has, and whether each is in its format, is source_files.py's
    job. An unreadable or truncated file (corrupt parquet footer or page, truncated zstd frame)
    raises ``DataError`` naming the file (and, for parquet, the row group and column): half a file is
    never silently ingested.
  * ``MAPPERS[format](record, file_name)`` maps one record to the canonical fields of
    ``schema.TRAJECTORY`` (SFT formats) or ``schema.RL_PROMPT`` (RL formats), raising ``RowError``
    (reason, field, message) for a missing field or a wrong type.

Decisions where the releases are silent (DATASETS.md section 7) are written next to each mapper.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from plasticity import parquet_io
from plasticity.data.records import BOM, RowError, batch_records, checked_text, decode_line
from plasticity.data.source_stream import LongLine, SourceStream, content_chunks, iter_lines
from plasticity.data.tables import DataError

SFT_FORMATS = ("am_40m", "am_1.4m", "s1k", "retu_sft")
RL_FORMATS = ("skywork_or1", "retu_rl")
R1_NAME = "deepseek-r1"            # teacher label for releases that are R1-671B by construction
DIFFICULTY_MODEL = "DeepSeek-R1-Distill-Qwen-1.5B"   # Skywork model_difficulty key used (PAPER 2.2)
DIFFICULTY_SCALE = 16.0            # Skywork difficulty is an int in 0..16
_AM40M_FILE = re.compile(r"(?P<category>[a-z]+)_(?P<model>r1|7b|1\.5b)_(?P<k>\d+)pass")
_READ_BUFFER = 1 << 20
# A line longer than this is not a record any stage could keep (the filter's length limits are
# thousands of tokens); it is skipped unread into the ledger (``record_too_long``). The ingest
# stage's --max-record-bytes changes it.
MAX_RECORD_BYTES = 64 << 20


# ----------------------------------------------------------------------------------- records
def iter_records(stream: SourceStream, batch_size: int = 1024, *, max_record_bytes: int = MAX_RECORD_BYTES
                 ) -> Iterator[tuple[int | None, dict | RowError]]:
    """``(row, record)`` pairs of one file; an empty file yields one ``(None, RowError)``."""
    name = stream.path.name
    if name.endswith(".parquet"):
        yield from _parquet_records(stream, batch_size)
    elif name.endswith(".json") and _starts_with_bracket(stream):
        yield from _json_array_records(stream)
    else:
        yield from _jsonl_records(stream, max_record_bytes)


def _starts_with_bracket(stream: SourceStream) -> bool:
    head = os.pread(stream.file.fileno(), 4096, 0)           # the file position is not moved
    return head.removeprefix(BOM).lstrip().startswith(b"[")


def too_long(line: LongLine, max_record_bytes: int) -> RowError:
    """The ledger verdict on a line longer than the maximum record size."""
    return RowError("record_too_long", None, f"line of {line.size} bytes is longer than the maximum record "
                                             f"size of {max_record_bytes} bytes (skipped unread)")


@contextlib.contextmanager
def file_errors(path: Path) -> Iterator[None]:
    """Turn I/O and zstd errors while reading ``path`` into a ``DataError`` naming it."""
    try:
        yield
    except DataError:
        raise
    except OSError as exc:                       # I/O errors
        raise DataError(f"{path}: unreadable file ({exc})") from exc
    except Exception as exc:
        if type(exc).__name__ == "ZstdError":
            raise DataError(f"{path}: corrupt zstd stream ({exc})") from exc
        raise


def empty_shard() -> tuple[None, RowError]:
    """The one record an empty file counts as: in = kept + dropped holds for it too."""
    return None, RowError("empty_shard", None, "file has no records")


def _jsonl_records(stream: SourceStream, max_record_bytes: int) -> Iterator[tuple[int | None, dict | RowError]]:
    seen = False
    with file_errors(stream.path):
        lines = iter_lines(content_chunks(stream, _READ_BUFFER), max_record_bytes)
        for row, line in enumerate(lines):
            if isinstance(line, LongLine):
                seen = True
                yield row, too_long(line, max_record_bytes)
                continue
            if not line.strip():
                continue                         # blank lines are not records
            seen = True
            yield row, decode_line(line)
    if not seen:
        yield empty_shard()


def _json_array_records(stream: SourceStream) -> Iterator[tuple[int | None, dict | RowError]]:
    """The records of a JSON array file. Invalid UTF-8 bytes are kept as surrogate escapes while
    parsing (``surrogateescape``), so only the records that hold them are dropped (invalid_utf8)."""
    with file_errors(stream.path):
        raw = stream.read_snapshot().removeprefix(BOM)
    path = stream.path
    try:
        text, undecodable = raw.decode("utf-8"), False
    except UnicodeDecodeError:
        text, undecodable = raw.decode("utf-8", errors="surrogateescape"), True
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not a valid JSON array file ({exc})") from exc
    except RecursionError as exc:
        raise DataError(f"{path}: JSON nested too deep to parse") from exc
    if not isinstance(data, list):
        raise DataError(f"{path}: a .json source must hold a list of records")
    if not data:
        yield empty_shard()
    for row, obj in enumerate(data):
        if not isinstance(obj, dict):
            yield row, RowError("wrong_type", None, f"record is a JSON {type(obj).__name__}, not an object")
            continue
        checked = checked_text(obj)
        if isinstance(checked, RowError) and undecodable and "U+DC" in checked.message:
            checked = RowError("invalid_utf8", checked.field, "invalid UTF-8 bytes")   # an escaped byte
        yield row, checked


def _parquet_records(stream: SourceStream, batch_size: int) -> Iterator[tuple[int | None, dict | RowError]]:
    """The rows of a parquet file. Arrow reads it by offset, so it is hashed in one pass first
    (``SourceStream.hash_for_random_access``) and read through the same open file."""
    with file_errors(stream.path):
        stream.hash_for_random_access()
    handle = parquet_io.open_file(stream.file, stream.path, error=DataError)
    if handle.metadata.num_rows == 0:
        yield empty_shard()
        return
    row = 0
    for batch in parquet_io.iter_batches(handle, stream.path, error=DataError, batch_size=batch_size):
        for record in batch_records(batch):
            yield row, record
            row += 1


# ----------------------------------------------------------------------------------- field access
def _field(obj: Any, path: str | tuple[str, ...], kinds: tuple[type, ...] = (str,), *,
           required: bool = True) -> Any:
    """``obj[a][b]...`` for the dotted ``path`` (a tuple of keys when a key holds a dot, e.g.
    ``pass_rate_1.5b``), type-checked; None if optional and absent/null."""
    keys = path.split(".") if isinstance(path, str) else list(path)
    path = ".".join(keys)
    value = obj
    for i, key in enumerate(keys):
        if isinstance(value, list) and key.isdigit():
            index = int(key)
            value = value[index] if index < len(value) else None
        elif isinstance(value, dict):
            value = value.get(key)
        elif value is None:
            break
        else:
            parent = ".".join(keys[:i]) or "<record>"
            raise RowError("wrong_type", parent, f"expected an object, got {type(value).__name__}")
    if value is None:
        if required:
            raise RowError("missing_field", path, "missing or null")
        return None
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        names = "/".join(k.__name__ for k in kinds)
        raise RowError("wrong_type", path, f"expected {names}, got {type(value).__name__}")
    return value


def _text(obj: Any, path: str, *, required: bool = True) -> str | None:
    value = _field(obj, path, (str,), required=required)
    if required and not value.strip():
        raise RowError("missing_field", path, "empty string")
    return value


def _optional_text(obj: Any, path: str) -> str | None:
    value = _field(obj, path, (str,), required=False)
    return value if value and value.strip() else None


def _rate(obj: Any, key: str) -> float | None:
    value = _field(obj, (key,), (int, float), required=False)
    path = key
    if value is None:
        return None
    if not 0.0 <= value <= 1.0:
        raise RowError("wrong_type", path, f"pass rate {value!r} outside [0, 1]")
    return float(value)


def _maybe_json(obj: Any, path: str) -> Any:
    """A struct column that a release may also store as JSON text (RETU's loader accepts both)."""
    value = _field(obj, path, (dict, str), required=False)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError("malformed_json", path, f"JSON text does not parse ({exc.msg})") from exc
        if not isinstance(value, dict):
            raise RowError("wrong_type", path, f"JSON text holds a {type(value).__name__}, not an object")
        if isinstance(checked := checked_text(value, path), RowError):
            raise checked
    return value


def first_answer(ground_truth: Any, field: str) -> str:
    """A reference answer from a ground_truth that may be a JSON list text, a list or a plain string.

    Skywork-OR1 math stores a JSON list of acceptable answers: the first one is the reference.
    """
    value = ground_truth
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in "[\"":
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                value = stripped                 # plain text that happens to start with [ or "
    if isinstance(value, list):
        value = next((v for v in value if v is not None and str(v).strip()), None)
        if value is None:
            raise RowError("missing_field", field, "ground-truth list is empty")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise RowError("missing_field" if not value else "wrong_type", field,
                       f"no usable reference answer in {ground_truth!r:.80}")
    return value.strip()


# ----------------------------------------------------------------------------------- SFT mappers
_AM40M_RATES = (("win_rate_small", "pass_rate_1.5b"), ("win_rate_mid", "pass_rate_7b"),
                ("win_rate_teacher", "pass_rate_r1"))


def _am_40m_plain(rec: dict) -> dict | None:
    """``map_am_40m`` of a well-formed record without the generic field checks, or None.

    The hot path of the 40M-row release: it decides only records where every field has the plain
    expected type (non-empty strings, in-range float/int rates or null), for which the generic
    mapper gives exactly this dict; anything else returns None and goes through ``map_am_40m``'s
    checks, which name the bad field.
    """
    domain, teacher = rec.get("category"), rec.get("model_name")
    prompt, response, truth = rec.get("question"), rec.get("answer"), rec.get("ground_truth")
    if not (type(domain) is str and domain and type(teacher) is str and teacher
            and type(prompt) is str and prompt.strip() and type(response) is str and response.strip()
            and (truth is None or type(truth) is str)):
        return None
    out = {"domain": domain, "teacher": teacher, "prompt": prompt, "response": response,
           "reference_answer": truth if truth and truth.strip() else None}
    for name, key in _AM40M_RATES:
        value = rec.get(key)
        if value is not None:
            if type(value) not in (float, int) or not 0.0 <= value <= 1.0:
                return None
            value = float(value)
        out[name] = value
    return out


def map_am_40m(rec: dict, file_name: str) -> dict:
    """AM-DeepSeek-Distilled-40M: one response per row.

    Teacher and domain come from ``model_name`` / ``category``, falling back to the file name
    ``{category}_{model}_{k}pass.jsonl`` when a column is absent (DATASETS.md 2). ``pass_rate_*``
    become the win rates (WR over 4 passes, PAPER 2.2). An empty ground_truth becomes null.
    """
    if isinstance(rec, dict) and (plain := _am_40m_plain(rec)) is not None:
        return plain
    return _map_am_40m_checked(rec, file_name)


def _map_am_40m_checked(rec: dict, file_name: str) -> dict:
    """``map_am_40m`` field by field, with a ``RowError`` naming the first bad field."""
    match = _AM40M_FILE.search(file_name)
    domain = _field(rec, "category", required=False) or (match["category"] if match else None)
    teacher = _field(rec, "model_name", required=False) or (match["model"] if match else None)
    if domain is None:
        raise RowError("missing_field", "category", "missing, and the file name does not say")
    if teacher is None:
        raise RowError("missing_field", "model_name", "missing, and the file name does not say")
    return {
        "domain": domain, "teacher": teacher,
        "prompt": _text(rec, "question"), "response": _text(rec, "answer"),
        "reference_answer": _optional_text(rec, "ground_truth"),
        "win_rate_small": _rate(rec, "pass_rate_1.5b"),
        "win_rate_mid": _rate(rec, "pass_rate_7b"),
        "win_rate_teacher": _rate(rec, "pass_rate_r1"),
    }


def map_am_14m(rec: dict, file_name: str) -> dict:
    """AM-DeepSeek-R1-Distilled-1.4M: ``messages`` = [user, assistant], provenance in ``info``.

    The release has no domain column (DATASETS.md 1), so domain is derived: ``code`` when the user
    turn carries a test_case, ``math`` when it carries a reference_answer, otherwise ``other``.
    The teacher is the assistant turn's ``info.source`` (``am-0309`` = R1-671B).

    The turns must be exactly [user, assistant] by ``role`` (what the release holds): a system
    turn, a multi-turn conversation or swapped roles cannot become one prompt and one response
    without changing what the model is trained on, so such a row is dropped (``wrong_roles``).
    """
    messages = _field(rec, "messages", (list,))
    roles = [turn.get("role") if isinstance(turn, dict) else None for turn in messages]
    if len(messages) < 2 and all(r in ("user", "assistant") for r in roles):
        raise RowError("missing_field", "messages", f"expected user and assistant turns, got {len(messages)}")
    if roles != ["user", "assistant"]:
        raise RowError("wrong_roles", "messages.role", f"roles {roles}, expected ['user', 'assistant']")
    reference = _optional_text(rec, "messages.0.info.reference_answer")
    test_case = _field(rec, "messages.0.info.test_case", (str, dict), required=False)
    domain = "code" if test_case else ("math" if reference else "other")
    return {
        "domain": domain, "teacher": _text(rec, "messages.1.info.source"),
        "prompt": _text(rec, "messages.0.content"), "response": _text(rec, "messages.1.content"),
        "reference_answer": reference,
        "win_rate_small": None, "win_rate_mid": None, "win_rate_teacher": None,
    }


def map_s1k(rec: dict, file_name: str) -> dict:
    """simplescaling/s1K-1.1: the R1 trace has no tags, so the response is built as
    ``<think>\\n{deepseek_thinking_trajectory}\\n</think>\\n<answer>{deepseek_attempt}</answer>``.
    The reference is ``solution`` (a worked solution or a bare answer, as released); domain is
    ``cot_type`` (math, science, crossword); the teacher is R1 by construction."""
    trace = _text(rec, "deepseek_thinking_trajectory")
    attempt = _text(rec, "deepseek_attempt")
    return {
        "domain": _optional_text(rec, "cot_type") or "math", "teacher": R1_NAME,
        "prompt": _text(rec, "question"),
        "response": f"<think>\n{trace.strip()}\n</think>\n<answer>{attempt.strip()}</answer>",
        "reference_answer": _optional_text(rec, "solution"),
        "win_rate_small": None, "win_rate_mid": None, "win_rate_teacher": None,
    }


def map_retu_sft(rec: dict, file_name: str) -> dict:
    """The study's verl SFT rows: ``extra_info.question`` / ``extra_info.answer`` (struct or JSON
    text). Reference from ``reward_model.ground_truth`` when present; domain from ``ability``
    (default math); win rates from ``pass_rate_*`` columns when a tagged file has them. The study's
    sets are R1-671B distillations, so the teacher is R1."""
    extra = _maybe_json(rec, "extra_info")
    if extra is None:
        raise RowError("missing_field", "extra_info", "missing or null")
    reward = _maybe_json(rec, "reward_model")
    reference = first_answer(reward["ground_truth"], "reward_model.ground_truth") \
        if reward and reward.get("ground_truth") not in (None, "") else None
    return {
        "domain": _optional_text(rec, "ability") or "math", "teacher": R1_NAME,
        "prompt": _text(extra, "question"), "response": _text(extra, "answer"),
        "reference_answer": reference,
        "win_rate_small": _rate(rec, "pass_rate_1.5b"),
        "win_rate_mid": _rate(rec, "pass_rate_7b"),
        "win_rate_teacher": _rate(rec, "pass_rate_r1"),
    }


# ----------------------------------------------------------------------------------- RL mappers
def map_verl_rl(rec: dict, file_name: str) -> dict:
    """Skywork-OR1-RL-Data and the study's RL62K (verl RL rows).

    Prompt: the first user turn of ``prompt`` (a plain string is accepted too). Reference: the
    first acceptable answer of ``reward_model.ground_truth`` (JSON list text, list or string).
    Difficulty: ``extra_info.model_difficulty[DeepSeek-R1-Distill-Qwen-1.5B] / 16`` (null if
    absent). ``domain`` is ``ability`` (default math); the ingest stage drops non-math rows.
    """
    prompt = _field(rec, "prompt", (list, str))
    if isinstance(prompt, list):
        turns = [t for t in prompt if isinstance(t, dict) and t.get("role") == "user"]
        if not turns:
            raise RowError("missing_field", "prompt", "no user turn")
        text = _text(turns[0], "content")
    else:
        text = _text(rec, "prompt")
    reward = _maybe_json(rec, "reward_model")
    if reward is None or reward.get("ground_truth") is None:
        raise RowError("missing_field", "reward_model.ground_truth", "missing or null")
    extra = _maybe_json(rec, "extra_info") or {}
    difficulty = None
    level = _field(extra, ("model_difficulty", DIFFICULTY_MODEL), (int, float), required=False) \
        if isinstance(extra.get("model_difficulty"), dict) else None
    if level is not None:
        if not 0 <= level <= DIFFICULTY_SCALE:
            raise RowError("wrong_type", f"extra_info.model_difficulty.{DIFFICULTY_MODEL}",
                           f"difficulty {level!r} outside [0, 16]")
        difficulty = float(level) / DIFFICULTY_SCALE
    return {
        "domain": _optional_text(rec, "ability") or "math", "prompt": text,
        "reference_answer": first_answer(reward["ground_truth"], "reward_model.ground_truth"),
        "difficulty": difficulty,
    }


MAPPERS: dict[str, Callable[[dict, str], dict]] = {
    "am_40m": map_am_40m, "am_1.4m": map_am_14m, "s1k": map_s1k, "retu_sft": map_retu_sft,
    "skywork_or1": map_verl_rl, "retu_rl": map_verl_rl,
}
