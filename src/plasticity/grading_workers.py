"""The grader's worker processes: math-verify with a wall-clock timeout the caller enforces.

Workers are plain subprocesses (``python -m plasticity.grading_workers --worker``) speaking pickled
messages over their stdin/stdout. Not multiprocessing: its fork start method would copy a caller
holding torch threads and locks, and spawn/forkserver re-import the caller's ``__main__``
(``python -m plasticity`` included). Startup is about 0.4 s (math-verify import + warm-up).
``plasticity.grading.Grader`` starts, feeds, times out and replaces them.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any


def worker_loop(warm: bool = False) -> None:
    """A worker's life: say ready, then answer (key, gold, predictions) jobs until told to stop."""
    from multiprocessing.connection import Connection

    from plasticity.grading import math_verify_reads, math_verify_verdict

    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    reader, writer = Connection(0, writable=False), Connection(out_fd, readable=False)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    try:
        math_verify_verdict("\\boxed{\\frac{1}{2}}", ("\\boxed{0.5}",), None)  # warm regexes and parsers
        if warm:   # a replacement: import sympy's simplification now, so its first item needs no grace
            math_verify_verdict("\\boxed{x^2+2x+1}", ("\\boxed{(x+1)^2}",), None)
    except Exception:  # noqa: BLE001 - a broken install shows up on the first real item
        pass
    writer.send(("ready",))
    gold_cache: dict = {}
    while True:
        try:
            job = reader.recv()
        except EOFError:
            return
        if job is None:
            return
        key, gold, prediction = job
        try:
            if gold is None:     # a probe: does math-verify read anything from this response?
                correct, reason = math_verify_reads(prediction, None), None
            else:
                correct, reason = math_verify_verdict(gold, prediction, None, gold_cache)
        except Exception:  # noqa: BLE001 - any parser failure is an unparseable answer
            correct, reason = False, "unparseable"
        writer.send((key, correct, reason))


STARTUP_TIMEOUT_S = 120.0
# A worker's first symbolic comparison imports sympy's simplification lazily (~1 s); its first item
# gets this much more time, rather than every worker paying it at start-up.
FIRST_ITEM_GRACE_S = 2.0


class Worker:
    """One worker process and its two pipes; ``job`` and ``deadline`` are the Grader's bookkeeping."""

    def __init__(self, warm: bool = False) -> None:
        import subprocess
        from multiprocessing.connection import Connection
        from pathlib import Path

        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plasticity.grading_workers", "--worker"] + (["--warm"] if warm else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        self.conn = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self._send = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self.proc.stdout.close()
        self.proc.stdin.close()
        self.job: Any = None
        self.deadline = 0.0
        self.ready = False
        self.first_item = not warm

    def wait_ready(self) -> "Worker":
        """Block until the worker has imported math-verify and says so (started workers warm up in parallel)."""
        if not self.conn.poll(STARTUP_TIMEOUT_S):
            self.kill()
            raise RuntimeError(f"grader worker did not start within {STARTUP_TIMEOUT_S:.0f} s")
        try:
            self.conn.recv()
        except EOFError:
            self.kill()
            raise RuntimeError("grader worker exited at startup (see its stderr above)") from None
        self.ready = True
        return self

    def send(self, message: Any) -> None:
        self._send.send(message)

    def _close_pipes(self) -> None:
        for c in (self.conn, self._send):
            try:
                c.close()
            except OSError:
                pass

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._close_pipes()

    def ask_to_stop(self) -> None:
        try:
            self._send.send(None)
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        """Wait (briefly) for the exit that ask_to_stop asked for; kill past 2 s."""
        try:
            self.proc.wait(timeout=2)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_pipes()


STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")


def ignore_stop_signals() -> None:
    """A job's stop signal goes to its whole process group (SLURM, ``plasticity.launch``), workers
    included. A worker's life belongs to its parent (EOF on its stdin, or ``kill``): the stage saves at
    its next step boundary and grades until then, so the signal must not kill its workers mid-step."""
    import signal

    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)


if __name__ == "__main__":
    import argparse

    ignore_stop_signals()

    _parser = argparse.ArgumentParser(description="grader worker process (internal)")
    _parser.add_argument("--worker", action="store_true", required=True)
    _parser.add_argument("--warm", action="store_true", help="import sympy's simplification before saying ready")
    worker_loop(_parser.parse_args().warm)
    # Skip interpreter teardown (freeing sympy's caches takes ~0.1 s); the protocol pipe is unbuffered.
    sys.stderr.flush()
    os._exit(0)
