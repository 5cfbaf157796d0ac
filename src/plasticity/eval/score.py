"""Grade generated completions and score every benchmark: the ``grade`` stage (PAPER.md section 3).

Separate from ``generate`` so a grader change regrades without regenerating.

    python -m plasticity grade --config CFG.json --generations GEN_DIR --benchmarks BENCH_DIR --out OUT_DIR

CFG.json is ``{"seed": int, "eval": <the eval section of config.yaml>}`` (its ``grader`` section:
mode, timeout_s, workers; optional ``judge``). Writes, per benchmark, OUT_DIR/<bench>/samples.parquet
(``schema.SAMPLE``: every completion with its verdict) and OUT_DIR/<bench>/scores.json, then
OUT_DIR/summary.json and OUT_DIR/manifest.json last.

scores.json: avg@k over all samples (percent), unbiased pass@k for k = 1 and k, maj@k, a seeded
bootstrap 95% CI over problems, the truncation rate (finish_reason == length), no-answer and
timeout counts, ``grader_errors`` (samples whose grading raised and were graded wrong, reason
``error:<class>``: a grader defect to read, never a crash of the stage), n_problems, n_samples, and
the evaluator fingerprint (grader version, math-verify version, mode, extraction order,
chat-template sha256, sampling parameters, benchmark sha256, seed).

Per-sample flags, as MathArena reports them (columns of samples.parquet, rates under ``flags`` in
scores.json): ``gold_not_extracted`` (graded wrong, yet the gold is written as a standalone token in
the completion's answer part: the grader probably missed the answer, a reason to read the sample),
``hit_token_limit`` (finish_reason == length) and ``parser_error`` (an answer was found but
math-verify could not parse it).

The golds are ``registry.references(bench)``: multi-answer golds are graded as sets, and the
benchmark's unit and tolerance are honoured.

summary.json: ``{"benchmarks": {name: {role, accuracy, n_problems}}, "micro": %, "macro": %}``
over ``eval.benchmarks``; OOD benchmarks (``eval.ood_benchmarks``) are listed under ``"ood"``.
When the judge is configured, items where strict and lenient disagree get the judge's verdict
(rule ``judge``), as the study does.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from plasticity.eval.generate import derive_seed, eval_benchmarks
from plasticity.eval.metrics import (avg_at_k, bootstrap_ci, maj_at_k, mean_pass_at_k, per_problem_accuracy,
                                     summarize)
from plasticity.grading import ERROR_REASON


def _read_generations(gen_dir: Path, name: str) -> Any:
    from plasticity import parquet_io, schema

    path = gen_dir / name / "generations.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no generations for benchmark {name!r}")
    return schema.validate(parquet_io.read_table(path), schema.GENERATION, str(path))


def grade_benchmark(name: str, bench: Any, gens: Any, grader: Any, judge_cfg: dict | None = None,
                    where: str = "") -> tuple[Any, dict]:
    """(samples table, per-problem grouping info) for one benchmark."""
    import pyarrow as pa

    from plasticity import schema

    from plasticity.eval.registry import references

    answers = dict(zip(bench.column("problem_id").to_pylist(), references(bench)))
    pids = gens.column("problem_id").to_pylist()
    for i, pid in enumerate(pids):
        if pid not in answers:
            raise ValueError(f"{where}: row {i}: field problem_id {pid!r} is not a problem of benchmark {name}")
    missing = sorted(set(answers) - set(pids))
    if missing:
        raise ValueError(f"{where}: {len(missing)} problem(s) of {name} have no generations, e.g. {missing[:3]}")
    completions = gens.column("completion").to_pylist()
    refs = [answers[p] for p in pids]
    verdicts = grader.grade_many(completions, refs)
    correct = [v.correct for v in verdicts]
    rules = [v.rule for v in verdicts]
    reasons = [v.reason for v in verdicts]
    judged = 0
    if judge_cfg:
        correct, rules, reasons, judged = _apply_judge(judge_cfg, bench, pids, completions, refs, verdicts, grader)
    finish = gens.column("finish_reason").to_pylist()
    cols = {n: gens.column(n) for n in schema.GENERATION.names}
    cols.update({"answer": pa.array([r.gold for r in refs], pa.string()),
                 "extracted": pa.array([v.extracted for v in verdicts], pa.string()),
                 "correct": pa.array(correct, pa.bool_()), "rule": pa.array(rules, pa.string()),
                 "reason": pa.array(reasons, pa.string()),
                 "gold_not_extracted": pa.array([not ok and gold_in_completion(c, r)
                                                 for ok, c, r in zip(correct, completions, refs)], pa.bool_()),
                 "hit_token_limit": pa.array([f == "length" for f in finish], pa.bool_()),
                 "parser_error": pa.array([r == "unparseable" for r in reasons], pa.bool_())})
    return pa.Table.from_pydict(cols, schema=schema.SAMPLE), {"judged": judged}


def _apply_judge(judge_cfg: dict, bench: Any, pids: list, completions: list, refs: list, verdicts: list,
                 grader: Any) -> tuple[list, list, list, int]:
    from plasticity.eval.judge import JudgeConfig, judge_many
    from plasticity.grading import Grader

    other_mode = "lenient" if grader.mode == "strict" else "strict"
    with Grader(other_mode, workers=grader.workers, timeout_s=grader.timeout_s, order=grader.order) as other:
        others = other.grade_many(completions, refs)
    questions = dict(zip(bench.column("problem_id").to_pylist(), bench.column("prompt").to_pylist()))
    disagree = [i for i, (a, b) in enumerate(zip(verdicts, others)) if a.correct != b.correct]
    items = [(questions[pids[i]], refs[i].gold, verdicts[i].extracted or completions[i][-2000:]) for i in disagree]
    decided = judge_many(JudgeConfig.from_dict(judge_cfg), items)
    correct = [v.correct for v in verdicts]
    rules = [v.rule for v in verdicts]
    reasons = [v.reason for v in verdicts]
    n = 0
    for i, verdict in zip(disagree, decided):
        if verdict is not None:
            correct[i], rules[i], reasons[i] = verdict, "judge", None
            n += 1
    return correct, rules, reasons, n


FLAGS = ("gold_not_extracted", "hit_token_limit", "parser_error")
_GOLD_TAIL = 1000            # characters of the answer part searched for the gold
_SPACE = re.compile(r"\s+")


def gold_in_completion(completion: str, reference: Any) -> bool:
    """Whether every gold answer is written, as a token of its own, in the completion's answer part
    (after the last ``</think>``, else its last ``_GOLD_TAIL`` characters); spaces inside a gold
    may be written or left out (``69, 84`` matches ``69,84``)."""
    close = completion.rfind("</think>")
    tail = (completion[close + len("</think>"):] if close >= 0 else completion)[-_GOLD_TAIL:]
    golds = reference.answers if len(reference.answers) > 1 else (reference.answer,)
    for gold in golds:
        chars = _SPACE.sub("", gold)
        if not chars or len(chars) > len(tail):      # cannot be written in the tail (and no huge pattern)
            return False
        body = r"\s*".join(re.escape(c) for c in chars)
        if not re.search(rf"(?<![0-9A-Za-z.]){body}(?![0-9A-Za-z])", tail):
            return False
    return True


def score_samples(samples: Any, seed: int, name: str) -> dict:
    """avg@k, pass@k, maj@k, CI and truncation for one benchmark's samples table."""
    by_problem: dict[str, list[tuple[int, bool, str | None]]] = defaultdict(list)
    for pid, j, ok, ext in zip(samples.column("problem_id").to_pylist(), samples.column("sample_index").to_pylist(),
                               samples.column("correct").to_pylist(), samples.column("extracted").to_pylist()):
        by_problem[pid].append((j, bool(ok), ext))
    pids = sorted(by_problem)
    correct = [[c for _, c, _ in sorted(by_problem[p])] for p in pids]
    extracted = [[e for _, _, e in sorted(by_problem[p])] for p in pids]
    ks = {len(c) for c in correct}
    k = min(ks) if ks else 0
    finish = samples.column("finish_reason").to_pylist()
    reasons = samples.column("reason").to_pylist()
    rules = samples.column("rule").to_pylist()
    lo, hi = bootstrap_ci(per_problem_accuracy(correct), derive_seed(seed, "bootstrap", name))
    n = samples.num_rows
    return {
        "accuracy": avg_at_k(correct),
        "avg_at_k": avg_at_k(correct),
        "k": k,
        "pass_at_k": {str(kk): mean_pass_at_k(correct, kk) for kk in sorted({1, k}) if kk >= 1},
        "maj_at_k": maj_at_k(extracted, correct),
        "ci95": [lo, hi],
        "n_problems": len(pids),
        "n_samples": n,
        "truncation_rate": finish.count("length") / n if n else 0.0,
        "no_answer_rate": reasons.count("no_answer") / n if n else 0.0,
        "timeouts": reasons.count("timeout"),
        "grader_errors": sum(1 for r in reasons if r and r.startswith(ERROR_REASON)),
        "flags": {flag: sum(samples.column(flag).to_pylist()) / n if n else 0.0 for flag in FLAGS},
        "rules": {r: rules.count(r) for r in sorted(set(rules))},
    }


