"""Decision rules of the two-phase output, compared on the production validation lots.

``classify --two-phase`` names a wafer ``none`` when the shipped detector's calibrated
P(defective) ``p`` is under its threshold, else phase 2's top pattern. The threshold is fitted
for phase 1's own target (the highest recall at precision >= 0.80), not for the 9-class
macro-F1. This script scores the shipped detector and the default phase 2 (``ensemble``) once
on the **production validation** wafers (the Test A lots of the shipped recipes' lot-disjoint
validation split; never the production test) and compares decision rules on the 9-class
macro-F1:

* ``threshold``: ``none`` below ``t``, else phase 2's argmax, for a sweep of ``t`` (the
  shipped rule is ``t`` = the detector's threshold);
* ``product``: the argmax of ``[w (1 - p), p q_1, ..., p q_8]`` (``q``: phase 2's calibrated
  probabilities), for a sweep of the weight ``w`` on ``none`` (``w = 1``: the pipeline's own
  9-class probabilities, ``TwoPhaseClassifier.predict_proba``).

For scale, the shipped rule's figure with a perfect phase 1 (every defective wafer flagged,
no other) and with a perfect phase 2 behind the shipped phase 1 (``perfect_phase1``,
``perfect_phase2``). A rule's parameter chosen and read on the same wafers is optimistic, so
each rule is also scored **honestly** by lot-grouped cross-fitting: the validation lots are
split into ``--folds`` groups; for each group the parameter is chosen on the other groups and
applied to it; the pooled predictions are scored once (repeated over ``--repeats`` lot
shuffles, mean and sd; the sd is the spread over the shuffles, not the sampling error of
480 defect wafers, which is ~0.02). The shipped rule's threshold was itself fitted on these
lots (``wafertk calibrate``), so it is cross-fitted the same way (its precision rule applied
on the other groups). A rule is worth shipping only if its cross-fitted figure beats the
shipped rule's by more than the noise.

    WORK=/tmp/wafertk-shipped python benchmarks/two_phase_rule.py
        # -> benchmarks/results/two_phase_rule.json (about 2 min; cached scores in $WORK)
    python benchmarks/two_phase_rule.py --single $WORK/experiments/NAME
        # the same rules for one 9-class network (``data.classes: all``): P(defective) is
        # 1 - P(none); -> benchmarks/results/two_phase_rule_NAME.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
WORK = Path(os.environ.get("WORK", "/tmp/wafertk-shipped"))
OUT = ROOT / "benchmarks" / "results" / "two_phase_rule.json"
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 3)
NONE_WEIGHTS = np.round(np.exp(np.linspace(np.log(0.1), np.log(8.0), 51)), 4)


def macro_f1(labels: np.ndarray, pred: np.ndarray, classes: list[str]) -> float:
    """Macro-F1 over ``classes`` (the 9 classes present in the labels)."""
    from sklearn.metrics import f1_score

    return float(f1_score(labels, pred, labels=classes, average="macro", zero_division=0))


def rule_threshold(p: np.ndarray, q: np.ndarray, names: np.ndarray, t: float) -> np.ndarray:
    """``none`` below ``t``, else phase 2's top pattern."""
    return np.where(p >= t, names[q.argmax(axis=1)], "none")


def rule_product(p: np.ndarray, q: np.ndarray, names: np.ndarray, w: float) -> np.ndarray:
    """The argmax of ``[w (1 - p), p q]``."""
    scores = np.concatenate([(w * (1 - p))[:, None], p[:, None] * q], axis=1)
    return np.concatenate([["none"], names])[scores.argmax(axis=1)]


RULES = {"threshold": (rule_threshold, THRESHOLDS), "product": (rule_product, NONE_WEIGHTS)}


