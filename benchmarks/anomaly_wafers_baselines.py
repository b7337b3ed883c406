"""Baselines beside the deep anomaly models -> ``results/anomaly_wafers_baselines.json``.

    .venv/bin/python benchmarks/anomaly_wafers_baselines.py --max-train 6000

On the same production test as ``anomaly_wafers.py`` (AUC of defective vs ``none``):

* **features + kNN** (no labels): :class:`~wafertk.anomaly.features_knn.FeatureKNNDetector`,
  the wafer-map features of :mod:`wafertk.features` (regional density, Radon,
  largest-fail-region geometry, die metadata), standardised on the training wafers; score =
  mean distance to the 20 nearest training wafers. Trained on the
  same wafers as settings (a) and (b). The feature sets and k were chosen on validation
  wafers (Test A lots outside the production test), not on the production test;
* **latent hybrids**: a VAE (setting a's recipe) encodes the wafers; IsolationForest on its
  latent means (no labels), and XGBoost on them trained with labels on a few thousand
  labelled wafers of the training lots (semi-supervised: what a fab with a small labelled set
  beside its archive can do), beside the shipped supervised detector.
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
SETS = "density,radon,geometry,meta"
K = 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-train", type=int, default=6000)
    ap.add_argument("--n-labelled", type=int, default=3000,
                    help="Labelled training wafers for the supervised latent hybrid.")
    ap.add_argument("--vae-epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "anomaly_wafers_baselines.json")
    args = ap.parse_args()

    import _wm811k_anomaly as wa
    from sklearn.metrics import average_precision_score, roc_auc_score

    from wafertk.features.extract import extract_features

    t0 = time.perf_counter()
    pt = wa.production_test(seed=args.seed)
    test, y = pt.test, pt.y
    # the training wafers of settings (a) and (b), drawn as anomaly_wafers.py draws them
    pool = wa.labelled_pool(pt, args.seed)
    both, is_val = pool.wafers, pool.is_val
    train_a = wa.setting_a_train(pool, args.max_train, args.seed)
    train_b = wa.setting_b_train(args.max_train, args.seed)
    print(f"data ready in {time.perf_counter() - t0:.0f} s", flush=True)

    def auc(s):
        return {"roc_auc": float(roc_auc_score(y, s)),
                "pr_auc": float(average_precision_score(y, s))}

    res: dict = {}
    t = time.perf_counter()
    f_test = np.asarray(extract_features(test, sets=SETS, n_jobs=1))
    for name, tw in (("a", train_a), ("b", train_b)):
        f_tr = np.asarray(extract_features(tw, sets=SETS, n_jobs=1))
        det = wa.PrecomputedFeatureKNN(feature_sets=tuple(SETS.split(",")), k=K).fit(f_tr)
        res[f"features_knn_{name}"] = {**auc(det.score_samples(f_test)), "n_train": len(tw)}
        print(f"({name}) features + kNN: AUC {res[f'features_knn_{name}']['roc_auc']:.4f}",
              flush=True)
    res["features_seconds"] = round(time.perf_counter() - t, 1)

    from wafertk.anomaly import LatentClassifierHybrid, LatentHybridDetector, VAEDetector

    t = time.perf_counter()
    vae = VAEDetector(latent_dim=32, conv_filters=(32, 64), epochs=args.vae_epochs,
                      batch_size=128, input_size=32, random_state=args.seed).fit(train_a)
    res["vae_a"] = auc(vae.score_samples(test))
    iso = LatentHybridDetector(vae, detector="iforest", random_state=args.seed).fit(train_a)
    res["vae_latents_iforest_a"] = auc(iso.score_samples(test))
    lab = np.flatnonzero(~is_val)
    lab = lab[wa.subsample(len(lab), args.n_labelled, args.seed + 1)]
    labelled = both.take(lab)
    hyb = LatentClassifierHybrid(vae, classifier="xgboost", random_state=args.seed, n_jobs=2)
    hyb.fit(labelled, labelled.label_strings().astype(str))
    res["vae_latents_xgboost_labelled"] = {**auc(hyb.score_samples(test)),
                                           "n_labelled": len(labelled),
                                           "labelled_defective": int(
                                               (labelled.label_strings() != "none").sum())}
    res["hybrid_seconds"] = round(time.perf_counter() - t, 1)
    for k in ("vae_a", "vae_latents_iforest_a", "vae_latents_xgboost_labelled"):
        print(f"{k}: AUC {res[k]['roc_auc']:.4f}", flush=True)

    out = {"protocol": "production test (production_test_lots of Test A), AUC defective vs "
                       "none; training wafers as in anomaly_wafers.py",
           "command": "python benchmarks/anomaly_wafers_baselines.py " + " ".join(sys.argv[1:]),
           "n_test": len(test), "n_test_defective": int(y.sum()), "feature_sets": SETS,
           "k": K, "results": res, "wall_seconds": round(time.perf_counter() - t0, 1),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
