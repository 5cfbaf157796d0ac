"""THE grader: the RL reward and the evaluation both call this module (PAPER.md sections 2.5 and 3).

A completion is graded against a reference in four steps:

1. ``plasticity.extraction.extract``: the answer in the evaluator's order (``order="eval"``: the
   last ``<answer>`` span, then the last box, then the response) or the reward's (``"reward"``:
   the last box, then the span, then the response); see that module for PAPER.md 2.5. No answer
   -> wrong, rule ``none``, reason ``no_answer``. The answer is then tidied
   (``extraction.tidy``: ``\\textbf{(073)}`` -> ``073``, ``104.`` -> ``104``) and, when the
   benchmark gives a unit, stripped of it.
2. ``strict`` mode (the study's strict evaluator and its RL reward): math-verify 0.9.0.
   The gold is parsed as ``\\boxed{gold}`` (so plain strings such as ``72`` or ``\\frac{1}{2}`` work;
   a gold that already holds ``\\boxed`` or ``$`` is parsed as is) and the prediction as
   ``\\boxed{extracted}`` when it came from a box, or as raw text otherwise (math-verify then
   finds the expression inside the span or response itself, as the study's code does).
   Verdict = ``math_verify.verify(gold, prediction)``. A multi-answer reference (``Reference``
   with several ``answers``) is a set: gold ``\\boxed{a, b}`` against every box of the answer
   region joined (math-verify compares comma lists as sets). Where the benchmark gives a numeric
   tolerance it is honoured, but strict never accepts numbers more than 0.1% apart (math-verify
   rounds floats to 6 decimals and would call ``0.0000124`` equal to ``0.0000123``: such a
   verdict is turned into wrong with rule ``relative_gap``). An answer or reference longer than
   ``MAX_ANSWER_CHARS`` is not handed to math-verify, which needs seconds for such texts and would
   only time out (a verdict that depends on machine load): integers of any length are compared
   as digit strings (``grading_fastpath.integers_verdict``), anything else is wrong with rule
   ``none`` and reason ``too_long``, at once and deterministically. The response fallback is cut
   to ``extraction.TEXT_TAIL`` characters, below the bound.
3. ``lenient`` mode adds the fallbacks of ``plasticity.grading_lenient`` when strict says wrong;
   ``released`` mode (the study's GPU training reward, reward order only) adds those of
   ``plasticity.grading_released`` (string, numeric or choice comparison of the ``<answer>`` span,
   then a Levenshtein ratio above 0.6).

Every item gets a verdict. An exception while grading one item (a parser bug, an input no rule
foresaw) is caught where that item is handled: the item is graded wrong with rule ``error`` and
reason ``error:<exception class>`` (counted in ``stats["error"]`` and by the grade stage's
scores), the rest of the batch is graded as usual. Log lines quote an item through ``quote``: at
most ``QUOTE_CHARS`` characters of it, however long it is (math-verify's own warnings, which
quote their whole input, are cut the same way).

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
    ``unparseable``. Workers run math-verify with its own (signal) timeouts off, so the parent's
    deadline is the only one and an item that runs too long always gets the reason ``timeout``
    (math-verify's internal timeout would turn the same item into ``unparseable`` on a loaded
    machine). A replacement worker is started without waiting for it: the queue goes on with the
    other workers and the new one takes items once it says it is ready, so an item's wall time
    is bounded by ``timeout_s`` plus the time to kill a process (plus ``_FIRST_ITEM_GRACE_S`` for
    the first item of a worker started with the pool, which may import sympy's simplification). A
    replacement imports it before it says ready, so its first item gets no grace: a run of
    hostile items costs ``timeout_s`` each, not ``timeout_s`` plus the grace. The pool starts
    lazily, so a Grader that only sees integers (the RL reward of the miniature) never starts a
    process.

Timeouts depend on machine load, so a verdict decided by a timeout is the one place the grader
can be non-deterministic; such verdicts carry ``reason="timeout"`` and are counted in scores.
"""
from __future__ import annotations

