"""Does the 48 px fail-preserving resize erase patterns on large grids? Figures by grid size.

    python benchmarks/check_resize.py        # -> benchmarks/results/resize_check.json

The CNNs see each native map resized to 48x48 by a fail-preserving max-pool
(:func:`wafertk.data.preprocess.resize_maps`): a resized pixel is a fail when any die of its
block failed. Fails are never erased, but on a 300x205 grid a block holds ~25 dies, so
scattered fails can spread over the whole resized map. This script measures, by the larger
side of the native grid, on the lot-disjoint validation wafers of the shipped models'
training file (``$WORK/train.h5``, never trained on):

* the fail share of the dies before and after resizing (median, and the share of wafers
  whose resized fail share is more than twice the native one);
* the shipped CNN classifier's accuracy on the defect wafers, and the shipped detector's ROC
  AUC, per size group.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("WORK", "/tmp/wafertk-shipped"))
OUT = ROOT / "benchmarks" / "results" / "resize_check.json"
GROUPS = [(0, 50), (50, 100), (100, 200), (200, 10_000)]


def fail_shares(ws, size: int) -> tuple[np.ndarray, np.ndarray]:
    from wafertk.data.preprocess import resize_maps

    native = np.array([(m == 2).sum() / max((m > 0).sum(), 1) for m in ws.maps])
    small = resize_maps(ws, size)
    resized = (small == 2).sum(axis=(1, 2)) / np.maximum((small > 0).sum(axis=(1, 2)), 1)
    return native, resized


def main() -> int:
    from sklearn.metrics import roc_auc_score

    from wafertk.data import read_wafers
    from wafertk.data.splits import validation_split
    from wafertk.registry import SHIPPED_DIR, load_model

    ws = read_wafers(WORK / "train.h5")
    ws = ws.take(ws.labeled_mask())
    val = ws.take(validation_split(ws, 0.2, 0).val)
    labels = val.label_strings().astype(str)
    side = val.shapes.max(axis=1)
    # the CNN of the shipped detector (an ensemble since 2026-12-07: its CNN member)
    det = load_model(SHIPPED_DIR / "detector" / "members" / "0-cnn-detector",
                     kind="cnn-detector")
    det.tta = "none"  # the network itself, as trained
    clf = load_model("classifier", kind="cnn-classifier")
    native, resized = fail_shares(val, det.input_size)
    p_det = det.predict_proba(val)[:, 1]
    rows = []
    for lo, hi in GROUPS:
        g = (side >= lo) & (side < hi)
        if not g.any():
            continue
        defect = g & (labels != "none")
        y = (labels[g] != "none").astype(int)
        sub = val.take(np.flatnonzero(defect))
        pred = np.asarray(clf.predict(sub)).astype(str) if len(sub) else np.array([])
        rows.append({
            "grid_side": f"{lo}-{hi - 1}" if hi < 10_000 else f">={lo}",
            "wafers": int(g.sum()), "defect_wafers": int(defect.sum()),
            "median_fail_share_native": float(np.median(native[g])),
            "median_fail_share_resized": float(np.median(resized[g])),
            "share_inflated_over_2x": float((resized[g] > 2 * native[g] + 1e-9).mean()),
            "classifier_accuracy_defects": (float((pred == labels[defect]).mean())
                                            if len(sub) else None),
            "detector_roc_auc": (float(roc_auc_score(y, p_det[g])) if 0 < y.sum() < len(y)
                                 else None),
        })
        print(rows[-1], flush=True)
    from wafertk._atomic import atomic_path

    with atomic_path(OUT) as tmp:
        tmp.write_text(json.dumps({"command": "python benchmarks/check_resize.py",
                                   "input_size": det.input_size, "groups": rows},
                                  indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
