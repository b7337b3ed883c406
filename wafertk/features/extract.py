"""Feature-set registry, feature unions, and batch extraction of whole files."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from wafertk.errors import UnknownNameError, WaferFileError, WafertkError, did_you_mean
from wafertk.features._common import MapsLike
from wafertk.features.transformers import (
    DensityFeatures,
    FilterFeatures,
    GaborFeatures,
    GeometryFeatures,
    LocalFeatures,
    MetaFeatures,
    RadonFeatures,
    SpatialFeatures,
)

log = logging.getLogger(__name__)

#: Feature-set name -> transformer class (default parameters give the documented features).
FEATURE_SETS: dict[str, type] = {
    "gabor": GaborFeatures,
    "filters": FilterFeatures,
    "density": DensityFeatures,
    "radon": RadonFeatures,
    "geometry": GeometryFeatures,
    "meta": MetaFeatures,
    "spatial": SpatialFeatures,
    "local": LocalFeatures,
}
#: The sets used by default (CLI ``--set``, :func:`extract_features`); the XGBoost baseline has
#: its own (:data:`wafertk.baseline.model.DEFAULT_XGB_SETS`).
DEFAULT_SETS: tuple[str, ...] = ("gabor", "filters", "density", "radon", "geometry", "meta",
                                 "spatial", "local")


def parse_sets(sets: str | Sequence[str] | None) -> list[str]:
    """Normalise ``"a,b"`` or a list of names; unknown names raise with a suggestion.

    Raises
    ------
    UnknownNameError
        For a name not in :data:`FEATURE_SETS`.
    """
    if sets is None:
        return list(DEFAULT_SETS)
    names = [s.strip() for s in sets.split(",")] if isinstance(sets, str) else list(sets)
    names = [s for s in names if s]
    if not names:
        raise WafertkError("no feature set given")
    for s in names:
        if s not in FEATURE_SETS:
            raise UnknownNameError(f"unknown feature set {s!r}{did_you_mean(s, FEATURE_SETS)}; "
                                   f"known: {', '.join(FEATURE_SETS)}")
    if len(set(names)) != len(names):
        raise WafertkError(f"feature set listed twice in {','.join(names)}")
    return names


def make_feature_union(sets: str | Sequence[str] | None = None,
                       params: dict[str, dict] | None = None):
    """A :class:`~sklearn.pipeline.FeatureUnion` of the named feature sets.

    Parameters
    ----------
    sets : str or sequence of str, optional
        Names from :data:`FEATURE_SETS` (``"density,radon"`` or a list); default
        :data:`DEFAULT_SETS`.
    params : dict of str to dict, optional
        Constructor keywords per set, e.g. ``{"gabor": {"frequencies": [0.1]}}``.

    Returns
    -------
    sklearn.pipeline.FeatureUnion
        Steps named after the sets; output columns prefixed ``"<set>__"``.
    """
    from sklearn.pipeline import FeatureUnion

    names = parse_sets(sets)
    params = params or {}
    extra = sorted(set(params) - set(names))
    if extra:
        raise WafertkError(f"parameters given for feature set {extra[0]!r} that is not used")
    return FeatureUnion([(n, FEATURE_SETS[n](**params.get(n, {}))) for n in names])


def feature_names(sets: str | Sequence[str] | None = None,
                  params: dict[str, dict] | None = None) -> list[str]:
    """Column names of :func:`extract_features` for ``sets`` (``"<set>__<feature>"``)."""
    return [str(n) for n in make_feature_union(sets, params).fit(None).get_feature_names_out()]


def _transform(union, ws) -> np.ndarray:
    return union.transform(ws).astype(np.float32, copy=False)


def _split(ws: MapsLike, k: int) -> list:
    from wafertk.data.waferset import WaferSet

    n = len(ws)
    bounds = np.linspace(0, n, k + 1).astype(int)
    if isinstance(ws, WaferSet):
        return [ws.slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    return [ws[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def extract_features(ws: MapsLike, sets: str | Sequence[str] | None = None, n_jobs: int = 1,
                     params: dict[str, dict] | None = None) -> np.ndarray:
    """Feature matrix of wafer maps.

    Parameters
    ----------
    ws : WaferSet, sequence of ndarray of shape (H_i, W_i), or ndarray of shape (n, H, W)
    sets : str or sequence of str, optional
        Feature sets (default :data:`DEFAULT_SETS`).
    n_jobs : int, default 1
        Worker processes (the maps are split in ``n_jobs`` chunks); -1 = all cores.
    params : dict of str to dict, optional
        Constructor keywords per set.

    Returns
    -------
    ndarray of shape (n, len(feature_names(sets))), float32
        Finite values.

    Examples
    --------
    >>> import numpy as np
    >>> X = extract_features([np.ones((5, 5), np.uint8)], "density,radon")
    >>> X.shape
    (1, 53)
    """
    union = make_feature_union(sets, params).fit(None)
    n_jobs = _jobs(n_jobs)
    if n_jobs == 1 or len(ws) < 2 * n_jobs:
        return _transform(union, ws)
    parts = _split(ws, n_jobs)
    with _pool(n_jobs) as ex:
        return np.concatenate(list(ex.map(_transform, [union] * len(parts), parts)))


def _worker_init() -> None:
    """In a worker: die with the parent (Linux), leave Ctrl-C and SIGTERM to the parent."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        try:  # PR_SET_PDEATHSIG = 1: SIGKILL when the parent exits, even by SIGKILL
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass


