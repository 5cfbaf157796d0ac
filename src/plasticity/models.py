"""Model and tokenizer loading, the chat template, and the tiny local model's tokenizer.

Stage ``tokenizer`` reads the model's config section and writes a tokenizer directory:

    python -m plasticity tokenizer --config CFG.json --out results/tiny/tokenizer [--snapshot DOWNLOAD_DIR]

``CFG.json`` is the model's section (``plasticity.config.ModelSection``). For
``source: tiny`` it builds the character-level tokenizer below; for ``source: hub`` it copies the
tokenizer files from the snapshot the ``download`` rule fetched on the submit host (``--snapshot``;
compute jobs never reach the hub); for ``source: path`` it copies them from the pinned local directory
after checking its sha256.

The tiny tokenizer is a ``tokenizers`` WordLevel model over a small fixed vocabulary, split by a
regex that keeps the multi-character markers (``<think>``, ``\\boxed{``, the chat markers, ``<eos>``
...) whole and otherwise emits one token per character. It is always reloaded through
``PreTrainedTokenizerFast`` and never through ``AutoTokenizer``: with ``model_type: qwen2`` in the
model directory, AutoTokenizer would rebuild a byte-level Qwen2Tokenizer and change the ids.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from plasticity.io import atomic_path, read_json, sha256_tree, write_manifest

log = logging.getLogger(__name__)

# Written next to the tiny tokenizer's files; its presence is how ``load_tokenizer`` recognises it.
TINY_MARKER = "plasticity_tokenizer.json"

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
# Multi-character tokens kept whole by the pre-tokenizer. The special tokens are listed too: trl
# appends the EOS token as text ("<eos>") before tokenising, so it must map back to one id.
MULTI_CHAR_TOKENS = (PAD, EOS, UNK, USER, ASSISTANT, "<think>", "</think>", "<answer>", "</answer>",
                     "\\boxed{")
_CHARS = ("0123456789" + "abcdefghijklmnopqrstuvwxyz" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
          + " \n\t" + "+-=*/^()[]{}<>.,:;!?'\"\\_|%$&#@~`")
# The order is part of the tokenizer's identity: ids are positions in this tuple.
TINY_VOCAB: tuple[str, ...] = MULTI_CHAR_TOKENS + tuple(_CHARS)

# Plain user/assistant turns with no system line (the study's template adds one for Qwen2.5; the
# tiny model has no use for it). The assistant turn is closed with EOS, as SFT trains it.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}" + USER + "{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT + "{{ message['content'] }}" + EOS
    + "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}"
)


def chat_prompt(tokenizer: Any, question: str) -> str:
    """The generation prompt for one user question, as the study formats it (PAPER 2.1)."""
    return tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                         add_generation_prompt=True, tokenize=False)


def build_tiny_tokenizer() -> Any:
    """The character-level tokenizer of the embedded miniature (in memory)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(TINY_VOCAB)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    pattern = "|".join(re.escape(t) for t in MULTI_CHAR_TOKENS) + r"|[\s\S]"
    core.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS, unk_token=UNK,
                                   padding_side="left", chat_template=TINY_CHAT_TEMPLATE)


def save_tiny_tokenizer(tokenizer: Any, out_dir: str | Path) -> None:
    """Save the tiny tokenizer plus the marker that makes ``load_tokenizer`` rebuild it exactly."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    marker = {"kind": "char", "pad_token": PAD, "eos_token": EOS, "unk_token": UNK,
              "chat_template": TINY_CHAT_TEMPLATE, "vocab_size": len(TINY_VOCAB)}
    (out_dir / TINY_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")


def load_tokenizer(path: str | Path) -> Any:
    """Load a tokenizer from a local directory (tiny or hub format), left-padded for generation."""
    path = Path(path)
    marker_file = path / TINY_MARKER
    if marker_file.is_file():
        from transformers import PreTrainedTokenizerFast

        marker = read_json(marker_file)
        return PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"),
                                       pad_token=marker["pad_token"], eos_token=marker["eos_token"],
                                       unk_token=marker["unk_token"], padding_side="left",
                                       chat_template=marker["chat_template"])
    from transformers import AutoTokenizer

    # Local files only: fetching is the tokenizer stage's job, never a side effect of loading.
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def save_tokenizer(tokenizer: Any, out_dir: str | Path) -> None:
    """Save any tokenizer so that ``load_tokenizer`` gives back the same ids."""
    if _is_tiny(tokenizer):
        save_tiny_tokenizer(tokenizer, out_dir)
    else:
        tokenizer.save_pretrained(str(out_dir))


def _is_tiny(tokenizer: Any) -> bool:
    return getattr(tokenizer, "chat_template", None) == TINY_CHAT_TEMPLATE


def require_safetensors(model_dir: str | Path) -> None:
    """Refuse a model directory that has no ``*.safetensors`` weights (pickled .bin files are never loaded)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory not found: {model_dir}")
    if not any(model_dir.glob("*.safetensors")):
        found = sorted(p.name for p in model_dir.iterdir())
        raise ValueError(f"{model_dir}: no *.safetensors weights (found {found}); only safetensors "
                         "checkpoints are loaded, convert pickled .bin weights first")


