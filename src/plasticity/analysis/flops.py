"""FLOPs accounting of SFT and RL runs, with the study's formulas (PAPER 2.6, RETU ``utils/flops_est.py``).

Forward FLOPs per token of a SwiGLU / GQA decoder at mean sequence length S:

    F_dense = 2 * [L * (3*H*H_ff + 2*H*(H + D_KV)) + 2*V*H]      (D_KV = kv_heads * head_dim)
    F_attn  = 4 * S * L * H
    F_fwd   = F_dense + F_attn

Per-step costs (backward = 2x forward, so a training pass is 3x; a rollout is 1x per token):

    SFT         3 * B * S * F_fwd(S)
    DAPO        (K * B_gen + 3 * B_train) * G * S * F_fwd(S)      K = generation rounds of the step
                (the rollout term at S over the generated rows, the training term at S_train over the
                rows that ran forward and backward: B_train counts kept and masked groups)
    GRPO        4 * B * G * S * F_fwd(S)                           (also Prefix-RFT)
    LUFFY/SRFT  4 * [B * G * S_on * F_fwd(S_on) + B * N * S_off * F_fwd(S_off)]   G = 7, N = 1
    UPT         B * [G * S_on * F_fwd(S_on) + 3 * (N_on * S_on * F_fwd(S_on) + N_off * S_off * F_fwd(S_off))]
    CHORD       4 * B * G * S_on * F_fwd(S_on) + 3 * B * N * S_off * F_fwd(S_off)   (GRPO + the SFT rows)

S is prompt + response tokens. For RL the lengths are the ones logged at every training step, so
``rl_compute_ef`` turns a list of per-step length records into cumulative exaFLOPs.

By hand (prints JSON):

    python -m plasticity flops sft --model qwen2.5-7b --batch 512 --seq-len 3771 --steps 360
    python -m plasticity flops rl --method dapo_dc --model-dir results/tiny/base --lengths steps.jsonl
    python -m plasticity flops rl --method grpo --model qwen2.5-7b --prompts 64 --group 8 \
        --prompt-tokens 300 --completion-tokens 3000 --steps 100
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

EF = 1e18  # one exaFLOP


@dataclass(frozen=True)
class ModelConstants:
    """Shape constants of a decoder that the FLOPs formulas need."""

    layers: int
    hidden: int
    ffn: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @classmethod
    def from_hf_config(cls, cfg: Mapping[str, Any]) -> "ModelConstants":
        """Build from a Hugging Face ``config.json`` dict (Qwen2 / Llama field names)."""
        required = ("num_hidden_layers", "hidden_size", "intermediate_size", "vocab_size",
                    "num_attention_heads")
        missing = [k for k in required if cfg.get(k) is None]
        if missing:
            raise ValueError(f"model config lacks field(s) {missing} needed for FLOPs accounting")
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        head_dim = cfg.get("head_dim")
        return cls(layers=int(cfg["num_hidden_layers"]), hidden=hidden,
                   ffn=int(cfg["intermediate_size"]), vocab=int(cfg["vocab_size"]), heads=heads,
                   kv_heads=int(cfg.get("num_key_value_heads") or heads),
                   head_dim=int(head_dim) if head_dim else hidden // heads)

    @classmethod
    def from_model_dir(cls, model_dir: str | Path) -> "ModelConstants":
        path = Path(model_dir) / "config.json"
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no config.json in the model directory") from None
        try:
            return cls.from_hf_config(cfg)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


# Vocabulary of the tiny model's character-level tokenizer when no model directory is at hand; the
# real value comes from the built model's config.json (``--model-dir``), which callers should prefer.
TINY_DEFAULT_VOCAB = 128


def tiny_constants(vocab: int = TINY_DEFAULT_VOCAB) -> ModelConstants:
    """The embedded default's tiny model (config.yaml models.tiny.arch) with the given vocabulary."""
    return ModelConstants(layers=4, hidden=128, ffn=512, vocab=vocab, heads=4, kv_heads=2, head_dim=32)


