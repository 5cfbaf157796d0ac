"""SFT regimes and the SFT -> RL switch point from a validation-loss curve (PAPER 1.4, 1.5).

With L_min the minimum validation loss over the SFT checkpoints, delta = 0.02 and delta2 = 0.10:

    T_stable = {x : L(x) <= (1 + delta) * L_min}
    T_mild   = {x : (1 + delta) * L_min < L(x) < (1 + delta2) * L_min}
    T_severe = {x : L(x) >= (1 + delta2) * L_min}

    adaptive  x < min(T_stable)                      (underfitting)
    stable    min(T_stable) <= x <= max(T_stable)
    mild      x > max(T_stable) and x in T_mild
    severe    x > max(T_stable) and x in T_severe

Decisions where the paper is silent:
- Stable is the whole interval [min T_stable, max T_stable]: a checkpoint inside it whose loss bumps
  above (1 + delta) * L_min is still labelled stable, so the regimes are contiguous in x_sft.
- Step 0 (the base model, which VAL.json may list) is not an SFT checkpoint: it takes no part in
  L_min, and it is labelled adaptive (it precedes every checkpoint; Table 6 labels zero-RL Adaptive).
  Regime switch rules never resolve to it; an explicit ``--switch 0`` does.

Input (written by the SFT stage): ``{"points": [{"step": int, "val_loss": float}, ...]}``.

By hand (prints JSON with the labels, L_min and the resolved switch step):

    python -m plasticity regimes --val-loss results/tiny/sft/uniform/val_loss.json --switch stable
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence

from plasticity.io import read_json_checked

REGIMES = ("adaptive", "stable", "mild", "severe")
SWITCH_RULES = ("min_val_loss",) + REGIMES


class RegimeError(ValueError):
    """A validation-loss curve or a switch rule cannot be used; the message says which and why."""


def _check_curve(steps: Sequence[int], losses: Sequence[float]) -> None:
    if len(steps) != len(losses):
        raise RegimeError(f"{len(steps)} steps but {len(losses)} losses")
    if len(set(steps)) != len(steps):
        raise RegimeError(f"duplicate steps in {list(steps)}")
    for s, v in zip(steps, losses):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise RegimeError(f"step {s}: validation loss must be a finite positive number, got {v!r}")
    if not any(s > 0 for s in steps):
        raise RegimeError("no SFT checkpoint (step > 0) in the validation-loss curve")


def min_val_loss(steps: Sequence[int], losses: Sequence[float]) -> tuple[int, float]:
    """(step, loss) of the minimum over the SFT checkpoints (step > 0); ties go to the earliest step."""
    _check_curve(steps, losses)
    return min(((s, v) for s, v in zip(steps, losses) if s > 0), key=lambda p: (p[1], p[0]))


def label_regimes(steps: Sequence[int], losses: Sequence[float], delta: float = 0.02,
                  delta2: float = 0.10) -> list[str]:
    """One regime label per input point, in input order (see the module docstring)."""
    if not 0 <= delta < delta2:
        raise RegimeError(f"need 0 <= delta < delta2, got delta={delta}, delta2={delta2}")
    _, l_min = min_val_loss(steps, losses)
    stable = [s for s, v in zip(steps, losses) if s > 0 and v <= (1 + delta) * l_min]
    first, last = min(stable), max(stable)
    labels = []
    for s, v in zip(steps, losses):
        if s < first:
            labels.append("adaptive")
        elif s <= last:
            labels.append("stable")
        elif v >= (1 + delta2) * l_min:
            labels.append("severe")
        else:
            labels.append("mild")
    return labels


def resolve_switch(rule: int | str, steps: Sequence[int], losses: Sequence[float],
                   delta: float = 0.02, delta2: float = 0.10) -> int:
    """The SFT step RL starts from: an explicit step, ``min_val_loss``, or a regime name.

    A regime name resolves to the last SFT checkpoint (step > 0) in that regime.
    """
    if isinstance(rule, bool):
        raise RegimeError(f"switch rule {rule!r}: expected a step or one of {SWITCH_RULES}")
    if isinstance(rule, str) and rule.strip().lstrip("-").isdigit():
        rule = int(rule.strip())
    if isinstance(rule, int):
        if rule not in steps:
            raise RegimeError(f"switch step {rule} is not a checkpoint with a validation loss; "
                              f"available steps: {sorted(steps)}")
        return rule
    name = str(rule).strip().lower()
    if name == "min_val_loss":
        return min_val_loss(steps, losses)[0]
    if name not in REGIMES:
        raise RegimeError(f"unknown switch rule {rule!r}: expected a step or one of {SWITCH_RULES}")
    labels = label_regimes(steps, losses, delta, delta2)
    inside = [s for s, lab in zip(steps, labels) if lab == name and s > 0]
    if not inside:
        raise RegimeError(f"switch rule {name!r}: no SFT checkpoint is in the {name} regime "
                          f"(labels: {dict(sorted(zip(steps, labels)))})")
    return max(inside)


def read_val_loss(path: str | Path) -> tuple[list[int], list[float]]:
    """(steps, losses) sorted by step from a ``val_loss.json``; errors name the file and the point."""
    obj = read_json_checked(path, RegimeError)
    points = obj.get("points") if isinstance(obj, dict) else None
    if not isinstance(points, list) or not points:
        raise RegimeError(f"{path}: expected {{'points': [{{'step': int, 'val_loss': float}}, ...]}}")
    pairs = []
    for i, p in enumerate(points):
        if not isinstance(p, dict):
            raise RegimeError(f"{path}: points[{i}] is not an object")
        step, loss = p.get("step"), p.get("val_loss")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise RegimeError(f"{path}: points[{i}] field 'step' must be a non-negative integer, "
                              f"got {step!r}")
        if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not math.isfinite(loss) \
                or loss <= 0:
            raise RegimeError(f"{path}: points[{i}] (step {step}) field 'val_loss' must be a finite "
                              f"positive number, got {loss!r}")
        pairs.append((step, float(loss)))
    pairs.sort()
    steps = [s for s, _ in pairs]
    if len(set(steps)) != len(steps):
        raise RegimeError(f"{path}: duplicate steps {sorted(s for s in set(steps) if steps.count(s) > 1)}")
    try:
        _check_curve(steps, [v for _, v in pairs])
    except RegimeError as exc:
        raise RegimeError(f"{path}: {exc}") from None
    return steps, [v for _, v in pairs]


def summarize(steps: Sequence[int], losses: Sequence[float], delta: float = 0.02,
              delta2: float = 0.10, switch: int | str | None = None) -> dict:
    """JSON-ready summary: per-point labels, L_min and (when a rule is given) the switch step."""
    labels = label_regimes(steps, losses, delta, delta2)
    step_min, l_min = min_val_loss(steps, losses)
    out = {
        "delta": delta, "delta2": delta2, "l_min": l_min, "min_val_loss_step": step_min,
        "points": [{"step": s, "val_loss": v, "regime": lab}
                   for s, v, lab in zip(steps, losses, labels)],
    }
    if switch is not None:
        out["switch"] = {"rule": switch, "step": resolve_switch(switch, steps, losses, delta, delta2)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m plasticity regimes",
                                description="SFT regimes and switch point from a validation-loss "
                                            "curve (PAPER 1.4); prints JSON.")
    p.add_argument("--val-loss", required=True, help="val_loss.json written by the SFT stage")
    p.add_argument("--switch", help=f"switch rule: a step or one of {', '.join(SWITCH_RULES)}")
    p.add_argument("--delta", type=float, default=0.02, help="stable band (default 0.02)")
    p.add_argument("--delta2", type=float, default=0.10, help="severe threshold (default 0.10)")
    args = p.parse_args(argv)
    try:
        steps, losses = read_val_loss(args.val_loss)
        out = summarize(steps, losses, args.delta, args.delta2, args.switch)
    except RegimeError as exc:
        print(f"regimes: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
