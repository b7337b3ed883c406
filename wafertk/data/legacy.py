"""Read the original WM-811K ``LSWMD.pkl`` (a Python-2 pandas 0.x pickle) without pandas.

The file was written by Python 2's cPickle (protocol 2) from a pandas 0.x DataFrame; current
pandas cannot read it (``pandas.indexes`` no longer exists). :func:`read_lswmd` unpickles it with
a *restricted* unpickler: only the ten global names the format uses are resolved, each to a small
stand-in that records its arguments and state, and any other global is refused. The result is
rebuilt into a :class:`~wafertk.data.waferset.WaferSet` from the BlockManager's ``'0.14.1'``
state (see ``../shared/data/wm811k/LEGACY_FORMAT.md`` and ``docs/data.md``).

Memory: wafer maps are copied, as soon as each is unpickled, into one growing uint8 arena in
C order, so the maps are held once (about 1.3 GB for the full 811,457-row file) and the
final :class:`WaferSet` shares that buffer instead of concatenating a second copy.

.. warning::
   The restricted unpickler makes loading much safer than plain :func:`pickle.load` (no
   arbitrary callables can run), but it is still a pickle parser meant for the *trusted public
   dataset*. Do not use it on pickles from untrusted sources; convert once to ``wafers.h5``.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import sys
from pathlib import Path

import numpy as np

from wafertk.data.waferset import WM811K_CLASSES, WaferSet
from wafertk.errors import WaferFileError, WafertkError, did_you_mean

log = logging.getLogger(__name__)

#: Partitions of WM-811K (the ``trianTestLabel`` column), as accepted by ``partition=``.
PARTITIONS: tuple[str, ...] = ("Training", "Test", "all")

_COLUMNS = ("waferMap", "dieSize", "lotName", "waferIndex", "trianTestLabel", "failureType")


# ---------------------------------------------------------------------------- stand-ins
class _Global:
    """Base of the stand-ins for the legacy classes (records what it is built with)."""

    __slots__ = ("args", "state")

    def __init__(self) -> None:  # NEWOBJ calls cls.__new__(cls) only
        self.args = ()
        self.state = None

    def __setstate__(self, state) -> None:
        self.state = state


class _DataFrame(_Global):
    """Stand-in for ``pandas.core.frame.DataFrame``: BUILD state is a dict with ``_data``."""

    __slots__ = ()


class _BlockManager(_Global):
    """Stand-in for ``pandas.core.internals.BlockManager``: BUILD state is a 4-tuple."""

    __slots__ = ()


class _IndexClass:
    """Stand-in for an Index class passed to ``_new_Index`` (``Index`` or ``RangeIndex``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<legacy {self.kind}>"


class _Index:
    """The result of ``_new_Index(cls, d)``: the class stand-in and its keyword dict."""

    __slots__ = ("kind", "d")

    def __init__(self, kind: str, d: dict) -> None:
        self.kind = kind
        self.d = d


class _NDArrayType:
    """Stand-in for ``numpy.ndarray`` (only ever passed to ``_reconstruct``)."""


class _DType:
    """Stand-in for ``numpy.dtype(code, 0, 1)``; BUILD gives the byte order."""

    __slots__ = ("code", "order", "_np")

    def __init__(self, code: str) -> None:
        self.code = code
        self.order = "|"
        self._np = None

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or not isinstance(state[1], str):
            raise _FormatError(f"unexpected dtype state for {self.code!r}")
        self.order = state[1]
        self._np = None

    @property
    def np(self) -> np.dtype:
        if self._np is None:
            dt = np.dtype(self.code)
            if self.order in "<>":
                dt = dt.newbyteorder(self.order)
            self._np = dt
        return self._np


class _Array:
    """Stand-in for an ndarray built by ``_reconstruct`` + BUILD.

    After BUILD exactly one of these holds:

    * a 2-D uint8 map: ``value`` is None, ``off``/``shape`` locate it in the loader's arena;
    * a (1, 1) unicode array: ``value`` is its str; a (0, 0) array: ``value`` is ``""``;
    * an object array: ``value`` is the list of its elements in C order;
    * any other array: ``value`` is a real ndarray.
    """

    __slots__ = ("loader", "off", "shape", "value")

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.off = -1
        self.shape = ()
        self.value = None

    def __setstate__(self, state) -> None:
        loader, self.loader = self.loader, None
        if not isinstance(state, tuple) or len(state) != 5:
            raise _FormatError("unexpected ndarray state")
        _, shape, dtype, fortran, payload = state
        if not isinstance(dtype, _DType) or not isinstance(shape, tuple):
            raise _FormatError("unexpected ndarray state")
        shape = tuple(int(s) for s in shape)
        size = int(np.prod(shape, dtype=np.int64))
        self.shape = shape
        code = dtype.code
        if code in ("O8", "O4", "O"):
            if not isinstance(payload, list) or len(payload) != size:
                raise _FormatError("object array payload does not match its shape")
            if fortran and len(shape) > 1:
                idx = np.arange(size).reshape(shape[::-1]).T.reshape(-1)
                payload = [payload[i] for i in idx]
            self.value = payload
            return
        if not isinstance(payload, str):
            raise _FormatError("array payload is not a byte string")
        if size == 0:
            self.value = ""
            return
        raw = payload.encode("latin1")
        if code == "u1" and len(shape) == 2:
            if len(raw) != size:
                raise _FormatError("map payload does not match its shape")
            self.off = loader.store_map(raw, shape, fortran)
            return
        dt = dtype.np
        if len(raw) != size * dt.itemsize:
            raise _FormatError("array payload does not match its shape")
        a = np.frombuffer(raw, dtype=dt).reshape(shape, order="F" if fortran else "C")
        if dt.kind == "U" and size == 1:
            self.value = _intern(str(a.reshape(-1)[0]))
        else:
            self.value = np.ascontiguousarray(a).astype(dt.newbyteorder("="), copy=False)


_INTERNED: dict[str, str] = {}


def _intern(s: str) -> str:
    return _INTERNED.setdefault(s, s) if len(s) < 32 else s


class _FormatError(Exception):
    """The pickle is well-formed but not laid out like ``LSWMD.pkl``."""


# ---------------------------------------------------------------------------- loader
class _Loader:
    """Holds the map arena and the callables that the ten legacy globals resolve to."""

    def __init__(self, capacity: int) -> None:
        # The dies cannot outnumber the file's bytes: reserve that much address space once
        # (untouched pages cost no memory), or grow by doubling where reserving is refused.
        try:
            self.arena = np.empty(max(capacity, 1 << 16), dtype=np.uint8)
        except MemoryError:
            self.arena = np.empty(1 << 26, dtype=np.uint8)
        self.used = 0
        self.maps = 0

    def store_map(self, raw: bytes, shape: tuple[int, int], fortran: bool) -> int:
        n = len(raw)
        if self.used + n > len(self.arena):
            self.arena.resize(max(2 * len(self.arena), self.used + n), refcheck=False)
        off = self.used
        src = np.frombuffer(raw, dtype=np.uint8)
        if fortran:
            src = src.reshape(shape[::-1]).T
        self.arena[off : off + n].reshape(shape)[...] = src.reshape(shape)
        self.used += n
        self.maps += 1
        return off

    # -- the callables REDUCE applies
    def reconstruct(self, cls, shape, typecode) -> _Array:
        if cls is not _NDArrayType:
            raise _FormatError("_reconstruct called with something other than ndarray")
        return _Array(self)

    @staticmethod
    def new_index(cls, d) -> _Index:
        if not isinstance(cls, _IndexClass) or not isinstance(d, dict):
            raise _FormatError("unexpected _new_Index arguments")
        return _Index(cls.kind, d)

    @staticmethod
    def dtype(code, align=0, copy=1) -> _DType:
        if not isinstance(code, str) or len(code) > 8:
            raise _FormatError("unexpected dtype arguments")
        return _DType(code)

    @staticmethod
    def scalar(dtype, payload=None):
        if not isinstance(dtype, _DType) or not isinstance(payload, str):
            raise _FormatError("unexpected numpy scalar")
        a = np.frombuffer(payload.encode("latin1"), dtype=dtype.np)
        if a.size != 1:
            raise _FormatError("unexpected numpy scalar payload")
        v = a[0]
        return str(v) if dtype.np.kind == "U" else v.item()


_ALLOWED = {
    ("pandas.core.frame", "DataFrame"),
    ("pandas.core.internals", "BlockManager"),
    ("pandas.indexes.base", "_new_Index"),
    ("pandas.indexes.base", "Index"),
    ("pandas.indexes.range", "RangeIndex"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("__builtin__", "slice"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the ten globals of the legacy format; refuses every other one."""

    def __init__(self, file, loader: _Loader, path: str) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path
        self._table = {
            ("pandas.core.frame", "DataFrame"): _DataFrame,
            ("pandas.core.internals", "BlockManager"): _BlockManager,
            ("pandas.indexes.base", "_new_Index"): loader.new_index,
            ("pandas.indexes.base", "Index"): _IndexClass("Index"),
            ("pandas.indexes.range", "RangeIndex"): _IndexClass("RangeIndex"),
            ("numpy.core.multiarray", "_reconstruct"): loader.reconstruct,
            ("numpy.core.multiarray", "scalar"): loader.scalar,
            ("numpy", "ndarray"): _NDArrayType,
            ("numpy", "dtype"): loader.dtype,
            ("__builtin__", "slice"): slice,
        }

    def find_class(self, module: str, name: str):
        key = ("__builtin__" if module == "builtins" else module, name)
        try:
            return self._table[key]
        except KeyError:
            raise WaferFileError(
                self._path,
                f"refusing to load global '{module}.{name}': not part of the WM-811K legacy "
                "pickle format",
            ) from None

    def persistent_load(self, pid):
        raise WaferFileError(self._path, "unexpected persistent id in legacy pickle")


class _Progress(io.RawIOBase):
    """A readable file that advances a tqdm bar by the bytes read."""

    def __init__(self, f, bar) -> None:
        self._f, self._bar = f, bar

    def readable(self) -> bool:
        return True

    def read(self, n=-1):
        b = self._f.read(n)
        self._bar.update(len(b))
        return b

    def readinto(self, buf):
        k = self._f.readinto(buf)
        self._bar.update(k or 0)
        return k

    def readline(self, size=-1):
        b = self._f.readline(size)
        self._bar.update(len(b))
        return b

    def peek(self, n=0):
        return self._f.peek(n)


# ---------------------------------------------------------------------------- public API
def check_partition(partition: str) -> str:
    """Return ``partition`` if it is ``"Training"``, ``"Test"`` or ``"all"``.

    Raises
    ------
    WafertkError
        For any other value.
    """
    if partition not in PARTITIONS:
        hint = did_you_mean(partition, PARTITIONS)
        if not hint:  # difflib is case-sensitive: 'training', 'TEST'
            same = [p for p in PARTITIONS if p.lower() == str(partition).lower()]
            hint = f" (did you mean {same[0]!r}?)" if same else ""
        raise WafertkError(f"unknown partition {partition!r}{hint}; expected Training, Test "
                           "or all")
    return partition


def read_lswmd(path: str | os.PathLike, *, labeled_only: bool = False, partition: str = "all",
               progress: bool | None = None) -> WaferSet:
    """Read the original WM-811K ``LSWMD.pkl`` into a :class:`WaferSet`.

    Works under current numpy and pandas (which cannot read the file): a restricted unpickler
    resolves only the ten global names of the legacy format to inert stand-ins and refuses any
    other global. Meant for the trusted public dataset; see the module docstring.

    Parameters
    ----------
    path : str or os.PathLike
        ``LSWMD.pkl`` (811,457 rows, 2.1 GB) or a file in the same format.
    labeled_only : bool, default False
        Keep only rows with a ``failureType``.
    partition : {"all", "Training", "Test"}, default "all"
        Keep only rows of this ``trianTestLabel`` (``"all"`` keeps unlabeled rows too).
    progress : bool, optional
        Show a tqdm bar over the bytes read; default only when stderr is a terminal.

    Returns
    -------
    WaferSet
        n wafers in file order. Maps are C-contiguous uint8 at their native shape (H_i, W_i);
        ``wafer_id`` is ``"lswmd-<row>"``; ``lot``, ``wafer_index``, ``die_size`` come from
        ``lotName``, ``waferIndex``, ``dieSize``; ``labels`` is ``failureType`` or ``""``;
        ``extras`` holds ``orig_index`` (int64, shape (n,)) and ``partition`` (str, shape (n,):
        ``"Training"``, ``"Test"`` or ``""``).

    Raises
    ------
    WafertkError
        Unknown ``partition``.
    WaferFileError
        Missing file, not a pickle, truncated, a foreign global, or not laid out like
        ``LSWMD.pkl``.
    """
    check_partition(partition)
    p = Path(path)
    if not p.exists():
        raise WaferFileError(path, "no such file")
    if p.is_dir():
        raise WaferFileError(path, "is a folder, expected LSWMD.pkl")
    size = p.stat().st_size
    loader = _Loader(size)
    try:
        with open(p, "rb") as f:
            head = f.read(2)
            if head != b"\x80\x02":
                raise WaferFileError(
                    path, "not a legacy pickle (expected protocol 2, as in LSWMD.pkl)"
                )
            f.seek(0)
            df = _unpickle(f, loader, str(path), size, progress)
        ws = _to_waferset(df, loader, partition, labeled_only)
    except WaferFileError:
        raise
    except _FormatError as exc:
        raise WaferFileError(path, f"not laid out like LSWMD.pkl: {exc}") from None
    except WafertkError as exc:
        raise WaferFileError(path, str(exc)) from None
    except MemoryError:
        raise
    except (EOFError, pickle.UnpicklingError) as exc:
        raise WaferFileError(path, f"truncated or corrupt pickle ({exc or 'unexpected end'})") \
            from None
    except OSError as exc:
        raise WaferFileError(path, f"cannot read file ({exc.strerror or exc})") from None
    except Exception as exc:  # anything a malformed pickle can raise inside the unpickler
        raise WaferFileError(path, f"not laid out like LSWMD.pkl ({type(exc).__name__}: {exc})") \
            from None
    log.debug("read %d wafers from %s", len(ws), path)
    return ws


def _unpickle(f, loader: _Loader, path: str, size: int, progress: bool | None):
    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    with tqdm(total=size, unit="B", unit_scale=True, desc="reading LSWMD pickle",
              disable=not show, leave=False) as bar:
        src = _Progress(f, bar) if show else f
        up = _RestrictedUnpickler(src, loader, path)
        obj = up.load()
        del up  # drops the memo and its references to every intermediate object
    return obj


def _to_waferset(df, loader: _Loader, partition: str, labeled_only: bool) -> WaferSet:
    if not isinstance(df, _DataFrame) or not isinstance(df.state, dict):
        raise _FormatError("the pickle does not hold a DataFrame")
    mgr = df.state.get("_data")
    if not isinstance(mgr, _BlockManager) or not isinstance(mgr.state, tuple):
        raise _FormatError("the DataFrame has no BlockManager")
    st = mgr.state
    new = st[-1] if st and isinstance(st[-1], dict) else None
    if not new or "0.14.1" not in new:
        raise _FormatError("no '0.14.1' BlockManager state")
    axes, blocks = new["0.14.1"].get("axes"), new["0.14.1"].get("blocks")
    if not isinstance(axes, list) or len(axes) != 2 or not isinstance(blocks, list):
        raise _FormatError("bad BlockManager axes or blocks")
    columns = _index_values(axes[0])
    rows = _index_values(axes[1])
    n = len(rows)
    col: dict[str, list | np.ndarray] = {}
    for b in blocks:
        if not isinstance(b, dict) or "mgr_locs" not in b or "values" not in b:
            raise _FormatError("bad block")
        vals, locs = b["values"], b["mgr_locs"]
        if not isinstance(vals, _Array) or len(vals.shape) != 2 or vals.shape[1] != n:
            raise _FormatError("block values are not a 2-D array with one column per row")
        if isinstance(locs, slice):
            positions = list(range(len(columns)))[locs]
        elif isinstance(locs, _Array) and isinstance(locs.value, np.ndarray):
            positions = [int(i) for i in locs.value.reshape(-1)]
        else:
            raise _FormatError("bad mgr_locs")
        k = vals.shape[0]
        if len(positions) != k:
            raise _FormatError("mgr_locs do not match the block")
        for j, pos in enumerate(positions):
            if not 0 <= pos < len(columns):
                raise _FormatError("mgr_locs out of range")
            if isinstance(vals.value, list):
                col[str(columns[pos])] = vals.value[j * n : (j + 1) * n]
            elif isinstance(vals.value, np.ndarray):
                col[str(columns[pos])] = vals.value[j]
            else:
                raise _FormatError("bad block values")
    missing = [c for c in _COLUMNS if c not in col]
    if missing:
        raise _FormatError(f"missing column(s) {', '.join(missing)}")

    maps = col["waferMap"]
    offs = np.empty(n, dtype=np.int64)
    shapes = np.empty((n, 2), dtype=np.int64)
    for i, m in enumerate(maps):
        if not isinstance(m, _Array) or m.off < 0 and not (len(m.shape) == 2 and 0 in m.shape):
            raise _FormatError(f"row {i}: waferMap is not a 2-D uint8 array")
        offs[i] = m.off
        shapes[i] = m.shape
    sizes = shapes.prod(axis=1)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    # empty maps have off == -1; they occupy nothing
    offs[sizes == 0] = offsets[:-1][sizes == 0]
    arena = loader.arena
    loader.arena = None
    if n and not np.array_equal(offs, offsets[:-1]):
        # maps not in file order (shared or reordered): gather them
        gather = np.repeat(offs - offsets[:-1], sizes) + np.arange(offsets[-1])
        flat = arena[gather]
    else:
        arena.resize(int(offsets[-1]), refcheck=False)  # shrink in place (no copy)
        flat = arena
    del arena

    lot = np.array([str(x) for x in col["lotName"]], dtype=object)
    part = np.array([_label(x, "trianTestLabel") for x in col["trianTestLabel"]], dtype=object)
    labels = np.array([_label(x, "failureType") for x in col["failureType"]], dtype=object)
    wafer_index = np.asarray(col["waferIndex"], dtype=np.float64)
    wafer_index = np.where(np.isfinite(wafer_index), wafer_index, -1).astype(np.int32)
    orig = np.asarray(rows).astype(np.int64)
    ws = WaferSet(
        flat,
        offsets,
        shapes,
        wafer_id=np.array([f"lswmd-{i}" for i in orig], dtype=object),
        lot=lot,
        wafer_index=wafer_index,
        die_size=np.asarray(col["dieSize"], dtype=np.float32),
        labels=labels,
        class_names=WM811K_CLASSES,
        extras={"orig_index": orig, "partition": part},
    )
    keep = np.ones(n, dtype=bool)
    if partition != "all":
        keep &= part == partition
    if labeled_only:
        keep &= labels != ""
    if not keep.all():
        ws = ws.take(keep)
    return ws


def _index_values(ix) -> list | np.ndarray:
    if not isinstance(ix, _Index):
        raise _FormatError("an axis is not an Index")
    d = ix.d
    if ix.kind == "RangeIndex":
        try:
            return np.arange(int(d["start"]), int(d["stop"]), int(d.get("step", 1)))
        except (KeyError, TypeError, ValueError):
            raise _FormatError("bad RangeIndex") from None
    data = d.get("data")
    if not isinstance(data, _Array) or data.value is None:
        raise _FormatError("bad Index data")
    if isinstance(data.value, str):  # an empty index
        return []
    return data.value


def _label(x, what: str) -> str:
    if isinstance(x, _Array) and isinstance(x.value, str):
        return x.value
    if isinstance(x, str):
        return x
    raise _FormatError(f"unexpected {what} cell")
