"""Read and write ``wafers.h5``, wafertk's wafer-map file format (see ``docs/file-format.md``).

Two layouts, both accepted by every reader:

* ragged (default): ``maps_flat`` uint8 (all dies concatenated), ``offsets`` int64 (n + 1),
  ``shapes`` (n, 2);
* fixed: ``maps`` uint8 (n, H, W).

Optional 1-D datasets of length n: ``wafer_id`` (str), ``lot`` (str), ``wafer_index`` (int),
``die_size`` (float), ``label`` (str class name, empty = unlabeled). Root attributes:
``schema = "wafertk/1"`` and ``class_names`` (JSON list; default the WM-811K classes). Other
datasets are ignored by readers (``with_extras=True`` loads the 1-D ones of length n).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from wafertk._atomic import atomic_path
from wafertk.data.waferset import (
    WM811K_CLASSES,
    WaferSet,
    _duplicate_message,
    check_die_size,
    check_file_rules,
    check_has_dies,
)
from wafertk.errors import WaferFileError, WafertkError

SCHEMA = "wafertk/1"
_KNOWN = {"maps", "maps_flat", "offsets", "shapes", "wafer_id", "lot", "wafer_index",
          "die_size", "label"}
#: Dies per chunk of ``maps_flat`` (about 100 WM-811K maps; 256 KiB uncompressed).
FLAT_CHUNK = 1 << 18
#: Wafers per slice when a per-wafer column is scanned at opening (bounded memory).
SCAN_CHUNK = 1 << 16


def _class_names_attr(path: Path, value) -> tuple[str, ...]:
    """The ``class_names`` root attribute: a JSON list of distinct names (default WM-811K)."""
    if value is None:
        return WM811K_CLASSES
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        names = json.loads(value) if isinstance(value, str) else None
    except json.JSONDecodeError:
        names = None
    if (not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)):
        raise WaferFileError(path, "the 'class_names' attribute is not a JSON list of distinct "
                             "class names (see docs/file-format.md)")
    return tuple(names)


class WaferFile:
    """An open ``wafers.h5`` file, validated on opening, read in slices or batches.

    Memory is bounded by what is read: opening loads only ``offsets`` and ``shapes``
    (12 bytes + 8 bytes per wafer for the ragged layout).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    allow_empty : bool, default False
        Accept a file with no wafers (otherwise an error).
    full_checks : bool, default True
        Run the whole-file scans at opening (unique, valid ``wafer_id`` values; valid
        ``die_size`` values): O(n), seconds on a million wafers. False skips them for a file
        already checked, e.g. by the client of a distributed run before its workers open the
        file once per range (:mod:`wafertk.distributed`); the layout checks and the checks
        of what is read (map values, labels) stay.

    Raises
    ------
    WaferFileError
        Missing file, not HDF5, truncated, wrong schema, missing or inconsistent datasets.

    Examples
    --------
    >>> with WaferFile("wafers.h5") as f:          # doctest: +SKIP
    ...     for batch in f.iter_batches(4096):
    ...         print(len(batch))
    """

    def __init__(self, path: str | os.PathLike, *, allow_empty: bool = False,
                 full_checks: bool = True) -> None:
        import h5py

        self._full_checks = bool(full_checks)

        self.path = Path(path)
        if not self.path.exists():
            raise WaferFileError(path, "no such file")
        if self.path.is_dir():
            raise WaferFileError(path, "is a folder, expected a wafers.h5 file")
        try:
            is_h5 = h5py.is_hdf5(self.path)
        except OSError as exc:
            raise WaferFileError(path, f"cannot read file ({exc.strerror or exc})") from None
        if not is_h5:
            raise WaferFileError(path, "not an HDF5 file (expected wafers.h5, schema wafertk/1)")
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError:
            raise WaferFileError(path, "cannot open HDF5 file: truncated or corrupt") from None
        try:
            self._open(allow_empty)
        except WaferFileError:
            self.close()
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            self.close()
            raise WaferFileError(path, f"corrupt or truncated file ({exc})") from None

    def _open(self, allow_empty: bool) -> None:
        import h5py

        h5 = self._h5
        for key in sorted(_KNOWN & set(h5.keys())):
            obj = h5.get(key)
            if not isinstance(obj, h5py.Dataset):
                kind = "an HDF5 group" if isinstance(obj, h5py.Group) else "not a dataset"
                raise WaferFileError(self.path, f"'{key}' is {kind}, expected a dataset "
                                                "(see docs/file-format.md)")
        schema = h5.attrs.get("schema")
        if isinstance(schema, bytes):
            schema = schema.decode()
        if schema is not None and schema != SCHEMA:
            shown = repr(schema) if isinstance(schema, str) else repr(getattr(schema, "tolist",
                                                                                 lambda: schema)())
            raise WaferFileError(self.path, f"unsupported schema {shown}, expected {SCHEMA!r}")
        self.class_names = _class_names_attr(self.path, h5.attrs.get("class_names"))
        if "maps_flat" in h5:
            for key in ("offsets", "shapes"):
                if key not in h5:
                    raise WaferFileError(self.path, f"ragged layout without '{key}' dataset")
            self.layout = "ragged"
            flat = h5["maps_flat"]
            self._check_dtype(flat)
            if flat.ndim != 1:
                raise WaferFileError(self.path, f"'maps_flat' has shape {flat.shape}, expected 1-D")
            self.offsets = h5["offsets"][()].astype(np.int64)
            self.shapes = h5["shapes"][()].astype(np.int64)
            n = len(self.shapes)
            if self.shapes.ndim != 2 or self.shapes.shape[1] != 2:
                raise WaferFileError(
                    self.path, f"'shapes' has shape {self.shapes.shape}, expected (n, 2)"
                )
            if len(self.offsets) != n + 1:
                raise WaferFileError(
                    self.path,
                    f"mismatched lengths: 'offsets' has {len(self.offsets)} entries for "
                    f"{n} shapes (expected {n + 1})",
                )
            sizes = np.diff(self.offsets)
            if (
                self.offsets[0] != 0
                or self.offsets[-1] != flat.shape[0]
                or (self.shapes < 0).any()
                or not np.array_equal(sizes, self.shapes.prod(axis=1))
            ):
                raise WaferFileError(
                    self.path, "mismatched lengths: 'offsets', 'shapes' and 'maps_flat' disagree"
                )
        elif "maps" in h5:
            self.layout = "fixed"
            maps = h5["maps"]
            self._check_dtype(maps)
            if maps.ndim != 3:
                raise WaferFileError(
                    self.path, f"'maps' has shape {maps.shape}, expected (n, H, W)"
                )
            n, h, w = maps.shape
            self.shapes = np.tile(np.array([h, w], np.int64), (n, 1))
            self.offsets = np.arange(n + 1, dtype=np.int64) * (h * w)
        else:
            raise WaferFileError(
                self.path, "no wafer maps: expected a 'maps' or 'maps_flat' dataset"
            )
        self.n = len(self.shapes)
        if self.n == 0 and not allow_empty:
            raise WaferFileError(self.path, "contains no wafers")
        for key in ("wafer_id", "lot", "wafer_index", "die_size", "label"):
            if key in h5 and (h5[key].ndim != 1 or h5[key].shape[0] != self.n):
                raise WaferFileError(
                    self.path,
                    f"mismatched lengths: '{key}' has shape {h5[key].shape}, expected ({self.n},)",
                )
        self.has_labels = "label" in h5
        zero = np.flatnonzero((self.shapes == 0).any(axis=1))
        if len(zero):
            i = int(zero[0])
            h, w = (int(v) for v in self.shapes[i])
            raise WaferFileError(self.path, f"{self._wafer(i)}: map is {h}x{w} (a zero "
                                            "dimension; every map needs at least one die)"
                                 + _more(len(zero)))
        if self._full_checks:
            self._check_die_size()
            self._check_ids()

    # ------------------------------------------------------------------ checks at opening
    def _wafer(self, i: int) -> str:
        """``"wafer <row> (id '<id>')"`` for messages (the id read from the file)."""
        if "wafer_id" not in self._h5:
            return f"wafer {i} (id '{i}')"
        v = self._h5["wafer_id"][i]
        if isinstance(v, bytes):
            v = v.decode("utf-8", "backslashreplace")
        return f"wafer {i} (id {str(v)!r})"

    def _check_die_size(self) -> None:
        if "die_size" not in self._h5:
            return
        ds = self._h5["die_size"]
        if ds.dtype.kind not in "biuf":
            raise WaferFileError(self.path, f"'die_size' has dtype {ds.dtype}, expected numbers")
        for a in range(0, self.n, SCAN_CHUNK):
            bad = check_die_size(ds[a:a + SCAN_CHUNK])
            if len(bad):
                i = a + int(bad[0])
                raise WaferFileError(self.path, f"{self._wafer(i)}: die_size is {ds[i]} (must be "
                                                "a finite number >= 0)")

    def _check_ids(self) -> None:
        """Valid UTF-8 and unique ``wafer_id`` values, streamed (8 bytes per wafer).

        Ids are hashed (64-bit) slice by slice; equal hashes are confirmed on the ids
        themselves, so a hash collision is never reported as a duplicate.
        """
        if "wafer_id" not in self._h5:
            return
        import pandas as pd

        ds = self._h5["wafer_id"]
        hashes = np.empty(self.n, dtype=np.uint64)
        for a in range(0, self.n, SCAN_CHUNK):
            raw = ds[a:a + SCAN_CHUNK]
            if raw.dtype.kind in "OS":
                _decode(raw, self.path, "wafer_id", a, lambda i: f"wafer {i}")
                raw = raw.astype(object)
            hashes[a:a + len(raw)] = pd.util.hash_array(raw, categorize=False)
        order = np.argsort(hashes, kind="stable")
        h = hashes[order]
        same = np.flatnonzero(h[1:] == h[:-1])
        if not len(same):
            return
        del hashes, h
        # candidate groups of equal hashes: confirm on the ids, report the earliest row
        groups: dict[int, list[int]] = {}
        for j in same:
            groups.setdefault(int(order[j]), []).append(int(order[j + 1]))
        found: list[tuple[int, str, list[int]]] = []
        for rows in _merge(groups):
            ids = [ds[r] for r in rows]
            by_id: dict[object, list[int]] = {}
            for r, v in zip(rows, ids, strict=True):
                by_id.setdefault(v, []).append(r)
            for v, rs in by_id.items():
                if len(rs) > 1:
                    text = v.decode("utf-8") if isinstance(v, bytes) else str(v)
                    found.append((min(rs), text, sorted(rs)))
        if found:
            _, text, rows = min(found)
            extra = f"; {len(found)} ids are duplicated" if len(found) > 1 else ""
            raise WaferFileError(self.path, _duplicate_message(text, rows) + extra)

    def _check_dtype(self, ds) -> None:
        if ds.dtype.kind not in "ui":
            raise WaferFileError(
                self.path, f"'{ds.name.lstrip('/')}' has dtype {ds.dtype}, expected uint8"
            )

    # ------------------------------------------------------------------ protocol
    def __len__(self) -> int:
        return self.n

    def __enter__(self) -> WaferFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HDF5 file."""
        h5 = getattr(self, "_h5", None)
        if h5 is not None:
            h5.close()

    def dataset_names(self) -> list[str]:
        """Names of the datasets at the file's root."""
        return list(self._h5.keys())

    def read_column(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray | None:
        """A per-wafer column (``lot``, ``label``, ...) for ``start:stop``, or None if absent."""
        if key not in self._h5:
            return None
        ds = self._h5[key]
        stop = self.n if stop is None else stop
        if ds.dtype.kind in "OS":
            raw = ds[start:stop]
            return _decode(raw, self.path, key, start,
                           (lambda i: f"wafer {i}") if key == "wafer_id" else self._wafer)
        return ds[start:stop]

    # ------------------------------------------------------------------ reading
    def read(self, start: int = 0, stop: int | None = None, *, with_extras: bool = False
             ) -> WaferSet:
        """Read wafers ``start:stop`` into a :class:`WaferSet` (values are checked).

        Raises
        ------
        WaferFileError
            If maps hold values outside {0, 1, 2} or a label is not a known class.
        """
        import h5py

        start, stop, _ = slice(start, stop).indices(self.n)
        stop = max(start, stop)
        h5 = self._h5
        try:
            if self.layout == "ragged":
                a, b = int(self.offsets[start]), int(self.offsets[stop])
                flat = h5["maps_flat"][a:b] if b > a else np.zeros(0, np.uint8)
            else:
                flat = h5["maps"][start:stop].reshape(-1)
                a = int(self.offsets[start])
            extras = {}
            if with_extras:
                for key in h5:
                    ds = h5.get(key)
                    if key not in _KNOWN and isinstance(ds, h5py.Dataset) and ds.ndim == 1 \
                            and ds.shape[0] == self.n:
                        extras[key] = self.read_column(key, start, stop)
            labels = self.read_column("label", start, stop)
            ws = WaferSet(
                flat,
                self.offsets[start : stop + 1] - a,
                self.shapes[start:stop],
                wafer_id=self.read_column("wafer_id", start, stop)
                if "wafer_id" in h5
                else np.array([str(i) for i in range(start, stop)], dtype=object),
                lot=self.read_column("lot", start, stop),
                wafer_index=self.read_column("wafer_index", start, stop),
                die_size=self.read_column("die_size", start, stop),
                labels=labels,
                class_names=self.class_names,
                extras=extras,
            )
        except WafertkError as exc:
            if isinstance(exc, WaferFileError):
                raise
            where = f"wafers {start}-{stop - 1}: " if (start, stop) != (0, self.n) else ""
            raise WaferFileError(self.path, f"{where}{exc}") from None
        except OSError as exc:
            raise WaferFileError(self.path, f"cannot read data: truncated or corrupt ({exc})") \
                from None
        try:
            check_has_dies(ws, first_row=start)
        except WafertkError as exc:
            raise WaferFileError(self.path, str(exc)) from None
        return ws

    def iter_batches(self, batch_size: int = 4096, *, start: int = 0, stop: int | None = None,
                     with_extras: bool = False) -> Iterator[WaferSet]:
        """Yield consecutive :class:`WaferSet` batches of at most ``batch_size`` wafers.

        Memory is bounded by one batch, whatever the file's size.
        """
        if batch_size < 1:
            raise WafertkError(f"batch size must be at least 1, got {batch_size}")
        stop = self.n if stop is None else min(stop, self.n)
        for s in range(start, stop, batch_size):
            yield self.read(s, min(s + batch_size, stop), with_extras=with_extras)


def _more(k: int) -> str:
    return f"; {k} wafers like this" if k > 1 else ""


def _merge(groups: dict[int, list[int]]) -> list[list[int]]:
    """Rows of equal hashes, one list per hash (``groups`` chains neighbours in hash order)."""
    out: list[list[int]] = []
    seen: set[int] = set()
    for first, nxt in groups.items():
        if first in seen:
            continue
        rows, todo = [first], list(nxt)
        while todo:
            r = todo.pop()
            if r not in seen and r not in rows:
                rows.append(r)
                todo.extend(groups.get(r, []))
        seen.update(rows)
        out.append(sorted(rows))
    return out


def _decode(raw: np.ndarray, path, key: str, start: int, name) -> np.ndarray:
    """UTF-8 text of a string column slice as an object array, or an error naming the wafer.

    ``name(row)`` says how to name the wafer at ``row`` of the file.
    """
    try:
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in raw],
                        dtype=object)
    except UnicodeDecodeError:
        for i, v in enumerate(raw):
            try:
                if isinstance(v, bytes):
                    v.decode("utf-8")
            except UnicodeDecodeError:
                raise WaferFileError(
                    path, f"{name(start + i)}: '{key}' is not valid UTF-8 text ({v[:40]!r}); "
                          "text columns must be UTF-8") from None
        raise


