"""Import WM-811K into ``wafers.h5`` and summarise ``wafers.h5`` files.

* :func:`import_lswmd`: the original ``LSWMD.pkl`` (legacy pickle, see :mod:`wafertk.data.legacy`);
* :func:`import_npz`: the lossless ``.npz`` pack (``wm811k_train.npz`` layout);
* :func:`wafer_info`: counts, grid shapes, lots and class balance of a ``wafers.h5``, streamed.

Both importers write atomically: the output appears only once complete.
"""

from __future__ import annotations

import logging
import os
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wafertk.data.h5 import _KNOWN, WaferFile, WaferWriter
from wafertk.data.legacy import check_partition, read_lswmd
from wafertk.data.waferset import WaferSet, check_file_rules
from wafertk.errors import WaferFileError, WafertkError

log = logging.getLogger(__name__)

#: Keys of the ``.npz`` pack (see ``../shared/data/README.md``).
NPZ_KEYS: tuple[str, ...] = ("maps_flat", "offsets", "shapes", "label", "class_names",
                             "orig_index", "lotName", "waferIndex", "dieSize")
#: Keys an unlabeled pack (``wm811k_unlabeled_200k.npz``) leaves out: both or neither.
NPZ_LABEL_KEYS: tuple[str, ...] = ("label", "class_names")
_WRITE_BATCH = 16384


@dataclass(frozen=True)
class ImportSummary:
    """What an import wrote.

    Attributes
    ----------
    path : pathlib.Path
        The written ``wafers.h5``.
    wafers : int
        Wafers written.
    labeled : int
        Wafers with a class label.
    lots : int
        Distinct lots.
    classes : dict of str to int
        Wafers per class (unlabeled ones under ``""``).
    """

    path: Path
    wafers: int
    labeled: int
    lots: int
    classes: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return (f"wrote {self.wafers} wafers ({self.labeled} labeled, {self.lots} lots) "
                f"to {self.path}")


def _summary(ws: WaferSet, path: Path) -> ImportSummary:
    labels = ws.label_strings().astype(str)
    return ImportSummary(path=Path(path), wafers=len(ws), labeled=int((labels != "").sum()),
                         lots=len(set(ws.lot.tolist())),
                         classes=dict(Counter(labels.tolist())))


def _write(ws: WaferSet, dst: str | os.PathLike, progress: bool | None, what: str,
           src: str | os.PathLike) -> None:
    """Write ``ws`` to ``dst``; a wafer that breaks the format's rules is an error naming
    ``src`` and the wafer (row in the imported set and id), and nothing is written."""
    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    if Path(dst).is_dir():
        raise WaferFileError(dst, "is a folder, expected an output file name")
    try:
        check_file_rules(ws)  # before creating anything
    except WafertkError as exc:
        raise WaferFileError(src, str(exc)) from None
    try:
        with WaferWriter(dst, class_names=ws.class_names) as w, \
                tqdm(total=len(ws), unit="wafer", desc=what, disable=not show,
                     leave=False) as bar:
            for s in range(0, max(len(ws), 1), _WRITE_BATCH):
                part = ws.slice(s, s + _WRITE_BATCH)
                w.append(part)
                bar.update(len(part))
    except OSError as exc:
        raise WaferFileError(dst, f"cannot write ({exc.strerror or exc})") from None
    except WaferFileError:
        raise
    except WafertkError as exc:  # a rule only the writer can check (none known today)
        raise WaferFileError(src, str(exc)) from None