@contextlib.contextmanager
def _pool(n_jobs: int):
    """A process pool whose workers stop at once when the caller fails or is interrupted.

    ``ProcessPoolExecutor``'s own exit waits for the running tasks (seconds per batch); on an
    exception (Ctrl-C, SIGTERM, an error) the pending tasks are cancelled and the workers
    terminated instead. Workers also die with the parent if it is killed.
    """
    ex = ProcessPoolExecutor(max_workers=n_jobs, initializer=_worker_init)
    try:
        yield ex
    except BaseException:
        procs = list((getattr(ex, "_processes", None) or {}).values())
        ex.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(5)
        raise
    ex.shutdown(wait=True)


def _jobs(n_jobs: int | None) -> int:
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return int(n_jobs)


def _frame(ws, X: np.ndarray, names: list[str]):
    import pandas as pd

    cols = {"wafer_id": ws.wafer_id.astype(str), "lot": ws.lot.astype(str),
            "label": ws.label_strings().astype(str)}
    df = pd.DataFrame(cols)
    return pd.concat([df, pd.DataFrame(X, columns=names)], axis=1)


def _batches_features(batches: Iterable, union, n_jobs: int) -> Iterable:
    """(batch, features) pairs in order; at most ``2 n_jobs`` batches in flight."""
    if n_jobs == 1:
        for b in batches:
            yield b, _transform(union, b)
        return
    from collections import deque

    with _pool(n_jobs) as ex:
        pending: deque = deque()
        for b in batches:
            pending.append((b, ex.submit(_transform, union, b)))
            if len(pending) >= 2 * n_jobs:
                b0, fut = pending.popleft()
                yield b0, fut.result()
        while pending:
            b0, fut = pending.popleft()
            yield b0, fut.result()


