"""The data stages' concurrency and compact structures give the same bytes as the plain versions:
Arrow-batch appends cut row groups exactly like dict appends, the background writer surfaces
errors, the prefetching reader keeps order and surfaces errors in order, the compact dedup index
behaves like a dict, the filter's output does not depend on
its number of worker processes or index merges, manifest inputs hashed early equal those hashed at the end, and the
AM-40M fast mapper agrees with the field-by-field one."""
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plasticity import schema as S
from plasticity.data import filters, native, tables
from plasticity.data.keys import ABSENT, FirstSeen, prompt_key
from plasticity.data.tables import InputDigests, TableWriter, prefetch, tune_stage_process, write_rows
from plasticity.io import write_manifest


def _rows(n, seed=0):
    rng = random.Random(seed)
    return [{"problem_id": f"p{i}", "source": "am", "source_file": f"am/f{i % 3}.jsonl", "source_row": i,
             "domain": "math", "teacher": "r1", "prompt": "q" * rng.randint(1, 40),
             "response": "é" * rng.randint(0, 120), "reference_answer": None if i % 7 == 0 else str(i),
             "win_rate_small": None if i % 5 == 0 else 0.25, "win_rate_mid": 0.5, "win_rate_teacher": 1.0}
            for i in range(n)]


@pytest.fixture
def small_row_groups(monkeypatch):
    """Row groups cut every few rows / few hundred characters, so every cut path is exercised."""
    monkeypatch.setattr(tables, "_FLUSH_ROWS", 7)
    monkeypatch.setattr(tables, "_FLUSH_BYTES", 400)


@pytest.mark.parametrize("seed", range(4))
def test_add_batch_cuts_row_groups_like_add(tmp_path, small_row_groups, seed):
    rows = _rows(200, seed)
    write_rows(tmp_path / "dicts.parquet", rows, S.TRAJECTORY)
    table = pa.Table.from_pylist(rows, schema=S.TRAJECTORY)
    rng = random.Random(seed)
    with TableWriter(tmp_path / "mixed.parquet", S.TRAJECTORY) as writer:
        start = 0
        while start < len(rows):
            n = rng.randint(1, 30)
            if rng.random() < 0.4:
                for row in rows[start:start + n]:
                    writer.add(row)
            else:                                   # a filtered (copied) Arrow slice, as the filter gives
                part = table.slice(start, n)
                writer.add_batch(part.filter(pa.array([True] * part.num_rows)))
            start += n
    assert pq.ParquetFile(tmp_path / "dicts.parquet").metadata.num_row_groups > 10
    assert (tmp_path / "mixed.parquet").read_bytes() == (tmp_path / "dicts.parquet").read_bytes()


def test_background_writer_error_surfaces(tmp_path):
    writer = TableWriter(tmp_path / "x.parquet", S.LEDGER)
    writer.add_table(pa.table({"problem_id": ["a"], "stage": ["s"], "reason": ["r"], "detail": ["d"],
                               "file": ["f"], "row": pa.array([0], pa.int64()), "field": [None]}, schema=S.LEDGER))
    bad = pa.table({"problem_id": pa.array([1]), "stage": ["s"], "reason": ["r"], "detail": ["d"]})
    with pytest.raises((pa.ArrowException, TypeError, ValueError)):
        writer._background.submit(bad)              # wrong type: fails in the writer thread ...
        writer.close()                               # ... and is raised here at the latest


def test_prefetch_keeps_order_and_raises_in_order():
    assert list(prefetch(iter(range(100)))) == list(range(100))

    def broken():
        yield 1
        yield 2
        raise RuntimeError("boom")

    got = []
    with pytest.raises(RuntimeError, match="boom"):
        for item in prefetch(broken()):
            got.append(item)
    assert got == [1, 2]
    for item in prefetch(iter(range(10**6))):       # leaving early does not hang
        if item == 3:
            break


def test_tune_stage_process_is_harmless():
    tune_stage_process()
    tune_stage_process()                         # idempotent; a no-op where unsupported


@pytest.mark.parametrize("merge_at", [1, 3, 1 << 16])
def test_first_seen_is_a_first_occurrence_dict(merge_at):
    rng = random.Random(merge_at)
    index, reference = FirstSeen(merge_at=merge_at), {}
    for _ in range(30):                               # batches
        keys = [rng.randrange(200) * 0x9E3779B97F4A7C15 % 2**64 for _ in range(rng.randint(0, 20))]
        frozen = index.lookup_frozen(keys)
        for key, first in zip(keys, frozen):
            got = index.get(key, first)
            assert got == reference.get(key, ABSENT)
            if got == ABSENT:
                value = rng.randrange(2**62)
                index.add(key, value)
                reference[key] = value
        index.compact()
    assert len(index) == len(reference)


def test_prompt_key_normalises():
    assert prompt_key(" What  is 2+2? ") == prompt_key("what is 2+2?") != prompt_key("what is 2+3?")
    assert 0 <= prompt_key("x") < 2**64


