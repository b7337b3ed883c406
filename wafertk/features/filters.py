"""Further scikit-image filters on the resized map, as candidate features.

Candidates (each one a name in ``filters``):

* ``"sobel"``: Sobel edge magnitude of the fail channel: mean, std, and the share of the
  edge energy in the outer ring (edge patterns) -> 3 values.
* ``"lbp"``: uniform local binary patterns (P=8, R=1) of the map's values (0/1/2) over the
  wafer's dies, as a normalised 10-bin histogram -> 10 values.
* ``"ridge"``: Sato tubeness (bright ridges, sigmas 1 and 2) of the fail channel: mean, std,
  max, and the fraction of dies above 0.1 -> 4 values (thin lines: scratches).

Which candidates the ``"filters"`` feature set keeps by default was decided by an ablation on
the lot-disjoint validation split (``benchmarks/results/xgboost.json``, docs/features.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wafertk.errors import UnknownNameError, did_you_mean
from wafertk.features._common import MapsLike

FILTER_CANDIDATES: dict[str, tuple[str, ...]] = {
    "sobel": ("sobel_mean", "sobel_std", "sobel_edge_share"),
    "lbp": tuple(f"lbp_{i}" for i in range(10)),
    "ridge": ("ridge_mean", "ridge_std", "ridge_max", "ridge_frac"),
}
DEFAULT_FILTER_SIZE = 64


def check_filters(filters: Sequence[str]) -> tuple[str, ...]:
    """Validate filter names (unknown -> :class:`UnknownNameError` with a suggestion)."""
    names = tuple(filters)
    for f in names:
        if f not in FILTER_CANDIDATES:
            raise UnknownNameError(f"unknown filter {f!r}{did_you_mean(f, FILTER_CANDIDATES)}; "
                                   f"known: {', '.join(FILTER_CANDIDATES)}")
    return names


def filter_feature_names(filters: Sequence[str]) -> list[str]:
    """Column names of :func:`filter_features` for ``filters``."""
    return [n for f in check_filters(filters) for n in FILTER_CANDIDATES[f]]


def _ring(size: int) -> np.ndarray:
    c = (np.arange(size) + 0.5) / size * 2 - 1
    return np.hypot(*np.meshgrid(c, c, indexing="ij")) > 0.8


def filter_features(maps: MapsLike, filters: Sequence[str] = ("sobel", "lbp", "ridge"),
                    size: int = DEFAULT_FILTER_SIZE) -> np.ndarray:
    """Candidate scikit-image filter features of the resized maps.

    Parameters
    ----------
    maps : WaferSet, sequence of ndarray of shape (H_i, W_i), or ndarray of shape (n, S, S)
    filters : sequence of str
        Any of ``"sobel"``, ``"lbp"``, ``"ridge"`` (see the module docstring).
    size : int, default 64
        Side of the fail-preserving resize.

    Returns
    -------
    ndarray of shape (n, len(filter_feature_names(filters))), float32
        Zeros where a map has no fail dies (Sobel, ridge) or no dies (LBP).
    """
    from skimage.feature import local_binary_pattern
    from skimage.filters import sato, sobel

    from wafertk.data.preprocess import resize_maps
    from wafertk.features._common import as_map_list

    filters = check_filters(filters)
    size = int(size)
    if isinstance(maps, np.ndarray) and maps.ndim == 3 and maps.shape[1:] == (size, size):
        stack = maps.astype(np.uint8)
    else:
        from wafertk.data.waferset import WaferSet

        src = maps if isinstance(maps, WaferSet) else as_map_list(maps)
        stack = resize_maps(src, size) if len(src) else np.zeros((0, size, size), np.uint8)
    ring = _ring(size)
    out = np.zeros((len(stack), len(filter_feature_names(filters))), np.float32)
    for i, m in enumerate(stack):
        fail = (m == 2).astype(np.float64)
        vals: list[float] = []
        for f in filters:
            if f == "sobel":
                if fail.any():
                    e = sobel(fail)
                    tot = float((e * e).sum())
                    vals += [e.mean(), e.std(), float((e * e)[ring].sum()) / tot if tot else 0.0]
                else:
                    vals += [0.0] * 3
            elif f == "lbp":
                dies = m > 0
                if dies.any():
                    lbp = local_binary_pattern(m.astype(np.uint8), 8, 1, method="uniform")
                    h = np.bincount(lbp[dies].astype(np.int64), minlength=10)[:10]
                    vals += list(h / h.sum())
                else:
                    vals += [0.0] * 10
            elif f == "ridge":
                if fail.any():
                    r = sato(fail, sigmas=(1, 2), black_ridges=False)
                    dies = m > 0
                    vals += [r.mean(), r.std(), r.max(), float((r[dies] > 0.1).mean())]
                else:
                    vals += [0.0] * 4
        out[i] = vals
    return np.nan_to_num(out)
