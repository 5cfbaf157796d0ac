"""Simulated R1 teacher of the embedded default: raw shards in the releases' own schemas.

Reads:  the config section ``data.teacher`` and the benchmark suites BENCH_DIR/*.parquet
        (schema.BENCHMARK; their prompts are planted as contamination).
Writes: OUT/am40m_sim/math_r1_1pass-<i>.jsonl   AM-DeepSeek-Distilled-40M schema (DATASETS.md 2)
        OUT/skywork_sim/math-00000.parquet       Skywork-OR1-RL-Data schema (DATASETS.md 4)
        OUT/manifest.json                        counts per fault

Run by hand:
    python -m plasticity teacher --config teacher.json --benchmarks results/benchmarks --out raw

Problems are chain sums from ``plasticity.problems`` (distinct prompts, levels drawn uniformly from
``levels``; a level whose prompts run out, e.g. the 162 level-2 prompts, simply stops being drawn).
Each has the R1-style trajectory ``Problem.trajectory()`` and reference ``Problem.answer``.

Simulated reference models. A model of "size" m solves a level-L problem with probability
    p_m(L) = 1 / (1 + exp((L - c_m) / 0.5)),   c_1.5b = 4.5, c_7b = 5.5, c_r1 = 7.0 (c_32b = 6.5),
so level 2-3 is easy for the 1.5B model and level 6 hard for all but R1. ``pass_rate_<m>`` is the
success fraction of 4 sampled attempts (so WR is in {0, .25, .5, .75, 1}, as in the study), and the
Skywork ``model_difficulty`` of a model is the number of *failures* in 16 attempts (0..16; higher is
harder), so ``difficulty = d / 16`` reads as a failure rate.

Faults (fractions of ``problems``, each given to distinct rows): wrong_answer (boxed answer off by a
small amount, last step changed to match), duplicate (an extra row repeating an earlier clean prompt
with whitespace/case variants), non_math (category code/science), other_teacher (model_name 7b /
1.5b), overlong (the think block repeats its checks to >= 400 characters), malformed (half lose
``</think>``, half lose ``\\boxed{}``), benchmark_copy (an extra row whose prompt is a verbatim
benchmark prompt). RL prompts: 10% repeat a clean SFT prompt (exercising the set difference and
giving the MIX set its matches), 5% are in Chinese, 3% copy a benchmark prompt; the rest are fresh
problems that never repeat an SFT prompt.
"""
from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path
from typing import Any

from plasticity.io import atomic_path, write_manifest

STAGE = "teacher"
SFT_DIR, RL_DIR = "am40m_sim", "skywork_sim"
CENTRES = {"1.5b": 4.5, "7b": 5.5, "32b": 6.5, "r1": 7.0}   # level at which p_m = 0.5
SLOPE = 0.5
PASSES = 4                          # attempts behind pass_rate_* (AM-40M: 4 passes per model)
DIFFICULTY_SAMPLES = 16             # attempts behind Skywork model_difficulty
SKYWORK_MODELS = {"1.5b": "DeepSeek-R1-Distill-Qwen-1.5B", "32b": "DeepSeek-R1-Distill-Qwen-32B",
                  "7b": "DeepSeek-R1-Distill-Qwen-7B"}
RL_SFT_OVERLAP, RL_CHINESE, RL_BENCHMARK_COPY = 0.10, 0.05, 0.03
OVERLONG_CHARS = 400
AM40M_COLUMNS = ("question", "answer", "question_source", "answer_source", "category", "ground_truth",
                 "test_case", "instruction_constrain", "pass_rate_r1", "pass_rate_7b", "pass_rate_1.5b",
                 "verify_score", "ppl", "model_name")


def success_probability(model: str, level: int) -> float:
    return 1.0 / (1.0 + math.exp((level - CENTRES[model]) / SLOPE))


def _successes(rng: random.Random, model: str, level: int, attempts: int) -> int:
    p = success_probability(model, level)
    return sum(rng.random() < p for _ in range(attempts))


def _draw_distinct(rng: random.Random, levels: list[int], count: int, exclude: set[str],
                   what: str) -> list[Any]:
    """``count`` problems with distinct prompts not in ``exclude``; exhausted levels are dropped."""
    from plasticity.problems import sample_problem

    live, seen, out = list(levels), set(exclude), []
    while len(out) < count:
        if not live:
            raise ValueError(f"teacher: only {len(out)} distinct {what} prompts exist at levels "
                             f"{levels}; asked for {count}")
        level = rng.choice(live)
        for _ in range(200):                     # a level is exhausted after 200 straight repeats
            problem = sample_problem(rng, level)
            if problem.prompt not in seen:
                seen.add(problem.prompt)
                out.append(problem)
                break
        else:
            live.remove(level)
    return out


def _read_benchmarks(bench_dir: Path) -> list[tuple[str, str]]:
    from plasticity import schema as S
    from plasticity.data.tables import read_table

    pairs = []
    for path in sorted(bench_dir.glob("*.parquet")):
        table = read_table(path, S.BENCHMARK, columns=["prompt", "answer"], allow_extra=True)
        pairs += zip(table.column("prompt").to_pylist(), table.column("answer").to_pylist())
    return pairs