def best_param(rule, grid, p, q, names, labels, classes) -> tuple[float, float]:
    """The grid value with the highest macro-F1 (the middle of ties), and that figure."""
    scores = np.array([macro_f1(labels, rule(p, q, names, g), classes) for g in grid])
    top = np.flatnonzero(scores >= scores.max() - 1e-12)
    i = int(top[len(top) // 2])
    return float(grid[i]), float(scores[i])


def precision_threshold(p, q, names, labels, classes) -> tuple[float, float]:
    """The shipped recipe's threshold: the highest recall with precision >= 0.80 (phase 1's
    own target, :func:`wafertk.calibrate.threshold_by_rule`), and the macro-F1 it gives."""
    from wafertk.calibrate import threshold_by_rule

    t = threshold_by_rule(labels != "none", p, "precision", 0.8)
    return t, macro_f1(labels, rule_threshold(p, q, names, t), classes)


def cross_fitted(rule, choose, p, q, names, labels, lots, classes, folds: int, seed: int
                 ) -> tuple[float, list[float]]:
    """Macro-F1 of the rule with its parameter chosen by ``choose(p, q, names, labels,
    classes) -> (param, figure)`` (the best macro-F1 on a grid, or the shipped precision rule)
    on the other lot groups."""
    rng = np.random.default_rng(seed)
    uniq = np.unique(lots)
    group_of = dict(zip(rng.permutation(uniq), np.arange(len(uniq)) % folds, strict=True))
    g = np.array([group_of[lot] for lot in lots])
    pred = np.empty(len(p), dtype=object)
    params = []
    for k in range(folds):
        fit, app = g != k, g == k
        param, _ = choose(p[fit], q[fit], names, labels[fit], classes)
        params.append(param)
        pred[app] = rule(p[app], q[app], names, param)
    return macro_f1(labels, pred.astype(str), classes), params


def cross_fitted_figures(rule, choose, p, q, names, labels, lots, classes, folds: int,
                         repeats: int) -> dict:
    """:func:`cross_fitted` over ``repeats`` lot shuffles: mean, sample sd, the parameters
    chosen."""
    honest = [cross_fitted(rule, choose, p, q, names, labels, lots, classes, folds, seed)
              for seed in range(repeats)]
    figs = [h[0] for h in honest]
    return {"cross_fitted_macro_f1_mean": float(np.mean(figs)),
            "cross_fitted_macro_f1_sd": float(np.std(figs, ddof=1)) if len(figs) > 1 else 0.0,
            "cross_fitted_params": [round(x, 4) for x in sorted({x for h in honest
                                                                 for x in h[1]})]}


def scores(refresh: bool, single: Path | None = None) -> dict:
    """The shipped detector's P(defective) and the shipped ensemble's probabilities of every
    production validation wafer (cached in ``$WORK/two_phase_scores.npz``); with ``single``
    (a 9-class model), its ``1 - P(none)`` and its pattern probabilities renormalised
    (cached in ``$WORK/two_phase_scores_<folder name>.npz``)."""
    from wafertk.data import read_wafers

    cache = WORK / ("two_phase_scores.npz" if single is None
                    else f"two_phase_scores_{single.name}.npz")
    ws = read_wafers(WORK / "production_validation.h5")
    from wafertk.inspect.model import TwoPhaseClassifier
    from wafertk.models import load_manifest
    from wafertk.registry import load_model

    shipped = Path(__file__).resolve().parents[1] / "wafertk" / "models" / "shipped"
    key = np.asarray([str(single) if single is not None else "shipped"] + (
        [load_manifest(shipped / m).created for m in ("detector", "ensemble")]
        if single is None else [load_manifest(single).created]))
    ids = ws.wafer_id.astype(str)
    if cache.exists() and not refresh:
        z = np.load(cache)
        if ("key" in z.files and np.array_equal(z["key"], key)
                and np.array_equal(z["ids"], ids)):
            return {k: z[k] for k in z.files}

    t0 = time.perf_counter()
    if single is None:
        det, clf = load_model("detector"), load_model("ensemble")
        pipe = TwoPhaseClassifier(det, clf)
        proba = pipe.predict_proba(ws)
        names, threshold = np.asarray(clf.classes_, dtype=str), pipe.threshold
    else:  # one 9-class network: reorder its columns to [none, patterns...]
        clf = load_model(single, kind="cnn-classifier")
        classes = [str(c) for c in clf.classes_]
        if "none" not in classes:
            raise SystemExit(f"{single}: not a 9-class model (no 'none' class)")
        order = [classes.index("none")] + [i for i, c in enumerate(classes) if c != "none"]
        proba = np.asarray(clf.predict_proba(ws), np.float64)[:, order]
        names = np.asarray(classes, dtype=str)[order[1:]]
        threshold = np.nan  # its own rule is the argmax (product rule, w = 1)
    p = 1.0 - proba[:, 0]
    q = proba[:, 1:] / np.maximum(p[:, None], 1e-300)
    out = {"key": key, "ids": ids, "p": p, "q": q, "names": names,
           "labels": ws.label_strings().astype(str), "lots": ws.lot.astype(str),
           "threshold": np.float64(threshold),
           "seconds": np.float64(time.perf_counter() - t0)}
    np.savez(cache, **out)
    return out


def main() -> int:
    from experiments import write_result

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--refresh", action="store_true", help="recompute the cached scores")
    ap.add_argument("--single", type=Path, default=None,
                    help="score one 9-class network (a cnn-classifier with 'none') instead of "
                         "the shipped pipeline; its own rule is the argmax")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"default {OUT.name}, or two_phase_rule_<model>.json with --single")
    args = ap.parse_args()
    if args.out is None:
        args.out = OUT if args.single is None else OUT.with_name(
            f"two_phase_rule_{args.single.name}.json")

    s = scores(args.refresh, args.single)
    p, q, names, labels, lots = s["p"], s["q"], s["names"], s["labels"], s["lots"]
    shipped_t = float(s["threshold"])
    if np.isnan(shipped_t):  # a 9-class network: its argmax is the product rule with w = 1
        own = rule_product(p, q, names, 1.0)
    else:
        own = rule_threshold(p, q, names, shipped_t)
    classes = sorted(set(labels))
    doc: dict = {
        "command": "python benchmarks/two_phase_rule.py " + " ".join(sys.argv[1:]),
        "set": {"wafers": int(len(p)), "defective": int(np.sum(labels != "none")),
                "lots": int(len(np.unique(lots))),
                "what": "production validation lots (Test A lots of the shipped split)"},
        "models": ({"detector": "shipped detector", "classifier": "shipped ensemble",
                    "detector_threshold": shipped_t} if args.single is None
                   else {"single_9_class": str(args.single)}),
        "shipped_rule": ({"rule": "threshold", "param": shipped_t} if args.single is None
                         else {"rule": "argmax"}) | {"macro_f1": macro_f1(labels, own, classes)},
        "rules": {},
    }
    # how much of the gap each phase carries: the same scores with one phase made perfect
    top = names[q.argmax(axis=1)]
    flagged = own != "none"
    doc["perfect_phase1"] = macro_f1(labels, np.where(labels != "none", top, "none"), classes)
    doc["perfect_phase2"] = macro_f1(
        labels, np.where(flagged, np.where(labels != "none", labels, top), "none"), classes)
    for name, (rule, grid) in RULES.items():
        curve = [macro_f1(labels, rule(p, q, names, g), classes) for g in grid]
        choose = partial(best_param, rule, grid)
        param, best = choose(p, q, names, labels, classes)
        r = doc["rules"][name] = {
            "grid": [float(g) for g in grid], "macro_f1": [round(c, 4) for c in curve],
            "best_param_in_sample": param, "best_macro_f1_in_sample": best,
            **cross_fitted_figures(rule, choose, p, q, names, labels, lots, classes,
                                   args.folds, args.repeats),
        }
        print(f"{name}: in-sample best {best:.4f} at {param}; cross-fitted "
              f"{r['cross_fitted_macro_f1_mean']:.4f} +- {r['cross_fitted_macro_f1_sd']:.4f}")
    if args.single is None:
        # the shipped recipe itself cross-fitted: its threshold (fitted on these lots for the
        # shipped models) chosen by the precision rule on the other lot groups
        doc["shipped_rule"].update(cross_fitted_figures(
            rule_threshold, precision_threshold, p, q, names, labels, lots, classes,
            args.folds, args.repeats))
    print(f"own rule {doc['shipped_rule']}")
    write_result(args.out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
