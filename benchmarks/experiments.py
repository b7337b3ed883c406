"""Model experiments of the production-accuracy work, judged on the production validation lots.

Each try trains a variant of a packaged recipe (``configs/detector.yaml`` or
``configs/classifier.yaml`` with ``--set section.key=value`` overrides) on the shipped
models' training file and scores it on the **production validation** wafers (the Test A
lots of the recipes' lot-disjoint validation split: whole production lots at production
prevalence, never trained on). The production test is never read here.

    WORK=/tmp/wafertk-shipped   # from benchmarks/train_shipped.sh (train.h5,
                                # production_validation.h5)
    python benchmarks/experiments.py train NAME --task classifier --set train.epochs=12 \
        [--set train.label_smoothing=0.1 ...]
    python benchmarks/experiments.py score NAME --task classifier --model RUN_OR_SHIPPED \
        [--tta]                      # score an existing model (shipped, trained elsewhere)
    python benchmarks/experiments.py table    # markdown table of every recorded try

Figures (``benchmarks/results/experiments.json``, one record per try, replaced when a try
is re-run):

* detector: ROC AUC, average precision, recall at the highest-recall threshold with
  precision >= 0.80 (the shipped rule, here fitted and read on the same wafers, so an
  upper bound that ranks tries), best F1;
* classifier (8 patterns): macro-F1 and accuracy on the defect wafers;
* ``score --task stack --model A --model B``: the mean of the models' probabilities (CNN +
  XGBoost), nothing fitted;
* classifier with ``data.classes=all`` (one 9-class network): 9-class macro-F1 over all
  wafers, beside the two-phase pipeline's (``score two-phase``).

``--tta d4`` averages the outputs over the 8 rotations/flips of each resized map (``rot4``:
the 4 rotations; ``flip``: identity and mirror), as ``CnnPredictor(tta=...)`` does.
Wall times are this machine's, with other work beside it: they rank costs, no more.
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
WORK = Path(os.environ.get("WORK", "/tmp/wafertk-shipped"))
RESULTS = ROOT / "benchmarks" / "results" / "experiments.json"
KINDS = ("cnn-classifier", "xgboost-classifier", "ensemble-classifier")
DETECTOR_KINDS = ("cnn-detector", "ensemble-detector")
CONFIGS = {"detector": ROOT / "configs" / "detector.yaml",
           "classifier": ROOT / "configs" / "classifier.yaml"}


def predict(model, ws, tta: str | None) -> np.ndarray:
    """Class probabilities, averaged over the ``tta`` transforms of the resized maps
    (:data:`wafertk.models.predictors.TTA_TRANSFORMS`) when given."""
    if tta:
        model.tta = tta
    return np.asarray(model.predict_proba(ws), np.float64)


def p_defective(model, ws, tta: str | None) -> np.ndarray:
    """P(defective) of each wafer: a detector's second column (a CNN or ensemble detector,
    an XGBoost trained with ``--classes binary``), else 1 - P(none) of a classifier over all 9
    classes (``data.classes=all`` / ``--classes all``)."""
    classes = [str(c) for c in model.classes_]
    if classes == ["good", "defective"]:  # a detector (CNN, ensemble, binary XGBoost)
        return predict(model, ws, tta if hasattr(model, "tta") else None)[:, 1]
    if "none" not in classes:
        raise SystemExit(f"{model!r} has no 'none' class: it cannot score detection")
    return 1.0 - predict(model, ws, tta if hasattr(model, "tta") else None)[
        :, classes.index("none")]


def detector_figures(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    prec, rec, _ = precision_recall_curve(y, p)
    ok = prec >= 0.8
    f1 = 2 * prec * rec / np.maximum(prec + rec, 1e-12)
    return {"roc_auc": float(roc_auc_score(y, p)),
            "average_precision": float(average_precision_score(y, p)),
            "recall_at_precision_0.8": float(rec[ok].max()) if ok.any() else 0.0,
            "best_f1": float(f1.max())}


def class_figures(labels: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict:
    from wafertk.evaluate import classification_metrics

    m = classification_metrics(labels, pred, classes)
    return {"macro_f1": float(m["macro_f1"]), "accuracy": float(m["accuracy"]),
            "per_class_f1": {c: float(m["per_class"][c]["f1"]) for c in classes
                             if c in m["per_class"]}}


def score(model_path, task: str, tta: str | None = None, detector=None) -> dict:
    """Figures of one model on the production validation wafers."""
    from wafertk.data import read_wafers
    from wafertk.registry import load_model

    ws = read_wafers(WORK / "production_validation.h5")
    labels = ws.label_strings().astype(str)
    t0 = time.perf_counter()
    if task == "detector":
        # one model, or the mean of several models' P(defective) (a 9-class model's is
        # 1 - P(none)), nothing fitted
        paths = model_path if isinstance(model_path, list) else [model_path]
        p = np.mean([p_defective(load_model(m, kind=DETECTOR_KINDS + KINDS), ws, tta)
                     for m in paths], axis=0)
        figs = detector_figures((labels != "none").astype(int), p)
    elif task == "two-phase":
        from wafertk.inspect.model import TwoPhaseClassifier

        pipe = TwoPhaseClassifier(load_model(detector or "detector", kind=DETECTOR_KINDS),
                                  load_model(model_path, kind=KINDS))
        pred = np.asarray(pipe.predict_columns(ws)["pattern"]).astype(str)
        classes = sorted(set(labels))
        figs = class_figures(labels, pred, classes)
    elif task == "stack":
        # the mean of two classifiers' probabilities (e.g. CNN + XGBoost), nothing fitted
        models = [load_model(m, kind=KINDS) for m in model_path]
        classes = [str(c) for c in models[0].classes_]
        if any([str(c) for c in m.classes_] != classes for m in models):
            raise SystemExit("the stacked models have different classes")
        keep = np.flatnonzero(np.isin(labels, classes))
        sub = ws.take(keep)
        proba = np.mean([predict(m, sub, tta if hasattr(m, "tta") else None)
                         for m in models], axis=0)
        pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)].astype(str)
        figs = class_figures(labels[keep], pred, classes)
        figs["wafers"] = int(len(keep))
    else:
        clf = load_model(model_path, kind=KINDS)
        classes = [str(c) for c in clf.classes_]
        keep = np.flatnonzero(np.isin(labels, classes))
        sub = ws.take(keep)
        proba = predict(clf, sub, tta)
        pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)].astype(str)
        figs = class_figures(labels[keep], pred, classes)
        figs["wafers"] = int(len(keep))
    figs["score_seconds"] = round(time.perf_counter() - t0, 1)
    figs["tta"] = tta
    return figs


def record(name: str, entry: dict) -> None:
    from wafertk._atomic import atomic_path

    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[name] = entry
    with atomic_path(RESULTS) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def parse_sets(items: list[str]) -> dict:
    """``--set KEY=VALUE`` pairs as config overrides (values read as YAML)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE (e.g. train.epochs=12)")
        out[key.strip()] = yaml.safe_load(value)
    return out


