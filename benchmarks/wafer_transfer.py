"""SqueezeNet transfer classifier on wafer maps -> ``benchmarks/results/wafer_transfer.json``.

    .venv/bin/python benchmarks/wafer_transfer.py                     # full data, the config's
                                                                      # epochs (long)
    .venv/bin/python benchmarks/wafer_transfer.py --max-train 6000 --epochs 4 \\
        --fine-tune-epochs 3                                          # sized run
    .venv/bin/python benchmarks/wafer_transfer.py --max-train 300 --max-val 300 --epochs 1 \\
        --fine-tune-epochs 1 --out /tmp/wafer_transfer_smoke.json     # quick check

Issue 10: the image transfer path on wafer maps. The packaged config
``configs/classifier_transfer.yaml`` (architecture ``wafer_transfer_classifier``: the one-hot
map of the three die states read as an RGB image, SqueezeNet v1.1 with the real ImageNet
weights of ``../shared/data/weights/``, frozen, then the wafer CNNs' head with the
die-metadata branch) is trained through the normal trainer (:mod:`wafertk.training.trainer`)
in two phases: frozen backbone + head (Adam), then fine-tuned from ``fire6`` (SGD with
momentum).

Data and split are the shipped classifier's: ``/tmp/wafertk-shipped/train.h5`` (built by
``benchmarks/shipped_data.py train`` when missing: the WM-811K Training partition + the Test
A lots outside the production test and the demo sample), the lot-disjoint 20 % validation
split with seed 0 restricted to the eight defect classes (4,107 wafers); the script checks
the split's lot digest against the shipped classifier's manifest. ``--max-train`` subsamples
the *training* wafers only (stratified by class, seeded), so the validation figures stay
comparable; ``--max-val`` subsamples validation too (quick checks only: the result is then
flagged not comparable).

Reported beside the shipped classifier's validation figures (its manifest: the same split;
and ``benchmarks/results/shipped_models.json``, the earlier Training-only model scored on its
own split): validation accuracy and macro-F1 after the frozen phase (its kept epoch) and
after fine-tuning (the best epoch over both phases), per-class F1, epochs, wall times. The
JSON file is rewritten after every epoch (``status: running``) and at the end (``done``).
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
os.environ.setdefault("TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WEIGHTS = (ROOT.parent / "shared" / "data" / "weights"
           / "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5")
DATA = Path("/tmp/wafertk-shipped/train.h5")
OUT = ROOT / "benchmarks" / "results" / "wafer_transfer.json"
SHIPPED = ROOT / "wafertk" / "models" / "shipped" / "classifier" / "manifest.json"
SHIPPED_JSON = ROOT / "benchmarks" / "results" / "shipped_models.json"


def _write(path: Path, results: dict) -> None:
    """Rewrite the results file atomically (readable at any time during the run)."""
    from wafertk._atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")


def _shipped_reference() -> dict:
    """The shipped classifier's validation figures (same data and split) and the earlier
    Training-only classifier's from shipped_models.json."""
    ref: dict = {}
    if SHIPPED.is_file():
        extra = json.loads(SHIPPED.read_text())["extra"]
        val = extra.get("validation", {})
        ref["shipped_classifier"] = {
            "source": "wafertk/models/shipped/classifier/manifest.json (extra.validation: its "
                      "training run's lot-disjoint validation split, the split used here)",
            "architecture": extra.get("architecture"),
            "input_size": extra.get("config", {}).get("data", {}).get("input_size"),
            "params": extra.get("training", {}).get("params"),
            "n": val.get("n"), "accuracy": val.get("accuracy"),
            "macro_f1": val.get("macro_f1"), "per_class_f1": val.get("per_class_f1"),
            "split_lots_digest": extra.get("split", {}).get("split_lots_digest"),
            "n_train": extra.get("split", {}).get("n_train"),
            "training": extra.get("training"),
        }
    if SHIPPED_JSON.is_file():
        clf = json.loads(SHIPPED_JSON.read_text()).get("phase2_classifier", {})
        ref["shipped_models_json_phase2_classifier"] = {
            "source": "benchmarks/results/shipped_models.json (the earlier classifier trained "
                      "on the Training partition only, scored on its own split: not the same "
                      "validation wafers)",
            "n": clf.get("n"), "accuracy": clf.get("accuracy"), "macro_f1": clf.get("macro_f1"),
        }
    return ref