def _filter(tmp_path, rows, name, cfg, threads=1):
    from test_data_filters import char_count, exact_grader

    src = tmp_path / "in"
    if not src.exists():
        write_rows(src / "trajectories.parquet", rows, S.TRAJECTORY)
        write_rows(src / "rl_prompts.parquet", [], S.RL_PROMPT)
    filters.run(cfg, src, tmp_path / name, count_tokens=char_count, grade=exact_grader, threads=threads)
    return {n: (tmp_path / name / f"{n}.parquet").read_bytes() for n in ("trajectories", "ledger", "rl_matched")}


def _dup_rows(n, exempt_every=0):
    from test_data_filters import GOOD, traj

    rng = random.Random(3)
    return [traj(i, f"{rng.randrange(40)}+1=", GOOD.replace("4", "2"), "2",
                 source="s1k" if exempt_every and i % exempt_every == 0 else "am") for i in range(120)]


def test_filter_output_does_not_depend_on_workers_or_index_merges(tmp_path, monkeypatch, small_row_groups):
    """Row groups checked in one process or in two forked workers, with index merges after every
    group, give the same bytes."""
    rows = _dup_rows(120)
    cfg = {"max_prompt_tokens": 20, "max_response_tokens": 60}
    one_process = _filter(tmp_path, rows, "a", cfg, threads=1)
    assert pq.ParquetFile(tmp_path / "in" / "trajectories.parquet").metadata.num_row_groups > 10
    monkeypatch.setattr(filters, "FirstSeen", lambda: FirstSeen(merge_at=1))
    assert _filter(tmp_path, rows, "b", cfg, threads=2) == one_process
    ledger = pq.read_table(tmp_path / "a" / "ledger.parquet").to_pylist()
    first = {}
    for row in rows:
        first.setdefault(row["prompt"], row["source_row"])
    assert len(ledger) == len(rows) - len(first)
    for entry in ledger:                             # every duplicate names the first copy
        row = rows[int(entry["problem_id"][1:])]
        assert entry["detail"] == f"am/f.jsonl row {row['source_row']}: same prompt as am/f.jsonl row {first[row['prompt']]}"


def test_exempt_rows_come_first_within_a_row_group(tmp_path):
    rows = _dup_rows(120, exempt_every=17)
    _filter(tmp_path, rows, "a", {"max_prompt_tokens": 20, "max_response_tokens": 60, "exempt_sources": ["s1k"]})
    kept = [r["problem_id"] for r in pq.read_table(tmp_path / "a" / "trajectories.parquet").to_pylist()]
    exempt = [r["problem_id"] for r in rows if r["source"] == "s1k"]
    assert kept[:len(exempt)] == exempt and len(kept) > len(exempt)


def test_early_hashed_inputs_match_write_manifest(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("a")
    (data / "sub" / "b.txt").write_text("b")
    inputs = {"data": data, "file": data / "a.txt", "missing": tmp_path / "nope"}
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    write_manifest(tmp_path / "x", stage="s", inputs=inputs, extra={"counts": 1})
    write_manifest(tmp_path / "y", stage="s", extra={"inputs": InputDigests(inputs).manifest_inputs(), "counts": 1})
    assert (tmp_path / "x" / "manifest.json").read_bytes() == (tmp_path / "y" / "manifest.json").read_bytes()


AM_RECORD = {"question": "q?", "answer": "<think>a</think>\\boxed{1}", "category": "math", "ground_truth": "1",
             "pass_rate_r1": 1.0, "pass_rate_7b": 0.75, "pass_rate_1.5b": 0.25, "model_name": "r1"}
AM_VARIANTS = [
    {}, {"ground_truth": ""}, {"ground_truth": "  "}, {"ground_truth": None}, {"ground_truth": 3},
    {"category": ""}, {"category": None}, {"category": 7}, {"model_name": ""}, {"model_name": None},
    {"question": " "}, {"question": None}, {"answer": 5}, {"pass_rate_r1": 1}, {"pass_rate_r1": 0},
    {"pass_rate_r1": True}, {"pass_rate_r1": 1.5}, {"pass_rate_r1": -0.0}, {"pass_rate_r1": float("nan")},
    {"pass_rate_1.5b": "0.5"}, {"pass_rate_7b": None},
]


@pytest.mark.parametrize("variant", AM_VARIANTS, ids=lambda v: json.dumps(v))
@pytest.mark.parametrize("file_name", ["math_r1_1pass.jsonl", "x.jsonl"])
def test_am_40m_fast_path_agrees_with_checked_mapper(variant, file_name):
    record = {**AM_RECORD, **variant}

    def outcome(mapper):
        try:
            return mapper(record, file_name)
        except native.RowError as err:
            return (err.reason, err.field, err.message)

    assert repr(outcome(native.map_am_40m)) == repr(outcome(native._map_am_40m_checked))


@pytest.mark.parametrize("seed", range(3))
def test_keep_rows_equals_filter(seed):
    rng = random.Random(seed)
    table = pa.Table.from_pylist(_rows(60, seed), schema=S.TRAJECTORY)
    for keep in ([True] * 60, [False] * 60, [rng.random() < 0.8 for _ in range(60)],
                 [rng.random() < 0.2 for _ in range(60)]):
        got = tables.keep_rows(table, keep)
        assert got.equals(table.filter(pa.array(keep)))
        assert tables.keep_rows(table.to_batches()[0], keep).to_pylist() == got.to_pylist()
