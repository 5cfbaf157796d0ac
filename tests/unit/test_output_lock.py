"""One writer per output (plasticity.locks, io.atomic_path): a second run fails at once naming the
holder or waits when asked, the lock goes on any exit, and only a provably dead holder's lock is broken."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from plasticity import cli, locks
from plasticity.io import atomic_path
from plasticity.locks import OutputLocked, lock_path, output_lock

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
# A process that takes the output's lock through atomic_path, writes a partial file, says so and sleeps.
HOLDER = """
import sys, time
from pathlib import Path
from plasticity.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.mkdir()
    (tmp / "part.txt").write_text("half")
    print("holding", flush=True)
    time.sleep(60)
"""


def holder(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid                      # exited and reaped: no process has it (until reused)


def plant_lock(out: Path, **holder_fields) -> Path:
    lock = lock_path(out)
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "boot_id": locks._boot_id(), "pid": dead_pid(),
                                "start": 1, "token": "old", "since": "earlier", "argv": ["x"], **holder_fields}))
    return lock


def test_second_run_fails_at_once_naming_output_and_holder_and_leaves_the_partial(tmp_path):
    out = tmp_path / "out"
    proc = holder(out)
    try:
        start = time.monotonic()
        with pytest.raises(OutputLocked) as exc, atomic_path(out):
            pass
        assert time.monotonic() - start < 2
        message = str(exc.value)
        assert str(out) in message and f"pid {proc.pid}" in message and socket.gethostname() in message
        assert str(lock_path(out)) in message and "--lock-wait" in message
        # The bug this guards against: the second run deleted the first's partial directory.
        assert (tmp_path / ".out.partial" / "part.txt").read_text() == "half"
    finally:
        proc.kill()
        proc.wait()


def test_waits_for_the_holder_when_asked(tmp_path):
    out = tmp_path / "out"
    entered = threading.Event()

    def first() -> None:
        with atomic_path(out) as tmp:
            tmp.write_text("first")
            entered.set()
            time.sleep(0.8)

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait()
    start = time.monotonic()
    with atomic_path(out, lock_wait=30) as tmp:
        assert out.read_text() == "first"              # the holder had finished and renamed
        tmp.write_text("second")
    assert time.monotonic() - start >= 0.3
    thread.join()
    assert out.read_text() == "second" and not lock_path(out).exists()
    with output_lock(out), pytest.raises(OutputLocked, match=r"waited 0\.2 s"), output_lock(out, wait=0.2):
        pass


def test_lock_released_on_exception_and_on_sigterm(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ZeroDivisionError), atomic_path(out):
        1 / 0
    assert not lock_path(out).exists()
    proc = holder(out)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert not lock_path(out).exists() and not (tmp_path / ".out.partial").exists() and not out.exists()


def test_lock_of_a_killed_process_is_broken_by_the_next_run(tmp_path, capsys):
    out = tmp_path / "out"
    proc = holder(out)
    proc.kill()                                          # SIGKILL: nothing runs, the lock stays
    proc.wait()
    assert json.loads(lock_path(out).read_text())["pid"] == proc.pid
    with atomic_path(out) as tmp:
        assert not tmp.exists()                          # the dead run's partial was removed
        tmp.write_text("done")
    assert out.read_text() == "done" and not lock_path(out).exists()
    assert f"stale lock of pid {proc.pid}" in capsys.readouterr().err


@pytest.mark.parametrize("fields, stale", [
    ({}, True),                                                   # no process has the pid
    ({"pid": os.getpid(), "start": -1}, True),                    # the pid was reused since
    ({"boot_id": "another-boot"}, True),                          # the host rebooted since
    ({"pid": os.getpid(), "start": locks._process_start(os.getpid())}, False),   # alive: this process
    ({"host": "elsewhere.cluster"}, False),                       # another host: cannot be checked
])
def test_only_a_provably_dead_holder_is_stale(tmp_path, fields, stale):
    out = tmp_path / "out"
    lock = plant_lock(out, **fields)
    if stale:
        with output_lock(out):
            assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert not lock.exists()
    else:
        with pytest.raises(OutputLocked) as exc, output_lock(out):
            pass
        assert json.loads(lock.read_text())["token"] == "old"     # left as it was
        if fields.get("host") == "elsewhere.cluster":
            assert "cannot be checked" in str(exc.value) and f"remove {lock}" in str(exc.value)


def test_many_runs_finding_one_stale_lock_let_exactly_one_in(tmp_path):
    for round_ in range(20):
        out = tmp_path / f"out{round_}"
        plant_lock(out)
        barrier, won, lost = threading.Barrier(6), [], []
        release = threading.Event()

        def contend() -> None:
            barrier.wait()
            try:
                with output_lock(out):
                    won.append(1)
                    release.wait(5)
            except OutputLocked:
                lost.append(1)
                if len(lost) == 5:
                    release.set()

        threads = [threading.Thread(target=contend) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert (len(won), len(lost)) == (1, 5)
        assert not lock_path(out).exists() and not lock_path(out).with_name(".%s.lock.break" % out.name).exists()


def test_cli_lock_wait_sets_the_wait_for_the_stage(monkeypatch):
    monkeypatch.setenv(locks.WAIT_ENV, "0")            # restored (removed) after the test
    seen = {}
    monkeypatch.setitem(cli.STAGES, "probe", (__name__, "test stage"))
    monkeypatch.setattr(sys.modules[__name__], "main", lambda argv: seen.update(wait=locks.default_wait()) or 0,
                        raising=False)
    assert cli.main(["--lock-wait", "inf", "probe"]) == 0 and seen["wait"] == float("inf")
    assert cli.main(["--lock-wait", "soon", "probe"]) == 2 and locks.default_wait() == float("inf")


def test_without_hard_links_the_lock_is_still_exclusive(tmp_path, monkeypatch):
    def no_link(src, dst):
        raise PermissionError(1, "Operation not permitted")      # what vfat / some FUSE mounts say
    monkeypatch.setattr(os, "link", no_link)
    out = tmp_path / "out"
    with output_lock(out):
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
        with pytest.raises(OutputLocked):
            with output_lock(out):
                pass
    assert sorted(os.listdir(tmp_path)) == []


def test_a_lock_file_that_does_not_parse_is_never_broken(tmp_path):
    out = tmp_path / "out"
    lock_path(out).write_text("written by something else")
    with pytest.raises(OutputLocked, match="written by something else|pid \\?"):
        with output_lock(out):
            pass
    assert lock_path(out).read_text() == "written by something else"


@pytest.mark.parametrize("squeue, here, stale", [
    (None, "77", True),                                 # the holder's job is this job: SLURM requeued it
    ("exit 0", None, True),                             # squeue no longer lists the holder's job
    ("echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1", None, True),
    ("echo RUNNING", None, False),                      # still running on its node
    ("echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1", None, False),
])
def test_a_lock_from_another_host_is_stale_once_its_slurm_job_is_over(tmp_path, monkeypatch, squeue, here, stale):
    """A training or data job killed outright on one node and retried on another: the lock its first
    incarnation left names its SLURM job; that job being over (or being this one) is proof it is gone."""
    if squeue is not None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "squeue").write_text(f"#!/bin/sh\n{squeue}\n")
        (bin_dir / "squeue").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    if here:
        monkeypatch.setenv("SLURM_JOB_ID", here)
    else:
        monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    out = tmp_path / "out"
    lock = plant_lock(out, host="node-a.cluster", slurm_job="77")
    if stale:
        with output_lock(out):
            assert json.loads(lock.read_text())["host"] == socket.gethostname()
        assert not lock.exists()
    else:
        with pytest.raises(OutputLocked), output_lock(out):
            pass
        assert json.loads(lock.read_text())["token"] == "old"
