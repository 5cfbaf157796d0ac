"""The data phase under hostile input, on files in the native AM-40M / AM-1.4M / Skywork formats:
file-level faults stop the stage naming the file, row-level faults become ledger rows with file,
row and field columns, and every reader gives the same verdict for the same bytes."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plasticity import schema as S
from plasticity.data import am40m_blocks, decontaminate, ingest, source_files
from plasticity.data.records import TooDeep, decode_line
from plasticity.data.tables import DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
SKYWORK = {"name": "sky", "format": "skywork_or1", "path": str(FIXTURES / "skywork")}
AM40M = {"question": "What is 2+2?", "answer": "<think>\nfour\n</think>\n\\boxed{4}", "category": "math",
         "ground_truth": "4", "pass_rate_r1": 1.0, "pass_rate_7b": 0.75, "pass_rate_1.5b": 0.25, "model_name": "r1"}
AM14M = {"messages": [{"role": "user", "content": "What is 2+2?", "info": {"source": "s", "reference_answer": "4"}},
                      {"role": "assistant", "content": "<think>four</think>\\boxed{4}", "info": {"source": "am-0309"}}]}


def line(record: dict, **changes) -> bytes:
    return json.dumps({**record, **changes}).encode() + b"\n"


def run(tmp_path, sources, out="out", rl=SKYWORK):
    counts = ingest.run(sources, rl, tmp_path / "raw", tmp_path / out)["sources"]
    ledger = [r for r in pq.read_table(tmp_path / out / "ledger.parquet").to_pylist()
              if r["reason"] != "not_math"]          # the Skywork fixture's one non-math RL row
    kept = pq.read_table(tmp_path / out / "trajectories.parquet").to_pylist()
    return counts, kept, ledger


def source(path, fmt="am_40m", name="src"):
    return {"name": name, "format": fmt, "path": str(path)}


# ----------------------------------------------------------------------------------- file level
def good_shard(directory: Path, name="math_r1_1pass.jsonl") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(line(AM40M))
    return directory / name


def fails_naming(root: Path, culprit: Path, *words: str) -> None:
    with pytest.raises(DataError) as exc:
        source_files.list_files(root)
    assert str(culprit) in str(exc.value) and all(w in str(exc.value) for w in words), str(exc.value)


def test_broken_link_and_link_loops_are_errors(tmp_path):
    root = tmp_path / "src"
    good_shard(root)
    (root / "gone.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    fails_naming(root, root / "gone.jsonl", "broken link")
    (root / "gone.jsonl").unlink()
    (root / "self").symlink_to(root / "self")                     # a link to itself
    fails_naming(root, root / "self", "link loop")
    (root / "self").unlink()
    (root / "sub").mkdir()
    (root / "sub" / "up").symlink_to(root)                        # a directory link to an ancestor
    fails_naming(root, root / "sub" / "up", "already read")


def test_directory_link_is_followed_once(tmp_path):
    shards = tmp_path / "elsewhere"
    good_shard(shards, "math_r1_1pass.jsonl")
    root = tmp_path / "src"
    good_shard(root, "science_r1_1pass.jsonl")
    (root / "linked").symlink_to(shards, target_is_directory=True)
    files = source_files.list_files(root)
    assert [p.relative_to(root).as_posix() for p in files] == ["linked/math_r1_1pass.jsonl",
                                                                "science_r1_1pass.jsonl"]
    counts, kept, _ = run(tmp_path, [source(root)])
    assert counts["src"]["kept"] == 2 and {r["source_file"] for r in kept} == {"src/linked/math_r1_1pass.jsonl",
                                                                         "src/science_r1_1pass.jsonl"}
    (root / "again").symlink_to(shards, target_is_directory=True)   # the same directory twice
    fails_naming(root, root / "linked", "already read", "ingested twice")


def test_unreadable_directory_and_file_are_errors(tmp_path, monkeypatch):
    root = tmp_path / "src"
    good_shard(root)
    locked = good_shard(root / "locked")
    real_scandir, real_open = os.scandir, os.open

    def scandir(path):           # the tests may run as root, which reads any mode: deny by path
        if Path(path) == root / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(source_files.os, "scandir", scandir)
    fails_naming(root, root / "locked", "unreadable directory", "Permission denied")
    monkeypatch.setattr(source_files.os, "scandir", real_scandir)

    def open_(path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)              # source files are opened with os.open
    fails_naming(root, locked, "unreadable file")


@pytest.mark.parametrize("name, content, words", [
    ("math_r1_1pass.jsonl", gzip.compress(line(AM40M)), "gzip"),
    ("math_r1_1pass.jsonl", line(AM40M).replace(b"\n", b"\r") * 3, "CR-only"),
    ("math_r1_1pass.jsonl", json.dumps([AM40M]).encode(), "JSON array"),
    ("math_r1_1pass.jsonl", b"question,answer\n2+2,4\n", "not JSON records"),
    ("math_r1_1pass.jsonl", b"\x00\x01binary", "binary"),
    ("dataset_info.json", json.dumps({"features": {"question": "string"}}, indent=2).encode(), "pretty-printed"),
    ("math_r1_1pass.jsonl.zst", line(AM40M), "not zstd"),
    ("train.parquet", line(AM40M), "not a parquet file"),
])
def test_a_file_not_in_its_format_is_an_error(tmp_path, name, content, words):
    root = tmp_path / "src"
    good_shard(root, "a_first.jsonl")
    (root / name).write_bytes(content)
    fails_naming(root, root / name, words)
    with pytest.raises(DataError, match=words):
        run(tmp_path, [source(root)])


def test_bom_and_crlf_files_pass_the_format_check(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "math_r1_1pass.jsonl").write_bytes(b"\xef\xbb\xbf" + line(AM40M).replace(b"\n", b"\r\n") * 2)
    (root / "array.json").write_bytes(b"\xef\xbb\xbf" + json.dumps([AM40M], indent=2).encode())
    assert len(source_files.list_files(root)) == 2
    counts, kept, ledger = run(tmp_path, [source(root)])
    assert counts["src"]["kept"] == counts["src"]["in"] == 3 and not ledger


def test_out_inside_the_source_tree_is_an_error(tmp_path):
    root = tmp_path / "src"
    good_shard(root)
    with pytest.raises(DataError, match="inside the input tree"):
        ingest.run([source(root)], SKYWORK, tmp_path / "raw", root / "ingested")
    assert not (root / "ingested").exists()


# ----------------------------------------------------------------------------------- row level
NEST = b"[" * 100_000 + b'"]"' + b"]" * 100_000                  # deeper than Python's parser recurses
OBJECTS = b'{"a": ' * 5_000 + b"1" + b"}" * 5_000


def with_member(record: dict, name: str, value: bytes) -> bytes:
    """``record`` as a JSON line with member ``name`` set to the raw JSON ``value``."""
    rest = json.dumps({k: v for k, v in record.items() if k != name}).encode()[1:-1]
    return b"{" + rest + (b", " if rest else b"") + b'"' + name.encode() + b'": ' + value + b"}\n"


DEEP_IGNORED = with_member(AM40M, "x", NEST)          # a deep field no mapper reads: kept, as Arrow does
ROW_FAULTS = [   # (line, reason, field): a bad line of the AM-40M format
    (line(AM40M, question="What is 2+2?\ud800"), "lone_surrogate", "question"),
    (line(AM40M, answer="\udfff<think>x</think>\\boxed{4}"), "lone_surrogate", "answer"),
    (line(AM40M, question="caf\u00e9").replace(b"caf\\u00e9", b"caf\xff"), "invalid_utf8", None),
    (with_member(AM40M, "answer", NEST), "wrong_type", "answer"),
    (with_member(AM40M, "question", OBJECTS), "wrong_type", "question"),
    (with_member(AM40M, "x", NEST[:-1]), "malformed_json", None),             # a deep value left open
    (b"\xef\xbb\xbf" + b"{not json\n", "malformed_json", None),
]


def _write(path: Path, lines: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines))
    return path


@pytest.mark.parametrize("arrow", [False, True])
@pytest.mark.parametrize("bad, reason, field", ROW_FAULTS, ids=[f[1] + str(i) for i, f in enumerate(ROW_FAULTS)])
def test_row_faults_go_to_the_ledger_with_file_row_field(tmp_path, monkeypatch, arrow, bad, reason, field):
    monkeypatch.setattr(ingest, "ARROW_BLOCKS", arrow)
    good = line(AM40M, question="Another question?")
    _write(tmp_path / "src" / "math_r1_1pass.jsonl", [good, bad, DEEP_IGNORED])
    counts, kept, ledger = run(tmp_path, [source(tmp_path / "src")])
    assert [(r["reason"], r["file"], r["row"], r["field"]) for r in ledger] == \
           [(reason, "src/math_r1_1pass.jsonl", 1, field)]
    assert len(kept) == 2 and counts["src"]["in"] == 3 and counts["src"]["kept"] == 2


@pytest.mark.parametrize("block_bytes", [1 << 24, 64])
def test_bom_first_line_same_verdict_alone_or_in_a_bad_block(tmp_path, monkeypatch, block_bytes):
    monkeypatch.setattr(am40m_blocks, "BLOCK_BYTES", block_bytes)
    bom = b"\xef\xbb\xbf" + line(AM40M)
    _write(tmp_path / "alone" / "math_r1_1pass.jsonl", [bom])
    _write(tmp_path / "mixed" / "math_r1_1pass.jsonl", [bom, b"{broken\n", line(AM40M, question="Other?")])
    for arrow in (True, False):
        monkeypatch.setattr(ingest, "ARROW_BLOCKS", arrow)
        _, kept, _ = run(tmp_path, [source(tmp_path / "alone")], out=f"alone{arrow}")
        assert [r["prompt"] for r in kept] == ["What is 2+2?"]
        _, kept, ledger = run(tmp_path, [source(tmp_path / "mixed")], out=f"mixed{arrow}")
        assert [r["prompt"] for r in kept] == ["What is 2+2?", "Other?"]
        assert [(r["reason"], r["row"]) for r in ledger] == [("malformed_json", 1)]


def test_both_am_readers_give_the_same_decoding_verdict(tmp_path):
    """The same bad bytes in an AM-40M line and in an AM-1.4M line: the same reason."""
    user = AM14M["messages"][0]
    cases = {
        "bom": (b"\xef\xbb\xbf" + line(AM40M), b"\xef\xbb\xbf" + line(AM14M)),
        "lone_surrogate": (line(AM40M, question="x\ud800"),
                           line({"messages": [{**user, "content": "x\ud800"}, AM14M["messages"][1]]})),
        "invalid_utf8": (line(AM40M, question="\u00e9").replace(b"\\u00e9", b"\xff"),
                         line({"messages": [{**user, "content": "\u00e9"}, AM14M["messages"][1]]})
                         .replace(b"\\u00e9", b"\xff")),
        "deep_ignored": (DEEP_IGNORED, with_member(AM14M, "x", OBJECTS)),
        "deep_needed": (with_member(AM40M, "answer", NEST), with_member(AM14M, "messages", NEST)),
    }
    expected = {"bom": {}, "deep_ignored": {}, "deep_needed": {"a40": "wrong_type", "a14": "wrong_type"}}
    for name, (am40, am14) in cases.items():
        _write(tmp_path / name / "a40" / "math_r1_1pass.jsonl", [am40])
        _write(tmp_path / name / "a14" / "am_0.9M.jsonl", [am14])
        _, kept, ledger = run(tmp_path, [source(tmp_path / name / "a40", name="a40"),
                                         source(tmp_path / name / "a14", "am_1.4m", name="a14")], out=f"o_{name}")
        verdicts = {r["file"].split("/")[0]: r["reason"] for r in ledger}
        assert verdicts == expected.get(name, {"a40": name, "a14": name}), name
        assert len(kept) == (2 if name in ("bom", "deep_ignored") else 0)
        assert decode_line(am40).__class__ is decode_line(am14).__class__


def test_deep_members_are_decoded_without_recursion():
    record = decode_line(with_member(AM40M, "x", OBJECTS))
    assert isinstance(record["x"], TooDeep) and record["question"] == AM40M["question"]
    assert decode_line(b'{"a": ' + NEST + b', "b": [1, {"c": "}"}]}')["b"] == [1, {"c": "}"}]
    assert decode_line(b'{"a": ' + NEST + b'} trailing').reason == "malformed_json"
    assert decode_line(b"[" * 100_000 + b"]" * 100_000).reason == "malformed_json"


@pytest.mark.parametrize("roles", [["system", "user", "assistant"], ["assistant", "user"], ["user", "user"],
                                   ["user"]])
def test_am_14m_wrong_roles_are_dropped(tmp_path, roles):
    turns = {"user": AM14M["messages"][0], "assistant": AM14M["messages"][1],
             "system": {"role": "system", "content": "Be brief."}}
    record = {"messages": [{**turns[r], "role": r} for r in roles]}
    _write(tmp_path / "src" / "am_0.9M.jsonl", [line(AM14M), line(record)])
    _, kept, ledger = run(tmp_path, [source(tmp_path / "src", "am_1.4m")])
    assert len(kept) == 1
    expected = ("missing_field", 1, "messages") if roles == ["user"] else ("wrong_roles", 1, "messages.role")
    assert [(r["reason"], r["row"], r["field"]) for r in ledger] == [expected]


def test_invalid_utf8_in_a_parquet_string_column(tmp_path):
    """Skywork rows whose prompt content (a string inside list<struct>) is not UTF-8."""
    good = pq.read_table(FIXTURES / "skywork" / "math-00000.parquet")
    content = pa.array([b"Solve 2x = 4.", b"Solve \xff x.", b"What is 1 + 1?"], pa.binary()).view(pa.string())
    prompt = pa.ListArray.from_arrays(pa.array([0, 1, 2, 3], pa.int32()), pa.StructArray.from_arrays(
        [content, pa.array(["user"] * 3)], names=["content", "role"]))
    table = good.set_column(good.schema.get_field_index("prompt"), "prompt", prompt)
    (tmp_path / "sky").mkdir()
    pq.write_table(table, tmp_path / "sky" / "math-00000.parquet")
    counts, _, ledger = run(tmp_path, [source(FIXTURES / "am40m")], rl=source(tmp_path / "sky", "skywork_or1", "sky"))
    assert [(r["reason"], r["file"], r["row"], r["field"]) for r in ledger] == \
           [("invalid_utf8", "sky/math-00000.parquet", 1, "prompt")]
    assert counts["sky"]["in"] == 3


def test_lone_surrogate_inside_json_text_of_a_column(tmp_path):
    """verl rows keep extra_info / ground truth as JSON text: an escape there is caught too."""
    good = pq.read_table(FIXTURES / "skywork" / "math-00000.parquet").to_pylist()
    good[0]["reward_model"]["ground_truth"] = '["3\\ud800"]'
    (tmp_path / "sky").mkdir()
    pq.write_table(pa.Table.from_pylist(good), tmp_path / "sky" / "math-00000.parquet")
    _, _, ledger = run(tmp_path, [source(FIXTURES / "am40m")], rl=source(tmp_path / "sky", "skywork_or1", "sky"))
    assert [(r["reason"], r["row"], r["field"]) for r in ledger] == \
           [("lone_surrogate", 0, "reference_answer")]


# ----------------------------------------------------------------------------------- decontaminate
def test_benchmark_with_a_null_prompt_is_an_error_naming_file_and_row(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    rows = [{"problem_id": "b0", "benchmark": "mini", "role": "math", "prompt": "What is 2+2?", "answer": "4"},
            {"problem_id": "b1", "benchmark": "mini", "role": "math", "prompt": None, "answer": "5"}]
    pq.write_table(pa.Table.from_pylist(rows, schema=S.BENCHMARK), bench / "mini.parquet")
    with pytest.raises(DataError) as exc:
        decontaminate.benchmark_index(bench, 8)
    assert "mini.parquet row 1" in str(exc.value) and "'prompt'" in str(exc.value)
