"""Straightforward scikit-image / scipy versions of the feature sets, to check and time against.

Each function computes the same columns as the fast path of its set, written the way a user
who knows scikit-image and scipy would write it, with the obvious care taken (kernels built
once, FFT convolution, regionprops on the largest region only), and no wafertk-specific
trick (no cached region index, no pixel-driven Radon binning, no bounding-box crop, no
batching of maps; OpenCV only where it is the plain fastest call, ``cv2.filter2D`` for the
local set's segments).
``benchmarks/bench_features.py`` times the fast paths against these, and
``tests/features/test_feature_reference.py`` checks them column by column.

========== ======================================================= =========================
set        reference                                               agreement per column
========== ======================================================= =========================
gabor      ``skimage.filters.gabor_kernel`` (built once per        equal (float32 rounding)
           filter) + ``scipy.signal.fftconvolve`` on the
           reflect-padded image
density    per-map masks from the region definitions (numpy)       equal
radon      ``skimage.transform.radon`` (same 60 angles) of the     no: skimage interpolates,
           fail mask padded to the fast path's projection axis,    the fast path bins die
           same profiles and cubic resampling                      centres (correlation
                                                                   0.2-0.98 per column);
                                                                   :func:`radon_features_loop`
                                                                   (same binning, one
                                                                   ``bincount`` per angle) is
                                                                   equal
geometry   ``ndi.median_filter`` + ``skimage.measure.label`` +     equal
           ``regionprops`` of the largest region's full-size mask
local      ``cv2.filter2D`` of each map's fail and die masks with  equal (float32 rounding)
           every segment kernel (built once) +
           ``scipy.ndimage.label`` per map
========== ======================================================= =========================

``filters`` (LBP) and ``meta`` have no separate fast path: wafertk's code already is the
straightforward ``skimage.feature.local_binary_pattern`` call and plain numpy.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from wafertk.features._common import MapsLike, as_map_list, resized_fail_channel
from wafertk.features.gabor import (
    DEFAULT_FREQUENCIES,
    DEFAULT_GABOR_SIZE,
    DEFAULT_ORIENTATIONS,
    GABOR_STATS,
    _stats,
    _thetas,
)
from wafertk.features.wu import EDGE_RADIUS, GEOMETRY_FEATURE_NAMES, RADON_ANGLES, RADON_POINTS

#: What each reference is, as the benchmark and docs/features.md state it.
REFERENCES: dict[str, str] = {
    "gabor": "skimage.filters.gabor_kernel built once + scipy.signal.fftconvolve "
             "(reflect padding)",
    "density": "numpy masks per map from the region definitions",
    "radon": "skimage.transform.radon, same 60 angles, same profiles + CubicSpline",
    "geometry": "ndi.median_filter + skimage.measure.label + regionprops of the largest "
                "region",
    "local": "cv2.filter2D per map and segment kernel (kernels built once) + "
             "scipy.ndimage.label per map",
}


# ------------------------------------------------------------------------------ gabor
@lru_cache(maxsize=64)
def _kernel(frequency: float, theta: float) -> np.ndarray:
    from skimage.filters import gabor_kernel

    return gabor_kernel(frequency, theta=theta)  # complex128, n_stds=3 as skimage.filters.gabor


def gabor_responses_fft(image: np.ndarray, frequencies=DEFAULT_FREQUENCIES,
                        orientations: int = DEFAULT_ORIENTATIONS) -> np.ndarray:
    """``|gabor|`` responses equal to :func:`skimage.filters.gabor` (``mode="reflect"``).

    One complex FFT convolution per filter of the image padded as ``ndimage``'s
    ``"reflect"`` mode pads (``np.pad(..., "symmetric")``).

    Returns
    -------
    ndarray of shape (len(frequencies) * orientations, H, W), float64
    """
    from scipy.signal import fftconvolve

    img = np.asarray(image, dtype=np.float64)
    out = []
    for f in frequencies:
        for t in _thetas(int(orientations)):
            k = _kernel(float(f), float(t))
            ph, pw = k.shape[0] // 2, k.shape[1] // 2
            padded = np.pad(img, ((ph, ph), (pw, pw)), mode="symmetric")
            out.append(np.abs(fftconvolve(padded, k, mode="valid")))
    return np.asarray(out)


def gabor_features_ref(maps: MapsLike, frequencies=DEFAULT_FREQUENCIES,
                       orientations: int = DEFAULT_ORIENTATIONS,
                       size: int = DEFAULT_GABOR_SIZE) -> np.ndarray:
    """Reference for :func:`wafertk.features.gabor_features` (same columns)."""
    chan = resized_fail_channel(maps, int(size))
    k = len(frequencies) * int(orientations) * len(GABOR_STATS)
    out = np.zeros((len(chan), k))
    for i, img in enumerate(chan):
        if img.any():
            out[i] = _stats(gabor_responses_fft(img, frequencies, orientations))
    return out


# ------------------------------------------------------------------------------ density
def density_features_ref(maps: MapsLike, edge_radius: float = EDGE_RADIUS) -> np.ndarray:
    """Reference for :func:`wafertk.features.density_features`: 13 boolean masks per map."""
    out = []
    for m in as_map_list(maps):
        h, w = m.shape
        v = (np.arange(h) + 0.5) / h * 2 - 1
        u = (np.arange(w) + 0.5) / w * 2 - 1
        vv, uu = np.meshgrid(v, u, indexing="ij")
        r = np.hypot(uu, vv)
        ang = np.degrees(np.arctan2(-vv, uu)) % 360
        edge = r > edge_radius
        quarter = (ang + 45) % 360 // 90  # 0 right, 1 top, 2 left, 3 bottom
        masks = [edge & (quarter == q) for q in (1, 0, 3, 2)]  # top, right, bottom, left
        step = 2 * edge_radius / 3
        row = np.clip((vv + edge_radius) // step, 0, 2)
        col = np.clip((uu + edge_radius) // step, 0, 2)
        masks += [~edge & (row == i) & (col == j) for i in range(3) for j in range(3)]
        dies, fails = m > 0, m == 2
        out.append([fails[k].sum() / dies[k].sum() if dies[k].any() else 0.0 for k in masks])
    return np.asarray(out, dtype=np.float64).reshape(-1, 13)


# ------------------------------------------------------------------------------ radon
def radon_features_ref(maps: MapsLike, n_points: int = RADON_POINTS,
                       n_angles: int = RADON_ANGLES) -> np.ndarray:
    """Reference for :func:`wafertk.features.radon_features` via :func:`skimage.transform.radon`.

    The fail mask is padded to a square of side ``D + 1`` (``D = ceil(hypot(H, W))``, the fast
    path's number of projection bins minus one), centred, so that both projection axes have
    the same length and centre; ``radon(..., circle=True)`` then has ``D + 1`` bins too.
    skimage rotates the image with interpolation where the fast path bins die centres, so the
    values differ slightly by construction.
    """
    from scipy.interpolate import CubicSpline
    from skimage.transform import radon

    theta = np.arange(n_angles) * 180.0 / n_angles
    out = []
    for m in as_map_list(maps):
        fail = (m == 2).astype(np.float64)
        if not fail.any():
            out.append(np.zeros(2 * n_points))
            continue
        h, w = m.shape
        side = int(math.ceil(math.hypot(h, w))) + 1
        top, left = (side - h) // 2, (side - w) // 2
        sq = np.zeros((side, side))
        sq[top:top + h, left:left + w] = fail
        sino = radon(sq, theta=theta, circle=True) / max(h, w)
        prof = []
        xt = np.linspace(0, 1, n_points)
        for p in (sino.mean(axis=1), sino.std(axis=1)):
            xs = np.linspace(0, 1, len(p))
            prof.append(CubicSpline(xs, p)(xt) if len(p) >= 4 else np.interp(xt, xs, p))
        out.append(np.concatenate(prof))
    return np.asarray(out).reshape(-1, 2 * n_points)


def radon_features_loop(maps: MapsLike, n_points: int = RADON_POINTS,
                        n_angles: int = RADON_ANGLES) -> np.ndarray:
    """The fast path's own discretisation written plainly: one ``np.bincount`` per angle.

    Same values as :func:`wafertk.features.radon_features` (each fail die adds 1 to bin
    ``round(x cos t + y sin t) + D // 2``), used to check it column by column, since the
    skimage reference interpolates and cannot agree exactly.
    """
    from scipy.interpolate import CubicSpline

    out = []
    xt = np.linspace(0, 1, n_points)
    for m in as_map_list(maps):
        fail = m == 2
        if not fail.any():
            out.append(np.zeros(2 * n_points))
            continue
        h, w = m.shape
        diag = int(math.ceil(math.hypot(h, w)))
        ys, xs = np.nonzero(fail)
        x, y = xs - (w - 1) / 2.0, (h - 1) / 2.0 - ys
        sino = np.zeros((diag + 1, n_angles))
        for a in range(n_angles):
            t = np.pi * a / n_angles
            b = np.rint(x * np.cos(t) + y * np.sin(t)).astype(np.int64) + diag // 2
            sino[:, a] = np.bincount(b, minlength=diag + 1)[:diag + 1]
        sino /= max(h, w)
        prof = []
        for p in (sino.mean(axis=1), sino.std(axis=1)):
            xs_ = np.linspace(0, 1, len(p))
            prof.append(CubicSpline(xs_, p)(xt) if len(p) >= 4 else np.interp(xt, xs_, p))
        out.append(np.concatenate(prof))
    return np.asarray(out).reshape(-1, 2 * n_points)


# ------------------------------------------------------------------------------ geometry
def geometry_features_ref(maps: MapsLike, median_size: int = 3) -> np.ndarray:
    """Reference for :func:`wafertk.features.geometry_features` (same 8 columns)."""
    from scipy import ndimage as ndi
    from skimage.measure import label, regionprops

    out = []
    for m in as_map_list(maps):
        fail = m == 2
        if not fail.any():
            out.append(np.zeros(len(GEOMETRY_FEATURE_NAMES)))
            continue
        h, w = m.shape
        den = fail
        if median_size > 1 and min(h, w) >= 2:
            den = ndi.median_filter(fail.astype(np.uint8), size=median_size,
                                    mode="nearest") > 0
        if not den.any():
            den = fail
        lab = label(den, connectivity=2)
        n = int(lab.max())
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        p = regionprops((lab == sizes.argmax()).astype(np.uint8))[0]
        dies = max(float((m > 0).sum()), 1.0)
        diam = math.sqrt(4 * dies / math.pi)
        cy = (p.centroid[0] + 0.5) / h * 2 - 1
        cx = (p.centroid[1] + 0.5) / w * 2 - 1
        out.append([p.area / dies, p.perimeter / (math.pi * diam), p.axis_major_length / diam,
                    p.axis_minor_length / diam, p.eccentricity, p.solidity,
                    min(math.hypot(cx, cy) / math.sqrt(2), 1.0), math.log1p(n)])
    return np.nan_to_num(np.asarray(out, dtype=np.float64)).reshape(
        -1, len(GEOMETRY_FEATURE_NAMES))


def geometry_features_loop(maps: MapsLike, median_size: int = 3) -> np.ndarray:
    """The same 8 columns map by map, the way :func:`wafertk.features.geometry_features`
    computed them before maps of one shape were measured together: ``cv2.medianBlur``,
    ``scipy.ndimage.label`` of the map, the largest region's moments from its pixel
    coordinates on its bounding box, ``skimage.measure.perimeter`` and
    ``skimage.morphology.convex_hull_image``. Equal to the fast path bit for bit."""
    import cv2
    from scipy import ndimage as ndi
    from skimage.measure import perimeter
    from skimage.morphology import convex_hull_image

    from wafertk.features.wu import _region_moments

    ms = as_map_list(maps)
    out = np.zeros((len(ms), len(GEOMETRY_FEATURE_NAMES)), np.float32)
    for i, m in enumerate(ms):
        fail = (m == 2).astype(np.uint8)
        if not fail.any():
            continue
        h, w = m.shape
        den = fail
        if median_size > 1 and min(h, w) >= 2:
            den = (cv2.medianBlur(fail * 255, median_size) > 0).astype(np.uint8)
        if not den.any():
            den = fail
        lab, n = ndi.label(den, structure=np.ones((3, 3)))
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        big = int(sizes.argmax())
        sl = ndi.find_objects(lab, max_label=big)[big - 1]
        region = lab[sl] == big
        area, (r0, c0), major, minor, ecc = _region_moments(*np.nonzero(region))
        dies = max(float((m > 0).sum()), 1.0)
        diam = math.sqrt(4 * dies / math.pi)
        cy = (r0 + sl[0].start + 0.5) / h * 2 - 1
        cx = (c0 + sl[1].start + 0.5) / w * 2 - 1
        row = [area / dies, perimeter(region, 4) / (math.pi * diam), major / diam,
               minor / diam, ecc,
               area / float(convex_hull_image(region).sum()) if area > 0 else 0.0,
               min(math.hypot(cx, cy) / math.sqrt(2), 1.0), math.log1p(n)]
        out[i] = np.nan_to_num(np.asarray(row, np.float64), nan=0.0, posinf=0.0,
                               neginf=0.0).astype(np.float32)
    return out


# ------------------------------------------------------------------------------ local
def local_features_ref(maps: MapsLike) -> np.ndarray:
    """Reference for :func:`wafertk.features.local_features` (same 11 columns): one map at a
    time, every segment kernel convolved with ``cv2.filter2D`` (fails and dies), the centre
    region from ``scipy.ndimage.label`` of the map."""
    import cv2
    from scipy import ndimage as ndi

    from wafertk.data.preprocess import _geometry
    from wafertk.features.local import (
        CENTER_RADII,
        CENTER_REGION_RADIUS,
        LOCAL_FEATURE_NAMES,
        SEGMENT_LENGTHS,
        segment_kernels,
    )

    out = np.zeros((len(as_map_list(maps)), len(LOCAL_FEATURE_NAMES)))
    for j, m in enumerate(as_map_list(maps)):
        h, w = m.shape
        die, fail = m > 0, m == 2
        if not die.any() or not fail.any():
            continue
        p = fail.sum() / die.sum()
        row = []
        for n in SEGMENT_LENGTHS:
            conv = [(cv2.filter2D(fail.astype(np.float32), -1, k,
                                  borderType=cv2.BORDER_CONSTANT),
                     cv2.filter2D(die.astype(np.float32), -1, k,
                                  borderType=cv2.BORDER_CONSTANT))
                    for k in segment_kernels(n)]
            counts = np.rint([c for c, _ in conv])  # cv2 may use a DFT: exact counts again
            dies = np.maximum(np.rint([d for _, d in conv]), 1.0)
            best = counts.max()
            at = counts.max(axis=0) == best
            density = np.sort(counts[:, at] / dies[:, at], axis=0).mean(axis=0)
            row += [best / n, (best / n - density).max()]
        r = _geometry(h, w)[0].reshape(h, w)
        rn = r / (r[die].max() or 1.0)
        for rad in CENTER_RADII:
            inner = die & (rn < rad)
            row.append(fail[inner].mean() if inner.any() else 0.0)
        row.append(math.log1p(row[-1] / p))
        lab, _ = ndi.label(fail, structure=np.ones((3, 3)))
        near = np.unique(lab[fail & (rn < CENTER_REGION_RADIUS)])
        size = int(np.bincount(lab.ravel())[near].max()) if near.size else 0
        row += [math.log1p(size), size / fail.sum()]
        out[j] = row
    return out


#: Set name -> reference function (same columns as the set's fast path, default parameters).
REFERENCE_FUNCTIONS = {
    "gabor": gabor_features_ref,
    "density": density_features_ref,
    "radon": radon_features_ref,
    "geometry": geometry_features_ref,
    "local": local_features_ref,
}
