"""Die masks of hand-made test wafers, shared by the feature tests (imported as a sibling
module: pytest puts this folder on ``sys.path``)."""

import numpy as np


def disc(n: int = 41) -> np.ndarray:
    """An ``n x n`` grid whose dies (1) fill the circle of radius ``(n - 1) / 2``."""
    yy, xx = np.mgrid[:n, :n]
    c = (n - 1) / 2
    m = np.zeros((n, n), np.uint8)
    m[(yy - c) ** 2 + (xx - c) ** 2 <= c * c] = 1
    return m


def ellipse(h: int, w: int) -> np.ndarray:
    """An ``h x w`` grid whose dies (1) fill the inscribed ellipse (semi-axes h/2, w/2)."""
    yy, xx = np.mgrid[:h, :w]
    m = np.zeros((h, w), np.uint8)
    m[((yy - (h - 1) / 2) / (h / 2)) ** 2 + ((xx - (w - 1) / 2) / (w / 2)) ** 2 <= 1] = 1
    return m
