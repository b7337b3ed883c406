"""Synthetic wafer maps with every WM-811K failure pattern, for tests, demos and examples.

Each map is a round wafer (an ellipse filling a random ``H x W`` grid) of passing dies with a
little random background failure, plus the pattern of its class:

=========  ==============================================================================
Center     a disc of failures around the wafer centre
Donut      a ring of failures at mid radius, centre and edge mostly passing
Edge-Loc   failures on one arc of the edge
Edge-Ring  failures all around the edge
Loc        a compact blob of failures away from centre and edge
Random     failures scattered uniformly at a high rate
Scratch    a thin curved line of failures
Near-full  almost every die failing
none       background failures only
=========  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wafertk.data.waferset import FAIL, NO_DIE, PASS, WM811K_CLASSES, WaferSet
from wafertk.errors import WafertkError


def _wafer_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy = (yy - (h - 1) / 2) / (h / 2)
    dx = (xx - (w - 1) / 2) / (w / 2)
    r = np.hypot(dy, dx)
    theta = np.arctan2(dy, dx)
    return r <= 1.0, r, theta, np.stack([dy, dx])


def make_wafer(pattern: str, shape: tuple[int, int] = (40, 40), *,
               rng: np.random.Generator | int | None = None, noise: float | None = None
               ) -> np.ndarray:
    """One synthetic wafer map showing ``pattern``.

    Parameters
    ----------
    pattern : str
        One of :data:`~wafertk.data.WM811K_CLASSES`.
    shape : tuple of int, default (40, 40)
        Die grid (rows, columns); at least (3, 3).
    rng : numpy.random.Generator or int or None
        Random source or seed.
    noise : float, optional
        Background fail probability; default random in [0.005, 0.04].

    Returns
    -------
    ndarray of shape ``shape``, uint8
        0 = no die, 1 = pass, 2 = fail.
    """
    if pattern not in WM811K_CLASSES:
        raise WafertkError(f"unknown pattern {pattern!r} (known: {', '.join(WM811K_CLASSES)})")
    h, w = (int(s) for s in shape)
    if h < 3 or w < 3:
        raise WafertkError(f"synthetic wafers need at least 3x3 dies, got {h}x{w}")
    rng = np.random.default_rng(rng)
    die, r, theta, (dy, dx) = _wafer_grid(h, w)
    p = rng.uniform(0.005, 0.04) if noise is None else noise
    fail = rng.random((h, w)) < p
    u = rng.random((h, w))
    if pattern == "Center":
        rad = rng.uniform(0.2, 0.45)
        fail |= (r < rad) & (u < rng.uniform(0.75, 1.0))
    elif pattern == "Donut":
        inner = rng.uniform(0.25, 0.45)
        outer = inner + rng.uniform(0.2, 0.3)
        fail |= (r > inner) & (r < outer) & (u < rng.uniform(0.7, 0.95))
    elif pattern == "Edge-Loc":
        t0 = rng.uniform(-np.pi, np.pi)
        span = rng.uniform(0.3, 0.9)
        dist = np.abs(np.angle(np.exp(1j * (theta - t0))))
        fail |= (r > rng.uniform(0.7, 0.82)) & (dist < span / 2) & (u < 0.9)
    elif pattern == "Edge-Ring":
        fail |= (r > rng.uniform(0.8, 0.9)) & (u < rng.uniform(0.75, 0.98))
    elif pattern == "Loc":
        cr = rng.uniform(0.2, 0.6)
        ct = rng.uniform(-np.pi, np.pi)
        cy, cx = cr * np.sin(ct), cr * np.cos(ct)
        size = rng.uniform(0.1, 0.22)
        fail |= (np.hypot(dy - cy, dx - cx) < size) & (u < rng.uniform(0.7, 0.95))
    elif pattern == "Random":
        fail |= u < rng.uniform(0.15, 0.35)
    elif pattern == "Scratch":
        # a gently curved line across part of the wafer
        t = np.linspace(0, 1, 4 * max(h, w))
        y0, x0 = rng.uniform(-0.6, 0.6, size=2)
        ang = rng.uniform(0, np.pi)
        length = rng.uniform(0.6, 1.3)
        bend = rng.uniform(-0.3, 0.3)
        ys = y0 + np.sin(ang) * length * t + bend * t * t * np.cos(ang)
        xs = x0 + np.cos(ang) * length * t - bend * t * t * np.sin(ang)
        iy = np.round((ys * h / 2) + (h - 1) / 2).astype(int)
        ix = np.round((xs * w / 2) + (w - 1) / 2).astype(int)
        ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        fail[iy[ok], ix[ok]] = True
    elif pattern == "Near-full":
        fail |= u < rng.uniform(0.8, 0.98)
    m = np.where(die, PASS, NO_DIE).astype(np.uint8)
    m[die & fail] = FAIL
    return m


def make_wafers(n: int, *, classes: Sequence[str] | None = None,
                shape_range: tuple[int, int] = (20, 60), n_lots: int | None = None,
                random_state: int | None = None) -> WaferSet:
    """A labeled :class:`WaferSet` of ``n`` synthetic wafers, classes in turn, varied grids.

    Parameters
    ----------
    n : int
        Number of wafers.
    classes : sequence of str, optional
        Patterns to draw, cycled in order (default all nine WM-811K classes).
    shape_range : tuple of int, default (20, 60)
        Rows and columns are drawn independently from this inclusive range (grids of one lot
        share a shape, as on a real product).
    n_lots : int, optional
        Number of lots (default ``ceil(n / 25)``); wafers are dealt to lots at random.
    random_state : int or None
        Seed.

    Returns
    -------
    WaferSet
        With ``labels``, ``lot`` (``"SYN0000"``...), ``wafer_index`` and ``wafer_id``.

    Examples
    --------
    >>> ws = make_wafers(18, random_state=0)
    >>> sorted(set(ws.labels)) == sorted(WM811K_CLASSES)
    True
    """
    if n < 0:
        raise WafertkError(f"n must be non-negative, got {n}")
    classes = list(WM811K_CLASSES if classes is None else classes)
    unknown = [c for c in classes if c not in WM811K_CLASSES]
    if unknown or not classes:
        raise WafertkError(f"unknown pattern {unknown[0] if unknown else None!r}")
    lo, hi = shape_range
    if lo < 3 or hi < lo:
        raise WafertkError(f"bad shape_range {shape_range}: need 3 <= low <= high")
    rng = np.random.default_rng(random_state)
    k = n_lots if n_lots is not None else max(1, -(-n // 25))
    lot_of = rng.integers(0, k, size=n)
    lot_shape = rng.integers(lo, hi + 1, size=(k, 2))
    labels = [classes[i % len(classes)] for i in range(n)]
    maps = [make_wafer(lab, tuple(lot_shape[lot_of[i]]), rng=rng) for i, lab in enumerate(labels)]
    wafer_index = np.zeros(n, np.int32)
    seen: dict[int, int] = {}
    for i, lot in enumerate(lot_of):
        seen[lot] = seen.get(lot, 0) + 1
        wafer_index[i] = seen[lot]
    lots = np.array([f"SYN{x:04d}" for x in lot_of], dtype=object)
    ids = np.array([f"{lots[i]}-{wafer_index[i]:02d}" for i in range(n)], dtype=object)
    return WaferSet.from_maps(maps, labels=labels, lot=lots, wafer_index=wafer_index,
                              wafer_id=ids)
