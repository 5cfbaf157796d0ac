"""The data phase end to end through each stage's ``main``: teacher -> ingest -> filter ->
decontaminate -> difficulty -> subsets on a small teacher config; counts reconcile at every stage;
a rerun is byte-identical; the teacher injects every fault it is asked for."""
import json
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plasticity import schema as S
from plasticity.problems import sample_problem

STAGES = ("teacher", "ingest", "filter", "decontaminate", "difficulty", "subsets")
DATA = {
    "teacher": {"problems": 600, "rl_prompts": 150, "levels": [2, 3, 4, 5, 6], "shards": 2,
                "faults": {"wrong_answer": 0.05, "duplicate": 0.05, "non_math": 0.03, "other_teacher": 0.05,
                           "overlong": 0.02, "malformed": 0.03, "benchmark_copy": 0.02}},
    "sources": [{"name": "am40m_sim", "format": "am_40m", "path": "teacher"}],
    "rl_source": {"name": "skywork_sim", "format": "skywork_or1", "path": "teacher"},
    "filter": {"max_prompt_tokens": 32, "max_response_tokens": 96},
    "decontaminate": {"ngram": 8},
    "difficulty": {"source": "metadata", "samples": 4},
    "sets": {"val": {"kind": "val", "size": 20}, "all": {"kind": "all"},
             "uniform": {"kind": "uniform", "size": 200},
             "easy": {"kind": "easy", "size": 100, "max_win_rate": 1.0, "min_win_rate": 1.0},
             "hard": {"kind": "hard", "size": 100, "max_win_rate": 0.25},
             "rl": {"kind": "rl", "size": 100}, "mix": {"kind": "mix", "max_response_tokens": 96}},
}


def write_benchmarks(path: Path) -> None:
    path.mkdir(parents=True)
    rng = random.Random(99)
    for name, level in (("mini_gsm8k", 2), ("mini_math", 4)):
        prompts = sorted({sample_problem(rng, level).prompt for _ in range(30)})
        rows = [{"problem_id": f"{name}-{i}", "benchmark": name, "role": name, "prompt": p, "answer": "0"}
                for i, p in enumerate(prompts)]
        pq.write_table(pa.Table.from_pylist(rows, schema=S.BENCHMARK), path / f"{name}.parquet")


def run_pipeline(root: Path, bench: Path, tok: Path) -> Path:
    from plasticity.cli import main

    configs = {}
    for stage, keys in (("teacher", ["teacher"]), ("ingest", ["sources", "rl_source"]), ("filter", ["filter"]),
                        ("decontaminate", ["decontaminate"]), ("difficulty", ["difficulty"]), ("subsets", ["sets"])):
        configs[stage] = root / f"{stage}.json"
        configs[stage].write_text(json.dumps({"seed": 5, **{k: DATA[k] for k in keys}}))
    d = root / "data"
    calls = [
        ["teacher", "--config", configs["teacher"], "--benchmarks", bench, "--out", d / "raw"],
        ["ingest", "--config", configs["ingest"], "--raw", d / "raw", "--out", d / "ingested"],
        ["filter", "--config", configs["filter"], "--ingested", d / "ingested", "--tokenizer", tok, "--out", d / "filtered"],
        ["decontaminate", "--config", configs["decontaminate"], "--filtered", d / "filtered", "--benchmarks", bench,
         "--out", d / "decontaminated"],
        ["difficulty", "--config", configs["difficulty"], "--in", d / "decontaminated", "--out", d / "difficulty"],
        ["subsets", "--config", configs["subsets"], "--in", d / "difficulty", "--out", d / "sets"],
    ]
    for call in calls:
        assert main([str(a) for a in call]) == 0, call[0]
    return d


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from plasticity.models import build_tiny_tokenizer, save_tiny_tokenizer

    root = tmp_path_factory.mktemp("pipeline")
    write_benchmarks(root / "bench")
    save_tiny_tokenizer(build_tiny_tokenizer(), root / "tok")
    runs = []
    for name in ("a", "b"):                  # two independent runs of the same config
        (root / name).mkdir()
        runs.append(run_pipeline(root / name, root / "bench", root / "tok"))
    return tuple(runs)


def manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def test_every_stage_finished_and_sets_have_their_sizes(pipeline):
    d, _ = pipeline
    for stage in ("raw", "ingested", "filtered", "decontaminated", "difficulty", "sets"):
        assert (d / stage / "manifest.json").is_file(), stage
    sizes = {name: rows(d / "sets" / f"{name}.parquet") for name in DATA["sets"]}
    assert sizes["val"] == 20 and sizes["uniform"] == 200 and sizes["easy"] == 100 and sizes["hard"] == 100
    assert sizes["rl"] == 100 and sizes["mix"] > 0
    val = set(pq.read_table(d / "sets" / "val.parquet").column("problem_id").to_pylist())
    for name in ("all", "uniform", "easy", "hard"):
        assert not val & set(pq.read_table(d / "sets" / f"{name}.parquet").column("problem_id").to_pylist())


