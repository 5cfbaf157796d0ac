"""The benchmark registry and the ``benchmarks`` stage (DATASETS.md sections 5 and 6, PAPER.md 3).

Registry: one frozen ``BenchmarkSpec`` per benchmark the study uses (GSM8K, MATH-500, Minerva
OCW, OlympiadBench, AIME24, AIME25), the study's cleaned suite (``retu_benchmark``, 2,157
problems), the OOD sets (GPQA-Diamond, ARC-Challenge) and the six embedded suites of the
miniature (``mini_*``), generated locally from ``plasticity.problems``.

Pinning. Hub entries name hub id, config, split, the file(s) inside the repository and the
expected count. Their revision and sha256 could not be read from here (no network when this
registry was written), so they are recorded as ``None`` rather than guessed. An unpinned entry is
*refused* unless ``--allow-unpinned`` is given; then the stage computes each source file's
sha256, prints it and writes it to ``benchmarks.lock.json`` next to the outputs, so the first run
on a cluster pins the files it used (copy the values into the registry to make them binding).
A pinned sha256 that does not match is always an error. Count mismatches against the registry are
errors for pinned entries and warnings (recorded in the lock file) for unpinned ones.

Stage:
    python -m plasticity benchmarks --config CFG.json --out DIR [--source-dir DIR] [--allow-unpinned]

CFG.json is ``{"seed": int, "benchmarks": [names...]}``. Writes DIR/<name>.parquet
(``schema.BENCHMARK``), DIR/benchmarks.lock.json when unpinned files were used, and
DIR/manifest.json last (per benchmark: parquet sha256, source sha256s, count, count per role).
Local files are looked up as SOURCE_DIR/<name>/<file> or SOURCE_DIR/<file>; without a local
copy a hub entry is fetched with ``huggingface_hub`` at its pinned revision.

Golds: each row carries the normalised ``answer``, the file's ``answer_raw`` where they differ,
``answers`` (a multi-answer gold, graded as a set), ``unit`` and ``tolerance``.
``references(table)`` turns them into the ``grading.Reference`` objects every grading caller
uses (the grade stage, in-memory evaluation, and the RL stage's evaluation should too).
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MANIFEST_KEY = "benchmarks"
LOCK_FILE = "benchmarks.lock.json"
ROLES = ("gsm8k", "math", "minerva", "olympiad_bench", "aime", "aime25", "gpqa", "arc")


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    role: str | None            # the study's key; None = per row (retu_benchmark's data_source)
    source: str                 # hub | file | embedded
    format: str                 # native format name (a key of loaders.PARSERS) or "embedded"
    count: int                  # expected number of problems
    hub_id: str | None = None
    config: str | None = None
    split: str | None = None
    files: tuple[str, ...] = ()  # file(s) inside the hub repository (or the local directory)
    revision: str | None = None  # pinned hub revision (commit sha); None = unknown, see docstring
    sha256: tuple[str, ...] | None = None  # sha256 of each of ``files``; None = unknown
    level: int | None = None     # embedded suites: operands per problem
    role_counts: tuple[tuple[str, int], ...] = ()  # expected per-role counts (mixed suites)
    notes: str = ""

    @property
    def pinned(self) -> bool:
        return self.source == "embedded" or self.sha256 is not None


def _hub(name: str, role: str | None, fmt: str, count: int, hub_id: str, files: tuple[str, ...],
         config: str | None = None, split: str | None = None, **kw: Any) -> BenchmarkSpec:
    return BenchmarkSpec(name=name, role=role, source="hub", format=fmt, count=count, hub_id=hub_id,
                         config=config, split=split, files=files, **kw)


def _mini(name: str, role: str, level: int, count: int) -> BenchmarkSpec:
    return BenchmarkSpec(name=name, role=role, source="embedded", format="embedded", count=count, level=level)


REGISTRY: dict[str, BenchmarkSpec] = {s.name: s for s in [
    _hub("gsm8k", "gsm8k", "gsm8k", 1319, "openai/gsm8k", ("main/test-00000-of-00001.parquet",),
         config="main", split="test"),
    _hub("math500", "math", "math500", 500, "HuggingFaceH4/MATH-500", ("test.jsonl",), split="test"),
    # The 272 MIT-OCW problems (Lewkowycz et al.); NOT lm-eval's ``minerva_math``, which is Hendrycks MATH.
    _hub("minerva", "minerva", "minerva", 272, "knoveleng/Minerva-Math", ("data/train-00000-of-00001.parquet",),
         split="train", notes="same 272 problems as Qwen2.5-Math evaluation/data/minerva_math/test.jsonl"),
    _hub("olympiadbench", "olympiad_bench", "olympiadbench", 675, "Hothan/OlympiadBench",
         ("OlympiadBench/OE_TO_maths_en_COMP/OE_TO_maths_en_COMP.parquet",),
         config="OE_TO_maths_en_COMP", split="train"),
    _hub("aime24", "aime", "aime", 30, "HuggingFaceH4/aime_2024", ("data/train-00000-of-00001.parquet",),
         split="train"),
    _hub("aime25", "aime25", "aime", 30, "opencompass/AIME2025", ("aime2025-I.jsonl", "aime2025-II.jsonl"),
         config="AIME2025-I+AIME2025-II", split="test"),
    _hub("retu_benchmark", None, "verl_rl", 2157, "Daniel21Ding/benchmark", ("benchmark.parquet",),
         split="train", role_counts=(("gsm8k", 1317), ("olympiad_bench", 291), ("minerva", 262),
                                     ("math", 237), ("aime", 25), ("aime25", 25)),
         notes="the study's decontaminated in-domain suite; AIME-expanded copies collapse to unique rows"),
    _hub("gpqa_diamond", "gpqa", "gpqa", 198, "Idavidrein/gpqa", ("gpqa_diamond.csv",),
         config="gpqa_diamond", split="train", notes="gated; options shuffled with a seed keyed by Record ID"),
    _hub("arc_challenge", "arc", "arc", 1172, "allenai/ai2_arc", ("ARC-Challenge/test-00000-of-00001.parquet",),
         config="ARC-Challenge", split="test"),
    # The miniature's suites, in the roles of the study's six (config.yaml eval.benchmarks).
    _mini("mini_gsm8k", "gsm8k", 2, 60),
    _mini("mini_math", "math", 3, 50),
    _mini("mini_minerva", "minerva", 4, 50),
    _mini("mini_olympiad", "olympiad_bench", 5, 50),
    _mini("mini_aime24", "aime", 6, 20),
    _mini("mini_aime25", "aime25", 6, 20),
]}

# Embedded suites that must not share a problem: the later one draws around the earlier ones.
_DISJOINT_AFTER = {"mini_aime25": ("mini_aime24",)}


class RegistryError(ValueError):
    pass


def get(name: str) -> BenchmarkSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise RegistryError(f"unknown benchmark {name!r}; registered: {sorted(REGISTRY)}") from None


# ----------------------------------------------------------------------------------------------
# Building one benchmark table

def _locate(spec: BenchmarkSpec, source_dir: Path | None, allow_unpinned: bool) -> list[Path]:
    from plasticity.eval.loaders import fetch_from_hub

    paths = []
    for name in spec.files:
        local = None
        if source_dir is not None:
            for candidate in (source_dir / spec.name / name, source_dir / spec.name / Path(name).name,
                              source_dir / name, source_dir / Path(name).name):
                if candidate.is_file():
                    local = candidate
                    break
        if local is None:
            if spec.source != "hub":
                raise RegistryError(f"benchmark {spec.name}: file {name} not found under {source_dir}")
            if spec.revision is None and not allow_unpinned:
                raise RegistryError(f"benchmark {spec.name}: hub entry {spec.hub_id} has no pinned revision; "
                                    "pass --allow-unpinned to fetch the current one and lock its sha256")
            local = fetch_from_hub(spec.hub_id, name, spec.revision)
        paths.append(local)
    return paths


def build_rows(spec: BenchmarkSpec, seed: int, source_dir: Path | None = None, allow_unpinned: bool = False,
               built: dict[str, list] | None = None) -> tuple[list[tuple[str, str, str, str]], dict]:
    """(rows, provenance) for one benchmark; provenance holds source sha256s and warnings."""
    from plasticity.eval import loaders
    from plasticity.io import sha256_file

    if spec.source == "embedded":
        exclude = set()
        for other in _DISJOINT_AFTER.get(spec.name, ()):
            rows_other = (built or {}).get(other) or build_rows(get(other), seed)[0]
            exclude |= {r[1] for r in rows_other}
        rows = loaders.generate_embedded(spec.name, spec.role, spec.level, spec.count, seed, exclude)
        return rows, {"source": "embedded", "suite_seed": loaders.suite_seed(seed, spec.name)}

    if not spec.pinned and not allow_unpinned:
        raise RegistryError(f"benchmark {spec.name}: no pinned sha256 in the registry; pass --allow-unpinned "
                            f"to use the files as found (their sha256 is then written to {LOCK_FILE})")
    paths = _locate(spec, source_dir, allow_unpinned)
    digests = [sha256_file(p) for p in paths]
    warnings = []
    if spec.sha256 is not None and tuple(digests) != tuple(spec.sha256):
        raise RegistryError(f"benchmark {spec.name}: sha256 of {[str(p) for p in paths]} is {digests}, "
                            f"registry pins {list(spec.sha256)}")
    parser = loaders.PARSERS[spec.format]
    rows = []
    for path in paths:
        rows += parser(loaders.read_rows(path), spec.name, spec.role or "", str(path), seed)
    ids = Counter(r[0] for r in rows)
    dupes = [k for k, v in ids.items() if v > 1]
    if dupes:
        raise RegistryError(f"benchmark {spec.name}: duplicate problem ids {dupes[:5]} in {[str(p) for p in paths]}")
    if len(rows) != spec.count:
        message = f"benchmark {spec.name}: {len(rows)} problems, registry expects {spec.count}"
        if spec.pinned:
            raise RegistryError(message)
        warnings.append(message)
        print(f"warning: {message}", file=sys.stderr)
    return rows, {"source": spec.source, "files": {str(p): d for p, d in zip(paths, digests)},
                  "warnings": warnings}


def rows_to_table(rows: list, benchmark: str):
    """A ``schema.BENCHMARK`` table of ``loaders.Row`` tuples, sorted by problem id."""
    import pyarrow as pa

    from plasticity import schema
    from plasticity.eval.loaders import Row

    rows = sorted((Row(*r) for r in rows), key=lambda r: r.problem_id)
    return pa.Table.from_pydict({
        "problem_id": [r.problem_id for r in rows], "benchmark": [benchmark] * len(rows),
        "role": [r.role for r in rows], "prompt": [r.prompt for r in rows], "answer": [r.answer for r in rows],
        "answer_raw": [r.answer_raw for r in rows], "answers": [list(r.answers) or None for r in rows],
        "unit": [r.unit for r in rows], "tolerance": [r.tolerance for r in rows],
    }, schema=schema.BENCHMARK)


def references(table: Any) -> list:
    """One ``grading.Reference`` per row of a ``schema.BENCHMARK`` table: the gold with its set of
    answers, unit and tolerance, as the grade stage and the RL stage's in-loop evaluation grade it.
    Tables written before these columns existed (or built without them) give plain golds."""
    from plasticity.grading import Reference

    names = set(table.column_names)
    n = table.num_rows

    def column(name: str) -> list:
        return table.column(name).to_pylist() if name in names else [None] * n

    return [Reference(answer, tuple(answers or ()), unit, tolerance)
            for answer, answers, unit, tolerance in zip(column("answer"), column("answers"), column("unit"),
                                                        column("tolerance"))]


# ----------------------------------------------------------------------------------------------
# The stage

def run(config: dict, out_dir: str | os.PathLike, source_dir: str | os.PathLike | None = None,
        allow_unpinned: bool = False) -> dict:
    from plasticity import parquet_io
    from plasticity.io import atomic_path, sha256_file, write_json, write_manifest

    seed = int(config["seed"])
    names = list(config["benchmarks"])
    specs = [get(n) for n in names]
    out = Path(out_dir)
    src = Path(source_dir) if source_dir else None
    summary: dict[str, dict] = {}
    lock: dict[str, dict] = {}
    built: dict[str, list] = {}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for spec in specs:
            rows, provenance = build_rows(spec, seed, src, allow_unpinned, built)
            built[spec.name] = rows
            table = rows_to_table(rows, spec.name)
            path = tmp / f"{spec.name}.parquet"
            parquet_io.write_table(table, path)
            roles = dict(sorted(Counter(table.column("role").to_pylist()).items()))
            summary[spec.name] = {"file": path.name, "sha256": sha256_file(path), "count": table.num_rows,
                                  "roles": roles, "provenance": provenance}
            if not spec.pinned and spec.source != "embedded":
                lock[spec.name] = {"hub_id": spec.hub_id, "revision": spec.revision,
                                   "files": provenance["files"], "warnings": provenance["warnings"]}
                for file, digest in provenance["files"].items():
                    print(f"{spec.name}: {file} sha256 {digest}")
            if spec.role_counts and dict(spec.role_counts) != roles:
                message = f"benchmark {spec.name}: per-role counts {roles}, registry expects {dict(spec.role_counts)}"
                if spec.pinned:
                    raise RegistryError(message)
                lock.setdefault(spec.name, {}).setdefault("warnings", []).append(message)
                print(f"warning: {message}", file=sys.stderr)
        if lock:
            write_json(tmp / LOCK_FILE, lock)
        write_manifest(tmp, stage="benchmarks", config=config, seed=seed,
                       inputs={"source_dir": src} if src else None,
                       extra={MANIFEST_KEY: summary, "allow_unpinned": allow_unpinned,
                              "registry": {s.name: _spec_json(s) for s in specs}})
    return summary


def _spec_json(spec: BenchmarkSpec) -> dict:
    d = asdict(spec)
    d["files"] = list(spec.files)
    d["role_counts"] = dict(spec.role_counts)
    return d


def load_suites(benchmarks_dir: str | os.PathLike, names: list[str]) -> dict[str, Any]:
    """{name: pyarrow.Table (schema.BENCHMARK)} from a finished ``benchmarks`` stage output."""
    from plasticity import parquet_io, schema
    from plasticity.io import is_complete

    root = Path(benchmarks_dir)
    if not is_complete(root):
        raise FileNotFoundError(f"{root}: no manifest.json; the benchmarks stage did not finish")
    suites = {}
    for name in names:
        path = root / f"{name}.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: benchmark {name!r} was not materialised in {root}")
        suites[name] = schema.validate(parquet_io.read_table(path), schema.BENCHMARK, str(path))
    return suites


def benchmark_sha256(benchmarks_dir: str | os.PathLike, name: str) -> str | None:
    """The sha256 recorded for one benchmark file in the stage's manifest."""
    from plasticity.io import MANIFEST, read_json

    manifest = read_json(Path(benchmarks_dir) / MANIFEST)
    return manifest.get(MANIFEST_KEY, {}).get(name, {}).get("sha256")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity benchmarks",
                                     description="Materialise registry benchmarks as pinned parquet files.")
    parser.add_argument("--config", required=True, help='JSON file: {"seed": int, "benchmarks": [names...]}')
    parser.add_argument("--out", required=True, help="output directory (one <name>.parquet per benchmark)")
    parser.add_argument("--source-dir", help="local copies of the native files (<dir>/<name>/<file> or <dir>/<file>)")
    parser.add_argument("--allow-unpinned", action="store_true",
                        help="use hub entries without a pinned sha256; their sha256 goes to benchmarks.lock.json")
    args = parser.parse_args(argv)
    from plasticity.io import read_json

    config = read_json(args.config)
    for key in ("seed", "benchmarks"):
        if key not in config:
            parser.error(f"{args.config}: missing key {key!r}")
    try:
        summary = run(config, args.out, args.source_dir, args.allow_unpinned)
    except (RegistryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, info in summary.items():
        print(f"{name}: {info['count']} problems {info['roles']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
