"""Rotation-invariant spatial statistics of the fail dies, on native-size maps.

The classic features (:mod:`wafertk.features.wu`) describe where fails are (13 fixed regions,
Radon profiles averaged over the angles) and the shape of the largest fail region; the die
metadata add the radial fail profile. What they leave out, and what separates the patterns
that the production lots confuse most (a thin Scratch from a Loc, a Loc from an Edge-Loc or a
Center, Random from a faint pattern), is *how* the fails are arranged:

* sectors: the fail density of the densest and of the sparsest of 8 angular sectors in each
  of 5 rings (a ring pattern fills every sector, a local one a few; rotation-invariant);
* neighbours: how often a fail die's neighbours fail too, against the wafer's fail ratio
  (clustered patterns) and the share of isolated fail dies (random fails);
* regions: the share of the fails in the largest and second-largest 8-connected fail
  regions of the raw map and the number of regions of 3 dies or more;
* lines: the strongest excess of fail dies along a 2-die-wide straight strip over what the
  wafer's fail ratio predicts for that strip, and how much weaker the perpendicular strips
  are (a scratch is a line at one angle; a blob is thick at every angle).

Every function returns finite values for any map: a map without fail dies, a 1x1 map or a
very large map gives zeros where a value is undefined, never NaN.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from wafertk.features._common import (
    MapsLike,
    as_map_list,
    by_shape,
    die_mask_keys,
    label_maps,
    unpack_mask,
)

N_RINGS = 5
N_SECTORS = 8
#: A ring-sector cell with fewer dies than this is left out of that ring's extrema.
MIN_CELL_DIES = 3
LINE_ANGLES = 36

SPATIAL_FEATURE_NAMES: tuple[str, ...] = (
    *(f"sector_max_ring{i}" for i in range(N_RINGS)),  # densest sector's fail density
    *(f"sector_min_ring{i}" for i in range(N_RINGS)),  # sparsest sector's fail density
    "neighbour_fail_ratio",  # mean share of failing die-neighbours of a fail die
    "neighbour_lift",  # that share / the wafer's fail ratio (log1p)
    "isolated_fail_share",  # fail dies without a failing neighbour / fail dies
    "dense_fail_share",  # fail dies with >= 5 failing neighbours / fail dies
    "region1_share",  # fails in the largest raw 8-connected fail region / fails
    "region2_share",  # fails in the second largest / fails
    "regions_3plus",  # log(1 + number of fail regions of 3 dies or more)
    "line_excess",  # max over strips of (fails - fail ratio x dies) / wafer diameter
    "line_share",  # fails in that strip / fails
    "line_contrast",  # 1 - (best excess across the perpendicular strips) / line_excess
)


@lru_cache(maxsize=1024)
def _sectors(h: int, w: int) -> np.ndarray:
    """Angular sector (0 .. N_SECTORS - 1) of every cell of an ``h x w`` grid, flattened;
    ``N_SECTORS`` for the centre cell of an odd grid, which has no angle.

    Sector ``k`` spans ``k * 45 +- 22.5`` degrees: no cell of any grid lies on an edge
    (``tan 22.5`` is irrational), so a quarter turn of the map permutes the sectors exactly.
    """
    from wafertk.data.preprocess import _geometry

    r, c, s = _geometry(h, w)
    turn = (np.arctan2(s, c) + np.pi / N_SECTORS) % (2 * np.pi)
    sector = np.minimum((turn / (2 * np.pi) * N_SECTORS).astype(np.int64), N_SECTORS - 1)
    sector[r == 0] = N_SECTORS
    sector.setflags(write=False)
    return sector


def _strip_counts(mask: np.ndarray) -> np.ndarray:
    """Cells of ``mask`` per 2-die-wide strip, shape (diag + 2, LINE_ANGLES): the Radon
    sinogram's one-die bins (:func:`wafertk.features.wu.sinogram`, same angles), an empty bin
    added at each end, summed in neighbouring pairs."""
    from wafertk.features.wu import sinogram

    single = np.pad(sinogram(mask, LINE_ANGLES), ((1, 1), (0, 0)))
    return single[:-1] + single[1:]


@lru_cache(maxsize=1024)
def _die_strips(h: int, w: int, packed: bytes) -> np.ndarray:
    """:func:`_strip_counts` of a die mask given as ``np.packbits`` bytes (wafers of one
    product share their die mask: computed once per mask)."""
    out = _strip_counts(unpack_mask(h, w, packed))
    out.setflags(write=False)
    return out


def spatial_one(m: np.ndarray) -> np.ndarray:
    """Spatial fail statistics of one map; see :func:`spatial_features`.

    Returns
    -------
    ndarray of shape (20,), float32
    """
    import cv2
    from scipy import ndimage as ndi

    out = np.zeros(len(SPATIAL_FEATURE_NAMES), np.float64)
    h, w = m.shape
    die = m > 0
    fail = m == 2
    n_die, n_fail = int(die.sum()), int(fail.sum())
    if n_die == 0 or n_fail == 0:
        return out.astype(np.float32)
    p = n_fail / n_die
    # sectors
    from wafertk.data.preprocess import _geometry

    r = _geometry(h, w)[0]
    sector = _sectors(h, w)
    dflat, fflat = die.ravel(), fail.ravel()
    rmax = r[dflat].max() or 1.0
    ring = np.minimum((r / rmax * N_RINGS).astype(np.int64), N_RINGS - 1)
    cell = ring * (N_SECTORS + 1) + sector  # column N_SECTORS: the centre cell, left out
    shape = (N_RINGS, N_SECTORS + 1)
    dies = np.bincount(cell[dflat], minlength=shape[0] * shape[1]).reshape(shape)[:, :-1]
    fails = np.bincount(cell[fflat], minlength=shape[0] * shape[1]).reshape(shape)[:, :-1]
    ok = dies >= MIN_CELL_DIES
    dens = np.divide(fails, dies, out=np.zeros(dies.shape), where=ok)
    has = ok.any(axis=1)
    out[0:N_RINGS] = np.where(has, np.where(ok, dens, -1.0).max(axis=1), 0.0)
    out[N_RINGS:2 * N_RINGS] = np.where(has, np.where(ok, dens, 2.0).min(axis=1), 0.0)
    # neighbours
    k = np.ones((3, 3), np.float32)
    f32 = fail.astype(np.float32)
    fn = cv2.filter2D(f32, -1, k, borderType=cv2.BORDER_CONSTANT) - f32
    dn = cv2.filter2D(die.astype(np.float32), -1, k, borderType=cv2.BORDER_CONSTANT) - die
    fn_f, dn_f = fn[fail], dn[fail]
    share = np.divide(fn_f, dn_f, out=np.zeros_like(fn_f), where=dn_f > 0)
    i = 2 * N_RINGS
    out[i] = share.mean()
    out[i + 1] = math.log1p(out[i] / p)
    out[i + 2] = float((fn_f < 0.5).mean())
    out[i + 3] = float((fn_f > 4.5).mean())
    # regions
    lab, n = ndi.label(fail, structure=np.ones((3, 3)))
    sizes = np.sort(np.bincount(lab.ravel())[1:])[::-1]
    out[i + 4] = sizes[0] / n_fail
    out[i + 5] = sizes[1] / n_fail if n > 1 else 0.0
    out[i + 6] = math.log1p(int((sizes >= 3).sum()))
    # lines
    strips_f = _strip_counts(fail)
    strips_d = _die_strips(h, w, np.packbits(die).tobytes())
    excess = (strips_f - p * strips_d).max(axis=0)  # per angle
    best = int(excess.argmax())
    diam = math.sqrt(4 * n_die / math.pi)
    top = float(excess[best])
    out[i + 7] = max(top, 0.0) / diam
    col = strips_f[:, best] - p * strips_d[:, best]
    out[i + 8] = strips_f[int(col.argmax()), best] / n_fail if top > 0 else 0.0
    perp = excess[(best + LINE_ANGLES // 2) % LINE_ANGLES]
    out[i + 9] = 1.0 - max(perp, 0.0) / top if top > 0 else 0.0
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


#: Grid cells of the maps of one shape computed together by :func:`spatial_features` (at
#: most 256 maps), counting a map as at least its strip cells (diagonal x 36: elongated
#: grids have more strips than cells): bounds the arrays of a call to some tens of MB.
CHUNK_CELLS = 1 << 20


#: Grids up to this many cells keep a table of every cell's projection bins (36 x 4 bytes
#: a cell, at most 9.4 MB; 16 shapes cached); larger ones compute the bins of their fail
#: dies on the fly. WM-811K's largest grid has 60,600 cells.
BIN_TABLE_CELLS = 1 << 16


def _bins(cells: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sinogram bin of each of ``cells`` (flat indices into an ``h x w`` grid) at each of
    the LINE_ANGLES angles, shape (len(cells), LINE_ANGLES): the binning of
    :func:`wafertk.features.wu.sinogram`, cell by cell."""
    from wafertk.features.wu import _angles

    diag = int(math.ceil(math.hypot(h, w)))
    ys, xs = np.divmod(cells, w)
    x = xs - (w - 1) / 2.0
    y = (h - 1) / 2.0 - ys
    c, s = _angles(LINE_ANGLES)
    t = np.rint(np.outer(x, c) + np.outer(y, s)).astype(np.int64)
    t += diag // 2
    np.clip(t, 0, diag, out=t)
    return t