def test_counts_reconcile_at_every_stage(pipeline):
    d, _ = pipeline
    raw_rows = sum(1 for f in (d / "raw" / "am40m_sim").glob("*.jsonl") for _ in open(f))
    raw_rows += rows(d / "raw" / "skywork_sim" / "math-00000.parquet")
    ing = manifest(d / "ingested")["counts"]
    assert raw_rows == ing["in"] == rows(d / "ingested" / "trajectories.parquet") \
        + rows(d / "ingested" / "rl_prompts.parquet") + rows(d / "ingested" / "ledger.parquet")
    flt = manifest(d / "filtered")["counts"]
    assert flt["sft"]["in"] == rows(d / "ingested" / "trajectories.parquet")
    assert flt["rl"]["in"] == rows(d / "ingested" / "rl_prompts.parquet")
    kept = rows(d / "filtered" / "trajectories.parquet") + rows(d / "filtered" / "rl_prompts.parquet")
    assert flt["sft"]["in"] + flt["rl"]["in"] == kept + rows(d / "filtered" / "ledger.parquet")
    dec = manifest(d / "decontaminated")["counts"]["tables"]
    for name in ("trajectories.parquet", "rl_matched.parquet", "rl_prompts.parquet"):
        assert dec[name]["in"] == rows(d / "filtered" / name)
        assert dec[name]["kept"] == rows(d / "decontaminated" / name)
    assert sum(c["dropped"] for c in dec.values()) == rows(d / "decontaminated" / "ledger.parquet")
    assert rows(d / "difficulty" / "trajectories.parquet") == rows(d / "decontaminated" / "trajectories.parquet")
    n_val = rows(d / "sets" / "val.parquet")
    assert rows(d / "sets" / "all.parquet") + n_val == rows(d / "difficulty" / "trajectories.parquet")


def test_every_fault_is_caught_by_its_filter(pipeline):
    d, _ = pipeline
    reasons = manifest(d / "filtered")["counts"]["sft"]["dropped_by_reason"]
    for reason in ("not_math", "other_teacher", "bad_format", "wrong_answer", "response_too_long",
                   "duplicate_prompt", "in_rl_prompts"):
        assert reasons.get(reason, 0) > 0, reason
    assert manifest(d / "filtered")["counts"]["rl"]["dropped_by_reason"]["chinese_prompt"] > 0
    dec = manifest(d / "decontaminated")["counts"]["tables"]
    assert dec["trajectories.parquet"]["dropped"] > 0 and dec["rl_prompts.parquet"]["dropped"] > 0


def test_teacher_native_schema(pipeline):
    d, _ = pipeline
    shards = sorted((d / "raw" / "am40m_sim").glob("math_r1_1pass-*.jsonl"))
    assert len(shards) == 2
    row = json.loads(shards[0].read_text().splitlines()[0])
    assert list(row) == ["question", "answer", "question_source", "answer_source", "category", "ground_truth",
                         "test_case", "instruction_constrain", "pass_rate_r1", "pass_rate_7b", "pass_rate_1.5b",
                         "verify_score", "ppl", "model_name"]
    assert row["pass_rate_1.5b"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    sky = pq.read_table(d / "raw" / "skywork_sim" / "math-00000.parquet")
    assert sky.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    first = sky.slice(0, 1).to_pylist()[0]
    assert first["prompt"][0]["role"] == "user" and isinstance(json.loads(first["reward_model"]["ground_truth"]), list)
    assert all(0 <= v <= 16 for v in first["extra_info"]["model_difficulty"].values())


def test_rerun_is_byte_identical(pipeline):
    a, b = pipeline
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        if rel.name == "manifest.json":      # argv and input paths differ between the two roots
            ma, mb = json.loads((a / rel).read_text()), json.loads((b / rel).read_text())
            assert ma.get("counts") == mb.get("counts"), rel
            assert [v["sha256"] for v in ma["inputs"].values()] == [v["sha256"] for v in mb["inputs"].values()]
            continue
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_difficulty_by_sampling_with_an_injected_sampler(pipeline, tmp_path):
    from plasticity.data import difficulty
    from plasticity.problems import parse_prompt

    d, _ = pipeline

    def sampler(prompts, n, seed):                       # right on even-sum problems, wrong otherwise
        out = []
        for p in prompts:
            answer = int(parse_prompt(p).answer)
            out.append([f"\\boxed{{{answer if answer % 2 == 0 else answer + 1}}}"] * n)
        return out

    counts = difficulty.run({"source": "sample", "samples": 4}, d / "decontaminated",
                            tmp_path / "diff", seed=1, sampler=sampler)
    table = pq.read_table(tmp_path / "diff" / "trajectories.parquet").to_pylist()
    assert {r["win_rate_small"] for r in table} == {0.0, 1.0}
    assert all((r["win_rate_small"] == 1.0) == (int(r["reference_answer"]) % 2 == 0) for r in table)
    assert counts["tables"]["trajectories.parquet"]["win_rate_small_known"] == len(table)


@pytest.mark.parametrize("stage", STAGES)
def test_help_is_fast_and_light(stage):
    code = (f"import sys; from plasticity.cli import main\n"
            f"try:\n    main(['{stage}', '--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'math_verify', 'datasets') if m in sys.modules]\n"
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout
