"""Sample completions for every benchmark: the ``generate`` stage (PAPER.md section 3).

Reads a model directory (safetensors, via ``plasticity.models.load_model_and_tokenizer``) and a
finished ``benchmarks`` output; writes OUT_DIR/<bench>/generations.parquet (``schema.GENERATION``,
k rows per problem) and OUT_DIR/manifest.json (sampling parameters, the chat template's sha256,
each benchmark file's sha256). Grading is a separate stage (``grade``), so a grader change
regrades without regenerating.

    python -m plasticity generate --config CFG.json --model MODEL_DIR --benchmarks BENCH_DIR --out OUT_DIR

CFG.json is ``{"seed": int, "eval": <the eval section of config.yaml>}``. The study's protocol:
sampling (never greedy) at temperature 0.7, top-p 1.0, top-k off, up to 8,192 new tokens;
avg@16 on AIME24/25 and avg@1 elsewhere (``eval.samples``). Nothing caps the length besides
``max_new_tokens``; a prompt that cannot fit the model's context with that budget is an error,
not a silent truncation.

Backends, one interface (``list[list[Completion]]``, one inner list of n samples per prompt):
  * ``transformers`` (CPU): batched, left-padded ``generate(do_sample=True)``; torch is seeded
    before each batch from (seed, batch index), so a rerun on CPU is byte-identical.
  * ``vllm`` (GPU): tensor parallel, n samples per request, a per-request seed from
    (seed, prompt index). ``import vllm`` happens only inside ``generate_vllm``.
Both encode the templated prompt the same way (``encode_prompts``: no special tokens added, since
the chat template already writes them; vLLM gets the token ids, so it cannot add a second BOS)
and refuse a prompt that cannot fit the context with the full budget (``check_context``): vLLM
would otherwise stop such a sample at the context length and call it ``length``.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class SamplingConfig:
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 8192
    n: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError("sampling.temperature must be > 0: evaluation samples, it is never greedy")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sampling.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1 or self.n < 1:
            raise ValueError("sampling.max_new_tokens and sampling.n must be >= 1")


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str      # stop | length
    prompt_tokens: int
    completion_tokens: int


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (seed, batch index, ...), stable across runs and platforms."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def chat_prompt(tokenizer: Any, question: str) -> str:
    """The question in the model's chat template (one user turn, generation prompt added)."""
    from plasticity.models import chat_prompt as models_chat_prompt

    return models_chat_prompt(tokenizer, question)


def template_sha256(tokenizer: Any) -> str:
    """sha256 of what decides the prompt text: the chat template rendered on a probe question."""
    template = getattr(tokenizer, "chat_template", None) or ""
    probe = chat_prompt(tokenizer, "{question}")
    return hashlib.sha256((str(template) + "\x00" + probe).encode()).hexdigest()


def encode_prompts(tokenizer: Any, prompts: list[str], apply_chat_template: bool = True) -> list[list[int]]:
    """Token ids of each prompt, chat-templated by default, as both backends feed them to the model."""
    texts = [chat_prompt(tokenizer, p) for p in prompts] if apply_chat_template else list(prompts)
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def check_context(encoded: list[list[int]], max_new_tokens: int, limit: int | None) -> None:
    """Refuse a prompt that cannot be answered with the whole budget inside the model's context."""
    longest = max((len(e) for e in encoded), default=0)
    if limit is not None and longest + max_new_tokens > limit:
        raise ValueError(f"a prompt of {longest} tokens plus max_new_tokens={max_new_tokens} exceeds "
                         f"the model's context of {limit} tokens; lower eval.sampling.max_new_tokens")


# ----------------------------------------------------------------------------------------------
# transformers backend (CPU)