@lru_cache(maxsize=16)
def _bin_table(h: int, w: int) -> np.ndarray:
    """:func:`_bins` of every cell of a grid of at most BIN_TABLE_CELLS cells (int32,
    read-only): computed once per grid shape."""
    out = _bins(np.arange(h * w), h, w).astype(np.int32)
    out.setflags(write=False)
    return out


def _fail_strips(fail: np.ndarray, h: int, w: int) -> np.ndarray:
    """:func:`_strip_counts` of every row of ``fail`` (n, h * w), bool: shape
    (n, diag + 2, LINE_ANGLES), float64; cost proportional to the fail dies."""
    n = len(fail)
    n_bins = int(math.ceil(math.hypot(h, w))) + 1
    table = _bin_table(h, w) if h * w <= BIN_TABLE_CELLS else None
    cols = np.arange(LINE_ANGLES)
    j, cell = np.nonzero(fail)
    flat = np.zeros(n * n_bins * LINE_ANGLES)
    step = max(1, 4_000_000 // LINE_ANGLES)
    for a in range(0, len(j), step):
        part = cell[a:a + step]
        bins = table[part] if table is not None else _bins(part, h, w)
        idx = (j[a:a + step, None] * n_bins + bins) * LINE_ANGLES + cols
        flat += np.bincount(idx.ravel(), minlength=len(flat))
    single = np.pad(flat.reshape(n, n_bins, LINE_ANGLES), ((0, 0), (1, 1), (0, 0)))
    return single[:, :-1] + single[:, 1:]


def _neighbours(stack: np.ndarray) -> np.ndarray:
    """Set cells among the 8 neighbours of every cell of ``stack`` (n, H, W), bool: uint8."""
    n, h, w = stack.shape
    p = np.pad(stack.astype(np.uint8), ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, h, w), np.uint8)
    for dy in range(3):
        for dx in range(3):
            if dy != 1 or dx != 1:
                out += p[:, dy:dy + h, dx:dx + w]
    return out


