"""Feature-extraction throughput: wafertk's fast paths vs a straightforward scikit-image
implementation, per feature set, on real WM-811K maps, with 1 and 2 processes.

Usage::

    python benchmarks/bench_features.py [--n 2000] [--n-naive 200] [--n-naive-gabor 20]

Writes ``benchmarks/results/features.json``. The naive references (measured in the same run,
on a subset since they are slow) are: ``skimage.filters.gabor`` for the Gabor bank,
``skimage.transform.radon`` (same angles) + cubic interpolation for the Radon features, and
``scipy.ndimage.median_filter`` + ``skimage.measure.label`` + ``regionprops`` over all regions
for the geometry. Every reference computes the same values as the fast path (checked here on
the subset, correlation reported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT.parent / "shared" / "data" / "wm811k" / "wm811k_train.npz"
RESULTS = ROOT / "benchmarks" / "results" / "features.json"


def load_maps(n: int, seed: int = 0):
    from wafertk.data.importers import read_npz_pack

    ws = read_npz_pack(NPZ)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(ws), size=min(n, len(ws)), replace=False))
    return ws.take(idx)


# ------------------------------------------------------------------ naive references
def naive_gabor(maps, freqs=(0.05, 0.1, 0.2), n_or=4, size=64):
    from wafertk.features._common import resized_fail_channel
    from wafertk.features.gabor import _stats, gabor_responses_reference

    out = []
    for img in resized_fail_channel(maps, size):
        out.append(_stats(gabor_responses_reference(img, freqs, n_or)) if img.any()
                   else np.zeros(len(freqs) * n_or * 4))
    return np.asarray(out)


def naive_radon(maps, n_points=20, n_angles=60):
    from scipy.interpolate import CubicSpline
    from skimage.transform import radon

    out = []
    for m in maps:
        fail = (m == 2).astype(float)
        if not fail.any():
            out.append(np.zeros(2 * n_points))
            continue
        sino = radon(fail, theta=np.arange(n_angles) * 180 / n_angles, circle=False)
        sino /= max(m.shape)
        prof = []
        for p in (sino.mean(axis=1), sino.std(axis=1)):
            xs = np.linspace(0, 1, len(p))
            prof.append(CubicSpline(xs, p)(np.linspace(0, 1, n_points)) if len(p) >= 4
                        else np.interp(np.linspace(0, 1, n_points), xs, p))
        out.append(np.concatenate(prof))
    return np.asarray(out)


def naive_geometry(maps):
    from scipy import ndimage as ndi
    from skimage.measure import label, regionprops

    out = []
    for m in maps:
        fail = m == 2
        den = ndi.median_filter(fail.astype(np.uint8), size=3, mode="nearest") > 0
        if not den.any():
            den = fail
        props = regionprops(label(den, connectivity=2))
        if not props:
            out.append(np.zeros(6))
            continue
        p = max(props, key=lambda r: r.area)
        dies = max(float((m > 0).sum()), 1.0)
        diam = np.sqrt(4 * dies / np.pi)  # same normalisation as wafertk's geometry
        out.append([p.area / dies, p.perimeter / (np.pi * diam), p.axis_major_length / diam,
                    p.axis_minor_length / diam, p.eccentricity, p.solidity])
    return np.asarray(out)


def _rate(fn, maps, repeat: int = 1) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(maps)
        best = min(best, time.perf_counter() - t0)
    return len(maps) / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-naive", type=int, default=200)
    ap.add_argument("--n-naive-gabor", type=int, default=20)
    ap.add_argument("--naive-only", action="store_true",
                    help="re-measure only the naive comparison (keeps the rest of the file)")
    args = ap.parse_args()

    from wafertk.features import DEFAULT_SETS, extract_features
    from wafertk.features.gabor import gabor_features
    from wafertk.features.wu import geometry_features, radon_features

    ws = load_maps(args.n)
    res: dict = {"machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                             "python": platform.python_version(),
                             "load_average_at_start": [round(v, 2) for v in os.getloadavg()]},
                 "n_maps": len(ws), "data": "random WM-811K Training maps (native sizes)",
                 "command": f"python benchmarks/bench_features.py --n {args.n}",
                 "sets": {}}
    extract_features(ws.slice(0, 50), DEFAULT_SETS)  # warm caches / imports
    if args.naive_only:
        res = json.loads(RESULTS.read_text())
    for s in ([] if args.naive_only else [*DEFAULT_SETS, "all"]):
        sets = list(DEFAULT_SETS) if s == "all" else [s]
        r1 = _rate(lambda x, sets=sets: extract_features(x, sets, n_jobs=1), ws)
        r2 = _rate(lambda x, sets=sets: extract_features(x, sets, n_jobs=2), ws)
        res["sets"][s] = {"wafers_per_s_1proc": round(r1, 1), "wafers_per_s_2proc": round(r2, 1)}
        print(f"{s:9s} 1 proc {r1:8.1f}/s  2 procs {r2:8.1f}/s", flush=True)

    sub = ws.slice(0, args.n_naive)
    gsub = ws.slice(0, args.n_naive_gabor)
    naive = {
        "gabor": (naive_gabor, lambda x: gabor_features(x), gsub,
                  "skimage.filters.gabor per filter (same bank, same stats)"),
        "radon": (naive_radon, lambda x: radon_features(x), sub,
                  "skimage.transform.radon (60 angles) + cubic interpolation"),
        "geometry": (naive_geometry, lambda x: geometry_features(x), sub,
                     "ndi.median_filter + skimage label + regionprops over all regions"),
    }
    res["naive"] = {}
    for s, (slow, fast, maps, what) in naive.items():
        rs = _rate(slow, maps)
        rf = _rate(fast, maps)
        a, b = slow(maps), fast(maps)
        k = min(a.shape[1], b.shape[1])
        corr = float(np.corrcoef(a[:, :k].ravel(), b[:, :k].ravel())[0, 1])
        res["naive"][s] = {"reference": what, "n_maps": len(maps),
                           "naive_wafers_per_s": round(rs, 2), "fast_wafers_per_s": round(rf, 1),
                           "speedup": round(rf / rs, 1), "value_correlation": round(corr, 4)}
        print(f"{s:9s} naive {rs:8.2f}/s  fast {rf:8.1f}/s  x{rf / rs:6.1f}  corr {corr:.4f}",
              flush=True)
    # whole naive set (gabor + radon + geometry per map) vs the fast full set, per core
    t_naive = sum(len(naive[s][2]) and 1 / res["naive"][s]["naive_wafers_per_s"]
                  for s in naive)
    res["naive_full_wafers_per_s"] = round(1 / t_naive, 2)
    res["fast_full_vs_naive_full"] = round(res["sets"]["all"]["wafers_per_s_1proc"]
                                           * t_naive, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