def read_wafers(path: str | os.PathLike, *, with_extras: bool = False,
                allow_empty: bool = False) -> WaferSet:
    """Read a whole ``wafers.h5`` file into memory.

    Parameters
    ----------
    path : str or os.PathLike
        A file in either layout.
    with_extras : bool, default False
        Also load further 1-D per-wafer datasets into ``WaferSet.extras``.
    allow_empty : bool, default False
        Accept a file without wafers.

    Returns
    -------
    WaferSet

    Raises
    ------
    WaferFileError
        For any problem with the file, naming it.
    """
    with WaferFile(path, allow_empty=allow_empty) as f:
        return f.read(with_extras=with_extras)


def iter_wafers(path: str | os.PathLike, batch_size: int = 4096) -> Iterator[WaferSet]:
    """Stream a ``wafers.h5`` file in batches (memory bounded by ``batch_size``).

    Parameters
    ----------
    path : str or os.PathLike
    batch_size : int, default 4096

    Yields
    ------
    WaferSet
    """
    with WaferFile(path) as f:
        yield from f.iter_batches(batch_size)


def write_wafers(ws: WaferSet, path: str | os.PathLike, *, layout: str = "ragged",
                 compression: str | None = "gzip", compression_opts: int | None = 4) -> Path:
    """Write ``ws`` to ``path`` atomically (temporary name, renamed when complete).

    Parameters
    ----------
    ws : WaferSet
    path : str or os.PathLike
    layout : {"ragged", "fixed"}, default "ragged"
        ``fixed`` needs every map to have the same shape.
    compression : str or None, default "gzip"
    compression_opts : int or None, default 4

    Returns
    -------
    pathlib.Path
        The written file.
    """
    writer = WaferWriter(path, layout=layout, class_names=ws.class_names,
                         compression=compression, compression_opts=compression_opts)
    with writer:
        writer.append(ws)
    return Path(path)


