"""Make the bundled sample ``data/wafers.h5`` from the WM-811K Training partition.

1,000 real wafers drawn with a fixed seed from ``wm811k_train.npz``: all 54 ``Near-full``,
100 of each other defect class and the rest (246) ``none``. Rows are drawn individually (not
whole lots) and kept in their original order; ids are ``lswmd-<row of LSWMD.pkl>``.

Usage::

    python benchmarks/make_sample.py [--npz ../shared/data/wm811k/wm811k_train.npz]
                                     [-o data/wafers.h5] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from wafertk.data.h5 import write_wafers
from wafertk.data.importers import read_npz_pack

ROOT = Path(__file__).resolve().parents[1]
TOTAL, PER_DEFECT = 1000, 100


def make_sample(npz: Path, out: Path, seed: int = 0) -> None:
    ws = read_npz_pack(npz)
    rng = np.random.default_rng(seed)
    labels = ws.label_strings().astype(str)
    picks = []
    for c in ws.class_names:
        if c == "none":
            continue
        rows = np.flatnonzero(labels == c)
        picks.append(rng.choice(rows, size=min(PER_DEFECT, len(rows)), replace=False))
    n_none = TOTAL - sum(len(p) for p in picks)
    picks.append(rng.choice(np.flatnonzero(labels == "none"), size=n_none, replace=False))
    idx = np.sort(np.concatenate(picks))
    sample = ws.take(idx)
    write_wafers(sample, out, compression="gzip", compression_opts=9)
    counts = Counter(sample.label_strings().tolist())
    print(f"wrote {len(sample)} wafers ({len(set(sample.lot.tolist()))} lots) to {out}: "
          f"{out.stat().st_size / 1024:.0f} KB")
    print(", ".join(f"{c} {counts[c]}" for c in sample.class_names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--npz", type=Path,
                    default=ROOT.parent / "shared" / "data" / "wm811k" / "wm811k_train.npz")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "data" / "wafers.h5")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    make_sample(args.npz, args.output, args.seed)


if __name__ == "__main__":
    main()