def generate_transformers(model: Any, tokenizer: Any, prompts: list[str], sampling: SamplingConfig,
                          batch_size: int = 64, *, apply_chat_template: bool = True,
                          progress: bool = False, synced_gpus: bool = False) -> list[list[Completion]]:
    """``sampling.n`` sampled completions per prompt (questions, chat-templated here by default).

    ``synced_gpus``: the processes of a sharded model (FSDP, ZeRO-3) call this with the same number
    of prompts and keep stepping together until every process's batch is done.
    """
    import torch

    encoded = encode_prompts(tokenizer, prompts, apply_chat_template)
    check_context(encoded, sampling.max_new_tokens, getattr(model.config, "max_position_embeddings", None))
    # One job per (prompt, sample); grouped by prompt length so batches pad little. The order is a
    # pure function of the inputs, so batch composition (and thus every sample) is reproducible.
    jobs = sorted(((len(encoded[i]), i, j) for i in range(len(prompts)) for j in range(sampling.n)))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_id = tokenizer.eos_token_id
    out: list[list[Completion | None]] = [[None] * sampling.n for _ in prompts]
    batches = [jobs[k:k + batch_size] for k in range(0, len(jobs), batch_size)]
    iterator = batches
    if progress:
        from tqdm import tqdm
        iterator = tqdm(batches, desc="generate", unit="batch")
    model.eval()
    device = next(model.parameters()).device
    for b, batch in enumerate(iterator):
        width = max(n for n, _, _ in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (n, i, _) in enumerate(batch):
            ids[r, width - n:] = torch.tensor(encoded[i], dtype=torch.long)
            mask[r, width - n:] = 1
        torch.manual_seed(derive_seed(sampling.seed, "batch", b))
        with torch.no_grad():
            generated = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=True,
                temperature=sampling.temperature, top_p=sampling.top_p, top_k=0,
                max_new_tokens=sampling.max_new_tokens, pad_token_id=pad_id, eos_token_id=eos_id,
                num_beams=1, repetition_penalty=1.0, **({"synced_gpus": True} if synced_gpus else {}))
        new = generated[:, width:].tolist()
        for r, (n, i, j) in enumerate(batch):
            tokens = new[r]
            if eos_id is not None and eos_id in tokens:
                cut = tokens.index(eos_id)
                body, reason, used = tokens[:cut], "stop", cut + 1
            else:
                # Padding after the budget is never real output; strip trailing pads of a finished row.
                body, reason, used = tokens, "length", len(tokens)
            text = tokenizer.decode(body, skip_special_tokens=True)
            out[i][j] = Completion(text, reason, n, used)
    return out  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------
# vLLM backend (GPU)

def load_vllm(model_dir: str | os.PathLike, *, seed: int, tensor_parallel_size: int = 1,
              trust_remote_code: bool = False) -> Any:
    """One vLLM engine for a model directory (safetensors weights only)."""
    from vllm import LLM

    from plasticity.models import require_safetensors

    require_safetensors(model_dir)
    return LLM(model=str(model_dir), tensor_parallel_size=tensor_parallel_size, seed=seed,
               trust_remote_code=trust_remote_code, load_format="safetensors")


def _vllm_context(llm: Any) -> int | None:
    config = getattr(getattr(llm, "llm_engine", None), "model_config", None)
    return getattr(config, "max_model_len", None)


def generate_vllm(model_dir: str | os.PathLike, prompts: list[str], sampling: SamplingConfig, *,
                  tensor_parallel_size: int = 1, trust_remote_code: bool = False,
                  llm: Any = None) -> list[list[Completion]]:
    """``sampling.n`` completions per prompt with vLLM; request i has the seed (seed, i)."""
    from vllm import SamplingParams

    if llm is None:
        llm = load_vllm(model_dir, seed=sampling.seed, tensor_parallel_size=tensor_parallel_size,
                        trust_remote_code=trust_remote_code)
    encoded = encode_prompts(llm.get_tokenizer(), prompts)
    check_context(encoded, sampling.max_new_tokens, _vllm_context(llm))
    params = [SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p, top_k=-1,
                             max_tokens=sampling.max_new_tokens, seed=derive_seed(sampling.seed, "request", i))
              for i in range(len(prompts))]
    results = llm.generate([{"prompt_token_ids": ids} for ids in encoded], params)
    out = []
    for res in results:
        samples = []
        for o in res.outputs:
            reason = "length" if o.finish_reason == "length" else "stop"
            samples.append(Completion(o.text, reason, len(res.prompt_token_ids), len(o.token_ids)))
        out.append(samples)
    return out


# ----------------------------------------------------------------------------------------------
# The stage

def samples_for(eval_cfg: dict, name: str) -> int:
    samples = eval_cfg.get("samples") or {}
    return int(samples.get(name, samples.get("default", 1)))


def sampling_for(eval_cfg: dict, name: str, seed: int) -> SamplingConfig:
    s = eval_cfg.get("sampling") or {}
    return SamplingConfig(temperature=float(s.get("temperature", 0.7)), top_p=float(s.get("top_p", 1.0)),
                          max_new_tokens=int(s.get("max_new_tokens", 8192)), n=samples_for(eval_cfg, name),
                          seed=derive_seed(seed, "eval", name))


