"""Turn native-size wafer maps into fixed-size model inputs.

* :func:`resize_maps` resizes any die grid to a square ``size x size`` grid **without losing
  fail dies**: on downsampling each target cell takes the maximum state of the source dies it
  covers (fail > pass > no die), so a single failing die marks its cell as fail; on upsampling
  each cell takes its nearest source die. The two axes are resized independently (the max is
  separable), and every source row/column lands in exactly one target cell.
* :func:`one_hot` turns resized grids into three channels (no die, pass, fail).
* :func:`die_metadata` computes the per-wafer metadata vector (:data:`META_FEATURE_NAMES`) that
  the phase-2 CNN concatenates before its dense head and that the feature API exposes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from wafertk.data.waferset import FAIL, WaferSet
from wafertk.errors import WafertkError

DEFAULT_SIZE = 64
N_RINGS = 5

#: Names of the columns of :func:`die_metadata`, in order.
META_FEATURE_NAMES: tuple[str, ...] = (
    "die_count",  # dies on the wafer (non-zero cells)
    "grid_rows",  # rows of the die grid
    "grid_cols",  # columns of the die grid
    "aspect",  # rows / columns
    "fill_ratio",  # dies / (rows x columns): how much of the grid is wafer
    "fail_count",  # failing dies
    "fail_ratio",  # failing dies / dies
    *(f"ring{i}_fail_ratio" for i in range(N_RINGS)),  # fail ratio in 5 equal-width rings
    "edge_fail_ratio",  # fail ratio among edge dies (a die with a no-die or border neighbour)
    "fail_radius_mean",  # mean normalised radius of failing dies (0 centre .. 1 edge)
    "fail_radius_std",  # spread of that radius
    "fail_angular_concentration",  # |mean unit vector| of failing dies' angles: 0 ring, 1 one side
    "fail_centroid_radius",  # normalised radius of the failing dies' centroid
)


def _check_size(size: int) -> int:
    size = int(size)
    if size < 2:
        raise WafertkError(f"input size must be at least 2, got {size}")
    return size


@lru_cache(maxsize=4096)
def _axis_plan(n: int, size: int) -> tuple[bool, np.ndarray]:
    """(reduce?, index array) to map an axis of ``n`` cells onto ``size`` cells."""
    if n >= size:
        return True, (np.arange(size, dtype=np.int64) * n) // size  # reduceat group starts
    return False, (np.arange(size, dtype=np.int64) * n) // size  # nearest source cell


def resize_map(m: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Resize one die grid to ``(size, size)``, keeping every fail die.

    Parameters
    ----------
    m : ndarray of shape (H, W), uint8
        Values 0 = no die, 1 = pass, 2 = fail.
    size : int, default 64

    Returns
    -------
    ndarray of shape (size, size), uint8

    Examples
    --------
    >>> m = np.ones((300, 200), np.uint8); m[150, 100] = 2
    >>> int(resize_map(m, 32).max())
    2
    """
    h, w = m.shape
    if h == 0 or w == 0:
        return np.zeros((size, size), np.uint8)
    red, idx = _axis_plan(h, size)
    m = np.maximum.reduceat(m, idx, axis=0) if red else m[idx]
    red, idx = _axis_plan(w, size)
    return np.maximum.reduceat(m, idx, axis=1) if red else m[:, idx]


def resize_maps(maps: WaferSet | Sequence[np.ndarray], size: int = DEFAULT_SIZE) -> np.ndarray:
    """Resize every map to ``(size, size)`` with :func:`resize_map`.

    Parameters
    ----------
    maps : WaferSet or sequence of ndarray of shape (H_i, W_i)
    size : int, default 64

    Returns
    -------
    ndarray of shape (n, size, size), uint8
    """
    size = _check_size(size)
    out = np.empty((len(maps), size, size), np.uint8)
    for i, m in enumerate(maps):
        out[i] = resize_map(np.asarray(m), size)
    return out