def seed_summary(runs: list[dict]) -> dict:
    """Mean and sample standard deviation (0 for one run) of each float figure of ``runs``
    (one figures dict per training seed); other entries (per-class tables) are skipped."""
    return {k: {"mean": float(np.mean([r[k] for r in runs])),
                "sd": float(np.std([r[k] for r in runs], ddof=1)) if len(runs) > 1 else 0.0}
            for k in runs[0] if isinstance(runs[0][k], float)}


def validation_summary(lots, y: np.ndarray) -> dict:
    """Wafers, defective wafers and lots of a scored set (``y``: 1 = defective)."""
    return {"wafers": int(len(y)), "defective": int(np.sum(y)),
            "lots": int(len(np.unique(np.asarray(lots).astype(str))))}


def write_result(path: Path, doc: dict) -> None:
    """Write a benchmark's JSON record atomically and say where."""
    from wafertk._atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"-> {path}")


def train(name: str, task: str, sets: dict, out: Path) -> dict:
    from wafertk.config import load_config
    from wafertk.data import read_wafers
    from wafertk.training import CnnTrainConfig
    from wafertk.training.trainer import train as run_training

    cfg = load_config(CnnTrainConfig, CONFIGS[task], sets)
    ws = read_wafers(WORK / "train.h5")
    t0 = time.perf_counter()
    run_training(ws, out, cfg, task, data_path=str(WORK / "train.h5"),
                 on_epoch=lambda line: print(f"[{name}] {line}", flush=True))
    seconds = time.perf_counter() - t0
    man = json.loads((out / "manifest.json").read_text())
    best = man["extra"].get("training", {}).get("best_epoch")
    return {"seconds": round(seconds, 1), "best_epoch": best,
            "epochs_run": len((out / "history.csv").read_text().splitlines()) - 1}


