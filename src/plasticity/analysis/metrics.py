"""Headline numbers of a study as one small JSON file (the DVC metrics of the report phase).

Reads the curves CSV (reference layout) and the fits CSV; writes per-branch P_sft, A_post, PL_rl and
status, the best observed accuracy of every phase and the best identifiable ceiling (``status.py``).

    python -m plasticity metrics --curves CURVES.csv --fits FITS.csv --out reports/metrics.json
"""
from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from plasticity.io import write_json


def _float(value: str) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summarize(curves_csv: str | Path, fits_csv: str | Path) -> dict:
    with open(curves_csv, newline="") as fh:
        curves = [r for r in csv.DictReader(fh) if r["benchmark"] == "overall"]
    with open(fits_csv, newline="") as fh:
        fits = list(csv.DictReader(fh))
    best = {}
    for row in curves:
        acc = _float(row["accuracy"])
        if acc is not None and acc > best.get(row["phase"], -math.inf):
            best[row["phase"]] = acc
    from plasticity.analysis.status import IDENTIFIABLE

    branches = {}
    for row in fits:
        key = f"{row['dataset']}@{row['sft_step']}"
        branches[key] = {k: _round(_float(row.get(k))) for k in ("p_sft", "a_post", "pl_rl")}
        branches[key]["status"] = row.get("status", "ok")
    ceilings = [b["a_post"] for b in branches.values()
                if b["a_post"] is not None and b["status"] in IDENTIFIABLE]
    return {
        "best_observed": {phase: _round(v) for phase, v in sorted(best.items())},
        "best_a_post": _round(max(ceilings)) if ceilings else None,
        "branches": branches,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity metrics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--curves", required=True)
    parser.add_argument("--fits", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    write_json(args.out, summarize(args.curves, args.fits))
    return 0
