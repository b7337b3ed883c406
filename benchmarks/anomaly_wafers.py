"""Unsupervised defect detection on the production test -> ``results/anomaly_wafers.json``.

    .venv/bin/python benchmarks/anomaly_wafers.py                     # both settings, all models
    .venv/bin/python benchmarks/anomaly_wafers.py --settings a --models vae --epochs 1 \\
        --max-train 2000 --max-test 3000 --out /tmp/anomaly_wafers_smoke.json

Two training settings, both scored on the **production test** (the seeded lot-disjoint 25 % of
WM-811K Test A lots, :func:`wafertk.data.splits.production_test_lots`, which nothing trains or
tunes on), AUC of "defective" (any label but ``none``) against ``none``, beside the shipped
supervised phase-1 detector's AUC on the same wafers:

* **(a)** trained on the ``none`` wafers of the shipped models' training data (WM-811K Training
  plus the Test A lots outside the production test and the demo sample), validated on a
  lot-disjoint 20 % of those lots (all labels: the validation AUC per epoch and the threshold);
* **(b)** trained on ``wm811k_unlabeled_200k.npz``: real unlabeled wafers with an unknown share
  of defects; no label is used at all (threshold from the training scores), the realistic
  case, where the robust objectives (soft-boundary Deep SVDD) should matter.

``--max-train``/``--max-test`` subsample (seeded) for quick checks; a full run uses neither.
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

#: Each model's parameters here (--epochs overrides the epochs); wafers at 32x32, one-hot.
MODELS: dict[str, dict] = {
    "vae": dict(latent_dim=32, conv_filters=(32, 64), epochs=20, batch_size=128),
    # one centre weight here (the three-weight search, picked on the validation AUC, is
    # --ocvae-weights 0.1,1,10: three times the training)
    "ocvae": dict(centre_weight=1.0, latent_dim=32, conv_filters=(32, 64),
                  epochs=20, batch_size=128),
    "deep-svdd": dict(latent_dim=32, conv_filters=(32, 64, 128), kernel_size=5,
                      learning_rate=1e-4, weight_decay=1e-6, epochs=30, batch_size=128),
    "deep-svdd-soft": dict(nu=0.1, latent_dim=32, conv_filters=(32, 64, 128), kernel_size=5,
                           learning_rate=1e-4, weight_decay=1e-6, epochs=30, batch_size=128,
                           warm_up_epochs=1),
    # translations carry information on wafer maps; rotations and flips of a round wafer
    # with random fails do not (measured by running with --rotation-transforms)
    "rotation": dict(transforms=("translate",), conv_filters=(32, 64), dense_units=128,
                     epochs=5, batch_size=128),
}


def _epochs(text: str) -> dict[str, int] | int:
    if "=" not in text:
        return int(text)
    return {k.strip(): int(v) for k, v in (p.split("=", 1) for p in text.split(","))}


def make(name: str, epochs: dict[str, int] | int | None, input_size: int, seed: int,
         rotation_transforms, trim_fraction: float = 0.0, ocvae_weights: str | None = None):
    from wafertk.anomaly.estimators import MODELS as BY_NAME

    kw = dict(MODELS[name], trim_fraction=trim_fraction)
    if isinstance(epochs, dict):
        epochs = epochs.get(name)
    if epochs is not None:
        kw["epochs"] = epochs
    if name == "ocvae" and ocvae_weights:
        kw["centre_weight"] = tuple(float(w) for w in ocvae_weights.split(","))
    if name == "rotation" and rotation_transforms:
        kw["transforms"] = tuple(rotation_transforms.split(","))
    cls, fixed = BY_NAME[name]
    return cls(**fixed, **kw, input_size=input_size, random_state=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default="a,b")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--epochs", type=_epochs,
                    help="N for every model, or per model (vae=4,rotation=2).")
    ap.add_argument("--ocvae-weights", help="Centre weights to search, e.g. 0.1,1,10.")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--max-train", type=int, help="Subsample the training wafers.")
    ap.add_argument("--max-test", type=int, help="Subsample the production test wafers.")
    ap.add_argument("--rotation-transforms", help="e.g. rotate,flip (default translate).")
    ap.add_argument("--trim-fraction", type=float, default=0.0,
                    help="Robust training: share of each batch (highest loss) left out.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                    "anomaly_wafers.json")
    args = ap.parse_args()

    import _wm811k_anomaly as wa
    from sklearn.metrics import average_precision_score, roc_auc_score

    from wafertk.registry import load_model

    t0 = time.perf_counter()
    settings = args.settings.split(",")
    models = args.models.split(",")
    bad = [m for m in models if m not in MODELS] + [s for s in settings if s not in "ab"]
    if bad:
        raise SystemExit(f"unknown model or setting {bad[0]!r}")
    pt = wa.production_test(args.max_test, args.seed)
    test, y_test = pt.test, pt.y
    print(f"production test: {len(test)} wafers, {int(y_test.sum())} defective", flush=True)

    detector = load_model("detector", kind=("cnn-detector", "ensemble-detector"))
    p = detector.predict_proba(test)[:, 1]
    supervised = {"roc_auc": float(roc_auc_score(y_test, p)),
                  "pr_auc": float(average_precision_score(y_test, p))}
    print(f"shipped supervised detector: AUC {supervised['roc_auc']:.4f}", flush=True)
    # the simplest unsupervised score a user would try first: the wafer's fail ratio
    fr = np.array([(m == 2).sum() / max((m > 0).sum(), 1) for m in test.maps])
    fail_ratio = {"roc_auc": float(roc_auc_score(y_test, fr)),
                  "pr_auc": float(average_precision_score(y_test, fr))}
    print(f"fail-ratio score: AUC {fail_ratio['roc_auc']:.4f}", flush=True)

    data: dict[str, dict] = {}
    if "a" in settings:
        pool = wa.labelled_pool(pt, args.seed)
        va = np.flatnonzero(pool.is_val)
        va = va[wa.subsample(len(va), None if args.max_train is None else args.max_train // 2,
                          args.seed)]
        xv = pool.wafers.take(va)
        data["a"] = {"train": wa.setting_a_train(pool, args.max_train, args.seed), "X_val": xv,
                     "y_val": xv.label_strings().astype(str) != "none",
                     "what": "none wafers of the shipped models' training data (lot-disjoint "
                             "validation with labels)"}
    if "b" in settings:
        data["b"] = {"train": wa.setting_b_train(args.max_train, args.seed), "X_val": None,
                     "y_val": None,
                     "what": "wm811k_unlabeled_200k.npz, no labels used"}
    print(f"data ready in {time.perf_counter() - t0:.0f} s", flush=True)

    results: dict[str, dict] = {}
    def write() -> None:
        """Write what is done so far (after every model: a long run keeps its results)."""
        out = {
            "protocol": "production test (production_test_lots of Test A), AUC defective vs none",
            "command": "python benchmarks/anomaly_wafers.py " + " ".join(sys.argv[1:]),
            "n_test": len(test), "n_test_defective": int(y_test.sum()),
            "supervised_detector": supervised,
            "fail_ratio_baseline": fail_ratio,
            "models": {m: {k: (list(v) if isinstance(v, tuple) else v)
                           for k, v in MODELS[m].items()} for m in models},
            "overrides": {"epochs": args.epochs, "max_train": args.max_train,
                          "max_test": args.max_test, "input_size": args.input_size,
                          "rotation_transforms": args.rotation_transforms,
                          "trim_fraction": args.trim_fraction, "seed": args.seed,
                          "ocvae_weights": args.ocvae_weights},
            "full_protocol": args.max_train is None and args.max_test is None,
            "settings": results,
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")

    for s in settings:
        d = data[s]
        results[s] = {"training_data": d["what"], "n_train": len(d["train"]), "models": {}}
        for m in models:
            est = make(m, args.epochs, args.input_size, args.seed, args.rotation_transforms,
                       args.trim_fraction, args.ocvae_weights)
            t = time.perf_counter()
            est.fit(d["train"], X_val=d["X_val"], y_val=d["y_val"],
                    on_epoch=lambda line: print("  " + line, flush=True))
            fit_s = time.perf_counter() - t
            sc = est.score_samples(test)
            pred = sc >= est.threshold_
            r = {"roc_auc": float(roc_auc_score(y_test, sc)),
                 "pr_auc": float(average_precision_score(y_test, sc)),
                 "recall_at_threshold": float(pred[y_test].mean()),
                 "precision_at_threshold": float(y_test[pred].mean()) if pred.any() else 0.0,
                 "flagged": float(pred.mean()), "fit_seconds": round(fit_s, 1),
                 "epochs": int(est.epochs)}
            if "val_auc" in est.history_:
                r["val_auc_per_epoch"] = est.history_["val_auc"]
            if hasattr(est, "weight_search_") and est.weight_search_:
                r["weight_search"] = est.weight_search_
                r["centre_weight"] = est.centre_weight_
            results[s]["models"][m] = r
            print(f"({s}) {m:<15} production AUC {r['roc_auc']:.4f} PR-AUC {r['pr_auc']:.4f} "
                  f"({fit_s:.0f} s)", flush=True)
            write()
    write()
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
