#!/usr/bin/env bash
# Reproduce the shipped default CNNs (wafertk/models/shipped/{detector,classifier}) from the
# WM-811K Training partition with the packaged configs (configs/detector.yaml,
# configs/classifier.yaml). Big intermediates go to $WORK (default /tmp/wafertk-shipped).
#   bash benchmarks/train_shipped.sh [detector] [classifier]   # default both; ~30-45 min on 2 CPU cores
# Then: .venv/bin/python benchmarks/eval_shipped.py   (validation figures -> results JSON)
#       .venv/bin/python benchmarks/bench_inference.py  (speed -> results JSON)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${WORK:-/tmp/wafertk-shipped}
NPZ=${NPZ:-../shared/data/wm811k/wm811k_train.npz}
mkdir -p "$WORK"
export TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD=1 TF_CPP_MIN_LOG_LEVEL=2

if [ ! -f "$WORK/train.h5" ]; then
  "$PY" - "$NPZ" "$WORK/train.h5" <<'PYEOF'
import sys
import numpy as np
from wafertk.data import WaferSet, write_wafers
z = np.load(sys.argv[1])
ids = np.array([f"{lot}_{i}_{o}" for lot, i, o in
                zip(z["lotName"], z["waferIndex"], z["orig_index"], strict=True)])
ws = WaferSet(z["maps_flat"], z["offsets"], z["shapes"], lot=z["lotName"],
              wafer_index=z["waferIndex"], die_size=z["dieSize"], wafer_id=ids,
              labels=z["class_names"][z["label"]])
write_wafers(ws, sys.argv[2])
print(f"{len(ws)} wafers -> {sys.argv[2]}")
PYEOF
fi

tasks=("$@")
[ ${#tasks[@]} -eq 0 ] && tasks=(detector classifier)
for task in "${tasks[@]}"; do
  start=$(date +%s)
  # --config "$task": the packaged config of that name (configs/$task.yaml, installed as
  # wafertk/configs/$task.yaml), which is also what `wafertk train $task` uses by default
  "$PY" -m wafertk.cli.main train "$task" --data "$WORK/train.h5" -o "$WORK/$task" \
      --config "$task"
  echo "$task: $(( $(date +%s) - start )) s wall" | tee "$WORK/$task.time"
  dest="wafertk/models/shipped/$task"
  mkdir -p "$dest"
  cp "$WORK/$task/model.keras" "$WORK/$task/manifest.json" "$dest/"
  cp "$WORK/$task/report/report.json" "$dest/report.json"
  cp "$WORK/$task/history.csv" "$dest/history.csv"
done
