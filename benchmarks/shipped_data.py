"""Data files of the shipped models' recipe (used by ``benchmarks/train_shipped.sh``).

    python benchmarks/shipped_data.py train WORK/train.h5
    python benchmarks/shipped_data.py production-validation WORK/train.h5 \
        WORK/production_validation.h5 [--check-run WORK/detector]

``train``: every labelled wafer the shipped models may learn from: the WM-811K Training
partition plus the lots of Test A (``wm811k_test_a.npz``) that are neither in the production
test (:func:`wafertk.data.splits.production_test_lots`, which nothing tunes on) nor in the
bundled demo sample (``data/wafers.h5``, kept unseen). Ids are ``lswmd-<row of LSWMD.pkl>``;
the ``partition`` column says where each wafer comes from.

``production-validation``: the wafers of the recipes' lot-disjoint validation split
(:func:`wafertk.data.splits.validation_split` with the packaged configs' fraction and seed,
the split every shipped model's training run makes) that come from Test A lots: whole
production lots at the production defect rate, never trained on, on which the decision
threshold, temperatures and review level are fitted (``wafertk calibrate``). ``--check-run``
checks the split against a training run's ``validation.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "wm811k"


def make_train(out: Path) -> None:
    from wafertk.data import WaferSet, read_wafers, write_wafers
    from wafertk.data.importers import read_npz_pack
    from wafertk.data.splits import production_test_lots

    train = read_npz_pack(SHARED / "wm811k_train.npz")
    test_a = read_npz_pack(SHARED / "wm811k_test_a.npz")
    lots = test_a.lot.astype(str)
    demo = np.unique(read_wafers(ROOT / "data" / "wafers.h5").lot.astype(str))
    keep = ~np.isin(lots, np.concatenate([production_test_lots(lots), demo]))
    both = WaferSet.concat([train, test_a.take(np.flatnonzero(keep))])
    write_wafers(both, out)
    print(f"{len(both)} wafers ({len(train)} Training, {int(keep.sum())} from "
          f"{len(np.unique(lots[keep]))} Test A lots) -> {out}")


def make_production_validation(train_h5: Path, out: Path, check_run: Path | None = None,
                               fraction: float = 0.2, seed: int = 0) -> None:
    from wafertk.data import read_wafers, write_wafers
    from wafertk.data.splits import validation_split

    ws = read_wafers(train_h5, with_extras=True)
    ws = ws.take(ws.labeled_mask())
    split = validation_split(ws, fraction, seed)
    if check_run is not None:
        import pandas as pd

        val = pd.read_csv(check_run / "validation.csv", dtype=str, keep_default_na=False)
        mine = set(ws.wafer_id.astype(str)[split.val].tolist())
        theirs = set(val["wafer_id"].tolist())
        if not theirs <= mine:
            raise SystemExit(f"{check_run}: its validation wafers are not this split's")
    val_rows = np.zeros(len(ws), bool)
    val_rows[split.val] = True
    rows = np.flatnonzero(val_rows & (ws.extras["partition"].astype(str) == "Test"))
    sub = ws.take(rows)
    write_wafers(sub, out)
    defect = (sub.label_strings() != "none").mean()
    print(f"{len(sub)} production validation wafers ({len(np.unique(sub.lot.astype(str)))} "
          f"lots, {defect:.1%} defective) -> {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train")
    t.add_argument("out", type=Path)
    v = sub.add_parser("production-validation")
    v.add_argument("train_h5", type=Path)
    v.add_argument("out", type=Path)
    v.add_argument("--check-run", type=Path, default=None)
    args = ap.parse_args()
    if args.what == "train":
        make_train(args.out)
    else:
        make_production_validation(args.train_h5, args.out, args.check_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
