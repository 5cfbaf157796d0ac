"""Atomic outputs, manifests and small JSON helpers shared by every stage.

Contract (DESIGN.md section 2): a stage writes everything into a temporary sibling of its output,
renames it into place, and writes ``manifest.json`` last. A directory without ``manifest.json`` is
never a finished output, so a killed job is simply rerun.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Sequence

MANIFEST = "manifest.json"
_TRACKED_LIBRARIES = ("torch", "transformers", "trl", "tokenizers", "accelerate", "datasets",
                      "pyarrow", "math-verify", "snakemake", "numpy", "scipy")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


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
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it onto ``final`` only if the block succeeds.

    Works for a file or a directory. A leftover from a killed run is removed first.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    _remove(final)
    os.replace(tmp, final)


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
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if file.name == MANIFEST:
            continue
        digest.update(str(file.relative_to(path)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


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
