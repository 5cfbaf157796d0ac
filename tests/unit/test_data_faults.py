"""The data phase under the faults of a shared cluster: two runs on one output, damaged parquet pages,
sources that change while read or are not regular files, full disks, and lines too long to hold."""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plasticity import parquet_io
from plasticity import schema as S
from plasticity.data import am40m_blocks, filters, ingest, source_files, tables
from plasticity.data.source_stream import LongLine, SourceStream, decompressed, line_blocks
from plasticity.data.tables import DataError, InputDigests
from plasticity.io import OutputWriteError, sha256_file, sha256_tree
from plasticity.locks import lock_path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
FIXTURES = ROOT / "tests" / "fixtures" / "data"
SKYWORK = {"name": "sky", "format": "skywork_or1", "path": str(FIXTURES / "skywork")}
AM40M = {"question": "What is 2+2?", "answer": "<think>\nfour\n</think>\n\\boxed{4}", "category": "math",
         "ground_truth": "4", "pass_rate_r1": 1.0, "pass_rate_7b": 0.75, "pass_rate_1.5b": 0.25, "model_name": "r1"}
REASONING = " ".join(f"step {i}: let x = {i} + {i % 7}, so 2x = {2 * i + 2 * (i % 7)}" for i in range(40))


def am_shard(path: Path, rows: int, long_rows: dict[int, bytes] | None = None) -> Path:
    """An AM-40M JSONL shard of ``rows`` distinct rows (~1.3 KB each, a quarter of it digits that do
    not compress); ``long_rows`` replaces lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for i in range(rows):
            if long_rows and i in long_rows:
                fh.write(long_rows[i] + b"\n")
                continue
            record = {**AM40M, "question": f"Problem {i}: what is {i} + 4 - {i}?",
                      "answer": f"<think>\n{REASONING[i % 300:]} {hashlib.sha256(bytes(i)).hexdigest() * 5}"
                                f"\n</think>\n\\boxed{{4}}"}
            fh.write(json.dumps(record).encode() + b"\n")
    return path


def source(path: Path, name: str = "am") -> dict:
    return {"name": name, "format": "am_40m", "path": str(path)}


def read_out(out: Path) -> tuple[list[dict], list[dict], dict]:
    kept = pq.read_table(out / "trajectories.parquet").to_pylist()
    ledger = [r for r in pq.read_table(out / "ledger.parquet").to_pylist() if r["reason"] != "not_math"]
    return kept, ledger, json.loads((out / "manifest.json").read_text())


def output_bytes(out: Path) -> dict[str, bytes]:
    """Every file of a finished output; the manifest without ``argv`` (it names the calling process)."""
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != "manifest.json"}
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("argv")
    return {**files, "manifest.json": json.dumps(manifest, sort_keys=True).encode()}


# ----------------------------------------------------------------------------------- one writer
WORKER = """
import json, os, sys
from plasticity.data import ingest
from plasticity.locks import WAIT_ENV, OutputLocked
sources, rl, raw, out = json.loads(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    os.environ[WAIT_ENV] = line.strip()
    try:
        ingest.run(sources, rl, raw, out)
        print("finished", flush=True)
    except OutputLocked as exc:
        print("locked " + " ".join(str(exc).split()), flush=True)
"""


def test_two_ingest_runs_on_one_output_leave_exactly_one_clean_output(tmp_path):
    sources = [source(am_shard(tmp_path / "src" / "math_r1_1pass.jsonl", 8000))]
    ingest.run(sources, SKYWORK, tmp_path / "raw", tmp_path / "clean")
    clean = output_bytes(tmp_path / "clean")
    out = tmp_path / "shared" / "ingested"
    argv = json.dumps([sources, SKYWORK, str(tmp_path / "raw"), str(out)])
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, argv], env=ENV, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    try:
        assert [w.stdout.readline().strip() for w in workers] == ["ready", "ready"]
        outcomes = []
        for wait in ["0"] * 5 + ["inf"]:              # fail at once, then wait for the other run
            for w in workers:                         # both start within microseconds
                w.stdin.write(wait + "\n")
                w.stdin.flush()
            results = sorted(w.stdout.readline().strip() for w in workers)
            outcomes.append(results)
            assert results[0] == "finished", results
            if results[1] != "finished":
                assert results[1].startswith(f"locked {out}: another run is writing this output"), results
                assert "pid" in results[1] and socket.gethostname() in results[1]
            assert output_bytes(out) == clean
            assert sorted(p.name for p in out.parent.iterdir()) == ["ingested"]   # no partial, no lock
        # The runs overlapped (the second found the first's lock), rather than ran one after the other.
        assert sum(r[1].startswith("locked") for r in outcomes[:5]) >= 3, outcomes
        assert outcomes[5] == ["finished", "finished"]
    finally:
        for w in workers:
            w.stdin.close()
            w.wait(timeout=60)


# ----------------------------------------------------------------------------------- page checksums
def _rows(schema: pa.Schema, n: int) -> list[dict]:
    """``n`` rows of ``schema`` with few distinct short values (dictionary pages) and long text."""
    def value(field: pa.Field, i: int):
        if field.name in tables.LONG_TEXT or field.name in ("detail", "completion"):
            return f"{field.name} {i}: " + REASONING[:200]
        kind = field.type
        if pa.types.is_string(kind):
            return f"{field.name}-{i % 5}"
        if pa.types.is_integer(kind):
            return i % 9
        if pa.types.is_floating(kind):
            return (i % 4) / 4
        if pa.types.is_boolean(kind):
            return i % 3 == 0
        if pa.types.is_list(kind):
            return [f"a{i % 3}", f"b{i % 2}"]
        raise AssertionError(kind)
    return [{f.name: value(f, i) for f in schema} for i in range(n)]


WRITTEN = [          # (name, schema, how the project writes it)
    ("trajectory", S.TRAJECTORY, "table_writer"), ("rl_prompt", S.RL_PROMPT, "table_writer"),
    ("mix", S.MIX, "table_writer"), ("ledger", S.LEDGER, "table_writer"), ("matched", filters.MATCHED, "table_writer"),
    ("benchmark", S.BENCHMARK, "write_table"), ("generation", S.GENERATION, "write_table"),
    ("sample", S.SAMPLE, "write_table"),
]


def _write(path: Path, schema: pa.Schema, how: str, monkeypatch) -> None:
    rows = _rows(schema, 300)
    if how == "table_writer":
        monkeypatch.setattr(tables, "_FLUSH_ROWS", 100)     # three row groups
        tables.write_rows(path, rows, schema)
    else:
        parquet_io.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=100)


def _pages(path: Path, group: int) -> dict[str, tuple[str, int]]:
    """A byte inside each kind of page of row group ``group``: {kind: (column, offset)}. The last byte
    of a dictionary page precedes the chunk's first data page; a chunk's last byte ends its last data
    page (of dictionary indices when the chunk has a dictionary)."""
    meta = pq.ParquetFile(path).metadata.row_group(group)
    found: dict[str, tuple[str, int]] = {}
    for i in range(meta.num_columns):
        chunk = meta.column(i)
        start = chunk.dictionary_page_offset or chunk.data_page_offset
        end = start + chunk.total_compressed_size - 1
        if chunk.dictionary_page_offset is not None:
            found.setdefault("dictionary", (chunk.path_in_schema, chunk.data_page_offset - 1))
            found.setdefault("dictionary_index", (chunk.path_in_schema, end))
        else:
            found.setdefault("data", (chunk.path_in_schema, end))
    return found


def _damaged(path: Path, offset: int, target: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("name, schema, how", WRITTEN, ids=[w[0] for w in WRITTEN])
def test_every_damaged_page_is_an_error_naming_file_row_group_and_column(tmp_path, monkeypatch, name, schema, how):
    path = tmp_path / f"{name}.parquet"
    _write(path, schema, how, monkeypatch)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 3
    pages = _pages(path, 2)
    plain = how == "table_writer" and set(tables.LONG_TEXT) & set(schema.names)   # no dictionary there
    assert {"dictionary", "dictionary_index"} | ({"data"} if plain else set()) <= set(pages), pages
    for kind, (column, offset) in pages.items():
        bad = _damaged(path, offset, tmp_path / f"{kind}.parquet")
        readers = {
            "read_table": lambda: parquet_io.read_table(bad),
            "iter_batches": lambda: list(parquet_io.iter_batches(parquet_io.open_file(bad), bad, batch_size=64)),
            "stage iter_batches": lambda: list(tables.iter_batches(bad, schema, batch_size=64)),
            "stage row group": lambda: tables.read_row_group(bad, schema, 2),
        }
        for reader, read in readers.items():
            with pytest.raises((parquet_io.CorruptParquet, DataError)) as exc:
                read()
            message = str(exc.value)
            assert str(bad) in message and "row group 2" in message and repr(column) in message, \
                (kind, reader, message)


def test_no_single_byte_damage_changes_values_silently(tmp_path, monkeypatch):
    """Every byte of the column chunks of a small ledger, flipped in turn: an error or the same table."""
    path = tmp_path / "ledger.parquet"
    monkeypatch.setattr(tables, "_FLUSH_ROWS", 12)
    tables.write_rows(path, [{**row, "detail": f"d{i}"} for i, row in enumerate(_rows(S.LEDGER, 24))], S.LEDGER)
    good = pq.read_table(path)
    meta = pq.ParquetFile(path).metadata
    chunks = [meta.row_group(g).column(c) for g in range(meta.num_row_groups) for c in range(meta.num_columns)]
    low = min(c.dictionary_page_offset or c.data_page_offset for c in chunks)
    high = max((c.dictionary_page_offset or c.data_page_offset) + c.total_compressed_size for c in chunks)
    data, errors, silent = path.read_bytes(), 0, 0
    for offset in range(low, high):
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        try:          # the reader the project opens files with; the messages are checked above
            table = parquet_io.open_file(pa.BufferReader(bytes(damaged)), "damaged").read(use_threads=False)
        except (pa.ArrowException, OSError):
            errors += 1
            continue
        assert table.equals(good), f"byte {offset} changed values without an error"
        silent += 1
    assert errors > silent        # most bytes are page contents; the rest header fields the reader ignores


def test_damaged_rl_source_names_its_row_group(tmp_path):
    """A source parquet with checksums (as the teacher stage writes them): the error says where."""
    rows = pq.read_table(FIXTURES / "skywork").to_pylist()
    rows = [dict(rows[i % len(rows)], ability="math") for i in range(300)]
    path = tmp_path / "sky" / "math-00000.parquet"
    path.parent.mkdir()
    parquet_io.write_table(pa.Table.from_pylist(rows), path, row_group_size=100)
    column, offset = _pages(path, 2)["dictionary_index"]
    _damaged(path, offset, path)
    with pytest.raises(DataError) as exc:
        ingest.run([source(am_shard(tmp_path / "am" / "math_r1_1pass.jsonl", 3))],
                   {"name": "sky", "format": "skywork_or1", "path": str(path.parent)}, tmp_path / "raw", tmp_path / "out")
    assert str(path) in str(exc.value) and "row group 2" in str(exc.value) and repr(column) in str(exc.value)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------- inputs read
@pytest.mark.parametrize("arrow", [True, False])
@pytest.mark.parametrize("change", ["truncate", "append", "replace"])
def test_source_changed_while_read_is_an_error_naming_it(tmp_path, monkeypatch, arrow, change):
    shard = am_shard(tmp_path / "src" / "math_r1_1pass.jsonl", 3000)     # ~4 MB: several reads
    monkeypatch.setattr(ingest, "ARROW_BLOCKS", arrow)
    monkeypatch.setattr(am40m_blocks, "BLOCK_BYTES", 1 << 18)
    real_read = SourceStream.read

    def read(self, size):
        data = real_read(self, size)
        if self.path == shard and not getattr(self, "changed", False):     # another writer, between reads
            self.changed = True
            if change == "truncate":
                os.truncate(shard, shard.stat().st_size // 2)
            elif change == "append":
                with open(shard, "ab") as fh:
                    fh.write(json.dumps(AM40M).encode() + b"\n")
            else:
                am_shard(shard.with_name("new.tmp"), 10).replace(shard)
        return data

    monkeypatch.setattr(SourceStream, "read", read)
    with pytest.raises(DataError) as exc:
        ingest.run([source(shard.parent)], SKYWORK, tmp_path / "raw", tmp_path / "out")
    assert str(shard) in str(exc.value) and "changed while it was read" in str(exc.value)
    assert not (tmp_path / "out").exists() and not lock_path(tmp_path / "out").exists()


def test_parquet_source_changed_after_hashing_is_an_error(tmp_path, monkeypatch):
    real = SourceStream.hash_for_random_access

    def hash_then_touch(self, *args):
        real(self, *args)
        self.path.write_bytes(self.path.read_bytes())        # the same bytes, written again
    monkeypatch.setattr(SourceStream, "hash_for_random_access", hash_then_touch)
    rl = {**SKYWORK, "path": str(shutil.copytree(FIXTURES / "skywork", tmp_path / "sky"))}
    with pytest.raises(DataError, match="changed while it was read"):
        ingest.run([source(am_shard(tmp_path / "am" / "x.jsonl", 3))], rl, tmp_path / "raw", tmp_path / "out")


def test_manifest_hash_is_of_the_bytes_read(tmp_path):
    root = tmp_path / "src"
    am_shard(root / "a" / "math_r1_1pass.jsonl", 50)
    am_shard(root / "b.jsonl", 7)
    single = am_shard(tmp_path / "one" / "science_r1_1pass.jsonl", 5)
    ingest.run([source(root), source(single, "one")], SKYWORK, tmp_path / "raw", tmp_path / "out")
    inputs = read_out(tmp_path / "out")[2]["inputs"]
    assert inputs["am"] == {"path": str(root), "sha256": sha256_tree(root)}
    assert inputs["one"]["sha256"] == sha256_file(single)
    assert inputs["sky"]["sha256"] == sha256_tree(FIXTURES / "skywork")


def test_stage_input_changed_during_the_stage_is_an_error(tmp_path):
    root = tmp_path / "ingested"
    tables.write_rows(root / "rl_prompts.parquet", _rows(S.RL_PROMPT, 5), S.RL_PROMPT)
    digests = InputDigests({"ingested": root})
    assert digests.manifest_inputs()["ingested"]["sha256"] == sha256_tree(root)
    digests = InputDigests({"ingested": root})
    tables.write_rows(root / "rl_prompts.parquet", _rows(S.RL_PROMPT, 4), S.RL_PROMPT)
    with pytest.raises(DataError, match="changed while the stage read it") as exc:
        digests.manifest_inputs()
    assert str(root / "rl_prompts.parquet") in str(exc.value)


# ----------------------------------------------------------------------------------- not regular files
def _refused_without_blocking(path: Path, words: str) -> None:
    result: list[BaseException | None] = []

    def attempt() -> None:
        try:
            source_files.list_files(path)
            result.append(None)
        except DataError as exc:
            result.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), f"{path}: blocked"
    assert result[0] is not None and str(path) in str(result[0]) and words in str(result[0]), result


def test_fifo_socket_and_device_sources_are_refused_by_name(tmp_path):
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    _refused_without_blocking(fifo, "a FIFO, not a regular file")
    sock_path = tmp_path / "sock.jsonl"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        _refused_without_blocking(sock_path, "a socket")
    _refused_without_blocking(Path("/dev/null"), "a character device")
    inside = tmp_path / "dir"
    am_shard(inside / "ok.jsonl", 2)
    os.mkfifo(inside / "pipe.jsonl")
    _refused_without_blocking(inside, "a FIFO")
    # and when a FIFO takes a file's place after the listing, the open does not block either
    with pytest.raises(DataError, match="a FIFO"):
        SourceStream(fifo)


# ----------------------------------------------------------------------------------- full disk
def _limited_writer(budget: int):
    """``parquet_io.writer`` whose files fail with ENOSPC once ``budget`` bytes are written in all."""
    written = [0]

    class Disk(io.FileIO):
        def write(self, data):
            written[0] += len(data)
            if written[0] > budget:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(data)

    def writer(where, schema, **options):
        return pq.ParquetWriter(Disk(where, "w"), schema, write_page_checksum=True, **options)
    return writer


def test_disk_full_names_output_and_space_and_leaves_nothing(tmp_path, monkeypatch):
    sources = [source(am_shard(tmp_path / "src" / "math_r1_1pass.jsonl", 2000))]
    monkeypatch.setattr(tables.parquet_io, "writer", _limited_writer(256 << 10))
    out = tmp_path / "out"
    with pytest.raises(OutputWriteError) as exc:
        ingest.run(sources, SKYWORK, tmp_path / "raw", out)
    message = str(exc.value)
    assert message.startswith(f"{out}: no space left on the device") and "needs more than the" in message
    assert "free in" in message and "KiB it had written" in message
    assert os.listdir(tmp_path) == ["src"]                       # no output, partial or lock
    monkeypatch.undo()
    ingest.run(sources, SKYWORK, tmp_path / "raw", out)
    ingest.run(sources, SKYWORK, tmp_path / "raw", tmp_path / "again")
    assert output_bytes(out) == output_bytes(tmp_path / "again")


FULL_DISK = """
import json, os, sys
from plasticity.data import ingest
sources, rl, raw, out = json.loads(sys.argv[1])
try:
    ingest.run(sources, rl, raw, out)
    print(json.dumps({"error": None}))
except Exception as exc:
    print(json.dumps({"type": type(exc).__name__, "error": str(exc), "left": os.listdir(os.path.dirname(out))}))
"""


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare (user and mount namespaces) for a tiny tmpfs")
def test_disk_full_on_a_real_tiny_filesystem(tmp_path):
    sources = [source(am_shard(tmp_path / "src" / "math_r1_1pass.jsonl", 3000))]
    disk = tmp_path / "disk"
    disk.mkdir()
    argv = json.dumps([sources, SKYWORK, str(tmp_path / "raw"), str(disk / "ingested")])
    script = f"mount -t tmpfs -o size=256k tmpfs {disk} && exec {sys.executable} -c \"$0\" \"$1\""
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, FULL_DISK, argv],
                          env=ENV, capture_output=True, text=True, timeout=120)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["type"] == "OutputWriteError", (result, done.stderr[-2000:])
    assert result["error"].startswith(f"{disk / 'ingested'}: no space left on the device")
    assert "KiB is free" in result["error"] or "MiB is free" in result["error"]
    assert result["left"] == []                  # no output, no partial, no lock on the full disk


# ----------------------------------------------------------------------------------- long lines
@pytest.mark.parametrize("arrow", [True, False])
@pytest.mark.parametrize("zst", [False, True])
def test_line_over_the_record_size_is_skipped_into_the_ledger(tmp_path, monkeypatch, arrow, zst):
    monkeypatch.setattr(ingest, "ARROW_BLOCKS", arrow)
    monkeypatch.setattr(am40m_blocks, "BLOCK_BYTES", 4096)
    spaces = b" " * 300_000
    huge = json.dumps({**AM40M, "answer": "x" * 250_000}).encode()
    shard = am_shard(tmp_path / "src" / "math_r1_1pass.jsonl", 40, {3: spaces, 20: huge})
    with open(shard, "ab") as fh:
        fh.write(b"\t" * 200_000)                                    # at the end, without a newline
    if zst:
        import zstandard
        zipped = shard.with_name(shard.name + ".zst")
        zipped.write_bytes(zstandard.ZstdCompressor().compress(shard.read_bytes()))
        shard.unlink()
        shard = zipped
    counts = ingest.run([source(shard.parent)], SKYWORK, tmp_path / "raw", tmp_path / "out",
                        max_record_bytes=100_000)
    kept, ledger, _ = read_out(tmp_path / "out")
    assert [(r["reason"], r["row"], r["file"]) for r in ledger] == \
        [("record_too_long", row, f"am/{shard.name}") for row in (3, 20, 40)]
    assert "line of 300000 bytes is longer than the maximum record size of 100000 bytes" in ledger[0]["detail"]
    assert [r["source_row"] for r in kept] == [i for i in range(40) if i not in (3, 20)]
    assert counts["in"] == counts["kept"] + counts["dropped"]


def test_line_blocks_hold_no_more_than_the_record_size():
    chunk = b" " * (1 << 20)
    lines = 256                                                       # a 256 MiB line, never built

    def stream():
        yield b'{"a": 1}\n'
        for _ in range(lines):
            yield chunk
        yield b'\n{"b": 2}\n'

    tracemalloc.start()
    out = list(line_blocks(stream(), 1 << 16, 4 << 20))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out == [b'{"a": 1}\n', LongLine(lines << 20), b'{"b": 2}\n']
    assert peak < 12 << 20, peak                                     # the 4 MiB bound, not 256 MiB


def test_zstd_bomb_decompresses_in_bounded_pieces(tmp_path):
    import zstandard

    path = tmp_path / "bomb.jsonl.zst"
    with open(path, "wb") as fh, zstandard.ZstdCompressor(level=1).stream_writer(fh) as writer:
        for _ in range(192):
            writer.write(b" " * (1 << 20))
    assert path.stat().st_size < 1 << 20                              # 192 MiB in a few KB
    with SourceStream(path) as stream:
        sizes = [len(piece) for piece in decompressed(stream)]
        stream.finish()
    assert sum(sizes) == 192 << 20 and max(sizes) <= (32 << 20) + (1 << 20), max(sizes)
