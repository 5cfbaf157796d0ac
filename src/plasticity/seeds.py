"""Stage ``seeds``: one study repeated with other training and evaluation seeds, then its findings graded.

``python -m plasticity seeds --configfile CFG --seeds S1 S2 S3 [--dry-run] [-- SNAKEMAKE ARGS]``
(``bash run.sh seeds ...``). For each seed S, in turn:

1. ``snakemake --profile profiles/local --configfile CFG --config train_seed=S results_dir=R_S
   reports_dir=P_S`` with R_S, P_S the config's own results and reports directories for the config's
   ``seed`` (that run is the study itself, reused as it stands) and ``R-seedS`` / ``B/seeds/seedS``
   otherwise, B being the study's report bundle (``publish.default_out``: the config's ``reports_dir``,
   or ``reports/default`` for the embedded default, whose ``reports/`` holds DVC outputs).
   ``train_seed`` seeds SFT, RL and evaluation sampling; the data world (teacher, sets, benchmarks),
   the tokenizer and the base model keep ``seed`` and are rebuilt identically in every
   results directory (the findings stage checks their hashes agree);
2. ``python -m plasticity publish`` of that run into its bundle: B for the config's ``seed``, P_S
   otherwise (``analysis.publish``).

Then ``python -m plasticity findings`` over the bundles into B/findings.{md,csv}
(``analysis.findings``). ``--dry-run`` prints the commands and runs nothing. Each seed's run is an
ordinary Snakemake run: interrupted, it resumes where it stopped.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path


def seed_dirs(cfg, seed: int) -> tuple[str, str, str]:
    """(results_dir, reports_dir, report bundle) of one seed's run (module docstring)."""
    from plasticity.analysis.publish import default_out

    bundle = default_out(cfg)
    if seed == cfg.seed and cfg.train_seed in (None, seed):
        return cfg.results_dir.rstrip("/"), cfg.reports_dir.rstrip("/"), bundle
    reports = f"{bundle}/seeds/seed{seed}"
    return f"{cfg.results_dir.rstrip('/')}-seed{seed}", reports, reports


def commands(cfg, configfile: str, seeds: list[int], extra: list[str], python: str = sys.executable) -> list[list[str]]:
    """Every command the stage runs, in order (module docstring)."""
    from plasticity.analysis.publish import default_out

    out, bundles = [], []
    profile = [] if any(a.startswith("--profile") for a in extra) else ["--profile", "profiles/local"]
    for seed in seeds:
        results, reports, bundle = seed_dirs(cfg, seed)
        overrides = [f"train_seed={seed}", f"results_dir={results}", f"reports_dir={reports}"]
        out.append([python, "-m", "snakemake", *profile, "--configfile", configfile, *extra, "--config", *overrides])
        out.append([python, "-m", "plasticity", "publish", "--configfile", configfile, "--out", bundle,
                    "--config", *overrides])
        bundles.append(bundle)
    prefix = f"{default_out(cfg)}/findings"
    out.append([python, "-m", "plasticity", "findings", "--configfile", configfile,
                *[a for b in bundles for a in ("--bundle", b)], "--out", prefix])
    return out


def main(argv: list[str] | None = None) -> int:
    from plasticity.config import ConfigError, load_config

    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(prog="python -m plasticity seeds", description=__doc__.split("\n")[0])
    p.add_argument("--configfile", required=True)
    p.add_argument("--seeds", type=int, nargs="+", required=True, help="train_seed of each run (>= 3 to grade)")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.configfile)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if len(set(args.seeds)) != len(args.seeds):
        print(f"seeds: error: a seed is repeated in {args.seeds}", file=sys.stderr)
        return 2
    for cmd in commands(cfg, args.configfile, args.seeds, extra):
        print("+ " + shlex.join(cmd), flush=True)
        if not args.dry_run:
            rc = subprocess.run(cmd, cwd=Path.cwd()).returncode
            if rc:
                return rc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
