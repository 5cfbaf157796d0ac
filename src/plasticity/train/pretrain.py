"""Stage ``base``: the base model every SFT run and RL branch starts from.

``source: tiny`` builds a Qwen2ForCausalLM from ``model.arch`` (tied embeddings, vocabulary from the
tokenizer) and gives it a short "pretraining" on problem -> direct answer pairs (``7-3+5=`` ->
``\\boxed{9}``, levels 2..6) with trl's SFTTrainer, so the base is weak but not zero (about 10-15%
on the embedded suites). ``source: hub`` copies the snapshot the ``download`` rule fetched on the
submit host (``--snapshot``); ``source: path`` verifies the pinned sha256 of a local directory and
copies it; for both,
``model.config_overrides`` replaces keys of the written ``config.json``.

Writes DIR with safetensors weights, config and tokenizer, ``manifest.json`` last. Run by hand::

    python -m plasticity base --config CFG.json --tokenizer results/tiny/tokenizer \\
        --out results/tiny/base [--threads 1] [--exclude BENCH.parquet ...] [--snapshot DOWNLOAD_DIR]

``CFG.json`` is the model's section (``plasticity.config.ModelSection``). On CPU the same seed gives
byte-identical weights.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from plasticity.config import ModelSection, SftRunSettings, load_section
from plasticity.io import atomic_path, write_manifest

log = logging.getLogger(__name__)

def build_tiny_model(arch: Any, tokenizer: Any, seed: int) -> Any:
    """A freshly initialised Qwen2ForCausalLM for the tiny tokenizer (fp32, tied embeddings)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=arch.hidden_size,
        num_hidden_layers=arch.num_hidden_layers,
        num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads,
        intermediate_size=arch.intermediate_size,
        max_position_embeddings=arch.max_position_embeddings,
        tie_word_embeddings=True,
        # The tiny tokenizer has no BOS; set it here so the trainer does not rewrite the config.
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(int(seed))
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config.bos_token_id = None
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def exclude_prompts(paths: list[str | Path]) -> set[str]:
    """Problem prompts of benchmark parquet files (column ``prompt``), kept out of pretraining."""
    from plasticity import parquet_io

    out: set[str] = set()
    for path in paths:
        out.update(parquet_io.read_table(path, columns=["prompt"]).column("prompt").to_pylist())
    return out


def pretrain_tiny(cfg: ModelSection, tokenizer: Any, out_dir: Path, *, exclude: set[str] = frozenset()) -> Any:
    """Build and pretrain the tiny model; returns the trained model (weights saved by the caller).

    The recipe is the miniature's own, fixed here: PyTorch's AdamW defaults without weight decay,
    warmup then cosine, fp32, sequences cut at the model's context.
    """
    from plasticity.train import seed_everything
    from plasticity.train.data import pretrain_pairs, to_dataset, tokenize_pairs
    from plasticity.train.sft import build_sft_trainer

    seed, arch, pre = cfg.seed, cfg.model.arch, cfg.model.pretrain
    seed_everything(seed)
    model = build_tiny_model(arch, tokenizer, seed)
    columns, _ = tokenize_pairs(tokenizer, pretrain_pairs(tokenizer, pre.examples, seed, exclude=exclude),
                                arch.max_position_embeddings)
    settings = SftRunSettings(batch_size=pre.batch_size, lr=pre.lr, warmup_steps=pre.warmup_steps,
                              weight_decay=0.0, adam_betas=(0.9, 0.999), max_length=arch.max_position_embeddings,
                              precision="fp32", data="pretrain", steps=pre.steps, save_steps=[pre.steps])
    trainer = build_sft_trainer(model, tokenizer, to_dataset(columns), settings, out_dir / ".trainer", seed=seed,
                                world_size=1, cuda=False)
    trainer.train()
    shutil.rmtree(out_dir / ".trainer", ignore_errors=True)
    return trainer.model


def override_config(model_dir: Path, overrides: dict[str, Any]) -> None:
    """Replace keys of ``model_dir/config.json`` (``model.config_overrides``); every key must exist there."""
    if not overrides:
        return
    path = model_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ValueError(f"model.config_overrides: {unknown} are not keys of {path}")
    path.write_text(json.dumps({**config, **overrides}, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def run(cfg: ModelSection, tokenizer_dir: str | Path, out: str | Path, *, threads: int = 1,
        exclude: list[str | Path] | None = None, snapshot: str | Path | None = None) -> Path:
    """Write the base model of ``cfg.model`` into ``out`` (atomically, manifest last)."""
    from plasticity.models import load_tokenizer, model_files, require_safetensors, save_model_and_tokenizer, set_threads

    spec = cfg.model
    set_threads(threads)
    out = Path(out)
    inputs: dict[str, str | Path] = {"tokenizer": tokenizer_dir}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        if spec.source == "tiny":
            tokenizer = load_tokenizer(tokenizer_dir)
            model = pretrain_tiny(cfg, tokenizer, tmp, exclude=exclude_prompts(list(exclude or [])))
            save_model_and_tokenizer(model, tokenizer, tmp)
        else:   # hub (the downloaded snapshot) or path (a pinned local directory)
            src = model_files(spec, snapshot)
            shutil.copytree(src, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("manifest.json"))
            inputs["model_files"] = src
        require_safetensors(tmp)
        override_config(tmp, spec.config_overrides)
        for i, path in enumerate(exclude or []):
            inputs[f"exclude_{i}"] = path
        write_manifest(tmp, stage="base", config=cfg.model_dump(mode="json"), inputs=inputs, seed=cfg.seed)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity base", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON: the model section (plasticity.config.ModelSection)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer directory (stage tokenizer)")
    parser.add_argument("--out", required=True, help="output model directory")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--exclude", nargs="*", default=[],
                        help="parquet files whose `prompt` column is kept out of the pretraining data")
    parser.add_argument("--snapshot", help="source: hub: the downloaded snapshot (stage download)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    run(load_section(args.config, ModelSection), args.tokenizer, args.out, threads=args.threads,
        exclude=args.exclude, snapshot=args.snapshot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