def import_lswmd(src: str | os.PathLike, dst: str | os.PathLike, *, labeled_only: bool = False,
                 partition: str = "all", progress: bool | None = None) -> ImportSummary:
    """Convert the original WM-811K ``LSWMD.pkl`` to ``wafers.h5`` (ragged, gzip).

    Parameters
    ----------
    src : str or os.PathLike
        The legacy pickle; trusted public dataset only (see
        :func:`~wafertk.data.legacy.read_lswmd`).
    dst : str or os.PathLike
        Output ``wafers.h5``; written atomically (nothing is left behind on error).
    labeled_only : bool, default False
        Keep only labeled rows.
    partition : {"all", "Training", "Test"}, default "all"
    progress : bool, optional
        tqdm bars; default only when stderr is a terminal.

    Returns
    -------
    ImportSummary

    Raises
    ------
    WafertkError
        Unknown partition.
    WaferFileError
        Unreadable or malformed ``src``.
    """
    check_partition(partition)
    ws = read_lswmd(src, labeled_only=labeled_only, partition=partition, progress=progress)
    if len(ws) == 0:
        raise WaferFileError(src, f"no wafers left after filtering (partition={partition}, "
                                  f"labeled_only={labeled_only})")
    _write(ws, dst, progress, "writing wafers.h5", src)
    log.debug("imported %d wafers from %s into %s", len(ws), src, dst)
    return _summary(ws, Path(dst))


def pack_partition(src: str | os.PathLike) -> str:
    """The WM-811K partition a pack holds, from its file name.

    ``"Test"`` when the name contains ``test`` (``wm811k_test_a.npz``), ``"Training"`` when it
    contains ``train`` (``wm811k_train.npz``), else ``""`` (unknown, e.g. the unlabeled pack).
    """
    name = Path(src).name.lower()
    return "Test" if "test" in name else "Training" if "train" in name else ""


def read_npz_pack(src: str | os.PathLike, *, partition: str | None = None) -> WaferSet:
    """Read a WM-811K ``.npz`` pack (``wm811k_train.npz`` layout) into a :class:`WaferSet`.

    Parameters
    ----------
    src : str or os.PathLike
        An ``.npz`` with keys ``maps_flat`` (uint8, (D,)), ``offsets`` (int, (n+1,)),
        ``shapes`` (int, (n, 2)), ``label`` (int, (n,), index into ``class_names``, -1 for
        unlabeled), ``class_names`` (str, (k,)), ``orig_index`` (int, (n,)), ``lotName``
        (str, (n,)), ``waferIndex`` (int, (n,)), ``dieSize`` (float, (n,)). An unlabeled pack
        (``wm811k_unlabeled_200k.npz``) has neither ``label`` nor ``class_names``
        (:data:`NPZ_LABEL_KEYS`): its wafers come in unlabeled (``labels`` None, the WM-811K
        class list); one of the two without the other is an error.
    partition : str, optional
        Value of the ``partition`` column; default from the file name (:func:`pack_partition`).

    Returns
    -------
    WaferSet
        ``wafer_id`` is ``"lswmd-<orig_index>"`` (as :func:`read_lswmd` names the same rows);
        extras ``orig_index`` (int64) and ``partition`` (the pack's partition).

    Raises
    ------
    WaferFileError
        Not an ``.npz``, truncated, missing keys, mismatched lengths or bad values.
    """
    p = Path(src)
    if not p.exists():
        raise WaferFileError(src, "no such file")
    if p.is_dir():
        raise WaferFileError(src, "is a folder, expected an .npz pack")
    if not zipfile.is_zipfile(p):
        raise WaferFileError(src, "not an .npz archive (not a zip file)")
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing == list(NPZ_LABEL_KEYS):  # an unlabeled pack
                missing = []
            if missing:
                raise WaferFileError(src, f"missing key(s) {', '.join(missing)} "
                                          "(expected the wm811k_train.npz layout)")
            d = {k: z[k] for k in NPZ_KEYS if k in z.files}
    except WaferFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise WaferFileError(src, f"truncated or corrupt .npz ({exc})") from None
    try:
        return _pack_to_waferset(d, pack_partition(p) if partition is None else partition)
    except WafertkError as exc:
        raise WaferFileError(src, str(exc)) from None


