"""THE grader: the RL reward and the evaluation both call this module (PAPER.md sections 2.5 and 3).

A completion is graded against a reference answer in three steps:

1. ``extract_answer``: the content of the last brace-balanced ``\\boxed{...}`` (or ``\\fbox{...}``);
   failing that, the content of the last ``<answer>...</answer>`` span. Linear in the completion
   length, so a 1 MB completion costs milliseconds. No answer -> wrong, rule ``none``, reason
   ``no_answer``.
2. ``strict`` mode (the study's strict evaluator and its RL reward): math-verify 0.9.0 only.
   The gold is parsed as ``\\boxed{gold}`` (so plain strings such as ``72`` or ``\\frac{1}{2}`` work;
   a gold that already holds ``\\boxed`` or ``$`` is parsed as is) and the prediction as
   ``\\boxed{extracted}`` when it came from a box, or as the raw ``<answer>`` span otherwise
   (math-verify then finds the expression inside the span itself, as the study's
   ``reward_rule.py`` does). Verdict = ``math_verify.verify(gold, prediction)``.
3. ``lenient`` mode adds the study's fallbacks when strict says wrong: normalised-string equality,
   numeric equality within a relative tolerance, and multiple-choice letters.

Speed without changing verdicts. ``Grader.grade_many`` keeps the common case in-process:
  * a fast path (``plasticity.grading_fastpath``) for integers, decimals, fractions, radicals,
    scientific notation, intervals and answers spelled exactly as the reference, which decides
    only where its verdict provably equals math-verify's and defers the grey zone (e.g. decimals
    that differ below 1e-3) to math-verify; the unit tests check it against real math-verify on
    thousands of generated pairs;
  * a cache of (mode, reference, extracted answer) -> verdict, since avg@k repeats answers;
  * everything else goes to worker *processes*: math-verify's timeouts are ``signal.alarm``-based
    (useless in threads) and a sympy/GMP computation in C cannot be interrupted at all, so the
    only reliable bound is a process the parent can kill. Each item gets ``timeout_s`` of wall
    time; a worker that overruns is killed and replaced and the item is graded wrong with reason
    ``timeout``; a worker that dies is replaced and its item graded wrong with reason
    ``unparseable``. The pool starts lazily, so a Grader that only sees integers (the RL reward
    of the miniature) never starts a process.

Timeouts depend on machine load, so a verdict decided by a timeout is the one place the grader
can be non-deterministic; such verdicts carry ``reason="timeout"`` and are counted in scores.
"""
from __future__ import annotations

import atexit
import logging
import math
import multiprocessing.connection
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from plasticity.grading_fastpath import fast_verdict

GRADER_VERSION = "1.0.0"
MODES = ("strict", "lenient")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    correct: bool
    rule: str                 # fast_numeric | fast_exact | fast_identical | math_verify | string | numeric | choice | none
    extracted: str | None     # the extracted answer text (None when there was none)
    reason: str | None = None  # why wrong when nothing could be judged: no_answer | timeout | unparseable


# ----------------------------------------------------------------------------------------------
# Extraction

_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
# Tokens of one left-to-right pass: a box opening, an escaped brace (literal, skipped), a brace.
_BRACE_TOKEN = re.compile(r"\\(?:boxed|fbox)\s*\{|\\[{}]|[{}]")
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"


def _close_of(text: str, content_start: int) -> int | None:
    """Index of the brace closing a group whose content starts at ``content_start``, or None."""
    depth = 1
    for m in _BRACE_TOKEN.finditer(text, content_start):
        tok = m.group()
        if tok[0] == "\\" and len(tok) == 2:
            continue
        if tok == "}":
            depth -= 1
            if depth == 0:
                return m.start()
        else:
            depth += 1
    return None


def _last_closed_box(text: str) -> tuple[int, int] | None:
    """(content start, content end) of the balanced box that starts last, in one linear pass."""
    stack: list[int] = []          # content start for box openings, -1 for plain braces
    best: tuple[int, int] | None = None
    for m in _BRACE_TOKEN.finditer(text):
        tok = m.group()
        if tok == "}":
            if stack:
                start = stack.pop()
                if start >= 0 and (best is None or start > best[0]):
                    best = (start, m.start())
        elif tok == "{":
            stack.append(-1)
        elif tok[0] == "\\" and len(tok) == 2:
            continue
        else:
            stack.append(m.end())
    return best


