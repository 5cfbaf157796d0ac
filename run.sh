#!/usr/bin/env bash
# The project's two entry points. Each creates (or reuses) the virtual environment .venv first.
#
#   bash run.sh study [snakemake args...]   the embedded default study, ending with reports/
#                                           (profile profiles/local unless the arguments name a --profile)
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
  test)  shift; ensure_venv; exec python -m pytest "$@" ;;
  *) echo "usage: bash run.sh study|test [args...]" >&2; exit 2 ;;
esac
