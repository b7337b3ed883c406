#!/usr/bin/env bash
# The detector's screen on the three seed runs of the shipped recipe (docs/production.md,
# "The detector's screen"), and the screen a CNN share of 0.2 in the phase-1 ensemble would
# get. Needs the seed runs of benchmarks/train_shipped.sh (DIRS below: each a DEST with
# detector/, classifier/, xgboost/, ensemble/) and $WORK/production_validation.h5.
#   bash benchmarks/screen_seeds.sh
# For each seed: an ensemble of the seed's detector members, calibrated as train_shipped.sh
# does (--min-precision 0.8 --screen-margin 0.5) on the production validation lots; its
# extra.screen is copied into a copy of the seed's models (the temperature and threshold
# checked equal to the seed's own), which eval_production.py scores on the production test.
# Then benchmarks/screen_record.py writes benchmarks/results/screen_seeds.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD=1
WORK=${WORK:-/tmp/wafertk-shipped}
OUT=${OUT:-/tmp/wafertk-screen}
DIRS=(${DIRS:-/work/ts-run/wafertk/models/shipped /tmp/wafertk-seed1/shipped /tmp/wafertk-seed2/shipped})
PY=${PY:-.venv/bin/python}
W="${PY%python}wafertk"
mkdir -p "$OUT"
for s in 0 1 2; do
  src=${DIRS[$s]}
  dst=$OUT/seed$s-screened
  rm -rf "$dst" "$OUT/seed$s-ens" "$OUT/seed$s-ens-cal"
  cp -r "$src" "$dst"
  "$W" ensemble "$src/detector/members/0-cnn-detector" \
      "$src/detector/members/1-xgboost-classifier" -o "$OUT/seed$s-ens" -q
  "$W" calibrate "$OUT/seed$s-ens" "$WORK/production_validation.h5" \
      -o "$OUT/seed$s-ens-cal" --min-precision 0.8 --screen-margin 0.5
  "$PY" benchmarks/screen_record.py copy "$src/detector/manifest.json" \
      "$OUT/seed$s-ens-cal/manifest.json" "$dst/detector/manifest.json"
  "$PY" benchmarks/eval_production.py --models "$dst" \
      -o "benchmarks/results/production_seed${s}_screened.json"
done
"$PY" benchmarks/production_seeds.py benchmarks/results/production_seed{0,1,2}_screened.json \
    -o benchmarks/results/production_seeds_screened.json
# the shipped members with a CNN share of 0.2 (docs/production.md, tries table)
rm -rf "$OUT/w02" "$OUT/w02-cal"
"$W" ensemble wafertk/models/shipped/detector/members/0-cnn-detector \
    wafertk/models/shipped/detector/members/1-xgboost-classifier \
    --weight 0.2 --weight 0.8 -o "$OUT/w02" -q
"$W" calibrate "$OUT/w02" "$WORK/production_validation.h5" -o "$OUT/w02-cal" \
    --min-precision 0.8 --screen-margin 0.5
"$PY" benchmarks/screen_record.py record "$OUT" benchmarks/results/screen_seeds.json