# Values from each model's public config.json on the Hugging Face hub (Qwen/Qwen2.5-7B,
# Qwen/Qwen2.5-Math-7B, Qwen/Qwen2.5-14B, meta-llama/Llama-3.2-3B). The Qwen2.5-7B set is the one the
# study's FLOPs kit uses (PAPER 2.6).
MODEL_REGISTRY: dict[str, ModelConstants] = {
    "qwen2.5-7b": ModelConstants(layers=28, hidden=3584, ffn=18944, vocab=152064, heads=28,
                                 kv_heads=4, head_dim=128),
    "qwen2.5-math-7b": ModelConstants(layers=28, hidden=3584, ffn=18944, vocab=152064, heads=28,
                                      kv_heads=4, head_dim=128),
    "qwen2.5-14b": ModelConstants(layers=48, hidden=5120, ffn=13824, vocab=152064, heads=40,
                                  kv_heads=8, head_dim=128),
    "llama3.2-3b": ModelConstants(layers=28, hidden=3072, ffn=8192, vocab=128256, heads=24,
                                  kv_heads=8, head_dim=128),
    "tiny": tiny_constants(),
}


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def forward_flops_per_token(m: ModelConstants, seq_len: float) -> float:
    """F_fwd = F_dense + F_attn at mean sequence length ``seq_len`` (tokens)."""
    dense = 2.0 * (m.layers * (3.0 * m.hidden * m.ffn + 2.0 * m.hidden * (m.hidden + m.kv_dim))
                   + 2.0 * m.vocab * m.hidden)
    attn = 4.0 * float(seq_len) * m.layers * m.hidden
    return dense + attn


def _tokens_cost(m: ModelConstants, seq_len: float) -> float:
    """FLOPs of one forward pass over one sequence of ``seq_len`` tokens."""
    return float(seq_len) * forward_flops_per_token(m, seq_len)


def sft_step_flops(m: ModelConstants, batch: int, seq_len: float) -> float:
    """3 * B * S * F_fwd: forward + backward over B sequences of mean length S."""
    return 3.0 * batch * _tokens_cost(m, _positive("seq_len", seq_len))


def grpo_step_flops(m: ModelConstants, prompts: int, group: int, seq_len: float) -> float:
    """4 * B * G * S * F_fwd: one rollout pass plus a training pass over B*G sequences."""
    return 4.0 * prompts * group * _tokens_cost(m, _positive("seq_len", seq_len))


def dapo_step_flops(m: ModelConstants, gen_rounds: int, gen_batch: int, train_batch: int,
                    group: int, seq_len: float, train_seq_len: float | None = None) -> float:
    """(K * B_gen + 3 * B_train) * G * S * F_fwd: K generation rounds, then training on B_train prompts.

    ``train_seq_len``: the mean length of the trained rows where it differs from the generated rows'
    ``seq_len`` (the study logs one S; default: ``seq_len``).
    """
    gen = _tokens_cost(m, _positive("seq_len", seq_len))
    train = gen if train_seq_len is None else _tokens_cost(m, _positive("train_seq_len", train_seq_len))
    return (gen_rounds * gen_batch * gen + 3.0 * train_batch * train) * group


def luffy_step_flops(m: ModelConstants, prompts: int, seq_on: float, seq_off: float,
                     group: int = 7, off_policy: int = 1) -> float:
    """LUFFY / SRFT: 4 * [B*G*S_on + B*N*S_off] * F_fwd (G on-policy rollouts + N expert traces)."""
    return 4.0 * prompts * (group * _tokens_cost(m, _positive("seq_on", seq_on))
                            + off_policy * _tokens_cost(m, _positive("seq_off", seq_off)))


def upt_step_flops(m: ModelConstants, prompts: int, group: int, seq_on: float, n_on: int,
                   seq_off: float, n_off: int) -> float:
    """UPT: per prompt G*S_on*F (rollouts) + 3*(N_on*S_on + N_off*S_off)*F (training), times B."""
    on = _tokens_cost(m, _positive("seq_on", seq_on))
    off = _tokens_cost(m, seq_off) if n_off else 0.0
    return prompts * (group * on + 3.0 * (n_on * on + n_off * off))


def prefix_rft_step_flops(m: ModelConstants, prompts: int, group: int, seq_len: float) -> float:
    """Prefix-RFT is costed as GRPO (the prefix tokens are part of S)."""
    return grpo_step_flops(m, prompts, group, seq_len)


