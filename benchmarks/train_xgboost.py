"""Feature-set ablation of the XGBoost baseline on the lot-disjoint validation split.

Extracts every feature set (with all three ``filters`` candidates) once for the labeled
defect wafers of a wafers.h5 file (or reuses ``--features`` if it exists), then trains the
baseline on column subsets with the split and parameters of ``wafertk train xgboost``
(the packaged ``xgboost`` config) and records validation accuracy / macro-F1 per subset in
``benchmarks/results/xgboost.json`` (key ``ablation``). The shipped model's own figures are
added by ``--shipped models/xgb`` (its report.json).

Usage::

    wafertk import npz ../shared/data/wm811k/wm811k_train.npz -o /tmp/train.h5
    python benchmarks/train_xgboost.py --data /tmp/train.h5 --features /tmp/defects_all.parquet
    wafertk train xgboost --data /tmp/train.h5 -o wafertk/models/shipped/xgboost \\
        --config xgboost        # the packaged config, also the default
    python benchmarks/train_xgboost.py --shipped wafertk/models/shipped/xgboost
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "xgboost.json"
ALL_FILTERS = ["sobel", "lbp", "ridge"]
BASE = ["density", "radon", "geometry", "meta"]


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _save(data: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def ablation(args) -> None:
    import pandas as pd

    from wafertk.baseline import XGBoostTrainConfig, split_for_training
    from wafertk.config import load_config
    from wafertk.data.h5 import read_wafers, write_wafers
    from wafertk.evaluate import classification_metrics
    from wafertk.features import extract_file, feature_names

    cfg = load_config(XGBoostTrainConfig, args.config, {"n_jobs": args.jobs})
    ws = read_wafers(args.data)
    train, val = split_for_training(ws, cfg)
    feats = Path(args.features)
    params_all = {"filters": {"filters": ALL_FILTERS}}
    all_sets = ["gabor", "filters", *BASE]
    if not feats.is_file():
        from wafertk.data.waferset import WaferSet

        both = WaferSet.concat([train, val])
        tmp = feats.with_suffix(".h5")
        write_wafers(both, tmp)
        t0 = time.perf_counter()
        extract_file(tmp, feats, all_sets, n_jobs=cfg.n_jobs, params=params_all)
        print(f"features: {time.perf_counter() - t0:.0f} s", flush=True)
    df = pd.read_parquet(feats).set_index("wafer_id")
    Xtr_all, Xva_all = df.loc[train.wafer_id.astype(str)], df.loc[val.wafer_id.astype(str)]
    ytr, yva = train.label_strings().astype(str), val.label_strings().astype(str)
    assert (Xtr_all["label"].to_numpy() == ytr).all()

    variants = {
        "base (density+radon+geometry+meta)": (BASE, {}),
        "base+gabor": (["gabor", *BASE], {}),
        **{f"base+filters[{f}]": (["filters", *BASE], {"filters": {"filters": [f]}})
           for f in ALL_FILTERS},
        "base+gabor+filters[sobel,lbp,ridge]": (all_sets, params_all),
        "all-but-gabor": ([x for x in all_sets if x != "gabor"], params_all),
        # leave one set out of the chosen default (filters = LBP)
        **{f"default-minus-{s}": ([x for x in ["filters", *BASE] if x != s],
                                  {"filters": {"filters": ["lbp"]}} if s != "filters" else {})
           for s in ["density", "radon", "geometry", "meta"]},
    }
    if args.only:
        variants = {k: v for k, v in variants.items() if k in args.only.split(";")}
    out = _load(RESULTS)
    res = out.setdefault("ablation", {})
    seeds = [int(x) for x in args.seeds.split(",")]
    for name, (sets, params) in variants.items():
        cols = feature_names(sets, params or None)
        Xtr, Xva = Xtr_all[cols].to_numpy(np.float32), Xva_all[cols].to_numpy(np.float32)
        runs = []
        for seed in seeds:
            clf = cfg.make_classifier().set_params(feature_sets=sets,
                                                   feature_params=params or None,
                                                   random_state=seed)
            t0 = time.perf_counter()
            clf.fit_features(Xtr, ytr, eval_set=(Xva, yva), classes=cfg.class_list())
            secs = time.perf_counter() - t0
            p = clf.predict_proba_features(Xva)
            m = classification_metrics(yva, np.asarray(clf.classes_)[p.argmax(1)],
                                       list(clf.classes_), proba=p)
            runs.append((m, clf.best_iteration_ + 1, secs))
        acc = np.array([r[0]["accuracy"] for r in runs])
        f1 = np.array([r[0]["macro_f1"] for r in runs])
        res[name] = {
            "feature_sets": sets, "feature_params": params, "n_features": len(cols),
            "seeds": seeds, "accuracy_mean": round(float(acc.mean()), 4),
            "accuracy_std": round(float(acc.std()), 4),
            "macro_f1_mean": round(float(f1.mean()), 4), "macro_f1_std": round(float(f1.std()), 4),
            "accuracy": [round(float(a), 4) for a in acc],
            "macro_f1": [round(float(a), 4) for a in f1],
            "rounds": [r[1] for r in runs], "fit_seconds": [round(r[2], 1) for r in runs],
            "per_class_f1_mean": {c: round(float(np.mean([r[0]["per_class"][c]["f1"]
                                                          for r in runs])), 4)
                                  for c in cfg.class_list()},
        }
        print(f"{name:40s} acc {acc.mean():.4f}+-{acc.std():.4f} macro-F1 {f1.mean():.4f}"
              f"+-{f1.std():.4f} ({len(cols)} features, rounds {[r[1] for r in runs]})",
              flush=True)
        out["ablation_setup"] = {
            "data": "WM-811K Training partition, labeled defect wafers (8 classes)",
            "early_stopping": "validation mlogloss (class-weighted), patience from the config",
            "split": f"lot_stratified_split({1 - cfg.val_fraction:.1f}, {cfg.val_fraction:.1f}), "
                     f"random_state={cfg.resolved_split_seed}",
            "n_train": len(train), "n_validation": len(val),
            "params": "configs/xgboost.yaml", "machine": platform.processor() or platform.machine(),
            "command": "python benchmarks/train_xgboost.py --data train.h5 --features F.parquet",
        }
        _save(out)


def shipped(args) -> None:
    folder = Path(args.shipped)
    rep = json.loads((folder / "report.json").read_text())
    man = json.loads((folder / "manifest.json").read_text())
    m = rep["metrics"]
    out = _load(RESULTS)
    out["shipped_model"] = {
        "folder": "wafertk/models/shipped/xgboost",
        "command": "wafertk train xgboost --data train.h5 -o wafertk/models/shipped/xgboost "
                   "--config configs/xgboost.yaml",
        "data": "WM-811K Training partition (wm811k_train.npz, all 54,355 labeled wafers "
                "as train.h5); the model learns the 8 defect classes",
        "validation": "validation_split(0.2, seed 0): lot-disjoint, stratified over all "
                      "labeled wafers, restricted to the defect classes; the shipped CNNs' "
                      "validation lots",
        "n_train": rep["extra"]["n_train"], "n_validation": rep["extra"]["n_validation"],
        "feature_sets": man["preprocessing"]["feature_sets"],
        "n_features": len(man["preprocessing"]["feature_names"]),
        "best_iteration": rep["extra"]["best_iteration"],
        "feature_seconds": rep["extra"]["feature_seconds"],
        "fit_seconds": rep["extra"]["fit_seconds"],
        "accuracy": round(m["accuracy"], 4), "balanced_accuracy": round(m["balanced_accuracy"], 4),
        "macro_f1": round(m["macro_f1"], 4), "weighted_f1": round(m["weighted_f1"], 4),
        "per_class": {c: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}
                      for c, d in m["per_class"].items()},
        "confusion_matrix": m["confusion_matrix"], "classes": m["classes"],
    }
    _save(out)
    print(json.dumps(out["shipped_model"], indent=1)[:2000])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="wafers.h5 with the WM-811K Training partition")
    ap.add_argument("--features", default="/tmp/wafertk_xgb_features.parquet")
    ap.add_argument("--config", default="xgboost",
                    help="packaged config name or YAML path (default: the packaged 'xgboost')")
    ap.add_argument("--only", help="';'-separated variant names")
    ap.add_argument("--jobs", type=int, help="override n_jobs (XGBoost threads)")
    ap.add_argument("--seeds", default="0,1,2", help="XGBoost seeds per variant")
    ap.add_argument("--shipped", help="record the figures of a trained run folder")
    args = ap.parse_args()
    if args.shipped:
        shipped(args)
    else:
        ablation(args)


if __name__ == "__main__":
    main()
