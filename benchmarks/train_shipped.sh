#!/usr/bin/env bash
# Reproduce the shipped models (wafertk/models/shipped/{detector,classifier,xgboost}) with one
# command. Big intermediates go to $WORK (default /tmp/wafertk-shipped).
#   bash benchmarks/train_shipped.sh [detector] [classifier] [xgboost]   # default: all three
#
# 1. data: the WM-811K Training partition + the Test A lots outside the production test and
#    the demo sample (benchmarks/shipped_data.py train);
# 2. training with the packaged configs (configs/*.yaml), lot-disjoint validation split;
# 3. decisions fitted at production prevalence: the validation wafers from Test A lots
#    (whole production lots, never trained on) calibrate the detector's threshold (highest
#    recall at precision >= 0.8) and temperature, and the classifiers' temperature, review
#    level (at most 2 % errors among auto-accepted wafers) and conformal sets (90 %);
# 4. the calibrated models are copied into wafertk/models/shipped/, with the production test's
#    lots recorded in their manifests.
# Then: python benchmarks/eval_production.py   (the production test -> results JSON)
#       python benchmarks/eval_shipped.py      (the validation split -> results JSON)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WAFERTK=("$PY" -m wafertk.cli.main)
WORK=${WORK:-/tmp/wafertk-shipped}
mkdir -p "$WORK"
export TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD=1

[ -f "$WORK/train.h5" ] || "$PY" benchmarks/shipped_data.py train "$WORK/train.h5"

tasks=("$@")
[ ${#tasks[@]} -eq 0 ] && tasks=(detector classifier xgboost)
for task in "${tasks[@]}"; do
  start=$(date +%s)
  "${WAFERTK[@]}" train "$task" --data "$WORK/train.h5" -o "$WORK/$task" --config "$task"
  echo "$task: $(( $(date +%s) - start )) s wall" | tee "$WORK/$task.time"
done

check=()
[ -f "$WORK/detector/validation.csv" ] && check=(--check-run "$WORK/detector")
"$PY" benchmarks/shipped_data.py production-validation "$WORK/train.h5" \
    "$WORK/production_validation.h5" "${check[@]}"

for task in "${tasks[@]}"; do
  case $task in
    detector) opts=(--min-precision 0.8) ;;
    *) det=$WORK/detector-calibrated
       [ -d "$det" ] || det=detector   # the shipped detector when it is not retrained here
       opts=(--max-error 0.02 --coverage 0.9 --detector "$det") ;;
  esac
  "${WAFERTK[@]}" calibrate "$WORK/$task" "$WORK/production_validation.h5" \
      -o "$WORK/$task-calibrated" "${opts[@]}"
  dest="wafertk/models/shipped/$task"
  rm -rf "$dest" && mkdir -p "$dest"
  cp "$WORK/$task-calibrated/manifest.json" "$dest/"
  for f in model.keras model.json history.csv config.yaml report.json report.md report/report.json; do
    if [ -f "$WORK/$task-calibrated/$f" ]; then cp "$WORK/$task-calibrated/$f" "$dest/"; fi
  done
  "$PY" - "$dest/manifest.json" <<'PYEOF'
import json, sys
import numpy as np
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
done
