"""Semi-supervised XGBoosts: the shipped recipes retrained with pseudo-labelled unlabeled maps,
on the production validation lots.

Self-training (pseudo-labelling) on the 200,000 real unlabeled WM-811K maps
(``../shared/data/wm811k/wm811k_unlabeled_200k.npz``): the shipped two-phase models (the
teacher: ``detector`` and ``ensemble``) score a seeded sample of unlabeled wafers, the
confident ones get the teacher's label, and the two XGBoost recipes are retrained with them
added to their training side:

* phase 1 (``configs/xgboost_detector.yaml``, good vs defective): wafers with the teacher's
  calibrated P(defective) ``>= --hi`` become ``defective``, ``<= --lo`` ``good``, the rest are
  left out;
* phase 2 (``configs/xgboost.yaml``, the 8 patterns): wafers with P(defective) ``>= --hi``
  whose phase-2 top probability is ``>= --conf`` get that pattern.

Unlabeled wafers of any WM-811K Test A lot are left out (the production test, the production
validation and the demo lots among them: no wafer of a scored lot is trained on, labelled or
not). Two indirect links remain, both stated with the figures: the teacher's temperature and
threshold were fitted on the production validation lots' labels (so the cut-offs above are on
a P calibrated there), and unlabeled wafers of the Training partition's validation-split lots
may be among the pseudo-labelled ones (early stopping then sees lots that training also saw,
unlabeled). The recipes train exactly as ``benchmarks/phase1_seeds.py`` and
``benchmarks/phase2_xgb.py`` do (the shipped lot-disjoint split, early stopping on its
validation side, which holds no pseudo-labelled wafer) over ``--seeds``, with and without the
pseudo-labelled wafers in the same run, and are scored on the **production validation**
wafers (never the production test): phase 1 by recall at precision >= 0.80 (an upper bound
that ranks variants), ROC AUC and average precision, alone and in the mean with the shipped
CNN detector member (as the shipped ensemble); phase 2 by accuracy and macro-F1 on the 480
defect wafers, alone and in the mean with the shipped CNN classifier.

    WORK=/tmp/wafertk-shipped python benchmarks/pseudo_labels.py [--n 100000]
        # -> benchmarks/results/pseudo_labels.json (teacher scores and features cached in
        #    $WORK/pseudo_*.npz)
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
SHARED = ROOT.parent / "shared" / "data" / "wm811k"
OUT = ROOT / "benchmarks" / "results" / "pseudo_labels.json"
CNN_DETECTOR = ROOT / "wafertk" / "models" / "shipped" / "detector" / "members" / "0-cnn-detector"


def unlabeled_sample(n: int, seed: int):
    """A seeded sample of ``n`` unlabeled wafers outside every Test A lot."""
    from wafertk.data.importers import read_npz_pack

    unl = read_npz_pack(SHARED / "wm811k_unlabeled_200k.npz")
    test_a = np.load(SHARED / "wm811k_test_a.npz", allow_pickle=False)["lotName"].astype(str)
    ok = np.flatnonzero(~np.isin(unl.lot.astype(str), np.unique(test_a)))
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(ok, size=min(n, len(ok)), replace=False))
    return unl.take(pick), int(len(unl) - len(ok))


def teacher_scores(ws, cache: Path) -> dict:
    """The shipped detector's P(defective) of every wafer and the shipped ensemble's phase-2
    probabilities of those at or above the detector's threshold (NaN elsewhere)."""
    ids = ws.wafer_id.astype(str)
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        if np.array_equal(z["ids"], ids):
            return {k: z[k] for k in z.files}
    from wafertk.inspect.model import TwoPhaseClassifier
    from wafertk.registry import load_model

    t0 = time.perf_counter()
    pipe = TwoPhaseClassifier(load_model("detector"), load_model("ensemble"))
    p = pipe.p_defect(ws)
    rows = np.flatnonzero(p >= pipe.threshold)
    q = np.full((len(ws), len(pipe.classifier.classes_)), np.nan)
    if len(rows):
        q[rows] = pipe.pattern_proba(ws, rows)
    out = {"ids": ids, "p": p, "q": q,
           "names": np.asarray(pipe.classifier.classes_, dtype=str),
           "threshold": np.float64(pipe.threshold),
           "seconds": np.float64(time.perf_counter() - t0)}
    np.savez(cache, **out)
    return out


