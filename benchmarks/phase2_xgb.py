"""Phase 2 from features: variants of the XGBoost pattern classifier, on the production
validation lots.

Judged on the defect wafers of the **production validation** lots (the Test A lots of the
shipped recipes' lot-disjoint validation split, ``benchmarks/shipped_data.py
production-validation``: 480 wafers), never on the production test. Every variant trains on
the defect wafers of the training side of that split with early stopping on the defect wafers
of the whole validation side, as ``wafertk train xgboost`` does, from the feature matrix
``benchmarks/phase1_xgb.py`` cached (``$WORK/phase1_features.npz``: the five feature sets of
the baseline for every wafer of the training file; other sets in ``features_<set>.npz``),
on the feature sets of ``configs/xgboost.yaml`` or ``--sets``.

    WORK=/tmp/wafertk-shipped python benchmarks/phase2_xgb.py [--sets a,b,...] [--out F]
        # -> benchmarks/results/phase2_xgb.json (written when the config had the baseline's
        #    five sets); phase2_xgb_local.json: --variants baseline with the local set added

Figures per variant: accuracy and macro-F1 on the production validation defect wafers, alone
and in the mean with the shipped CNN classifier's calibrated probabilities (the shipped phase
2 is that mean with the baseline recipe), and the fit time. With 480 wafers, differences
under ~0.02 are noise.
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
OUT = ROOT / "benchmarks" / "results" / "phase2_xgb.json"

#: name -> (XGBoostWaferClassifier keywords, weight of production-lot wafers)
VARIANTS: dict[str, tuple[dict, float]] = {
    "baseline": ({}, 1.0),  # configs/xgboost.yaml
    "production-3x": ({}, 3.0),
    "no-class-weight": ({"class_weight": None}, 1.0),
    "slower": ({"learning_rate": 0.05, "n_estimators": 1500, "early_stopping_rounds": 80},
               1.0),
    "shallower": ({"max_depth": 4, "n_estimators": 1200}, 1.0),
    "min-child-5": ({"min_child_weight": 5.0}, 1.0),
}


def main() -> int:
    from experiments import class_figures, seed_summary, write_result
    from phase1_xgb import set_columns

    from wafertk.baseline import XGBoostTrainConfig
    from wafertk.config import load_config
    from wafertk.data import read_wafers
    from wafertk.data.splits import validation_split
    from wafertk.data.waferset import DEFECT_CLASSES
    from wafertk.registry import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--sets", default=None, dest="feature_sets",
                    help="feature sets instead of configs/xgboost.yaml's (sets outside the "
                         "baseline's five are cached as $WORK/features_<set>.npz)")
    ap.add_argument("--seeds", default=None,
                    help="model seeds (random_state), e.g. 0,1,2: each variant is fitted "
                         "once per seed and the mean +- sd recorded (default: the config's "
                         "seed, once)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    ws = read_wafers(WORK / "train.h5", with_extras=True)
    ws = ws.take(ws.labeled_mask())
    z = np.load(WORK / "phase1_features.npz", allow_pickle=False)
    if not np.array_equal(z["ids"], ws.wafer_id.astype(str)):
        raise SystemExit("phase1_features.npz is not this file's: run phase1_xgb.py first")
    base = load_config(XGBoostTrainConfig, "xgboost")
    sets = args.feature_sets.split(",") if args.feature_sets else list(base.feature_sets)
    X = set_columns(ws, sets)  # these sets, in this order
    labels = ws.label_strings().astype(str)
    prod = ws.extras["partition"].astype(str) == "Test"
    split = validation_split(ws, base.val_fraction, base.resolved_split_seed)  # the CNNs'
    defect = np.isin(labels, DEFECT_CLASSES)
    tr, va = split.train[defect[split.train]], split.val[defect[split.val]]
    pv = va[prod[va]]  # production validation defect wafers
    pv_ws = read_wafers(WORK / "production_validation.h5")
    pv_keep = np.flatnonzero(np.isin(pv_ws.label_strings().astype(str), DEFECT_CLASSES))
    if not np.array_equal(pv_ws.wafer_id.astype(str)[pv_keep], ws.wafer_id.astype(str)[pv]):
        raise SystemExit("production_validation.h5 is not this split's production side")
    cnn = load_model("classifier", kind="cnn-classifier")
    classes = [str(c) for c in cnn.classes_]
    p_cnn = np.asarray(cnn.predict_proba(pv_ws.take(pv_keep)), np.float64)
    results = {"cnn": {"figures": class_figures(labels[pv], np.asarray(classes)[
        p_cnn.argmax(1)], classes)}}
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [base.seed]
    for name in args.variants.split(","):
        kw, w = VARIANTS[name]
        per_seed = []
        for seed in seeds:
            clf = base.make_classifier().set_params(feature_sets=sets, classes=classes,
                                                    n_jobs=2, random_state=seed, **kw)
            t0 = time.perf_counter()
            if w != 1.0:  # production-lot wafers weighted w (on top of the class weights)
                clf = _weighted_fit(clf, X[tr], labels[tr], X[va], labels[va],
                                    np.where(prod[tr], w, 1.0), classes)
            else:
                clf.fit_features(X[tr], labels[tr], eval_set=(X[va], labels[va]),
                                 classes=classes)
            fit_s = time.perf_counter() - t0
            p = clf.predict_proba_features(X[pv])
            pred = np.asarray(classes)[p.argmax(1)]
            mean = np.asarray(classes)[((p + p_cnn) / 2).argmax(1)]
            per_seed.append({"seed": seed, "best_iteration": clf.best_iteration_,
                             "figures": class_figures(labels[pv], pred, classes),
                             "with_cnn": class_figures(labels[pv], mean, classes),
                             "fit_seconds": round(fit_s, 1)})
            f, g = per_seed[-1]["figures"], per_seed[-1]["with_cnn"]
            print(f"{name:<16} seed {seed}: accuracy {f['accuracy']:.3f} macro-F1 "
                  f"{f['macro_f1']:.3f} | with CNN {g['accuracy']:.3f} / {g['macro_f1']:.3f} "
                  f"({fit_s:.0f} s)", flush=True)
        first = per_seed[0]
        results[name] = {"params": kw, "production_weight": w,
                         **{k: first[k] for k in ("best_iteration", "figures", "with_cnn",
                                                  "fit_seconds")}}
        if args.seeds:  # mean and sample sd over the model seeds
            results[name]["per_seed"] = per_seed
            results[name]["summary"] = {
                f"{part}_{k}": seed_summary([r[part] for r in per_seed])[k]
                for part in ("figures", "with_cnn") for k in ("accuracy", "macro_f1")}
            for k, v in results[name]["summary"].items():
                print(f"{name:<16} {k}: {v['mean']:.3f} +- {v['sd']:.3f}", flush=True)
    doc = {"what": __doc__.split("\n\n")[0],
           "command": "python benchmarks/phase2_xgb.py " + " ".join(sys.argv[1:]),
           "feature_sets": sets,
           "production_validation_defect_wafers": int(len(pv)), "train_wafers": int(len(tr)),
           "results": results}
    write_result(args.out, doc)
    return 0


def _weighted_fit(clf, X, y, Xv, yv, w, classes):
    """``fit_features`` with extra sample weights: XGBoost directly, the classifier's params."""
    import xgboost

    lookup = {c: i for i, c in enumerate(classes)}
    codes = np.array([lookup[c] for c in y])
    cv = np.array([lookup[c] for c in yv])
    counts = np.bincount(codes, minlength=len(classes)).astype(float)
    cw = len(codes) / (len(classes) * np.maximum(counts, 1))
    from wafertk.features import feature_names

    names = feature_names(clf._sets())
    dtr = xgboost.DMatrix(X, label=codes, weight=cw[codes] * w, feature_names=names)
    dva = xgboost.DMatrix(Xv, label=cv, weight=cw[cv], feature_names=names)
    booster = xgboost.train(clf._xgb_params(len(classes)), dtr,
                            num_boost_round=int(clf.n_estimators),
                            evals=[(dtr, "train"), (dva, "validation")],
                            early_stopping_rounds=clf.early_stopping_rounds, verbose_eval=False)
    clf.booster_ = booster
    clf.best_iteration_ = int(booster.best_iteration)
    clf.classes_ = np.asarray(classes, dtype=object)
    clf.feature_names_ = names
    clf.n_features_in_ = X.shape[1]
    return clf


if __name__ == "__main__":
    sys.exit(main())
