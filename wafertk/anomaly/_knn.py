"""The k-nearest-neighbour scoring shared by ``features-knn`` and ``pretrained-knn``."""

from __future__ import annotations

import numbers

import numpy as np

from wafertk.anomaly.evaluation import binary_labels, choose_threshold, validation_threshold
from wafertk.errors import WafertkError


class KNNScoringMixin:
    """Mean distance to the ``k`` nearest rows of ``reference_`` (higher = more anomalous).

    The class using it sets ``reference_`` (the fitted rows), ``k``, ``contamination`` and
    ``threshold_method``, and defines ``score_samples(X, batch_size)``.
    """

    def _check_k(self) -> None:
        """``k`` is a positive integer (a bool is not), else a :class:`WafertkError`."""
        if not isinstance(self.k, numbers.Integral) or isinstance(self.k, bool) or self.k < 1:
            raise WafertkError(f"k must be a positive integer, got {self.k!r}")

    def _index(self) -> None:
        from sklearn.neighbors import NearestNeighbors

        k = min(int(self.k) + 1, len(self.reference_))
        self.nn_ = NearestNeighbors(n_neighbors=k).fit(self.reference_)

    def _score_array(self, z, batch_size: int = 4096, *, loo: bool = False) -> np.ndarray:
        """Scores of rows ``z`` in the reference space; ``loo``: of the reference rows
        themselves, each without itself (leave-one-out)."""
        z = np.asarray(z, np.float32)
        k = min(int(self.k), len(self.reference_) - (1 if loo else 0))
        out = np.empty(len(z), np.float64)
        for s in range(0, len(z), max(1, int(batch_size))):
            d, _ = self.nn_.kneighbors(z[s:s + batch_size], n_neighbors=k + (1 if loo else 0))
            out[s:s + batch_size] = d[:, 1:].mean(axis=1) if loo else d.mean(axis=1)
        return out

    def _fit_threshold(self, X_val=None, y_val=None) -> None:
        """``threshold_`` from the validation samples (``threshold_method``; the quantile
        without both classes), else the ``contamination`` quantile of the reference rows'
        leave-one-out scores."""
        if X_val is not None and len(X_val):
            s = self.score_samples(X_val)
            yv = None if y_val is None else binary_labels(y_val, len(s), "y_val")
            self.threshold_ = validation_threshold(s, yv, contamination=self.contamination,
                                                   method=self.threshold_method)
        else:
            self.threshold_ = choose_threshold(self._score_array(self.reference_, loo=True),
                                               contamination=self.contamination)

    def decision_function(self, X, batch_size: int = 4096) -> np.ndarray:
        """``score_samples(X) - threshold_``: positive = anomalous."""
        return self.score_samples(X, batch_size) - self.threshold_

    def predict(self, X, batch_size: int = 4096) -> np.ndarray:
        """1 for anomalous (score >= ``threshold_``), 0 for normal."""
        return (self.score_samples(X, batch_size) >= self.threshold_).astype(np.int64)