def recipe_features(cfg, ws, cache: Path) -> np.ndarray:
    """The recipe's feature matrix of ``ws`` (its sets, in its order), cached by wafer id and
    feature names."""
    from wafertk.features import feature_names

    ids = ws.wafer_id.astype(str)
    names = np.asarray(feature_names(list(cfg.feature_sets)))
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        if ("names" in z.files and np.array_equal(z["ids"], ids)
                and np.array_equal(z["names"], names)):
            return z["X"]
    X = cfg.make_classifier().transform_features(ws)
    np.savez(cache, ids=ids, names=names, X=X)
    return X


def fit_over_seeds(cfg, seeds: list[int], train: tuple, eval_set: tuple, classes: list[str],
                   score, tag: str, brief) -> dict:
    """The recipe ``cfg`` fitted on ``train`` once per model seed (early stopping on
    ``eval_set``); ``score(clf)`` gives the figures alone and in the mean with the CNN,
    ``brief(figures)`` their one-line summary for the log."""
    from experiments import seed_summary

    alone, mean, fits = [], [], []
    for seed in seeds:
        clf = cfg.make_classifier().set_params(random_state=seed)
        t1 = time.perf_counter()
        clf.fit_features(*train, eval_set=eval_set, classes=classes)
        fits.append({"seed": seed, "seconds": round(time.perf_counter() - t1, 1),
                     "trees": int(clf.best_iteration_) + 1})
        a, m = score(clf)
        alone.append(a)
        mean.append(m)
        print(f"{tag} seed {seed}: alone {brief(a)}, with CNN {brief(m)}", flush=True)
    return {"fits": fits, "alone": alone, "with_cnn": mean,
            "alone_summary": seed_summary(alone), "with_cnn_summary": seed_summary(mean)}


