"""Trimming for ``features-knn`` on unlabeled data -> ``results/anomaly_knn_trim.json``.

    .venv/bin/python benchmarks/anomaly_knn_trim.py

Setting (b) of issue 11 trains on an unlabeled archive that holds an unknown share of
defective wafers; ``FeatureKNNDetector(trim_fraction=t)`` leaves out the share ``t`` of the
training wafers that are farthest from their own neighbours before it keeps the reference
set. This script measures whether that pays:

1. the training wafers of settings (a) and (b) exactly as ``anomaly_wafers_baselines.py``
   draws them (6,000 each, same seed);
2. **validation**: wafers of the validation lots of Test A (production-like lots outside the
   production test and outside the training lots; labels used only to score), ROC-AUC of
   defective vs ``none`` for each ``trim_fraction`` of the grid, per setting;
3. the trim fraction (and, with ``--k 5,10,20,50``, the number of neighbours) of best
   validation AUC is chosen per setting (the default k=20 untrimmed unless another beats it
   by more than 0.002); the **production test** is scored with the default and the chosen
   detector only. Nothing is chosen on the production test.

``--max-train`` sets the training (reference) wafers per setting (default 6,000, as the
baselines script; ``FeatureKNNDetector`` keeps up to 50,000). The detector is the library's
:class:`~wafertk.anomaly.features_knn.FeatureKNNDetector` on features extracted once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
#: the library's FeatureKNNDetector default (density, radon, geometry, meta, spatial); the
#: records written before the spatial set joined it (anomaly_knn_trim.json,
#: anomaly_knn_grid.json, anomaly_knn_trim_50k.json) used the first four
from wafertk.anomaly.features_knn import DEFAULT_SETS as SETS  # noqa: E402

K = 20
GRID = (0.0, 0.05, 0.1, 0.2, 0.3)
MIN_GAIN = 0.002


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-train", type=int, default=6000)
    ap.add_argument("--max-val", type=int, default=6000)
    ap.add_argument("--k", default=str(K),
                    help="neighbours: one value, or a comma-separated grid chosen on "
                         "validation with the trim (e.g. 5,10,20,50)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", default=",".join(SETS),
                    help="feature sets of the detector (default: the library's "
                         "FeatureKNNDetector default)")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "anomaly_knn_trim.json")
    args = ap.parse_args()

    import _wm811k_anomaly as wa
    from sklearn.metrics import average_precision_score, roc_auc_score

    from wafertk._atomic import atomic_path
    from wafertk.features.extract import extract_features

    t0 = time.perf_counter()
    pt = wa.production_test(seed=args.seed)
    test, y_test = pt.test, pt.y
    # the training wafers of both settings, drawn as the other anomaly benchmarks draw them
    pool = wa.labelled_pool(pt, args.seed)
    train_a = wa.setting_a_train(pool, args.max_train, args.seed)
    train_b = wa.setting_b_train(args.max_train, args.seed)
    # validation: the Test A wafers among the validation lots (production-like)
    va = np.flatnonzero(pool.is_val & (np.arange(len(pool.wafers)) >= pool.n_training_partition))
    val = pool.wafers.take(va[wa.subsample(len(va), args.max_val, args.seed + 2)])
    y_val = val.label_strings().astype(str) != "none"
    print(f"data ready in {time.perf_counter() - t0:.0f} s: validation {len(val)} wafers "
          f"({int(y_val.sum())} defective)", flush=True)

    sets = tuple(s.strip() for s in args.sets.split(","))
    t = time.perf_counter()
    feats = {name: np.asarray(extract_features(w, sets=list(sets), n_jobs=1))
             for name, w in (("a", train_a), ("b", train_b), ("val", val))}
    feat_seconds = time.perf_counter() - t
    print(f"features in {feat_seconds:.0f} s", flush=True)

    def auc(y, s):
        return {"roc_auc": round(float(roc_auc_score(y, s)), 4),
                "pr_auc": round(float(average_precision_score(y, s)), 4)}

    res: dict = {}
    f_test = None
    ks = [int(k) for k in args.k.split(",")]
    combos = [(k, trim) for k in ks for trim in GRID]

    def name(k, trim):  # one k: the keys of the earlier results ("0.1"); several: "k=5,0.1"
        return str(trim) if len(ks) == 1 else f"k={k},{trim}"

    default = (K if K in ks else ks[0], 0.0)
    for setting in ("a", "b"):
        grid, fitted = {}, {}
        for k, trim in combos:
            det = fitted[k, trim] = wa.PrecomputedFeatureKNN(
                feature_sets=sets, k=k, trim_fraction=trim).fit(feats[setting])
            grid[name(k, trim)] = {**auc(y_val, det.score_samples(feats["val"])),
                                   "n_trimmed": det.n_trimmed_}
            print(f"({setting}) k {k} trim {trim}: validation AUC "
                  f"{grid[name(k, trim)]['roc_auc']:.4f}", flush=True)
        best = max(combos, key=lambda c: grid[name(*c)]["roc_auc"])
        if grid[name(*best)]["roc_auc"] < grid[name(*default)]["roc_auc"] + MIN_GAIN:
            best = default
        entry = {"validation": grid, "chosen_k": best[0], "chosen_trim_fraction": best[1]}
        if f_test is None:
            t = time.perf_counter()
            f_test = np.asarray(extract_features(test, sets=list(sets), n_jobs=1))
            feat_seconds += time.perf_counter() - t
        for k, trim in sorted({default, best}):  # the default detector and the chosen one
            key = (f"production_test_trim_{trim}" if len(ks) == 1
                   else f"production_test_k{k}_trim_{trim}")
            entry[key] = auc(y_test, fitted[k, trim].score_samples(f_test))
        res[setting] = entry
        print(f"({setting}) chosen k {best[0]} trim {best[1]}", flush=True)

    out = {"protocol": f"features-knn ({'/'.join(sets)}), training wafers of "
                       "settings (a)/(b) as anomaly_wafers_baselines.py; k and trim chosen on "
                       "the validation lots of Test A; production test scored with the default "
                       "(k=20, trim 0) and the chosen setting only",
           "command": "python benchmarks/anomaly_knn_trim.py " + " ".join(sys.argv[1:]),
           "n_train": args.max_train, "n_val": len(val), "n_val_defective": int(y_val.sum()),
           "n_test": len(test), "n_test_defective": int(y_test.sum()), "grid": list(GRID),
           "k_grid": ks,
           "results": res, "features_seconds": round(feat_seconds, 1),
           "wall_seconds": round(time.perf_counter() - t0, 1),
           "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(out, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