import atexit
import logging
import math
import multiprocessing.connection
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from plasticity.extraction import ORDERS, Extraction, extract, tidy
from plasticity.grading_fastpath import fast_verdict, integers_verdict
from plasticity.grading_lenient import lenient_rule, numbers_apart, strip_unit, within_tolerance
from plasticity.grading_workers import FIRST_ITEM_GRACE_S as _FIRST_ITEM_GRACE_S
from plasticity.grading_workers import STARTUP_TIMEOUT_S as _STARTUP_TIMEOUT_S
from plasticity.grading_workers import Worker as _Worker
from plasticity.grading_released import released_rule

GRADER_VERSION = "2.1.0"
MODES = ("strict", "lenient", "released")
STRICT_MAX_RELATIVE = 1e-3     # strict never accepts numbers further apart than 0.1%, whatever the tolerance
QUOTE_CHARS = 200              # characters of an item a log line quotes at most
MAX_ANSWER_CHARS = 2000        # longest answer or reference math-verify is asked about (module docstring)
ERROR_RULE, ERROR_REASON = "error", "error:"   # an item whose grading raised: reason "error:<class>"

log = logging.getLogger(__name__)


def quote(text: Any, limit: int = QUOTE_CHARS) -> str:
    """``repr`` of ``text`` cut to about ``limit`` characters: head ... tail (length), for log lines."""
    text = text if isinstance(text, str) else repr(text)
    if len(text) <= limit and len(shown := repr(text)) <= limit + 2:
        return shown
    half = limit // 2
    return f"{repr(text[:half])[:half]}...{repr(text[-half:])[-half:]} ({len(text):,} characters)"


def is_error(verdict: "Verdict") -> bool:
    """Whether ``verdict`` is that of an item whose grading raised (see the module docstring)."""
    return (verdict.reason or "").startswith(ERROR_REASON)


