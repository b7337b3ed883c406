"""scikit-learn transformers over wafer maps, one per feature set.

Each takes a :class:`~wafertk.data.WaferSet`, a list of native-size 2-D maps or an
``(n, H, W)`` stack and returns an ``(n, n_features)`` float32 array, so they drop into a
:class:`~sklearn.pipeline.Pipeline` or :class:`~sklearn.pipeline.FeatureUnion`. Parameters
are stored unchanged by ``__init__`` and checked in ``fit``; ``fit`` learns nothing from the
data (the features are fixed functions of the map) but sets ``n_features_out_`` and
``feature_names_out_``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from wafertk.features import filters as _filters
from wafertk.features import gabor as _gabor
from wafertk.features import local as _local
from wafertk.features import spatial as _spatial
from wafertk.features import wu as _wu
from wafertk.features._common import MapsLike


class _WaferTransformer(TransformerMixin, BaseEstimator):
    """Shared fit/transform plumbing: subclasses define ``_names()`` and ``_compute(X)``."""

    def _names(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _compute(self, X: MapsLike) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X: MapsLike, y=None):
        """Check the parameters and record the output columns (no data is learned).

        Parameters
        ----------
        X : WaferSet, sequence of ndarray of shape (H_i, W_i), or ndarray of shape (n, H, W)
        y : ignored

        Returns
        -------
        self
        """
        names = self._names()
        self.feature_names_out_ = np.asarray(names, dtype=object)
        self.n_features_out_ = len(names)
        return self

    def transform(self, X: MapsLike) -> np.ndarray:
        """Features of each map.

        Parameters
        ----------
        X : WaferSet, sequence of ndarray of shape (H_i, W_i), or ndarray of shape (n, H, W)

        Returns
        -------
        ndarray of shape (n, n_features_out_), float32
        """
        if not hasattr(self, "n_features_out_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit first")
        return self._compute(X).astype(np.float32, copy=False)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output column names, ndarray of str of shape (n_features_out_,)."""
        if not hasattr(self, "feature_names_out_"):
            self.fit(None)
        return self.feature_names_out_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.input_tags.two_d_array = False
        return tags


class GaborFeatures(_WaferTransformer):
    """Gabor-bank statistics of the resized fail channel (:func:`gabor_features`).

    Parameters
    ----------
    frequencies : sequence of float, default (0.05, 0.1, 0.2)
        Cycles per die of the resized grid.
    orientations : int, default 4
    size : int, default 64
        Side of the fail-preserving resize.
    """

    def __init__(self, frequencies: Sequence[float] = _gabor.DEFAULT_FREQUENCIES,
                 orientations: int = _gabor.DEFAULT_ORIENTATIONS,
                 size: int = _gabor.DEFAULT_GABOR_SIZE) -> None:
        self.frequencies = frequencies
        self.orientations = orientations
        self.size = size

    def _names(self):
        return _gabor.gabor_feature_names(self.frequencies, self.orientations)

    def _compute(self, X):
        return _gabor.gabor_features(X, self.frequencies, self.orientations, self.size)


class FilterFeatures(_WaferTransformer):
    """Selected scikit-image filter features of the resized map (:func:`filter_features`).

    Parameters
    ----------
    filters : sequence of str, default ("lbp",)
        Any of ``"sobel"``, ``"lbp"``, ``"ridge"``; the default keeps the best candidate of
        the validation macro-F1 ablation (docs/features.md): each one alone helped, LBP the
        most, and all three together did worse than LBP alone.
    size : int, default 64
    """

    def __init__(self, filters: Sequence[str] = ("lbp",), size: int = 64) -> None:
        self.filters = filters
        self.size = size

    def _names(self):
        return _filters.filter_feature_names(self.filters)

    def _compute(self, X):
        return _filters.filter_features(X, self.filters, self.size)


class DensityFeatures(_WaferTransformer):
    """Fail density in 13 regions (:func:`density_features`).

    Parameters
    ----------
    edge_radius : float, default 0.8
        Normalised radius where the edge ring starts.
    """

    def __init__(self, edge_radius: float = _wu.EDGE_RADIUS) -> None:
        self.edge_radius = edge_radius

    def _names(self):
        return list(_wu.DENSITY_FEATURE_NAMES)

    def _compute(self, X):
        return _wu.density_features(X, self.edge_radius)


class RadonFeatures(_WaferTransformer):
    """Radon profile means and stds (:func:`radon_features`).

    Parameters
    ----------
    n_points : int, default 20
    n_angles : int, default 60
    """

    def __init__(self, n_points: int = _wu.RADON_POINTS, n_angles: int = _wu.RADON_ANGLES
                 ) -> None:
        self.n_points = n_points
        self.n_angles = n_angles

    def _names(self):
        return _wu.radon_feature_names(int(self.n_points))

    def _compute(self, X):
        return _wu.radon_features(X, int(self.n_points), int(self.n_angles))


class GeometryFeatures(_WaferTransformer):
    """Geometry of the most salient fail region (:func:`geometry_features`).

    Parameters
    ----------
    median_size : int, default 3
    """

    def __init__(self, median_size: int = 3) -> None:
        self.median_size = median_size

    def _names(self):
        return list(_wu.GEOMETRY_FEATURE_NAMES)

    def _compute(self, X):
        return _wu.geometry_features(X, int(self.median_size))


class SpatialFeatures(_WaferTransformer):
    """Rotation-invariant spatial statistics of the fail dies (:func:`spatial_features`):
    sector extrema per ring, neighbour clustering, raw fail regions, straight lines."""

    def _names(self):
        return list(_spatial.SPATIAL_FEATURE_NAMES)

    def _compute(self, X):
        return _spatial.spatial_features(X)


class LocalFeatures(_WaferTransformer):
    """Short straight fail segments and the centre fail cluster (:func:`local_features`)."""

    def _names(self):
        return list(_local.LOCAL_FEATURE_NAMES)

    def _compute(self, X):
        return _local.local_features(X)


class MetaFeatures(_WaferTransformer):
    """Die-metadata vector (:func:`wafertk.data.preprocess.die_metadata`), as the CNN uses."""

    def _names(self):
        from wafertk.data.preprocess import META_FEATURE_NAMES

        return [f"meta_{n}" for n in META_FEATURE_NAMES]

    def _compute(self, X):
        from wafertk.data.preprocess import die_metadata
        from wafertk.data.waferset import WaferSet
        from wafertk.features._common import as_map_list

        return die_metadata(X if isinstance(X, WaferSet) else as_map_list(X))
