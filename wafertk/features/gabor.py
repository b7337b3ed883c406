"""Gabor filter bank features on the resized fail channel.

Each map is resized to ``size x size`` with the fail-preserving resize
(:func:`wafertk.data.preprocess.resize_maps`); its fail channel (``map == 2`` as float) is
filtered by a bank of complex Gabor filters (``frequencies x orientations``), and each response
magnitude ``|real + i imag|`` is summarised by :data:`GABOR_STATS`.

Two implementations give the same responses (``tests/features/test_feature_gabor.py``):
:func:`gabor_responses_reference` calls :func:`skimage.filters.gabor`, which rebuilds the
kernel and convolves directly on every call (very slow for the 69x69 kernel at 0.05
cycles/die); :func:`gabor_responses` builds the same kernels once with
:func:`cv2.getGaborKernel` and filters with :func:`cv2.filter2D`. Against the best
straightforward scikit-image code (kernels from ``skimage.filters.gabor_kernel`` built once,
``scipy.signal.fftconvolve``; :mod:`wafertk.features.reference`) the OpenCV path is about
2-3x faster, not more (``benchmarks/results/features.json``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from wafertk.errors import WafertkError
from wafertk.features._common import MapsLike, resized_fail_channel

DEFAULT_FREQUENCIES: tuple[float, ...] = (0.05, 0.1, 0.2)
DEFAULT_ORIENTATIONS = 4
DEFAULT_GABOR_SIZE = 64
#: Statistics of each response magnitude, in column order.
GABOR_STATS: tuple[str, ...] = ("mean", "std", "max", "energy")


def _check_bank(frequencies: Sequence[float], orientations: int) -> tuple[tuple[float, ...], int]:
    freqs = tuple(float(f) for f in frequencies)
    if not freqs or any(not (0 < f <= 0.5) for f in freqs):
        raise WafertkError(f"Gabor frequencies must be in (0, 0.5] cycles/die, got {freqs}")
    if int(orientations) < 1:
        raise WafertkError(f"Gabor orientations must be at least 1, got {orientations}")
    return freqs, int(orientations)


def _sigma(frequency: float, bandwidth: float = 1.0) -> float:
    # skimage.filters._gabor._sigma_prefactor(bandwidth) / frequency
    b = 2.0**bandwidth
    return 1.0 / np.pi * np.sqrt(np.log(2) / 2.0) * (b + 1) / (b - 1) / frequency


@lru_cache(maxsize=64)
def _cv_kernels(frequency: float, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary kernels equal to ``skimage.filters.gabor_kernel`` (n_stds=3)."""
    import cv2

    s = _sigma(frequency)
    ct, st = math.cos(theta), math.sin(theta)
    x0 = math.ceil(max(abs(3 * s * ct), abs(3 * s * st), 1))
    y0 = math.ceil(max(abs(3 * s * st), abs(3 * s * ct), 1))
    size = (2 * x0 + 1, 2 * y0 + 1)
    norm = 1.0 / (2 * np.pi * s * s)
    # OpenCV's kernel is skimage's flipped on both axes; filter2D (a correlation) with the
    # flipped kernel is the convolution skimage computes.
    real = cv2.getGaborKernel(size, s, theta, 1.0 / frequency, 1.0, 0.0, ktype=cv2.CV_64F)
    imag = cv2.getGaborKernel(size, s, theta, 1.0 / frequency, 1.0, -np.pi / 2, ktype=cv2.CV_64F)
    return (real * norm).astype(np.float32), (imag * norm).astype(np.float32)


def _thetas(orientations: int) -> list[float]:
    return [np.pi * k / orientations for k in range(orientations)]