def chord_step_flops(m: ModelConstants, prompts: int, group: int, seq_on: float, seq_off: float,
                     off_policy: int = 1) -> float:
    """CHORD: GRPO over the G rollouts plus a training pass (3x) over the B*N expert rows of its SFT term."""
    return grpo_step_flops(m, prompts, group, seq_on) + 3.0 * prompts * off_policy * _tokens_cost(
        m, _positive("seq_off", seq_off))


def sft_compute_ef(m: ModelConstants, batch: int, seq_len: float, steps: int) -> float:
    """Cumulative SFT compute after ``steps`` steps, in EF."""
    return steps * sft_step_flops(m, batch, seq_len) / EF


def _field(rec: Mapping[str, Any], key: str, index: int, default: Any = None) -> float:
    value = rec.get(key, default)
    if value is None:
        raise ValueError(f"per-step lengths record {index}: missing field {key!r} "
                         f"(has {sorted(rec)})")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"per-step lengths record {index}: field {key!r} is not a number: "
                         f"{value!r}") from None


def rl_step_flops(m: ModelConstants, method: str, rec: Mapping[str, Any], index: int = 0) -> float:
    """FLOPs of one RL step from its logged lengths, by the method's formula (``plasticity.methods``).

    Record fields: ``prompts`` (prompts per generation round, B or B_gen), ``group`` (G),
    ``mean_prompt_tokens`` and ``mean_completion_tokens`` (S = their sum), and per formula:
    dapo ``gen_rounds`` (K, default 1), ``train_prompts`` (kept groups, default ``prompts``) plus
    ``masked_groups`` (missing slots trained as masked rows, default 0): B_train, and
    ``mean_train_prompt_tokens`` + ``mean_train_completion_tokens`` (S of the trained rows, default S);
    luffy (LUFFY, SRFT) ``off_policy`` (N, default 1) and ``mean_offpolicy_tokens`` (S_off: prompt +
    expert trace, default S); upt ``n_on`` (default G), ``n_off`` (default 1), ``mean_offpolicy_tokens``;
    chord as luffy (G the rollouts, N the SFT rows per prompt). The synchronized methods' trainer logs
    S_on over the rollouts and S_off over the expert rows (``train.sync_trainer``).
    """
    from plasticity.methods import METHODS

    if method not in METHODS:
        raise ValueError(f"unknown RL method {method!r}; expected one of {sorted(METHODS)}")
    formula = METHODS[method].flops
    prompts = _field(rec, "prompts", index)
    group = _field(rec, "group", index)
    seq = _field(rec, "mean_prompt_tokens", index) + _field(rec, "mean_completion_tokens", index)
    if formula == "dapo":
        train_seq = (_field(rec, "mean_train_prompt_tokens", index) + _field(rec, "mean_train_completion_tokens", index)
                     if "mean_train_completion_tokens" in rec else seq)
        return dapo_step_flops(m, _field(rec, "gen_rounds", index, 1), prompts,
                               _field(rec, "train_prompts", index, prompts) + _field(rec, "masked_groups", index, 0),
                               group, seq, train_seq)
    if formula == "grpo":
        return grpo_step_flops(m, prompts, group, seq)
    if formula == "prefix_rft":
        return prefix_rft_step_flops(m, prompts, group, seq)
    if formula == "luffy":
        return luffy_step_flops(m, prompts, seq, _field(rec, "mean_offpolicy_tokens", index, seq),
                                group=group, off_policy=_field(rec, "off_policy", index, 1))
    if formula == "upt":
        return upt_step_flops(m, prompts, group, seq, _field(rec, "n_on", index, group),
                              _field(rec, "mean_offpolicy_tokens", index, seq),
                              _field(rec, "n_off", index, 1))
    if formula == "chord":
        return chord_step_flops(m, prompts, group, seq, _field(rec, "mean_offpolicy_tokens", index, seq),
                                off_policy=_field(rec, "off_policy", index, 1))
    raise ValueError(f"RL method {method!r}: no FLOPs formula {formula!r} yet")


def rl_compute_ef(m: ModelConstants, method: str,
                  per_step_lengths: Sequence[Mapping[str, Any]]) -> list[float]:
    """Cumulative RL compute (EF) after each step, from the lengths logged at every step."""
    total, out = 0.0, []
    for i, rec in enumerate(per_step_lengths):
        total += rl_step_flops(m, method, rec, i)
        out.append(total / EF)
    return out


