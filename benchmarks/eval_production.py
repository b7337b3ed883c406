"""The shipped models on production lots -> ``benchmarks/results/production.json``.

    .venv/bin/python benchmarks/eval_production.py [--test-a PATH/wm811k_test_a.npz]

The **production test** is a fixed, seeded, lot-disjoint 25 % of the lots of WM-811K Test A
(:func:`wafertk.data.splits.production_test_lots`): whole, later production lots at the
production defect rate, which no shipped model trained or was tuned on. The figures here are
read off the shipped models as they are; nothing is fitted on these wafers.

With ``--official``, also the **official protocol** figure: all of Test A. That is only
meaningful for models trained on the Training partition alone (the models shipped before
production lots were added to training; their figures are kept in
``benchmarks/results/production_training_only_models.json``): the current shipped models
learnt from most Test A lots. Per data set:

* phase 1 alone: ROC AUC, average precision, recall/precision/F1 at the shipped threshold,
  and the best F1 over thresholds (what an operating point chosen at production prevalence
  could reach);
* ``classify`` (two-phase, the default: shipped detector + the CNN/XGBoost ensemble):
  nine-class accuracy and macro-F1, per class; and with ``--classifier classifier`` (the CNN
  alone, the faster option);
* phase 2 alone on the defect wafers (``classify --single-phase``): ensemble, CNN, XGBoost;
* the automation curve: share of wafers auto-accepted (confidence at or above a level) against
  the error rate among them; the shipped review level's point.

With ``--single-phase-model RUN`` it scores only one 9-class network (a classifier trained
with ``data.classes: all``, e.g. by ``benchmarks/experiments.py``) as ``classify
--single-phase --classifier RUN`` runs it, on the same production test, to set beside the
shipped two-phase pipeline's figures in ``production.json``: the issue's comparison of the
two shapes (the two-phase pipeline stays the product's; the comparison chooses nothing). The
run's split digest must be the shipped classifier's (same training file and lot-disjoint
split). Written to ``benchmarks/results/production_single_phase.json`` unless ``-o`` says
otherwise.

With ``--models DIR`` it scores the models of a folder laid out as ``wafertk/models/shipped``
(``detector``, ``classifier``, ``xgboost``, ``ensemble``) instead of the shipped ones, e.g. the
``DEST`` of a ``SEED=N benchmarks/train_shipped.sh`` run; ``-o`` is then required (the
shipped models' record is not overwritten), and each model's training seeds are recorded
(``benchmarks/production_seeds.py`` summarises such records over seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHIPPED = ROOT / "wafertk" / "models" / "shipped"


def _csv(path: Path):
    import pandas as pd

    return pd.read_csv(path, keep_default_na=False, dtype={"wafer_id": str, "lot": str})


def model_seeds(folder: Path) -> dict[str, int | None]:
    """The training seed of each trained model in ``folder`` (itself, or an ensemble's
    members): ``train.seed`` of a CNN, ``seed`` (random_state) of an XGBoost."""
    out = {}
    for man in sorted(folder.rglob("manifest.json")):
        cfg = json.loads(man.read_text()).get("extra", {}).get("config") or {}
        if cfg:
            seed = cfg["train"].get("seed") if "train" in cfg else cfg.get("seed")
            out[str(man.parent.relative_to(folder)) or "."] = seed
    return out


def automation_curve(confidence: np.ndarray, correct: np.ndarray, review_below: float) -> dict:
    """Share auto-accepted vs error among the accepted, over confidence levels.

    ``max_share_at_2pct_error`` is the share accepted at the lowest review level whose accepted
    wafers have at most 2 % errors (:func:`wafertk.calibrate.review_level`).
    """
    from wafertk.calibrate import acceptance, review_level

    points = [{"level": lv, **dict(zip(("accepted_share", "error_among_accepted"),
                                        acceptance(confidence, correct, lv).values(),
                                        strict=True))}
              for lv in (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)]
    best = acceptance(confidence, correct, review_level(confidence, correct, 0.02))
    shipped = acceptance(confidence, correct, review_below)
    return {
        "points": points,
        "max_share_at_2pct_error": best["accepted"],
        "shipped_review_below": review_below,
        "shipped_accepted_share": shipped["accepted"],
        "shipped_error_among_accepted": shipped["error_among_accepted"],
        "overall_error": float((~np.asarray(correct, bool)).mean()),
    }


def score(name: str, h5: Path, ws, work: Path, models: Path = SHIPPED) -> dict:
    """The figures of the models in ``models`` (detector, ensemble, classifier, xgboost:
    the layout of ``wafertk/models/shipped``) on the wafers ``ws`` stored in ``h5``."""
    from sklearn.metrics import precision_recall_curve

    from wafertk.data import WM811K_CLASSES
    from wafertk.data.waferset import DEFECT_CLASSES
    from wafertk.evaluate import binary_metrics, classification_metrics
    from wafertk.inspect import classify, load_detector

    truth = ws.label_strings().astype(str)
    out: dict = {"n": int(len(ws)), "lots": int(len(np.unique(ws.lot.astype(str)))),
                 "defect_rate": float((truth != "none").mean()),
                 "class_counts": {c: int((truth == c).sum()) for c in WM811K_CLASSES}}
    t0 = time.perf_counter()
    classify(h5, work / f"{name}-two", detector=models / "detector",
             classifier=models / "ensemble", report=False, progress=False)
    out["two_phase_seconds"] = round(time.perf_counter() - t0, 2)
    df = _csv(work / f"{name}-two" / "predictions.csv")
    assert list(df["wafer_id"]) == list(ws.wafer_id.astype(str))
    det = load_detector(models / "detector")  # loaded once: its threshold, its screen below
    thr = float(det.threshold)
    y = truth != "none"
    p = df["p_defect"].to_numpy(np.float64)
    b = binary_metrics(y, p, threshold=thr)
    prec, rec, _ = precision_recall_curve(y, p)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0)
    out["phase1"] = {k: b[k] for k in ("threshold", "roc_auc", "average_precision",
                                       "precision", "recall", "f1", "confusion_matrix")}
    out["phase1"]["best_f1_any_threshold"] = float(f1.max())
    pred = df["pattern"].astype(str).to_numpy()
    m9 = classification_metrics(truth, pred, list(WM811K_CLASSES))
    out["two_phase"] = {k: m9[k] for k in ("accuracy", "balanced_accuracy", "macro_f1",
                                           "weighted_f1", "per_class", "confusion_matrix")}
    conf = df["confidence"].to_numpy(np.float64)
    from wafertk.inspect import load_classifier

    review = float(load_classifier(models / "ensemble").review_below)
    out["automation"] = automation_curve(conf, pred == truth, review)
    cands = df["candidates"].astype(str)
    if (cands != "").all():  # conformal sets (a calibrated classifier)
        sets = [c.split("|") for c in cands]
        out["conformal"] = {
            "coverage_all": float(np.mean([t in s for t, s in zip(truth, sets, strict=True)])),
            "coverage_defective": float(np.mean([t in s for t, s, d in zip(
                truth, sets, truth != "none", strict=True) if d])),
            "mean_set_size_flagged": float(np.mean([len(s) for s, f in zip(
                sets, df["defective"].to_numpy() == 1, strict=True) if f]))}

    # the detector's screen (extra.screen), A/B: the same pipeline with the screen off
    if getattr(det, "screen_below", None) is not None:
        p0, _ = det.screen_proba(ws)
        level, det.screen_below = float(det.screen_below), None
        classify(h5, work / f"{name}-two-unscreened", detector=det,
                 classifier=models / "ensemble", report=False, progress=False)
        du = _csv(work / f"{name}-two-unscreened" / "predictions.csv")
        pu = du["p_defect"].to_numpy(np.float64)
        bu = binary_metrics(y, pu, threshold=thr)
        mu = classification_metrics(truth, du["pattern"].astype(str).to_numpy(),
                                    list(WM811K_CLASSES))
        # decisions from the `defective` columns (p_defect is written with 4 decimals)
        flag_s = df["defective"].to_numpy() == 1
        flag_u = du["defective"].to_numpy() == 1
        out["screen"] = {
            "level": level, "passed_on": float((p0 >= level).mean()),
            "flags_lost": int((flag_u & ~flag_s).sum()),
            "flags_lost_defective": int((flag_u & ~flag_s & y).sum()),
            "flags_added": int((flag_s & ~flag_u).sum()),
            "unscreened_phase1": {k: bu[k] for k in ("roc_auc", "average_precision",
                                                     "precision", "recall", "f1")},
            "unscreened_two_phase_macro_f1": mu["macro_f1"]}

    # the two-phase pipeline with the CNN alone as phase 2 (the faster option)
    classify(h5, work / f"{name}-two-cnn", detector=models / "detector",
             classifier=models / "classifier", report=False, progress=False)
    pc = _csv(work / f"{name}-two-cnn" / "predictions.csv")["pattern"].astype(str).to_numpy()
    mc = classification_metrics(truth, pc, list(WM811K_CLASSES))
    out["two_phase_cnn"] = {k: mc[k] for k in ("accuracy", "macro_f1", "per_class")}

    # phase 2 alone, on the defect wafers
    from wafertk.data import write_wafers

    dmask = np.isin(truth, DEFECT_CLASSES)
    dws = ws.take(np.flatnonzero(dmask))
    dpath = work / f"{name}-defects.h5"
    write_wafers(dws, dpath)
    dtruth = truth[dmask]
    for label, clf in (("ensemble", "ensemble"), ("cnn", "classifier"),
                       ("xgboost", "xgboost")):
        if clf == "xgboost" and not (models / "xgboost" / "model.json").is_file():
            continue
        t0 = time.perf_counter()
        classify(dpath, work / f"{name}-p2-{label}", mode="single-phase",
                 classifier=models / clf,
                 report=False, progress=False)
        secs = time.perf_counter() - t0
        dp = _csv(work / f"{name}-p2-{label}" / "predictions.csv")["pattern"].astype(str)
        m8 = classification_metrics(dtruth, dp.to_numpy(), list(DEFECT_CLASSES))
        out[f"phase2_{label}"] = {k: m8[k] for k in ("n", "accuracy", "macro_f1", "per_class",
                                                     "confusion_matrix")}
        out[f"phase2_{label}"]["seconds"] = round(secs, 2)
    return out


def score_single_phase(h5: Path, ws, work: Path, model: Path) -> dict:
    """One 9-class network's figures on ``ws`` (``classify --single-phase``)."""
    from wafertk.data import WM811K_CLASSES
    from wafertk.inspect import classify

    truth = ws.label_strings().astype(str)
    t0 = time.perf_counter()
    classify(h5, work / "single", mode="single-phase", classifier=str(model), report=False,
             progress=False)
    secs = time.perf_counter() - t0
    df = _csv(work / "single" / "predictions.csv")
    assert list(df["wafer_id"]) == list(ws.wafer_id.astype(str))
    from wafertk.evaluate import classification_metrics

    pred = df["pattern"].astype(str).to_numpy()
    m9 = classification_metrics(truth, pred, list(WM811K_CLASSES))
    y, flagged = truth != "none", pred != "none"
    tp = int(np.sum(y & flagged))
    return {"n": int(len(ws)), "model": str(model), "seconds": round(secs, 2),
            "nine_class": {k: m9[k] for k in ("accuracy", "balanced_accuracy", "macro_f1",
                                              "weighted_f1", "per_class", "confusion_matrix")},
            "as_detector": {"recall": tp / max(int(y.sum()), 1),
                            "precision": tp / max(int(flagged.sum()), 1)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test-a", default=str(ROOT.parent / "shared/data/wm811k/wm811k_test_a.npz"))
    ap.add_argument("-o", "--out", default=None,
                    help="default benchmarks/results/production.json, or "
                         "production_single_phase.json with --single-phase-model")
    ap.add_argument("--single-phase-model", type=Path, default=None,
                    help="score this 9-class network (classify --single-phase) instead")
    ap.add_argument("--models", type=Path, default=SHIPPED,
                    help="folder with detector/, classifier/, xgboost/, ensemble/ (default: "
                         "the shipped models; e.g. a DEST of SEED=N benchmarks/train_shipped.sh)")
    ap.add_argument("--official", action="store_true",
                    help="Also score all of Test A (only for models trained on Training alone).")
    args = ap.parse_args()
    if args.single_phase_model is not None and args.official:
        ap.error("--official scores the shipped models; it does not go with "
                 "--single-phase-model")
    args.models = args.models.resolve()
    if args.out is None and args.models != SHIPPED:
        ap.error("--models needs -o (the default file is the shipped models' record)")
    if args.out is None:
        args.out = str(ROOT / "benchmarks/results" / (
            "production.json" if args.single_phase_model is None
            else "production_single_phase.json"))

    from wafertk.data import write_wafers
    from wafertk.data.importers import read_npz_pack
    from wafertk.data.splits import (
        PRODUCTION_TEST_FRACTION,
        PRODUCTION_TEST_SEED,
        production_test_lots,
    )
    from wafertk.models import load_manifest

    ws = read_npz_pack(args.test_a)
    lots = production_test_lots(ws.lot)
    mask = np.isin(ws.lot.astype(str), lots)
    results: dict = {
        "command": "python benchmarks/eval_production.py " + " ".join(sys.argv[1:]),
        "production_test": {"source": Path(args.test_a).name, "seed": PRODUCTION_TEST_SEED,
                            "fraction_of_lots": PRODUCTION_TEST_FRACTION,
                            "n_lots": int(len(lots))},
        "models_dir": str(args.models),
        "models": {m: {"created": load_manifest(args.models / m).created,
                       "seeds": model_seeds(args.models / m)}
                   for m in ("detector", "classifier", "xgboost", "ensemble")},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
    }
    with tempfile.TemporaryDirectory(prefix="wafertk-prod-") as tmp:
        work = Path(tmp)
        prod = ws.take(np.flatnonzero(mask))
        write_wafers(prod, work / "production_test.h5")
        if args.single_phase_model is not None:
            own = load_manifest(args.single_phase_model)
            digest = own.extra.get("split", {}).get("split_lots_digest")
            shipped = load_manifest(args.models / "classifier").extra.get(
                "split", {}).get("split_lots_digest")
            if digest != shipped:
                sys.exit(f"{args.single_phase_model}: split digest {digest} is not the "
                         f"shipped classifier's {shipped}")
            results["models"] = {"single_phase": {"path": str(args.single_phase_model),
                                                  "created": own.created,
                                                  "classes": list(own.classes),
                                                  "split_lots_digest": digest}}
            results["single_phase"] = score_single_phase(
                work / "production_test.h5", prod, work, args.single_phase_model)
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
            r = results["single_phase"]
            print(f"production test ({r['n']} wafers): single 9-class network macro-F1 "
                  f"{r['nine_class']['macro_f1']:.3f}, as a detector recall "
                  f"{r['as_detector']['recall']:.3f} precision "
                  f"{r['as_detector']['precision']:.3f}")
            return
        results["production"] = score("production", work / "production_test.h5", prod, work,
                                      args.models)
        if args.official:
            write_wafers(ws, work / "test_a.h5")
            results["official_test_a"] = score("official", work / "test_a.h5", ws, work,
                                               args.models)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    p = results["production"]
    print(f"production test ({p['n']} wafers, {p['lots']} lots): phase 1 recall "
          f"{p['phase1']['recall']:.3f} precision {p['phase1']['precision']:.3f} AUC "
          f"{p['phase1']['roc_auc']:.3f}; two-phase macro-F1 {p['two_phase']['macro_f1']:.3f}; "
          f"phase 2 ensemble macro-F1 {p['phase2_ensemble']['macro_f1']:.3f}, CNN "
          f"{p['phase2_cnn']['macro_f1']:.3f}, XGBoost {p['phase2_xgboost']['macro_f1']:.3f}")


if __name__ == "__main__":
    main()
