#!/usr/bin/env bash
# Regenerate the committed records and leaderboard.md: every model on every synthetic preset, 3 seeds,
# every fold, each model's own recipe (early stopping on validation) unless EXTRA below says otherwise.
# Runs already in results/ with the same settings are skipped, so the script resumes after a stop.
#
#   scripts/leaderboard_sweep.sh                 # everything
#   MODELS="tfn lmf" scripts/leaderboard_sweep.sh
#   JOBS=2 scripts/leaderboard_sweep.sh          # two presets at a time, one torch thread each
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${MODELS:-"prior early_fusion late_fusion unimodal tfn lmf edl_mlp mult misa self_mm helo ticalnet foalnet"}
PRESETS=${PRESETS:-"synthetic synthetic-mosei synthetic-iemocap synthetic-physio"}
JOBS=${JOBS:-1}
# Per-model settings that differ from the recipe for this CPU sweep (they appear as the row's
# variant in the leaderboard, so nobody mistakes them for the paper's recipe).
declare -A EXTRA=()

run_preset() {  # model preset
  local extra=${EXTRA[$1]:-}
  # shellcheck disable=SC2086
  bench run --model "$1" --data "$2" --seeds 0 1 2 --results results --logger none --no-progress $extra
}

for model in $MODELS; do
  if [ "$JOBS" -gt 1 ]; then
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
    printf '%s\n' $PRESETS | xargs -P "$JOBS" -I{} bash -c "$(declare -f run_preset); $(declare -p EXTRA); run_preset $model {}"
  else
    for data in $PRESETS; do run_preset "$model" "$data"; done
  fi
done
bench leaderboard --results results --out leaderboard.md