def _by_role(samples: Any, bench: Any) -> dict:
    role_of = dict(zip(bench.column("problem_id").to_pylist(), bench.column("role").to_pylist()))
    by: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for pid, ok in zip(samples.column("problem_id").to_pylist(), samples.column("correct").to_pylist()):
        by[role_of[pid]][pid].append(bool(ok))
    return {role: {"accuracy": avg_at_k([problems[p] for p in sorted(problems)]), "n_problems": len(problems)}
            for role, problems in sorted(by.items())}


def run(config: dict, generations_dir: str | os.PathLike, benchmarks_dir: str | os.PathLike,
        out_dir: str | os.PathLike) -> dict:
    from plasticity import parquet_io
    from plasticity.eval.registry import benchmark_sha256, load_suites
    from plasticity.grading import Grader
    from plasticity.io import MANIFEST, atomic_path, read_json, write_json, write_manifest

    seed, eval_cfg = int(config["seed"]), config["eval"]
    gen_dir = Path(generations_dir)
    if not (gen_dir / MANIFEST).is_file():
        raise FileNotFoundError(f"{gen_dir}: no manifest.json; the generate stage did not finish")
    gen_manifest = read_json(gen_dir / MANIFEST)
    gen_info = gen_manifest.get("generations", {})
    names = eval_benchmarks(eval_cfg)
    suites = load_suites(benchmarks_dir, names)
    g = eval_cfg.get("grader") or {}
    judge_cfg = eval_cfg.get("judge") or None
    per_bench: dict[str, dict] = {}
    with atomic_path(out_dir) as tmp, Grader(g.get("mode", "strict"), workers=int(g.get("workers", 1)),
                                             timeout_s=float(g.get("timeout_s", 5.0))) as grader:
        tmp.mkdir(parents=True)
        for name in names:
            where = str(gen_dir / name / "generations.parquet")
            samples, extra = grade_benchmark(name, suites[name], _read_generations(gen_dir, name), grader,
                                             judge_cfg, where)
            (tmp / name).mkdir()
            parquet_io.write_table(samples, tmp / name / "samples.parquet")
            scores = score_samples(samples, seed, name)
            roles = sorted(set(suites[name].column("role").to_pylist()))
            if len(roles) > 1:  # a mixed suite (retu_benchmark): accuracy per role, micro over them
                scores["by_role"] = _by_role(samples, suites[name])
            scores.update({
                "benchmark": name, "role": roles[0] if len(roles) == 1 else None, "judged": extra["judged"],
                "fingerprint": {**grader.fingerprint(),
                                "prompt_template_sha256": gen_manifest.get("prompt_template_sha256"),
                                "sampling": gen_info.get(name, {}).get("sampling"),
                                "backend": gen_manifest.get("backend"),
                                "benchmark_sha256": benchmark_sha256(benchmarks_dir, name),
                                "judge": judge_cfg.get("model") if judge_cfg else None,
                                "seed": seed},
            })
            write_json(tmp / name / "scores.json", scores)
            per_bench[name] = scores
            print(f"{name}: avg@{scores['k']} {scores['accuracy']:.2f}% over {scores['n_problems']} problems",
                  file=sys.stderr)
        in_domain = [n for n in eval_cfg["benchmarks"]]
        summary = summarize({n: per_bench[n] for n in in_domain})
        ood = [n for n in names if n not in in_domain]
        if ood:
            summary["ood"] = summarize({n: per_bench[n] for n in ood})["benchmarks"]
        write_json(tmp / "summary.json", summary)
        write_manifest(tmp, stage="grade", config=config, seed=seed,
                       inputs={"generations": gen_dir, "benchmarks": benchmarks_dir},
                       extra={"grader": grader.fingerprint()})
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity grade",
                                     description="Grade completions; write samples.parquet, scores.json, summary.json.")
    parser.add_argument("--config", required=True, help='JSON: {"seed": int, "eval": <eval section>}')
    parser.add_argument("--generations", required=True, help="output of the generate stage")
    parser.add_argument("--benchmarks", required=True, help="output of the benchmarks stage")
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args(argv)
    from plasticity.io import read_json

    config = read_json(args.config)
    for key in ("seed", "eval"):
        if key not in config:
            parser.error(f"{args.config}: missing key {key!r}")
    try:
        summary = run(config, args.generations, args.benchmarks, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"micro {summary['micro']:.2f}%  macro {summary['macro']:.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
