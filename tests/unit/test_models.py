"""Tokenizer, chat template and safe model loading (plasticity.models)."""
from __future__ import annotations

import random

import pytest

from plasticity import models
from plasticity.problems import sample_problem


@pytest.fixture(scope="module")
def tokenizer():
    return models.build_tiny_tokenizer()


def _trajectory_text(tokenizer, seed: int = 0, level: int = 6) -> str:
    problem = sample_problem(random.Random(seed), level)
    return models.chat_prompt(tokenizer, problem.prompt) + problem.trajectory() + tokenizer.eos_token


def test_decode_inverts_encode(tokenizer):
    for seed in range(20):
        text = _trajectory_text(tokenizer, seed, 2 + seed % 7)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text


def test_markers_are_single_tokens(tokenizer):
    vocab = tokenizer.get_vocab()
    for marker in ("<think>", "</think>", "<answer>", "</answer>", "\\boxed{", "<eos>", "<|user|>",
                   "<|assistant|>"):
        assert tokenizer(marker, add_special_tokens=False)["input_ids"] == [vocab[marker]]
    # characters of a marker still tokenize one by one when they do not form the marker
    assert len(tokenizer("<thin", add_special_tokens=False)["input_ids"]) == 5


def test_save_load_roundtrip_keeps_ids(tokenizer, tmp_path):
    models.save_tiny_tokenizer(tokenizer, tmp_path)
    # a qwen2 config next to the tokenizer must not change how it loads (the AutoTokenizer pitfall)
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    reloaded = models.load_tokenizer(tmp_path)
    text = _trajectory_text(tokenizer, 3)
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert reloaded.padding_side == "left"
    assert (reloaded.pad_token, reloaded.eos_token) == ("<pad>", "<eos>")
    assert reloaded.pad_token_id != reloaded.eos_token_id
    assert len(reloaded) == len(models.TINY_VOCAB)


def test_chat_prompt_format(tokenizer):
    assert models.chat_prompt(tokenizer, "7-3+5=") == "<|user|>7-3+5=<|assistant|>"
    # no system line, and the assistant turn of a full conversation is closed with EOS
    conversation = tokenizer.apply_chat_template(
        [{"role": "user", "content": "1+1="}, {"role": "assistant", "content": "\\boxed{2}"}], tokenize=False)
    assert conversation == "<|user|>1+1=<|assistant|>\\boxed{2}<eos>"


def test_skip_special_tokens_keeps_answer_markers(tokenizer):
    ids = tokenizer("<think>\n1+1=2\n</think>\n\\boxed{2}<eos><pad>", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<think>\n1+1=2\n</think>\n\\boxed{2}"


def test_loading_refuses_bin_only_dir(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="safetensors"):
        models.load_model_and_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError):
        models.load_model_and_tokenizer(tmp_path / "missing")


TINY = {"source": "tiny", "arch": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                   "num_key_value_heads": 1, "intermediate_size": 64, "max_position_embeddings": 96},
        "pretrain": {"steps": 1, "batch_size": 1, "lr": 1e-3, "examples": 1}}


def test_tokenizer_stage_writes_loadable_dir(tmp_path):
    import json

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"seed": 1, "model_name": "tiny", "model": TINY}))
    out = tmp_path / "tok"
    assert models.main(["--config", str(cfg), "--out", str(out)]) == 0
    assert (out / "manifest.json").is_file()
    assert models.chat_prompt(models.load_tokenizer(out), "2+2=") == "<|user|>2+2=<|assistant|>"


def test_unknown_source_is_an_error_naming_the_file_and_key(tmp_path):
    import json

    from plasticity.config import ConfigError

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"seed": 1, "model_name": "x", "model": {"source": "ftp"}}))
    with pytest.raises(ConfigError, match=r"cfg.json(.|\n)*model.source"):
        models.main(["--config", str(cfg), "--out", str(tmp_path / "tok")])
    assert not (tmp_path / "tok").exists()


def test_a_hub_model_is_read_from_its_downloaded_snapshot(tmp_path, tiny_model_dir):
    """The tokenizer and base stages of a hub model copy the snapshot the download rule fetched; without it
    they fail at once, naming the rule, instead of reaching for the network on a compute node."""
    import shutil

    from plasticity import models
    from plasticity.config import ModelSection
    from plasticity.train import pretrain

    cfg = ModelSection(seed=0, model_name="m", model={"source": "hub", "hub_id": "org/model", "revision": "a" * 40})
    with pytest.raises(FileNotFoundError, match="download_model"):
        models.run(cfg, tmp_path / "tok")
    snapshot = tmp_path / "snapshot"
    shutil.copytree(tiny_model_dir, snapshot)
    (snapshot / "manifest.json").write_text("{}\n")
    models.run(cfg, tmp_path / "tok", snapshot)
    assert (tmp_path / "tok" / "tokenizer.json").read_bytes() == (snapshot / "tokenizer.json").read_bytes()
    pretrain.run(cfg, tmp_path / "tok", tmp_path / "base", snapshot=snapshot)
    assert (tmp_path / "base" / "model.safetensors").read_bytes() == (snapshot / "model.safetensors").read_bytes()
