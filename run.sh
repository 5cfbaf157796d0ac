#!/usr/bin/env bash
# The project's two entry points. Each creates (or reuses) the virtual environment .venv first.
#
#   bash run.sh study [snakemake args...]   the embedded default study, ending with reports/
#                                           (profile profiles/local unless the arguments name a --profile)
#   bash run.sh publish [snakemake args...] the study, then its report as committed files: reports/default/
#                                           (with --configfile CFG: the config's reports_dir)
#   bash run.sh seeds --configfile CFG --seeds S1 S2 S3
#                                           the study once per training seed, each published, then the
#                                           findings graded across seeds (python -m plasticity seeds)
#   bash run.sh test  [pytest args...]      the whole test suite
#
# Everything runs offline: no weights or data are fetched from a hub.
set -euo pipefail
cd "$(dirname "$0")"

VENV="${PLASTICITY_VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac   # relative to the checkout, absolute as given
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

ensure_venv() {
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  local stamp="$VENV/.installed" want
  want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
    echo "$want" > "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

case "${1:-}" in
  study)
    shift; ensure_venv
    case " $* " in *" --profile"*) exec snakemake "$@" ;; *) exec snakemake --profile profiles/local "$@" ;; esac ;;
  publish)
    shift; ensure_venv
    cfg=config.yaml; prev=""
    for a in "$@"; do
      [ "$prev" = "--configfile" ] && cfg="$a"
      case "$a" in --configfile=*) cfg="${a#*=}" ;; esac
      prev="$a"
    done
    case " $* " in *" --profile"*) snakemake "$@" ;; *) snakemake --profile profiles/local "$@" ;; esac
    exec python -m plasticity publish --configfile "$cfg" ;;
  seeds) shift; ensure_venv; exec python -m plasticity seeds "$@" ;;
  test)  shift; ensure_venv; exec python -m pytest "$@" ;;
  *) echo "usage: bash run.sh study|publish|seeds|test [args...]" >&2; exit 2 ;;
esac