def _subsample(data, n_train: int | None, n_val: int | None, seed: int):
    """Stratified random subsets of the training (and validation) part of PreparedData."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def pick(y, n):
        if n is None or n >= len(y):
            return np.arange(len(y))
        idx = []
        for c in np.unique(y):
            members = np.flatnonzero(y == c)
            k = max(1, int(round(n * len(members) / len(y))))
            idx.append(rng.choice(members, min(k, len(members)), replace=False))
        return np.sort(np.concatenate(idx))

    tr, va = pick(data.y_train, n_train), pick(data.y_val, n_val)
    data.x_train, data.y_train = data.x_train[tr], data.y_train[tr]
    data.m_train = data.m_train[tr]
    if len(va) != len(data.y_val):
        data.x_val, data.y_val, data.m_val = data.x_val[va], data.y_val[va], data.m_val[va]
        data.val_wafers = data.val_wafers.take(va)
    return data


def _figures(decision, seconds: float, fit, phase: int) -> dict:
    m = decision.metrics
    rows = [i for i, p in enumerate(fit.history.get("phase", [1.0] * len(fit.history["loss"])))
            if p == phase]
    return {"accuracy": round(float(m["accuracy"]), 4),
            "macro_f1": round(float(m["macro_f1"]), 4),
            "per_class_f1": {k: round(float(v), 4) for k, v in
                             decision.figures.get("per_class_f1", {}).items()},
            "temperature": round(float(decision.temperature), 4),
            "epochs_run": len(rows),
            "val_loss_per_epoch": [round(fit.history["val_loss"][i], 4) for i in rows],
            "val_accuracy_per_epoch": [round(fit.history["val_accuracy"][i], 4) for i in rows],
            "wall_seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the shipped models' train.h5")
    ap.add_argument("--weights", type=Path, default=WEIGHTS, help="SqueezeNet weights .h5")
    ap.add_argument("--max-train", type=int, default=None,
                    help="at most this many training wafers (stratified); default all")
    ap.add_argument("--max-val", type=int, default=None,
                    help="quick checks only: subsample validation too (not comparable)")
    ap.add_argument("--epochs", type=int, default=None, help="frozen phase (train.epochs)")
    ap.add_argument("--fine-tune-epochs", type=int, default=None, help="fine_tune.epochs")
    ap.add_argument("--no-fine-tune", action="store_true", help="frozen phase only")
    ap.add_argument("--from-layer", default=None, help="fine_tune.from_layer")
    ap.add_argument("--fine-tune-lr", type=float, default=None, help="fine_tune.learning_rate")
    ap.add_argument("--batch-size", type=int, default=None, help="train.batch_size")
    ap.add_argument("--input-size", type=int, default=None, help="data.input_size")
    ap.add_argument("--seed", type=int, default=0, help="subsampling seed")
    ap.add_argument("--run-dir", type=Path, default=Path("/tmp/wafertk-transfer-run"),
                    help="where the run folder (model.keras, manifest, report) is written")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    from wafertk.config import load_config
    from wafertk.training.config import CnnTrainConfig

    overrides = {"model.weights": str(args.weights), "train.epochs": args.epochs,
                 "train.batch_size": args.batch_size, "data.input_size": args.input_size,
                 "fine_tune.epochs": args.fine_tune_epochs,
                 "fine_tune.from_layer": args.from_layer,
                 "fine_tune.learning_rate": args.fine_tune_lr,
                 "fine_tune.enabled": False if args.no_fine_tune else None}
    cfg = load_config(CnnTrainConfig, "classifier_transfer", overrides)
    if not args.data.is_file():
        import subprocess

        print(f"{args.data} missing: building it with benchmarks/shipped_data.py train",
              file=sys.stderr)
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "shipped_data.py"), "train",
                        str(args.data)], check=True)

    from wafertk.config import to_dict
    from wafertk.data import read_wafers

    results: dict = {
        "command": "python benchmarks/wafer_transfer.py " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "status": "running",
        "what": "wafer_transfer_classifier (SqueezeNet v1.1, real ImageNet weights, one-hot "
                "die states as RGB) through the wafer trainer: frozen backbone + head, then "
                "fine-tuned; validation = the shipped classifier's lot-disjoint split",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_at_start": [round(v, 2) for v in os.getloadavg()]},
        "data": str(args.data),
        "weights": args.weights.name,
        "config": to_dict(cfg),
        "max_train": args.max_train, "max_val": args.max_val,
        "comparable_to_shipped": args.max_val is None,
        "reference": _shipped_reference(),
        "epochs": [],
    }
    _write(args.out, results)

    def on_epoch(line: str) -> None:
        print(line, file=sys.stderr, flush=True)
        results["epochs"].append({"line": line,
                                  "elapsed_s": round(time.perf_counter() - t_start, 1)})
        _write(args.out, results)

    from wafertk.training import trainer

    ws = read_wafers(args.data)
    data = trainer.prepare_data(ws, cfg, "classifier", data_path=args.data)
    del ws
    digest = data.split["split_lots_digest"]
    ref_digest = results["reference"].get("shipped_classifier", {}).get("split_lots_digest")
    data = _subsample(data, args.max_train, args.max_val, args.seed)
    results["split"] = {**data.split, "n_train_used": int(len(data.y_train)),
                        "n_validation_used": int(len(data.y_val)),
                        "same_split_as_shipped": digest == ref_digest}
    _write(args.out, results)

    t0 = time.perf_counter()
    model = trainer.build_model(cfg, data)
    results["params"] = int(model.count_params())
    results["trainable_params_frozen_phase"] = int(sum(
        int(__import__("numpy").prod(w.shape)) for w in model.trainable_weights))
    first = trainer.fit_model(model, data, cfg, on_epoch=on_epoch)
    decision = trainer.calibrate_and_decide(model, data, cfg)
    results["frozen"] = {**_figures(decision, time.perf_counter() - t0, first, 1),
                         "best_epoch": first.best_epoch}
    _write(args.out, results)
    fit = first
    if cfg.fine_tune.enabled:
        t1 = time.perf_counter()
        fit = trainer.fine_tune_model(model, data, cfg, first, on_epoch=on_epoch)
        decision = trainer.calibrate_and_decide(model, data, cfg)
        results["fine_tuned"] = {**_figures(decision, time.perf_counter() - t1, fit, 2),
                                 **{k: fit.fine_tune[k] for k in
                                    ("from_layer", "learning_rate", "kept", "best_epoch",
                                     "trainable_backbone_tensors")}}
        _write(args.out, results)
    trainer.write_run_folder(args.run_dir, cfg, data, model, fit, decision,
                             seconds=time.perf_counter() - t_start)
    results["run_dir"] = str(args.run_dir)
    results["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    results["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    results["status"] = "done"
    _write(args.out, results)
    final = results.get("fine_tuned", results["frozen"])
    ref = results["reference"].get("shipped_classifier", {})
    print(f"validation macro-F1 {final['macro_f1']:.4f} accuracy {final['accuracy']:.4f} "
          f"(frozen {results['frozen']['macro_f1']:.4f}; shipped classifier "
          f"{ref.get('macro_f1', float('nan')):.4f}) in {results['wall_seconds']:.0f} s "
          f"-> {args.out}")


if __name__ == "__main__":
    main()
