"""In-memory evaluation: generate + grade every suite without writing files (RL evals every N steps).

``evaluate_in_memory`` runs the same sampling (``generate.sampling_for``: the eval section's
temperature, top-p, max_new_tokens and avg@k per benchmark, seeded from (seed, benchmark)) and
the same grader as the ``generate`` and ``grade`` stages, and returns the structure of the grade
stage's summary.json: accuracies in percent, the micro-average over problems as the headline.
"""
from __future__ import annotations

from typing import Any

from plasticity.eval.generate import generate_transformers, sampling_for
from plasticity.eval.metrics import avg_at_k, summarize
from plasticity.eval.registry import references


def evaluate_in_memory(model: Any, tokenizer: Any, suites: dict[str, Any], eval_cfg: dict, seed: int,
                       grader: Any) -> dict:
    """{"benchmarks": {name: {role, accuracy, n_problems}}, "micro": %, "macro": %} for ``suites``.

    ``suites`` maps benchmark names to ``schema.BENCHMARK`` tables (``registry.load_suites``);
    ``grader`` is an open ``plasticity.grading.Grader``. The model is left in eval mode; callers
    that train afterwards switch it back (trl's trainer does so itself).
    """
    batch_size = int(eval_cfg.get("batch_size", 64))
    per_bench: dict[str, dict] = {}
    for name, table in suites.items():
        sampling = sampling_for(eval_cfg, name, seed)
        prompts = table.column("prompt").to_pylist()
        answers = references(table)
        roles = table.column("role").to_pylist()
        completions = generate_transformers(model, tokenizer, prompts, sampling, batch_size)
        flat = [c.text for samples in completions for c in samples]
        refs = [a for a, samples in zip(answers, completions) for _ in samples]  # sets, units, tolerances
        verdicts = grader.grade_many(flat, refs)
        correct, pos = [], 0
        for samples in completions:
            correct.append([v.correct for v in verdicts[pos:pos + len(samples)]])
            pos += len(samples)
        per_bench[name] = {"role": roles[0] if roles else None, "accuracy": avg_at_k(correct),
                           "n_problems": table.num_rows}
    return summarize(per_bench)
