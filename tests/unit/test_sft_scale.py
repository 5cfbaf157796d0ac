"""SFT at the study's scale, on CPU: the tokenize stage's shards and the bounded validation loss.

Memory figures (measured on the 2-core CPU machine, fp32, hidden 16; reports/benchmarks.md):
the naive validation pass (full logits, fp32, log-softmax) takes about 1.16 MiB of peak RSS per
position at vocabulary 152,064 (1,161 MiB for 1 x 1,000, 2,322 MiB for 1 x 2,000): about 54 GiB for
the 4 x 12,000 micro-batch below. The chunked pass takes about vocabulary x 8 bytes per chunk token
(1,205 MiB at 1,024; 334 MiB at 256) whatever the micro-batch.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from plasticity import schema
from plasticity.io import is_complete, read_json
from train_builders import MICRO_MODEL, SEED, trajectories, write_json_file

VOCAB = 152_064


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    from plasticity import models

    work = tmp_path_factory.mktemp("scale")
    cfg = write_json_file(work / "model.json", {"seed": SEED, "model_name": "micro", "model": MICRO_MODEL})
    assert models.main(["--config", str(cfg), "--out", str(work / "tok")]) == 0
    return work / "tok"


def _tokenize(tmp_path, tok_dir, table, max_length, threads=1, name="set"):
    from plasticity.train import tokens

    pq.write_table(table, tmp_path / f"{name}.parquet")
    cfg = write_json_file(tmp_path / "tok.json", {"max_length": max_length})
    out = tmp_path / f"{name}-{threads}"
    assert tokens.main(["--config", str(cfg), "--tokenizer", str(tok_dir), "--data", str(tmp_path / f"{name}.parquet"),
                        "--out", str(out), "--threads", str(threads)]) == 0
    return out


def test_tokenize_stage_writes_what_sft_trained_on_before(tmp_path, tok_dir, monkeypatch):
    """The shards hold, row for row, the in-memory tokenization (prompt as evaluation encodes it, then the
    completion and EOS, cut from the right); prompt-only rows go to the ledger; counts reconcile; two
    workers write the same bytes as one; the set spans several shards and record batches."""
    from plasticity.models import chat_prompt, load_tokenizer
    from plasticity.train import tokens
    from plasticity.train.data import tokenize_pairs

    monkeypatch.setattr(tokens, "BATCH_ROWS", 16)
    monkeypatch.setattr(tokens, "SHARD_ROWS", 48)
    table = trajectories(130, 3)
    long_prompt = {**table.slice(0, 1).to_pylist()[0], "problem_id": "long", "prompt": "1+" * 60 + "1="}
    table = pa.concat_tables([table, pa.Table.from_pylist([long_prompt], schema=schema.TRAJECTORY)])
    one = _tokenize(tmp_path, tok_dir, table, 96, threads=1)
    two = _tokenize(tmp_path, tok_dir, table, 96, threads=2)
    assert sorted(p.name for p in one.iterdir()) == ["ledger.parquet", "manifest.json", "shard-00000.arrow",
                                                    "shard-00001.arrow", "shard-00002.arrow", "stats.json"]
    for name in ("shard-00000.arrow", "shard-00001.arrow", "shard-00002.arrow", "ledger.parquet", "stats.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name

    tok = load_tokenizer(tok_dir)
    stats = read_json(one / "stats.json")
    ledger = pq.read_table(one / "ledger.parquet").to_pylist()
    assert stats["rows_in"] == 131 == stats["rows_kept"] + stats["rows_dropped"] and stats["rows_dropped"] == 1
    assert [(r["problem_id"], r["row"], r["field"], r["reason"]) for r in ledger] == \
        [("long", 130, "prompt", "prompt_fills_max_length")]
    rows = table.to_pylist()
    expected, dropped = tokenize_pairs(tok, {"prompt": [chat_prompt(tok, r["prompt"]) for r in rows],
                                             "completion": [r["response"] for r in rows]}, 96)
    data = tokens.open_tokenized(one, tok)
    assert dropped == 1 and len(data) == 130
    assert data[:]["input_ids"] == expected["input_ids"] and data[:]["completion_mask"] == expected["completion_mask"]
    assert data[:]["length"] == [len(x) for x in expected["input_ids"]]
    assert stats["tokens"] == sum(map(len, expected["input_ids"]))
    assert stats["mean_length"] == stats["tokens"] / 130


def test_sft_ranks_open_the_shards_memory_mapped(tmp_path, tok_dir):
    from plasticity.models import load_tokenizer
    from plasticity.train import tokens

    out = _tokenize(tmp_path, tok_dir, trajectories(40, 4), 128)
    data = tokens.open_tokenized(out, load_tokenizer(tok_dir))
    assert [f["filename"] for f in data.cache_files] == [str(out / "shard-00000.arrow")]   # read from the file
    assert is_complete(out)


def test_shards_of_another_tokenizer_are_refused(tmp_path, tok_dir):
    from plasticity.models import load_tokenizer
    from plasticity.train import tokens

    out = _tokenize(tmp_path, tok_dir, trajectories(8, 5), 128)
    tok = load_tokenizer(tok_dir)
    tok.chat_template = tok.chat_template.replace("user", "human")
    with pytest.raises(ValueError, match="another tokenizer"):
        tokens.open_tokenized(out, tok)


def _model(vocab: int, width: int, seed: int = 0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=32, max_position_embeddings=width + 8,
                      tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg).eval()


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_chunked_validation_nll_equals_the_full_logits(chunk):
    """Padded rows of different lengths, a scored completion after each prompt: the chunked sum equals the
    cross-entropy of the full fp32 logits to 1e-6 relative, at any chunk size."""
    from plasticity.train.val_loss import completion_nll

    model = _model(500, 64)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 500, (3, 40), generator=gen)
    attention = torch.ones_like(ids)
    attention[1, 31:] = 0
    attention[2, 22:] = 0
    targets = torch.full_like(ids, -100)
    for row, (start, end) in enumerate([(10, 40), (5, 31), (12, 22)]):
        targets[row, start - 1:end - 1] = ids[row, start:end]
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits.float()
        naive = torch.nn.functional.cross_entropy(logits.reshape(-1, 500), targets.reshape(-1), ignore_index=-100,
                                                  reduction="sum").double()
        chunked = completion_nll(model, ids, attention, targets, chunk)
    assert float(chunked) == pytest.approx(float(naive), rel=1e-6)
    assert isinstance(model.get_output_embeddings(), torch.nn.Linear)   # the real head is back


def test_validation_loss_over_a_tokenized_set_is_the_mean_over_completion_tokens(tmp_path, tok_dir):
    """Over the tokenize stage's shards, with micro-batches of 1 and 4 (padding) and a chunk of 5 tokens:
    one number, the token mean of the naive per-row cross-entropy."""
    from plasticity.models import load_tokenizer
    from plasticity.train import tokens
    from plasticity.train.val_loss import validation_loss

    tok = load_tokenizer(tok_dir)
    data = tokens.open_tokenized(_tokenize(tmp_path, tok_dir, trajectories(9, 6), 128), tok)
    model = _model(len(tok), 160, seed=2)
    nll = count = 0.0
    with torch.no_grad():
        for row in data:
            ids = torch.tensor([row["input_ids"]])
            logits = model(input_ids=ids).logits[0, :-1].float()
            target = torch.tensor([t if m else -100 for t, m in zip(row["input_ids"][1:], row["completion_mask"][1:])])
            nll += float(torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum"))
            count += int((target != -100).sum())
    for micro in (1, 4):
        assert validation_loss(model, data, micro_batch_size=micro, pad_id=tok.pad_token_id,
                               chunk_tokens=5) == pytest.approx(nll / count, rel=1e-6)


PEAK = textwrap.dedent("""
    import json, sys, torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from plasticity.train.val_loss import completion_nll
    rows, width, scored, chunk = (int(x) for x in sys.argv[1:5])
    torch.manual_seed(0); torch.set_num_threads(1)
    cfg = Qwen2Config(vocab_size=152064, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=32, max_position_embeddings=width + 8,
                      tie_word_embeddings=True)
    model = Qwen2ForCausalLM(cfg).eval()
    ids = torch.randint(0, 152064, (rows, width)); attention = torch.ones_like(ids)
    targets = ids.roll(-1, 1); targets[:, :width - scored] = -100; targets[:, -1] = -100
    # VmHWM, this process's own peak (getrusage's maxrss also holds the forking parent's from before exec)
    def hwm():
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    before = hwm()
    with torch.no_grad():
        if chunk:
            nll = completion_nll(model, ids, attention, targets, chunk)
        else:
            logits = model(input_ids=ids, attention_mask=attention).logits
            nll = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)),
                                                    targets.reshape(-1), ignore_index=-100, reduction="sum")
    print(json.dumps({"extra_mib": (hwm() - before) / 1024,
                      "nll": float(nll)}))
""")


def _peak(rows: int, width: int, scored: int, chunk: int) -> dict:
    done = subprocess.run([sys.executable, "-c", PEAK, str(rows), str(width), str(scored), str(chunk)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_validation_pass_memory_is_bounded_at_the_studys_vocabulary_and_width():
    """A 4 x 12,000 micro-batch at vocabulary 152,064 (the issue's 73 GB case, here with a tiny hidden size):
    the chunked pass stays under 1.75 GiB above the model's own forward (bound: 1,024 chunk tokens x
    vocabulary x 12 bytes), while the naive pass measured at 1 x 1,000 positions already takes over 1 GiB
    and grows with the positions (48x as many here: about 54 GiB)."""
    naive = _peak(1, 1000, 256, 0)
    chunked = _peak(4, 12_000, 256, 1024)
    assert naive["extra_mib"] > 1000
    assert chunked["extra_mib"] < 1024 * VOCAB * 12 / 2**20      # 1,782 MiB
    assert chunked["extra_mib"] < naive["extra_mib"] * 48 / 20    # at least 20x below the naive pass's need