def _wrong(problem: Any, rng: random.Random) -> str:
    steps = problem.steps()
    delta = rng.choice([-2, -1, 1, 2])
    lines = "".join(f"{a}{op}{b}={c}\n" for a, op, b, c in steps[:-1])
    a, op, b, c = steps[-1]
    lines += f"{a}{op}{b}={c + delta}\n"
    return f"<think>\n{lines}</think>\n<answer>\\boxed{{{c + delta}}}</answer>"


def _overlong(problem: Any) -> str:
    steps = "".join(f"{a}{op}{b}={c}\n" for a, op, b, c in problem.steps())
    think = steps
    while len(think) < OVERLONG_CHARS:
        think += "check again\n" + steps
    return f"<think>\n{think}</think>\n<answer>\\boxed{{{problem.answer}}}</answer>"


def _malformed(problem: Any, rng: random.Random) -> str:
    text = problem.trajectory()
    if rng.random() < 0.5:
        return text.replace("</think>", "")
    return text.replace(f"\\boxed{{{problem.answer}}}", problem.answer)


def _variant(prompt: str, rng: random.Random) -> str:
    """A case/whitespace variant: identical after ``text.normalise_prompt``."""
    pads = [" ", "  ", "\n", "\t", " \n"]
    text = rng.choice(pads) + prompt if rng.random() < 0.5 else prompt
    text = text + rng.choice(pads) if rng.random() < 0.7 or text == prompt else text
    return text.swapcase() if any(c.isalpha() for c in text) and rng.random() < 0.5 else text


def _am_row(rng: random.Random, prompt: str, response: str, answer: str, level: int, *,
            category: str = "math", model: str = "r1", correct: bool = True,
            rates: dict[str, float] | None = None) -> dict[str, Any]:
    rates = rates or {m: _successes(rng, m, level, PASSES) / PASSES for m in ("r1", "7b", "1.5b")}
    row = {
        "question": prompt, "answer": response, "question_source": "chain_sum_sim",
        "answer_source": f"{model}_sim", "category": category, "ground_truth": answer,
        "test_case": "", "instruction_constrain": "",
        "pass_rate_r1": rates["r1"], "pass_rate_7b": rates["7b"], "pass_rate_1.5b": rates["1.5b"],
        "verify_score": 1.0 if correct else 0.0, "ppl": round(1.2 + 1.2 * rng.random(), 4),
        "model_name": model,
    }
    return {k: row[k] for k in AM40M_COLUMNS}


def build_sft_rows(cfg: dict[str, Any], rng: random.Random,
                   benchmarks: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], list[Any], dict[str, int]]:
    """The AM-40M-schema rows (in file order), the clean problems, and the count of each fault."""
    from plasticity.problems import parse_prompt

    n = int(cfg["problems"])
    faults = {k: float(v) for k, v in (cfg.get("faults") or {}).items()}
    problems = _draw_distinct(rng, list(cfg["levels"]), n, set(), "SFT")
    counts = {name: int(round(frac * n)) for name, frac in sorted(faults.items())}
    modifying = ["wrong_answer", "non_math", "other_teacher", "overlong", "malformed"]
    needed = sum(counts.get(k, 0) for k in modifying)
    if needed > n:
        raise ValueError(f"teacher: faults modify {needed} rows but only {n} problems are drawn")
    order = rng.sample(range(n), n)
    assigned: dict[int, str] = {}
    cursor = 0
    for name in modifying:
        for index in order[cursor:cursor + counts.get(name, 0)]:
            assigned[index] = name
        cursor += counts.get(name, 0)

    rows, clean = [], []
    for index, problem in enumerate(problems):
        fault, level = assigned.get(index), problem.level
        prompt, answer = problem.prompt, problem.answer
        if fault == "wrong_answer":
            rows.append(_am_row(rng, prompt, _wrong(problem, rng), answer, level, correct=False))
        elif fault == "non_math":
            rows.append(_am_row(rng, prompt, problem.trajectory(), answer, level,
                                category=rng.choice(["code", "science"])))
        elif fault == "other_teacher":
            rows.append(_am_row(rng, prompt, problem.trajectory(), answer, level,
                                model=rng.choice(["7b", "1.5b"])))
        elif fault == "overlong":
            rows.append(_am_row(rng, prompt, _overlong(problem), answer, level))
        elif fault == "malformed":
            rows.append(_am_row(rng, prompt, _malformed(problem, rng), answer, level, correct=False))
        else:
            rows.append(_am_row(rng, prompt, problem.trajectory(), answer, level))
            clean.append((rows[-1], problem))

    if counts.get("benchmark_copy") and not benchmarks:
        raise ValueError("teacher: benchmark_copy faults need benchmark parquet files (none found)")
    for _ in range(counts.get("benchmark_copy", 0)):
        prompt, answer = rng.choice(benchmarks)
        try:
            problem = parse_prompt(prompt)
            response, level = problem.trajectory(), problem.level
        except ValueError:
            response, level = f"<think>\n{prompt}\n</think>\n<answer>\\boxed{{{answer}}}</answer>", 4
        rows.insert(rng.randint(0, len(rows)), _am_row(rng, prompt, response, answer, level))

    # Duplicates go after their original, so "keep the first" keeps the clean original.
    for _ in range(counts.get("duplicate", 0)):
        original = rng.choice(clean)[0]
        at = next(i for i, r in enumerate(rows) if r is original)
        copy = dict(original, question=_variant(original["question"], rng))
        rows.insert(rng.randint(at + 1, len(rows)), copy)
    return rows, [p for _, p in clean], counts