class _ShortRecords(logging.Filter):
    """Cuts a log record to ``QUOTE_CHARS`` characters (math-verify's warnings quote their input whole)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > 2 * QUOTE_CHARS:
            record.msg, record.args = f"{message[:QUOTE_CHARS]}... ({len(message):,} characters)", None
        return True


for _name in ("math_verify.parser", "math_verify.grader", "math_verify.metric", "math_verify.utils"):
    logging.getLogger(_name).addFilter(_ShortRecords())


@dataclass(frozen=True)
class Verdict:
    correct: bool
    rule: str                 # fast_numeric | fast_exact | fast_identical | math_verify | tolerance | relative_gap
    #                           (strict) | string | numeric | choice (lenient) | answer_string | answer_numeric
    #                           | answer_choice | levenshtein (released) | none | error
    extracted: str | None     # the extracted answer text (None when there was none)
    reason: str | None = None  # why wrong when nothing could be judged: no_answer | timeout | unparseable | too_long
    #                            | error:<exception class> (grading the item raised; rule ``error``)
    kind: str | None = None    # how the answer was found: box | span | text (extraction.extract)


@dataclass(frozen=True)
class Reference:
    """A benchmark's gold: ``answer`` (normalised), or several ``answers`` graded as a set, with the
    benchmark's ``unit`` and absolute numeric ``tolerance`` where it gives them. A plain string
    reference is ``Reference(answer=string)``."""
    answer: str
    answers: tuple[str, ...] = ()
    unit: str | None = None
    tolerance: float | None = None

    @property
    def gold(self) -> str:
        """The gold string graded: the answer, or the answers comma-joined (a set for math-verify)."""
        return ", ".join(self.answers) if len(self.answers) > 1 else self.answer


def as_reference(reference: "str | Reference") -> Reference:
    return reference if isinstance(reference, Reference) else Reference(reference)


def prepare(completion: str, reference: "str | Reference", order: str = "eval"
            ) -> tuple[Extraction, Reference, str | None]:
    """(extraction, reference, the answer text compared with ``reference.gold``; None without one)."""
    ref = as_reference(reference)
    found = extract(completion, order)
    if not found.text:
        return found, ref, None
    if len(ref.answers) > 1 and found.kind == "box":
        parts = [strip_unit(tidy(b), ref.unit) for b in found.boxes]
        return found, ref, ", ".join(parts)
    return found, ref, strip_unit(tidy(found.text), ref.unit)


# ----------------------------------------------------------------------------------------------
# math-verify (runs in worker processes; also the naive reference path)

def gold_text(reference: str) -> str:
    """The string handed to ``math_verify.parse`` for a reference answer."""
    ref = reference.strip()
    if ref.startswith("<answer>") and ref.endswith("</answer>"):
        ref = ref[len("<answer>"):-len("</answer>")].strip()
    if "\\boxed" in ref or "\\fbox" in ref or (len(ref) > 1 and ref.startswith("$") and ref.endswith("$")):
        return ref
    return "\\boxed{" + ref + "}"


def prediction_texts(extracted: str, kind: str) -> tuple[str, ...]:
    """The strings handed to ``math_verify.parse`` for an extracted answer.

    A box's content is parsed as ``\\boxed{content}``. An <answer> span is parsed raw (math-verify
    finds ``$...$``, numbers and "answer is" phrases in prose) and, unless it holds its own
    delimiters, also as ``\\boxed{span}`` (bare LaTeX such as ``2\\sqrt{3}`` is only read inside a
    delimiter); the prediction is correct when either reading verifies. A response (kind
    ``text``) is parsed raw only, as the study's code hands math-verify the whole response.
    """
    if kind == "box":
        return ("\\boxed{" + extracted + "}",)
    if kind == "text" or "$" in extracted or "\\(" in extracted or "\\[" in extracted:
        return (extracted,)
    return (extracted, "\\boxed{" + extracted + "}")


def math_verify_verdict(gold: str, predictions: tuple[str, ...], timeout_s: float | None = 5.0,
                        gold_cache: dict | None = None) -> tuple[bool, str | None]:
    """(correct, reason) by math-verify alone; inputs as from gold_text/prediction_texts.

    With a ``timeout_s`` it must run in a main thread (math-verify's own timeouts use
    ``signal.alarm``); None turns them off (the worker processes, whose parent keeps the time).
    ``gold_cache`` (gold string -> parsed gold) saves re-parsing one reference for each of its
    distinct answers.
    """
    from math_verify import parse, verify

    seconds = None if timeout_s is None else max(1, math.ceil(timeout_s))
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
    # A wrong answer is ``unparseable`` when math-verify read nothing, or only a string (its
    # fallback) where the gold is a mathematical expression: ``\\frac{1}{}`` for ``12``.
    # Nothing read from any reading is ``unparseable`` whatever the gold (``Grader`` relies on it
    # to grade a response that math-verify reads nothing from once for all its golds).
    expression, read = any(not isinstance(x, str) for x in g), False
    for text in predictions:
        p = parse(text, parsing_timeout=seconds)
        if p:
            if verify(g, p, timeout_seconds=seconds):
                return True, None
            read = True
            expression = expression and all(isinstance(x, str) for x in p)
    return False, "unparseable" if expression or not read else None


def math_verify_reads(predictions: tuple[str, ...], timeout_s: float | None = 5.0) -> bool:
    """Whether math-verify reads anything from any of the prediction readings (gold-independent)."""
    from math_verify import parse

    seconds = None if timeout_s is None else max(1, math.ceil(timeout_s))
    return any(parse(text, parsing_timeout=seconds) for text in predictions)


# ----------------------------------------------------------------------------------------------
# The grader

class Grader:
    """Batched grading with fast path, cache and a process pool; use as a context manager.

    ``order`` is the extraction order: ``eval`` for evaluation, ``reward`` for the RL reward
    (plasticity.extraction). References are strings or ``Reference`` (sets, units, tolerances).

    >>> with Grader("strict") as g:
    ...     g.grade_many(["<answer>\\\\boxed{4}</answer>"], ["4"])[0].correct
    True
    """

    def __init__(self, mode: str = "strict", workers: int = 1, timeout_s: float = 5.0,
                 cache_size: int = 200_000, order: str = "eval"):
        if mode not in MODES:
            raise ValueError(f"grader mode must be one of {MODES}, got {mode!r}")
        if order not in ORDERS:
            raise ValueError(f"grader order must be one of {ORDERS}, got {order!r}")
        if mode == "released" and order != "reward":
            raise ValueError("grader mode 'released' is the RL reward's: it needs order 'reward'")
        if workers < 1:
            raise ValueError(f"grader workers must be >= 1, got {workers}")
        if not timeout_s > 0:
            raise ValueError(f"grader timeout_s must be > 0, got {timeout_s}")
        self.mode, self.order, self.workers, self.timeout_s = mode, order, workers, float(timeout_s)
        self._cache: OrderedDict[tuple[str, str, str], tuple[bool, str, str | None]] = OrderedDict()
        self._cache_size = cache_size
        self._pool: list[_Worker] = []       # started; ``ready`` once the worker said so
        self._lock = threading.Lock()
        self.stats = {"fast": 0, "cache": 0, "pool": 0, "timeout": 0, "crash": 0, "error": 0, "too_long": 0}

    # context manager -------------------------------------------------------------------------
    def __enter__(self) -> "Grader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for w in self._pool:   # all asked first, so they exit in parallel
            if w.ready:
                w.ask_to_stop()
            else:
                w.kill()
        for w in self._pool:
            if w.ready:
                w.stop()
        self._pool = []

    def __del__(self) -> None:  # best effort; close() is the contract
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def fingerprint(self) -> dict:
        return fingerprint(self.mode, self.order)

    # grading ---------------------------------------------------------------------------------
    def grade(self, completion: str, reference: "str | Reference") -> Verdict:
        return self.grade_many([completion], [reference])[0]

    def grade_many(self, completions: list[str], references: "list[str | Reference]") -> list[Verdict]:
        if len(completions) != len(references):
            raise ValueError(f"grade_many: {len(completions)} completions but {len(references)} references")
        with self._lock:
            return self._grade_many(completions, references)

    def _grade_many(self, completions: list[str], references: list) -> list[Verdict]:
        n = len(completions)
        out: list[Verdict | None] = [None] * n
        pending: dict[tuple[str, str, str], list[int]] = {}
        prepared: list[Any] = [None] * n
        for i, (completion, reference) in enumerate(zip(completions, references)):
            if not isinstance(completion, str) or not isinstance(reference, (str, Reference)):
                raise TypeError(f"grade_many: item {i} is not a completion string and a reference")
            try:
                key = self._in_process(i, completion, reference, out, prepared)
            except Exception as exc:  # noqa: BLE001 - one item never fails the batch (module docstring)
                out[i] = self._failed(exc, completion, reference)
                continue
            if key is not None:
                if not pending:
                    self._launch_workers()  # they warm up while the rest of the batch is extracted
                pending.setdefault(key, []).append(i)
        if pending:
            self._skip_unread_responses(pending, out, prepared, completions)
        if pending:
            for key, result in self._run_pool(list(pending)).items():
                try:
                    result = _guard(key[0], key[2], result)
                except Exception as exc:  # noqa: BLE001
                    for i in pending[key]:
                        out[i] = self._failed(exc, completions[i], references[i])
                    continue
                self._remember(key, result)
                for i in pending[key]:
                    self._settle(i, result, prepared, completions, out)
        return out  # type: ignore[return-value]

    def _in_process(self, i: int, completion: str, reference: "str | Reference", out: list,
                    prepared: list) -> tuple[str, str, str] | None:
        """Grade item ``i`` by extraction, cache or fast path into ``out``; else its math-verify key."""
        found, ref, answer = prepared[i] = prepare(completion, reference, self.order)
        if not answer:
            out[i] = _no_answer(found, ref, self.mode, completion)
            return None
        key = (ref.gold.strip(), found.kind, answer)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.stats["cache"] += 1
            out[i] = _finish(hit, ref, found, answer, self.mode, completion)
            return None
        fast = fast_verdict(key[0], answer, found.kind)
        result = (fast[0], fast[1], None) if fast is not None else _beyond_math_verify(key[0], answer)
        if result is not None:
            self.stats["fast" if fast is not None else "too_long"] += 1
            self._remember(key, result)
            out[i] = _finish(result, ref, found, answer, self.mode, completion)
            return None
        return key

    def _settle(self, i: int, result: tuple[bool, str, str | None], prepared: list, completions: list[str],
                out: list) -> None:
        """Item ``i``'s verdict from its math-verify result (an exception grades it wrong, not the batch)."""
        found, ref, answer = prepared[i]
        try:
            out[i] = _finish(result, ref, found, answer, self.mode, completions[i])
        except Exception as exc:  # noqa: BLE001
            out[i] = self._failed(exc, completions[i], ref)

    def _failed(self, exc: Exception, completion: str, reference: "str | Reference") -> Verdict:
        """The verdict of an item whose grading raised ``exc``: wrong, reason ``error:<class>``."""
        self.stats["error"] += 1
        gold = reference.gold if isinstance(reference, Reference) else reference
        log.warning("grading raised %s (%s); item graded wrong: completion %s, reference %s", type(exc).__name__,
                    quote(str(exc)), quote(completion), quote(gold))
        return Verdict(False, ERROR_RULE, None, ERROR_REASON + type(exc).__name__, None)

    def _skip_unread_responses(self, pending: dict, out: list, prepared: list, completions: list[str]) -> None:
        """Grade the responses (kind ``text``) math-verify reads nothing from without their golds.

        A response without box or span is unique per problem but often the same text ("I am not
        sure"): one gold-independent probe per distinct response instead of one math-verify call
        per (gold, response). What a probe finds unread is graded exactly as math_verify_verdict
        grades it (wrong, ``unparseable``, then ``no_answer`` by _finish)."""
        texts = [k for k in pending if k[1] == "text"]
        responses = {(kind, answer) for _, kind, answer in texts}
        if len(texts) < 2 * len(responses):
            return                   # little sharing: probes could cost more than they save
        probed = self._run_pool([(None, kind, answer) for kind, answer in responses])
        # a probe that timed out or crashed decides nothing: its items are graded in full
        for key in [k for k in texts if probed[(None, k[1], k[2])] == (False, "math_verify", None)]:
            result = (False, "math_verify", "unparseable")
            self._remember(key, result)
            for i in pending.pop(key):
                self._settle(i, result, prepared, completions, out)

    def _remember(self, key: tuple[str, str, str], result: tuple[bool, str, str | None]) -> None:
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _launch_workers(self) -> None:
        """Start the missing worker processes without waiting for them (they import math-verify, ~0.4 s)."""
        self._pool.extend(_Worker() for _ in range(max(0, self.workers - len(self._pool))))

    def start_workers(self) -> None:
        """Have every worker process started and ready (in parallel); otherwise they start on first need."""
        self._launch_workers()
        try:
            for w in self._pool:
                if not w.ready:
                    w.wait_ready()
        except BaseException:
            self.close()
            raise

    def _run_pool(self, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], tuple[bool, str, str | None]]:
        """Grade unique (gold, kind, answer) keys by math-verify in worker processes.

        One event loop over every worker's pipe: a ready worker takes the next item; a worker
        past its item's deadline is killed and a fresh one started *without waiting*: it joins
        when its "ready" message arrives (within ``_STARTUP_TIMEOUT_S``, else the grader fails).
        """
        results: dict[tuple[str, str, str], tuple[bool, str, str | None]] = {}
        self._launch_workers()
        queue = list(reversed(keys))
        busy: dict[Any, _Worker] = {}        # conn -> worker grading an item
        starting: dict[Any, _Worker] = {}    # conn -> worker not yet ready
        started_at: dict[Any, float] = {}

        def fresh_worker(old: _Worker) -> None:
            old.kill()
            new = _Worker(warm=True)
            self._pool[self._pool.index(old)] = new
            starting[new.conn], started_at[new.conn] = new, time.monotonic()

        def dispatch(worker: _Worker) -> None:
            if worker.proc.poll() is not None:   # died while idle (killed from outside, OOM)
                fresh_worker(worker)
                return
            key = queue[-1]
            gold, kind, answer = key
            try:
                worker.send((key, None if gold is None else gold_text(gold), prediction_texts(answer, kind)))
            except (OSError, ValueError):
                fresh_worker(worker)
                return
            queue.pop()
            grace = _FIRST_ITEM_GRACE_S if worker.first_item else 0.0
            worker.job, worker.deadline, worker.first_item = key, time.monotonic() + self.timeout_s + grace, False
            busy[worker.conn] = worker

        for worker in list(self._pool):
            if not worker.ready:
                starting[worker.conn], started_at[worker.conn] = worker, time.monotonic()
            elif queue:
                dispatch(worker)
        while queue or busy:
            if not busy and not starting:        # every worker died while idle
                for worker in list(self._pool):
                    if queue:
                        dispatch(worker)
                continue
            now = time.monotonic()
            deadlines = [w.deadline for w in busy.values()]
            deadlines += [started_at[c] + _STARTUP_TIMEOUT_S for c in starting]
            ready = multiprocessing.connection.wait(list(busy) + list(starting), timeout=max(0.0, min(deadlines) - now))
            for conn in ready:
                if conn in starting:
                    worker = starting.pop(conn)
                    started_at.pop(conn)
                    try:
                        conn.recv()
                    except (EOFError, OSError):
                        self.close()
                        raise RuntimeError("grader worker exited at startup (see its stderr above)") from None
                    worker.ready = True
                    if queue:
                        dispatch(worker)
                    continue
                worker = busy.pop(conn)
                try:
                    key, correct, reason = conn.recv()
                except (EOFError, OSError):
                    self.stats["crash"] += 1
                    log.warning("grader worker died on an item; graded unparseable: %s", _describe(worker.job))
                    results[worker.job] = (False, "math_verify", "unparseable")
                    fresh_worker(worker)
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
                    log.warning("grader item exceeded %.1f s; graded wrong (timeout): %s",
                                self.timeout_s, _describe(worker.job))
                    results[worker.job] = (False, "math_verify", "timeout")
                    fresh_worker(worker)
            for conn in [c for c in starting if now >= started_at[c] + _STARTUP_TIMEOUT_S]:
                self.close()
                raise RuntimeError(f"grader worker did not start within {_STARTUP_TIMEOUT_S:.0f} s")
        return results