def _spatial_block(maps: np.ndarray) -> np.ndarray:
    """:func:`spatial_features` of a stack of maps of one shape (n, H, W): the operations of
    :func:`spatial_one`, on all maps at once."""
    from wafertk.data.preprocess import _geometry

    n, h, w = maps.shape
    out = np.zeros((n, len(SPATIAL_FEATURE_NAMES)), np.float64)
    die, fail = maps > 0, maps == 2
    die2, fail2 = die.reshape(n, -1), fail.reshape(n, -1)
    n_die, n_fail = die2.sum(axis=1), fail2.sum(axis=1)
    ok = (n_die > 0) & (n_fail > 0)
    if not ok.any():
        return out.astype(np.float32)
    p = n_fail / np.maximum(n_die, 1)
    rows = np.arange(n)
    # sectors
    r = _geometry(h, w)[0]
    rmax = np.where(die2, r, -np.inf).max(axis=1)
    rmax = np.where(rmax > 0, rmax, 1.0)
    ring = np.minimum((r[None] / rmax[:, None] * N_RINGS).astype(np.int64), N_RINGS - 1)
    width = N_RINGS * (N_SECTORS + 1)
    cell = rows[:, None] * width + ring * (N_SECTORS + 1) + _sectors(h, w)[None]
    shape = (n, N_RINGS, N_SECTORS + 1)
    dies = np.bincount(cell[die2], minlength=n * width).reshape(shape)[..., :-1]
    fails = np.bincount(cell[fail2], minlength=n * width).reshape(shape)[..., :-1]
    good = dies >= MIN_CELL_DIES
    dens = np.divide(fails, dies, out=np.zeros(dies.shape), where=good)
    has = good.any(axis=2)
    out[:, 0:N_RINGS] = np.where(has, np.where(good, dens, -1.0).max(axis=2), 0.0)
    out[:, N_RINGS:2 * N_RINGS] = np.where(has, np.where(good, dens, 2.0).min(axis=2), 0.0)
    # neighbours (float32 shares averaged map by map, as spatial_one does: same rounding)
    fn, dn = _neighbours(fail)[fail], _neighbours(die)[fail]
    share = np.divide(fn.astype(np.float32), dn.astype(np.float32),
                      out=np.zeros(len(fn), np.float32), where=dn > 0)
    i = 2 * N_RINGS
    ends = np.cumsum(n_fail)
    out[:, i] = [part.mean() if len(part) else 0.0
                 for part in np.split(share, ends[:-1])]
    # math.log1p map by map, as spatial_one (numpy's vectorised log1p may round otherwise)
    out[:, i + 1] = [math.log1p(v / q) if q > 0 else 0.0 for v, q in zip(out[:, i], p,
                                                                         strict=True)]
    owner = np.repeat(rows, n_fail)
    out[:, i + 2] = np.bincount(owner, fn == 0, minlength=n) / np.maximum(n_fail, 1)
    out[:, i + 3] = np.bincount(owner, fn >= 5, minlength=n) / np.maximum(n_fail, 1)
    # regions: 8-connected within each map, never across maps
    lab, n_lab, owner_of = label_maps(fail)
    sizes = np.bincount(lab.ravel(), minlength=n_lab + 1)[1:]
    of = owner_of[1:]
    order = np.lexsort((-sizes, of))  # by map, largest region first
    first = np.searchsorted(of[order], rows)
    count = np.bincount(of, minlength=n)
    top1 = sizes[order][np.minimum(first, n_lab - 1)]
    top2 = sizes[order][np.minimum(first + 1, n_lab - 1)]
    out[:, i + 4] = np.where(count > 0, top1, 0) / np.maximum(n_fail, 1)
    out[:, i + 5] = np.where(count > 1, top2, 0) / np.maximum(n_fail, 1)
    out[:, i + 6] = [math.log1p(int(v)) for v in np.bincount(of, sizes >= 3, minlength=n)]
    # lines
    strips_f = _fail_strips(fail2, h, w)
    keys, mask_of = die_mask_keys(die2)
    strips_d = np.stack([_die_strips(h, w, key) for key in keys])[mask_of]
    ex = strips_f - p[:, None, None] * strips_d
    excess = ex.max(axis=1)  # (n, angles)
    best = excess.argmax(axis=1)
    top = excess[rows, best]
    diam = np.sqrt(4 * n_die / math.pi)
    out[:, i + 7] = np.maximum(top, 0.0) / np.where(diam > 0, diam, 1.0)
    at = ex[rows, :, best].argmax(axis=1)
    out[:, i + 8] = np.where(top > 0, strips_f[rows, at, best] / np.maximum(n_fail, 1), 0.0)
    perp = excess[rows, (best + LINE_ANGLES // 2) % LINE_ANGLES]
    out[:, i + 9] = np.where(top > 0, 1.0 - np.maximum(perp, 0.0) / np.where(top > 0, top, 1.0),
                             0.0)
    out[~ok] = 0.0
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def spatial_features(maps: MapsLike) -> np.ndarray:
    """Rotation-invariant spatial statistics of the fail dies of each native-size map.

    Rings and sectors: normalised radius as in the die metadata (elliptical, 0 at the grid
    centre, 1 at the outermost die), 5 equal-width rings, 8 sectors of 45 degrees centred on
    0, 45, ..., 315 degrees (the centre cell of an odd grid belongs to none); a ring-sector
    cell needs :data:`MIN_CELL_DIES` dies to count. A quarter turn of the map gives the same
    sector, neighbour and region columns exactly; the line columns only up to the rounding of
    the projections. Neighbours are the 8 surrounding cells that
    hold a die. Regions are 8-connected on the raw fail mask (no filter, unlike the
    geometry set, so thin scratches and sparse fails stay visible). Lines: the fail and die
    counts of every 2-die-wide strip at 36 angles over 180 degrees (binned projections, as
    :func:`wafertk.features.wu.sinogram`); a strip's excess is its fail dies minus the
    wafer's fail ratio times its dies.

    Parameters
    ----------
    maps : WaferSet or sequence of ndarray of shape (H_i, W_i)

    Returns
    -------
    ndarray of shape (n, 20), float32
        Columns as in :data:`SPATIAL_FEATURE_NAMES`; all zeros for a map without fail dies;
        the line columns are 0 when no strip holds more fails than the fail ratio predicts
        (a map whose dies all fail).
    """
    return by_shape(as_map_list(maps), _spatial_block, len(SPATIAL_FEATURE_NAMES),
                    chunk_cells=CHUNK_CELLS, cost=_map_cost)


def _map_cost(h: int, w: int) -> int:
    """What one map of an ``h x w`` grid counts against CHUNK_CELLS: its cells, or its
    projection strips when there are more of them (elongated grids)."""
    return max(h * w, (int(math.ceil(math.hypot(h, w))) + 2) * LINE_ANGLES)