def _pack_to_waferset(d: dict[str, np.ndarray], partition: str) -> WaferSet:
    shapes = d["shapes"]
    if shapes.ndim != 2 or shapes.shape[1:] != (2,) or shapes.dtype.kind not in "iu":
        raise WafertkError(f"'shapes' has shape {shapes.shape} and dtype {shapes.dtype}, "
                           "expected integers of shape (n, 2)")
    n = len(shapes)
    labeled = "label" in d
    for k in ("label", "orig_index", "lotName", "waferIndex", "dieSize"):
        if k not in d:
            continue
        if d[k].ndim != 1 or len(d[k]) != n:
            raise WafertkError(f"mismatched lengths: '{k}' has shape {d[k].shape}, "
                               f"expected ({n},)")
    for k in ("offsets", "label", "orig_index", "waferIndex"):
        if k in d and d[k].dtype.kind not in "iu":
            raise WafertkError(f"'{k}' has dtype {d[k].dtype}, expected integers")
    if d["dieSize"].dtype.kind not in "iuf":
        raise WafertkError(f"'dieSize' has dtype {d['dieSize'].dtype}, expected numbers")
    if d["maps_flat"].ndim != 1 or d["maps_flat"].dtype.kind not in "iu":
        raise WafertkError(f"'maps_flat' has shape {d['maps_flat'].shape} and dtype "
                           f"{d['maps_flat'].dtype}, expected 1-D uint8")
    if d["offsets"].shape != (n + 1,):
        raise WafertkError(f"mismatched lengths: 'offsets' has shape {d['offsets'].shape}, "
                           f"expected ({n + 1},)")
    names: list[str] | None = None
    labels = None
    if labeled:
        names = [str(c) for c in np.asarray(d["class_names"]).reshape(-1)]
        if not names or len(set(names)) != len(names):
            raise WafertkError("'class_names' is empty or has duplicates")
        label = d["label"].astype(np.int64)
        if label.size and (label.min() < -1 or label.max() >= len(names)):
            raise WafertkError(f"'label' holds values outside -1..{len(names) - 1}")
        labels = np.array(names + [""], dtype=object)[label]
    orig = d["orig_index"].astype(np.int64)
    if len(np.unique(orig)) != n:
        raise WafertkError("'orig_index' has duplicate values")
    return WaferSet(
        d["maps_flat"],
        d["offsets"],
        shapes,
        wafer_id=np.array([f"lswmd-{i}" for i in orig], dtype=object),
        lot=d["lotName"],
        wafer_index=d["waferIndex"],
        die_size=d["dieSize"],
        labels=labels,
        class_names=names,
        extras={"orig_index": orig, "partition": np.full(n, partition, dtype=object)},
    )


def import_npz(src: str | os.PathLike, dst: str | os.PathLike, *,
               progress: bool | None = None) -> ImportSummary:
    """Convert a WM-811K ``.npz`` pack (e.g. ``wm811k_train.npz``) to ``wafers.h5``.

    Lossless: maps, lots, wafer indices, die sizes and labels are kept exactly; ``wafer_id`` is
    ``"lswmd-<orig_index>"`` so ids match :func:`import_lswmd` of the same rows. A pack
    without ``label``/``class_names`` (the unlabeled pack) is imported with every wafer
    unlabeled.

    Parameters
    ----------
    src : str or os.PathLike
        The pack (see :func:`read_npz_pack` for its keys).
    dst : str or os.PathLike
        Output ``wafers.h5`` (ragged, gzip), written atomically.
    progress : bool, optional
        tqdm bar; default only when stderr is a terminal.

    Returns
    -------
    ImportSummary

    Raises
    ------
    WaferFileError
        Bad ``src`` (see :func:`read_npz_pack`) or empty pack.
    """
    ws = read_npz_pack(src)
    if len(ws) == 0:
        raise WaferFileError(src, "contains no wafers")
    _write(ws, dst, progress, "writing wafers.h5", src)
    log.debug("imported %d wafers from %s into %s", len(ws), src, dst)
    return _summary(ws, Path(dst))


def _stats(a: np.ndarray) -> dict[str, float]:
    if len(a) == 0:
        return {"min": 0, "median": 0, "max": 0}
    return {"min": int(a.min()), "median": float(np.median(a)), "max": int(a.max())}


