"""Input handling shared by the feature extractors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wafertk.data.waferset import FAIL, WaferSet, check_wafer_maps

MapsLike = WaferSet | Sequence[np.ndarray] | np.ndarray


def as_map_list(maps: MapsLike) -> list[np.ndarray]:
    """Native-size maps as a list of 2-D uint8 arrays (checked at the door).

    Parameters
    ----------
    maps : WaferSet, sequence of ndarray of shape (H_i, W_i), or ndarray of shape (n, H, W)
        Wafer maps, 0 = no die, 1 = pass, 2 = fail.

    Returns
    -------
    list of ndarray of shape (H_i, W_i), uint8
    """
    if isinstance(maps, WaferSet):
        return list(maps)
    if isinstance(maps, np.ndarray) and maps.ndim == 2:
        maps = maps[None]
    check_wafer_maps(maps)
    return [np.asarray(m, dtype=np.uint8) for m in maps]


def unpack_mask(h: int, w: int, packed: bytes) -> np.ndarray:
    """A boolean ``h x w`` mask from its ``np.packbits`` bytes (the hashable key under which
    die-mask computations are cached: the wafers of one product share their die mask)."""
    return np.unpackbits(np.frombuffer(packed, np.uint8), count=h * w).reshape(h, w).astype(bool)


def fail_mask(m: np.ndarray) -> np.ndarray:
    """Boolean mask of failing dies, shape of ``m``."""
    return m == FAIL


def resized_fail_channel(maps: MapsLike, size: int) -> np.ndarray:
    """Fail channel of the fail-preserving resize: ndarray of shape (n, size, size), float32.

    A stack already of shape ``(n, size, size)`` is used as is (no second resize).
    """
    from wafertk.data.preprocess import resize_maps

    if isinstance(maps, np.ndarray) and maps.ndim == 3 and maps.shape[1:] == (size, size):
        check_wafer_maps(maps)
        stack = maps
    else:
        if not isinstance(maps, WaferSet):
            maps = as_map_list(maps)
        stack = resize_maps(maps, size) if len(maps) else np.zeros((0, size, size), np.uint8)
    return (stack == FAIL).astype(np.float32)


def by_shape(ms: list[np.ndarray], block, n_cols: int, *, chunk_cells: int,
             max_maps: int = 256, cost=None) -> np.ndarray:
    """Apply a per-shape ``block`` function to the maps grouped by grid shape.

    Parameters
    ----------
    ms : list of ndarray of shape (H_i, W_i), uint8
    block : callable
        ``block(stack)`` for a stack of maps of one shape (n, H, W): returns (n, n_cols).
    n_cols : int
    chunk_cells : int
        At most this many grid cells (maps x H x W) per call, and at most ``max_maps`` maps.
    max_maps : int, default 256
    cost : callable, optional
        ``cost(h, w)``: what one map counts against ``chunk_cells`` (default ``h * w``).

    Returns
    -------
    ndarray of shape (len(ms), n_cols), float32
        Row ``i`` is the result for ``ms[i]``, whichever maps shared its call.
    """
    out = np.zeros((len(ms), n_cols), np.float32)
    groups: dict[tuple[int, int], list[int]] = {}
    for j, m in enumerate(ms):
        groups.setdefault(m.shape, []).append(j)
    for (h, w), idx in groups.items():
        each = h * w if cost is None else cost(h, w)
        chunk = max(1, min(max_maps, chunk_cells // max(each, 1)))
        for k in range(0, len(idx), chunk):
            part = idx[k:k + chunk]
            out[part] = block(np.stack([ms[j] for j in part]))
    return out


def label_maps(masks: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """8-connected regions of each mask of a stack, in one ``scipy.ndimage.label`` call.

    Parameters
    ----------
    masks : ndarray of shape (n, H, W), bool

    Returns
    -------
    labels : ndarray of shape (n, H, W), int
        Regions never cross maps; numbered in raster order over the stack (so within a map,
        in the order the map alone would number them).
    n_labels : int
    owner : ndarray of shape (n_labels + 1,), int64
        The map of each label (entry 0, the background, is 0).
    """
    from scipy import ndimage as ndi

    structure = np.zeros((3, 3, 3), bool)
    structure[1] = True  # 8-connected within each map, never across maps
    labels, n_labels = ndi.label(masks, structure=structure)
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    owner = np.zeros(n_labels + 1, np.int64)
    owner[flat[where]] = where // max(masks[0].size, 1)
    return labels, n_labels, owner


def die_mask_keys(die: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    """The distinct die masks of a stack of maps of one shape, as ``np.packbits`` bytes (the
    keys of the per-mask caches), and the index of each map's mask among them.

    Parameters
    ----------
    die : ndarray of shape (n, H * W) or (n, H, W), bool

    Returns
    -------
    keys : list of bytes
    mask_of : ndarray of shape (n,), int
    """
    packed = np.packbits(die.reshape(len(die), -1), axis=1)
    index: dict[bytes, int] = {}
    mask_of = np.array([index.setdefault(row.tobytes(), len(index)) for row in packed])
    return list(index), mask_of
