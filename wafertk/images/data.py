"""Image folders with one sub-folder per class: scan, balance, split, stream, export.

No TensorFlow at import: :func:`scan_image_folder`, :func:`class_balance` and
:func:`stratified_split` are plain Python/NumPy (a bad folder fails in milliseconds);
:func:`make_dataset` and :func:`export_npy` import TensorFlow/Keras when called.

Bad input (documented in ``docs/images.md`` and tested):

* a missing path, a file instead of a folder, a folder with fewer than two class
  sub-folders, or a class sub-folder holding no readable image: :class:`WaferFileError`
  naming the folder;
* a file that is not an image (by suffix: not one of :data:`IMAGE_SUFFIXES`), an image that
  cannot be decoded, or a file directly in the root (no class): skipped with a warning and
  counted in :attr:`ImageFolder.skipped`.

Examples
--------
>>> from wafertk.images.data import scan_image_folder, class_balance  # doctest: +SKIP
>>> scan = scan_image_folder("../shared/data/cats_and_dogs/train")    # doctest: +SKIP
>>> print(class_balance(scan))                                        # doctest: +SKIP
  class  count  fraction
0  cats   1000       0.5
1  dogs   1000       0.5
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wafertk._atomic import atomic_path
from wafertk.errors import WaferFileError, WafertkError

log = logging.getLogger(__name__)

#: File suffixes read as images (the formats TensorFlow's ``decode_image`` reads).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclass
class ImageFolder:
    """A scanned image folder: readable image files, their class, what was skipped.

    Attributes
    ----------
    root : pathlib.Path
    classes : list of str
        Class names (sub-folder names, sorted); label ``i`` is ``classes[i]``.
    files : list of str
        Absolute paths of the readable images, sorted by class then name.
    labels : ndarray of shape (n,), int64
    skipped : list of (str, str)
        ``(path, reason)`` of every file left out.
    """

    root: Path
    classes: list[str]
    files: list[str]
    labels: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, index: np.ndarray) -> ImageFolder:
        """The images at ``index`` (same classes, no skipped list)."""
        index = np.asarray(index, dtype=np.int64)
        return ImageFolder(self.root, list(self.classes), [self.files[i] for i in index],
                           self.labels[index])

    def counts(self) -> np.ndarray:
        """Images per class, in class order."""
        return np.bincount(self.labels, minlength=len(self.classes))


def _readable(path: Path, check: str) -> str | None:
    """None when ``path`` decodes as an image, else the reason it does not."""
    if check == "none":
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if check == "full":
                im.draft("RGB", (1, 1))  # JPEG: decode at 1/8 scale, still reads every byte
                im.load()
            else:
                im.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        return f"cannot decode image ({str(exc).splitlines()[0] if str(exc) else 'bad data'})"
    return None


def scan_image_folder(folder: str | os.PathLike, *, classes: list[str] | None = None,
                      check: str = "full", max_per_class: int | None = None
                      ) -> ImageFolder:
    """List the images of ``folder/<class>/*`` and check that each one decodes.

    Parameters
    ----------
    folder : str or os.PathLike
        One sub-folder per class (``cats/``, ``dogs/``); nested folders inside a class
        folder are searched too.
    classes : list of str, optional
        Expected classes in label order (e.g. a trained model's); a missing one is an
        error, an extra sub-folder is skipped with a warning. Default: every sub-folder.
    check : {"full", "header", "none"}, default "full"
        ``full`` decodes every image (JPEGs at 1/8 scale, ~1 ms each) so corrupt files are
        skipped here rather than failing mid-epoch; ``header`` only parses the header.
    max_per_class : int, optional
        At most this many images per class (first in name order), for quick runs.

    Returns
    -------
    ImageFolder

    Raises
    ------
    WaferFileError
        Missing path, not a folder, fewer than two classes, an expected class missing, or a
        class folder with no readable image.
    """
    if check not in ("full", "header", "none"):
        raise WafertkError(f"check must be full, header or none, got {check!r}")
    root = Path(folder)
    if not root.exists():
        raise WaferFileError(root, "no such folder")
    if not root.is_dir():
        raise WaferFileError(root, "is not a folder (expected one sub-folder per class)")
    skipped: list[tuple[str, str]] = []
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for p in sorted(root.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            skipped.append((str(p), "not inside a class sub-folder"))
    if classes is None:
        names = subdirs
        if len(names) < 2:
            raise WaferFileError(root, f"has {len(names)} class sub-folder"
                                 f"{'' if len(names) == 1 else 's'}"
                                 f"{' (' + names[0] + ')' if names else ''}; a classifier "
                                 "needs at least two (one sub-folder per class)")
    else:
        names = list(classes)
        missing = [c for c in names if c not in subdirs]
        if missing:
            raise WaferFileError(root, f"no sub-folder for class {missing[0]!r} (the model's "
                                 f"classes: {', '.join(names)})")
        for extra in sorted(set(subdirs) - set(names)):
            skipped.append((str(root / extra), "sub-folder is not one of the model's classes"))
    files: list[str] = []
    labels: list[int] = []
    for i, name in enumerate(names):
        n_ok = 0
        for p in sorted((root / name).rglob("*")):
            if not p.is_file() or p.name.startswith("."):
                continue
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((str(p), f"not an image file ({p.suffix or 'no suffix'})"))
                continue
            if max_per_class is not None and n_ok >= max_per_class:
                break
            reason = _readable(p, check)
            if reason is not None:
                skipped.append((str(p), reason))
                continue
            files.append(str(p.resolve()))
            labels.append(i)
            n_ok += 1
        if n_ok == 0:
            raise WaferFileError(root / name, "class folder holds no readable image "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    return ImageFolder(root, names, files, np.asarray(labels, dtype=np.int64), skipped)


def class_balance(scan: ImageFolder):
    """The class-balance table: one row per class with ``count`` and ``fraction``.

    Returns
    -------
    pandas.DataFrame
        Columns ``class``, ``count``, ``fraction`` (share of all images).
    """
    import pandas as pd

    counts = scan.counts()
    total = max(int(counts.sum()), 1)
    return pd.DataFrame({"class": scan.classes, "count": counts.astype(int),
                         "fraction": np.round(counts / total, 4)})


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...] = (0.6, 0.2, 0.2), *,
                     seed: int = 0) -> list[np.ndarray]:
    """Split indices per class in the given fractions, reproducibly.

    Each class is shuffled with ``numpy.random.default_rng(seed)`` and cut at the cumulative
    fractions (rounded), so every split holds each class in about the same share.

    Parameters
    ----------
    labels : ndarray of shape (n,)
    fractions : tuple of float, default (0.6, 0.2, 0.2)
        Must sum to 1.
    seed : int, default 0

    Returns
    -------
    list of ndarray
        Sorted indices of each split, in the order of ``fractions``.

    Examples
    --------
    >>> tr, va, te = stratified_split(np.array([0] * 10 + [1] * 5), seed=0)
    >>> len(tr), len(va), len(te)
    (9, 3, 3)
    """
    labels = np.asarray(labels)
    f = np.asarray(fractions, dtype=float)
    if f.ndim != 1 or (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise WafertkError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in f]
    cuts = np.cumsum(f)[:-1]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        bounds = np.round(cuts * len(idx)).astype(int)
        for k, chunk in enumerate(np.split(idx, bounds)):
            parts[k].append(chunk)
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]


def make_dataset(files: list[str], labels: np.ndarray | None, *, image_size: int,
                 batch_size: int, shuffle: bool = False, seed: int | None = None,
                 cache: bool = False):
    """A streamed ``tf.data.Dataset`` of ``(image, label)`` batches (or images only).

    Images are read from disk batch by batch (nothing is held in memory unless ``cache``),
    decoded to RGB and resized (bilinear, as ``keras.utils.image_dataset_from_directory``
    does) to ``image_size x image_size``; pixel values stay float32 in [0, 255] (the models
    carry their own preprocessing layer). tf.data autotuning is off and the prefetch fixed
    at 2 (docs: PERFORMANCE_NOTES, steadier throughput on 2 cores).

    Parameters
    ----------
    files : list of str
    labels : ndarray of shape (n,) or None
    image_size : int
    batch_size : int
    shuffle : bool, default False
        Reshuffled every epoch (seeded by ``seed``).
    seed : int, optional
    cache : bool, default False
        Keep decoded images in memory after the first epoch.

    Returns
    -------
    tf.data.Dataset
    """
    import tensorflow as tf

    size = (int(image_size), int(image_size))

    def load(path):
        raw = tf.io.read_file(path)
        img = tf.io.decode_image(raw, channels=3, expand_animations=False)
        img = tf.image.resize(tf.cast(img, tf.float32), size, method="bilinear")
        return tf.ensure_shape(img, (*size, 3))

    paths = tf.data.Dataset.from_tensor_slices(np.asarray(files, dtype=str))
    if labels is None:
        ds = paths.map(load, num_parallel_calls=2)
    else:
        y = tf.data.Dataset.from_tensor_slices(np.asarray(labels, dtype=np.int64))
        ds = tf.data.Dataset.zip((paths, y)).map(lambda p, t: (load(p), t),
                                                   num_parallel_calls=2)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(max(len(files), 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).prefetch(2)
    opts = tf.data.Options()
    opts.autotune.enabled = False
    opts.deterministic = True
    return ds.with_options(opts)


def load_images(files: list[str], image_size: int) -> np.ndarray:
    """Read and resize images into memory with ``keras.utils.load_img`` + ``img_to_array``.

    Returns
    -------
    ndarray of shape (n, image_size, image_size, 3), uint8

    Raises
    ------
    WaferFileError
        An unreadable image (naming it).
    """
    from keras.utils import img_to_array, load_img

    out = np.empty((len(files), image_size, image_size, 3), np.uint8)
    for i, f in enumerate(files):
        try:
            img = load_img(f, color_mode="rgb", target_size=(image_size, image_size),
                           interpolation="bilinear")
        except Exception as exc:  # PIL raises several types for bad files
            raise WaferFileError(f, f"cannot read image ({exc})") from None
        out[i] = np.clip(np.round(img_to_array(img)), 0, 255).astype(np.uint8)
    return out


def export_npy(scan: ImageFolder, out_dir: str | os.PathLike, *, image_size: int
               ) -> dict[str, Path]:
    """Write the images and labels of ``scan`` as ``.npy`` files for reuse (atomically).

    Writes ``out_dir/images.npy`` (uint8, shape (n, image_size, image_size, 3)),
    ``labels.npy`` (int64), ``classes.txt`` (one class a line) and ``files.txt``.
    Loaded with plain ``np.load`` (no pickle). The images go through the training pipeline
    (:func:`make_dataset`: the resize of ``keras.utils.image_dataset_from_directory``), so
    the arrays are what a model trained on the folder sees, rounded to uint8.
    (:func:`load_images` uses ``keras.utils.load_img``, whose PIL resize smooths when
    shrinking: a few grey levels apart.)

    Returns
    -------
    dict of str to pathlib.Path
    """
    ds = make_dataset(scan.files, None, image_size=image_size, batch_size=256)
    x = np.concatenate([np.clip(np.round(b.numpy()), 0, 255).astype(np.uint8) for b in ds]
                       ) if len(scan) else np.zeros((0, image_size, image_size, 3), np.uint8)
    out = Path(out_dir)
    with atomic_path(out, directory=True) as tmp:
        np.save(tmp / "images.npy", x)
        np.save(tmp / "labels.npy", np.asarray(scan.labels, np.int64))
        (tmp / "classes.txt").write_text("".join(f"{c}\n" for c in scan.classes))
        (tmp / "files.txt").write_text("".join(f"{f}\n" for f in scan.files))
    return {k: out / n for k, n in (("images", "images.npy"), ("labels", "labels.npy"),
                                    ("classes", "classes.txt"), ("files", "files.txt"))}
