"""Trained image classifiers at use: the loader, prediction, evaluation reports.

:func:`load_image_predictor` is registered for manifest kind ``image-classifier``, so
``wafertk.registry.load_model(run_dir)`` returns an :class:`ImagePredictor`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from wafertk._atomic import atomic_path
from wafertk.errors import ModelFileError, WaferFileError, WafertkError
from wafertk.images import IMAGE_KIND
from wafertk.images.data import IMAGE_SUFFIXES, make_dataset, scan_image_folder
from wafertk.models.manifest import Manifest, load_manifest

log = logging.getLogger(__name__)


def _as_two_columns(raw: np.ndarray, n_classes: int) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.float64)
    if n_classes == 2 and raw.ndim == 2 and raw.shape[1] == 1:
        p = raw[:, 0]
        return np.stack([1.0 - p, p], axis=1)
    return raw


#: Test-time augmentations of image predictions (the mean of the class probabilities over
#: the views of each image, :func:`tta_views`): ``none``; ``hflip``: the image and its mirror
#: image (2x the forward-pass work); ``hflip-shift``: both, each also shifted by 1/16 of its
#: size up, down, left and right, edge pixels repeated (10x the work).
IMAGE_TTA: tuple[str, ...] = ("none", "hflip", "hflip-shift")


def check_image_tta(tta: str) -> str:
    """``tta`` if it names :data:`IMAGE_TTA`, else a :class:`WafertkError` listing them."""
    if tta not in IMAGE_TTA:
        raise WafertkError(f"unknown test-time augmentation {tta!r} for images: expected "
                           f"{' or '.join(IMAGE_TTA)}")
    return tta


def tta_views(tta: str, image_size: int) -> list[tuple[bool, int, int]]:
    """The views of one test-time augmentation: ``(mirrored, row offset, column offset)``.

    A view with offsets ``(dy, dx)`` has at ``[i, j]`` the pixel ``[i + dy, j + dx]`` of the
    (mirrored) image, indices clipped to the image (edge pixels repeated), as the whole-pixel
    shifts of training (``augment.shift_mode: pixels``).

    Parameters
    ----------
    tta : {"none", "hflip", "hflip-shift"}
    image_size : int
        Side of the model's input; ``hflip-shift`` shifts by ``max(1, round(size / 16))``.

    Returns
    -------
    list of (bool, int, int)
        The unchanged image first.
    """
    check_image_tta(tta)
    if tta == "none":
        return [(False, 0, 0)]
    shifts = [(0, 0)]
    if tta == "hflip-shift":
        s = max(1, round(image_size / 16))
        shifts += [(s, 0), (-s, 0), (0, s), (0, -s)]
    return [(mirrored, dy, dx) for mirrored in (False, True) for dy, dx in shifts]


def _view(x, view: tuple[bool, int, int]):
    """One view of :func:`tta_views` of a batch ``(n, H, W, C)`` (array or tensor; a tensor
    comes back)."""
    import tensorflow as tf

    mirrored, dy, dx = view
    if mirrored:
        x = tf.reverse(x, axis=[2])
    for axis, d in ((1, dy), (2, dx)):
        if d:
            size = int(x.shape[axis])
            x = tf.gather(x, np.clip(np.arange(size) + d, 0, size - 1), axis=axis)
    return x


def predict_proba_files(model, files: list[str], image_size: int, *,
                        batch_size: int = 64, tta: str = "none") -> np.ndarray:
    """Class probabilities of image files, streamed from disk.

    Parameters
    ----------
    model : keras.Model
    files : list of str
    image_size : int
    batch_size : int, default 64
    tta : {"none", "hflip", "hflip-shift"}, default "none"
        Test-time augmentation (:data:`IMAGE_TTA`): the mean of the probabilities over the
        views of :func:`tta_views`; each step runs ``len(views) * batch_size`` images.

    Returns
    -------
    ndarray of shape (n, n_classes)
        A sigmoid model's output ``p`` becomes ``[1 - p, p]``.
    """
    views = tta_views(tta, image_size)
    n_out = int(model.output_shape[-1])
    n_classes = 2 if n_out == 1 else n_out
    if not files:
        return np.zeros((0, n_classes))
    ds = make_dataset(list(files), None, image_size=image_size, batch_size=batch_size)
    if len(views) == 1:
        return _as_two_columns(model.predict(ds, verbose=0), n_classes)
    import tensorflow as tf

    # one decode per image: each batch goes through once per view, [view 1, view 2, ...]
    ds = ds.map(lambda x: tf.concat([_view(x, v) for v in views], axis=0))
    raw = np.asarray(model.predict(ds, verbose=0), np.float64)
    k = len(views)
    if len(raw) != k * len(files):  # the [batch, view 2 of the batch, ...] layout was lost
        raise WafertkError(f"{tta} test-time augmentation got {len(raw)} outputs for "
                           f"{len(files)} images (expected {k * len(files)})")
    return _as_two_columns(_mean_of_views(raw, batch_size, len(files), k), n_classes)


def _mean_of_views(raw: np.ndarray, batch_size: int, n: int, k: int) -> np.ndarray:
    """Undo the ``[batch in view 1, ..., batch in view k]`` layout of the test-time
    augmentation dataset: the mean of each image's ``k`` outputs, in file order."""
    out = np.empty((n, raw.shape[1]), np.float64)
    pos = 0
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        out[start:start + b] = raw[pos:pos + k * b].reshape(k, b, -1).mean(axis=0)
        pos += k * b
    return out