def wafer_info(path: str | os.PathLike, *, batch_size: int = 4096, top: int = 5) -> dict:
    """Summarise a ``wafers.h5`` by streaming it (memory bounded by one batch of maps).

    Every batch is read and checked, so a file with bad values is reported.

    Parameters
    ----------
    path : str or os.PathLike
    batch_size : int, default 4096
    top : int, default 5
        How many of the most common grid shapes to list.

    Returns
    -------
    dict
        ``path``, ``file_size`` (bytes), ``layout``, ``wafers``, ``labeled``, ``dies``
        (``total`` dies on wafers and ``fail_fraction`` of them), ``grid`` (``distinct_shapes``,
        ``rows``/``cols`` min/median/max, ``most_common`` list of ``{"shape": [r, c],
        "wafers": k}``), ``lots`` (``count`` and ``wafers_per_lot`` min/median/max/mean),
        ``classes`` (list of ``{"class", "wafers", "fraction"}``, the class list's order then
        ``"(unlabeled)"``), ``class_names`` and ``extras`` (other dataset names).

    Raises
    ------
    WaferFileError
        For any problem with the file.
    """
    with WaferFile(path) as f:
        lots: Counter[str] = Counter()
        labels: Counter[str] = Counter()
        dies = fails = 0
        for batch in f.iter_batches(batch_size):
            lots.update(batch.lot.tolist())
            labels.update(batch.label_strings().tolist())
            dies += int(np.count_nonzero(batch.maps_flat))
            fails += int(np.count_nonzero(batch.maps_flat == 2))
        n, shapes = f.n, f.shapes
        layout, class_names = f.layout, f.class_names
        extras = sorted(k for k in f.dataset_names() if k not in _KNOWN)
    uniq, counts = np.unique(shapes, axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    per_lot = np.array(list(lots.values()), dtype=np.int64)
    classes = [{"class": c, "wafers": labels.get(c, 0), "fraction": labels.get(c, 0) / n}
               for c in class_names]
    classes.append({"class": "(unlabeled)", "wafers": labels.get("", 0),
                    "fraction": labels.get("", 0) / n})
    return {
        "path": os.fspath(path),
        "file_size": Path(path).stat().st_size,
        "layout": layout,
        "wafers": n,
        "labeled": n - labels.get("", 0),
        "dies": {"total": dies, "fail_fraction": fails / dies if dies else 0.0},
        "grid": {
            "distinct_shapes": len(uniq),
            "rows": _stats(shapes[:, 0]),
            "cols": _stats(shapes[:, 1]),
            "most_common": [{"shape": [int(uniq[i, 0]), int(uniq[i, 1])],
                             "wafers": int(counts[i])} for i in order],
        },
        "lots": {"count": len(lots),
                 "wafers_per_lot": {**_stats(per_lot),
                                    "mean": float(per_lot.mean()) if len(per_lot) else 0.0}},
        "classes": classes,
        "class_names": list(class_names),
        "extras": extras,
    }


def format_info(info: dict) -> str:
    """Plain-text rendering of :func:`wafer_info`'s dict (what ``wafertk info`` prints)."""
    g, lots = info["grid"], info["lots"]
    wpl = lots["wafers_per_lot"]
    size = info["file_size"]
    lines = [
        f"file      {info['path']} ({_human(size)}, {info['layout']} layout)",
        f"wafers    {info['wafers']} ({info['labeled']} labeled)",
        f"dies      {info['dies']['total']} ({100 * info['dies']['fail_fraction']:.2f}% fail)",
        f"grids     {g['distinct_shapes']} distinct shapes; rows {g['rows']['min']}-"
        f"{g['rows']['max']} (median {g['rows']['median']:g}), cols {g['cols']['min']}-"
        f"{g['cols']['max']} (median {g['cols']['median']:g})",
        "          most common: " + ", ".join(
            f"{s['shape'][0]}x{s['shape'][1]} ({s['wafers']})" for s in g["most_common"]),
        f"lots      {lots['count']}; wafers per lot {wpl['min']}-{wpl['max']} "
        f"(median {wpl['median']:g}, mean {wpl['mean']:.1f})",
        "classes",
    ]
    width = max(len(c["class"]) for c in info["classes"])
    for c in info["classes"]:
        lines.append(f"  {c['class']:<{width}}  {c['wafers']:>8}  {100 * c['fraction']:6.2f}%")
    if info["extras"]:
        lines.append("extras    " + ", ".join(info["extras"]))
    return "\n".join(lines)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