# ----------------------------------------------------------------------------------------- CLI

def resolve_model(name: str | None, model_dir: str | None, vocab: int | None = None) -> ModelConstants:
    """Constants from ``--model-dir`` (its config.json) or a registry name."""
    if model_dir:
        return ModelConstants.from_model_dir(model_dir)
    if name is None:
        raise ValueError("give --model NAME or --model-dir DIR")
    if name == "tiny" and vocab:
        return tiny_constants(vocab)
    try:
        return MODEL_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_REGISTRY)}") from None


def _read_lengths(path: str) -> list[dict]:
    """Per-step length records: a JSON list, a JSON object with ``steps``, or JSON lines."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = None
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("steps"), list):
        return obj["steps"]
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
    return records


def _parser() -> argparse.ArgumentParser:
    from plasticity.methods import METHODS

    p = argparse.ArgumentParser(prog="python -m plasticity flops",
                                description="FLOPs of an SFT or RL run (PAPER 2.6); prints JSON.")
    sub = p.add_subparsers(dest="phase", required=True)
    for name in ("sft", "rl"):
        s = sub.add_parser(name, help=f"{name.upper()} compute")
        g = s.add_mutually_exclusive_group(required=True)
        g.add_argument("--model", choices=sorted(MODEL_REGISTRY), help="registry model")
        g.add_argument("--model-dir", help="model directory whose config.json gives the constants")
        s.add_argument("--vocab", type=int, help="vocabulary size for --model tiny")
        s.add_argument("--steps", type=int, default=1, help="number of steps (default 1)")
        if name == "sft":
            s.add_argument("--batch", type=int, required=True, help="sequences per step")
            s.add_argument("--seq-len", type=float, required=True,
                           help="mean prompt+response tokens per sequence")
        else:
            s.add_argument("--method", choices=sorted(METHODS), required=True)
            s.add_argument("--lengths", help="per-step length records (JSON list / {'steps': [...]} / "
                                             "JSON lines); overrides the constant-length options")
            s.add_argument("--prompts", type=int, help="prompts per (generation) round")
            s.add_argument("--group", type=int, default=8, help="rollouts per prompt")
            s.add_argument("--prompt-tokens", type=float, help="mean prompt tokens")
            s.add_argument("--completion-tokens", type=float, help="mean completion tokens")
            s.add_argument("--gen-rounds", type=float, default=1, help="DAPO generation rounds per step")
            s.add_argument("--train-prompts", type=int, help="DAPO prompts trained on per step")
            s.add_argument("--offpolicy-tokens", type=float, help="mean off-policy (expert) tokens")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        m = resolve_model(args.model, args.model_dir, args.vocab)
        if args.phase == "sft":
            step = sft_step_flops(m, args.batch, args.seq_len)
            out = {"phase": "sft", "ef_per_step": step / EF, "ef": args.steps * step / EF,
                   "steps": args.steps, "flops_per_token": forward_flops_per_token(m, args.seq_len)}
        else:
            if args.lengths:
                records = _read_lengths(args.lengths)
            else:
                if args.prompts is None or args.prompt_tokens is None or args.completion_tokens is None:
                    raise ValueError("rl needs --lengths FILE, or --prompts, --prompt-tokens and "
                                     "--completion-tokens")
                rec = {"prompts": args.prompts, "group": args.group,
                       "mean_prompt_tokens": args.prompt_tokens,
                       "mean_completion_tokens": args.completion_tokens,
                       "gen_rounds": args.gen_rounds, "train_prompts": args.train_prompts,
                       "mean_offpolicy_tokens": args.offpolicy_tokens}
                records = [{k: v for k, v in rec.items() if v is not None}] * args.steps
            cumulative = rl_compute_ef(m, args.method, records)
            out = {"phase": "rl", "method": args.method, "steps": len(records),
                   "ef": cumulative[-1] if cumulative else 0.0, "cumulative_ef": cumulative}
    except (ValueError, FileNotFoundError) as exc:
        print(f"flops: error: {exc}", file=sys.stderr)
        return 2
    out["model"] = asdict(m)
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
