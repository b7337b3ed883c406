"""Member weights of the shipped phase-1 ensemble, compared on the production validation lots.

The shipped ``detector`` is the mean of two members' P(defective): the rotation-averaged CNN
detector and the binary XGBoost (``wafertk ensemble``, equal weights). This script scores
both members once on the **production validation** wafers (the Test A lots of the shipped
recipes' lot-disjoint validation split; never the production test) and ranks the weighted
means ``w * P_cnn + (1 - w) * P_xgb`` for ``--weights`` (the CNN's share): ROC AUC, average
precision, recall at precision >= 0.80 and best F1, as ``benchmarks/phase1_xgb.py`` does
(thresholds fitted and read on the same wafers: an upper bound that ranks variants).

    WORK=/tmp/wafertk-shipped python benchmarks/phase1_weights.py
        # -> benchmarks/results/phase1_weights.json
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
sys.path.insert(0, str(ROOT / "benchmarks"))
WORK = Path(os.environ.get("WORK", "/tmp/wafertk-shipped"))
OUT = ROOT / "benchmarks" / "results" / "phase1_weights.json"
DETECTOR = ROOT / "wafertk" / "models" / "shipped" / "detector"


def main() -> int:
    from experiments import detector_figures, validation_summary, write_result

    from wafertk.data import read_wafers
    from wafertk.registry import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="0,0.2,0.3,0.4,0.5,0.6,0.7,0.8,1",
                    help="the CNN member's shares to compare (0: the XGBoost alone, 1: the CNN "
                    "alone)")
    ap.add_argument("--detector", type=Path, default=DETECTOR,
                    help="the ensemble detector folder (default: the shipped detector)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    members = json.loads((args.detector / "members.json").read_text())["members"]
    kinds = [m["kind"] for m in members]
    if kinds != ["cnn-detector", "xgboost-classifier"]:
        raise SystemExit(f"{args.detector}: expected a CNN and an XGBoost member, got {kinds}")
    ws = read_wafers(WORK / "production_validation.h5")
    y = (ws.label_strings().astype(str) != "none").astype(int)
    probs, seconds = [], []
    for m in members:
        t0 = time.perf_counter()
        model = load_model(args.detector / m["path"], kind=m["kind"])
        probs.append(np.asarray(model.predict_proba(ws), np.float64)[:, -1])
        seconds.append(round(time.perf_counter() - t0, 1))
    p_cnn, p_xgb = probs
    results = {}
    for w in (float(v) for v in args.weights.split(",")):
        results[f"{w:g}"] = detector_figures(y, w * p_cnn + (1 - w) * p_xgb)
        print(f"cnn weight {w:g}: {json.dumps(results[f'{w:g}'])}", flush=True)
    doc = {"what": __doc__.split("\n\n")[0],
           "command": " ".join([f"WORK={WORK}", "python benchmarks/phase1_weights.py",
                                *sys.argv[1:]]),
           "detector": str(args.detector.relative_to(ROOT) if args.detector.is_relative_to(ROOT)
                           else args.detector),
           "production_validation": validation_summary(ws.lot, y),
           "member_seconds": dict(zip(kinds, seconds, strict=True)),
           "cnn_weight": results}
    write_result(args.out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