def gabor_responses(image: np.ndarray, frequencies: Sequence[float] = DEFAULT_FREQUENCIES,
                    orientations: int = DEFAULT_ORIENTATIONS) -> np.ndarray:
    """Gabor response magnitudes of one image (OpenCV fast path).

    Parameters
    ----------
    image : ndarray of shape (H, W), float
        Typically the fail channel of a resized map.
    frequencies : sequence of float
        Spatial frequencies in cycles per die.
    orientations : int
        Number of orientations, evenly spaced in [0, pi).

    Returns
    -------
    ndarray of shape (len(frequencies) * orientations, H, W), float32
        ``|real + i imag|`` per filter, frequency-major order; borders reflected as in
        :func:`skimage.filters.gabor` (``mode="reflect"``).
    """
    import cv2

    freqs, n_or = _check_bank(frequencies, orientations)
    img = np.ascontiguousarray(image, dtype=np.float32)
    out = np.empty((len(freqs) * n_or, *img.shape), np.float32)
    k = 0
    for f in freqs:
        for t in _thetas(n_or):
            kr, ki = _cv_kernels(f, t)
            re = cv2.filter2D(img, cv2.CV_32F, kr, borderType=cv2.BORDER_REFLECT)
            im = cv2.filter2D(img, cv2.CV_32F, ki, borderType=cv2.BORDER_REFLECT)
            out[k] = np.sqrt(re * re + im * im)
            k += 1
    return out


def gabor_responses_reference(image: np.ndarray,
                              frequencies: Sequence[float] = DEFAULT_FREQUENCIES,
                              orientations: int = DEFAULT_ORIENTATIONS) -> np.ndarray:
    """Same as :func:`gabor_responses` through :func:`skimage.filters.gabor` (slow reference)."""
    from skimage.filters import gabor

    freqs, n_or = _check_bank(frequencies, orientations)
    img = np.asarray(image, dtype=np.float64)
    out = []
    for f in freqs:
        for t in _thetas(n_or):
            re, im = gabor(img, frequency=f, theta=t, mode="reflect")
            out.append(np.hypot(re, im))
    return np.asarray(out, dtype=np.float32)


def _stats(resp: np.ndarray) -> np.ndarray:
    flat = resp.reshape(len(resp), -1).astype(np.float64)
    mean = flat.mean(axis=1)
    return np.stack([mean, flat.std(axis=1), flat.max(axis=1), (flat * flat).mean(axis=1)],
                    axis=1).reshape(-1)


def gabor_feature_names(frequencies: Sequence[float] = DEFAULT_FREQUENCIES,
                        orientations: int = DEFAULT_ORIENTATIONS) -> list[str]:
    """Column names of :func:`gabor_features`: ``gabor_f{freq}_o{deg}_{stat}``."""
    freqs, n_or = _check_bank(frequencies, orientations)
    return [f"gabor_f{f:g}_o{round(np.degrees(t)):d}_{s}"
            for f in freqs for t in _thetas(n_or) for s in GABOR_STATS]


def gabor_features(maps: MapsLike, frequencies: Sequence[float] = DEFAULT_FREQUENCIES,
                   orientations: int = DEFAULT_ORIENTATIONS, size: int = DEFAULT_GABOR_SIZE,
                   *, reference: bool = False) -> np.ndarray:
    """Gabor-bank statistics of the resized fail channel.

    Parameters
    ----------
    maps : WaferSet, sequence of ndarray of shape (H_i, W_i), or ndarray of shape (n, S, S)
        Native maps (resized here to ``size``) or an already resized stack.
    frequencies : sequence of float, default (0.05, 0.1, 0.2)
        Cycles per die of the resized grid.
    orientations : int, default 4
        Orientations evenly spaced in [0, pi).
    size : int, default 64
        Side of the resized grid.
    reference : bool, default False
        Use :func:`skimage.filters.gabor` instead of OpenCV (same values, much slower: it
        rebuilds each kernel and convolves directly; for a fair reference see
        :func:`wafertk.features.reference.gabor_features_ref`).

    Returns
    -------
    ndarray of shape (n, len(frequencies) * orientations * 4), float32
        Per filter: mean, std, max and energy (mean square) of the magnitude. A map without
        fail dies gives zeros.
    """
    freqs, n_or = _check_bank(frequencies, orientations)
    chan = resized_fail_channel(maps, int(size))
    fn = gabor_responses_reference if reference else gabor_responses
    out = np.zeros((len(chan), len(freqs) * n_or * len(GABOR_STATS)), np.float32)
    for i, img in enumerate(chan):
        if img.any():
            out[i] = _stats(fn(img, freqs, n_or))
    return out
