"""One read of one source file: refused unless a regular file, hashed as it is read, checked unchanged.

``SourceStream(path)`` opens a source file for the ingest stage's one pass over it:
  * a path that is not a regular file (FIFO, socket, device) is refused by name, checked on the
    opened descriptor (opened non-blocking, so a FIFO never blocks the open);
  * ``read`` / ``chunks`` hash every byte they return, so the digest is that of the bytes the rows
    came from (``read_snapshot`` hashes a whole file read at once, ``hash_for_random_access`` a file
    that a parquet reader will read by offset: hashed in one sequential pass through the same open
    file before it is read);
  * ``finish()`` returns the digest after checking that the file did not change while it was read:
    the open file's size, modification and change times, and what the path names, against the same
    at the open; a sequential read must also have read every byte. A file truncated, appended to,
    rewritten or replaced meanwhile is a ``DataError`` naming it: its rows and its hash would
    describe different bytes.

``decompressed(stream)`` streams a (possibly multi-frame) zstd file in bounded memory: the
decompressor is fed at most ``ZSTD_FEED`` bytes at a time, and since a zstd block of 128 KiB takes at
least 4 compressed bytes, one call yields at most 32 MiB however well the data compresses (a long
run of one byte is a few bytes per 128 KiB). A truncated last frame is a ``DataError``.

``line_blocks(chunks, block_bytes, max_line)`` cuts a byte stream into blocks of whole lines and
skips a line longer than ``max_line`` bytes while streaming: it is never held, only counted, and
comes out as ``LongLine(size)`` in its place, so memory is bounded by ``max_line`` and the block
size, not by the longest line.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import stat
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from plasticity.data.tables import DataError
from plasticity.io import describe_change, file_signature

ZSTD_WINDOW = 1 << 31             # AM-1.4M's .jsonl.zst needs a large decompression window
ZSTD_FEED = 1 << 10               # compressed bytes per decompressor call: <= 32 MiB out
_ZSTD_OUT = 1 << 20               # decompressed bytes gathered before they are handed on
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def refuse_irregular(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path}: {file_kind(info.st_mode)}, not a regular file; a source must be a "
                        f"regular file")


def open_regular(path: Path):
    """``path`` opened for reading as an unbuffered binary file, or a ``DataError`` naming it if it
    is unreadable or not a regular file. The open is non-blocking, so a FIFO put in a file's place
    does not block it, and the type is checked on the opened descriptor."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DataError(f"{path}: unreadable file ({exc})") from exc
    try:
        refuse_irregular(path, os.fstat(fd))
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb", buffering=0)


class LongLine(NamedTuple):
    """A line longer than the maximum record size, skipped: ``size`` bytes without its newline."""
    size: int


class SourceStream:
    """A source file opened for one read (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.file = open_regular(self.path)
        self._before = os.fstat(self.file.fileno())
        self._digest = hashlib.sha256()
        self._hashed = 0

    def read(self, size: int) -> bytes:
        data = self.file.read(size)
        self._digest.update(data)
        self._hashed += len(data)
        return data

    def chunks(self, size: int) -> Iterator[bytes]:
        while data := self.read(size):
            yield data

    def read_snapshot(self) -> bytes:
        """The whole file, hashed."""
        return b"".join(self.chunks(1 << 24))

    def hash_for_random_access(self, chunk: int = 1 << 20) -> None:
        """Hash the whole file in one sequential pass (``pread``: the file position is not moved)."""
        offset = 0
        while data := os.pread(self.file.fileno(), chunk, offset):
            self._digest.update(data)
            offset += len(data)
        self._hashed = offset

    def finish(self) -> str:
        """The sha256 of the file's bytes as read; a ``DataError`` if it changed while read."""
        after = os.fstat(self.file.fileno())
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            named = None
        change = None
        if file_signature(after) != file_signature(self._before):
            change = describe_change(self._before, after)
        elif named is None or (named.st_dev, named.st_ino) != (after.st_dev, after.st_ino):
            change = describe_change(self._before, named)
        elif self._hashed != after.st_size:
            change = f"{self._hashed} of its {after.st_size} bytes were read"
        if change is not None:
            raise DataError(f"{self.path}: the file changed while it was read ({change}); the rows "
                            f"read and its hash would not describe one file: rerun once nothing is "
                            f"writing it")
        return self._digest.hexdigest()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "SourceStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def decompressed(stream: SourceStream, read_size: int = 1 << 20) -> Iterator[bytes]:
    """The decompressed bytes of a zstd file, in pieces of about 1 MiB (at most 32 MiB + 1 MiB)."""
    import zstandard

    maker = zstandard.ZstdDecompressor(max_window_size=ZSTD_WINDOW)
    dobj, in_frame = maker.decompressobj(), False
    out: list[bytes] = []
    size = 0
    for block in stream.chunks(read_size):
        view = memoryview(block)
        while view:
            piece, view = view[:ZSTD_FEED], view[ZSTD_FEED:]
            while piece:
                data = dobj.decompress(piece)
                in_frame = True
                if data:
                    out.append(data)
                    size += len(data)
                if dobj.eof:                     # frame finished: the rest starts a new frame
                    rest = dobj.unused_data
                    piece, dobj, in_frame = memoryview(rest), maker.decompressobj(), False
                else:
                    piece = memoryview(b"")
            if size >= _ZSTD_OUT:
                yield b"".join(out)
                out, size = [], 0
    if out:
        yield b"".join(out)
    if in_frame:
        raise DataError(f"{stream.path}: truncated zstd stream (the last frame is incomplete)")


