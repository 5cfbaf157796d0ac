"""Stage ``download``: a pinned hub snapshot fetched once, on the submit host, for compute jobs to read.

Compute nodes often reach no network, and gated repositories (Llama-3.2-3B) need the user's token.
So every download is a Snakemake ``localrule`` (rules/models.smk and rules/data.smk: base weights,
tokenizer files, raw data sources), run where the workflow runs, with the token from the environment
(``HF_TOKEN``, read by huggingface_hub); every other job reads the local copy, with the hub's offline
switches set in its environment (``rules/common.smk``), so a stage that would reach for the network
fails at once instead of hanging on a compute node.

Writes ``OUT/`` (the snapshot's files) and ``OUT/manifest.json`` last, with the commit the revision
resolved to. A revision must be pinned in the config (a commit, or a tag or branch the manifest then
resolves).

    python -m plasticity download --repo Qwen/Qwen2.5-7B --revision d1497293... --type model \\
        --pattern '*.safetensors' --pattern 'config.json' --out results/qwen2.5-7b/hub
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

from plasticity.io import atomic_path, write_manifest

log = logging.getLogger(__name__)

# what the model stages read of a hub model: safetensors weights, their index, configs, tokenizer files
MODEL_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "config.json", "generation_config.json",
                  "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                  "tokenizer.model", "chat_template.jinja", "added_tokens.json")


def hub_online() -> None:
    """Let this process reach the hub: the download jobs (and the benchmarks rule, local too) only.
    The workflow sets the offline switches for every job; huggingface_hub reads them at import."""
    os.environ["HF_HUB_OFFLINE"] = "0"
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = False


def run(repo: str, revision: str, repo_type: str, patterns: list[str] | None, out: str | Path) -> Path:
    """Fetch ``repo`` at ``revision`` (only ``patterns``, when given) into ``out``, manifest last."""
    hub_online()
    from huggingface_hub import HfApi, snapshot_download

    commit = HfApi().repo_info(repo, revision=revision, repo_type=repo_type).sha
    out = Path(out)
    with atomic_path(out) as tmp:
        snapshot_download(repo_id=repo, revision=commit, repo_type=repo_type, allow_patterns=patterns,
                          local_dir=str(tmp))
        shutil.rmtree(tmp / ".cache", ignore_errors=True)
        write_manifest(tmp, stage="download", config={"repo": repo, "revision": revision, "type": repo_type,
                                                      "patterns": patterns},
                       extra={"commit": commit})
    log.info("downloaded %s@%s (%s) into %s", repo, revision, commit, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity download", description=__doc__.split("\n")[0])
    parser.add_argument("--repo", required=True, help="hub repository id")
    parser.add_argument("--revision", required=True, help="pinned revision (a commit sha, or a tag)")
    parser.add_argument("--type", dest="repo_type", choices=("model", "dataset"), required=True)
    parser.add_argument("--pattern", action="append", help="only files matching (repeatable); default: all")
    parser.add_argument("--out", required=True, help="local directory of the snapshot")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    run(args.repo, args.revision, args.repo_type, args.pattern, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