def _beyond_math_verify(gold: str, answer: str) -> tuple[bool, str, str | None] | None:
    """The strict result of a pair longer than ``MAX_ANSWER_CHARS`` (module docstring), else None."""
    if len(gold) <= MAX_ANSWER_CHARS and len(answer) <= MAX_ANSWER_CHARS:
        return None
    same = integers_verdict(gold, answer)
    return (same, "fast_numeric", None) if same is not None else (False, "none", "too_long")


def _describe(job: tuple[str | None, str, str]) -> str:
    """A pool item for a log line: its answer and reference, each cut by ``quote``."""
    gold, kind, answer = job
    return f"{kind} answer {quote(answer)}" + ("" if gold is None else f", reference {quote(gold)}")


def _guard(gold: str, answer: str, result: tuple[bool, str, str | None]) -> tuple[bool, str, str | None]:
    """math-verify's verdict, wrong (rule ``relative_gap``) for numbers more than 0.1% apart.

    Only math-verify's own verdicts need it: the fast path calls floats equal only when their
    values are equal."""
    if result[0] and numbers_apart(gold, answer, STRICT_MAX_RELATIVE):
        return False, "relative_gap", None
    return result


def _no_answer(found: Extraction, ref: Reference, mode: str, completion: str) -> Verdict:
    """The verdict of a completion without an answer: wrong, unless a released fallback accepts it."""
    if mode == "released":
        rule = released_rule(ref.gold, completion)
        if rule is not None:
            return Verdict(True, rule, found.text, None, found.kind)
    return Verdict(False, "none", found.text, "no_answer", found.kind)