def _extract(completion: str) -> tuple[str | None, str | None]:
    """(extracted text, kind) with kind ``box`` or ``span``; (None, None) when there is no answer."""
    # Common case first: the last box opening closes; scanning its tail only.
    last = max(completion.rfind("\\boxed"), completion.rfind("\\fbox"))
    if last >= 0:
        m = _BOX_OPEN.match(completion, last)
        if m:
            end = _close_of(completion, m.end())
            if end is not None:
                return completion[m.end():end].strip(), "box"
        # The last box is unclosed (truncated or malformed): one full pass finds the last closed one.
        found = _last_closed_box(completion)
        if found is not None:
            return completion[found[0]:found[1]].strip(), "box"
    end = completion.rfind(_ANSWER_CLOSE)
    if end >= 0:
        start = completion.rfind(_ANSWER_OPEN, 0, end)
        if start >= 0:
            return completion[start + len(_ANSWER_OPEN):end].strip(), "span"
    return None, None


def extract_answer(completion: str) -> str | None:
    """The last balanced ``\\boxed{}``/``\\fbox{}`` content, else the last ``<answer>`` span, else None."""
    return _extract(completion)[0]


# ----------------------------------------------------------------------------------------------
# math-verify (runs in worker processes; also the naive reference path)

def gold_text(reference: str) -> str:
    """The string handed to ``math_verify.parse`` for a reference answer."""
    ref = reference.strip()
    if ref.startswith(_ANSWER_OPEN) and ref.endswith(_ANSWER_CLOSE):
        ref = ref[len(_ANSWER_OPEN):-len(_ANSWER_CLOSE)].strip()
    if "\\boxed" in ref or "\\fbox" in ref or (len(ref) > 1 and ref.startswith("$") and ref.endswith("$")):
        return ref
    return "\\boxed{" + ref + "}"


def prediction_texts(extracted: str, kind: str) -> tuple[str, ...]:
    """The strings handed to ``math_verify.parse`` for an extracted answer.

    A box's content is parsed as ``\\boxed{content}``. An <answer> span is parsed raw (math-verify
    finds ``$...$``, numbers and "answer is" phrases in prose) and, unless it holds its own
    delimiters, also as ``\\boxed{span}`` (bare LaTeX such as ``2\\sqrt{3}`` is only read inside a
    delimiter); the prediction is correct when either reading verifies.
    """
    if kind == "box":
        return ("\\boxed{" + extracted + "}",)
    if "$" in extracted or "\\(" in extracted or "\\[" in extracted:
        return (extracted,)
    return (extracted, "\\boxed{" + extracted + "}")


def math_verify_verdict(gold: str, predictions: tuple[str, ...], timeout_s: float = 5.0,
                        gold_cache: dict | None = None) -> tuple[bool, str | None]:
    """(correct, reason) by math-verify alone; inputs as from gold_text/prediction_texts.

    Must run in a main thread (math-verify's own timeouts use ``signal.alarm``). ``gold_cache``
    (gold string -> parsed gold) saves re-parsing one reference for each of its distinct answers.
    """
    from math_verify import parse, verify

    seconds = max(1, math.ceil(timeout_s))
    g = gold_cache.get(gold) if gold_cache is not None else None
    if g is None:
        g = parse(gold, parsing_timeout=seconds)
        if gold_cache is not None:
            if len(gold_cache) > 50_000:
                gold_cache.clear()
            gold_cache[gold] = g
    if not g:
        return False, "unparseable"
    # verify() is true when any (gold, prediction) pair matches, so the readings are tried in turn
    # and a later one is parsed only when the earlier ones did not match.
    parsed_any = False
    for text in predictions:
        p = parse(text, parsing_timeout=seconds)
        if p:
            parsed_any = True
            if verify(g, p, timeout_seconds=seconds):
                return True, None
    return False, None if parsed_any else "unparseable"


# ----------------------------------------------------------------------------------------------
# Lenient comparisons (the study's fuzzy fallbacks; pure Python, run in-process)

_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|~")
_DEGREE = re.compile(r"\^\s*\{?\\circ\}?|°|\\degree|\bdegrees?\b")
_CHOICE_REF = re.compile(r"\(?([A-Ea-e])\)?")
_CHOICE_PRED = re.compile(r"^\s*(?:\\text\{)?\s*\(?([A-Ea-e])\)?\s*\}?(?:[.:)]|\s|$)")
_NUMBER_IN = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_NUMERIC_RTOL = 1e-4
_LENIENT_MAX_LEN = 500


