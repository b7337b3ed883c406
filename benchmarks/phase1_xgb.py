"""Phase 1 from features: XGBoost detectors alone and averaged with the shipped CNN detector.

Judged on the **production validation** wafers (the Test A lots of the shipped recipes'
lot-disjoint validation split, ``benchmarks/shipped_data.py production-validation``), never
on the production test. Every variant trains on the training side of the same split
(:func:`wafertk.data.splits.validation_split`, fraction 0.2, seed 0) of the shipped models'
training file, with early stopping on the whole validation side (both partitions), as
``wafertk train xgboost`` does.

    WORK=/tmp/wafertk-shipped python benchmarks/phase1_xgb.py
        # -> benchmarks/results/phase1_xgb.json

Variants: a binary XGBoost (defective vs none) on the five feature sets of the XGBoost
baseline with the wafers of production lots (Test A) weighted 1x or 3x, the 9-class model
(``--classes all``: P(defective) = 1 - P(none)), and binary models on subsets of the feature
sets (``--subsets``, which may add the ``spatial`` set; the shipped
``configs/xgboost_detector.yaml`` uses density, geometry, metadata and spatial). Each is
scored alone and as the mean of its P(defective) with the rotation-averaged CNN detector's
(``--cnn``, default the CNN member of the shipped ensemble detector; rot4 test-time
augmentation, calibrated): ROC AUC, average precision, recall at the highest-recall
threshold with precision >= 0.80 (fitted and read on the same wafers: an upper bound that
ranks variants, as in ``benchmarks/experiments.py``) and best F1. The features are cached in
``$WORK/phase1_features.npz`` (the baseline's five sets) and ``$WORK/features_spatial.npz``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
WORK = Path(os.environ.get("WORK", "/tmp/wafertk-shipped"))
OUT = ROOT / "benchmarks" / "results" / "phase1_xgb.json"
#: feature sets outside the baseline's five that ``--subsets`` may name
EXTRA_SETS = ("spatial", "local")


def features(ws, path: Path, extra_sets: list[str] = ()) -> np.ndarray:
    """The baseline's feature matrix of ``ws``, cached in ``path`` (keyed by wafer id), then
    the columns of each of ``extra_sets``, cached beside it in ``features_<set>.npz``."""
    from wafertk.baseline import XGBoostWaferClassifier
    from wafertk.features import extract_features

    ids = ws.wafer_id.astype(str)
    blocks = []
    for p, sets in [(path, None), *((path.with_name(f"features_{s}.npz"), s)
                                    for s in extra_sets)]:
        if p.exists():
            z = np.load(p, allow_pickle=False)
            if np.array_equal(z["ids"], ids):
                blocks.append(z["X"])
                continue
        X = (XGBoostWaferClassifier(n_jobs=2).transform_features(ws) if sets is None
             else extract_features(ws, sets, n_jobs=2))
        np.savez(p, ids=ids, X=X)
        blocks.append(X)
    return np.hstack(blocks)


def set_columns(ws, sets: list[str]) -> np.ndarray:
    """The feature matrix of ``ws`` for exactly ``sets``, in their order, from the caches of
    :func:`features` (``$WORK/phase1_features.npz`` and ``features_<set>.npz``)."""
    from wafertk.baseline.model import DEFAULT_XGB_SETS
    from wafertk.features import feature_names

    extra = [s for s in sets if s not in DEFAULT_XGB_SETS]
    X = features(ws, WORK / "phase1_features.npz", extra)
    names = feature_names([*DEFAULT_XGB_SETS, *extra])
    return X[:, [names.index(n) for n in feature_names(list(sets))]]


def main() -> int:
    from experiments import detector_figures, validation_summary, write_result

    from wafertk.baseline import XGBoostWaferClassifier
    from wafertk.baseline.model import DEFAULT_XGB_SETS
    from wafertk.data import read_wafers
    from wafertk.data.splits import validation_split
    from wafertk.features import feature_names
    from wafertk.registry import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="1,3", help="production-lot weights to try")
    ap.add_argument("--subsets", default="density+meta,density+meta+filters,"
                    "density+meta+radon,density+meta+geometry,density+meta+geometry+spatial,"
                    "filters+density+radon+geometry+meta+spatial",
                    help="feature-set subsets to try (binary, weight 1)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--cnn", type=Path, default=ROOT / "wafertk" / "models" / "shipped"
                    / "detector" / "members" / "0-cnn-detector",
                    help="the CNN detector folder (default: the shipped detector's CNN)")
    args = ap.parse_args()

    ws = read_wafers(WORK / "train.h5", with_extras=True)
    ws = ws.take(ws.labeled_mask())
    split = validation_split(ws, 0.2, 0)
    prod = ws.extras["partition"].astype(str) == "Test"
    labels = ws.label_strings().astype(str)
    y = (labels != "none").astype(int)
    t0 = time.perf_counter()
    extra = [s for s in EXTRA_SETS if any(s in sub.split("+")
                                          for sub in args.subsets.split(","))]
    X = features(ws, WORK / "phase1_features.npz", extra)
    feat_s = time.perf_counter() - t0
    tr, va = split.train, split.val
    pv = va[prod[va]]  # the production validation wafers
    pv_ws = read_wafers(WORK / "production_validation.h5")
    if not np.array_equal(pv_ws.wafer_id.astype(str), ws.wafer_id.astype(str)[pv]):
        raise SystemExit("production_validation.h5 is not this split's production side")

    # the rotation-averaged CNN: the shipped detector's CNN member (before 2026-12-07 the
    # shipped detector itself)
    det = load_model(args.cnn, kind="cnn-detector")
    p_cnn = np.asarray(det.predict_proba(pv_ws), np.float64)[:, 1]
    results = {"cnn-rot4": {"figures": detector_figures(y[pv], p_cnn)}}
    variants: dict[str, dict] = {}
    for w in [float(v) for v in args.weights.split(",")]:
        variants[f"binary-prod{w:g}x"] = {"classes": ["none", "defective"], "prod_weight": w}
    variants["9class"] = {"classes": None, "prod_weight": 1.0}
    for sub in filter(None, args.subsets.split(",")):
        variants[f"binary-{sub}"] = {"classes": ["none", "defective"], "prod_weight": 1.0,
                                     "sets": sub.split("+")}
    all_names = feature_names([*DEFAULT_XGB_SETS, *extra])
    for name, v in variants.items():
        t0 = time.perf_counter()
        # the columns of these sets (default the baseline's five) in the feature matrix
        sets = v.get("sets", list(DEFAULT_XGB_SETS))
        cols = np.flatnonzero(np.isin(all_names, feature_names(sets)))
        Xs = X[:, cols]
        if v["classes"] is None:
            clf = XGBoostWaferClassifier(class_weight="balanced")
            clf.fit_features(Xs[tr], labels[tr], eval_set=(Xs[va], labels[va]),
                             classes=["none", *sorted(set(labels) - {"none"})])
            p = 1.0 - clf.predict_proba_features(Xs[pv])[:, 0]
        else:
            import xgboost

            sw = np.where(prod[tr], v["prod_weight"], 1.0)
            swv = np.where(prod[va], v["prod_weight"], 1.0)
            clf = xgboost.XGBClassifier(
                n_estimators=600, max_depth=6, learning_rate=0.1, subsample=0.9,
                colsample_bytree=0.8, early_stopping_rounds=40, n_jobs=2, random_state=0,
                eval_metric="logloss")
            clf.fit(Xs[tr], y[tr], sample_weight=sw, eval_set=[(Xs[va], y[va])],
                    sample_weight_eval_set=[swv], verbose=False)
            p = clf.predict_proba(Xs[pv])[:, 1]
        fit_s = time.perf_counter() - t0
        results[name] = {"figures": detector_figures(y[pv], p), "fit_seconds": round(fit_s, 1),
                         "settings": v}
        results[f"{name}+cnn-rot4"] = {"figures": detector_figures(y[pv], (p + p_cnn) / 2)}
        print(name, json.dumps(results[name]["figures"]),
              json.dumps(results[f"{name}+cnn-rot4"]["figures"]), flush=True)

    doc = {"what": __doc__.split("\n\n")[0], "command": "python benchmarks/phase1_xgb.py",
           "production_validation": validation_summary(ws.lot[pv], y[pv]),
           "train_wafers": int(len(tr)), "feature_seconds": round(feat_s, 1),
           "results": results}
    write_result(args.out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