def report_from_proba(out_dir: str | os.PathLike, y_true: np.ndarray, proba: np.ndarray,
                      classes: list[str], *, title: str, extra: dict | None = None,
                      files: list[str] | None = None) -> dict[str, Any]:
    """Write the shared evaluation report (and ``predictions.csv``) for ``proba``.

    ``report.json`` is :func:`wafertk.evaluate.write_evaluation_report`'s, with ``accuracy``,
    ``weighted_f1``, ``macro_f1``, ``n`` and ``evaluated_on`` added at top level.

    Returns
    -------
    dict
        The content of ``report.json``.
    """
    from wafertk.evaluate import binary_metrics, classification_metrics, write_evaluation_report

    y_true = np.asarray(y_true, dtype=np.int64)
    pred = np.argmax(proba, axis=1)
    metrics = classification_metrics(y_true, pred, classes, proba)
    binary = binary_metrics(y_true == 1, proba[:, 1]) if len(classes) == 2 else None
    paths = write_evaluation_report(out_dir, title=title, metrics=metrics, binary=binary,
                                    extra=extra)
    report = json.loads(paths["json"].read_text())
    report = {"accuracy": metrics["accuracy"], "weighted_f1": metrics["weighted_f1"],
              "macro_f1": metrics["macro_f1"], "n": metrics["n"],
              "evaluated_on": (extra or {}).get("evaluated_on"), **report}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    if files is not None:
        with atomic_path(Path(out_dir) / "predictions.csv") as tmp:
            write_predictions(tmp, files, proba, classes, y_true)
    return report


def write_predictions(path: str | os.PathLike, files: list[str], proba: np.ndarray,
                      classes: list[str], y_true: np.ndarray | None = None) -> None:
    """CSV ``file, class, probability`` (+ ``true_class``), then one column per class."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "class", "probability", *(["true_class"] if y_true is not None
                                                      else []),
                    *(f"p_{c}" for c in classes)])
        best = np.argmax(proba, axis=1) if len(proba) else np.zeros(0, int)
        for i, f in enumerate(files):
            w.writerow([f, classes[best[i]], f"{proba[i, best[i]]:.6f}",
                        *([classes[int(y_true[i])]] if y_true is not None else []),
                        *(f"{p:.6f}" for p in proba[i])])


class ImagePredictor:
    """A trained image classifier with its manifest.

    Attributes
    ----------
    manifest : Manifest
    classes_ : ndarray of str
    input_size : int
    model : keras.Model
    """

    def __init__(self, model, manifest: Manifest) -> None:
        self.model = model
        self.manifest = manifest
        self.classes_ = np.asarray(manifest.classes)
        self.input_size = int(manifest.input_size)

    def predict_proba(self, images, batch_size: int = 64, *, tta: str = "none"
                      ) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        images : ndarray of shape (n, H, W, 3) or list of paths
            RGB pixels in [0, 255] already at ``input_size`` (arrays), or image files
            (resized as in training).
        batch_size : int, default 64
        tta : {"none", "hflip", "hflip-shift"}, default "none"
            Test-time augmentation (:data:`IMAGE_TTA`): the mean of the probabilities over
            the views of :func:`tta_views` (``hflip``: the image and its mirror image).

        Returns
        -------
        ndarray of shape (n, len(classes_))
        """
        views = tta_views(tta, self.input_size)
        if isinstance(images, np.ndarray):
            x = np.asarray(images, dtype=np.float32)
            if x.ndim != 4 or x.shape[1:] != (self.input_size, self.input_size, 3):
                raise WafertkError(f"images of shape {x.shape}, expected (n, "
                                   f"{self.input_size}, {self.input_size}, 3)")
            raw = np.mean([np.asarray(self.model.predict(_view(x, v), batch_size=batch_size,
                                                         verbose=0), np.float64)
                           for v in views], axis=0)
            return _as_two_columns(raw, len(self.classes_))
        return predict_proba_files(self.model, [str(p) for p in images], self.input_size,
                                   batch_size=batch_size, tta=tta)

    def predict(self, images, batch_size: int = 64, *, tta: str = "none") -> np.ndarray:
        """Class names of the highest probability."""
        return self.classes_[np.argmax(self.predict_proba(images, batch_size, tta=tta),
                                       axis=1)]

    def __repr__(self) -> str:
        return (f"ImagePredictor(model={self.manifest.extra.get('model')!r}, "
                f"input_size={self.input_size}, classes={list(self.classes_)})")


