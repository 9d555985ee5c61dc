#!/bin/bash
# Issue #23's five-fold runs on BUSI, in order, resumable: each `cosa-edge cv` command trains only the folds whose
# metrics.json is missing, and each fold's results (metrics, per-image predictions, log, config; checkpoints are
# ignored by git) are committed as soon as it finishes, so a session that stops mid-run loses at most one fold.
#
#   bash scripts/busi_cv_runs.sh [CODE]      # from the repository root; CODE: a checkout to run (default: this one)
#
# Issue #23's runs started from commit af86fb2: resume them with that code whatever main holds by then, so that
# every fold of a run is trained by the same code (`git worktree add --detach /tmp/cvrun af86fb2`, then
# CODE=/tmp/cvrun). Never edit this file in place while it runs: bash reads a running script as it goes. OMP_WAIT_POLICY=PASSIVE keeps torch's threads from spinning: on 2 cores, anything
# started beside a spinning run slowed its epochs five to ten times.
set -u
CODE=${1:-$PWD}
export PYTHONPATH=$CODE OMP_WAIT_POLICY=PASSIVE
COSA_EDGE=${COSA_EDGE:-.venv/bin/cosa-edge}
DATA=busi:../shared/data/busi

commit_finished_folds() {
  for metrics in docs/results/busi-cv-lite*/*/fold*/metrics.json docs/results/busi-cv-edge256/*/fold*/metrics.json; do
    [ -f "$metrics" ] || continue
    git ls-files --error-unmatch "$metrics" >/dev/null 2>&1 && continue
    fold=$(dirname "$metrics"); run=$(dirname "$(dirname "$fold")")
    git add "$fold" "$run/folds.json" && git commit -q -m "#23: ${fold#docs/}: one fold, committed as it finished" \
      -- "$fold" "$run/folds.json" && echo "committed $fold"
  done
}

watch_folds() { while true; do commit_finished_folds; sleep 60; done; }

cv() {  # cv OUT FOLDS_FILE OPTIONS...
  local out=$1 folds=$2; shift 2
  mkdir -p "$out"; [ -f "$out/folds.json" ] || cp "$folds" "$out/folds.json"
  echo "$(date -u +%FT%TZ) $COSA_EDGE cv --data $DATA --folds 5 --seed 0 --out $out $*"
  "$COSA_EDGE" cv --data "$DATA" --folds 5 --seed 0 --out "$out" "$@"
}

watch_folds & WATCHER=$!
trap 'kill $WATCHER 2>/dev/null' EXIT
# MTL-COSA lite first (the paper's comparison and the decision rules need it), then the from-scratch edge model at
# the same 256 px for the paired tests, then MTL-COSA lite with the normal images (presence, the shortcut control and
# the model card wait on it), then MTL and MTL-SA lite (the ablation: five CPU hours more).
cv docs/results/busi-cv-lite docs/results/busi-cv/folds.json --preset lite --models mtl_cosa
cv docs/results/busi-cv-edge256 docs/results/busi-cv/folds.json --preset edge --epochs 12 --models mtl_cosa
cv docs/results/busi-cv-lite-normal docs/results/busi-cv-normal-recipe/folds.json --preset lite --include-normal --models mtl_cosa
cv docs/results/busi-cv-lite docs/results/busi-cv/folds.json --preset lite --models mtl_cosa,mtl,mtl_sa
commit_finished_folds