def table() -> str:
    data = json.loads(RESULTS.read_text())
    rows = ["| try | task | overrides | figures on the production validation lots | wall |",
            "| --- | --- | --- | --- | --- |"]
    for name, e in data.items():
        f = e["figures"]
        if e["task"] == "detector":
            figs = (f"AUC {f['roc_auc']:.3f}, AP {f['average_precision']:.3f}, recall at "
                    f"P>=0.8 {f['recall_at_precision_0.8']:.3f}, best F1 {f['best_f1']:.3f}")
        else:
            figs = f"macro-F1 {f['macro_f1']:.3f}, accuracy {f['accuracy']:.3f}"
        if f.get("tta"):
            figs += f" ({f['tta']} TTA)"
        sets = ", ".join(f"{k}={v}" for k, v in e.get("overrides", {}).items()) or "-"
        wall = f"{e['train']['seconds'] / 60:.0f} min" if e.get("train") else "-"
        rows.append(f"| {name} | {e['task']} | {sets} | {figs} | {wall} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train")
    t.add_argument("name")
    t.add_argument("--task", choices=["detector", "classifier"], required=True)
    t.add_argument("--set", action="append", default=[], dest="sets")
    t.add_argument("--tta", default=None, help="also score with this TTA (d4, rot4, flip)")
    t.add_argument("--note", default="")
    s = sub.add_parser("score")
    s.add_argument("name")
    s.add_argument("--task", choices=["detector", "classifier", "two-phase", "stack"],
                   required=True)
    s.add_argument("--model", required=True, action="append",
                   help="a model folder or shipped name; stack, detector: give it twice or "
                        "more for the mean of the models' probabilities")
    s.add_argument("--detector", default=None)
    s.add_argument("--tta", default=None)
    s.add_argument("--note", default="")
    sub.add_parser("table")
    args = ap.parse_args()
    if args.what == "table":
        print(table())
        return 0
    if args.what == "train":
        sets = parse_sets(args.sets)
        out = WORK / "experiments" / args.name
        info = train(args.name, args.task, sets, out)
        figs = score(out, args.task)
        entry = {"task": args.task, "overrides": sets, "train": info, "figures": figs,
                 "model": str(out), "note": args.note}
        record(args.name, entry)
        if args.tta:
            record(f"{args.name}+{args.tta}", dict(entry, figures=score(out, args.task,
                                                                       tta=args.tta)))
    else:
        model = (args.model if args.task == "stack"
                 or (args.task == "detector" and len(args.model) > 1) else args.model[0])
        figs = score(model, args.task, args.tta, args.detector)
        record(args.name, {"task": args.task, "model": str(model), "figures": figs,
                           "note": args.note})
    print(json.dumps(figs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
