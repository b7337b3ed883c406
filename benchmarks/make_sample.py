"""Make the bundled demo sample ``data/wafers.h5`` and the all-classes test fixture.

Two files, both seeded and reproducible:

* ``data/wafers.h5``, the **demo sample**: about 40 whole production lots (about 1,000 wafers)
  of the WM-811K Test A pack (``wm811k_test_a.npz``) drawn from the lots *outside* the
  production test (:func:`wafertk.data.splits.production_test_lots`), so nothing that the
  project measures its models on is shipped as a demo. Whole lots are drawn at random
  (seed ``--seed``); of ``--tries`` seeded candidate draws the script keeps the one whose
  defect rate is closest to that of the lots it draws from (about 6.7 %), among the draws with
  at least ``MIN_PATTERNS`` defect patterns and 960-1,040 wafers, so the demo report shows
  lots, stacked maps and a realistic defect rate.
* ``tests/fixtures/all_classes.h5``, a small **labelled set with every class** for tests:
  ``PER_CLASS`` wafers of each class of the WM-811K Training pack (``wm811k_train.npz``), the
  first ``PER_CLASS`` of each class (in file order) of the former 1,000-wafer sample (all 54
  Near-full, 100 of each other defect class, 246 none, drawn individually with seed 0).

Ids are ``lswmd-<row of LSWMD.pkl>``; the extra columns ``orig_index`` and ``partition`` are
kept. Maps keep their native size.

Usage (from the project root)::

    .venv/bin/python benchmarks/make_sample.py
        [--test-npz ../shared/data/wm811k/wm811k_test_a.npz]
        [--train-npz ../shared/data/wm811k/wm811k_train.npz]
        [-o data/wafers.h5] [--fixture tests/fixtures/all_classes.h5] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from wafertk.data.h5 import write_wafers
from wafertk.data.importers import read_npz_pack
from wafertk.data.splits import production_test_lots
from wafertk.data.waferset import NONE_CLASS, WaferSet

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "wm811k"

#: demo sample: lots per draw, accepted wafer range, minimum distinct defect patterns
N_LOTS, MIN_WAFERS, MAX_WAFERS, MIN_PATTERNS = 40, 960, 1040, 5
#: the former Training sample the fixture is cut from
OLD_TOTAL, OLD_PER_DEFECT = 1000, 100
#: wafers of each class in the all-classes fixture
PER_CLASS = 20


def _summary(ws: WaferSet, out: Path) -> None:
    labels = ws.label_strings().astype(str)
    counts = Counter(labels.tolist())
    rate = float((labels != NONE_CLASS).mean()) if len(ws) else 0.0
    print(f"wrote {len(ws)} wafers ({len(set(ws.lot.tolist()))} lots, {rate:.2%} defective) "
          f"to {out}: {out.stat().st_size / 1024:.0f} KB")
    print(", ".join(f"{c} {counts[c]}" for c in ws.class_names))


def draw_demo_lots(ws: WaferSet, seed: int = 0, tries: int = 500) -> np.ndarray:
    """Rows of the demo sample: whole lots outside the production test (see module doc).

    Parameters
    ----------
    ws : WaferSet
        The Test A pack.
    seed : int, default 0
    tries : int, default 500
        Candidate draws of ``N_LOTS`` lots to choose from.

    Returns
    -------
    ndarray of int
        Row indices into ``ws``, in file order.
    """
    lots = ws.lot.astype(str)
    labels = ws.label_strings().astype(str)
    outside = ~np.isin(lots, production_test_lots(lots))
    names, inv = np.unique(lots[outside], return_inverse=True)
    rows = np.flatnonzero(outside)
    size = np.bincount(inv, minlength=len(names))
    n_def = np.bincount(inv, weights=labels[rows] != NONE_CLASS, minlength=len(names))
    target = n_def.sum() / size.sum()
    pat_codes = {c: i for i, c in enumerate(ws.class_names)}
    lot_patterns = np.zeros((len(names), len(ws.class_names)), bool)
    lot_patterns[inv, [pat_codes[c] for c in labels[rows]]] = True
    lot_patterns[:, pat_codes[NONE_CLASS]] = False
    rng = np.random.default_rng(seed)
    best, best_key = None, None
    for _ in range(tries):
        pick = rng.choice(len(names), size=N_LOTS, replace=False)
        n = int(size[pick].sum())
        n_pat = int(lot_patterns[pick].any(axis=0).sum())
        if not MIN_WAFERS <= n <= MAX_WAFERS or n_pat < MIN_PATTERNS:
            continue
        key = (abs(n_def[pick].sum() / n - target), -n_pat, abs(n - 1000))
        if best_key is None or key < best_key:
            best, best_key = pick, key
    if best is None:
        raise SystemExit(f"no draw of {N_LOTS} lots met the conditions in {tries} tries")
    return rows[np.isin(inv, best)]


def old_training_rows(ws: WaferSet, seed: int = 0) -> np.ndarray:
    """Rows of the former 1,000-wafer Training sample (classes drawn individually)."""
    rng = np.random.default_rng(seed)
    labels = ws.label_strings().astype(str)
    picks = []
    for c in ws.class_names:
        if c == NONE_CLASS:
            continue
        rows = np.flatnonzero(labels == c)
        picks.append(rng.choice(rows, size=min(OLD_PER_DEFECT, len(rows)), replace=False))
    n_none = OLD_TOTAL - sum(len(p) for p in picks)
    picks.append(rng.choice(np.flatnonzero(labels == NONE_CLASS), size=n_none, replace=False))
    return np.sort(np.concatenate(picks))


def make_fixture(train_npz: Path, out: Path, seed: int = 0) -> None:
    """Write the all-classes fixture: the first ``PER_CLASS`` of each class of the old sample."""
    ws = read_npz_pack(train_npz)
    old = ws.take(old_training_rows(ws, seed))
    labels = old.label_strings().astype(str)
    keep = np.sort(np.concatenate(
        [np.flatnonzero(labels == c)[:PER_CLASS] for c in old.class_names]))
    sub = old.take(keep)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_wafers(sub, out, compression="gzip", compression_opts=9)
    _summary(sub, out)


def make_sample(test_npz: Path, out: Path, seed: int = 0) -> None:
    """Write the demo sample: whole Test A lots outside the production test."""
    ws = read_npz_pack(test_npz)
    sample = ws.take(draw_demo_lots(ws, seed))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_wafers(sample, out, compression="gzip", compression_opts=9)
    _summary(sample, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test-npz", type=Path, default=SHARED / "wm811k_test_a.npz")
    ap.add_argument("--train-npz", type=Path, default=SHARED / "wm811k_train.npz")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "data" / "wafers.h5")
    ap.add_argument("--fixture", type=Path, default=ROOT / "tests" / "fixtures" / "all_classes.h5")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    make_sample(args.test_npz, args.output, args.seed)
    make_fixture(args.train_npz, args.fixture, args.seed)


if __name__ == "__main__":
    main()
