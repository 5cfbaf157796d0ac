"""Table 2: the RL settings of every paradigm as its runs used them (PAPER 2.5, the study's Table 2).

Library (``tables.table2`` renders it). Reads each RL branch directory's ``manifest.json`` (the resolved
``rl`` section the stage ran, its ``precision`` as run and ``world_size``) and ``branch.json`` (the
method, the start); the loss recipe of each method (clipping, advantage normalisation, entropy bonus,
dynamic sampling, aggregation) comes from the registry the stage trained with (``plasticity.methods``).

One column per method, in the registry's order; one row per setting, the study's rows first. Where the
branches of one method ran with different values (the grid's DAPO_dc at 60 steps, a paradigm branch at
20), the cell lists each value with the starts that used it, so no run's effective value is hidden.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from plasticity.methods import METHODS, Method


class SettingsError(ValueError):
    """A branch directory without the files Table 2 reads; the message names the file."""


def read_branch(branch_dir: str | Path) -> dict:
    """{"method", "start", "rl", "precision", "world_size"} of one finished RL branch."""
    branch_dir = Path(branch_dir)
    try:
        manifest = json.loads((branch_dir / "manifest.json").read_text(encoding="utf-8"))
        meta = json.loads((branch_dir / "branch.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SettingsError(f"{exc.filename}: not found (an unfinished RL branch?)") from None
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{branch_dir}: invalid JSON ({exc.msg})") from None
    rl = (manifest.get("config") or {}).get("rl")
    if not isinstance(rl, dict) or "method" not in meta:
        raise SettingsError(f"{branch_dir}/manifest.json: field 'config.rl' missing, or branch.json "
                            "without 'method'")
    start = "base" if meta.get("sft_data") == "none" else f"{meta.get('sft_data')}@{meta.get('resolved_step')}"
    return {"method": meta["method"], "start": start, "rl": rl,
            "precision": manifest.get("precision", "not recorded"), "world_size": manifest.get("world_size", 1)}


def _clip(m: Method) -> str:
    if m.sync is not None and not m.sync.clip:
        return "none (no ratio clipping)"
    text = (f"clip-higher {m.epsilon:g} / {m.epsilon_high:g}" if m.epsilon_high > m.epsilon
            else f"symmetric {m.epsilon:g}")
    return text + (f", dual-clip c = {m.delta:g}" if m.delta else "")


def _aggregation(m: Method, rl: dict) -> str:
    if m.sync is not None:
        return {"seq_sum_over_lmax": "sequence sum / L_max", "token_mean": "token mean"}.get(
            rl.get("sync", {}).get("agg"), str(rl.get("sync", {}).get("agg")))
    return "token mean" if m.loss_type == "dapo" else m.loss_type


def _warmup(rl: dict) -> str:
    if rl.get("warmup_ratio") is not None:
        return f"ratio {rl['warmup_ratio']:g}"
    return str(rl.get("warmup_steps") or 0)


def _dynamic(m: Method, rl: dict) -> str:
    if not m.dynamic_sampling:
        return "no"
    return f"keep groups with 1..G-1 correct, refill up to {rl['max_gen_rounds']} rounds"


# (row label, value of one branch: (method, branch) -> text); the study's Table 2 rows first
ROWS: list[tuple[str, Callable[[Method, dict], str]]] = [
    ("Paradigm", lambda m, b: "Syn-SFT-RL" if m.paradigm == "sync" else "RL"),
    ("Prompts per RL step (batch)", lambda m, b: str(b["rl"]["prompts_per_step"])),
    ("Prompts per update (update batch)",
     lambda m, b: str(b["rl"].get("prompts_per_update") or b["rl"]["prompts_per_step"])),
    ("Rollouts per prompt", lambda m, b: str(b["rl"]["num_generations"])),
    ("Max response (tokens)", lambda m, b: str(b["rl"]["max_completion_length"])),
    ("Learning rate", lambda m, b: f"{b['rl']['lr']:g}"),
    ("Warmup steps", lambda m, b: _warmup(b["rl"])),
    ("LR schedule", lambda m, b: str(b["rl"].get("scheduler"))),
    ("Weight decay", lambda m, b: f"{b['rl'].get('weight_decay', 0):g}"),
    ("Adam betas", lambda m, b: ", ".join(f"{v:g}" for v in b["rl"].get("adam_betas", ()))),
    ("Entropy coefficient", lambda m, b: f"{m.entropy_coef:g}"),
    ("KL loss", lambda m, b: "removed"),
    ("Std in the group advantage", lambda m, b: "yes" if m.scale_rewards == "group" else "removed"),
    ("Loss aggregation", lambda m, b: _aggregation(m, b["rl"])),
    ("Clipping", lambda m, b: _clip(m)),
    ("Dynamic sampling", lambda m, b: _dynamic(m, b["rl"])),
    ("Expert trajectory in the group", lambda m, b: m.sync.expert_row if m.sync else "–"),
    ("Rollout temperature", lambda m, b: f"{b['rl']['temperature']:g}"),
    ("RL steps", lambda m, b: str(b["rl"]["steps"])),
    ("Evaluation every (steps)", lambda m, b: str(b["rl"]["eval_every"])),
    ("Max gradient norm", lambda m, b: f"{b['rl'].get('max_grad_norm', 1.0):g}"),
    ("Precision (as run)", lambda m, b: str(b["precision"])),
    ("Processes", lambda m, b: str(b["world_size"])),
]


def settings_table(branches: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of Table 2 from ``read_branch`` results: one column per method."""
    if not branches:
        raise SettingsError("table2 needs at least one finished RL branch (--branch DIR)")
    unknown = sorted({b["method"] for b in branches} - set(METHODS))
    if unknown:
        raise SettingsError(f"RL method(s) {unknown} are not in plasticity.methods")
    methods = [name for name in METHODS if any(b["method"] == name for b in branches)]
    rows = [["Starts", *[", ".join(sorted({b["start"] for b in branches if b["method"] == name}))
                         for name in methods]]]
    for label, value in ROWS:
        row = [label]
        for name in methods:
            by_value: dict[str, list[str]] = {}
            for b in (b for b in branches if b["method"] == name):
                by_value.setdefault(value(METHODS[name], b), []).append(b["start"])
            row.append(next(iter(by_value)) if len(by_value) == 1 else "; ".join(
                f"{v} ({', '.join(sorted(starts))})" for v, starts in by_value.items()))
        rows.append(row)
    return ["Setting", *[METHODS[name].title for name in methods]], rows
