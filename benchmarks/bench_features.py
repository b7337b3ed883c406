"""Feature-extraction throughput: wafertk's fast paths vs the best straightforward
scikit-image/scipy code, per feature set, on real WM-811K maps, with 1 and 2 processes.

Usage::

    python benchmarks/bench_features.py [--n 300] [--repeat 3]

Writes ``benchmarks/results/features.json``. The references are those of
:mod:`wafertk.features.reference` (kernels built once, FFT convolution, skimage radon with the
same angles, regionprops of the largest region only). Both sides run on the same maps in the
same process, best of ``--repeat`` runs each, interleaved; every column of the fast path is
compared with the reference's column (``np.testing.assert_allclose`` with the stated
tolerances, or the per-column correlation where the computation differs by construction).
The load average at start and end is recorded: on shared cores the absolute rates vary from
run to run, the ratios much less.
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

#: set -> (tolerance used per column, or None where only correlations are reported)
TOLERANCES = {
    "gabor": {"rtol": 1e-4, "atol": 1e-6},
    "density": {"rtol": 0.0, "atol": 1e-6},
    "radon": None,  # skimage interpolates, the fast path bins die centres
    "radon (same binning, numpy loop)": {"rtol": 1e-5, "atol": 1e-6},
    "geometry": {"rtol": 1e-5, "atol": 1e-6},
    "local": {"rtol": 1e-6, "atol": 1e-6},
    "spatial (map by map, same code)": {"rtol": 0.0, "atol": 0.0},
    "geometry (map by map, same code)": {"rtol": 0.0, "atol": 0.0},
}


def load_maps(n: int, seed: int = 0):
    from wafertk.data.importers import read_npz_pack

    ws = read_npz_pack(NPZ)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(ws), size=min(n, len(ws)), replace=False))
    return ws.take(idx)


def _best(fns, maps, repeat: int) -> list[float]:
    """Best wall time of each function over ``repeat`` interleaved rounds."""
    best = [np.inf] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn(maps)
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def _compare(fast: np.ndarray, ref: np.ndarray, tol: dict | None) -> dict:
    """Per-column agreement: max abs difference, min correlation, and the tolerance check."""
    corr = []
    for j in range(fast.shape[1]):
        a, b = fast[:, j].astype(np.float64), ref[:, j]
        if a.std() == 0 or b.std() == 0:
            corr.append(1.0 if np.allclose(a, b, atol=1e-9) else 0.0)
        else:
            corr.append(float(np.corrcoef(a, b)[0, 1]))
    out = {"columns": fast.shape[1],
           "max_abs_difference": float(np.abs(fast - ref).max()),
           "min_column_correlation": round(min(corr), 4),
           "median_column_correlation": round(float(np.median(corr)), 4)}
    if tol is not None:
        for j in range(fast.shape[1]):
            np.testing.assert_allclose(fast[:, j], ref[:, j], **tol, err_msg=f"column {j}")
        out["assert_allclose_per_column"] = tol
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from wafertk.features import DEFAULT_SETS, extract_features
    from wafertk.features.gabor import gabor_features
    from wafertk.features.local import local_features
    from wafertk.features.reference import (
        REFERENCES,
        density_features_ref,
        gabor_features_ref,
        geometry_features_loop,
        geometry_features_ref,
        local_features_ref,
        radon_features_loop,
        radon_features_ref,
    )
    from wafertk.features.spatial import spatial_features, spatial_one
    from wafertk.features.wu import density_features, geometry_features, radon_features

    ws = load_maps(args.n)
    res: dict = {"machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                             "python": platform.python_version(),
                             "load_average_at_start": [round(v, 2) for v in os.getloadavg()]},
                 "n_maps": len(ws), "data": "random WM-811K Training maps (native sizes)",
                 "command": f"python benchmarks/bench_features.py --n {args.n} "
                            f"--repeat {args.repeat}",
                 "timing": f"best of {args.repeat} interleaved runs", "sets": {}}
    extract_features(ws.slice(0, 50), DEFAULT_SETS)  # warm caches / imports
    for s in [*DEFAULT_SETS, "all"]:
        sets = list(DEFAULT_SETS) if s == "all" else [s]
        t1, t2 = _best([lambda x, sets=sets: extract_features(x, sets, n_jobs=1),
                        lambda x, sets=sets: extract_features(x, sets, n_jobs=2)],
                       ws, args.repeat)
        res["sets"][s] = {"wafers_per_s_1proc": round(len(ws) / t1, 1),
                          "wafers_per_s_2proc": round(len(ws) / t2, 1)}
        print(f"{s:9s} 1 proc {len(ws) / t1:8.1f}/s  2 procs {len(ws) / t2:8.1f}/s", flush=True)

    pairs = {
        "gabor": (gabor_features, gabor_features_ref, REFERENCES["gabor"]),
        "density": (density_features, density_features_ref, REFERENCES["density"]),
        "radon": (radon_features, radon_features_ref, REFERENCES["radon"]),
        "radon (same binning, numpy loop)": (
            radon_features, radon_features_loop,
            "the fast path's binning with one np.bincount per angle (same values)"),
        "geometry": (geometry_features, geometry_features_ref, REFERENCES["geometry"]),
        "local": (local_features, local_features_ref, REFERENCES["local"]),
        "spatial (map by map, same code)": (
            spatial_features, lambda x: np.stack([spatial_one(m) for m in x]),
            "spatial_one per map (its sinogram and ndimage.label per map, die strips cached "
            "per mask): the batching's gain only"),
        "geometry (map by map, same code)": (
            geometry_features, geometry_features_loop,
            "geometry_features_loop: cv2.medianBlur, ndimage.label, moments, skimage perimeter "
            "and convex_hull_image per map (the code before batching): the batching's gain "
            "only"),
    }
    res["vs_reference"] = {}
    total_fast = total_ref = 0.0
    for s, (fast, ref, what) in pairs.items():
        tf, tr = _best([fast, ref], ws, args.repeat)
        agreement = _compare(fast(ws), ref(ws), TOLERANCES[s])
        res["vs_reference"][s] = {
            "reference": what, "n_maps": len(ws),
            "reference_wafers_per_s": round(len(ws) / tr, 1),
            "fast_wafers_per_s": round(len(ws) / tf, 1),
            "speedup": round(tr / tf, 2), "agreement": agreement}
        if s in ("gabor", "density", "radon", "geometry"):
            total_fast += tf
            total_ref += tr
        print(f"{s:34s} reference {len(ws) / tr:8.1f}/s  fast {len(ws) / tf:8.1f}/s  "
              f"x{tr / tf:5.2f}  min column corr {agreement['min_column_correlation']}",
              flush=True)
    res["vs_reference_gabor_density_radon_geometry"] = {
        "reference_wafers_per_s": round(len(ws) / total_ref, 1),
        "fast_wafers_per_s": round(len(ws) / total_fast, 1),
        "speedup": round(total_ref / total_fast, 2)}
    res["not_compared"] = {
        "filters": "already the straightforward skimage.feature.local_binary_pattern call",
        "meta": "already plain numpy (wafertk.data.preprocess.die_metadata)"}
    res["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
