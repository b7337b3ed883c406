"""Phase 1 from features: the shipped XGBoost detector recipe over training seeds, and a few
of its hyperparameter variants, on the production validation lots.

The recipe is ``configs/xgboost_detector.yaml`` trained as ``wafertk train xgboost`` does it
(the library's :class:`~wafertk.baseline.XGBoostWaferClassifier`, classes good/defective,
the shipped lot-disjoint split of the training file, early stopping on its validation side);
only the model's ``random_state`` changes with the seed (row and column subsampling), the
split stays the shipped one. Each fit is scored on the **production validation** wafers
(never the production test) alone and in the mean with the shipped detector's CNN member
(rot4, calibrated), as the shipped ensemble does: ROC AUC, average precision, recall at
precision >= 0.80 (threshold fitted and read on the same wafers: an upper bound that ranks
variants) and best F1, then the mean and sample standard deviation over the seeds: the
noise a single training run carries, beside the ~0.02 of 480 defect wafers.

    WORK=/tmp/wafertk-shipped python benchmarks/phase1_seeds.py
        # -> benchmarks/results/phase1_seeds.json (about 6 min with the features cached
        #    by benchmarks/phase1_xgb.py)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
WORK = Path(os.environ.get("WORK", "/tmp/wafertk-shipped"))
OUT = ROOT / "benchmarks" / "results" / "phase1_seeds.json"
CNN = ROOT / "wafertk" / "models" / "shipped" / "detector" / "members" / "0-cnn-detector"

#: name -> XGBoostWaferClassifier keywords changed from the shipped recipe
VARIANTS: dict[str, dict] = {
    "recipe": {},
    "slower": {"learning_rate": 0.05, "n_estimators": 1500, "early_stopping_rounds": 80},
    "deeper": {"max_depth": 8},
    "shallower": {"max_depth": 4, "n_estimators": 1200},
}


def main() -> int:
    from experiments import detector_figures, seed_summary, write_result
    from phase1_xgb import set_columns

    from wafertk.baseline import XGBoostTrainConfig
    from wafertk.config import load_config
    from wafertk.data import read_wafers
    from wafertk.data.splits import validation_split
    from wafertk.registry import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="model seeds (random_state)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--sets", default=None, dest="feature_sets",
                    help="feature sets instead of the recipe's (e.g. density,geometry,meta,"
                         "spatial,local)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    cfg = load_config(XGBoostTrainConfig, "xgboost_detector",
                      {"feature_sets": args.feature_sets.split(",")}
                      if args.feature_sets else None)
    ws = read_wafers(WORK / "train.h5", with_extras=True)
    ws = ws.take(ws.labeled_mask())
    X = set_columns(ws, list(cfg.feature_sets))  # the recipe's columns in its order
    labels = ws.label_strings().astype(str)
    y_str = cfg.target_labels(labels)
    y = (labels != "none").astype(int)
    prod = ws.extras["partition"].astype(str) == "Test"
    split = validation_split(ws, cfg.val_fraction, cfg.resolved_split_seed)
    tr, va = split.train, split.val
    pv = va[prod[va]]
    pv_ws = read_wafers(WORK / "production_validation.h5")
    if not np.array_equal(pv_ws.wafer_id.astype(str), ws.wafer_id.astype(str)[pv]):
        raise SystemExit("production_validation.h5 is not this split's production side")
    det = load_model(CNN, kind="cnn-detector")
    p_cnn = np.asarray(det.predict_proba(pv_ws), np.float64)[:, 1]

    results: dict[str, dict] = {}
    for name in args.variants.split(","):
        runs, runs_cnn, fits, probas = [], [], [], []
        for seed in seeds:
            clf = cfg.make_classifier().set_params(random_state=seed, **VARIANTS[name])
            t0 = time.perf_counter()
            clf.fit_features(X[tr], y_str[tr], eval_set=(X[va], y_str[va]),
                             classes=cfg.class_list())
            fits.append({"seed": seed, "seconds": round(time.perf_counter() - t0, 1),
                         "trees": int(clf.best_iteration_) + 1})
            p = clf.predict_proba_features(X[pv])[:, 1]
            probas.append(p)
            runs.append(detector_figures(y[pv], p))
            runs_cnn.append(detector_figures(y[pv], (p + p_cnn) / 2))
            print(f"{name:<10} seed {seed}: alone recall@P0.8 "
                  f"{runs[-1]['recall_at_precision_0.8']:.3f} AUC {runs[-1]['roc_auc']:.4f} | "
                  f"with CNN {runs_cnn[-1]['recall_at_precision_0.8']:.3f} "
                  f"{runs_cnn[-1]['roc_auc']:.4f}", flush=True)
        bag = np.mean(probas, axis=0)  # the seeds' boosters averaged: one bagged detector
        results[name] = {"params": VARIANTS[name], "fits": fits, "alone": runs,
                         "with_cnn": runs_cnn, "alone_summary": seed_summary(runs),
                         "with_cnn_summary": seed_summary(runs_cnn),
                         "bagged_alone": detector_figures(y[pv], bag),
                         "bagged_with_cnn": detector_figures(y[pv], (bag + p_cnn) / 2)}
    doc = {"what": __doc__.split("\n\n")[0].replace("\n", " "),
           "command": "python benchmarks/phase1_seeds.py", "seeds": seeds,
           "feature_sets": list(cfg.feature_sets),
           "production_validation": {"wafers": int(len(pv)), "defective": int(y[pv].sum())},
           "results": results}
    write_result(args.out, doc)
    for name, r in results.items():
        a, c = r["alone_summary"], r["with_cnn_summary"]
        k = "recall_at_precision_0.8"
        print(f"{name:<10} recall@P0.8 alone {a[k]['mean']:.3f} +- {a[k]['sd']:.3f}, with CNN "
              f"{c[k]['mean']:.3f} +- {c[k]['sd']:.3f}; AUC with CNN "
              f"{c['roc_auc']['mean']:.4f} +- {c['roc_auc']['sd']:.4f}; the seeds bagged: alone "
              f"{r['bagged_alone'][k]:.3f}, with CNN {r['bagged_with_cnn'][k]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