def one_hot(resized: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Three-state one-hot channels of resized maps.

    Parameters
    ----------
    resized : ndarray of shape (n, S, S), uint8 in {0, 1, 2}

    Returns
    -------
    ndarray of shape (n, S, S, 3)
        Channel 0 = no die, 1 = pass, 2 = fail.
    """
    return (resized[..., None] == np.arange(3, dtype=np.uint8)).astype(dtype)


@lru_cache(maxsize=2048)
def _geometry(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised radius, cos and sin of the angle of every cell of an ``h x w`` grid."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy = (yy - (h - 1) / 2) / max(h / 2, 0.5)
    dx = (xx - (w - 1) / 2) / max(w / 2, 0.5)
    r = np.hypot(dy, dx)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(r > 0, dx / r, 0.0)
        s = np.where(r > 0, dy / r, 0.0)
    return r.ravel(), c.ravel(), s.ravel()


def _edge_mask(die: np.ndarray) -> np.ndarray:
    """Dies with a 4-neighbour that is no die or outside the grid."""
    p = np.pad(die, 1, constant_values=False)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return die & ~inner


def die_metadata_one(m: np.ndarray, die_size: float | None = None) -> np.ndarray:
    """The metadata vector of one map (see :data:`META_FEATURE_NAMES`)."""
    h, w = m.shape
    out = np.zeros(len(META_FEATURE_NAMES), np.float32)
    out[1], out[2] = h, w
    out[3] = h / w if w else 0.0
    die = m > 0
    n_die = int(die.sum())
    out[0] = n_die if die_size is None or not np.isfinite(die_size) else die_size
    out[4] = n_die / (h * w) if h * w else 0.0
    if n_die == 0:
        return out
    fail = (m == FAIL).ravel()
    n_fail = int(fail.sum())
    out[5] = n_fail
    out[6] = n_fail / n_die
    r, c, s = _geometry(h, w)
    dflat = die.ravel()
    rmax = r[dflat].max() or 1.0
    rn = np.minimum(r / rmax, 1.0)
    ring = np.minimum((rn * N_RINGS).astype(np.int64), N_RINGS - 1)
    dies_per_ring = np.bincount(ring[dflat], minlength=N_RINGS)
    fails_per_ring = np.bincount(ring[fail], minlength=N_RINGS)
    out[7 : 7 + N_RINGS] = fails_per_ring / np.maximum(dies_per_ring, 1)
    edge = _edge_mask(die).ravel()
    out[7 + N_RINGS] = (fail & edge).sum() / max(int(edge.sum()), 1)
    if n_fail:
        rf = rn[fail]
        out[8 + N_RINGS] = rf.mean()
        out[9 + N_RINGS] = rf.std()
        out[10 + N_RINGS] = np.hypot(c[fail].mean(), s[fail].mean())
        ys, xs = np.divmod(np.flatnonzero(fail), w)
        cy = (ys.mean() - (h - 1) / 2) / max(h / 2, 0.5)
        cx = (xs.mean() - (w - 1) / 2) / max(w / 2, 0.5)
        out[11 + N_RINGS] = min(np.hypot(cy, cx) / rmax, 1.0)
    return out


def die_metadata(maps: WaferSet | Sequence[np.ndarray], die_size: np.ndarray | None = None
                 ) -> np.ndarray:
    """Per-wafer die-placement metadata, computed on the native grid.

    Parameters
    ----------
    maps : WaferSet or sequence of ndarray of shape (H_i, W_i)
        For a :class:`WaferSet`, its ``die_size`` column is used as the die count.
    die_size : ndarray of shape (n,), optional
        Dies per wafer (overrides the count of non-zero cells where finite).

    Returns
    -------
    ndarray of shape (n, len(META_FEATURE_NAMES)), float32
        Columns as in :data:`META_FEATURE_NAMES`: die count, grid rows/cols, aspect, fill
        ratio, fail count/ratio, fail ratio in five equal-width rings of normalised radius
        (0 = centre, 1 = outermost die; the radius is elliptical, so non-square grids are
        handled), edge-die fail ratio, mean/std radius of failing dies, angular concentration
        of failing dies, and the normalised radius of their centroid. Maps without dies or
        without fails give zeros where a value is undefined, never NaN.

    Notes
    -----
    Computed for a whole batch at once with one vectorised pass per distinct grid shape; the
    values equal :func:`die_metadata_one` map by map (to float32 rounding).
    """
    if die_size is None and isinstance(maps, WaferSet):
        die_size = maps.die_size
    if isinstance(maps, WaferSet):
        flat, offsets, shapes = maps.maps_flat, maps.offsets, maps.shapes
    else:
        arrays = [np.ascontiguousarray(m, dtype=np.uint8) for m in maps]
        shapes = np.array([a.shape for a in arrays], dtype=np.int64).reshape(-1, 2)
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(shapes.prod(axis=1), out=offsets[1:])
        flat = (np.concatenate([a.reshape(-1) for a in arrays]) if arrays
                else np.zeros(0, np.uint8))
    out = _metadata_batch(flat, np.asarray(offsets, np.int64), np.asarray(shapes, np.int64))
    if die_size is not None:
        ds = np.asarray(die_size, np.float64)
        ok = np.isfinite(ds)
        out[ok, 0] = ds[ok]
    return out


def _metadata_batch(flat: np.ndarray, offsets: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """:func:`die_metadata` (die count from the map) of many maps: one vectorised pass per
    distinct grid shape (wafers of one product share their grid)."""
    n = len(shapes)
    out = np.zeros((n, len(META_FEATURE_NAMES)), np.float64)
    h = shapes[:, 0].astype(np.int64)
    w = shapes[:, 1].astype(np.int64)
    out[:, 1], out[:, 2] = h, w
    out[:, 3] = np.where(w > 0, h / np.maximum(w, 1), 0.0)
    if n == 0:
        return out.astype(np.float32)
    key = h * 100_003 + w
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    for idx in np.split(order, bounds):
        gh, gw = int(h[idx[0]]), int(w[idx[0]])
        if gh * gw == 0:
            continue
        for part in range(0, len(idx), max(1, _CHUNK_CELLS // (gh * gw))):
            sub = idx[part:part + max(1, _CHUNK_CELLS // (gh * gw))]
            out[sub, :] = _metadata_same_shape(flat, offsets[sub], gh, gw)
    return out.astype(np.float32)


_CHUNK_CELLS = 1 << 21


def _metadata_same_shape(flat: np.ndarray, starts: np.ndarray, h: int, w: int) -> np.ndarray:
    """Metadata rows of ``k`` maps of one ``h x w`` shape starting at ``starts`` in ``flat``."""
    cells = h * w
    k = len(starts)
    maps = flat[starts[:, None] + np.arange(cells)[None, :]]  # (k, cells)
    out = np.zeros((k, len(META_FEATURE_NAMES)), np.float64)
    out[:, 1], out[:, 2] = h, w
    out[:, 3] = h / w
    r, c, s = _geometry(h, w)
    die = maps > 0
    fail = maps == FAIL
    n_die = die.sum(axis=1)
    n_fail = fail.sum(axis=1)
    out[:, 0] = n_die
    out[:, 4] = n_die / cells
    out[:, 5] = n_fail
    has_die = n_die > 0
    out[:, 6] = np.where(has_die, n_fail / np.maximum(n_die, 1), 0.0)
    rmax = np.where(die, r[None, :], 0.0).max(axis=1)
    rmax[rmax == 0] = 1.0
    rn = np.minimum(r[None, :] / rmax[:, None], 1.0)
    ring = np.minimum((rn * N_RINGS).astype(np.int64), N_RINGS - 1)
    slot = (np.arange(k)[:, None] * N_RINGS + ring)
    dies_per_ring = np.bincount(slot[die], minlength=k * N_RINGS).reshape(k, N_RINGS)
    fails_per_ring = np.bincount(slot[fail], minlength=k * N_RINGS).reshape(k, N_RINGS)
    out[:, 7:7 + N_RINGS] = fails_per_ring / np.maximum(dies_per_ring, 1)
    d3 = die.reshape(k, h, w)
    p = np.pad(d3, ((0, 0), (1, 1), (1, 1)), constant_values=False)
    inner = p[:, :-2, 1:-1] & p[:, 2:, 1:-1] & p[:, 1:-1, :-2] & p[:, 1:-1, 2:]
    edge = (d3 & ~inner).reshape(k, cells)
    out[:, 7 + N_RINGS] = (fail & edge).sum(axis=1) / np.maximum(edge.sum(axis=1), 1)
    has_fail = n_fail > 0
    if has_fail.any():
        f = fail.astype(np.float64)
        nf = np.maximum(n_fail, 1)
        mean_rf = (rn * f).sum(axis=1) / nf
        var_rf = (((rn - mean_rf[:, None]) ** 2) * f).sum(axis=1) / nf
        conc = np.hypot(f @ c / nf, f @ s / nf)
        yy, xx = np.divmod(np.arange(cells, dtype=np.float64), w)
        cy = (f @ yy / nf - (h - 1) / 2) / max(h / 2, 0.5)
        cx = (f @ xx / nf - (w - 1) / 2) / max(w / 2, 0.5)
        cen = np.minimum(np.hypot(cy, cx) / rmax, 1.0)
        for col, v in ((8, mean_rf), (9, np.sqrt(var_rf)), (10, conc), (11, cen)):
            out[:, col + N_RINGS] = np.where(has_fail, v, 0.0)
    out[~has_die, 5:] = 0.0
    return out


def prepare_inputs(ws: WaferSet, size: int = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Resized one-hot maps and metadata for a batch: the CNN's two inputs.

    Parameters
    ----------
    ws : WaferSet
    size : int, default 64

    Returns
    -------
    x : ndarray of shape (n, size, size, 3), float32
    meta : ndarray of shape (n, len(META_FEATURE_NAMES)), float32
    """
    return one_hot(resize_maps(ws, size)), die_metadata(ws)