def extract_file(path: str | os.PathLike, out: str | os.PathLike,
                 sets: str | Sequence[str] | None = None, n_jobs: int = 1,
                 batch_size: int = 2048, *, params: dict[str, dict] | None = None,
                 progress: bool | None = None) -> Path:
    """Stream a ``wafers.h5`` file through the feature sets into a table.

    Parameters
    ----------
    path : str or os.PathLike
        Input wafers.h5.
    out : str or os.PathLike
        Output table: CSV when the name ends in ``.csv``, Parquet otherwise; written
        atomically (nothing at ``out`` until complete).
    sets : str or sequence of str, optional
        Feature sets (default :data:`DEFAULT_SETS`).
    n_jobs : int, default 1
        Worker processes, each handling whole batches.
    batch_size : int, default 2048
        Wafers per batch (memory is bounded by ``2 n_jobs`` batches).
    params : dict of str to dict, optional
        Constructor keywords per set.
    progress : bool, optional
        tqdm bar on stderr; default only when stderr is a terminal.

    Returns
    -------
    pathlib.Path
        ``out``. Columns: ``wafer_id``, ``lot``, ``label`` (``""`` = unlabeled), then the
        features (``"<set>__<name>"``, float32).
    """
    from wafertk.data.h5 import WaferFile

    if batch_size < 1:
        raise WafertkError(f"batch size must be at least 1, got {batch_size}")
    union = make_feature_union(sets, params).fit(None)
    names = [str(n) for n in union.get_feature_names_out()]
    n_jobs = _jobs(n_jobs)
    out = Path(out)
    if out.is_dir():
        raise WaferFileError(out, "is a folder (the output is a file)")
    if progress is None:
        progress = sys.stderr.isatty()
    with WaferFile(path, allow_empty=True) as f:
        try:
            _write_table(f, out, union, names, n_jobs, batch_size, progress)
        except OSError as exc:  # name the user's path, not the temporary one
            raise WaferFileError(out, f"cannot write ({exc.strerror or exc})") from None
    log.info("wrote %s features of %s to %s", len(names), path, out)
    return out


def _write_table(f, out: Path, union, names: list[str], n_jobs: int, batch_size: int,
                 progress: bool) -> None:
    """Stream the batches of the open :class:`WaferFile` ``f`` into ``out`` (atomically)."""
    frames = (_frame(b, X, names)
              for b, X in _batches_features(f.iter_batches(batch_size), union, n_jobs))
    write_frames(out, frames, names, total=len(f), progress=progress)


def range_frames(f, start: int, stop: int, union, names: list[str], batch_size: int
                 ) -> list:
    """The feature tables of wafers ``start:stop`` of the open file ``f``, one per batch.

    Batches start at ``start`` (a multiple of ``batch_size`` for the output to match the
    single-process run's row groups); used by :mod:`wafertk.distributed` on each worker.
    """
    return [_frame(b, _transform(union, b), names)
            for b in f.iter_batches(batch_size, start=start, stop=stop)]


def write_frames(out: Path, frames: Iterable, names: list[str], *, total: int,
                 progress: bool) -> None:
    """Write feature tables (pandas DataFrames, in order) into ``out`` atomically.

    CSV when ``out`` ends in ``.csv`` (one header), Parquet otherwise (one row group per
    table); a header-only / empty table when ``frames`` is empty.
    """
    from tqdm import tqdm

    from wafertk._atomic import atomic_path

    is_csv = out.name.lower().endswith(".csv")
    with atomic_path(out) as tmp:
        bar = tqdm(total=total, unit="wafer", disable=not progress, desc="features")
        writer = None
        header = True
        try:
            for df in frames:
                if is_csv:
                    df.to_csv(tmp, mode="w" if header else "a", header=header, index=False)
                    header = False
                else:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    table = pa.Table.from_pandas(df, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                bar.update(len(df))
            if is_csv and header:  # empty file: header only
                _frame(_empty_set(), np.zeros((0, len(names)), np.float32), names).to_csv(
                    tmp, index=False)
            if not is_csv and writer is None:
                _frame(_empty_set(), np.zeros((0, len(names)), np.float32), names).to_parquet(
                    tmp, index=False)
        finally:
            if writer is not None:
                writer.close()
            bar.close()


def _empty_set():
    from wafertk.data.waferset import WaferSet

    return WaferSet.from_maps([], labels=[])