def attn_implementation(cuda: bool) -> str:
    """FlashAttention 2 where CUDA and the flash-attn package are present, PyTorch's sdpa otherwise.

    Both handle padding-free micro-batches (sequences concatenated, positions restarting at 0):
    sdpa through transformers' packed-sequence masks, flash-attn through its variable-length kernel.
    """
    import importlib.util

    return "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") else "sdpa"


def load_model_and_tokenizer(model_dir: str | Path, *, trust_remote_code: bool = False, dtype: Any = None,
                             device: str = "cpu", attn_implementation: str | None = None) -> tuple[Any, Any]:
    """Load a causal LM (safetensors only) and its tokenizer from a local directory (fp32 unless ``dtype``)."""
    import torch
    from transformers import AutoModelForCausalLM

    require_safetensors(model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), use_safetensors=True, trust_remote_code=trust_remote_code,
        dtype=dtype if dtype is not None else torch.float32, local_files_only=True,
        **({"attn_implementation": attn_implementation} if attn_implementation else {}))
    model.to(device)
    tokenizer = load_tokenizer(model_dir)
    return model, tokenizer


def save_model_and_tokenizer(model: Any, tokenizer: Any, out_dir: str | Path) -> None:
    """HF-format safetensors weights + config + tokenizer, loadable by ``load_model_and_tokenizer``."""
    model.save_pretrained(str(out_dir), safe_serialization=True)
    save_tokenizer(tokenizer, out_dir)


def set_threads(threads: int) -> None:
    """Pin intra-op threads: two 1-thread jobs beat one 2-thread job on a 2-core machine."""
    import torch

    torch.set_num_threads(max(1, int(threads)))


# ----------------------------------------------------------------------------- tokenizer stage

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                    "merges.txt", "tokenizer.model", "chat_template.jinja", "added_tokens.json")


def model_files(spec: Any, snapshot: str | Path | None) -> Path:
    """Where a hub or path model's files are: the downloaded snapshot (hub; ``plasticity.download``), or
    the pinned local directory after its sha256 is checked (path)."""
    if spec.source == "path":
        verify_sha256(spec.path, spec.sha256)
        return Path(spec.path)
    if snapshot is None or not (Path(snapshot) / "manifest.json").is_file():
        raise FileNotFoundError(f"model {spec.hub_id}@{spec.revision}: no downloaded snapshot at {snapshot} "
                                "(the download_model rule fetches it on the submit host)")
    return Path(snapshot)


def run(cfg: Any, out: str | Path, snapshot: str | Path | None = None) -> Path:
    """Write the tokenizer of ``cfg.model`` (a ``config.ModelSection``) into ``out`` (atomically, manifest last)."""
    spec = cfg.model
    out = Path(out)
    inputs: dict[str, str | Path] = {}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        if spec.source == "tiny":
            save_tiny_tokenizer(build_tiny_tokenizer(), tmp)
        else:
            src = model_files(spec, snapshot)
            for name in _TOKENIZER_FILES:
                if (src / name).is_file():
                    shutil.copy2(src / name, tmp / name)
            inputs["model_files"] = src
        load_tokenizer(tmp)  # fail here, not in a later stage, if the files do not load
        write_manifest(tmp, stage="tokenizer", config=cfg.model_dump(mode="json"), inputs=inputs, seed=cfg.seed)
    return out


def verify_sha256(path: str | Path, expected: str | None) -> None:
    """Check a pinned local model directory against its configured sha256 (``io.sha256_tree``)."""
    if not expected:
        raise ValueError(f"{path}: a `source: path` model must pin its sha256")
    actual = sha256_tree(path)
    if actual != expected:
        raise ValueError(f"{path}: sha256 {actual} does not match the pinned {expected}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity tokenizer",
                                     description="Build (tiny) or fetch (hub/path) a model's tokenizer.")
    parser.add_argument("--config", required=True, help="JSON: the model section (plasticity.config.ModelSection)")
    parser.add_argument("--out", required=True, help="output tokenizer directory")
    parser.add_argument("--snapshot", help="source: hub: the downloaded snapshot (stage download)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from plasticity.config import ModelSection, load_section

    run(load_section(args.config, ModelSection), args.out, args.snapshot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
