"""The :class:`WaferSet` container: wafer maps at native die-grid size plus per-wafer metadata."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from wafertk.errors import WafertkError

#: The nine WM-811K classes, in the order of the original dataset's documentation.
WM811K_CLASSES: tuple[str, ...] = (
    "Center",
    "Donut",
    "Edge-Loc",
    "Edge-Ring",
    "Loc",
    "Random",
    "Scratch",
    "Near-full",
    "none",
)
#: The class of a wafer with no defect pattern.
NONE_CLASS = "none"
#: The eight defect patterns (phase 2 of the two-phase pipeline).
DEFECT_CLASSES: tuple[str, ...] = tuple(c for c in WM811K_CLASSES if c != NONE_CLASS)

NO_DIE, PASS, FAIL = 0, 1, 2


def check_wafer_maps(maps: Sequence[np.ndarray] | np.ndarray, *, name: str = "maps") -> None:
    """Check that ``maps`` holds 2-D integer die grids with values in {0, 1, 2}.

    Parameters
    ----------
    maps : sequence of ndarray of shape (H_i, W_i), or ndarray of shape (n, H, W)
        Wafer maps: 0 = no die, 1 = pass, 2 = fail.
    name : str
        Used in the error message.

    Raises
    ------
    WafertkError
        If a map is not 2-D, not of an integer dtype, or holds another value.
    """
    if isinstance(maps, np.ndarray) and maps.ndim == 3:
        _check_values(maps, name)
        return
    for i, m in enumerate(maps):
        m = np.asarray(m)
        if m.ndim != 2:
            raise WafertkError(f"{name}[{i}] has {m.ndim} dimensions, expected a 2-D die grid")
        _check_values(m, f"{name}[{i}]")


def _check_values(a: np.ndarray, what: str) -> None:
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise WafertkError(f"{what} has dtype {a.dtype}, expected integers 0/1/2 (uint8)")
    if a.size and (a.min() < 0 or a.max() > 2):
        bad = np.unique(a[(a < 0) | (a > 2)])[:5]
        raise WafertkError(
            f"{what} holds values outside {{0, 1, 2}} (e.g. {', '.join(map(str, bad))})"
        )


def wafer_label(ws: WaferSet, i: int, first_row: int = 0) -> str:
    """``"wafer <row> (id '<id>')"``: how messages name wafer ``i`` of ``ws``.

    ``first_row`` is the row of ``ws[0]`` in its file, so that the row is the file's.
    """
    return f"wafer {first_row + i} (id {str(ws.wafer_id[i])!r})"


def check_has_dies(ws: WaferSet, first_row: int = 0) -> None:
    """Check that no map has a zero dimension and every map holds at least one die.

    Parameters
    ----------
    ws : WaferSet
    first_row : int, default 0
        Row of ``ws[0]`` in its file (used in the message).

    Raises
    ------
    WafertkError
        Naming the first offending wafer (row and id).
    """
    n = len(ws)
    if not n:
        return
    zero = np.flatnonzero((ws.shapes == 0).any(axis=1))
    if len(zero):
        i = int(zero[0])
        h, w = (int(v) for v in ws.shapes[i])
        raise WafertkError(f"{wafer_label(ws, i, first_row)}: map is {h}x{w} (a zero "
                           f"dimension; every map needs at least one die)"
                           + _more(len(zero)))
    # every map has >= 1 cell here, so reduceat sees no empty segment
    top = np.maximum.reduceat(ws.maps_flat, ws.offsets[:-1])
    empty = np.flatnonzero(top == 0)
    if len(empty):
        i = int(empty[0])
        raise WafertkError(f"{wafer_label(ws, i, first_row)}: map has no die (every value is "
                           "0)" + _more(len(empty)))


def check_die_size(die_size: np.ndarray) -> np.ndarray:
    """Rows (positions) whose ``die_size`` is not a finite number >= 0."""
    d = np.asarray(die_size, dtype=np.float64)
    return np.flatnonzero(~np.isfinite(d) | (d < 0))


def _more(k: int) -> str:
    return f"; {k} wafers like this" if k > 1 else ""


def check_file_rules(ws: WaferSet, first_row: int = 0) -> None:
    """Check what ``docs/file-format.md`` requires of every wafer before it is written.

    Every map has two non-zero dimensions and at least one die; ``die_size`` is finite and
    >= 0; ``wafer_id`` values are unique; text columns can be stored as UTF-8.

    Parameters
    ----------
    ws : WaferSet
    first_row : int, default 0
        Row of ``ws[0]`` in its file (used in messages).

    Raises
    ------
    WafertkError
        Naming the first offending wafer (row and id), or a duplicated id and its rows.
    """
    check_has_dies(ws, first_row)
    bad = check_die_size(ws.die_size)
    if len(bad):
        i = int(bad[0])
        raise WafertkError(f"{wafer_label(ws, i, first_row)}: die_size is {ws.die_size[i]} "
                           "(must be a finite number >= 0)" + _more(len(bad)))
    columns = {"wafer_id": ws.wafer_id, "lot": ws.lot, "label": ws.labels,
               **{k: v for k, v in ws.extras.items() if v.dtype.kind in "OU"}}
    for name, col in columns.items():
        if col is None or not len(col):
            continue
        try:
            "\n".join(map(str, col)).encode("utf-8")
        except UnicodeEncodeError:
            for i, v in enumerate(col):
                try:
                    str(v).encode("utf-8")
                except UnicodeEncodeError:
                    raise WafertkError(
                        f"{wafer_label(ws, i, first_row)}: {name} {str(v)!r} cannot be "
                        "stored as UTF-8 text") from None
    dup = duplicate_rows(ws.wafer_id)
    if dup:
        raise WafertkError(_duplicate_message(str(ws.wafer_id[dup[0]]),
                                              [first_row + r for r in dup]))


def duplicate_rows(ids: np.ndarray) -> list[int]:
    """Rows of the first id that occurs more than once in ``ids`` ([] when all are unique)."""
    a = np.asarray(ids).astype(str)
    uniq, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    if len(uniq) == len(a):
        return []
    first = int(np.flatnonzero(counts[inverse] > 1)[0])
    return np.flatnonzero(inverse == inverse[first]).tolist()


def _duplicate_message(wafer_id: str, rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
    return f"duplicate wafer_id {wafer_id!r} at rows {shown} (wafer ids must be unique)"


class WaferSet:
    """Wafer maps at native die-grid size with their ids, metadata and optional labels.

    Maps are stored ragged: all dies concatenated in ``maps_flat`` (uint8), map ``i`` being
    ``maps_flat[offsets[i]:offsets[i+1]].reshape(shapes[i])``. Use :meth:`from_maps` to build
    one from a list of 2-D arrays.

    Parameters
    ----------
    maps_flat : ndarray of shape (total_dies,), uint8
        All maps flattened (C order) and concatenated; values 0 = no die, 1 = pass, 2 = fail.
    offsets : ndarray of shape (n + 1,), int64
        Start of each map in ``maps_flat``; ``offsets[-1] == len(maps_flat)``.
    shapes : ndarray of shape (n, 2), int
        Rows and columns of each map.
    wafer_id : array-like of str, shape (n,), optional
        Unique wafer ids; default ``"0", "1", ...``.
    lot : array-like of str, shape (n,), optional
        Lot of each wafer; default empty strings.
    wafer_index : array-like of int, shape (n,), optional
        Position of the wafer in its lot; default -1 (unknown).
    die_size : array-like of float, shape (n,), optional
        Dies on the wafer; default the count of non-zero cells of each map.
    labels : array-like of str, shape (n,), optional
        Class name of each wafer, ``""`` for unlabeled; ``None`` when no wafer is labeled.
    class_names : sequence of str, optional
        The class list labels come from; default :data:`WM811K_CLASSES`.
    extras : dict of str to ndarray of shape (n,), optional
        Further per-wafer columns (e.g. ``orig_index``), kept through slicing and writing.
    validate : bool, default True
        Check layout, values and labels (costs one pass over the dies).

    Examples
    --------
    >>> import numpy as np
    >>> ws = WaferSet.from_maps([np.ones((3, 4), np.uint8), np.full((5, 5), 2, np.uint8)])
    >>> len(ws), ws[1].shape
    (2, (5, 5))
    """

    def __init__(
        self,
        maps_flat: np.ndarray,
        offsets: np.ndarray,
        shapes: np.ndarray,
        *,
        wafer_id: Sequence[str] | np.ndarray | None = None,
        lot: Sequence[str] | np.ndarray | None = None,
        wafer_index: Sequence[int] | np.ndarray | None = None,
        die_size: Sequence[float] | np.ndarray | None = None,
        labels: Sequence[str] | np.ndarray | None = None,
        class_names: Sequence[str] | None = None,
        extras: dict[str, np.ndarray] | None = None,
        validate: bool = True,
    ) -> None:
        maps_flat = np.asarray(maps_flat)
        offsets = np.asarray(offsets, dtype=np.int64)
        shapes = np.asarray(shapes).astype(np.int64, copy=False).reshape(-1, 2)
        n = len(shapes)
        if validate:
            _check_values(maps_flat, "maps")
            if len(offsets) != n + 1:
                raise WafertkError(f"offsets has length {len(offsets)}, expected {n + 1}")
            if n and (offsets[0] != 0 or offsets[-1] != len(maps_flat)):
                raise WafertkError("offsets do not span maps_flat")
            if (shapes < 0).any() or not np.array_equal(np.diff(offsets), shapes.prod(axis=1)):
                raise WafertkError("offsets do not match shapes (a map's size is rows x columns)")
        self.maps_flat = maps_flat.astype(np.uint8, copy=False)
        self.offsets = offsets
        self.shapes = shapes
        self.class_names: tuple[str, ...] = tuple(
            WM811K_CLASSES if class_names is None else class_names
        )
        self.wafer_id = _str_col(wafer_id, n, "wafer_id", default=None)
        if wafer_id is None:
            self.wafer_id = np.array([str(i) for i in range(n)], dtype=object)
        self.lot = _str_col(lot, n, "lot", default="")
        self.wafer_index = _num_col(wafer_index, n, "wafer_index", np.int32, -1)
        if die_size is None:
            self.die_size = self._count_dies().astype(np.float32)
        else:
            self.die_size = _num_col(die_size, n, "die_size", np.float32, np.nan)
        self.labels = None if labels is None else _str_col(labels, n, "labels", default="")
        self.extras = {k: _check_len(np.asarray(v), n, k) for k, v in (extras or {}).items()}
        if validate and self.labels is not None:
            known = set(self.class_names) | {""}
            unknown = sorted(set(np.unique(self.labels.astype(str)).tolist()) - known)
            if unknown:
                raise WafertkError(
                    f"unknown class {unknown[0]!r} in labels (known: {', '.join(self.class_names)})"
                )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_maps(cls, maps: Sequence[np.ndarray] | np.ndarray, **kwargs) -> WaferSet:
        """Build a set from a sequence of 2-D maps (or an ``(n, H, W)`` array).

        Parameters
        ----------
        maps : sequence of ndarray of shape (H_i, W_i), or ndarray of shape (n, H, W)
            Integer maps with values in {0, 1, 2}.
        **kwargs
            Any keyword of :class:`WaferSet` (``labels``, ``lot``, ...).

        Returns
        -------
        WaferSet
        """
        if isinstance(maps, np.ndarray) and maps.ndim == 3:
            n, h, w = maps.shape
            _check_values(maps, "maps")
            flat = np.ascontiguousarray(maps, dtype=np.uint8).reshape(-1)
            offsets = np.arange(n + 1, dtype=np.int64) * (h * w)
            return cls(flat, offsets, np.tile([h, w], (n, 1)), **kwargs)
        check_wafer_maps(maps)
        arrays = [np.ascontiguousarray(m, dtype=np.uint8) for m in maps]
        shapes = np.array([a.shape for a in arrays], dtype=np.int64).reshape(-1, 2)
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(shapes.prod(axis=1), out=offsets[1:])
        flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0, np.uint8)
        return cls(flat, offsets, shapes, **kwargs)

    @classmethod
    def concat(cls, sets: Sequence[WaferSet]) -> WaferSet:
        """Concatenate sets that share a class list.

        Parameters
        ----------
        sets : sequence of WaferSet

        Returns
        -------
        WaferSet
        """
        if not sets:
            raise WafertkError("nothing to concatenate")
        names = sets[0].class_names
        if any(s.class_names != names for s in sets):
            raise WafertkError("cannot concatenate wafer sets with different class lists")
        sizes = np.cumsum([0] + [len(s.maps_flat) for s in sets[:-1]])
        offsets = np.concatenate(
            [s.offsets[:-1] + base for s, base in zip(sets, sizes, strict=True)]
            + [np.array([sizes[-1] + len(sets[-1].maps_flat)])]
        )
        has_labels = any(s.labels is not None for s in sets)
        extra_keys = set.intersection(*(set(s.extras) for s in sets))
        return cls(
            np.concatenate([s.maps_flat for s in sets]),
            offsets,
            np.concatenate([s.shapes for s in sets]),
            wafer_id=np.concatenate([s.wafer_id for s in sets]),
            lot=np.concatenate([s.lot for s in sets]),
            wafer_index=np.concatenate([s.wafer_index for s in sets]),
            die_size=np.concatenate([s.die_size for s in sets]),
            labels=np.concatenate([s.label_strings() for s in sets]) if has_labels else None,
            class_names=names,
            extras={k: np.concatenate([s.extras[k] for s in sets]) for k in extra_keys},
            validate=False,
        )

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, i: int) -> np.ndarray:
        """Map ``i`` as a 2-D uint8 array of shape ``shapes[i]`` (a view, not a copy)."""
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"wafer {i} out of range for a set of {n}")
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.maps_flat[a:b].reshape(self.shapes[i])

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        lab = "unlabeled" if self.labels is None else f"{int(self.labeled_mask().sum())} labeled"
        return f"WaferSet({len(self)} wafers, {lab}, {len(np.unique(self.lot))} lots)"

    @property
    def maps(self) -> list[np.ndarray]:
        """The maps as a list of 2-D uint8 views."""
        return list(self)

    @property
    def has_labels(self) -> bool:
        """Whether at least one wafer carries a label."""
        return self.labels is not None and bool(self.labeled_mask().any())

    def labeled_mask(self) -> np.ndarray:
        """Boolean mask of wafers that carry a label."""
        if self.labels is None:
            return np.zeros(len(self), dtype=bool)
        return self.labels.astype(str) != ""

    def label_strings(self) -> np.ndarray:
        """Labels as an object array of str, ``""`` for unlabeled wafers."""
        if self.labels is None:
            return np.full(len(self), "", dtype=object)
        return self.labels

    def label_codes(self, class_names: Sequence[str] | None = None) -> np.ndarray:
        """Labels as integer codes into ``class_names`` (default: the set's own), -1 if unlabeled.

        Raises
        ------
        WafertkError
            If a label is not in ``class_names``.
        """
        names = list(self.class_names if class_names is None else class_names)
        lookup = {c: i for i, c in enumerate(names)}
        lookup[""] = -1
        try:
            return np.array([lookup[s] for s in self.label_strings()], dtype=np.int64)
        except KeyError as exc:
            raise WafertkError(
                f"unknown class {exc.args[0]!r} (known: {', '.join(names)})"
            ) from None

    def take(self, indices: Sequence[int] | np.ndarray) -> WaferSet:
        """A new set with the wafers at ``indices`` (integer positions or a boolean mask)."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False)
        sizes = self.shapes[idx].prod(axis=1) if len(idx) else np.zeros(0, np.int64)
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        if len(idx):
            starts = self.offsets[idx]
            gather = np.repeat(starts - offsets[:-1], sizes) + np.arange(offsets[-1])
            flat = self.maps_flat[gather]
        else:
            flat = np.zeros(0, np.uint8)
        return WaferSet(
            flat,
            offsets,
            self.shapes[idx],
            wafer_id=self.wafer_id[idx],
            lot=self.lot[idx],
            wafer_index=self.wafer_index[idx],
            die_size=self.die_size[idx],
            labels=None if self.labels is None else self.labels[idx],
            class_names=self.class_names,
            extras={k: v[idx] for k, v in self.extras.items()},
            validate=False,
        )

    def slice(self, start: int, stop: int) -> WaferSet:
        """The wafers ``start:stop`` without copying the dies."""
        start, stop, _ = slice(start, stop).indices(len(self))
        stop = max(start, stop)
        a, b = self.offsets[start], self.offsets[stop]
        return WaferSet(
            self.maps_flat[a:b],
            self.offsets[start : stop + 1] - a,
            self.shapes[start:stop],
            wafer_id=self.wafer_id[start:stop],
            lot=self.lot[start:stop],
            wafer_index=self.wafer_index[start:stop],
            die_size=self.die_size[start:stop],
            labels=None if self.labels is None else self.labels[start:stop],
            class_names=self.class_names,
            extras={k: v[start:stop] for k, v in self.extras.items()},
            validate=False,
        )

    def metadata_frame(self):
        """Per-wafer metadata as a :class:`pandas.DataFrame` (id, lot, index, grid, label)."""
        import pandas as pd

        df = pd.DataFrame(
            {
                "wafer_id": self.wafer_id.astype(str),
                "lot": self.lot.astype(str),
                "wafer_index": self.wafer_index,
                "rows": self.shapes[:, 0],
                "cols": self.shapes[:, 1],
                "die_size": self.die_size,
            }
        )
        if self.labels is not None:
            df["label"] = self.label_strings().astype(str)
        for k, v in self.extras.items():
            df[k] = v
        return df

    def _count_dies(self) -> np.ndarray:
        nz = (self.maps_flat > 0).astype(np.int64)
        cs = np.concatenate([[0], np.cumsum(nz)])
        return cs[self.offsets[1:]] - cs[self.offsets[:-1]]


def _check_len(a: np.ndarray, n: int, name: str) -> np.ndarray:
    if a.ndim != 1 or len(a) != n:
        raise WafertkError(f"{name} has shape {a.shape}, expected ({n},) (one value per wafer)")
    return a


def _str_col(values, n: int, name: str, default: str | None) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=object)
    a = np.asarray(values)
    _check_len(a, n, name)
    if a.dtype.kind == "S" or (a.dtype.kind == "O" and any(isinstance(v, bytes) for v in a)):
        out = np.empty(n, dtype=object)
        for i, v in enumerate(a):
            try:
                out[i] = v.decode("utf-8") if isinstance(v, bytes) else str(v)
            except UnicodeDecodeError:
                raise WafertkError(f"{name} of wafer {i} is not valid UTF-8 text ({v[:40]!r}); "
                                   "text must be UTF-8") from None
        return out
    return a.astype(str).astype(object)


def _num_col(values, n: int, name: str, dtype, default) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=dtype)
    a = np.asarray(values)
    _check_len(a, n, name)
    if a.dtype.kind not in "biuf":
        raise WafertkError(f"{name} has dtype {a.dtype}, expected numbers")
    return a.astype(dtype, copy=False)
