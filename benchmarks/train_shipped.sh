#!/usr/bin/env bash
# Reproduce the shipped models (wafertk/models/shipped/{detector,detector-fast,classifier,
# xgboost,ensemble}) with one command. Big intermediates go to $WORK (default
# /tmp/wafertk-shipped).
#   bash benchmarks/train_shipped.sh [detector] [classifier] [xgboost] [xgboost-detector]
#                                                                  # default: all four
#   CALIBRATE_ONLY=1 bash benchmarks/train_shipped.sh ...   # steps 3-5 on the runs in $WORK
#   SEED=1 WORK=/tmp/wafertk-seed1 DEST=/tmp/wafertk-seed1/shipped bash benchmarks/train_shipped.sh
#       # the same recipe with another model seed (train.seed of the CNNs, XGBoost's
#       # random_state; the validation split is unchanged), copied into DEST instead of the
#       # package (default DEST: wafertk/models/shipped; SEED needs its own WORK and DEST, and
#       # another DEST all four trainings); then
#       # python benchmarks/eval_production.py --models DEST -o ...   (benchmarks/production_seeds.py)
# Each training step's wall time goes to $WORK/TASK.time, the whole command's to
# $WORK/total.time (benchmarks/train_shipped_record.py records them).
#
# 1. data: the WM-811K Training partition + the Test A lots outside the production test and
#    the demo sample (benchmarks/shipped_data.py train);
# 2. training with the packaged configs (configs/*.yaml), lot-disjoint validation split;
# 3. decisions fitted at production prevalence: the validation wafers from Test A lots
#    (whole production lots, never trained on) calibrate the CNN detector's temperature with
#    test-time augmentation (rot4); the shipped detector is the mean of it and the binary
#    XGBoost (configs/xgboost_detector.yaml), whose temperature and threshold (highest
#    recall at precision >= 0.8) are fitted likewise, and its screen (--screen-margin 0.5:
#    the CNN's single pass passes the clearly good wafers alone); then the classifiers' temperature,
#    review level (at most 2 % errors among auto-accepted wafers) and conformal sets (90 %);
# 4. the default phase 2, the mean of the CNN's and XGBoost's probabilities
#    (`wafertk ensemble`), calibrated likewise;
# 5. the calibrated models are copied into $DEST (default wafertk/models/shipped/), with the
#    production test's lots recorded in their manifests.
# Then: python benchmarks/eval_production.py   (the production test -> results JSON)
#       python benchmarks/eval_shipped.py      (the validation split -> results JSON)
set -euo pipefail
t_start=$(date +%s)
WORK=$(realpath -m "${WORK:-/tmp/wafertk-shipped}")   # absolute: relative to the caller
[ -n "${DEST:-}" ] && DEST=$(realpath -m "$DEST")
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WAFERTK=("$PY" -m wafertk.cli.main)
SHIPPED=$(realpath wafertk/models/shipped)
DEST=${DEST:-$SHIPPED}
seed=()
if [ -n "${SEED:-}" ]; then
  if [ "$DEST" = "$SHIPPED" ] || [ "$WORK" = /tmp/wafertk-shipped ]; then
    echo "train_shipped.sh: SEED=$SEED needs its own WORK and DEST (the shipped models and" \
         "their runs are not replaced by another seed's)" >&2
    exit 2
  fi
  seed=(--seed "$SEED")
