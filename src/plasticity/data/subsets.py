"""Subsets: build every named data set of the config (SFT sets, the validation set, RL and MIX).

Reads:  IN/{trajectories,rl_matched,rl_prompts}.parquet (the difficulty stage's output) and the
        config section ``data.sets`` {name: {kind, size, min_win_rate, max_win_rate, source,
        from_set, max_response_tokens}}.
Writes: OUT/<name>.parquet per set (schema.TRAJECTORY for SFT kinds and val, schema.RL_PROMPT for
        rl, schema.MIX for mix) and OUT/manifest.json (rows and pool size per set).

Run by hand:
    python -m plasticity subsets --config sets.json --in results/data/difficulty --out results/data/sets

Kinds (the study's names are config names with these kinds, e.g. Val-199 = val/199, SFT889K = all,
Uniform102K = uniform/102000, Easy102K = easy/102000, Hard102K = hard/102000, S1K = source/s1k,
RL62K = rl, MIX37K = mix/8192 tokens):
  val      ``size`` rows drawn uniformly from every trajectory; drawn first and excluded from every
           other SFT set, so validation never overlaps training
  all      every trajectory except val
  uniform  ``size`` rows drawn uniformly (without val)
  easy     ``size`` rows from the pool min_win_rate <= win_rate_small <= max_win_rate (default 1..1)
  hard     ``size`` rows from the pool min_win_rate <= win_rate_small <= max_win_rate (default 0..0.25)
  source   every row (or ``size`` rows) of one source, e.g. S1K
  rl       ``size`` RL prompts drawn uniformly (all when no size)
  mix      RL prompts with a matched expert trajectory: the SFT row with the same normalised prompt,
           which the filter stage's set difference kept aside in rl_matched.parquet, of at most
           ``max_response_tokens`` tokens. Prompts come from the (single) rl set when there is one,
           as MIX37K's come from RL62K, else from every RL prompt; ``size`` draws, else all.
``source`` restricts any SFT kind's pool to one source (e.g. amthink-40m); ``from_set`` restricts a
pool to the rows of another named set. Rows with an unknown win rate are never easy or hard.

Each set draws with its own generator seeded from (seed, set name), so adding a set never changes
another, and rows are written in input order. Asking for more rows than a pool holds is an error
naming the set, the size asked and the rows available. Trajectory sets are written in one streaming
pass over the input (memory: a few bytes per row plus one record batch).
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from plasticity import schema as S
from plasticity.data.filters import MATCHED
from plasticity.data.tables import InputDigests, TableWriter, iter_batches, num_rows, read_table
from plasticity.data.text import normalise_prompt
from plasticity.io import atomic_path, write_manifest

STAGE = "subsets"
SFT_KINDS = ("val", "all", "uniform", "easy", "hard", "source")
DEFAULT_WIN_RATE = {"easy": (1.0, 1.0), "hard": (0.0, 0.25)}


class PoolTooSmall(ValueError):
    """A set asks for more rows than its pool holds."""


def set_rng(seed: int, name: str):
    import numpy as np

    tag = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")
    return np.random.default_rng([seed, tag])


def _draw(pool: Any, size: int | None, seed: int, name: str, what: str) -> Any:
    """Sorted positions of ``size`` rows drawn from ``pool`` (an index array); all if no size."""
    import numpy as np

    if size is None:
        return pool
    if size > len(pool):
        raise PoolTooSmall(f"set {name!r}: asked for {size} rows but the pool ({what}) holds only {len(pool)}")
    return np.sort(set_rng(seed, name).choice(pool, size=size, replace=False))


def _order(sets: dict[str, dict[str, Any]]) -> list[str]:
    """Val first, then every set after the set named by its ``from_set``."""
    done: list[str] = [n for n, s in sets.items() if s["kind"] == "val"]
    pending = [n for n in sets if n not in done]
    while pending:
        ready = [n for n in pending if not sets[n].get("from_set") or sets[n]["from_set"] in done]
        if not ready:
            raise ValueError(f"sets {pending}: from_set refers to an unknown set or forms a cycle")
        done += ready
        pending = [n for n in pending if n not in ready]
    return done


def select_trajectories(sets: dict[str, dict[str, Any]], meta: dict[str, Any], seed: int) -> dict[str, Any]:
    """Row indices (into trajectories.parquet) of every SFT set; ``meta`` holds numpy columns
    ``source`` and ``win_rate_small``."""
    import numpy as np

    n = len(meta["source"])
    everything = np.arange(n)
    chosen: dict[str, Any] = {}
    in_val = np.zeros(n, dtype=bool)
    for name in _order(sets):
        spec = sets[name]
        kind = spec["kind"]
        if kind not in SFT_KINDS:
            continue
        mask = np.ones(n, dtype=bool) if kind == "val" else ~in_val
        what = [kind] + ([] if kind == "val" else ["val excluded"])
        if spec.get("source"):
            mask &= meta["source"] == spec["source"]
            what.append(f"source {spec['source']}")
        if spec.get("from_set"):
            if spec["from_set"] not in chosen:
                raise ValueError(f"set {name!r}: from_set {spec['from_set']!r} is not a trajectory set")
            inside = np.zeros(n, dtype=bool)
            inside[chosen[spec["from_set"]]] = True
            mask &= inside
            what.append(f"from {spec['from_set']}")
        if kind in ("easy", "hard") or spec.get("min_win_rate") is not None or spec.get("max_win_rate") is not None:
            lo_default, hi_default = DEFAULT_WIN_RATE.get(kind, (0.0, 1.0))
            lo = spec["min_win_rate"] if spec.get("min_win_rate") is not None else lo_default
            hi = spec["max_win_rate"] if spec.get("max_win_rate") is not None else hi_default
            wr = meta["win_rate_small"]
            with np.errstate(invalid="ignore"):
                mask &= ~np.isnan(wr) & (wr >= lo) & (wr <= hi)
            what.append(f"win_rate_small in [{lo}, {hi}]")
        size = spec.get("size") if kind != "all" else None
        chosen[name] = _draw(everything[mask], size, seed, name, ", ".join(what))
        if kind == "val":
            in_val[chosen[name]] = True
    return chosen


def _read_meta(path: Path) -> dict[str, Any]:
    import numpy as np

    table = read_table(path, S.TRAJECTORY, columns=["source", "win_rate_small"])
    wr = table.column("win_rate_small").to_numpy(zero_copy_only=False)
    return {"source": np.asarray(table.column("source").to_pylist(), dtype=object),
            "win_rate_small": np.asarray(wr, dtype=np.float64)}


def _write_selected(path: Path, schema: pa.Schema, selections: dict[str, Any], out: Path) -> dict[str, int]:
    """One streaming pass over ``path`` writing each selection (sorted row indices) to its file."""
    import numpy as np
    from tqdm import tqdm

    total = num_rows(path)
    masks = {}
    for name, rows in selections.items():
        mask = np.zeros(total, dtype=bool)
        mask[rows] = True
        masks[name] = mask
    writers = {name: TableWriter(out / f"{name}.parquet", schema) for name in selections}
    try:
        start = 0
        with tqdm(total=total, desc=f"subsets {path.name}", unit="rows", mininterval=2.0, leave=False) as bar:
            for batch in iter_batches(path, schema):
                stop = start + batch.num_rows
                table = pa.Table.from_batches([batch]).select(schema.names)
                for name, mask in masks.items():
                    part = mask[start:stop]
                    if part.any():
                        writers[name].add_table(table.filter(pa.array(part)))
                start = stop
                bar.update(batch.num_rows)
    finally:
        for writer in writers.values():
            writer.close()
    return {name: writer.count for name, writer in writers.items()}


def _rl_and_mix(sets: dict[str, dict[str, Any]], in_dir: Path, out: Path, seed: int) -> dict[str, Any]:
    import numpy as np

    rl_table = read_table(in_dir / "rl_prompts.parquet", S.RL_PROMPT).select(S.RL_PROMPT.names)
    counts: dict[str, Any] = {}
    chosen: dict[str, Any] = {}
    for name, spec in sets.items():
        if spec["kind"] == "rl":
            chosen[name] = _draw(np.arange(rl_table.num_rows), spec.get("size"), seed, name, "RL prompts")
            with TableWriter(out / f"{name}.parquet", S.RL_PROMPT) as writer:
                writer.add_table(rl_table.take(pa.array(chosen[name], pa.int64())))
            counts[name] = {"kind": "rl", "rows": writer.count, "pool": rl_table.num_rows}
    rl_sets = [n for n, s in sets.items() if s["kind"] == "rl"]
    for name, spec in sets.items():
        if spec["kind"] != "mix":
            continue
        parent = spec.get("from_set") or (rl_sets[0] if len(rl_sets) == 1 else None)
        if parent is not None and parent not in chosen:
            raise ValueError(f"set {name!r}: from_set {parent!r} is not a set of kind rl")
        rows = chosen[parent] if parent is not None else np.arange(rl_table.num_rows)
        prompts = rl_table.column("prompt").to_pylist()
        by_key = {normalise_prompt(prompts[i]): int(i) for i in rows}
        limit = spec.get("max_response_tokens")
        pool: list[tuple[int, str]] = []                 # (rl row, response) in rl_matched order
        for batch in iter_batches(in_dir / "rl_matched.parquet", MATCHED,
                                  columns=["prompt", "response", "response_tokens"]):
            for prompt, response, tokens in zip(*(batch.column(c).to_pylist() for c in
                                                  ("prompt", "response", "response_tokens"))):
                i = by_key.get(normalise_prompt(prompt))
                if i is not None and (limit is None or tokens <= limit):
                    pool.append((i, response))
        picks = _draw(np.arange(len(pool)), spec.get("size"), seed, name,
                      f"RL prompts{f' of {parent}' if parent else ''} with a matched trajectory"
                      f"{f' <= {limit} tokens' if limit else ''}")
        take = [pool[int(k)] for k in picks]
        table = rl_table.take(pa.array([i for i, _ in take], pa.int64()))
        table = table.append_column("response", pa.array([r for _, r in take], pa.string()))
        with TableWriter(out / f"{name}.parquet", S.MIX) as writer:
            writer.add_table(table)
        counts[name] = {"kind": "mix", "rows": writer.count, "pool": len(pool), "from_set": parent}
    return counts


def run(sets: dict[str, dict[str, Any]], in_dir: str | Path, out: str | Path, *, seed: int) -> dict[str, Any]:
    in_dir = Path(in_dir)
    for name, spec in sets.items():
        if spec.get("kind") not in SFT_KINDS + ("rl", "mix"):
            raise ValueError(f"set {name!r}: unknown kind {spec.get('kind')!r}")
    if sum(s["kind"] == "val" for s in sets.values()) > 1:
        raise ValueError("at most one set of kind 'val' (the SFT validation set)")
    path = in_dir / "trajectories.parquet"
    digests = InputDigests({"in": in_dir})
    meta = _read_meta(path)
    chosen = select_trajectories(sets, meta, seed)
    with atomic_path(out) as tmp:
        written = _write_selected(path, S.TRAJECTORY, chosen, tmp)
        counts: dict[str, Any] = {name: {"kind": sets[name]["kind"], "rows": written[name]} for name in chosen}
        counts.update(_rl_and_mix(sets, in_dir, tmp, seed))
        write_manifest(tmp, stage=STAGE, config=sets, seed=seed,
                       extra={"inputs": digests.manifest_inputs(), "counts": dict(sorted(counts.items())),
                              "trajectories_in": len(meta["source"])})
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plasticity subsets", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help='JSON: {"seed": int, "sets": {...}}')
    parser.add_argument("--in", dest="in_dir", required=True, help="the difficulty stage's output")
    parser.add_argument("--out", required=True, help="output directory of the named sets")
    args = parser.parse_args(argv)
    from plasticity.data.tables import load_stage_config

    seed, sets = load_stage_config(args.config, "sets")
    try:
        counts = run(sets, args.in_dir, args.out, seed=seed)
    except PoolTooSmall as exc:
        parser.exit(2, f"plasticity subsets: error: {exc}\n")
    print(json.dumps({"stage": STAGE, **{n: c["rows"] for n, c in sorted(counts.items())}}))
    return 0