def load_image_predictor(folder: str | os.PathLike, manifest: Manifest | None = None
                         ) -> ImagePredictor:
    """Load a run folder of kind ``image-classifier`` (registered loader).

    Raises
    ------
    ModelFileError
        Wrong kind, missing or corrupt ``model.keras``, or a model disagreeing with its
        manifest.
    """
    folder = Path(folder)
    if manifest is None:
        manifest = load_manifest(folder, IMAGE_KIND)
    import keras

    from wafertk.images.models import RandomShear  # also registers ImagePreprocess

    path = folder / manifest.model_file
    try:
        model = keras.saving.load_model(path, compile=False,
                                        custom_objects={"RandomShear": RandomShear})
    except Exception as exc:  # zip, JSON and Keras errors alike
        log.debug("loading %s failed: %r", path, exc)
        raise ModelFileError(path, "corrupt model file (cannot be loaded by Keras)") from None
    n_out = int(model.output_shape[-1])
    if (2 if n_out == 1 else n_out) != len(manifest.classes):
        raise ModelFileError(folder, f"model has {n_out} outputs for "
                             f"{len(manifest.classes)} classes in manifest.json")
    if manifest.input_size is None or tuple(model.input_shape[1:3]) != (
            manifest.input_size, manifest.input_size):
        raise ModelFileError(folder, f"model input {model.input_shape[1:3]} disagrees with "
                             f"input_size {manifest.input_size} in manifest.json")
    return ImagePredictor(model, manifest)


def expand_image_inputs(inputs: list[str | os.PathLike]) -> list[str]:
    """Image files named directly or found (recursively) in folders, sorted per folder.

    Raises
    ------
    WaferFileError
        A missing path, a file that is not an image, or nothing found.
    """
    files: list[str] = []
    for item in inputs:
        p = Path(item)
        if not p.exists():
            raise WaferFileError(p, "no such file or folder")
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*")
                           if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise WaferFileError(p, f"holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif p.suffix.lower() not in IMAGE_SUFFIXES:
            raise WaferFileError(p, f"not an image file ({', '.join(IMAGE_SUFFIXES)})")
        else:
            files.append(str(p))
    if not files:
        raise WafertkError("no images given")
    return files


def predict_images(run_dir: str | os.PathLike, inputs: list[str | os.PathLike],
                   out_csv: str | os.PathLike, *, batch_size: int = 64,
                   tta: str = "none") -> dict[str, Any]:
    """Predict image files / folders with a run and write ``file, class, probability``.

    Unreadable images are skipped with a warning (counted in the result). ``tta``:
    test-time augmentation, ``none``, ``hflip`` or ``hflip-shift`` (:data:`IMAGE_TTA`).

    Returns
    -------
    dict
        ``n`` predicted, ``skipped``, ``tta``, ``counts`` per predicted class.
    """
    from wafertk.images.data import _readable
    from wafertk.registry import load_model

    check_image_tta(tta)
    pred = load_model(run_dir, IMAGE_KIND)
    files, skipped = [], 0
    for f in expand_image_inputs(list(inputs)):
        reason = _readable(Path(f), "full")
        if reason is None:
            files.append(f)
        else:
            skipped += 1
            log.warning("skipped %s: %s", f, reason)
    if not files:
        raise WafertkError("no readable image among the inputs")
    proba = pred.predict_proba(files, batch_size=batch_size, tta=tta)
    classes = list(pred.classes_)
    with atomic_path(out_csv) as tmp:
        write_predictions(tmp, files, proba, classes)
    best = np.argmax(proba, axis=1)
    return {"n": len(files), "skipped": skipped, "tta": tta,
            "counts": {c: int((best == i).sum()) for i, c in enumerate(classes)}}


def evaluate_images(run_dir: str | os.PathLike, data_dir: str | os.PathLike,
                    out_dir: str | os.PathLike, *, batch_size: int = 64,
                    tta: str = "none") -> dict[str, Any]:
    """Score a labelled image folder with a run; write the shared report into ``out_dir``.

    ``tta``: test-time augmentation, ``none``, ``hflip`` or ``hflip-shift``
    (:data:`IMAGE_TTA`; recorded in the report's ``extra``).

    The folder's sub-folders must include every class of the model (others are skipped
    with a warning). Written atomically: ``report.json`` (``accuracy``, ``weighted_f1`` at
    top level), ``report.md``, ``report.html``, figures, ``predictions.csv``.

    Returns
    -------
    dict
        The content of ``report.json``.
    """
    from wafertk.registry import load_model

    check_image_tta(tta)
    pred = load_model(run_dir, IMAGE_KIND)
    classes = list(pred.classes_)
    scan = scan_image_folder(data_dir, classes=classes)
    proba = pred.predict_proba(scan.files, batch_size=batch_size, tta=tta)
    extra = {"model": pred.manifest.extra.get("model"), "run": str(run_dir),
             "data": str(data_dir), "evaluated_on": str(data_dir),
             "images": len(scan), "skipped": len(scan.skipped), "tta": tta}
    with atomic_path(out_dir, directory=True) as tmp:
        report = report_from_proba(tmp, scan.labels, proba, classes,
                                   title=f"{extra['model']} on {data_dir}", extra=extra,
                                   files=scan.files)
    return report