def main() -> int:
    from experiments import class_figures, detector_figures, write_result
    from phase1_xgb import set_columns

    from wafertk.baseline import XGBoostTrainConfig
    from wafertk.config import load_config
    from wafertk.data import read_wafers
    from wafertk.data.splits import validation_split
    from wafertk.data.waferset import DEFECT_CLASSES
    from wafertk.registry import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="unlabeled wafers sampled")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--hi", type=float, default=0.7, help="P(defective) for 'defective'")
    ap.add_argument("--lo", type=float, default=0.05, help="P(defective) for 'good'")
    ap.add_argument("--conf", type=float, default=0.9, help="phase-2 top probability")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--phases", default="1,2")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    phases = {int(s) for s in args.phases.split(",")}

    t0 = time.perf_counter()
    uws, left_out = unlabeled_sample(args.n, args.sample_seed)
    tag = f"{args.n}_{args.sample_seed}"
    teach = teacher_scores(uws, WORK / f"pseudo_scores_{tag}.npz")
    p_u, q_u, names = teach["p"], teach["q"], teach["names"].astype(str)
    teacher_s = float(teach["seconds"])
    flagged_share = float(np.mean(p_u >= teach["threshold"]))
    print(f"{len(uws)} unlabeled wafers ({left_out} of Test A lots left out); teacher "
          f"{teacher_s:.0f} s; flagged at the shipped threshold: {flagged_share:.3f}", flush=True)

    ws = read_wafers(WORK / "train.h5", with_extras=True)
    ws = ws.take(ws.labeled_mask())
    labels = ws.label_strings().astype(str)
    prod = ws.extras["partition"].astype(str) == "Test"
    pv_ws = read_wafers(WORK / "production_validation.h5")
    doc: dict = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "command": "python benchmarks/pseudo_labels.py " + " ".join(sys.argv[1:]),
        "unlabeled": {"sampled": int(len(uws)), "test_a_lot_wafers_left_out": left_out,
                      "sample_seed": args.sample_seed, "teacher_seconds": round(teacher_s, 1),
                      "flagged_share": flagged_share},
        "hi": args.hi, "lo": args.lo, "conf": args.conf, "seeds": seeds, "results": {}}

    if 1 in phases:
        cfg = load_config(XGBoostTrainConfig, "xgboost_detector")
        X = set_columns(ws, list(cfg.feature_sets))
        y_str = cfg.target_labels(labels)
        y = (labels != "none").astype(int)
        split = validation_split(ws, cfg.val_fraction, cfg.resolved_split_seed)
        tr, va = split.train, split.val
        pv = va[prod[va]]
        if not np.array_equal(pv_ws.wafer_id.astype(str), ws.wafer_id.astype(str)[pv]):
            raise SystemExit("production_validation.h5 is not this split's production side")
        p_cnn = np.asarray(load_model(CNN_DETECTOR, kind="cnn-detector").predict_proba(pv_ws),
                           np.float64)[:, 1]
        sel = np.flatnonzero((p_u >= args.hi) | (p_u <= args.lo))
        Xu = recipe_features(cfg, uws, WORK / f"pseudo_features_detector_{tag}.npz")[sel]
        good, defective = cfg.class_list()
        yu = np.where(p_u[sel] >= args.hi, defective, good)
        doc["phase1"] = {"pseudo_wafers": int(len(sel)),
                         "pseudo_defective": int(np.sum(yu == defective)),
                         "train_wafers": int(len(tr))}
        print(f"phase 1: {len(sel)} pseudo-labelled ({np.sum(yu == defective)} defective) "
              f"beside {len(tr)} labelled", flush=True)
        def score1(clf):
            p = clf.predict_proba_features(X[pv])[:, 1]
            return detector_figures(y[pv], p), detector_figures(y[pv], (p + p_cnn) / 2)

        for name, train in {"recipe": (X[tr], y_str[tr]),
                            "with-pseudo": (np.vstack([X[tr], Xu]),
                                            np.concatenate([y_str[tr], yu]))}.items():
            doc["results"][f"phase1-{name}"] = fit_over_seeds(
                cfg, seeds, train, (X[va], y_str[va]), cfg.class_list(), score1,
                f"phase 1 {name:<11}", lambda f: f"{f['recall_at_precision_0.8']:.3f}")

    if 2 in phases:
        cfg = load_config(XGBoostTrainConfig, "xgboost")
        X = set_columns(ws, list(cfg.feature_sets))
        split = validation_split(ws, cfg.val_fraction, cfg.resolved_split_seed)
        defect = np.isin(labels, DEFECT_CLASSES)
        tr, va = split.train[defect[split.train]], split.val[defect[split.val]]
        pv = va[prod[va]]
        keep = np.flatnonzero(np.isin(pv_ws.label_strings().astype(str), DEFECT_CLASSES))
        if not np.array_equal(pv_ws.wafer_id.astype(str)[keep], ws.wafer_id.astype(str)[pv]):
            raise SystemExit("production_validation.h5 is not this split's production side")
        cnn = load_model("classifier", kind="cnn-classifier")
        classes = [str(c) for c in cnn.classes_]
        if classes != list(names):
            raise SystemExit(f"phase-2 classes differ: {classes} vs {list(names)}")
        p_cnn = np.asarray(cnn.predict_proba(pv_ws.take(keep)), np.float64)
        flagged = np.flatnonzero(p_u >= args.hi)
        top = np.nanmax(q_u[flagged], axis=1)
        sel = flagged[top >= args.conf]
        Xu_all = recipe_features(cfg, uws.take(flagged),
                                 WORK / f"pseudo_features_classifier_{tag}_{args.hi:g}.npz")
        Xu = Xu_all[top >= args.conf]
        yu = names[np.nanargmax(q_u[sel], axis=1)]
        doc["phase2"] = {"pseudo_wafers": int(len(sel)), "train_wafers": int(len(tr)),
                         "pseudo_per_class": {c: int(np.sum(yu == c)) for c in classes}}
        print(f"phase 2: {len(sel)} pseudo-labelled beside {len(tr)} labelled: "
              f"{doc['phase2']['pseudo_per_class']}", flush=True)

        def score2(clf):
            p = clf.predict_proba_features(X[pv])
            names_ = np.asarray(classes)
            return (class_figures(labels[pv], names_[p.argmax(1)], classes),
                    class_figures(labels[pv], names_[((p + p_cnn) / 2).argmax(1)], classes))

        for name, train in {"recipe": (X[tr], labels[tr]),
                            "with-pseudo": (np.vstack([X[tr], Xu]),
                                            np.concatenate([labels[tr], yu]))}.items():
            doc["results"][f"phase2-{name}"] = fit_over_seeds(
                cfg, seeds, train, (X[va], labels[va]), classes, score2,
                f"phase 2 {name:<11}",
                lambda f: f"accuracy {f['accuracy']:.3f} macro-F1 {f['macro_f1']:.3f}")

    doc["seconds"] = round(time.perf_counter() - t0, 1)
    write_result(args.out, doc)
    for name, r in doc["results"].items():
        k = "recall_at_precision_0.8" if name.startswith("phase1") else "accuracy"
        a, c = r["alone_summary"][k], r["with_cnn_summary"][k]
        print(f"{name:<20} {k} alone {a['mean']:.3f} +- {a['sd']:.3f}, with CNN "
              f"{c['mean']:.3f} +- {c['sd']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
