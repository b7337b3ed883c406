"""Local fail structures on native-size maps: short straight fail segments and the centre cluster.

The spatial set (:mod:`wafertk.features.spatial`) sees lines that cross the whole wafer and
fail clusters of any place; what it misses on production lots are *small* structures that
the production labelling convention still names:

* segments: a thin scratch of 5-15 dies among scattered fails. For segment lengths of 5, 9
  and 15 dies and 12 directions (every 15 degrees), the most fail dies any segment covers
  (as a share of its length), and how much its direction stands out where such a segment
  lies: that share minus the mean fail share of the dies under the 12 segments through the
  same cell (a line scores high; a round blob, scattered fails or a fully failing map low);
* the centre cluster: a handful of failing dies at the wafer centre. The fail share of the
  dies within normalised radius 0.1 and 0.2 (0 at the grid centre, 1 at the outermost die,
  as in the die metadata), its lift over the wafer's fail ratio, and the largest 8-connected
  raw fail region that reaches radius 0.15 (its dies, and its share of the fails).

A quarter turn of the map gives the same values exactly (the 12 directions are closed under
it, the radius is symmetric). Every function returns finite values for any map: a map
without fail dies, a 1x1 map or a very large map gives zeros where a value is undefined.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import numpy as np

from wafertk.features._common import (
    MapsLike,
    as_map_list,
    by_shape,
    die_mask_keys,
    label_maps,
    unpack_mask,
)

#: Segment lengths in dies.
SEGMENT_LENGTHS: tuple[int, ...] = (5, 9, 15)
#: Directions per half turn (15 degrees apart).
SEGMENT_ANGLES = 12
#: Normalised radii of the centre disks.
CENTER_RADII: tuple[float, ...] = (0.1, 0.2)
#: A fail region is a centre region when one of its dies lies within this radius.
CENTER_REGION_RADIUS = 0.15

LOCAL_FEATURE_NAMES: tuple[str, ...] = (
    *(name for n in SEGMENT_LENGTHS for name in (f"seg{n}_max", f"seg{n}_line")),
    *(f"center_fail_r{r:g}" for r in CENTER_RADII),  # fail share of the dies within r
    "center_lift",  # log1p(fail share within r 0.2 / the wafer's fail ratio)
    "center_region_dies",  # log1p(dies of the largest fail region reaching r 0.15)
    "center_region_share",  # that region's dies / fail dies
)


@cache
def segment_kernels(length: int) -> np.ndarray:
    """Line kernels of ``length`` cells (odd) in :data:`SEGMENT_ANGLES` directions.

    Directions ``k * 180 / SEGMENT_ANGLES`` degrees; each kernel is the ``length`` cells of a
    digital line through the centre of a ``length x length`` square, one cell per step along
    its dominant axis (8-connected, point-symmetric). The kernels of the second quarter turn
    are the first ones turned by 90 degrees, so turning a map permutes the kernels exactly.

    Returns
    -------
    ndarray of shape (SEGMENT_ANGLES, length, length), float32, read-only
    """
    if length < 1 or length % 2 == 0:
        raise ValueError(f"segment length must be odd and positive, got {length}")
    c = (length - 1) // 2
    t = np.arange(-c, c + 1)
    quarter = []
    for k in range(SEGMENT_ANGLES // 2):
        theta = math.radians(k * 180 / SEGMENT_ANGLES)
        ker = np.zeros((length, length), np.float32)
        if abs(math.cos(theta)) >= abs(math.sin(theta)):
            x, y = t, np.round(t * math.tan(theta)).astype(int)
        else:
            x, y = np.round(t / math.tan(theta)).astype(int), t
        ker[c - y, c + x] = 1.0  # rows grow downwards: +y is up
        quarter.append(ker)
    out = np.stack([*quarter, *(np.rot90(k) for k in quarter)])
    out.setflags(write=False)
    return out


#: Grid cells of the maps of one shape processed together (at most 256 maps): bounds the
#: segment count arrays (3 lengths x 12 directions x cells, uint8) to about 75 MB (the
#: per-cell line statistics come on top, for the cells where the best segment lies).
CHUNK_CELLS = 1 << 21


@cache
def _offsets(length: int) -> tuple[tuple[int, int], ...]:
    """(row, column) offsets of the cells of every kernel of :func:`segment_kernels`, per
    direction the centre first, then outwards in pairs (so the first ``n`` are the kernel of
    length ``n``): ``counts[i, j] = sum(img[i + dy, j + dx])``, as ``cv2.filter2D`` computes it."""
    c = (length - 1) // 2
    out = []
    for ker in segment_kernels(length):
        cells = [(int(a) - c, int(b) - c) for a, b in zip(*np.nonzero(ker), strict=True)]
        out.append(tuple(sorted(cells, key=lambda d: (max(abs(d[0]), abs(d[1])), d))))
    return tuple(out)


def _segment_counts(stack: np.ndarray) -> dict[int, np.ndarray]:
    """Cells of ``stack`` (n, H, W) under every segment centred on every cell, per length:
    arrays of shape (SEGMENT_ANGLES, n, H, W), uint8 (cells outside the grid count 0)."""
    n, h, w = stack.shape
    longest = max(SEGMENT_LENGTHS)
    pad = (longest - 1) // 2
    padded = np.pad(stack.astype(np.uint8), ((0, 0), (pad, pad), (pad, pad)))
    out = {m: np.empty((SEGMENT_ANGLES, n, h, w), np.uint8) for m in SEGMENT_LENGTHS}
    for d, cells in enumerate(_offsets(longest)):
        acc = np.zeros((n, h, w), np.uint8)
        for k, (dy, dx) in enumerate(cells, start=1):
            acc += padded[:, pad + dy: pad + dy + h, pad + dx: pad + dx + w]
            if k in out:
                out[k][d] = acc
    return out


@lru_cache(maxsize=64)
def _die_segment_counts(h: int, w: int, packed: bytes) -> dict[int, np.ndarray]:
    """:func:`_segment_counts` of one die mask given as ``np.packbits`` bytes, each of shape
    (SEGMENT_ANGLES, H, W) and at least 1 (wafers of one product share their die mask:
    computed once per mask)."""
    die = unpack_mask(h, w, packed)[None]
    out = {m: np.maximum(c[:, 0], 1) for m, c in _segment_counts(die).items()}
    for c in out.values():
        c.setflags(write=False)
    return out


def _local_block(maps: np.ndarray) -> np.ndarray:
    """:func:`local_features` of a stack of maps of one shape (n, H, W)."""
    n, h, w = maps.shape
    out = np.zeros((n, len(LOCAL_FEATURE_NAMES)), np.float64)
    die, fail = maps > 0, maps == 2
    n_die = die.reshape(n, -1).sum(axis=1)
    n_fail = fail.reshape(n, -1).sum(axis=1)
    ok = (n_die > 0) & (n_fail > 0)
    if not ok.any() or h * w == 0:
        return out.astype(np.float32)
    p = n_fail / np.maximum(n_die, 1)
    # segments
    fails = _segment_counts(fail)
    keys, mask_of = die_mask_keys(die)
    per_mask = [_die_segment_counts(h, w, key) for key in keys]
    i = 0
    for length in SEGMENT_LENGTHS:
        counts = fails[length]
        top = counts.max(axis=0)
        best = top.reshape(n, -1).max(axis=1)
        out[:, i] = best / length
        # where a segment holds the most (maps with fails only: elsewhere every cell would)
        at = np.nonzero((top == best[:, None, None]) & ok[:, None, None])
        dies = np.stack([c[length] for c in per_mask], axis=1)  # (angles, masks, H, W)
        d = dies[:, mask_of[at[0]], at[1], at[2]]
        density = counts[:, at[0], at[1], at[2]].astype(np.float64) / d
        # summed in sorted order: the same value whatever order a turn puts the directions in
        line = best[at[0]] / length - np.sort(density, axis=0).mean(axis=0)
        col = np.full(n, -np.inf)
        np.maximum.at(col, at[0], line)
        out[:, i + 1] = col
        i += 2
    # centre
    from wafertk.data.preprocess import _geometry

    r = _geometry(h, w)[0].reshape(h, w)  # cached per grid
    rmax = np.where(die, r, 0.0).reshape(n, -1).max(axis=1)
    rn = r[None] / np.where(rmax > 0, rmax, 1.0)[:, None, None]
    for rad in CENTER_RADII:
        inner = die & (rn < rad)
        k = inner.reshape(n, -1).sum(axis=1)
        out[:, i] = np.divide((fail & inner).reshape(n, -1).sum(axis=1), k,
                              out=np.zeros(n), where=k > 0)
        i += 1
    out[:, i] = np.log1p(out[:, i - 1] / np.where(p > 0, p, 1.0))
    lab = label_maps(fail)[0]
    sizes = np.bincount(lab.ravel())
    near = fail & (rn < CENTER_REGION_RADIUS)
    size = np.zeros(n)
    np.maximum.at(size, np.nonzero(near)[0], sizes[lab[near]])
    out[:, i + 1] = np.log1p(size)
    out[:, i + 2] = size / np.maximum(n_fail, 1)
    out[~ok] = 0.0
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def local_features(maps: MapsLike) -> np.ndarray:
    """Short fail segments and the centre fail cluster of each native-size map.

    Segments: for each length in :data:`SEGMENT_LENGTHS` and each of the 12 directions of
    :func:`segment_kernels`, the fail dies under the segment centred on every cell (cells
    outside the grid count as no fail). ``segN_max`` is the most fails under any segment over
    ``N``; ``segN_line``, over the cells where a segment holds that most, the largest of
    ``segN_max`` minus the mean over the 12 segments through the cell of their fail dies over
    their dies (segments that leave the wafer count only the dies they cover; a segment
    that covers no die counts 0). Centre:
    normalised radius as in the die metadata (elliptical, 0 at the grid centre, 1 at the
    outermost die); the centre region is the largest 8-connected region of the raw fail mask
    with a die within radius :data:`CENTER_REGION_RADIUS`.

    Maps of one shape are computed together (:data:`CHUNK_CELLS` grid cells at a time); the
    values do not depend on which maps share a call.

    Parameters
    ----------
    maps : WaferSet or sequence of ndarray of shape (H_i, W_i)

    Returns
    -------
    ndarray of shape (n, 11), float32
        Columns as in :data:`LOCAL_FEATURE_NAMES`; all zeros for a map without fail dies.
    """
    return by_shape(as_map_list(maps), _local_block, len(LOCAL_FEATURE_NAMES),
                    chunk_cells=CHUNK_CELLS)