class WaferWriter:
    """Append :class:`WaferSet` batches to a new ``wafers.h5`` (ragged layout), atomically.

    The file appears under its name only when the ``with`` block ends without an error.

    Parameters
    ----------
    path : str or os.PathLike
    layout : {"ragged", "fixed"}, default "ragged"
    class_names : sequence of str, optional
    compression, compression_opts
        HDF5 filter for the map data (gzip level 4 by default).
    """

    def __init__(self, path: str | os.PathLike, *, layout: str = "ragged",
                 class_names=WM811K_CLASSES, compression: str | None = "gzip",
                 compression_opts: int | None = 4) -> None:
        if layout not in ("ragged", "fixed"):
            raise WafertkError(f"unknown layout {layout!r}: expected 'ragged' or 'fixed'")
        self.path = Path(path)
        self.layout = layout
        self.class_names = tuple(class_names)
        self.compression = compression
        self.compression_opts = compression_opts if compression == "gzip" else None
        self._ctx = None
        self.n = 0
        self._dies = 0
        self._extras: set[str] | None = None
        self._labels: bool | None = None
        self._hashes: list[np.ndarray] = []

    def __enter__(self) -> WaferWriter:
        import h5py

        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._h5 = h5py.File(tmp, "w")
        self._h5.attrs["schema"] = SCHEMA
        self._h5.attrs["class_names"] = json.dumps(list(self.class_names))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if self._labels is None:
                    self._create(WaferSet.from_maps([], class_names=self.class_names))
                self._check_unique()
        except BaseException as err:  # the temporary file is removed, nothing is left
            self._h5.close()
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        self._h5.close()
        self._ctx.__exit__(exc_type, exc, tb)

    def _check_unique(self) -> None:
        """Wafer ids unique over all batches (hashes kept, 8 bytes per wafer)."""
        if not self._hashes:
            return
        hashes = np.concatenate(self._hashes)
        order = np.argsort(hashes, kind="stable")
        same = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
        if not len(same):
            return
        ids = self._h5["wafer_id"]
        found = []
        for rows in _merge({int(order[j]): [int(order[j + 1])] for j in same}):
            by_id: dict[object, list[int]] = {}
            for r in rows:
                by_id.setdefault(ids[r], []).append(r)
            found += [(min(rs), v, sorted(rs)) for v, rs in by_id.items() if len(rs) > 1]
        if found:
            _, v, rows = min(found)
            text = v.decode("utf-8") if isinstance(v, bytes) else str(v)
            raise WafertkError(_duplicate_message(text, rows))

    def _create(self, ws: WaferSet) -> None:
        import h5py

        h5 = self._h5
        kw = {"compression": self.compression, "compression_opts": self.compression_opts}
        if self.layout == "fixed":
            if len(ws) and len(np.unique(ws.shapes, axis=0)) != 1:
                raise WafertkError("fixed layout needs maps of one shape; use layout='ragged'")
            h, w = ws.shapes[0] if len(ws) else (0, 0)
            h5.create_dataset("maps", shape=(0, h, w), maxshape=(None, h, w), dtype="u1",
                              chunks=(max(1, min(64, (1 << 18) // max(1, h * w))), h, w)
                              if h * w else True, **kw)
        else:
            h5.create_dataset("maps_flat", shape=(0,), maxshape=(None,), dtype="u1",
                              chunks=(FLAT_CHUNK,), **kw)
            h5.create_dataset("offsets", data=np.zeros(1, np.int64), maxshape=(None,),
                              chunks=(16384,), **kw)
            h5.create_dataset("shapes", shape=(0, 2), maxshape=(None, 2), dtype="i2",
                              chunks=(16384, 2), **kw)
        sdt = h5py.string_dtype("utf-8")
        for key, dt in (("wafer_id", sdt), ("lot", sdt), ("wafer_index", "i4"),
                        ("die_size", "f4")):
            h5.create_dataset(key, shape=(0,), maxshape=(None,), dtype=dt, chunks=(16384,), **kw)
        self._labels = ws.labels is not None
        if self._labels:
            h5.create_dataset("label", shape=(0,), maxshape=(None,), dtype=sdt,
                              chunks=(16384,), **kw)
        self._extras = set(ws.extras)
        for key, v in ws.extras.items():
            dt = sdt if v.dtype.kind in "OUS" else v.dtype
            h5.create_dataset(key, shape=(0,), maxshape=(None,), dtype=dt, chunks=(16384,), **kw)

    def append(self, ws: WaferSet) -> None:
        """Append a batch (same class list; same labelled-ness and extras as the first)."""
        if ws.class_names != self.class_names:
            raise WafertkError("batch class list differs from the file's")
        if self._labels is None:
            self._create(ws)
        elif (ws.labels is not None) != self._labels or set(ws.extras) != self._extras:
            raise WafertkError("batches must agree on labels and extra columns")
        if (ws.shapes > np.iinfo(np.int16).max).any():
            raise WafertkError("maps larger than 32767 dies per side are not supported")
        check_file_rules(ws, first_row=self.n)
        import pandas as pd

        self._hashes.append(pd.util.hash_array(ws.wafer_id.astype(str).astype(object),
                                               categorize=False))
        h5, n, m = self._h5, self.n, len(ws)
        if self.layout == "fixed":
            ds = h5["maps"]
            if m and tuple(ds.shape[1:]) != tuple(ws.shapes[0]) or \
                    len(np.unique(ws.shapes, axis=0)) > 1:
                raise WafertkError("fixed layout needs maps of one shape; use layout='ragged'")
            _grow(ds, n + m)[n:] = ws.maps_flat.reshape(m, *ds.shape[1:])
        else:
            d = len(ws.maps_flat)
            _grow(h5["maps_flat"], self._dies + d)[self._dies:] = ws.maps_flat
            _grow(h5["offsets"], n + m + 1)[n + 1:] = ws.offsets[1:] + self._dies
            _grow(h5["shapes"], n + m)[n:] = ws.shapes
            self._dies += d
        _grow(h5["wafer_id"], n + m)[n:] = ws.wafer_id.astype(str).astype(object)
        _grow(h5["lot"], n + m)[n:] = ws.lot.astype(str).astype(object)
        _grow(h5["wafer_index"], n + m)[n:] = ws.wafer_index
        _grow(h5["die_size"], n + m)[n:] = ws.die_size
        if self._labels:
            _grow(h5["label"], n + m)[n:] = ws.labels.astype(str).astype(object)
        for key, v in ws.extras.items():
            _grow(h5[key], n + m)[n:] = v.astype(str).astype(object) if v.dtype.kind in "OU" \
                else v
        self.n += m


def _grow(ds, size: int):
    ds.resize((size,) + ds.shape[1:])
    return ds
