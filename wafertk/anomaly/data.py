"""Inputs of the anomaly detectors: wafer maps, image folders and arrays (no TensorFlow).

* Wafer maps (a :class:`~wafertk.data.WaferSet`) become the CNNs' input: resized with
  :func:`~wafertk.data.preprocess.resize_maps` (fail dies kept) and one-hot encoded in three
  channels (no die, pass, fail) by :func:`~wafertk.data.preprocess.one_hot`.
* Images come from a folder (``<folder>/<class>/*.jpg`` gives each image its sub-folder as
  label, as CIFAR-10's ``train/`` and ``test/`` folders do; images directly in the folder are
  unlabeled) or from an ``.npy`` array of shape (n, H, W, C); pixel values are scaled to
  [0, 1].
* :func:`global_contrast_normalization` is Ruff et al.'s image preprocessing for Deep SVDD.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wafertk.data.waferset import WaferSet
from wafertk.errors import WaferFileError, WafertkError

#: File suffixes read as images.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

#: One-hot vector of a cell without a die (what translations of a wafer map fill in).
NO_DIE_ONE_HOT: tuple[float, float, float] = (1.0, 0.0, 0.0)


def wafer_inputs(ws: WaferSet, size: int) -> np.ndarray:
    """The detectors' input of wafer maps: resized (fail dies kept) and one-hot.

    Parameters
    ----------
    ws : WaferSet
    size : int
        Side of the square grid.

    Returns
    -------
    ndarray of shape (n, size, size, 3), float32
        Channel 0 = no die, 1 = pass, 2 = fail.

    Examples
    --------
    >>> from wafertk.data.synthetic import make_wafers
    >>> wafer_inputs(make_wafers(2, random_state=0), 16).shape
    (2, 16, 16, 3)
    """
    from wafertk.data.preprocess import one_hot, resize_maps

    return one_hot(resize_maps(ws, size))


def check_finite(x: np.ndarray, what: str = "X") -> None:
    """Raise a :class:`WafertkError` naming the first sample holding NaN or infinity."""
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0, 0])
        raise WafertkError(f"{what} holds NaN or infinite values (sample {bad})")


def as_images(x: np.ndarray, what: str = "X") -> np.ndarray:
    """An image array as float32 in [0, 1], checked: 4-D, finite.

    Parameters
    ----------
    x : ndarray of shape (n, H, W, C)
        uint8 (0-255, scaled by 1/255) or float (taken as is).
    what : str
        How errors name the array.

    Returns
    -------
    ndarray of shape (n, H, W, C), float32
    """
    x = np.asarray(x)
    if x.ndim == 3:  # (n, H, W): one channel
        x = x[..., None]
    if x.ndim != 4 or x.dtype.kind not in "uif":
        raise WafertkError(f"{what} has shape {x.shape} and dtype {x.dtype}, expected numbers "
                           "of shape (n, H, W, C)")
    check_finite(x, what)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    return x.astype(np.float32, copy=False)


def global_contrast_normalization(x: np.ndarray) -> np.ndarray:
    """Ruff et al.'s global contrast normalisation (l1): per image, minus its mean, divided
    by its mean absolute deviation.

    Parameters
    ----------
    x : ndarray of shape (n, H, W, C), float

    Returns
    -------
    ndarray of the same shape, float32
    """
    x = np.asarray(x, np.float32)
    flat = x.reshape(len(x), -1)
    centred = flat - flat.mean(axis=1, keepdims=True)
    scale = np.abs(centred).mean(axis=1, keepdims=True)
    return (centred / np.where(scale > 0, scale, 1.0)).reshape(x.shape)


@dataclass
class ImageSet:
    """Images read from a folder or an array file.

    Attributes
    ----------
    x : ndarray of shape (n, H, W, C), float32 in [0, 1]
    files : ndarray of str, shape (n,)
        Path of each image relative to the folder (``"array.npy[3]"`` for array rows).
    labels : ndarray of str, shape (n,)
        The image's sub-folder (its class), ``""`` for images directly in the folder.
    """

    x: np.ndarray
    files: np.ndarray
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))

    def __len__(self) -> int:
        return len(self.x)

    @property
    def has_labels(self) -> bool:
        """Whether any image has a class (a sub-folder)."""
        return bool(len(self.labels)) and bool((self.labels != "").any())


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                  and p.is_file())


def read_image_folder(folder: str | os.PathLike, *, classes: list[str] | None = None,
                      size: int | None = None, limit: int | None = None) -> ImageSet:
    """Read every image under ``folder`` (sub-folders are classes).

    Parameters
    ----------
    folder : str or os.PathLike
        ``folder/<class>/*.jpg`` (labelled by sub-folder) or ``folder/*.jpg`` (unlabeled).
    classes : list of str, optional
        Only these sub-folders.
    size : int, optional
        Resize every image to ``size x size`` (bilinear); default: keep the size, which must
        then be the same for every image.
    limit : int, optional
        At most this many images per class (the first in name order), for quick runs.

    Returns
    -------
    ImageSet
        RGB images (grey images are converted), sorted by path.

    Raises
    ------
    WaferFileError
        Missing folder, no images, an unreadable image or images of different sizes.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(folder)
    if not root.is_dir():
        raise WaferFileError(root, "no such folder" if not root.exists() else
                             "is not a folder of images")
    files = _image_files(root)
    labels = [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else ""
              for p in files]
    if classes is not None:
        unknown = sorted(set(classes) - set(labels))
        if unknown:
            raise WaferFileError(root, f"no images of class {unknown[0]!r} (sub-folders: "
                                 f"{', '.join(sorted(set(labels) - {''})) or 'none'})")
        keep = [i for i, lab in enumerate(labels) if lab in classes]
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    if limit is not None:
        seen: dict[str, int] = {}
        keep = []
        for i, lab in enumerate(labels):
            seen[lab] = seen.get(lab, 0) + 1
            if seen[lab] <= limit:
                keep.append(i)
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    if not files:
        raise WaferFileError(root, f"holds no images ({', '.join(IMAGE_SUFFIXES)})")
    arrays = []
    for p in files:
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                arrays.append(np.asarray(im, np.uint8))
        except (OSError, UnidentifiedImageError) as exc:
            raise WaferFileError(p, f"cannot read image ({exc})") from None
        if arrays[-1].shape != arrays[0].shape:
            raise WaferFileError(p, f"image of size {arrays[-1].shape[:2]}, the first was "
                                 f"{arrays[0].shape[:2]}: give an input size to resize them")
    return ImageSet(as_images(np.stack(arrays)),
                    np.array([str(p.relative_to(root)) for p in files], dtype=object),
                    np.array(labels, dtype=object))


def read_array_file(path: str | os.PathLike) -> ImageSet:
    """Images from an ``.npy`` array of shape (n, H, W[, C]) (uint8 0-255 or float in [0, 1]).

    Raises
    ------
    WaferFileError
        Unreadable file, wrong shape or dtype, NaN or infinite values (naming the sample).
    """
    p = Path(path)
    try:
        x = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise WaferFileError(p, f"cannot read the array ({exc})") from None
    try:
        x = as_images(x, "array")
    except WafertkError as exc:
        raise WaferFileError(p, str(exc).removeprefix("array ")) from None
    return ImageSet(x, np.array([f"{p.name}[{i}]" for i in range(len(x))], dtype=object),
                    np.full(len(x), "", dtype=object))