def _finish(strict: tuple[bool, str, str | None], ref: Reference, found: Extraction, answer: str,
            mode: str, completion: str) -> Verdict:
    """The verdict from the strict result, the benchmark's tolerance and the fallbacks of ``mode``."""
    correct, rule, reason = strict
    if found.kind == "text" and reason == "unparseable":
        rule, reason = "none", "no_answer"    # math-verify found no answer anywhere in the response
    extracted = answer if len(ref.answers) > 1 and found.kind == "box" else found.text
    if not correct and ref.tolerance is not None and \
            within_tolerance(ref.gold, answer, ref.tolerance, STRICT_MAX_RELATIVE):
        return Verdict(True, "tolerance", extracted, None, found.kind)
    if not correct and mode == "lenient":
        lenient = lenient_rule(ref.gold, answer, ref.unit, ref.tolerance)
        if lenient is not None:
            return Verdict(True, lenient, extracted, None, found.kind)
    if not correct and mode == "released":
        released = released_rule(ref.gold, completion)
        if released is not None:
            return Verdict(True, released, extracted, None, found.kind)
    return Verdict(correct, rule, extracted, None if correct else reason, found.kind)


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


def grade(completion: str, reference: "str | Reference", mode: str = "strict") -> Verdict:
    """Grade one completion (a shared module-level Grader: fast path, cache, one worker process)."""
    return _default_grader(mode).grade(completion, reference)


