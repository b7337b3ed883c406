"""The XGBoost baseline: wafer-map features + gradient-boosted trees."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from wafertk.data.waferset import WM811K_CLASSES, WaferSet
from wafertk.errors import ModelFileError, WafertkError
from wafertk.features._common import MapsLike

log = logging.getLogger(__name__)

KIND = "xgboost-classifier"
#: Feature sets of the baseline by default: the best of the validation ablation
#: (benchmarks/results/xgboost.json); Gabor features did not help and are left out.
DEFAULT_XGB_SETS: tuple[str, ...] = ("filters", "density", "radon", "geometry", "meta")
MODEL_FILE = "model.json"


def _xgb():
    try:
        import xgboost
    except ImportError as exc:  # pragma: no cover - dependency declared in pyproject
        raise WafertkError("the XGBoost baseline needs the xgboost package "
                           "(pip install xgboost-cpu)") from exc
    return xgboost


class XGBoostWaferClassifier(ClassifierMixin, BaseEstimator):
    """Wafer-pattern classifier: feature sets (:mod:`wafertk.features`) + XGBoost.

    Parameters
    ----------
    feature_sets : sequence of str, optional
        Names from :data:`wafertk.features.FEATURE_SETS` (default :data:`DEFAULT_XGB_SETS`:
        filters, density, radon, geometry, meta).
    feature_params : dict of str to dict, optional
        Constructor keywords per feature set.
    classes : sequence of str, optional
        Output classes in order; default the classes present in the training labels, in
        WM-811K order. Wafers with another label are dropped from training.
    n_estimators : int, default 600
        Maximum boosting rounds.
    max_depth : int, default 6
    learning_rate : float, default 0.1
    subsample : float, default 0.9
    colsample_bytree : float, default 0.8
    min_child_weight : float, default 1.0
    reg_lambda : float, default 1.0
    early_stopping_rounds : int or None, default 40
        Stop when the class-weighted validation log-loss (the last eval metric) has not
        improved for this many rounds (needs ``eval_set``).
    class_weight : "balanced" or None, default "balanced"
        Weight samples by ``n / (k * count(class))``.
    n_jobs : int, default 2
        Threads for XGBoost and processes for feature extraction.
    random_state : int, default 0

    Attributes
    ----------
    classes_ : ndarray of str, shape (n_classes,)
    feature_names_ : list of str
    booster_ : xgboost.Booster
    best_iteration_ : int
    evals_result_ : dict
    manifest : wafertk.models.Manifest or None
        Set by :meth:`save` and :meth:`load`.

    Examples
    --------
    >>> from wafertk.data.synthetic import make_wafers
    >>> ws = make_wafers(80, random_state=0)
    >>> clf = XGBoostWaferClassifier(feature_sets=["density"], n_estimators=5).fit(ws)
    >>> clf.predict_proba(ws).shape
    (80, 9)
    """

    def __init__(self, *, feature_sets: Sequence[str] | None = None,
                 feature_params: dict[str, dict] | None = None,
                 classes: Sequence[str] | None = None, n_estimators: int = 600,
                 max_depth: int = 6, learning_rate: float = 0.1, subsample: float = 0.9,
                 colsample_bytree: float = 0.8, min_child_weight: float = 1.0,
                 reg_lambda: float = 1.0, early_stopping_rounds: int | None = 40,
                 class_weight: str | None = "balanced", n_jobs: int = 2,
                 random_state: int = 0) -> None:
        self.feature_sets = feature_sets
        self.feature_params = feature_params
        self.classes = classes
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ features
    def _sets(self) -> list[str]:
        from wafertk.features import parse_sets

        return parse_sets(DEFAULT_XGB_SETS if self.feature_sets is None else self.feature_sets)

    def transform_features(self, ws: MapsLike) -> np.ndarray:
        """Feature matrix of ``ws``: ndarray of shape (n, len(feature_names_)), float32."""
        from wafertk.features import extract_features

        return extract_features(ws, self._sets(), n_jobs=self.n_jobs,
                                params=self.feature_params)

    # ------------------------------------------------------------------ fit
    def _xgb_params(self, n_classes: int) -> dict[str, Any]:
        return {"objective": "multi:softprob", "num_class": n_classes, "tree_method": "hist",
                "max_depth": int(self.max_depth), "eta": float(self.learning_rate),
                "subsample": float(self.subsample),
                "colsample_bytree": float(self.colsample_bytree),
                "min_child_weight": float(self.min_child_weight),
                "lambda": float(self.reg_lambda), "eval_metric": ["merror", "mlogloss"],
                "nthread": int(self.n_jobs) if self.n_jobs and self.n_jobs > 0 else 0,
                "seed": int(self.random_state)}

    def _class_list(self, labels: np.ndarray) -> list[str]:
        if self.classes is not None:
            classes = [str(c) for c in self.classes]
            if len(set(classes)) != len(classes) or len(classes) < 2:
                raise WafertkError(f"classes must be at least two distinct names: {classes}")
            return classes
        present = set(labels.tolist()) - {""}
        order = [c for c in WM811K_CLASSES if c in present]
        order += sorted(present - set(order))
        if len(order) < 2:
            raise WafertkError(f"need at least two classes to train, found {order}")
        return order

    def fit(self, ws: WaferSet, y=None, *, eval_set: WaferSet | None = None
            ) -> XGBoostWaferClassifier:
        """Extract features and train.

        Parameters
        ----------
        ws : WaferSet
            Labeled training wafers (unlabeled wafers and other classes are dropped).
        y : array-like of str, shape (n,), optional
            Labels overriding ``ws.labels``.
        eval_set : WaferSet, optional
            Labeled validation wafers for early stopping.

        Returns
        -------
        self
        """
        labels = (ws.label_strings() if y is None else np.asarray(y, dtype=object)).astype(str)
        classes = self._class_list(labels)
        keep = np.isin(labels, classes)
        if not keep.any():
            raise WafertkError("no labeled training wafer among the classes "
                               f"{', '.join(classes)}")
        if not keep.all():
            log.info("dropping %d wafers outside the classes", int((~keep).sum()))
        train = ws.take(keep) if isinstance(ws, WaferSet) else [m for m, k in
                                                                zip(ws, keep, strict=True) if k]
        X = self.transform_features(train)
        Xv = yv = None
        if eval_set is not None:
            lv = eval_set.label_strings().astype(str)
            kv = np.isin(lv, classes)
            if kv.any():
                Xv = self.transform_features(eval_set.take(kv))
                yv = lv[kv]
        return self.fit_features(X, labels[keep], eval_set=None if Xv is None else (Xv, yv),
                                 classes=classes)

    def fit_features(self, X: np.ndarray, y, *, eval_set: tuple | None = None,
                     classes: Sequence[str] | None = None) -> XGBoostWaferClassifier:
        """Train on an already extracted feature matrix (used by :meth:`fit` and ablations).

        Parameters
        ----------
        X : ndarray of shape (n, n_features)
            Columns as :func:`wafertk.features.feature_names` of the feature sets.
        y : array-like of str, shape (n,)
        eval_set : (ndarray of shape (m, n_features), array-like of str (m,)), optional
        classes : sequence of str, optional
            Output classes (default from ``self.classes`` or ``y``).

        Returns
        -------
        self
        """
        from wafertk.features import feature_names

        xgb = _xgb()
        y = np.asarray(y).astype(str)
        classes = list(classes) if classes is not None else self._class_list(y)
        names = feature_names(self._sets(), self.feature_params)
        X = np.asarray(X, dtype=np.float32)
        if X.shape != (len(y), len(names)):
            raise WafertkError(f"feature matrix has shape {X.shape}, expected "
                               f"({len(y)}, {len(names)})")
        lookup = {c: i for i, c in enumerate(classes)}
        codes = np.array([lookup[c] for c in y], dtype=np.int64)
        w = None
        if self.class_weight == "balanced":
            counts = np.bincount(codes, minlength=len(classes)).astype(np.float64)
            cw = np.where(counts > 0, len(codes) / (np.count_nonzero(counts)
                                                    * np.maximum(counts, 1)), 0.0)
            w = cw[codes]
        elif self.class_weight is not None:
            raise WafertkError(f"class_weight must be 'balanced' or None, got "
                               f"{self.class_weight!r}")
        dtrain = xgb.DMatrix(X, label=codes, weight=w, feature_names=names)
        evals = [(dtrain, "train")]
        es = None
        if eval_set is not None:
            Xv, yv = eval_set
            yv = np.asarray(yv).astype(str)
            cv = np.array([lookup[c] for c in yv], dtype=np.int64)
            wv = None if w is None else cw[cv]
            evals.append((xgb.DMatrix(np.asarray(Xv, np.float32), label=cv, weight=wv,
                                      feature_names=names), "validation"))
            es = self.early_stopping_rounds
        self.evals_result_: dict = {}
        booster = xgb.train(self._xgb_params(len(classes)), dtrain,
                            num_boost_round=int(self.n_estimators), evals=evals,
                            early_stopping_rounds=es, evals_result=self.evals_result_,
                            verbose_eval=False)
        self.booster_ = booster
        self.best_iteration_ = int(getattr(booster, "best_iteration", booster.num_boosted_rounds()
                                           - 1) if es else booster.num_boosted_rounds() - 1)
        self.classes_ = np.asarray(classes, dtype=object)
        self.feature_names_ = names
        self.n_features_in_ = len(names)
        self.manifest = None
        return self

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("XGBoostWaferClassifier is not fitted yet; call fit or load")

    def predict_proba_features(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of a feature matrix: ndarray of shape (n, n_classes), float64."""
        self._check_fitted()
        xgb = _xgb()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names_):
            raise WafertkError(f"feature matrix has shape {X.shape}, expected (n, "
                               f"{len(self.feature_names_)})")
        if len(X) == 0:
            return np.zeros((0, len(self.classes_)))
        d = xgb.DMatrix(X, feature_names=self.feature_names_)
        p = self.booster_.predict(d, iteration_range=(0, self.best_iteration_ + 1))
        return np.asarray(p, dtype=np.float64).reshape(len(X), len(self.classes_))

    def predict_proba(self, ws: MapsLike) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        ws : WaferSet, sequence of ndarray of shape (H_i, W_i), or ndarray of shape (n, H, W)

        Returns
        -------
        ndarray of shape (n, len(classes_)), float64
            Rows sum to 1; columns in ``classes_`` order.
        """
        self._check_fitted()
        if len(ws) == 0:
            return np.zeros((0, len(self.classes_)))
        return self.predict_proba_features(self.transform_features(ws))

    def predict(self, ws: MapsLike) -> np.ndarray:
        """Most likely class of each wafer: ndarray of str, shape (n,)."""
        p = self.predict_proba(ws)
        return np.asarray(self.classes_, dtype=object)[p.argmax(axis=1)]

    # ------------------------------------------------------------------ save / load
    def save(self, folder: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> Path:
        """Write ``model.json`` (XGBoost JSON) and ``manifest.json`` into ``folder``.

        Parameters
        ----------
        folder : str or os.PathLike
            Created if missing; each file is written atomically.
        extra : dict, optional
            Added to the manifest's ``extra`` (e.g. validation figures).

        Returns
        -------
        pathlib.Path
            ``folder``.
        """
        from wafertk._atomic import atomic_path
        from wafertk.models.manifest import Manifest, package_versions, write_manifest

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / MODEL_FILE) as tmp:
            # XGBoost picks the format from the extension
            tmp_json = tmp.with_name(tmp.name + ".json")
            self.booster_.save_model(str(tmp_json))
            tmp_json.replace(tmp)
        params = {k: v for k, v in self.get_params().items()}
        params = json.loads(json.dumps(params, default=list))
        versions = package_versions("xgboost-cpu", "xgboost", "scikit-learn", "scikit-image",
                                    "opencv-python-headless")
        versions["xgboost"] = str(_xgb().__version__)
        man = Manifest(
            kind=KIND, model_file=MODEL_FILE, classes=[str(c) for c in self.classes_],
            input_size=None,
            preprocessing={"feature_sets": self._sets(),
                           "feature_params": params["feature_params"] or {},
                           "feature_names": list(self.feature_names_)},
            extra={"best_iteration": self.best_iteration_, "params": params, **(extra or {})},
            versions=versions,
        )
        write_manifest(folder, man)
        self.manifest = man
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, manifest=None) -> XGBoostWaferClassifier:
        """Load a model saved by :meth:`save`.

        Parameters
        ----------
        folder : str or os.PathLike
        manifest : wafertk.models.Manifest, optional
            Already read manifest (read and checked here otherwise).

        Raises
        ------
        ModelFileError
            Missing folder or files, a model of another kind, a corrupt ``model.json``, or a
            model that disagrees with its manifest.
        """
        from wafertk.models.manifest import load_manifest

        folder = Path(folder)
        if manifest is None:
            manifest = load_manifest(folder, KIND)
        elif manifest.kind != KIND:
            raise ModelFileError(folder, f"model of the wrong kind: {manifest.kind!r}, "
                                 f"expected {KIND!r}")
        xgb = _xgb()
        pre = manifest.preprocessing or {}
        extra = manifest.extra or {}
        params = dict(extra.get("params") or {})
        try:
            valid = {k: params[k] for k in cls._get_param_names() if k in params}
            valid["feature_sets"] = list(pre["feature_sets"])
            valid["feature_params"] = pre.get("feature_params") or None
            valid["classes"] = list(manifest.classes)
            clf = cls(**valid)
            names = list(pre["feature_names"])
        except (KeyError, TypeError) as exc:
            raise ModelFileError(folder, f"manifest lacks the feature description ({exc})"
                                 ) from None
        booster = xgb.Booster()
        try:
            booster.load_model(str(folder / manifest.model_file))
        except xgb.core.XGBoostError:
            raise ModelFileError(folder / manifest.model_file,
                                 "corrupt model file (not an XGBoost model)") from None
        n_feat = booster.num_features()
        if n_feat != len(names):
            raise ModelFileError(folder, f"model expects {n_feat} features but the manifest "
                                 f"names {len(names)}")
        from wafertk.features import feature_names

        try:
            expected = feature_names(clf._sets(), clf.feature_params)
        except WafertkError as exc:
            raise ModelFileError(folder, f"manifest feature sets unusable: {exc}") from None
        if expected != names:
            raise ModelFileError(folder, "the manifest's feature names do not match what its "
                                 "feature sets compute (saved by another wafertk version?)")
        clf.booster_ = booster
        clf.classes_ = np.asarray(manifest.classes, dtype=object)
        clf.feature_names_ = names
        clf.n_features_in_ = len(names)
        clf.best_iteration_ = int(extra.get("best_iteration", booster.num_boosted_rounds() - 1))
        clf.evals_result_ = {}
        clf.manifest = manifest
        return clf
