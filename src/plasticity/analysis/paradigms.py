"""The paradigm comparison's results (PAPER 5.1, section 6.1): RL and synchronized SFT+RL branches.

``curves --method M`` keeps the branches of the SFT-then-RL grid's method M in the curves CSV (one
branch per (dataset, step), what the fits need) and writes every other method's branches beside it
as ``paradigms.csv``:

    dataset, branch_step, method, x_sft_ef, x_ef, benchmark, accuracy

``x_sft_ef`` is the compute of the branch's starting checkpoint (0 from the base), ``x_ef`` the
branch's own RL compute. Table 1 and Figure 2 read it (``read_paradigms``), with the Pure-SFT curve
from the curves CSV. A missing file (imported curves) is an empty comparison.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from plasticity.io import atomic_path, read_csv_rows

COLUMNS = ["dataset", "branch_step", "method", "x_sft_ef", "x_ef", "benchmark", "accuracy"]
NAME = "paradigms.csv"


class ParadigmError(ValueError):
    """A malformed paradigms.csv; the message names the file, line and field."""


def write_paradigms(rows: list[dict], out: str | Path) -> None:
    key = lambda r: (r["dataset"], r["branch_step"], r["method"], r["x_ef"], r["benchmark"])
    with atomic_path(out) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(COLUMNS)
            for r in sorted(rows, key=key):
                w.writerow([repr(float(r[c])) if c in ("x_sft_ef", "x_ef", "accuracy") else r[c] for c in COLUMNS])


def read_paradigms(path: str | Path) -> list[dict]:
    """Rows of a paradigms.csv (``[]`` when there is none), numbers parsed and checked."""
    path = Path(path)
    if not path.is_file():
        return []
    _, lines = read_csv_rows(path, COLUMNS, ParadigmError)
    rows = []
    for line, r in lines:
        try:
            row = {**r, "branch_step": int(r["branch_step"]), "x_sft_ef": float(r["x_sft_ef"]),
                   "x_ef": float(r["x_ef"]), "accuracy": float(r["accuracy"])}
        except ValueError:
            raise ParadigmError(f"{path}:{line}: branch_step, x_sft_ef, x_ef and accuracy must be numbers") from None
        if not all(math.isfinite(row[k]) for k in ("x_sft_ef", "x_ef", "accuracy")):
            raise ParadigmError(f"{path}:{line}: x_sft_ef, x_ef and accuracy must be finite")
        rows.append(row)
    return rows


def overall(rows: list[dict]) -> dict[tuple[str, int], dict[str, list[tuple[float, float]]]]:
    """{(dataset, step): {method: [(x_sft + x_rl, overall accuracy), ...]}} sorted by compute."""
    out: dict[tuple[str, int], dict[str, list[tuple[float, float]]]] = {}
    for r in rows:
        if r["benchmark"] == "overall":
            out.setdefault((r["dataset"], r["branch_step"]), {}).setdefault(r["method"], []).append(
                (r["x_sft_ef"] + r["x_ef"], r["accuracy"]))
    for methods in out.values():
        for pts in methods.values():
            pts.sort()
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0] != "pure_rl", kv[0])))


def start_label(dataset: str, step: int) -> str:
    return "from the base" if dataset == "pure_rl" else f"from {dataset} @ {step}"


def method_order(starts: dict) -> list[str]:
    """Every method of the comparison in one order (so a method keeps its colour across panels)."""
    from plasticity.methods import METHODS

    seen = {m for methods in starts.values() for m in methods}
    return [m for m in METHODS if m in seen] + sorted(seen - set(METHODS))


def method_title(name: str) -> str:
    from plasticity.methods import METHODS

    return METHODS[name].title if name in METHODS else name
