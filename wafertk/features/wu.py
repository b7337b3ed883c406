"""Classic wafer-map features of Wu, Jang and Chen (2015), on native-size maps.

M.-J. Wu, J.-S. R. Jang, J.-L. Chen, "Wafer Map Failure Pattern Recognition and Similarity
Ranking for Large-Scale Data Sets", IEEE Trans. Semiconductor Manufacturing 28(1), 2015.

* :func:`density_features`: fail density in 13 regions.
* :func:`radon_features`: Radon-transform profile of the fail dies, 20 means + 20 stds.
* :func:`geometry_features`: shape of the most salient fail region after a median filter.

Every function returns finite values for any map: a map without fail dies, a 1x1 map or a
very large map gives zeros where a value is undefined, never NaN.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from wafertk.errors import WafertkError
from wafertk.features._common import MapsLike, as_map_list, by_shape, label_maps

# ---------------------------------------------------------------------------- density
#: Normalised radius beyond which a die belongs to one of the four edge quarters.
EDGE_RADIUS = 0.8
DENSITY_FEATURE_NAMES: tuple[str, ...] = (
    "density_edge_top", "density_edge_right", "density_edge_bottom", "density_edge_left",
    *(f"density_inner_{r}{c}" for r in range(3) for c in range(3)),
)


@lru_cache(maxsize=4096)
def _region_index(h: int, w: int, edge_radius: float) -> np.ndarray:
    """Region (0..12) of every cell of an ``h x w`` grid, see :func:`density_features`."""
    v = (np.arange(h) + 0.5) / h * 2 - 1  # -1 top .. 1 bottom
    u = (np.arange(w) + 0.5) / w * 2 - 1  # -1 left .. 1 right
    vv, uu = np.meshgrid(v, u, indexing="ij")
    r = np.hypot(uu, vv)
    ang = np.degrees(np.arctan2(-vv, uu)) % 360  # 0 = right, 90 = top (counter-clockwise)
    edge = ((ang + 45) % 360 // 90).astype(np.int64)  # 0 right, 1 top, 2 left, 3 bottom
    edge = np.array([1, 0, 3, 2])[edge]  # -> 0 top, 1 right, 2 bottom, 3 left
    step = 2 * edge_radius / 3
    row = np.clip(((vv + edge_radius) // step).astype(np.int64), 0, 2)
    col = np.clip(((uu + edge_radius) // step).astype(np.int64), 0, 2)
    idx = np.where(r > edge_radius, edge, 4 + 3 * row + col)
    idx.setflags(write=False)
    return idx


def density_one(m: np.ndarray, edge_radius: float = EDGE_RADIUS) -> np.ndarray:
    """Fail density in the 13 regions of one map; see :func:`density_features`.

    Returns
    -------
    ndarray of shape (13,), float32
    """
    h, w = m.shape
    if h == 0 or w == 0:
        return np.zeros(13, np.float32)
    idx = _region_index(h, w, float(edge_radius)).ravel()
    flat = m.ravel()
    dies = np.bincount(idx, weights=flat > 0, minlength=13)
    fails = np.bincount(idx, weights=flat == 2, minlength=13)
    return np.divide(fails, dies, out=np.zeros(13), where=dies > 0).astype(np.float32)


def density_features(maps: MapsLike, edge_radius: float = EDGE_RADIUS) -> np.ndarray:
    """Fail density (failing dies / dies) in 13 regions of each native-size map.

    Cell ``(i, j)`` of an ``H x W`` grid has normalised coordinates
    ``u = 2 (j + 0.5) / W - 1`` (left to right) and ``v = 2 (i + 0.5) / H - 1`` (top to
    bottom), both in (-1, 1), and radius ``r = sqrt(u^2 + v^2)``. Cells with
    ``r > edge_radius`` form the edge ring, split into four quarters by the angle of
    ``(u, -v)``: top (45-135 degrees), right (-45-45), bottom (225-315), left (135-225).
    The other cells fall in a 3 x 3 grid over the square ``[-edge_radius, edge_radius]^2``
    (cells of width ``2 edge_radius / 3``), numbered row-major from the top left.
    Only dies (non-zero cells) count; a region without dies has density 0.

    Parameters
    ----------
    maps : WaferSet or sequence of ndarray of shape (H_i, W_i)
    edge_radius : float, default 0.8

    Returns
    -------
    ndarray of shape (n, 13), float32
        Columns as in :data:`DENSITY_FEATURE_NAMES`: 4 edge quarters then the inner grid.
    """
    if not 0 < edge_radius < math.sqrt(2):
        raise WafertkError(f"edge_radius must be in (0, 1.41), got {edge_radius}")
    ms = as_map_list(maps)
    out = np.zeros((len(ms), 13), np.float32)
    for i, m in enumerate(ms):
        out[i] = density_one(m, edge_radius)
    return out


# ---------------------------------------------------------------------------- radon
RADON_POINTS = 20
RADON_ANGLES = 60


def radon_feature_names(n_points: int = RADON_POINTS) -> list[str]:
    """``radon_mean_00..`` then ``radon_std_00..``."""
    return ([f"radon_mean_{i:02d}" for i in range(n_points)]
            + [f"radon_std_{i:02d}" for i in range(n_points)])


@lru_cache(maxsize=16)
def _angles(n_angles: int) -> tuple[np.ndarray, np.ndarray]:
    th = np.pi * np.arange(n_angles) / n_angles
    return np.cos(th), np.sin(th)


def sinogram(fail: np.ndarray, n_angles: int = RADON_ANGLES) -> np.ndarray:
    """Radon transform of a binary fail mask by binning the fail dies' projections.

    Each fail die at centred coordinates ``(x, y)`` adds 1 to bin
    ``round(x cos t + y sin t) + D // 2`` of angle ``t`` (``D`` = the grid's diagonal in
    dies), which is the pixel-driven Radon transform: same profiles as
    :func:`skimage.transform.radon` up to interpolation, at a cost proportional to the number
    of fail dies.

    Parameters
    ----------
    fail : ndarray of shape (H, W), bool
    n_angles : int, default 60
        Angles evenly spaced in [0, 180) degrees.

    Returns
    -------
    ndarray of shape (D + 1, n_angles), float64
        Fail dies per projection line.
    """
    h, w = fail.shape
    diag = int(math.ceil(math.hypot(h, w)))
    n_bins = diag + 1
    ys, xs = np.nonzero(fail)
    out = np.zeros((n_bins, n_angles))
    if len(ys) == 0:
        return out
    x = xs - (w - 1) / 2.0
    y = (h - 1) / 2.0 - ys
    c, s = _angles(n_angles)
    # unique (x, y) per die: project in chunks to bound memory on very large maps
    step = max(1, 4_000_000 // n_angles)
    flat = np.zeros(n_bins * n_angles)
    cols = np.arange(n_angles)
    for a in range(0, len(x), step):
        t = np.rint(np.outer(x[a:a + step], c) + np.outer(y[a:a + step], s)).astype(np.int64)
        t += diag // 2
        np.clip(t, 0, n_bins - 1, out=t)
        flat += np.bincount((t * n_angles + cols).ravel(), minlength=n_bins * n_angles)
    out[:] = flat.reshape(n_bins, n_angles)
    return out


def _resample(profile: np.ndarray, n_points: int) -> np.ndarray:
    """Cubic interpolation of a profile onto ``n_points`` evenly spaced positions."""
    k = len(profile)
    if k == 0:
        return np.zeros(n_points)
    if k == 1:
        return np.full(n_points, profile[0])
    xs = np.linspace(0, 1, k)
    xt = np.linspace(0, 1, n_points)
    if k < 4:
        return np.interp(xt, xs, profile)
    from scipy.interpolate import CubicSpline

    return CubicSpline(xs, profile)(xt)


def radon_one(m: np.ndarray, n_points: int = RADON_POINTS, n_angles: int = RADON_ANGLES
              ) -> np.ndarray:
    """Radon features of one map; see :func:`radon_features`.

    Returns
    -------
    ndarray of shape (2 * n_points,), float32
    """
    fail = m == 2
    if not fail.any():
        return np.zeros(2 * n_points, np.float32)
    sino = sinogram(fail, n_angles) / max(m.shape)
    mean = _resample(sino.mean(axis=1), n_points)
    std = _resample(sino.std(axis=1), n_points)
    return np.nan_to_num(np.concatenate([mean, std])).astype(np.float32)


def radon_features(maps: MapsLike, n_points: int = RADON_POINTS, n_angles: int = RADON_ANGLES
                   ) -> np.ndarray:
    """Radon-transform features of the fail dies (Wu et al. 2015).

    The sinogram of the binary fail mask (projection position x angle, ``n_angles`` angles
    over 180 degrees, see :func:`sinogram`) is divided by the longer grid side (so a value is
    the fraction of a wafer-wide line that fails); its mean and standard deviation over the
    angles give two profiles along the projection axis, each resampled by cubic interpolation
    to ``n_points`` values.

    Parameters
    ----------
    maps : WaferSet or sequence of ndarray of shape (H_i, W_i)
    n_points : int, default 20
    n_angles : int, default 60

    Returns
    -------
    ndarray of shape (n, 2 * n_points), float32
        ``n_points`` means then ``n_points`` stds; zeros for a map without fail dies.
    """
    if n_points < 1 or n_angles < 1:
        raise WafertkError("radon n_points and n_angles must be at least 1")
    ms = as_map_list(maps)
    out = np.zeros((len(ms), 2 * n_points), np.float32)
    for i, m in enumerate(ms):
        out[i] = radon_one(m, n_points, n_angles)
    return out


# ---------------------------------------------------------------------------- geometry
GEOMETRY_FEATURE_NAMES: tuple[str, ...] = (
    "geom_area",  # region dies / wafer dies
    "geom_perimeter",  # region perimeter / wafer circumference (pi x equivalent diameter)
    "geom_major_axis",  # major axis length / wafer equivalent diameter
    "geom_minor_axis",  # minor axis length / wafer equivalent diameter
    "geom_eccentricity",  # 0 circle .. 1 line
    "geom_solidity",  # area / convex area
    "geom_centroid_radius",  # distance of the region centroid from the grid centre, 0..1
    "geom_regions",  # log(1 + number of fail regions after the median filter)
)


#: Grid cells of the maps of one shape measured together by :func:`geometry_features` (at
#: most 256 maps).
GEOMETRY_CHUNK_CELLS = 1 << 20

#: skimage.measure.perimeter's weight of each border-pixel code (4-neighbourhood): code =
#: 1 (a border pixel) + 2 x its border 4-neighbours + 10 x its border diagonal neighbours.
_PERIMETER_WEIGHTS = np.zeros(50)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1
_PERIMETER_WEIGHTS[[21, 33]] = math.sqrt(2)
_PERIMETER_WEIGHTS[[13, 23]] = (1 + math.sqrt(2)) / 2
_PERIMETER_WEIGHTS.setflags(write=False)


def _majority(fail: np.ndarray, size: int) -> np.ndarray:
    """The ``size x size`` median of binary masks (n, H, W), borders replicated (what
    :func:`cv2.medianBlur` computes): more than half of the window's cells fail. Window
    counts from an integral image, exact for any size."""
    n, h, w = fail.shape
    r = size // 2
    padded = np.pad(fail.astype(np.int32), ((0, 0), (r, r), (r, r)), mode="edge")
    ii = np.zeros((n, h + 2 * r + 1, w + 2 * r + 1), np.int32)
    np.cumsum(padded, axis=1, out=ii[:, 1:, 1:])
    np.cumsum(ii[:, 1:, 1:], axis=2, out=ii[:, 1:, 1:])
    count = (ii[:, size:size + h, size:size + w] - ii[:, :h, size:size + w]
             - ii[:, size:size + h, :w] + ii[:, :h, :w])
    return count > size * size // 2


#: The midpoints of a pixel's four edges, in doubled coordinates (x, y).
_DIAMOND = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.int32)


def _convex_hull_pixels(points: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> int:
    """Pixels of :func:`skimage.morphology.convex_hull_image` of a region, with that
    function's defaults (each pixel contributes the midpoints of its four edges; pixels on
    the hull's border count): ``cv2.convexHull`` of ``points``, the edge midpoints of the
    region's extreme pixels in doubled coordinates (x, y), and an exact inside-or-on test of
    the pixel centres of the bounding box rows ``y0..y1``, columns ``x0..x1``."""
    import cv2

    # vertices in the order of a positive shoelace area in (x, y): a point is inside or on
    # the hull when it lies left of or on every edge (cross product >= 0)
    hull = cv2.convexHull(points, clockwise=False).reshape(-1, 2).astype(np.int64)
    d = np.roll(hull, -1, axis=0) - hull
    gy = np.arange(2 * y0, 2 * y1 + 1, 2)[:, None] - hull[None, :, 1]  # (rows, vertices)
    gx = np.arange(2 * x0, 2 * x1 + 1, 2)[:, None] - hull[None, :, 0]  # (cols, vertices)
    a, b = d[:, 0] * gy, (d[:, 1] * gx)[None]
    step = max(1, (1 << 22) // max(b.size, 1))  # rows at a time: bounded memory
    return sum(int(((a[s:s + step, None, :] - b) >= 0).all(axis=2).sum())
               for s in range(0, len(a), step))


def _geometry_block(maps: np.ndarray, median_size: int) -> np.ndarray:
    """:func:`geometry_features` of a stack of maps of one shape (n, H, W)."""
    n, h, w = maps.shape
    out = np.zeros((n, len(GEOMETRY_FEATURE_NAMES)), np.float64)
    fail = maps == 2
    n_fail = fail.reshape(n, -1).sum(axis=1)
    if not n_fail.any():
        return out.astype(np.float32)
    den = fail
    if median_size > 1 and min(h, w) >= 2:
        den = _majority(fail, median_size)
        gone = ~den.reshape(n, -1).any(axis=1)
        den[gone] = fail[gone]  # the filter removed everything: the raw mask
    # 8-connected regions within each map; labels in raster order (ties: the first wins)
    lab, n_lab, owner_of = label_maps(den)
    sizes = np.bincount(lab.ravel(), minlength=n_lab + 1)
    sizes[0] = 0
    labels = np.arange(1, n_lab + 1)
    order = np.lexsort((labels, -sizes[1:], owner_of[1:]))  # per map: largest, first label
    owners = owner_of[1:][order]
    has = np.flatnonzero(n_fail > 0)
    biggest = labels[order][np.searchsorted(owners, has)]
    selected = np.zeros(n_lab + 1, bool)
    selected[biggest] = True
    region = selected[lab]
    j, rr, cc = np.nonzero(region)  # by map, in raster order
    starts = np.searchsorted(j, np.arange(n + 1))
    # perimeter codes (skimage.measure.perimeter, neighborhood=4): 1 for a border pixel
    # + 2 per border 4-neighbour + 10 per border diagonal neighbour; histogram per map
    p = np.pad(region, ((0, 0), (1, 1), (1, 1)))
    inner = (p[:, :-2, 1:-1] & p[:, 2:, 1:-1] & p[:, 1:-1, :-2] & p[:, 1:-1, 2:])
    border = np.pad(region & ~inner, ((0, 0), (1, 1), (1, 1))).astype(np.int64)
    bj, by, bx = np.nonzero(border[:, 1:-1, 1:-1])
    code = 1 + 2 * (border[bj, by, bx + 1] + border[bj, by + 2, bx + 1]
                    + border[bj, by + 1, bx] + border[bj, by + 1, bx + 2]) \
        + 10 * (border[bj, by, bx] + border[bj, by, bx + 2] + border[bj, by + 2, bx]
                + border[bj, by + 2, bx + 2])
    hist = np.bincount(bj * 50 + code, minlength=n * 50).reshape(n, 50)
    # convex hull: from the first and last pixel of each row and column of the region
    row_key = (j * h + rr)
    cut = np.flatnonzero(np.diff(row_key)) + 1
    firsts, lasts = np.r_[0, cut], np.r_[cut, len(j)] - 1
    col_order = np.lexsort((rr, cc, j))
    col_key = (j * w + cc)[col_order]
    ccut = np.flatnonzero(np.diff(col_key)) + 1
    cfirst, clast = col_order[np.r_[0, ccut]], col_order[np.r_[ccut, len(j)] - 1]
    ext = np.concatenate([firsts, lasts, cfirst, clast])
    ext = ext[np.argsort(j[ext], kind="stable")]
    bounds = np.searchsorted(j[ext], np.arange(n + 1))
    ey, ex = rr[ext], cc[ext]
    points = (np.stack([2 * ex, 2 * ey], axis=1)[:, None, :] + _DIAMOND).astype(np.int32)
    points = points.reshape(-1, 2)
    n_dies = maps.reshape(n, -1).astype(bool).sum(axis=1)
    n_regions = np.bincount(owner_of[1:], minlength=n)
    # per map, the scalar arithmetic of the map-by-map code (same operations, same order)
    for k in has:
        y, x = rr[starts[k]:starts[k + 1]], cc[starts[k]:starts[k + 1]]
        y0, x0 = int(y[0]), int(x.min())  # the bounding box's corner (rows come sorted)
        area, (r0, c0), major, minor, ecc = _region_moments(y - y0, x - x0)
        b0, b1 = bounds[k], bounds[k + 1]
        hull = _convex_hull_pixels(points[4 * b0:4 * b1], y0, int(ey[b0:b1].max()), x0,
                                   int(ex[b0:b1].max()))
        dies = max(float(n_dies[k]), 1.0)
        diam = math.sqrt(4 * dies / math.pi)
        cy = (r0 + y0 + 0.5) / h * 2 - 1
        cx = (c0 + x0 + 0.5) / w * 2 - 1
        out[k] = [
            area / dies,
            float(hist[k] @ _PERIMETER_WEIGHTS) / (math.pi * diam),
            major / diam,
            minor / diam,
            ecc,
            area / float(hull) if area > 0 else 0.0,
            min(math.hypot(cx, cy) / math.sqrt(2), 1.0),
            math.log1p(int(n_regions[k])),
        ]
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def _region_moments(rr: np.ndarray, cc: np.ndarray) -> tuple[float, tuple[float, float],
                                                              float, float, float]:
    """Area, centroid (row, col), major and minor axis lengths and eccentricity of a region
    given by its pixels' coordinates (raster order), as :func:`skimage.measure.regionprops`
    defines them (the ellipse of the same second central moments)."""
    area = len(rr)
    r0, c0 = rr.mean(), cc.mean()
    dr, dc = rr - r0, cc - c0
    # inertia tensor [[mu02, -mu11], [-mu11, mu20]] / mu00 (skimage's convention)
    a, c, b = (dc @ dc) / area, (dr @ dr) / area, -(dr @ dc) / area
    half, root = (a + c) / 2, math.sqrt(((a - c) / 2) ** 2 + b * b)
    l1, l2 = max(half + root, 0.0), max(half - root, 0.0)
    ecc = math.sqrt(1 - l2 / l1) if l1 > 0 else 0.0
    return float(area), (float(r0), float(c0)), 4 * math.sqrt(l1), 4 * math.sqrt(l2), ecc


def geometry_features(maps: MapsLike, median_size: int = 3) -> np.ndarray:
    """Shape of the most salient fail region of each native-size map (Wu et al. 2015).

    The binary fail mask is denoised by a ``median_size x median_size`` median filter
    (borders replicated, as :func:`cv2.medianBlur`); when that removes every fail die
    (sparse Random-like fails, one-die-wide scratches) the raw mask is used instead. Regions
    are 8-connected; the largest one (ties: the first in raster order) is measured with the
    definitions of :func:`skimage.measure.regionprops`: moments of the pixel coordinates,
    :func:`skimage.measure.perimeter` (4-neighbourhood) and the pixels of
    :func:`skimage.morphology.convex_hull_image`.

    Maps of one shape are computed together (:data:`GEOMETRY_CHUNK_CELLS` grid cells at a
    time: one labelling call, per-map sums by ``bincount``; only the convex hull is taken
    map by map); the values do not depend on which maps share a call, and equal
    scikit-image's (``tests/features/test_feature_wu.py``; the float32 values were identical
    to the previous map-by-map code on 38,549 real maps).

    Parameters
    ----------
    maps : WaferSet or sequence of ndarray of shape (H_i, W_i)
    median_size : int, default 3
        Odd median-filter side; 1 disables the filter.

    Returns
    -------
    ndarray of shape (n, 8), float32
        Columns as in :data:`GEOMETRY_FEATURE_NAMES`: area / wafer dies, perimeter / wafer
        circumference, major and minor axis / wafer equivalent diameter
        (``sqrt(4 dies / pi)``), eccentricity, solidity, centroid radius (0 centre, 1 grid
        corner), ``log(1 + regions)``. All zeros for a map without fail dies.
    """
    if median_size < 1 or median_size % 2 == 0:
        raise WafertkError(f"median_size must be an odd positive integer, got {median_size}")
    return by_shape(as_map_list(maps), lambda stack: _geometry_block(stack, median_size),
                    len(GEOMETRY_FEATURE_NAMES), chunk_cells=GEOMETRY_CHUNK_CELLS)
