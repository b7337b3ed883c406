"""One-class CIFAR-10 with ``pretrained-knn`` (ImageNet SqueezeNet features + kNN), full protocol.

    .venv/bin/python benchmarks/anomaly_cifar_pretrained.py
        # -> benchmarks/results/anomaly_cifar_pretrained.json

1. **Selection, on CIFAR-10 training images only**: for each class, the first 1,000 training
   images of the class are the reference, and 200 other training images of every class
   (images 4,000-4,199 of each folder: never in a reference set) are scored, that class
   normal, the nine others anomalous; the layer pooled (SqueezeNet fire6 ... fire9) and ``k``
   are chosen by the mean ROC-AUC over the ten classes. The input side is fixed at 128 px
   beforehand (not tuned). No test image is read in this step.
2. **Test, the full protocol** of Ruff et al. / Golan & El-Yaniv with the chosen setting: for
   each class, :class:`wafertk.anomaly.PretrainedKNNDetector` is fitted on the class's 5,000
   training images and scores the 10,000 test images; ROC-AUC (and PR-AUC) of that class
   against the other nine. The embedding network is the same for every class (the same
   pretrained weights, nothing is trained), so the test images are embedded once, with the
   first class's detector, and every detector scores those embeddings
   (``_score_array``: the same numbers as ``score_samples``, checked on the first class).

The detector learns "normal" from one class alone, but its features come from a network
trained on ImageNet's labelled photographs: a different footing from the models trained from
scratch (docs/anomaly.md says so beside the figures).
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
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "data"
CIFAR = SHARED / "cifar10"
WEIGHTS = SHARED / "weights" / "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5"
LAYERS = ("fire6_concat", "fire7_concat", "fire8_concat", "fire9_concat")
KS = (1, 2, 5, 10, 20)
SIZE = 128


def _unit(e: np.ndarray) -> np.ndarray:
    return (e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def select(batch_size: int) -> dict:
    """Layer and k by mean AUC on CIFAR-10 training images (see the module docstring)."""
    import keras
    from anomaly_cifar import CLASSES
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import NearestNeighbors

    from wafertk.anomaly.data import read_image_folder
    from wafertk.anomaly.pretrained_knn import PretrainedKNNDetector

    t0 = time.perf_counter()
    ref, val, val_labels = [], [], []
    for c in CLASSES:
        imgs = read_image_folder(CIFAR / "train", classes=[c]).x
        ref.append(imgs[:1000])
        val.append(imgs[4000:4200])
        val_labels += [c] * 200
    val_x, val_labels = np.concatenate(val), np.asarray(val_labels)
    # one network with the four layers' pooled outputs: the detector's own embedding
    # network (resize, preprocessing, backbone) with more outputs
    det = PretrainedKNNDetector(weights=WEIGHTS, image_size=SIZE, layer=LAYERS[-1])
    net = det._build()
    backbone = net.get_layer("squeezenet")
    taps = keras.Model(backbone.input, [backbone.get_layer(n).output for n in LAYERS])
    x = net.get_layer("preprocess").output
    outs = [keras.layers.GlobalAveragePooling2D()(o) for o in taps(x)]
    multi = keras.Model(net.input, outs)

    def embed(images):
        parts = [multi.predict_on_batch(images[s:s + batch_size])
                 for s in range(0, len(images), batch_size)]
        return [_unit(np.concatenate([p[j] for p in parts])) for j in range(len(LAYERS))]

    e_val = embed(val_x)
    e_ref = [embed(r) for r in ref]
    table = {}
    for j, layer in enumerate(LAYERS):
        for k in KS:
            aucs = []
            for i, c in enumerate(CLASSES):
                nn = NearestNeighbors(n_neighbors=k).fit(e_ref[i][j])
                d, _ = nn.kneighbors(e_val[j])
                aucs.append(float(roc_auc_score(val_labels != c, d.mean(axis=1))))
            table[f"{layer} k={k}"] = {"layer": layer, "k": k, "mean_auc": float(np.mean(aucs)),
                                       "per_class": dict(zip(CLASSES, aucs, strict=True))}
            print(f"select {layer} k={k:<2} mean AUC {np.mean(aucs):.4f}", flush=True)
    best = max(table.values(), key=lambda r: r["mean_auc"])
    return {"what": "layer and k chosen on CIFAR-10 training images: per class the first "
                    "1,000 training images of the class as reference, images 4,000-4,199 of "
                    "every class scored (that class normal, the others anomalous)",
            "input_side": SIZE, "table": table,
            "chosen": {"layer": best["layer"], "k": best["k"], "mean_auc": best["mean_auc"]},
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-train", type=int, help="Subsample each class's training images "
                                                  "(quick checks; the figures use none).")
    ap.add_argument("--max-test", type=int, help="Subsample the test images, per class.")
    ap.add_argument("--layer", help="Skip the selection: this layer ...")
    ap.add_argument("--k", type=int, help="... and this k.")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                    "anomaly_cifar_pretrained.json")
    args = ap.parse_args()
    from anomaly_cifar import CLASSES, RUFF_DEEP_SVDD, RUFF_MEAN
    from sklearn.metrics import average_precision_score, roc_auc_score

    from wafertk._atomic import atomic_path
    from wafertk.anomaly.data import read_image_folder
    from wafertk.anomaly.pretrained_knn import PretrainedKNNDetector

    t0 = time.perf_counter()
    if args.layer and args.k:
        selection = {"chosen": {"layer": args.layer, "k": args.k}, "what": "given"}
    else:
        selection = select(args.batch_size)
    layer, k = selection["chosen"]["layer"], int(selection["chosen"]["k"])
    print(f"chosen: {layer}, k={k}", flush=True)
    test = read_image_folder(CIFAR / "test", limit=args.max_test)
    rows, e_test = [], None
    for i, c in enumerate(CLASSES):
        train = read_image_folder(CIFAR / "train", classes=[c], limit=args.max_train)
        t = time.perf_counter()
        det = PretrainedKNNDetector(weights=WEIGHTS, layer=layer, k=k, image_size=SIZE,
                                    batch_size=args.batch_size, random_state=0)
        det.fit(train.x)
        fit_s = time.perf_counter() - t
        if e_test is None:
            t1 = time.perf_counter()
            e_test = det.transform(test.x)
            embed_test_s = time.perf_counter() - t1
            check = det.score_samples(test.x[:256])
            np.testing.assert_allclose(check, det._score_array(e_test[:256]), rtol=1e-4,
                                       atol=1e-5)
        s = det._score_array(e_test)
        y = test.labels.astype(str) != c
        rows.append({"class": c, "ruff_deep_svdd": RUFF_DEEP_SVDD[i] / 100,
                     "roc_auc": float(roc_auc_score(y, s)),
                     "pr_auc": float(average_precision_score(y, s)),
                     "n_train": len(train), "n_test": len(test),
                     "fit_seconds": round(fit_s, 1)})
        print(f"{c:<10} AUC {rows[-1]['roc_auc']:.4f} (fit {fit_s:.0f} s)", flush=True)
    mean = float(np.mean([r["roc_auc"] for r in rows]))
    out = {"protocol": "one-class CIFAR-10: train on one class's training images, score the "
                       "test images, ROC-AUC of that class vs the other nine",
           "command": "python benchmarks/anomaly_cifar_pretrained.py "
                      + " ".join(sys.argv[1:]),
           "model": {"name": "pretrained-knn", "backbone": "squeezenet",
                     "weights": WEIGHTS.name, "layer": layer, "k": k, "input_side": SIZE},
           "selection": selection,
           "full_protocol": args.max_train is None and args.max_test is None,
           "rows": rows, "mean_roc_auc": mean,
           "mean_pr_auc": float(np.mean([r["pr_auc"] for r in rows])),
           "ruff_deep_svdd_mean": RUFF_MEAN / 100,
           "embed_test_seconds": round(embed_test_s, 1),
           "wall_seconds": round(time.perf_counter() - t0, 1),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "load_average_end": list(os.getloadavg())}}
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(out, indent=2) + "\n")
    print(f"mean AUC {mean:.4f} (Ruff et al. Deep SVDD {RUFF_MEAN / 100:.3f}) -> {args.out}")


if __name__ == "__main__":
    main()