def content_chunks(stream: SourceStream, size: int) -> Iterator[bytes]:
    """The file's bytes (decompressed for ``.zst``) in chunks of about ``size``."""
    return decompressed(stream) if stream.path.name.endswith(".zst") else stream.chunks(size)


def _bounded(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """``chunks`` with any chunk longer than ``limit`` cut into pieces of at most ``limit``."""
    for chunk in chunks:
        if len(chunk) <= limit:
            yield chunk
        else:
            view = memoryview(chunk)
            for start in range(0, len(chunk), limit):
                yield bytes(view[start:start + limit])


def line_blocks(chunks: Iterable[bytes], block_bytes: int, max_line: int) -> Iterator[bytes | LongLine]:
    """Blocks of whole lines from a stream of ``chunks``, in order: each block is cut at the last
    newline once at least ``block_bytes`` have gathered (the last block may lack its final newline),
    and a line longer than ``max_line`` bytes (newline not counted) comes out as a ``LongLine`` in
    its place without ever being held.

    Chunks are cut to at most ``max_line + 1`` bytes, so a line that starts and ends inside one
    chunk is never too long: only the line carried over from earlier chunks needs counting.
    """
    done: list[bytes | memoryview] = []   # complete lines waiting for the block (views: one copy, at the join)
    done_size = 0
    partial: list[bytes] = []             # the line being read, up to max_line bytes of it
    partial_size = 0
    skipped: int | None = None            # bytes so far of a too-long line being skipped
    for chunk in _bounded(chunks, max_line + 1):
        if skipped is not None:
            end = chunk.find(b"\n")
            if end < 0:
                skipped += len(chunk)
                continue
            yield LongLine(skipped + end)
            skipped, chunk = None, chunk[end + 1:]
        first = chunk.find(b"\n")
        if first < 0:
            partial.append(chunk)
            partial_size += len(chunk)
            if partial_size > max_line:   # the carried-over line is too long: skip it from here
                if done:
                    yield b"".join(done)
                    done, done_size = [], 0
                skipped, partial, partial_size = partial_size, [], 0
            continue
        if partial_size + first > max_line:
            if done:
                yield b"".join(done)
                done, done_size = [], 0
            yield LongLine(partial_size + first)
            partial, partial_size, chunk = [], 0, chunk[first + 1:]
            if b"\n" not in chunk:
                partial, partial_size = ([chunk], len(chunk)) if chunk else ([], 0)
                continue
        last = chunk.rfind(b"\n") + 1
        done += partial
        done.append(memoryview(chunk)[:last])
        done_size += partial_size + last
        partial, partial_size = ([chunk[last:]], len(chunk) - last) if last < len(chunk) else ([], 0)
        if done_size + partial_size >= block_bytes:
            yield b"".join(done)
            done, done_size = [], 0
    if skipped is not None:
        yield LongLine(skipped)
    elif done or partial:
        yield b"".join(done + partial)


def iter_lines(chunks: Iterable[bytes], max_line: int, block_bytes: int = 1 << 20) -> Iterator[bytes | LongLine]:
    """The lines of a byte stream (without their newlines), a too-long one as a ``LongLine``."""
    for block in line_blocks(chunks, block_bytes, max_line):
        if isinstance(block, LongLine):
            yield block
            continue
        lines = block.split(b"\n")
        if block.endswith(b"\n"):
            lines.pop()
        yield from lines