fi
if [ "$DEST" != "$SHIPPED" ] && [ $# -gt 0 ] && [ $# -lt 4 ]; then
  echo "train_shipped.sh: DEST=$DEST needs all four trainings (the others would come from" \
       "the shipped models)" >&2
  exit 2
fi
mkdir -p "$WORK"
export TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD=1

[ -f "$WORK/train.h5" ] || "$PY" benchmarks/shipped_data.py train "$WORK/train.h5"

tasks=("$@")
[ ${#tasks[@]} -eq 0 ] && tasks=(detector classifier xgboost xgboost-detector)
for task in "${tasks[@]}"; do
  [ -n "${CALIBRATE_ONLY:-}" ] && break   # refit the decisions of the runs in $WORK/TASK
  start=$(date +%s)
  if [ "$task" = xgboost-detector ]; then
    "${WAFERTK[@]}" train xgboost --data "$WORK/train.h5" -o "$WORK/$task" \
        --config xgboost_detector ${seed[@]+"${seed[@]}"}
  else
    "${WAFERTK[@]}" train "$task" --data "$WORK/train.h5" -o "$WORK/$task" --config "$task" \
        ${seed[@]+"${seed[@]}"}
  fi
  echo "$task: $(( $(date +%s) - start )) s wall" | tee "$WORK/$task.time"
done

check=()
[ -f "$WORK/detector/validation.csv" ] && check=(--check-run "$WORK/detector")
"$PY" benchmarks/shipped_data.py production-validation "$WORK/train.h5" \
    "$WORK/production_validation.h5" ${check[@]+"${check[@]}"}

# 3. decisions at production prevalence; the detector first (test-time augmentation: the mean
#    over the 4 rotations, chosen on the production validation lots), since the classifiers'
#    review levels are chosen on the two-phase output with it
calibrate() {  # NAME OPTIONS...: $WORK/NAME -> $WORK/NAME-calibrated
  local name=$1; shift
  "${WAFERTK[@]}" calibrate "$WORK/$name" "$WORK/production_validation.h5" \
      -o "$WORK/$name-calibrated" "$@"
}
ship() {  # NAME [SRC]: $WORK/SRC-calibrated (SRC default NAME) -> $DEST/NAME
          # (+ the production test lots)
  local dest="$DEST/$1" src="$WORK/${2:-$1}-calibrated"
  rm -rf "$dest" && mkdir -p "$dest"
  for f in manifest.json model.keras model.json members.json history.csv config.yaml \
           report.json report.md; do
    if [ -f "$src/$f" ]; then cp "$src/$f" "$dest/"; fi
  done
  if [ -d "$src/members" ]; then cp -r "$src/members" "$dest/"; fi
  "$PY" - "$dest/manifest.json" <<'PYEOF'
import json, sys
from wafertk.data.importers import read_npz_pack
from wafertk.data.splits import PRODUCTION_TEST_FRACTION, PRODUCTION_TEST_SEED, production_test_lots
path = sys.argv[1]
man = json.load(open(path))
lots = read_npz_pack("../shared/data/wm811k/wm811k_test_a.npz").lot
man["extra"]["production_test"] = {
    "source": "wm811k_test_a.npz", "seed": PRODUCTION_TEST_SEED,
    "fraction_of_lots": PRODUCTION_TEST_FRACTION,
    "lots": production_test_lots(lots).tolist(),
    "note": "never used for training, tuning or calibration"}
open(path, "w").write(json.dumps(man, indent=2) + "\n")
PYEOF
}
trained() { [[ " ${tasks[*]} " == *" $1 "* ]]; }

det=detector  # the shipped detector when it is not retrained here
if trained detector; then
  calibrate detector --min-precision 0.8 --tta rot4
  # the same network without test-time augmentation: ~4x less phase-1 work, lower recall
  mkdir -p "$WORK/detector-fast" && cp -r "$WORK/detector/." "$WORK/detector-fast/"
  calibrate detector-fast --min-precision 0.8 --tta none && ship detector-fast
fi
if trained detector || trained xgboost-detector; then
  # the shipped detector: the mean of the rotation-averaged CNN's and the binary XGBoost's
  # P(defective), its own temperature and threshold
  cnn_det=$WORK/detector-calibrated
  trained detector || cnn_det=wafertk/models/shipped/detector/members/0-cnn-detector
  xgb_det=$WORK/xgboost-detector
  trained xgboost-detector || xgb_det=wafertk/models/shipped/detector/members/1-xgboost-classifier
  "${WAFERTK[@]}" ensemble "$cnn_det" "$xgb_det" -o "$WORK/detector-ensemble"
  # its screen: the CNN's single pass passes the clearly good wafers alone (below half the
  # lowest such probability of a wafer the whole ensemble flags on these lots)
  calibrate detector-ensemble --min-precision 0.8 --screen-margin 0.5 && \
      ship detector detector-ensemble
  det=$WORK/detector-ensemble-calibrated
fi
for task in classifier xgboost; do
  if ! trained "$task" && [ "$det" != detector ]; then
    # not retrained, but the detector changed: refit its decisions (review level on the
    # two-phase output) from the shipped model
    rm -rf "${WORK:?}/$task" && cp -r "wafertk/models/shipped/$task" "$WORK/$task"
  fi
  if trained "$task" || [ "$det" != detector ]; then
    calibrate "$task" --max-error 0.02 --coverage 0.9 --detector "$det" && ship "$task"
  fi
done
# 4. the default phase 2: the mean of the calibrated CNN's and XGBoost's probabilities
cnn=$WORK/classifier-calibrated; xgb=$WORK/xgboost-calibrated
if ! trained classifier && [ "$det" = detector ]; then cnn=classifier; fi
if ! trained xgboost && [ "$det" = detector ]; then xgb=xgboost; fi
rm -rf "$WORK/ensemble"
"${WAFERTK[@]}" ensemble "$cnn" "$xgb" -o "$WORK/ensemble"
calibrate ensemble --max-error 0.02 --coverage 0.9 --detector "$det" && ship ensemble
echo "total: $(( $(date +%s) - t_start )) s wall" | tee "$WORK/total.time"
