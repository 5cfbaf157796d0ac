"""One writer per output: an exclusive lock file beside a stage's output, taken before anything is written.

``output_lock(final)`` creates ``.<name>.lock`` next to ``final``. The file is written complete under
a private name first and then hard-linked to the lock name: ``link`` fails when the name exists, on
local disks and on NFS alike, so exactly one process gets it and a reader never sees half a lock.
On a filesystem without hard links the lock is created with ``O_CREAT | O_EXCL`` and then written;
a lock read in the moment between is unreadable and counts as held by an unknown holder.
It records who holds it: host, boot id, pid and the process's start time, a random token, since
when, and the command line.

A second run on the same output fails at once with ``OutputLocked`` naming the output, the holder
and the lock file; with ``wait`` (seconds, ``math.inf`` for no limit) it polls until the holder is
done instead. ``wait`` defaults to the environment variable ``PLASTICITY_LOCK_WAIT`` (set by
``python -m plasticity --lock-wait SECONDS <stage>``), else 0.

The lock is removed when the block exits in any way Python sees (return, exception,
KeyboardInterrupt, SystemExit; ``io.atomic_path`` turns SIGTERM into SystemExit while it holds one),
and only if it still holds this process's token. A process killed outright (SIGKILL, the OOM
killer) leaves its lock behind; the next run breaks it once it has proved the holder dead: the lock
was taken on this host (same host name) and the host has rebooted since (another boot id), or no
process has that pid, or the pid now belongs to a process started at another time (pid reuse). A
lock taken on another host is never broken automatically, since that host's processes cannot be
seen from here; the error says so and names the file to remove once that run is known to be gone.

Breaking is serialised by a second lock file, ``.<name>.lock.break``, taken the same way; under it
the lock is removed only if it still holds the dead holder's token. So two runs that find the same
stale lock cannot remove a live one: the second finds the first's fresh lock, with another token.
A break lock lives for one read and one unlink; one older than ``BREAK_STALE_S`` was left by a
process killed in between and is removed.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import json
import math
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterator

WAIT_ENV = "PLASTICITY_LOCK_WAIT"
_NO_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK)
POLL_S = 0.5
BREAK_STALE_S = 60.0


class OutputLocked(RuntimeError):
    """Another live process holds the lock on an output."""


def lock_path(final: str | os.PathLike) -> Path:
    final = Path(final)
    return final.with_name(f".{final.name}.lock")


def default_wait() -> float:
    """Seconds to wait for a held lock: ``PLASTICITY_LOCK_WAIT`` (a number or ``inf``), else 0."""
    raw = os.environ.get(WAIT_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{WAIT_ENV}={raw!r}: expected seconds (a number, or inf)") from None
    if value < 0 or math.isnan(value):
        raise ValueError(f"{WAIT_ENV}={raw!r}: expected seconds >= 0")
    return value


@contextlib.contextmanager
def output_lock(final: str | os.PathLike, wait: float | None = None) -> Iterator[Path]:
    """Hold the exclusive lock on ``final`` for the block; yields the lock file's path."""
    final = Path(final)
    lock = lock_path(final)
    wait = default_wait() if wait is None else wait
    me = _identity()
    deadline = time.monotonic() + wait
    while not _create(lock, me):
        holder = _read(lock)
        if holder is None:                       # released meanwhile: try again at once
            continue
        if _dead(holder):
            _break(lock, holder, me)
            continue
        if time.monotonic() >= deadline:
            raise OutputLocked(_locked_message(final, lock, holder, wait))
        time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0.0)))
    try:
        yield lock
    finally:
        _release(lock, me["token"])


def _identity() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot_id": _boot_id(), "pid": pid, "start": _process_start(pid),
            "slurm_job": os.environ.get("SLURM_JOB_ID"), "token": secrets.token_hex(16),
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "argv": sys.argv}


def _create(path: Path, content: dict[str, Any]) -> bool:
    """Create ``path`` holding ``content`` if it does not exist; False if it does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(content, sort_keys=True) + "\n"
    private = path.with_name(f"{path.name}.{content['token']}")
    private.write_text(text, encoding="utf-8")
    try:
        os.link(private, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
    finally:
        private.unlink()
    try:                                         # no hard links here: create exclusively, then write
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return True


def _read(path: Path) -> dict[str, Any] | None:
    """The holder recorded in a lock file, or None if there is no lock file any more."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        holder = None
    # Lock files are created complete (link), so this is a file some other program wrote:
    # treated as a live lock of an unknown holder, never broken.
    return holder if isinstance(holder, dict) else {"host": "?", "pid": "?", "unreadable": text[:200]}


def _dead(holder: dict[str, Any]) -> bool:
    """Whether the process that took the lock has certainly exited: on this host from its pid, elsewhere
    from its SLURM job."""
    if holder.get("host") != socket.gethostname():
        return _slurm_job_gone(holder.get("slurm_job"))
    if not isinstance(holder.get("pid"), int):
        return False
    boot = _boot_id()
    if boot is not None and holder.get("boot_id") not in (None, boot):
        return True                              # the host has rebooted since
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:                      # alive, another user's
        pass
    start = _process_start(holder["pid"])
    return start is not None and holder.get("start") is not None and start != holder["start"]


def _slurm_job_gone(job: Any) -> bool:
    """True when SLURM job ``job`` is over: it is this job (requeued: an earlier incarnation held the
    lock) or ``squeue`` answers that it does not know it. Any other answer, or no squeue, is not proof."""
    if not job:
        return False
    if str(job) == os.environ.get("SLURM_JOB_ID"):
        return True
    import subprocess

    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if out.returncode == 0:
        return not out.stdout.strip()
    return "invalid job id" in out.stderr.lower()


def _break(lock: Path, holder: dict[str, Any], me: dict[str, Any]) -> None:
    """Remove ``lock`` if it is still the stale ``holder``'s, under the break lock."""
    guard = lock.with_name(lock.name + ".break")
    if not _create(guard, me):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - guard.stat().st_mtime > BREAK_STALE_S:
                guard.unlink()
        time.sleep(0.01)                         # another run is breaking it: look again
        return
    try:
        current = _read(lock)
        if current is not None and current.get("token") == holder.get("token"):
            lock.unlink()
            print(f"{lock}: removed the stale lock of pid {holder.get('pid')} on {holder.get('host')} "
                  f"(since {holder.get('since')}), which is no longer running", file=sys.stderr)
    finally:
        _release(guard, me["token"])


def _release(path: Path, token: str) -> None:
    holder = _read(path)
    if holder is not None and holder.get("token") == token:
        path.unlink()


def _locked_message(final: Path, lock: Path, holder: dict[str, Any], wait: float) -> str:
    who = (f"pid {holder.get('pid')} on host {holder.get('host')}, since {holder.get('since')}, "
           f"running {' '.join(map(str, holder.get('argv') or [])) or '?'}")
    waited = f" (waited {wait:g} s)" if wait else ""
    if holder.get("host") == socket.gethostname():
        remedy = "it is still running"
    else:
        remedy = ("its host cannot be checked from here: if that run is gone (job killed, node lost), "
                  f"remove {lock}")
    return (f"{final}: another run is writing this output{waited}: {who}; lock file {lock}; {remedy}. "
            f"To wait for it instead: python -m plasticity --lock-wait SECONDS <stage> ... "
            f"(or {WAIT_ENV}=SECONDS)")


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])     # field 22, counted after the command name
