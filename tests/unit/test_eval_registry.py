"""The registry's entries and the ``benchmarks`` stage."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from plasticity.eval import registry
from plasticity.eval.registry import REGISTRY, RegistryError, load_suites
from plasticity.problems import parse_prompt

FIX = Path(__file__).parents[1] / "fixtures" / "benchmarks"
MINI = ["mini_gsm8k", "mini_math", "mini_minerva", "mini_olympiad", "mini_aime24", "mini_aime25"]


def test_registry_holds_the_study_suites():
    expect = {"gsm8k": 1319, "math500": 500, "minerva": 272, "olympiadbench": 675, "aime24": 30, "aime25": 30,
              "retu_benchmark": 2157, "gpqa_diamond": 198, "arc_challenge": 1172}
    for name, count in expect.items():
        assert REGISTRY[name].count == count and REGISTRY[name].source == "hub"
    retu = dict(REGISTRY["retu_benchmark"].role_counts)
    assert retu == {"gsm8k": 1317, "olympiad_bench": 291, "minerva": 262, "math": 237, "aime": 25, "aime25": 25}
    assert sum(retu.values()) == 2157
    # Minerva is the 272-problem OCW set, not lm-eval's minerva_math (Hendrycks MATH, 5000 problems)
    minerva = REGISTRY["minerva"]
    assert minerva.count == 272 and "hendrycks" not in (minerva.hub_id or "").lower()
    assert minerva.hub_id in {"knoveleng/Minerva-Math", "math-ai/minervamath"} and minerva.role == "minerva"
    for spec in REGISTRY.values():
        assert spec.role in registry.ROLES or spec.name == "retu_benchmark"


def _run(tmp_path, names, seed=1234, **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"seed": seed, "benchmarks": names}))
    out = tmp_path / f"out{seed}"
    argv = ["--config", str(cfg), "--out", str(out)]
    if kw.get("source_dir"):
        argv += ["--source-dir", str(kw["source_dir"])]
    if kw.get("allow_unpinned"):
        argv.append("--allow-unpinned")
    return registry.main(argv), out


def test_embedded_suites(tmp_path):
    rc, out = _run(tmp_path, MINI)
    assert rc == 0
    suites = load_suites(out, MINI)
    counts = {n: t.num_rows for n, t in suites.items()}
    assert counts == {"mini_gsm8k": 60, "mini_math": 50, "mini_minerva": 50, "mini_olympiad": 50,
                      "mini_aime24": 20, "mini_aime25": 20}
    for name, table in suites.items():
        spec = REGISTRY[name]
        prompts = table.column("prompt").to_pylist()
        assert len(set(prompts)) == len(prompts)                    # distinct within a suite
        assert set(table.column("role").to_pylist()) == {spec.role}
        for prompt, answer in zip(prompts, table.column("answer").to_pylist()):
            problem = parse_prompt(prompt)                           # bare question, e.g. 7-3+5=
            assert problem.level == spec.level and problem.answer == answer
    a24 = set(suites["mini_aime24"].column("prompt").to_pylist())
    a25 = set(suites["mini_aime25"].column("prompt").to_pylist())
    assert not a24 & a25
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["benchmarks"]["mini_gsm8k"]["roles"] == {"gsm8k": 60}
    # deterministic, and seed-dependent
    rc, out2 = _run(tmp_path / "again", MINI)
    for n in MINI:
        assert (out / f"{n}.parquet").read_bytes() == (out2 / f"{n}.parquet").read_bytes()
    _, out3 = _run(tmp_path, ["mini_math"], seed=99)
    assert pq.read_table(out3 / "mini_math.parquet").column("prompt").to_pylist() != \
        suites["mini_math"].column("prompt").to_pylist()


def test_unpinned_hub_entries_are_refused_then_locked(tmp_path):
    names = ["gsm8k", "math500", "minerva", "olympiadbench", "aime24", "aime25", "retu_benchmark",
             "gpqa_diamond", "arc_challenge"]
    rc, out = _run(tmp_path, names, source_dir=FIX)
    assert rc == 1 and not out.exists()
    rc, out = _run(tmp_path, names, source_dir=FIX, allow_unpinned=True)
    assert rc == 0
    lock = json.loads((out / "benchmarks.lock.json").read_text())
    assert set(lock) == set(names)
    f = next(iter(lock["gsm8k"]["files"]))
    assert lock["gsm8k"]["files"][f] == __import__("hashlib").sha256(Path(f).read_bytes()).hexdigest()
    assert any("registry expects 1319" in w for w in lock["gsm8k"]["warnings"])   # 3 fixture rows, not 1319
    suites = load_suites(out, names)
    assert suites["aime25"].num_rows == 4 and suites["retu_benchmark"].num_rows == 3
    assert sorted(suites["retu_benchmark"].column("role").to_pylist()) == ["aime25", "gsm8k", "math"]
    minerva = suites["minerva"].to_pylist()
    assert {r["answer_raw"]: r["answer"] for r in minerva if r["answer_raw"]} == {"4.5e33": "4.5 \\times 10^{33}"}
    refs = {r.gold: r for r in registry.references(suites["olympiadbench"])}
    assert refs["69, 84"].answers == ("69", "84") and refs["166"].unit == "cm^2" and refs["0.52"].tolerance == 0.01


def test_pinned_sha_mismatch_is_an_error(tmp_path, monkeypatch):
    spec = REGISTRY["gsm8k"]
    monkeypatch.setitem(REGISTRY, "gsm8k", registry.BenchmarkSpec(**{**spec.__dict__, "sha256": ("0" * 64,)}))
    with pytest.raises(RegistryError, match="sha256"):
        registry.run({"seed": 0, "benchmarks": ["gsm8k"]}, tmp_path / "o", FIX)


def test_unknown_benchmark_and_missing_output(tmp_path):
    with pytest.raises(RegistryError, match="unknown benchmark 'nope'"):
        registry.get("nope")
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_suites(tmp_path, ["mini_math"])
