"""One-class CIFAR-10 with the anomaly detectors -> ``benchmarks/results/anomaly_cifar.json``.

    .venv/bin/python benchmarks/anomaly_cifar.py                      # full protocol
    .venv/bin/python benchmarks/anomaly_cifar.py --classes airplane --models deep-svdd \\
        --epochs 1 --max-train 500 --max-test 1000 --out /tmp/anomaly_cifar_smoke.json

The one-class protocol of Ruff et al. (ICML 2018) and Golan & El-Yaniv (NeurIPS 2018): for each
class, train on that class's 5,000 training images only, score the 10,000 test images, and
report the ROC-AUC of that class against the other nine (higher score = more anomalous, the
other classes being the anomalies). One column per model of :mod:`wafertk.anomaly`, beside
Ruff et al.'s Deep SVDD (one-class) figures. Reads ``../shared/data/cifar10/{train,test}``.

No labels of other classes are seen in training; the threshold (not used by the AUC) comes
from the training scores. ``--max-train``/``--max-test`` subsample (seeded) for quick checks;
the figures of a full run use neither.
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
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
#: Ruff et al. 2018, Table 1, one-class Deep SVDD, CIFAR-10 (AUC %), in CLASSES order.
RUFF_DEEP_SVDD = (61.7, 65.9, 50.8, 59.1, 60.9, 65.7, 67.7, 67.3, 75.9, 73.1)
RUFF_MEAN = 64.8

#: Each model's parameters in this benchmark (--epochs overrides the epochs).
MODELS: dict[str, dict] = {
    # Ruff et al.'s CIFAR-10 network and preprocessing; their schedule pre-trains an
    # autoencoder (250 + 100 epochs) and trains 150 epochs at lr 1e-4 (lowered at 50); their
    # code's LeakyReLU slope, 0.01 (runs 1-3 of docs/anomaly.md used 0.1: --negative-slope)
    "deep-svdd": dict(name="deep-svdd", latent_dim=128, conv_filters=(32, 64, 128),
                      kernel_size=5, gcn=True, learning_rate=1e-4, weight_decay=5e-7,
                      batch_size=200, epochs=150, pretrain_epochs=100, negative_slope=0.01),
    "deep-svdd-soft": dict(name="deep-svdd-soft", nu=0.1, latent_dim=128,
                           conv_filters=(32, 64, 128), kernel_size=5, gcn=True,
                           learning_rate=1e-4, weight_decay=5e-7, batch_size=200, epochs=150,
                           pretrain_epochs=100, warm_up_epochs=10),
    "vae": dict(name="vae", latent_dim=64, conv_filters=(32, 64, 128), epochs=50,
                batch_size=128),
    "ocvae": dict(name="ocvae", centre_weight=1.0, latent_dim=64, conv_filters=(32, 64, 128),
                  epochs=50, batch_size=128),
    # Golan & El-Yaniv's 72 transforms (flip x translations by 8 x rotations); a small CNN
    # instead of their wide ResNet; an epoch covers every (image, transform) pair
    "rotation": dict(name="rotation", transforms=("rotate", "flip", "translate"), shift=8,
                     conv_filters=(64, 128, 256), dense_units=256, epochs=3, batch_size=128),
}


def _epochs(text: str) -> dict[str, int] | int:
    if "=" not in text:
        return int(text)
    return {k.strip(): int(v) for k, v in (p.split("=", 1) for p in text.split(","))}


def make(name: str, epochs: dict[str, int] | int | None, pretrain_epochs: int | None,
         seed: int,
         rotation_transforms: str | None = None, pretrain_lr: float | None = None,
         negative_slope: float | None = None):
    from wafertk.anomaly.estimators import MODELS as CLASSES_BY_NAME

    kw = dict(MODELS[name])
    kw.pop("name")
    if name == "rotation" and rotation_transforms:
        kw["transforms"] = tuple(rotation_transforms.split(","))
    if isinstance(epochs, dict):
        epochs = epochs.get(name)
    if epochs is not None:
        kw["epochs"] = epochs
    if pretrain_epochs is not None and "pretrain_epochs" in kw:
        kw["pretrain_epochs"] = pretrain_epochs
    if pretrain_lr is not None and "pretrain_epochs" in kw:
        kw["pretrain_learning_rate"] = pretrain_lr
    if negative_slope is not None and name.startswith("deep-svdd"):
        kw["negative_slope"] = negative_slope
    cls, fixed = CLASSES_BY_NAME[name]
    return cls(**fixed, **kw, random_state=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", default=",".join(CLASSES),
                    help="Comma-separated normal classes (names or 0-9).")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--epochs", type=_epochs,
                    help="Override the epochs: N for every model, or per model "
                         "(deep-svdd=10,rotation=6).")
    ap.add_argument("--pretrain-epochs", type=int, help="Override Deep SVDD's pre-training.")
    ap.add_argument("--pretrain-lr", type=float,
                    help="Deep SVDD's pre-training learning rate (default: its learning rate).")
    ap.add_argument("--negative-slope", type=float,
                    help="Deep SVDD's LeakyReLU slope (default: deep-svdd 0.01, Ruff et al.'s "
                         "code; deep-svdd-soft 0.1; runs 1-3 of docs/anomaly.md used 0.1).")
    ap.add_argument("--max-train", type=int, help="Subsample the class's training images.")
    ap.add_argument("--max-test", type=int, help="Subsample the test images (per class).")
    ap.add_argument("--rotation-transforms", help="e.g. rotate (default: rotate,flip,"
                                                  "translate, the paper's 72).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                    "anomaly_cifar.json")
    args = ap.parse_args()

    from sklearn.metrics import average_precision_score, roc_auc_score

    from wafertk.anomaly.data import read_image_folder

    classes = [CLASSES[int(c)] if c.isdigit() else c for c in args.classes.split(",")]
    models = args.models.split(",")
    unknown = [m for m in models if m not in MODELS] + [c for c in classes if c not in CLASSES]
    if unknown:
        raise SystemExit(f"unknown model or class {unknown[0]!r}")
    t0 = time.perf_counter()
    test = read_image_folder(CIFAR / "test", limit=args.max_test)
    print(f"{len(test)} test images read in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []

    def write() -> dict[str, float]:
        """Write the classes done so far (after every class)."""
        mean = {m: float(np.mean([r[m] for r in rows])) for m in models}
        out = {
            "protocol": "one-class CIFAR-10: train on one class's training images, score the "
                        "test images, ROC-AUC of that class vs the other nine",
            "command": "python benchmarks/anomaly_cifar.py " + " ".join(sys.argv[1:]),
            "models": {m: {k: (list(v) if isinstance(v, tuple) else v)
                           for k, v in MODELS[m].items()} for m in models},
            "overrides": {"epochs": args.epochs, "pretrain_epochs": args.pretrain_epochs,
                          "rotation_transforms": args.rotation_transforms,
                          "pretrain_lr": args.pretrain_lr,
                          "negative_slope": args.negative_slope,
                          "max_train": args.max_train, "max_test": args.max_test,
                          "seed": args.seed},
            "full_protocol": len(rows) == 10 and args.max_train is None
            and args.max_test is None,
            "rows": rows,
            "mean": mean,
            "ruff_deep_svdd_mean": RUFF_MEAN / 100,
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
        return mean

    for c in classes:
        train = read_image_folder(CIFAR / "train", classes=[c], limit=args.max_train)
        y = test.labels.astype(str) != c  # the other classes are the anomalies
        row: dict = {"class": c, "ruff_deep_svdd": RUFF_DEEP_SVDD[CLASSES.index(c)] / 100,
                     "n_train": len(train), "n_test": len(test)}
        for m in models:
            est = make(m, args.epochs, args.pretrain_epochs, args.seed,
                       args.rotation_transforms, args.pretrain_lr, args.negative_slope)
            t = time.perf_counter()
            log: list[str] = []

            def on_epoch(line: str, log: list[str] = log) -> None:
                print("  " + line, flush=True)
                log.append(line)

            est.fit(train.x, on_epoch=on_epoch)
            s = est.score_samples(test.x)
            row[m] = float(roc_auc_score(y, s))
            row[f"{m}_pr_auc"] = float(average_precision_score(y, s))
            row[f"{m}_seconds"] = round(time.perf_counter() - t, 1)
            row[f"{m}_epochs"] = log  # the training log: one line an epoch, losses and times
            print(f"{c:<10} {m:<15} AUC {row[m]:.4f}  ({row[f'{m}_seconds']:.0f} s)",
                  flush=True)
        rows.append(row)
        write()
    mean = write()
    print(f"mean AUC: {', '.join(f'{m} {v:.4f}' for m, v in mean.items())} (Ruff et al. "
          f"Deep SVDD {RUFF_MEAN / 100:.3f}) -> {args.out}")


if __name__ == "__main__":
    main()
