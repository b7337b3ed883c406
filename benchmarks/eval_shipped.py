"""Validation figures of the shipped CNNs -> ``benchmarks/results/shipped_models.json``.

    .venv/bin/python benchmarks/eval_shipped.py [--data /tmp/wafertk-shipped/train.h5]

Rebuilds the lot-disjoint validation split the trainers used (same function, fraction and
seed, over all labeled wafers), runs ``classify --two-phase`` with the shipped models on those
validation wafers, and scores the nine-class result end to end, plus phase 1 alone (recall and
precision at the shipped threshold) and phase 2 alone (on the defect-class validation wafers).
Every figure comes from :mod:`wafertk.evaluate` (the one metrics module).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/wafertk-shipped/train.h5")
    ap.add_argument("--work", default="/tmp/wafertk-shipped")
    ap.add_argument("-o", "--out", default=str(ROOT / "benchmarks/results/shipped_models.json"))
    args = ap.parse_args()

    import pandas as pd

    from wafertk.data import WM811K_CLASSES, read_wafers, write_wafers
    from wafertk.data.splits import validation_split
    from wafertk.evaluate import binary_metrics, classification_metrics
    from wafertk.inspect import classify
    from wafertk.models import load_manifest
    from wafertk.registry import resolve_model

    DEFAULT_DETECTOR = resolve_model("detector")
    DEFAULT_CLASSIFIER = resolve_model("classifier")
    DEFAULT_XGBOOST = resolve_model("xgboost")

    det_man = load_manifest(DEFAULT_DETECTOR, ("cnn-detector", "ensemble-detector"))
    # the CNN detector's own run (config, training, validation figures): the shipped detector
    # itself, or its CNN member when it is an ensemble (since 2026-12-07)
    cnn_dir = (DEFAULT_DETECTOR / "members" / "0-cnn-detector"
               if det_man.kind == "ensemble-detector" else DEFAULT_DETECTOR)
    cnn_man = load_manifest(cnn_dir, "cnn-detector")
    cls_man = load_manifest(DEFAULT_CLASSIFIER, "cnn-classifier")
    split_cfg = cnn_man.extra["config"]["data"]
    cls_split = cls_man.extra["config"]["data"]
    for key in ("validation_fraction", "split_seed"):
        assert split_cfg[key] == cls_split[key], f"detector and classifier splits differ: {key}"

    ws = read_wafers(args.data)
    ws = ws.take(ws.labeled_mask())
    split = validation_split(ws, split_cfg["validation_fraction"], split_cfg["split_seed"])
    val = ws.take(split.val)
    tmp = Path(tempfile.mkdtemp(prefix="wafertk-eval-"))
    write_wafers(val, tmp / "val.h5")
    y = val.label_strings().astype(str)
    names = list(WM811K_CLASSES)

    def end_to_end(classifier, name: str):
        t = time.perf_counter()
        classify(tmp / "val.h5", tmp / name, two_phase=True, classifier=classifier,
                 progress=False, report=False)
        secs = time.perf_counter() - t
        pred = pd.read_csv(tmp / name / "predictions.csv", keep_default_na=False)
        assert (pred["wafer_id"].astype(str).to_numpy() == val.wafer_id.astype(str)).all()
        p = pred["pattern"].astype(str).to_numpy()
        m = classification_metrics(y, p, names)
        res = {
            "n_wafers": int(len(y)), "n_lots": int(len(set(val.lot))),
            **{k: m[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")},
            "per_class": {c: {k: (v if k == "support" else round(v, 4)) for k, v in pc.items()}
                          for c, pc in m["per_class"].items()},
            "confusion_matrix": {"labels": names, "matrix": m["confusion_matrix"]},
            "review_flagged": int(pred["review"].sum()),
            "seconds": round(secs, 2),
        }
        return res, pred

    end_to_end_cnn, pred = end_to_end(None, "cnn")
    is_def = y != "none"
    flagged = pred["defective"].to_numpy() == 1
    # Threshold trade-off: phase 2 on every wafer once, then the phase-1 cut moved.
    classify(tmp / "val.h5", tmp / "all", two_phase=False, progress=False, report=False)
    every = pd.read_csv(tmp / "all" / "predictions.csv", keep_default_na=False)
    p_def = pred["p_defect"].to_numpy(np.float64)
    sweep = []
    for thr in (0.9, 0.8, 0.7, float(det_man.extra["threshold"]), 0.5, 0.4, 0.3, 0.2, 0.1):
        b = binary_metrics(is_def, p_def, thr)
        pat = np.where(p_def >= thr, every["pattern"].astype(str).to_numpy(), "none")
        sweep.append({"threshold": round(thr, 4), "recall": round(b["recall"], 4),
                      "precision": round(b["precision"], 4),
                      "macro_f1": round(classification_metrics(y, pat, names)["macro_f1"], 4)})
    end_to_end_xgb = None
    if (DEFAULT_XGBOOST / "model.json").is_file():
        xgb_man = load_manifest(DEFAULT_XGBOOST, "xgboost-classifier")
        xgb_split = xgb_man.extra.get("split", {})
        same = (xgb_split.get("val_fraction") == split_cfg["validation_fraction"]
                and xgb_split.get("seed") == split_cfg["split_seed"]
                and xgb_split.get("function") == "validation_split")
        if same:
            end_to_end_xgb, _ = end_to_end("xgboost", "xgb")
        else:
            print("shipped XGBoost model was trained on another split: not evaluated")
    at_threshold = binary_metrics(is_def, flagged.astype(np.float64), 0.5)  # as classified
    phase1 = {"threshold": det_man.extra["threshold"],
              "recall": at_threshold["recall"],
              "precision": at_threshold["precision"],
              **{f"cnn_{k}": cnn_man.extra["validation"].get(k)
                 for k in ("roc_auc", "average_precision")}}

    def size_kb(folder: Path) -> float:
        return round((folder / "model.keras").stat().st_size / 1024, 1)

    def wall(task: str):
        f = Path(args.work) / f"{task}.time"
        return f.read_text().strip() if f.is_file() else None

    out = {
        "command": "bash benchmarks/train_shipped.sh && python benchmarks/eval_shipped.py",
        "data": "WM-811K Training partition (54,355 labeled maps), lot-disjoint 80/20 split "
                f"(lot_stratified_split, seed {split_cfg['split_seed']})",
        "targets": {"phase1_recall": 0.97, "phase1_precision": 0.95, "end_to_end_macro_f1": 0.90},
        "phase1_detector": phase1,
        "phase2_classifier": cls_man.extra["validation"],
        "end_to_end_two_phase": end_to_end_cnn,
        "end_to_end_two_phase_xgboost_phase2": end_to_end_xgb,
        "threshold_sweep": {"what": "phase-1 threshold (calibrated P(defective)) vs phase-1 "
                                    "recall/precision and end-to-end macro-F1, CNN phase 2; "
                                    "p_defect as printed (4 decimals)", "rows": sweep},
        "models": {
            "detector": {"kind": det_man.kind, "input_size": cnn_man.input_size,
                         "size_kb": size_kb(cnn_dir),
                         "temperature": det_man.extra["temperature"],
                         "training": cnn_man.extra["training"], "wall": wall("detector")},
            "classifier": {"input_size": cls_man.input_size,
                           "size_kb": size_kb(DEFAULT_CLASSIFIER),
                           "temperature": cls_man.extra["temperature"],
                           "training": cls_man.extra["training"], "wall": wall("classifier")},
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("phase1_detector", "models")}, indent=2))
    for r in sweep:
        print(f"threshold {r['threshold']:.3f}: recall {r['recall']:.4f} precision "
              f"{r['precision']:.4f} end-to-end macro-F1 {r['macro_f1']:.4f}")
    for title, res in (("CNN", end_to_end_cnn), ("XGBoost", end_to_end_xgb)):
        if res is None:
            continue
        print(f"end-to-end ({title} phase 2) macro-F1 {res['macro_f1']:.4f} "
              f"accuracy {res['accuracy']:.4f}")
        for c, r in res["per_class"].items():
            print(f"  {c:<10} P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f} "
                  f"n {r['support']}")


if __name__ == "__main__":
    main()
