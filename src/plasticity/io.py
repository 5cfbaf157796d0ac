"""Atomic outputs, manifests and small JSON helpers shared by every stage.

Contract (DESIGN.md section 2): a stage writes everything into a temporary sibling of its output,
renames it into place, and writes ``manifest.json`` last. A directory without ``manifest.json`` is
never a finished output, so a killed job is simply rerun. ``atomic_path`` holds the output's lock
(``locks.output_lock``) from before it touches the temporary sibling until the rename, so two runs
on one output never share or delete each other's partial work. A write that fails for want of
space names the output, the free space and the space the output had taken when it failed.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from plasticity.locks import output_lock

MANIFEST = "manifest.json"
_TRACKED_LIBRARIES = ("torch", "transformers", "trl", "tokenizers", "accelerate", "datasets",
                      "pyarrow", "math-verify", "snakemake", "numpy", "scipy")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_json_checked(path: str | os.PathLike, error: type[Exception] = ValueError,
                      missing: str = "file not found") -> Any:
    """A JSON file's value; a missing file or invalid JSON raises ``error`` naming the file (and the
    line of the syntax error) instead of a bare traceback."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_csv_rows(path: str | os.PathLike, required: Sequence[str],
                  error: type[Exception] = ValueError) -> tuple[list[str], list[tuple[int, dict]]]:
    """(columns, [(line number, row)]) of a CSV file; a missing file or a missing required column
    raises ``error`` with a message naming the file (and the columns expected)."""
    path = Path(path)
    try:
        fh = open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    with fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        missing = [c for c in required if c not in columns]
        if missing:
            raise error(f"{path}: missing column(s) {missing}; expected {list(required)}")
        return columns, list(enumerate(reader, start=2))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, lock_wait: float | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it onto ``final`` only if the block succeeds.

    Works for a file or a directory. Holds the lock on ``final`` throughout (``locks.output_lock``;
    ``lock_wait`` seconds to wait for another holder, default ``PLASTICITY_LOCK_WAIT`` or none), so
    a leftover from a killed run can be removed first without touching a live run's work.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(final, lock_wait), _sigterm_as_exit():
        tmp = final.with_name(f".{final.name}.partial")
        _remove(tmp)
        try:
            yield tmp
        except BaseException as exc:
            written = _bytes_under(tmp)
            _remove(tmp)
            failure = _write_failure(exc)
            if failure is not None:
                raise OutputWriteError(_write_message(final, failure, written)) from exc
            raise
        _remove(final)
        os.replace(tmp, final)


class OutputWriteError(OSError):
    """A stage output could not be written (disk full, over quota, file too large, read-only)."""


_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_WRITE_ERRNOS = (*_SPACE_ERRNOS, errno.EFBIG, errno.EROFS)


def _write_failure(exc: BaseException | None) -> OSError | None:
    """The OSError in ``exc``'s chain (itself, its cause or context) that only a write can raise."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _write_message(final: Path, failure: OSError, written: int) -> str:
    done = f"nothing was left half-written ({_size(written)} of partial output removed)"
    if failure.errno not in _SPACE_ERRNOS:
        return f"{final}: writing this output failed: {os.strerror(failure.errno)} ({failure}); {done}"
    free = shutil.disk_usage(final.parent).free
    return (f"{final}: no space left on the device (or over quota) while writing this output: it needs "
            f"more than the {_size(written)} it had written when the write failed, and {_size(free)} is "
            f"free in {final.parent} with the partial output removed; {done}; rerun when there is room")


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _bytes_under(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """In the main thread of a process that has not set its own SIGTERM handler: SIGTERM raises
    SystemExit for the block, so the partial output and the lock are removed (a scheduler cancels
    jobs with SIGTERM). A process forked meanwhile inherits the handler but dies as by default."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is handler:    # unless the block set its own since
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: str | os.PathLike) -> str:
    """Hash of a file, or of every file under a directory (relative names + contents), in sorted order."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST)
    return tree_digest((str(file.relative_to(path)), sha256_file(file)) for file in files)


def tree_digest(files: Iterable[tuple[str, str]]) -> str:
    """``sha256_tree``'s digest of a directory from its (relative name, sha256) pairs, in order."""
    digest = hashlib.sha256()
    for name, file_digest in files:
        digest.update(name.encode())
        digest.update(file_digest.encode())
    return digest.hexdigest()


def file_signature(info: os.stat_result) -> tuple[int, ...]:
    """What changes whenever a file's bytes change: identity, size, modification and change times
    (ctime cannot be set back by a user program, so a write shows even if mtime is restored)."""
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def describe_change(before: os.stat_result, after: os.stat_result | None) -> str:
    """What differs between two stats of one path, in words, for an error message."""
    if after is None:
        return "it was removed"
    if (before.st_dev, before.st_ino) != (after.st_dev, after.st_ino):
        return "it was replaced by another file"
    if before.st_size != after.st_size:
        return f"its size went from {before.st_size} to {after.st_size} bytes"
    return "it was modified (same size, new modification time)"


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TRACKED_LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def write_manifest(out_dir: str | os.PathLike, *, stage: str, config: Any = None,
                   inputs: dict[str, str | os.PathLike] | None = None,
                   seed: int | None = None, extra: dict[str, Any] | None = None) -> None:
    """Write ``manifest.json`` into ``out_dir``: the last file a stage writes.

    Deliberately free of wall-clock time so a rebuilt cell is byte-identical on CPU; ``inputs``
    are hashed so a manifest says exactly what it was built from, ``cpu_kernels`` says on which
    kernel paths (``plasticity.cpu_kernels``).
    """
    from plasticity.cpu_kernels import describe

    manifest = {
        "stage": stage,
        "config": config,
        "seed": seed,
        "inputs": {k: {"path": str(v), "sha256": sha256_tree(v)} for k, v in (inputs or {}).items()
                   if Path(v).exists()},
        "git_revision": git_revision(),
        "libraries": library_versions(),
        "argv": sys.argv[1:],
        "cpu_kernels": describe(),
        **(extra or {}),
    }
    write_json(Path(out_dir) / MANIFEST, manifest)


def is_complete(out_dir: str | os.PathLike) -> bool:
    return (Path(out_dir) / MANIFEST).is_file()


class Timer:
    """Context manager measuring wall time in seconds (for logs, never for manifests)."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