def normalize_answer(text: str) -> str:
    """The study's string normalisation: LaTeX wrappers, spacing, units of degree, case, punctuation."""
    s = text.strip().strip("$").strip()
    for _ in range(3):  # nested \text{\textbf{..}}
        s = _TEXT_CMD.sub(r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _SPACING.sub("", s)
    s = _DEGREE.sub("", s)
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\s+", "", s).rstrip(".").lower()
    return s


def _to_float(text: str) -> float | None:
    s = normalize_answer(text).replace(",", "")
    frac = re.fullmatch(r"(-?)\\frac\{(-?\d+(?:\.\d+)?)\}\{(-?\d+(?:\.\d+)?)\}", s)
    if frac:
        den = float(frac.group(3))
        return None if den == 0 else (-1 if frac.group(1) else 1) * float(frac.group(2)) / den
    m = _NUMBER_IN.match(s)
    if not m or len(m.group()) > 40:
        return None
    rest = s[m.end():]
    if rest and re.match(r"[\d.\\/^]", rest):  # e.g. 2/3, 2^5, 2\sqrt3: not a plain number with units
        return None
    try:
        return float(m.group())
    except ValueError:
        return None


def _lenient(reference: str, extracted: str) -> str | None:
    """The lenient rule that accepts ``extracted``, or None."""
    if len(extracted) > _LENIENT_MAX_LEN or len(reference) > _LENIENT_MAX_LEN:
        return None
    ref = reference.strip()
    if ref.startswith(_ANSWER_OPEN) and ref.endswith(_ANSWER_CLOSE):
        ref = ref[len(_ANSWER_OPEN):-len(_ANSWER_CLOSE)]
    choice = _CHOICE_REF.fullmatch(ref.strip())
    if choice:
        m = _CHOICE_PRED.match(extracted)
        if m and m.group(1).upper() == choice.group(1).upper():
            return "choice"
        return None  # a multiple-choice item is judged on its letter only
    nr, np_ = normalize_answer(ref), normalize_answer(extracted)
    if nr and nr == np_:
        return "string"
    a, b = _to_float(ref), _to_float(extracted)
    if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
        # Tolerance is for rounded decimals (Minerva's physics answers); integers must match exactly.
        if a.is_integer() and b.is_integer() and "." not in ref and "." not in extracted:
            return "numeric" if a == b else None
        if math.isclose(a, b, rel_tol=_NUMERIC_RTOL, abs_tol=1e-9):
            return "numeric"
    return None


def _finish(strict: tuple[bool, str, str | None], reference: str, extracted: str, mode: str) -> Verdict:
    correct, rule, reason = strict
    if not correct and mode == "lenient":
        lenient_rule = _lenient(reference, extracted)
        if lenient_rule is not None:
            return Verdict(True, lenient_rule, extracted, None)
    return Verdict(correct, rule, extracted, None if correct else reason)


# ----------------------------------------------------------------------------------------------
# Worker processes
#
# Workers are plain subprocesses (``python -m plasticity.grading --worker``) speaking pickled
# messages over their stdin/stdout. Not multiprocessing: its fork start method would copy a caller
# holding torch threads and locks, and spawn/forkserver re-import the caller's ``__main__``
# (``python -m plasticity`` included). Startup is about 0.4 s (math-verify import + warm-up).

def _worker_loop(timeout_s: float) -> None:
    import os
    import sys
    from multiprocessing.connection import Connection

    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    reader, writer = Connection(0, writable=False), Connection(out_fd, readable=False)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    try:
        math_verify_verdict("\\boxed{\\frac{1}{2}}", ("\\boxed{0.5}",), timeout_s)  # warm regexes and parsers
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
            correct, reason = math_verify_verdict(gold, prediction, timeout_s, gold_cache)
        except Exception:  # noqa: BLE001 - any parser failure is an unparseable answer
            correct, reason = False, "unparseable"
        writer.send((key, correct, reason))


_STARTUP_TIMEOUT_S = 120.0


class _Worker:
    def __init__(self, timeout_s: float):
        import os
        import subprocess
        import sys
        from multiprocessing.connection import Connection
        from pathlib import Path

        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plasticity.grading", "--worker", "--timeout-s", repr(timeout_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        self.conn = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self._send = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self.proc.stdout.close()
        self.proc.stdin.close()
        self.job: Any = None
        self.deadline = 0.0

    def wait_ready(self) -> "_Worker":
        """Block until the worker has imported math-verify and says so (started workers warm up in parallel)."""
        if not self.conn.poll(_STARTUP_TIMEOUT_S):
            self.kill()
            raise RuntimeError(f"grader worker did not start within {_STARTUP_TIMEOUT_S:.0f} s")
        try:
            self.conn.recv()
        except EOFError:
            self.kill()
            raise RuntimeError("grader worker exited at startup (see its stderr above)") from None
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


# ----------------------------------------------------------------------------------------------
# The grader

class Grader:
    """Batched grading with fast path, cache and a process pool; use as a context manager.

    >>> with Grader("strict") as g:
    ...     g.grade_many(["<answer>\\\\boxed{4}</answer>"], ["4"])[0].correct
    True
    """

    def __init__(self, mode: str = "strict", workers: int = 1, timeout_s: float = 5.0,
                 cache_size: int = 200_000):
        if mode not in MODES:
            raise ValueError(f"grader mode must be one of {MODES}, got {mode!r}")
        if workers < 1:
            raise ValueError(f"grader workers must be >= 1, got {workers}")
        if not timeout_s > 0:
            raise ValueError(f"grader timeout_s must be > 0, got {timeout_s}")
        self.mode, self.workers, self.timeout_s = mode, workers, float(timeout_s)
        self._cache: OrderedDict[tuple[str, str, str], tuple[bool, str, str | None]] = OrderedDict()
        self._cache_size = cache_size
        self._pool: list[_Worker] = []
        self._starting: list[_Worker] = []   # launched, not yet known to be ready
        self._lock = threading.Lock()
        self.stats = {"fast": 0, "cache": 0, "pool": 0, "timeout": 0, "crash": 0}

    # context manager -------------------------------------------------------------------------
    def __enter__(self) -> "Grader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for w in self._starting:
            w.kill()
        for w in self._pool:   # all asked first, so they exit in parallel
            w.ask_to_stop()
        for w in self._pool:
            w.stop()
        self._pool, self._starting = [], []

    def __del__(self) -> None:  # best effort; close() is the contract
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def fingerprint(self) -> dict:
        return fingerprint(self.mode)

    # grading ---------------------------------------------------------------------------------
    def grade(self, completion: str, reference: str) -> Verdict:
        return self.grade_many([completion], [reference])[0]

    def grade_many(self, completions: list[str], references: list[str]) -> list[Verdict]:
        if len(completions) != len(references):
            raise ValueError(f"grade_many: {len(completions)} completions but {len(references)} references")
        with self._lock:
            return self._grade_many(completions, references)

    def _grade_many(self, completions: list[str], references: list[str]) -> list[Verdict]:
        n = len(completions)
        out: list[Verdict | None] = [None] * n
        pending: dict[tuple[str, str, str], list[int]] = {}
        extracted_of: list[tuple[str | None, str | None]] = [(None, None)] * n
        for i, (completion, reference) in enumerate(zip(completions, references)):
            if not isinstance(completion, str) or not isinstance(reference, str):
                raise TypeError(f"grade_many: item {i} is not a pair of strings")
            extracted, kind = _extract(completion)
            extracted_of[i] = (extracted, kind)
            if not extracted:
                out[i] = Verdict(False, "none", extracted, "no_answer")
                continue
            key = (reference, kind, extracted)
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self.stats["cache"] += 1
                out[i] = _finish(hit, reference, extracted, self.mode)
                continue
            fast = fast_verdict(reference.strip(), extracted, kind)
            if fast is not None:
                self.stats["fast"] += 1
                result = (fast[0], fast[1], None)
                self._remember(key, result)
                out[i] = _finish(result, reference, extracted, self.mode)
                continue
            if not pending and len(self._pool) < self.workers:
                self._launch_workers()  # they warm up while the rest of the batch is extracted
            pending.setdefault(key, []).append(i)
        if pending:
            for key, result in self._run_pool(list(pending)).items():
                self._remember(key, result)
                for i in pending[key]:
                    out[i] = _finish(result, references[i], extracted_of[i][0], self.mode)
        return out  # type: ignore[return-value]

    def _remember(self, key: tuple[str, str, str], result: tuple[bool, str, str | None]) -> None:
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _spawn(self) -> _Worker:
        return _Worker(self.timeout_s).wait_ready()

    def _launch_workers(self) -> None:
        """Start the missing worker processes without waiting for them (they import math-verify, ~0.3 s)."""
        missing = self.workers - len(self._pool) - len(self._starting)
        self._starting.extend(_Worker(self.timeout_s) for _ in range(max(0, missing)))

    def start_workers(self) -> None:
        """Have every worker process started and ready (in parallel); otherwise they start on first need."""
        self._launch_workers()
        starting, self._starting = self._starting, []
        try:
            for w in starting:
                w.wait_ready()
        except BaseException:
            for w in starting:
                w.kill()
            raise
        self._pool.extend(starting)

    def _run_pool(self, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], tuple[bool, str, str | None]]:
        """Grade unique (reference, kind, extracted) keys by math-verify in worker processes."""
        results: dict[tuple[str, str, str], tuple[bool, str, str | None]] = {}
        self.start_workers()
        queue = list(reversed(keys))
        busy: dict[Any, _Worker] = {}

        def dispatch(worker: _Worker) -> None:
            key = queue[-1]
            reference, kind, extracted = key
            message = (key, gold_text(reference), prediction_texts(extracted, kind))
            if worker.proc.poll() is not None:  # died while idle (killed from outside, OOM)
                worker = replace(worker, redispatch=False)
            try:
                worker.send(message)
            except (OSError, ValueError):
                worker = replace(worker, redispatch=False)
                worker.send(message)
            queue.pop()
            worker.job = key
            worker.deadline = time.monotonic() + self.timeout_s
            busy[worker.conn] = worker

        def replace(worker: _Worker, redispatch: bool = True) -> _Worker:
            worker.kill()
            self._pool[self._pool.index(worker)] = fresh = self._spawn()
            if redispatch and queue:
                dispatch(fresh)
            return fresh

        for worker in list(self._pool):
            if queue:
                dispatch(worker)
        while busy:
            now = time.monotonic()
            wait_s = max(0.0, min(w.deadline for w in busy.values()) - now)
            ready = multiprocessing.connection.wait(list(busy), timeout=wait_s)
            for conn in ready:
                worker = busy.pop(conn)
                try:
                    key, correct, reason = conn.recv()
                except (EOFError, OSError):
                    self.stats["crash"] += 1
                    log.warning("grader worker died on an item; graded unparseable: %.200r", worker.job)
                    results[worker.job] = (False, "math_verify", "unparseable")
                    replace(worker)
                    continue
                self.stats["pool"] += 1
                results[key] = (bool(correct), "math_verify", reason)
                if queue:
                    dispatch(worker)
            now = time.monotonic()
            for conn, worker in list(busy.items()):
                if conn not in ready and now >= worker.deadline:
                    del busy[conn]
                    self.stats["timeout"] += 1
                    log.warning("grader item exceeded %.1f s; graded wrong (timeout): %.200r",
                                self.timeout_s, worker.job)
                    results[worker.job] = (False, "math_verify", "timeout")
                    replace(worker)
        return results