def build_rl_rows(cfg: dict[str, Any], rng: random.Random, clean: list[Any], sft_prompts: set[str],
                  benchmarks: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    n = int(cfg["rl_prompts"])
    counts = {"sft_overlap": min(len(clean), int(round(RL_SFT_OVERLAP * n))),
              "chinese": int(round(RL_CHINESE * n)),
              "benchmark_copy": int(round(RL_BENCHMARK_COPY * n)) if benchmarks else 0}
    fresh = _draw_distinct(rng, list(cfg["levels"]), n - counts["sft_overlap"] - counts["benchmark_copy"],
                           sft_prompts, "RL")
    items = [(p.prompt, p.answer, p.level) for p in rng.sample(clean, counts["sft_overlap"])]
    for problem in fresh[:counts["chinese"]]:
        items.append((f"计算：{problem.prompt}", problem.answer, problem.level))
    items += [(p.prompt, p.answer, p.level) for p in fresh[counts["chinese"]:]]
    for prompt, answer in (rng.choice(benchmarks) for _ in range(counts["benchmark_copy"])):
        items.append((prompt, answer, 4))
    rng.shuffle(items)
    rows = []
    for index, (prompt, answer, level) in enumerate(items):
        difficulty = {SKYWORK_MODELS[m]: DIFFICULTY_SAMPLES - _successes(rng, m, level, DIFFICULTY_SAMPLES)
                      for m in sorted(SKYWORK_MODELS)}
        rows.append({
            "data_source": "chain_sum_sim",
            "prompt": [{"content": prompt, "role": "user"}],
            "ability": "math",
            "reward_model": {"ground_truth": json.dumps([answer]), "style": "rule"},
            "extra_info": {"index": index, "model_difficulty": difficulty},
        })
    counts["fresh"] = len(fresh) - counts["chinese"]
    return rows, counts


def skywork_schema():
    import pyarrow as pa

    difficulty = pa.struct([(name, pa.int64()) for name in sorted(SKYWORK_MODELS.values())])
    return pa.schema([
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("ground_truth", pa.string()), ("style", pa.string())])),
        ("extra_info", pa.struct([("index", pa.int64()), ("model_difficulty", difficulty)])),
    ])


def run(cfg: dict[str, Any], seed: int, bench_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the raw teacher shards under ``out``; return the manifest's counts."""
    import pyarrow as pa

    from plasticity import parquet_io
    from plasticity.data.tables import InputDigests

    rng = random.Random(seed)
    digests = InputDigests({"benchmarks": bench_dir})
    benchmarks = _read_benchmarks(Path(bench_dir))
    rows, clean, sft_counts = build_sft_rows(cfg, rng, benchmarks)
    rl_rows, rl_counts = build_rl_rows(cfg, rng, clean, {p.prompt for p in clean}
                                       | {r["question"] for r in rows}, benchmarks)
    shards = max(1, int(cfg.get("shards", 1)))
    with atomic_path(out) as tmp:
        (tmp / SFT_DIR).mkdir(parents=True)
        per_shard = math.ceil(len(rows) / shards)
        for i in range(shards):
            with open(tmp / SFT_DIR / f"math_r1_1pass-{i:05d}.jsonl", "w", encoding="utf-8") as fh:
                for row in rows[i * per_shard:(i + 1) * per_shard]:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        (tmp / RL_DIR).mkdir(parents=True)
        parquet_io.write_table(pa.Table.from_pylist(rl_rows, schema=skywork_schema()),
                               tmp / RL_DIR / "math-00000.parquet")
        counts = {"sft_rows": len(rows), "sft_faults": sft_counts, "rl_rows": len(rl_rows),
                  "rl_composition": rl_counts, "benchmark_prompts": len(benchmarks)}
        write_manifest(tmp, stage=STAGE, config=cfg, seed=seed,
                       extra={"inputs": digests.manifest_inputs(), "counts": counts})
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plasticity teacher", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help='JSON: {"seed": int, "teacher": {...}}')
    parser.add_argument("--benchmarks", required=True, help="directory of benchmark parquet files")
    parser.add_argument("--out", required=True, help="raw output directory")
    args = parser.parse_args(argv)
    from plasticity.data.tables import load_stage_config

    seed, cfg = load_stage_config(args.config, "teacher")
    counts = run(cfg, seed, args.benchmarks, args.out)
    print(json.dumps({"stage": STAGE, "sft_rows": counts["sft_rows"], "rl_rows": counts["rl_rows"]}))
    return 0