def eval_benchmarks(eval_cfg: dict) -> list[str]:
    return list(eval_cfg["benchmarks"]) + [b for b in eval_cfg.get("ood_benchmarks") or []
                                           if b not in eval_cfg["benchmarks"]]


def generations_table(table: Any, completions: list[list[Completion]]) -> Any:
    import pyarrow as pa

    from plasticity import schema

    cols: dict[str, list] = {name: [] for name in schema.GENERATION.names}
    bench = table.column("benchmark").to_pylist()
    for pid, b, samples in zip(table.column("problem_id").to_pylist(), bench, completions):
        for j, c in enumerate(samples):
            cols["problem_id"].append(pid)
            cols["benchmark"].append(b)
            cols["sample_index"].append(j)
            cols["completion"].append(c.text)
            cols["finish_reason"].append(c.finish_reason)
            cols["prompt_tokens"].append(c.prompt_tokens)
            cols["completion_tokens"].append(c.completion_tokens)
    out = pa.Table.from_pydict(cols, schema=schema.GENERATION)
    return out.sort_by([("problem_id", "ascending"), ("sample_index", "ascending")])


def run(config: dict, model_dir: str | os.PathLike, benchmarks_dir: str | os.PathLike,
        out_dir: str | os.PathLike) -> dict:
    from plasticity import parquet_io
    from plasticity.eval.registry import benchmark_sha256, load_suites
    from plasticity.io import atomic_path, write_manifest

    seed, eval_cfg = int(config["seed"]), config["eval"]
    names = eval_benchmarks(eval_cfg)
    suites = load_suites(benchmarks_dir, names)
    backend = eval_cfg.get("backend", "transformers")
    batch_size = int(eval_cfg.get("batch_size", 64))
    trust = bool(eval_cfg.get("trust_remote_code", False))
    info: dict[str, dict] = {}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        if backend == "transformers":
            from plasticity.models import load_model_and_tokenizer

            model, tokenizer = load_model_and_tokenizer(model_dir, trust_remote_code=trust)
            template = template_sha256(tokenizer)
            llm = None
        elif backend == "vllm":
            llm = load_vllm(model_dir, seed=seed, tensor_parallel_size=int(eval_cfg.get("tensor_parallel_size", 1)),
                            trust_remote_code=trust)
            template = template_sha256(llm.get_tokenizer())
        else:
            raise ValueError(f"eval.backend must be transformers or vllm, got {backend!r}")
        for name in names:
            table = suites[name]
            sampling = sampling_for(eval_cfg, name, seed)
            prompts = table.column("prompt").to_pylist()
            print(f"{name}: {len(prompts)} problems x {sampling.n} samples", file=sys.stderr)
            if backend == "transformers":
                completions = generate_transformers(model, tokenizer, prompts, sampling, batch_size, progress=True)
            else:
                completions = generate_vllm(model_dir, prompts, sampling, llm=llm)
            (tmp / name).mkdir()
            gens = generations_table(table, completions)
            parquet_io.write_table(gens, tmp / name / "generations.parquet")
            finish = gens.column("finish_reason").to_pylist()
            info[name] = {"sampling": asdict(sampling), "n_problems": table.num_rows, "n_samples": gens.num_rows,
                          "truncated": finish.count("length"),
                          "benchmark_sha256": benchmark_sha256(benchmarks_dir, name)}
        write_manifest(tmp, stage="generate", config=config, seed=seed,
                       inputs={"model": model_dir, "benchmarks": benchmarks_dir},
                       extra={"backend": backend, "prompt_template_sha256": template, "generations": info})
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity generate",
                                     description="Sample completions for every benchmark (transformers or vLLM).")
    parser.add_argument("--config", required=True, help='JSON: {"seed": int, "eval": <eval section>}')
    parser.add_argument("--model", required=True, help="model directory (safetensors + tokenizer)")
    parser.add_argument("--benchmarks", required=True, help="output of the benchmarks stage")
    parser.add_argument("--out", required=True, help="output directory: <bench>/generations.parquet")
    parser.add_argument("--backend", choices=["transformers", "vllm"], help="override eval.backend")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU backend)")
    args = parser.parse_args(argv)
    from plasticity.io import read_json

    config = read_json(args.config)
    for key in ("seed", "eval"):
        if key not in config:
            parser.error(f"{args.config}: missing key {key!r}")
    if args.backend:
        config = {**config, "eval": {**config["eval"], "backend": args.backend}}
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    run(config, args.model, args.benchmarks, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