# ----------------------------------------------------------------------------------------------
# Module-level helpers

_DEFAULT_GRADERS: dict[str, Grader] = {}


def _default_grader(mode: str) -> Grader:
    if mode not in _DEFAULT_GRADERS:
        _DEFAULT_GRADERS[mode] = Grader(mode)
    return _DEFAULT_GRADERS[mode]


@atexit.register
def _close_default_graders() -> None:
    for g in _DEFAULT_GRADERS.values():
        g.close()


def grade(completion: str, reference: str, mode: str = "strict") -> Verdict:
    """Grade one completion (a shared module-level Grader: fast path, cache, one worker process)."""
    return _default_grader(mode).grade(completion, reference)


def grade_naive(completion: str, reference: str, mode: str = "strict", timeout_s: float = 5.0) -> Verdict:
    """The same verdict computed the slow way: no fast path, no cache, math-verify in this process.

    The reference the fast path and pool are checked against (tests, benchmarks/bench_grading.py).
    Main thread only, and not protected against inputs that hang inside C code.
    """
    extracted, kind = _extract(completion)
    if not extracted:
        return Verdict(False, "none", extracted, "no_answer")
    try:
        correct, reason = math_verify_verdict(gold_text(reference), prediction_texts(extracted, kind), timeout_s)
    except Exception:  # noqa: BLE001
        correct, reason = False, "unparseable"
    return _finish((correct, "math_verify", reason), reference, extracted, mode)


def math_verify_version() -> str | None:
    from importlib import metadata
    try:
        return metadata.version("math-verify")
    except metadata.PackageNotFoundError:
        return None


def fingerprint(mode: str = "strict") -> dict:
    """What a score depends on from the grader: its version, math-verify's version and the mode."""
    return {"grader_version": GRADER_VERSION, "math_verify": math_verify_version(), "mode": mode}


if __name__ == "__main__":
    import argparse
    import os
    import sys

    _parser = argparse.ArgumentParser(description="grader worker process (internal)")
    _parser.add_argument("--worker", action="store_true", required=True)
    _parser.add_argument("--timeout-s", type=float, default=5.0)
    _worker_loop(_parser.parse_args().timeout_s)
    # Skip interpreter teardown (freeing sympy's caches takes ~0.1 s); the protocol pipe is unbuffered.
    sys.stderr.flush()
    os._exit(0)