def grade_naive(completion: str, reference: "str | Reference", mode: str = "strict", timeout_s: float = 5.0,
                order: str = "eval") -> Verdict:
    """The same verdict computed the slow way: no fast path, no cache, math-verify in this process.

    The reference the fast path and pool are checked against (tests, benchmarks/bench_grading.py).
    Main thread only, and not protected against inputs that hang inside C code.
    """
    found, ref, answer = prepare(completion, reference, order)
    if not answer:
        return _no_answer(found, ref, mode, completion)
    beyond = _beyond_math_verify(ref.gold.strip(), answer)
    if beyond is not None:
        return _finish(beyond, ref, found, answer, mode, completion)
    try:
        correct, reason = math_verify_verdict(gold_text(ref.gold.strip()), prediction_texts(answer, found.kind),
                                              timeout_s)
    except Exception:  # noqa: BLE001
        correct, reason = False, "unparseable"
    return _finish(_guard(ref.gold.strip(), answer, (correct, "math_verify", reason)), ref, found, answer, mode,
                   completion)


def extract_answer(completion: str, order: str = "eval") -> str | None:
    """The answer text of ``completion`` (plasticity.extraction.extract), or None."""
    return extract(completion, order).text


def math_verify_version() -> str | None:
    from importlib import metadata
    try:
        return metadata.version("math-verify")
    except metadata.PackageNotFoundError:
        return None


def fingerprint(mode: str = "strict", order: str = "eval") -> dict:
    """What a score depends on from the grader: its version, math-verify's version, mode and order."""
    return {"grader_version": GRADER_VERSION, "math_verify": math_verify_version(), "mode": mode, "order": order}
