"""The data files of one source, with every file-level fault raised as a ``DataError`` naming the file.

``list_files(root)`` walks a source directory (or takes a single file) and returns its data files
(``SUFFIXES``) in sorted order. Nothing is skipped silently; the walk stops with an error for
  * an unreadable directory or file (permissions, I/O error);
  * a source path, or a data file in a source directory, that is not a regular file (a FIFO, a
    socket, a device): refused by name before it is opened (a FIFO would block the read);
  * a broken link (its target does not exist) and a link loop;
  * a directory reached twice (a link to an ancestor or to a directory already walked): directory
    links are followed once, so a shard directory that is a link is read, but no file twice;
  * a file whose first bytes are not in the format its name says (``sniff``): a gzip/zip/binary
    file named ``.jsonl``, a pretty-printed JSON document (``dataset_info.json``), a JSON array
    in a ``.jsonl``, a file with CR-only line endings, a ``.zst`` that is not zstd, a ``.parquet``
    without the parquet magic.
Entries whose name starts with ``.`` (``.cache``, ``.gitattributes`` of a hub snapshot) and files
with other suffixes (README.md, LICENSE) are not data and are not read.

``check_out_outside(out, roots)`` stops a stage whose output directory lies inside one of its input
trees: a rerun would otherwise read the previous run's outputs as input.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from plasticity.data.source_stream import open_regular, refuse_irregular
from plasticity.data.tables import DataError

SUFFIXES = (".jsonl", ".jsonl.zst", ".json", ".parquet")
HEAD_BYTES = 1 << 16                  # how much of a file the format check reads
_BOM = b"\xef\xbb\xbf"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BINARY = ((b"\x1f\x8b", "gzip data"), (_ZSTD_MAGIC, "zstd data"), (b"PAR1", "a parquet file"),
           (b"PK\x03\x04", "a zip archive"), (b"BZh", "bzip2 data"), (b"\xfd7zXZ", "xz data"))


def list_files(root: str | Path) -> list[Path]:
    """The data files of a source: ``root`` itself, or every data file under it (sorted)."""
    root = Path(root)
    try:
        info = root.stat()
    except FileNotFoundError:
        kind = "is a broken link" if root.is_symlink() else "does not exist"
        raise DataError(f"{root}: source path {kind}") from None
    except OSError as exc:
        raise DataError(f"{root}: source path unreadable ({exc})") from exc
    if not stat.S_ISDIR(info.st_mode):
        refuse_irregular(root, info)
        sniff(root)
        return [root]
    files: list[Path] = []
    _walk(root, {_identity(info): root}, files)
    if not files:
        raise DataError(f"{root}: no data files ({', '.join(SUFFIXES)}) found")
    for path in files:
        sniff(path)
    return sorted(files)


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _walk(directory: Path, seen: dict[tuple[int, int], Path], files: list[Path]) -> None:
    """Add the data files under ``directory`` to ``files``; ``seen`` maps every directory walked so
    far (by device and inode, so a link and its target are one) to the path it was walked by."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"{directory}: unreadable directory ({exc})") from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            info = entry.stat()               # follows links
        except FileNotFoundError:
            raise DataError(f"{path}: broken link (target {os.readlink(path)!r} does not exist)") from None
        except OSError as exc:
            what = "link loop" if exc.errno == 40 else "unreadable entry"   # 40: ELOOP
            raise DataError(f"{path}: {what} ({exc})") from exc
        if stat.S_ISDIR(info.st_mode):
            first = seen.setdefault(_identity(info), path)
            if first != path:
                raise DataError(f"{path}: directory already read as {first} (a link loop or a second "
                                f"link to it); its files would be ingested twice")
            _walk(path, seen, files)
        elif entry.name.endswith(SUFFIXES):
            refuse_irregular(path, info)
            files.append(path)


def sniff(path: Path) -> None:
    """Raise a ``DataError`` naming ``path`` if it is unreadable or its first bytes are not in the
    format its name says."""
    with open_regular(path) as fh:
        head = _head(fh, path)
    if path.name.endswith(".parquet"):
        if not head.startswith(b"PAR1"):
            raise DataError(f"{path}: not a parquet file (first bytes {head[:8]!r})")
        return
    problem = json_records_problem(head, allow_array=path.name.endswith(".json"))
    if problem:
        raise DataError(f"{path}: {problem}")


def _head(fh, path: Path) -> bytes:
    """The first ``HEAD_BYTES`` of the file's content (decompressed for a .zst)."""
    try:
        head = fh.read(HEAD_BYTES)
        if path.name.endswith(".zst") and head.startswith(_ZSTD_MAGIC):
            fh.seek(0)
            head = _zstd_head(fh, path)
        elif path.name.endswith(".zst") and head:
            raise DataError(f"{path}: not zstd data (first bytes {head[:8]!r})")
    except OSError as exc:
        raise DataError(f"{path}: unreadable file ({exc})") from exc
    return head


def _zstd_head(fh, path: Path) -> bytes:
    import zstandard

    try:
        reader = zstandard.ZstdDecompressor(max_window_size=1 << 31).stream_reader(fh)
        return reader.read(HEAD_BYTES)
    except zstandard.ZstdError as exc:
        raise DataError(f"{path}: corrupt zstd stream ({exc})") from exc


def json_records_problem(head: bytes, *, allow_array: bool) -> str | None:
    """Why the first bytes of a file are not JSON records one per line (or, with ``allow_array``, a
    JSON array of records), or None. An empty file is fine: it is an empty shard."""
    for magic, name in _BINARY:
        if head.startswith(magic):
            return f"{name}, not JSON text"
    if b"\x00" in head:
        return "binary data (NUL bytes), not JSON text"
    text = head[len(_BOM):] if head.startswith(_BOM) else head
    cr = text.find(b"\r")
    if cr >= 0 and text[cr + 1:cr + 2] != b"\n" and b"\n" not in text[:cr] and cr + 1 < len(text):
        return "CR-only line endings (records must be separated by \\n)"
    body = text.lstrip()
    if not body:
        return None
    first_line = body.split(b"\n", 1)[0].strip()
    if body[:1] == b"[":
        return None if allow_array else "a JSON array, not one JSON record per line"
    if body[:1] != b"{":
        return f"not JSON records (starts with {body[:16]!r})"
    if first_line == b"{" and b"\n" in body:
        return "a pretty-printed JSON document, not one JSON record per line"
    return None


def check_out_outside(out: str | Path, roots: dict[str, Path]) -> None:
    """Raise a ``DataError`` if ``out`` is (or lies inside) one of the input trees ``roots``."""
    target = Path(out).resolve()
    for name, root in roots.items():
        base = Path(root).resolve()
        if target == base or base in target.parents:
            raise DataError(f"{out}: the output directory lies inside the input tree of source "
                            f"{name!r} ({root}); a rerun would read this run's outputs as input")
