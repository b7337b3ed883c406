"""Anomaly detectors as scikit-learn-like estimators over Keras 3 networks.

Every detector takes its parameters as keywords in ``__init__`` (stored unchanged, so
:func:`sklearn.base.clone` and ``get_params`` work), does its work in :meth:`fit`, and keeps
what it learnt in attributes ending in ``_``. Scores follow one convention: **higher = more
anomalous** (note: scikit-learn's own outlier detectors use the opposite sign in
``score_samples``), for :meth:`~BaseDeepDetector.score_samples` and
:meth:`~BaseDeepDetector.decision_function` (score minus ``threshold_``: positive =
anomalous); :meth:`~BaseDeepDetector.predict` gives 1 for anomalous, 0 for normal.

* :class:`VAEDetector` (``vae``): convolutional VAE, L2 reconstruction + KL;
* :class:`OneClassVAEDetector` (``ocvae``): VAE + weighted distance of the latent mean to a
  centre moved to the latent barycentre at each epoch end;
* :class:`DeepSVDDDetector` (``deep-svdd``, ``deep-svdd-soft``): Deep SVDD (Ruff et al.
  2018), one-class or soft-boundary;
* :class:`TransformDetector` (``rotation``): transform prediction (Golan & El-Yaniv 2018):
  rotations, flips, translations;
* :class:`LatentHybridDetector` (API only): a fitted detector's latent features ->
  IsolationForest or one-class SVM.

Inputs: a :class:`~wafertk.data.WaferSet` (resized to ``input_size`` and one-hot encoded like
the CNNs' input) or an image array of shape (n, H, W, C) (uint8 0-255 or float in [0, 1]).

Training is a plain loop over mini-batches (:meth:`BaseDeepDetector._run_epochs`) so that every
loss term is logged with its gradient norm on the last layer all terms go through; that loop's
gradient step is the only TensorFlow-specific code (``tf.GradientTape``), the networks are
``keras.ops`` only. No global seed is set: ``random_state`` seeds the initialisers, the
sampling noise, the batch order and the transforms.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Callable, Sequence
from itertools import product
from typing import Any

import keras
import numpy as np
from keras import ops
from sklearn.base import BaseEstimator, clone

from wafertk.anomaly import ANOMALY_KIND, networks
from wafertk.anomaly.data import (
    NO_DIE_ONE_HOT,
    as_images,
    global_contrast_normalization,
    wafer_inputs,
)
from wafertk.anomaly.evaluation import binary_labels, choose_threshold, validation_threshold
from wafertk.anomaly.features_knn import FeatureKNNDetector
from wafertk.anomaly.pretrained_knn import PretrainedKNNDetector
from wafertk.data.waferset import WaferSet
from wafertk.errors import WafertkError

log = logging.getLogger(__name__)

#: Per-term gradient norms (one extra backward pass per loss term) are measured on every
#: NORM_EVERY-th training batch; the other batches take the plain gradient step.
NORM_EVERY = 10


_FORWARD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _forward(model):
    """``model(x, training=False)`` compiled once per model (``tf.function``: about twice as
    fast as eager calls on CPU; the weights are read at each call, so it follows training)."""
    fn = _FORWARD.get(model)
    if fn is None:
        import tensorflow as tf

        ref = weakref.ref(model)  # the cache must not keep the model alive

        @tf.function(reduce_retracing=True)
        def fn(x):
            return ref()(x, training=False)

        _FORWARD[model] = fn
    return fn


def predict_outputs(model, x: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """A dict-output model's outputs on ``x`` in batches, in inference mode."""
    parts: dict[str, list[np.ndarray]] = {}
    forward = _forward(model)
    for s in range(0, len(x), batch_size):
        out = forward(np.ascontiguousarray(x[s:s + batch_size]))
        for k, v in out.items():
            parts.setdefault(k, []).append(np.asarray(v))
    if not parts:  # no samples: shapes from the model's outputs
        return {k: np.zeros((0, *t.shape[1:]), np.float32)
                for k, t in model.output.items()}
    return {k: np.concatenate(v) for k, v in parts.items()}


class LatentCentreCallback(keras.callbacks.Callback):
    """Move a latent centre to the barycentre of the latent means, at the start of training
    and at each epoch end (the one-class VAE's centre).

    Parameters
    ----------
    x : ndarray
        The training inputs.
    layer : str, default "centre"
        Name of the model's :class:`~wafertk.anomaly.networks.LatentCentre` layer.
    output : str, default "z_mean"
        The model output whose mean is the new centre.
    batch_size : int, default 256

    Attributes
    ----------
    shifts : list of float
        How far the centre moved at each update.
    """

    def __init__(self, x: np.ndarray, *, layer: str = "centre", output: str = "z_mean",
                 batch_size: int = 256) -> None:
        super().__init__()
        self.x, self.layer, self.output, self.batch_size = x, layer, output, batch_size
        self.shifts: list[float] = []

    def update(self) -> float:
        """Set the centre to the current barycentre; returns the distance it moved."""
        z = predict_outputs(self.model, self.x, self.batch_size)[self.output]
        var = self.model.get_layer(self.layer).centre
        new = z.mean(axis=0)
        shift = float(np.linalg.norm(new - np.asarray(var)))
        var.assign(new)
        self.shifts.append(shift)
        return shift

    def on_train_begin(self, logs=None):
        self.update()

    def on_epoch_end(self, epoch, logs=None):
        shift = self.update()
        if logs is not None:
            logs["centre_shift"] = shift


class BaseDeepDetector(BaseEstimator):
    """Common machinery of the deep detectors (not used directly).

    Subclasses set ``name`` and implement ``_build``, ``_loss_terms``, ``_probe``,
    ``_score_array`` and ``_latent`` (and ``_state``/``_set_state`` for what the manifest
    keeps beyond the network).
    """

    name = ""

    # ------------------------------------------------------------------ inputs
    def _inputs(self, X, *, fitting: bool = False, check: bool = True) -> np.ndarray:
        if isinstance(X, WaferSet):
            kind, x = "wafers", wafer_inputs(X, self.input_size)
        else:
            x = np.asarray(X)
            if x.ndim == 3 and x.dtype.kind in "iu" and x.size and x.max() <= 2 \
                    and x.shape[1] == x.shape[2] and not fitting \
                    and getattr(self, "input_kind_", None) == "wafers":
                from wafertk.data.preprocess import one_hot

                kind, x = "wafers", one_hot(x.astype(np.uint8))  # resized maps
            else:
                kind, x = "images", as_images(x)
        if kind == "images" and self.gcn:
            x = global_contrast_normalization(x)
            if fitting:
                self.gcn_range_ = [float(x.min()), float(x.max())]
            lo, hi = self.gcn_range_
            x = (x - lo) / (hi - lo if hi > lo else 1.0)
        if fitting:
            self.input_kind_ = kind
            self.input_shape_ = [int(s) for s in x.shape[1:]]
        else:
            if check:
                self._check_fitted()
            if kind != self.input_kind_ or list(x.shape[1:]) != self.input_shape_:
                raise WafertkError(f"inputs are {kind} of shape {tuple(x.shape[1:])}; the "
                                   f"model was trained on {self.input_kind_} of shape "
                                   f"{tuple(self.input_shape_)}")
        return x

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise WafertkError(f"this {type(self).__name__} is not fitted yet: call fit first")

    def _seed(self, offset: int = 0) -> int | None:
        return None if self.random_state is None else int(self.random_state) + offset

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, X_val=None, y_val=None,
            on_epoch: Callable[[str], None] | None = None):
        """Train on normal data.

        Parameters
        ----------
        X : WaferSet or ndarray of shape (n, H, W, C)
            Training samples (all taken as normal unless ``y`` says otherwise).
        y : array-like of shape (n,), optional
            1 = anomalous: those samples are left out of training.
        X_val, y_val : optional
            Validation samples and their labels (1 = anomalous; optional): the validation
            AUC is logged each epoch, the threshold is chosen on them.
        on_epoch : callable, optional
            Called with one summary line per epoch.

        Returns
        -------
        self

        Raises
        ------
        WafertkError
            No normal sample, fewer than 2 samples, NaN or infinite inputs.
        """
        x = self._inputs(X, fitting=True)
        if y is not None:
            t = binary_labels(y, len(x))
            if t.all():
                raise WafertkError("no normal samples to train on: every training sample is "
                                   "labelled anomalous")
            x = x[~t]
        if len(x) < 2:
            raise WafertkError(f"{len(x)} training sample: anomaly detectors need at least 2")
        need = 2 ** len(self.conv_filters)
        if x.shape[1] % need or x.shape[2] % need:
            raise WafertkError(f"inputs of {x.shape[1]}x{x.shape[2]} are not divisible by "
                               f"{need} ({len(self.conv_filters)} pooling blocks): resize them "
                               "(data.image_size) or use fewer conv blocks")
        xv = yv = None
        if X_val is not None:
            xv = self._inputs(X_val, check=False)
            yv = None if y_val is None else binary_labels(y_val, len(xv), "y_val")
        self._rng = np.random.default_rng(self.random_state)
        self.history_ = {}
        t0 = time.perf_counter()
        self._fit(x, xv, yv, on_epoch)
        self.fit_seconds_ = time.perf_counter() - t0
        self._set_threshold(x, xv, yv)
        return self

    def _set_threshold(self, x, xv, yv) -> None:
        if xv is not None and len(xv):
            self.threshold_ = validation_threshold(self._score_array(xv), yv,
                                                   contamination=self.contamination,
                                                   method=self.threshold_method)
        else:
            self.threshold_ = choose_threshold(self._score_array(x),
                                               contamination=self.contamination)

    def _fit(self, x, xv, yv, on_epoch) -> None:
        self.model_ = self._build(tuple(x.shape[1:]))
        self._train(x, xv, yv, on_epoch)

    def _train(self, x, xv, yv, on_epoch, *, epochs: int | None = None,
               callbacks: Sequence[keras.callbacks.Callback] = (), tag: str = "") -> None:
        self._run_epochs(
            n_items=self._n_items(x), make_batch=lambda idx: self._batch(x, idx),
            loss_terms=self._loss_terms, variables=self.model_.trainable_variables,
            probe=self._probe(), epochs=self.epochs if epochs is None else epochs,
            xv=xv, yv=yv, on_epoch=on_epoch, callbacks=callbacks, tag=tag,
            epoch_end=lambda: self._epoch_end(x))

    def _n_items(self, x) -> int:
        return len(x)

    def _batch(self, x, idx) -> tuple[np.ndarray, ...]:
        return (x[idx],)

    def _epoch_end(self, x) -> dict[str, float]:
        return {}

    def _trim_mask(self, per_sample):
        """Weights 1 for the samples of a batch that count, 0 for the ``trim_fraction`` of
        them with the highest loss (a robust objective for training data holding anomalies),
        or None without trimming."""
        if not self.trim_fraction:
            return None
        if not 0 <= self.trim_fraction < 1:
            raise WafertkError(f"trim_fraction must be in [0, 1), got {self.trim_fraction}")
        per_sample = ops.stop_gradient(per_sample)
        n = ops.shape(per_sample)[0]
        k = ops.maximum(ops.cast(ops.ceil((1.0 - self.trim_fraction)
                                          * ops.cast(n, "float32")), "int32"), 1)
        kth = ops.take(ops.sort(per_sample), k - 1)
        return ops.cast(per_sample <= kth, "float32")

    @staticmethod
    def _mean(v, mask):
        if mask is None:
            return ops.mean(v)
        return ops.sum(v * mask) / ops.maximum(ops.sum(mask), 1.0)

    def _weight_decay(self, model) -> Any:
        kernels = [v for v in model.trainable_variables
                   if v.name in ("kernel", "wq", "wk", "wv")]
        return 0.5 * self.weight_decay * ops.sum(
            ops.stack([ops.sum(ops.square(v)) for v in kernels]))

    def _run_epochs(self, *, n_items: int, make_batch, loss_terms, variables, probe,
                    epochs: int, xv=None, yv=None, on_epoch=None, callbacks=(), tag="",
                    epoch_end=None, learning_rate: float | None = None) -> None:
        """The training loop: mini-batches in a seeded order, per-term logs, callbacks.

        ``loss_terms(*batch)`` returns a dict of scalar tensors (each already weighted); their
        sum is minimised. Each epoch logs the mean of every term, the total ``loss``, each
        term's gradient norm on ``probe`` (``grad_norm_<term>``) and, with validation data,
        ``val_score`` (mean validation score of normal samples) and ``val_auc`` /
        ``val_pr_auc`` when the validation labels hold both kinds.
        """
        import tensorflow as tf  # the only backend-specific code: the gradient step

        optimizer = keras.optimizers.Adam(self.learning_rate if learning_rate is None
                                          else learning_rate)
        optimizer.build(variables)

        def make_step(with_norms: bool):
            @tf.function(reduce_retracing=True)
            def step(*batch):
                with tf.GradientTape(persistent=with_norms) as tape:
                    terms = loss_terms(*batch)
                    total = tf.add_n(list(terms.values()))
                grads = tape.gradient(total, variables)
                optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables,
                                                                  strict=True)
                                           if g is not None])
                norms = {}
                if with_norms:
                    for k, t in terms.items():
                        g = tape.gradient(t, probe)
                        norms[f"grad_norm_{k}"] = (tf.norm(g) if g is not None
                                                   else tf.constant(0.0))
                del tape
                return total, terms, norms
            return step

        # the per-term gradient norms cost one backward pass per term: measured on every
        # NORM_EVERY-th batch (and the first), which is plenty for choosing weights
        step_plain, step_norms = make_step(False), make_step(True)

        for cb in callbacks:
            cb.set_model(self.model_)
            cb.on_train_begin()
        bs = max(1, int(self.batch_size))
        prefix = f"{tag}_" if tag else ""
        for epoch in range(int(epochs)):
            t0 = time.perf_counter()
            order = self._rng.permutation(n_items)
            if n_items > bs and n_items % bs == 1:  # no batch of one (BatchNorm)
                order = order[:-1]
            sums: dict[str, float] = {}
            counts: dict[str, int] = {}
            for i, s in enumerate(range(0, len(order), bs)):
                step = step_norms if i % NORM_EVERY == 0 else step_plain
                total, terms, norms = step(*make_batch(order[s:s + bs]))
                for k, v in {"loss": total, **terms, **norms}.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                    counts[k] = counts.get(k, 0) + 1
            logs = {k: v / counts[k] for k, v in sums.items()}
            if epoch_end is not None:
                logs.update(epoch_end())
            if xv is not None and len(xv):
                logs.update(self._validation_logs(xv, yv))
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if not all(math.isfinite(v) for v in logs.values()):
                raise WafertkError(f"training diverged at epoch {epoch + 1} (a loss is NaN or "
                                   "infinite): try a lower learning rate")
            for k, v in logs.items():
                self.history_.setdefault(prefix + k, []).append(float(v))
            self.history_.setdefault(prefix + "seconds", []).append(time.perf_counter() - t0)
            shown = " ".join(f"{k}={v:.4g}" for k, v in logs.items()
                             if not k.startswith("grad_norm"))
            line = (f"{self.name}{' ' + tag if tag else ''} epoch {epoch + 1}/{epochs} "
                    f"{time.perf_counter() - t0:.0f}s {shown}")
            log.info("%s", line)
            if on_epoch is not None:
                on_epoch(line)

    def _validation_logs(self, xv, yv) -> dict[str, float]:
        from sklearn.metrics import average_precision_score, roc_auc_score

        s = self._score_array(xv)
        out = {"val_score": float(s[~yv].mean() if yv is not None and (~yv).any()
                                  else s.mean())}
        if yv is not None and yv.any() and not yv.all() and np.isfinite(s).all():
            out["val_auc"] = float(roc_auc_score(yv, s))
            out["val_pr_auc"] = float(average_precision_score(yv, s))
        return out

    # ------------------------------------------------------------------ scoring
    def score_samples(self, X, batch_size: int = 256) -> np.ndarray:
        """Anomaly score of each sample (higher = more anomalous).

        Parameters
        ----------
        X : WaferSet or ndarray
            Like the training inputs (wafers, or images of the training shape).
        batch_size : int, default 256

        Returns
        -------
        ndarray of shape (n,), float64
        """
        return self._score_array(self._inputs(X), batch_size)

    def decision_function(self, X, batch_size: int = 256) -> np.ndarray:
        """``score_samples(X) - threshold_``: positive = anomalous."""
        return self.score_samples(X, batch_size) - self.threshold_

    def predict(self, X, batch_size: int = 256) -> np.ndarray:
        """1 for anomalous (score >= ``threshold_``), 0 for normal."""
        return (self.score_samples(X, batch_size) >= self.threshold_).astype(np.int64)

    def transform(self, X, batch_size: int = 256) -> np.ndarray:
        """Latent features of each sample (for latent views and hybrid detectors).

        Returns
        -------
        ndarray of shape (n, d), float32
        """
        return self._latent(self._inputs(X), batch_size)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        pass

    def save(self, folder, *, extra: dict | None = None):
        """Write ``model.keras`` and ``manifest.json`` (kind ``anomaly-detector``) into
        ``folder`` (created if missing; each file written atomically).

        Parameters
        ----------
        folder : str or os.PathLike
        extra : dict, optional
            More values for the manifest's ``extra`` (validation figures, data, ...).

        Returns
        -------
        pathlib.Path
            The folder.
        """
        from pathlib import Path

        from wafertk._atomic import atomic_path
        from wafertk.models.manifest import Manifest, package_versions, write_manifest

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "model.keras") as tmp:
            path = tmp.with_suffix(".keras")
            self.model_.save(path)
            path.replace(tmp)
        params = {k: (list(v) if isinstance(v, tuple) else v)
                  for k, v in self.get_params(deep=False).items()}
        state = {"input_kind": self.input_kind_, "input_shape": self.input_shape_,
                 "gcn_range": getattr(self, "gcn_range_", None), **self._state()}
        man = Manifest(
            kind=ANOMALY_KIND, model_file="model.keras", classes=["normal", "anomalous"],
            input_size=self.input_shape_[0] if self.input_kind_ == "wafers" else None,
            preprocessing={"input": self.input_kind_, "input_shape": self.input_shape_,
                           "channels": ["no_die", "pass", "fail"]
                           if self.input_kind_ == "wafers" else "image, scaled to [0, 1]",
                           "gcn": bool(self.gcn)},
            extra={"model": self.name, "params": params, "score_threshold": self.threshold_,
                   "state": state, **(extra or {})},
            versions=package_versions("tensorflow", "keras", "scikit-learn"))
        write_manifest(folder, man)
        return folder

    def _restore(self, model, extra: dict[str, Any]) -> None:
        self.model_ = model
        state = extra.get("state", {})
        self.input_kind_ = state["input_kind"]
        self.input_shape_ = list(state["input_shape"])
        if state.get("gcn_range") is not None:
            self.gcn_range_ = list(state["gcn_range"])
        self.threshold_ = float(extra["score_threshold"])
        self._set_state(state)


# ============================================================================ VAE
class VAEDetector(BaseDeepDetector):
    """Convolutional variational autoencoder trained on normal data.

    Loss: L2 reconstruction error (sum over pixels and channels, mean over the batch) plus
    ``beta`` times the KL divergence of the latent posterior from N(0, I).

    Parameters
    ----------
    latent_dim : int, default 32
    conv_filters : sequence of int, default (32, 64)
    attention : bool, default False
        Self-attention block after the encoder's last conv block.
    beta : float, default 1.0
        Weight of the KL term.
    score : {"reconstruction", "kl", "elbo"}, default "reconstruction"
        Anomaly score: the reconstruction error of the latent mean, the KL term, or both
        (``reconstruction + beta * kl``).
    epochs, batch_size, learning_rate : training
    weight_decay : float, default 0.0
        L2 penalty ``weight_decay / 2 * sum ||W||^2`` on kernels (a logged loss term).
    input_size : int, default 32
        Side of the square grid wafer maps are resized to (images keep their size).
    gcn : bool, default False
        Images only: global contrast normalisation then min-max scaling on the training set.
    contamination : float, default 0.05
        Share of normal samples above the threshold (see :func:`choose_threshold`).
    threshold_method : {"quantile", "f1"}, default "quantile"
        ``"f1"``: best validation F1 when validation labels hold both kinds.
    trim_fraction : float, default 0.0
        Robust training: in each batch the samples with the highest loss (this share) are
        left out of the loss, so anomalies hidden in unlabeled training data pull less.
    random_state : int, optional

    Attributes
    ----------
    model_ : keras.Model
    threshold_ : float
    history_ : dict of str to list of float
        Per epoch: ``loss``, each term, ``grad_norm_<term>``, validation figures.
    input_kind_, input_shape_ : the inputs the model was trained on
    """

    name = "vae"
    _scores = ("reconstruction", "kl", "elbo")

    def __init__(self, *, latent_dim: int = 32, conv_filters: Sequence[int] = (32, 64),
                 attention: bool = False, beta: float = 1.0, score: str = "reconstruction",
                 epochs: int = 20, batch_size: int = 128, learning_rate: float = 1e-3,
                 weight_decay: float = 0.0, input_size: int = 32, gcn: bool = False,
                 contamination: float = 0.05, threshold_method: str = "quantile",
                 trim_fraction: float = 0.0, random_state: int | None = None) -> None:
        self.latent_dim = latent_dim
        self.conv_filters = conv_filters
        self.attention = attention
        self.beta = beta
        self.score = score
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.input_size = input_size
        self.gcn = gcn
        self.contamination = contamination
        self.threshold_method = threshold_method
        self.trim_fraction = trim_fraction
        self.random_state = random_state

    def _build(self, shape):
        if self.score not in self._scores:
            raise WafertkError(f"unknown score {self.score!r} ({', '.join(self._scores)})")
        return networks.build_vae(shape, int(self.latent_dim),
                                  conv_filters=tuple(self.conv_filters),
                                  attention=bool(self.attention), seed=self._seed())

    def _probe(self):
        return self.model_.get_layer("encoder").get_layer(
            f"conv{len(self.conv_filters)}").kernel

    @staticmethod
    def _recon(x, r):
        return ops.sum(ops.square(x - r), axis=(1, 2, 3))

    @staticmethod
    def _kl(m, lv):
        return -0.5 * ops.sum(1.0 + lv - ops.square(m) - ops.exp(lv), axis=-1)

    def _loss_terms(self, xb):
        out = self.model_(xb, training=True)
        rec, kl = self._recon(xb, out["reconstruction"]), self._kl(out["z_mean"],
                                                                  out["z_log_var"])
        mask = self._trim_mask(rec + self.beta * kl)
        terms = {"reconstruction": self._mean(rec, mask),
                 "kl": self.beta * self._mean(kl, mask)}
        if self.weight_decay:
            terms["weight_decay"] = self._weight_decay(self.model_)
        return terms

    def _parts(self, x, batch_size=256) -> dict[str, np.ndarray]:
        out = predict_outputs(self.model_, x, batch_size)
        rec = np.sum(np.square(x - out["reconstruction"]), axis=(1, 2, 3), dtype=np.float64)
        m, lv = out["z_mean"].astype(np.float64), out["z_log_var"].astype(np.float64)
        kl = -0.5 * np.sum(1.0 + lv - m ** 2 - np.exp(lv), axis=-1)
        parts = {"reconstruction": rec, "kl": kl, "elbo": rec + self.beta * kl}
        if "centre_distance" in out:
            parts["centre"] = out["centre_distance"].astype(np.float64)
        return parts

    def _score_array(self, x, batch_size=256):
        return self._parts(x, batch_size)[self.score]

    def _latent(self, x, batch_size=256):
        return predict_outputs(self.model_, x, batch_size)["z_mean"]


class OneClassVAEDetector(VAEDetector):
    """One-class VAE: L2 reconstruction + KL + ``centre_weight`` times the squared distance
    of the latent mean to a centre, moved to the barycentre of the training latent means at
    the start and at each epoch end (:class:`LatentCentreCallback`).

    Parameters
    ----------
    centre_weight : float or sequence of float, default (0.1, 1.0, 10.0)
        Several weights: one model per weight, the best kept: highest validation ROC-AUC when
        validation labels hold both kinds, else lowest validation reconstruction error (needs
        validation data). The table is in ``weight_search_``.
    score : {"loss", "reconstruction", "centre", "kl", "elbo"}, default "loss"
        ``"loss"``: reconstruction + weight x centre distance.
    (other parameters as :class:`VAEDetector`)

    Attributes
    ----------
    centre_weight_ : float
        The weight in use.
    weight_search_ : list of dict
        Per weight tried: ``centre_weight``, ``val_auc`` or ``val_reconstruction``.
    """

    name = "ocvae"
    _scores = ("loss", "reconstruction", "centre", "kl", "elbo")

    def __init__(self, *, centre_weight: float | Sequence[float] = (0.1, 1.0, 10.0),
                 latent_dim: int = 32, conv_filters: Sequence[int] = (32, 64),
                 attention: bool = False, beta: float = 1.0, score: str = "loss",
                 epochs: int = 20, batch_size: int = 128, learning_rate: float = 1e-3,
                 weight_decay: float = 0.0, input_size: int = 32, gcn: bool = False,
                 contamination: float = 0.05, threshold_method: str = "quantile",
                 trim_fraction: float = 0.0, random_state: int | None = None) -> None:
        super().__init__(latent_dim=latent_dim, conv_filters=conv_filters, attention=attention,
                         beta=beta, score=score, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, weight_decay=weight_decay,
                         input_size=input_size, gcn=gcn, contamination=contamination,
                         threshold_method=threshold_method, trim_fraction=trim_fraction,
                         random_state=random_state)
        self.centre_weight = centre_weight

    def _weights(self) -> list[float]:
        w = self.centre_weight
        ws = [float(v) for v in w] if isinstance(w, (list, tuple, np.ndarray)) else [float(w)]
        if not ws or any(not math.isfinite(v) or v < 0 for v in ws):
            raise WafertkError(f"centre_weight must be numbers >= 0, got {w!r}")
        return ws

    def _fit(self, x, xv, yv, on_epoch) -> None:
        weights = self._weights()
        if len(weights) == 1:
            self.centre_weight_ = weights[0]
            self.model_ = networks.build_vae(x.shape[1:], int(self.latent_dim),
                                             conv_filters=tuple(self.conv_filters),
                                             attention=bool(self.attention), centre=True,
                                             seed=self._seed())
            if self.score not in self._scores:
                raise WafertkError(f"unknown score {self.score!r} ({', '.join(self._scores)})")
            self._train(x, xv, yv, on_epoch, callbacks=[LatentCentreCallback(x)],
                        tag=getattr(self, "_tag", ""))
            self.weight_search_ = []
            return
        if xv is None or not len(xv):
            raise WafertkError("choosing among several centre weights needs validation data")
        labelled = yv is not None and yv.any() and not yv.all()
        best, table = None, []
        for w in weights:
            est = clone(self).set_params(centre_weight=w)
            est._rng = self._rng
            est.history_ = self.history_  # keys prefixed by the tag
            est._tag = f"w{w:g}"
            est.input_kind_, est.input_shape_ = self.input_kind_, self.input_shape_
            if hasattr(self, "gcn_range_"):
                est.gcn_range_ = self.gcn_range_
            est._fit(x, xv, yv, on_epoch)
            if labelled:
                row = {"centre_weight": w,
                       "val_auc": est._validation_logs(xv, yv).get("val_auc", float("nan"))}
                key = row["val_auc"]
            else:
                rec = est._parts(xv)["reconstruction"]
                row = {"centre_weight": w, "val_reconstruction": float(rec.mean())}
                key = -row["val_reconstruction"]
            table.append(row)
            if best is None or key > best[0]:
                best = (key, est)
        chosen = best[1]
        self.model_, self.centre_weight_ = chosen.model_, chosen.centre_weight_
        self.weight_search_ = table

    def _loss_terms(self, xb):
        out = self.model_(xb, training=True)
        rec, kl = self._recon(xb, out["reconstruction"]), self._kl(out["z_mean"],
                                                                  out["z_log_var"])
        d = out["centre_distance"]
        mask = self._trim_mask(rec + self.beta * kl + self.centre_weight_ * d)
        terms = {"reconstruction": self._mean(rec, mask),
                 "kl": self.beta * self._mean(kl, mask),
                 "centre": self.centre_weight_ * self._mean(d, mask)}
        if self.weight_decay:
            terms["weight_decay"] = self._weight_decay(self.model_)
        return terms

    def _parts(self, x, batch_size=256):
        parts = super()._parts(x, batch_size)
        parts["loss"] = parts["reconstruction"] + self.centre_weight_ * parts["centre"]
        return parts

    def _state(self):
        return {"centre_weight": self.centre_weight_, "weight_search": self.weight_search_}

    def _set_state(self, state):
        self.centre_weight_ = float(state["centre_weight"])
        self.weight_search_ = list(state.get("weight_search", []))


# ============================================================================ Deep SVDD
class DeepSVDDDetector(BaseDeepDetector):
    """Deep SVDD (Ruff et al., "Deep One-Class Classification", ICML 2018).

    A bias-free conv network maps normal data close to a centre ``c`` fixed from an initial
    forward pass (the mean output; coordinates closer to 0 than 0.1 pushed to +-0.1); trained
    with weight decay. Objectives:

    * ``"one-class"``: minimise the mean squared distance to ``c``; score = ``||z - c||^2``;
    * ``"soft-boundary"``: minimise ``R^2 + 1/nu * mean(max(0, ||z - c||^2 - R^2))``, ``R``
      set after ``warm_up_epochs`` at each epoch end to the ``1 - nu`` quantile of the
      training distances; score = ``||z - c||^2 - R^2``. ``nu`` bounds the share of training
      samples outside the sphere (robust to anomalies in the training data).

    Parameters
    ----------
    objective : {"one-class", "soft-boundary"}, default "one-class"
    nu : float, default 0.1
    latent_dim : int, default 32
        128 in the paper's CIFAR-10 network.
    conv_filters : sequence of int, default (32, 64, 128)
    kernel_size : int, default 5
    attention : bool, default False
    negative_slope : float, default 0.1
        LeakyReLU slope below 0 in the network and its pre-training decoder (Ruff et al.'s
        code: 0.01).
    epochs : int, default 30
    batch_size : int, default 128
    learning_rate : float, default 1e-4
    weight_decay : float, default 1e-6
    warm_up_epochs : int, default 10
    pretrain_epochs : int, default 0
        Autoencoder pre-training of the network (the paper's choice) before fixing ``c``.
    pretrain_learning_rate : float, optional
        Adam's learning rate in the pre-training (None: ``learning_rate``).
    input_size, gcn, contamination, threshold_method, trim_fraction, random_state
        As :class:`VAEDetector`.

    Attributes
    ----------
    centre_ : ndarray of shape (latent_dim,)
    radius_ : float
        ``R`` (0 for the one-class objective).
    """

    @property
    def name(self) -> str:  # the CLI's model name
        return "deep-svdd-soft" if self.objective == "soft-boundary" else "deep-svdd"

    def __init__(self, *, objective: str = "one-class", nu: float = 0.1, latent_dim: int = 32,
                 conv_filters: Sequence[int] = (32, 64, 128), kernel_size: int = 5,
                 attention: bool = False, negative_slope: float = 0.1, epochs: int = 30,
                 batch_size: int = 128, learning_rate: float = 1e-4,
                 weight_decay: float = 1e-6, warm_up_epochs: int = 10, pretrain_epochs: int = 0,
                 pretrain_learning_rate: float | None = None, input_size: int = 32,
                 gcn: bool = False, contamination: float = 0.05,
                 threshold_method: str = "quantile", trim_fraction: float = 0.0,
                 random_state: int | None = None) -> None:
        self.objective = objective
        self.nu = nu
        self.latent_dim = latent_dim
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.attention = attention
        self.negative_slope = negative_slope
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warm_up_epochs = warm_up_epochs
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_learning_rate = pretrain_learning_rate
        self.input_size = input_size
        self.gcn = gcn
        self.contamination = contamination
        self.threshold_method = threshold_method
        self.trim_fraction = trim_fraction
        self.random_state = random_state

    def _fit(self, x, xv, yv, on_epoch) -> None:
        if self.objective not in ("one-class", "soft-boundary"):
            raise WafertkError(f"unknown objective {self.objective!r} (one-class, "
                               "soft-boundary)")
        if not 0 < self.nu <= 1:
            raise WafertkError(f"nu must be in (0, 1], got {self.nu}")
        if not 0 <= self.negative_slope < 1:
            raise WafertkError(f"negative_slope must be in [0, 1), got {self.negative_slope}")
        if self.pretrain_learning_rate is not None and not self.pretrain_learning_rate > 0:
            raise WafertkError("pretrain_learning_rate must be positive, got "
                               f"{self.pretrain_learning_rate}")
        self.model_ = networks.build_deep_svdd(
            x.shape[1:], int(self.latent_dim), conv_filters=tuple(self.conv_filters),
            kernel_size=int(self.kernel_size), attention=bool(self.attention),
            negative_slope=float(self.negative_slope), seed=self._seed())
        self._radius = keras.Variable(0.0, trainable=False, name="radius")
        if self.pretrain_epochs:
            self._pretrain(x, on_epoch)
        self._init_centre(x)
        self._train(x, xv, yv, on_epoch)
        self.radius_ = float(np.asarray(self._radius))

    def _pretrain(self, x, on_epoch) -> None:
        encoder = self.model_.get_layer("encoder")
        decoder = networks.build_conv_decoder(int(self.latent_dim), x.shape[1:],
                                              conv_filters=tuple(self.conv_filters),
                                              use_bias=False,
                                              negative_slope=float(self.negative_slope),
                                              seed=self._seed(7))
        x_in = keras.Input(shape=x.shape[1:])
        ae = keras.Model(x_in, decoder(encoder(x_in)))

        def terms(xb):
            r = ae(xb, training=True)
            out = {"reconstruction": ops.mean(ops.sum(ops.square(xb - r), axis=(1, 2, 3)))}
            if self.weight_decay:
                out["weight_decay"] = self._weight_decay(ae)
            return out

        self._run_epochs(n_items=len(x), make_batch=lambda idx: (x[idx],), loss_terms=terms,
                         variables=ae.trainable_variables, probe=encoder.get_layer("z").kernel,
                         epochs=int(self.pretrain_epochs), on_epoch=on_epoch, tag="pretrain",
                         learning_rate=self.pretrain_learning_rate)

    def _init_centre(self, x, eps: float = 0.1) -> None:
        z = predict_outputs(self.model_, x)["z"].astype(np.float64)
        c = z.mean(axis=0)
        c[(np.abs(c) < eps) & (c < 0)] = -eps
        c[(np.abs(c) < eps) & (c >= 0)] = eps
        self.model_.get_layer("centre").centre.assign(c.astype(np.float32))

    def _probe(self):
        return self.model_.get_layer("encoder").get_layer("z").kernel

    def _loss_terms(self, xb):
        d = self.model_(xb, training=True)["centre_distance"]
        mask = self._trim_mask(d)
        if self.objective == "soft-boundary":
            r2 = ops.square(self._radius)
            terms = {"radius": r2,
                     "distance": (1.0 / self.nu) * self._mean(ops.relu(d - r2), mask)}
        else:
            terms = {"distance": self._mean(d, mask)}
        if self.weight_decay:
            terms["weight_decay"] = self._weight_decay(self.model_)
        return terms

    def _epoch_end(self, x) -> dict[str, float]:
        if self.objective != "soft-boundary":
            return {}
        n_done = len(self.history_.get("loss", [])) + 1
        if n_done >= self.warm_up_epochs:
            d = predict_outputs(self.model_, x)["centre_distance"]
            self._radius.assign(float(np.quantile(np.sqrt(d), 1 - self.nu)))
        return {"radius": float(np.asarray(self._radius))}

    def _score_array(self, x, batch_size=256):
        d = predict_outputs(self.model_, x, batch_size)["centre_distance"].astype(np.float64)
        radius = (self.radius_ if hasattr(self, "radius_")
                  else float(np.asarray(self._radius)))
        return d - radius ** 2 if self.objective == "soft-boundary" else d

    def _latent(self, x, batch_size=256):
        return predict_outputs(self.model_, x, batch_size)["z"]

    @property
    def centre_(self) -> np.ndarray:
        """The fixed centre ``c``."""
        self._check_fitted()
        return np.asarray(self.model_.get_layer("centre").centre)

    def _state(self):
        return {"radius": self.radius_}

    def _set_state(self, state):
        self.radius_ = float(state.get("radius", 0.0))


# ============================================================================ transforms
TRANSFORM_NAMES: tuple[str, ...] = ("rotate", "flip", "translate")


def transform_list(transforms: Sequence[str], shift: int) -> list[tuple[int, int, int, int]]:
    """The transforms as ``(flip, dy, dx, quarter_turns)``, the identity first.

    ``rotate``: 0/90/180/270 degrees; ``flip``: horizontal flip or not; ``translate``: shifts
    by ``{-shift, 0, shift}`` on both axes. All combinations: rotate alone 4, rotate+flip 8,
    all three 72 (Golan & El-Yaniv's set).
    """
    unknown = [t for t in transforms if t not in TRANSFORM_NAMES]
    if unknown or not transforms:
        raise WafertkError(f"unknown transform {unknown[0] if unknown else None!r} "
                           f"({', '.join(TRANSFORM_NAMES)})")
    flips = (0, 1) if "flip" in transforms else (0,)
    shifts = (0, -shift, shift) if "translate" in transforms else (0,)
    rots = (0, 1, 2, 3) if "rotate" in transforms else (0,)
    return [(f, dy, dx, k) for f, dy, dx, k in product(flips, shifts, shifts, rots)]


def apply_transform(x: np.ndarray, t: tuple[int, int, int, int],
                    fill: Sequence[float] | None = None) -> np.ndarray:
    """Apply one transform of :func:`transform_list` to a batch (n, H, W, C).

    Translations fill the uncovered border with ``fill`` (a channel vector: "no die" for
    wafer maps) or, when None, by reflection (images).
    """
    flip, dy, dx, k = t
    if flip:
        x = x[:, :, ::-1]
    if dy or dx:
        n, h, w, c = x.shape
        if fill is None:
            py, px = abs(dy), abs(dx)
            p = np.pad(x, ((0, 0), (py, py), (px, px), (0, 0)), mode="reflect")
            x = p[:, py - dy:py - dy + h, px - dx:px - dx + w]
        else:
            out = np.empty_like(x)
            out[...] = np.asarray(fill, x.dtype)
            ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h),
                                                                        slice(0, h + dy))
            xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w),
                                                                        slice(0, w + dx))
            out[:, yd, xd] = x[:, ys, xs]
            x = out
    if k:
        x = np.rot90(x, k, axes=(1, 2))
    return np.ascontiguousarray(x)


class TransformDetector(BaseDeepDetector):
    """Self-supervised transform prediction (Golan & El-Yaniv, NeurIPS 2018).

    A classifier learns which of K geometric transforms was applied to a normal sample; the
    anomaly score of an input is how badly it predicts the transforms of that input:
    ``-mean_k log p(k | T_k(x))``. One epoch covers every (sample, transform) pair once.

    On wafer maps rotations and flips carry little information on normal wafers (a round
    wafer with random fails looks the same turned or mirrored, so the classifier cannot learn
    them there); translations can be learnt (the wafer sits in the centre of its grid), but
    from the wafer's outline, which defective wafers share. Measure with
    ``benchmarks/anomaly_wafers.py`` (docs/anomaly.md).

    Parameters
    ----------
    transforms : sequence of {"rotate", "flip", "translate"}, default ("rotate",)
    shift : int, optional
        Translation in pixels; default a quarter of the input side (8 on 32x32, as the paper).
    conv_filters : sequence of int, default (32, 64)
    dense_units : int, default 128
    attention : bool, default False
    epochs, batch_size, learning_rate, weight_decay, input_size, gcn, contamination,
    threshold_method, trim_fraction, random_state
        As :class:`VAEDetector`.

    Attributes
    ----------
    transforms_ : list of tuple
        ``(flip, dy, dx, quarter_turns)`` per class of the classifier.
    """

    name = "rotation"

    def __init__(self, *, transforms: Sequence[str] = ("rotate",), shift: int | None = None,
                 conv_filters: Sequence[int] = (32, 64), dense_units: int = 128,
                 attention: bool = False, epochs: int = 10, batch_size: int = 128,
                 learning_rate: float = 1e-3, weight_decay: float = 0.0, input_size: int = 32,
                 gcn: bool = False, contamination: float = 0.05,
                 threshold_method: str = "quantile", trim_fraction: float = 0.0,
                 random_state: int | None = None) -> None:
        self.transforms = transforms
        self.shift = shift
        self.conv_filters = conv_filters
        self.dense_units = dense_units
        self.attention = attention
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.input_size = input_size
        self.gcn = gcn
        self.contamination = contamination
        self.threshold_method = threshold_method
        self.trim_fraction = trim_fraction
        self.random_state = random_state

    def _fill(self):
        return NO_DIE_ONE_HOT if self.input_kind_ == "wafers" else None

    def _build(self, shape):
        shift = self.shift if self.shift is not None else max(1, int(shape[0]) // 4)
        self.transforms_ = transform_list(tuple(self.transforms), int(shift))
        return networks.build_transform_classifier(
            shape, len(self.transforms_), conv_filters=tuple(self.conv_filters),
            dense_units=int(self.dense_units), attention=bool(self.attention),
            seed=self._seed())

    def _n_items(self, x) -> int:
        return len(x) * len(self.transforms_)

    def _batch(self, x, idx):
        k = len(self.transforms_)
        i, t = idx // k, idx % k
        xb = np.empty((len(idx), *x.shape[1:]), np.float32)
        fill = self._fill()
        for j in np.unique(t):
            m = t == j
            xb[m] = apply_transform(x[i[m]], self.transforms_[j], fill)
        return xb, t.astype(np.int32)

    def _probe(self):
        return self.model_.get_layer("logits").kernel

    def _loss_terms(self, xb, tb):
        logits = self.model_(xb, training=True)["logits"]
        ce = keras.losses.sparse_categorical_crossentropy(tb, logits, from_logits=True)
        terms = {"cross_entropy": self._mean(ce, self._trim_mask(ce))}
        if self.weight_decay:
            terms["weight_decay"] = self._weight_decay(self.model_)
        return terms

    def _score_array(self, x, batch_size=256):
        fill = self._fill()
        total = np.zeros(len(x), np.float64)
        for j, t in enumerate(self.transforms_):
            logits = predict_outputs(self.model_, apply_transform(x, t, fill),
                                     batch_size)["logits"].astype(np.float64)
            m = logits.max(axis=1, keepdims=True)
            logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
            total -= logp[:, j]
        return total / len(self.transforms_)

    def _latent(self, x, batch_size=256):
        return predict_outputs(self.model_, x, batch_size)["features"]

    def _state(self):
        return {"transforms": [list(t) for t in self.transforms_]}

    def _set_state(self, state):
        self.transforms_ = [tuple(int(v) for v in t) for t in state["transforms"]]


# ============================================================================ hybrids
class LatentHybridDetector(BaseEstimator):
    """A fitted deep detector's latent features fed to a classical detector, no labels.

    Parameters
    ----------
    encoder : BaseDeepDetector
        A fitted detector; its :meth:`~BaseDeepDetector.transform` gives the features.
    detector : {"iforest", "ocsvm"} or estimator, default "iforest"
        IsolationForest, a one-class SVM (RBF, ``gamma="scale"``), or any object with
        ``fit`` and ``score_samples`` (scikit-learn's sign: higher = more normal).
    n_estimators : int, default 200
        IsolationForest trees.
    nu : float, default 0.1
        One-class SVM's bound on the share of training outliers.
    contamination : float, default 0.05
    random_state : int, optional

    Attributes
    ----------
    detector_ : the fitted classical detector
    scaler_ : sklearn.preprocessing.StandardScaler
    threshold_ : float

    Notes
    -----
    Not saved to a model folder (no pickle): refit it from the saved encoder.
    """

    def __init__(self, encoder=None, *, detector: Any = "iforest", n_estimators: int = 200,
                 nu: float = 0.1, contamination: float = 0.05,
                 random_state: int | None = None) -> None:
        self.encoder = encoder
        self.detector = detector
        self.n_estimators = n_estimators
        self.nu = nu
        self.contamination = contamination
        self.random_state = random_state

    def _make(self):
        if self.detector == "iforest":
            from sklearn.ensemble import IsolationForest

            return IsolationForest(n_estimators=self.n_estimators,
                                   random_state=self.random_state)
        if self.detector == "ocsvm":
            from sklearn.svm import OneClassSVM

            return OneClassSVM(nu=self.nu, gamma="scale")
        if hasattr(self.detector, "fit") and hasattr(self.detector, "score_samples"):
            return clone(self.detector)
        raise WafertkError(f"unknown detector {self.detector!r} (iforest, ocsvm or an "
                           "estimator with fit and score_samples)")

    def fit(self, X, y=None):
        """Fit the classical detector on the latent features of ``X`` (``y``: 1 = anomalous,
        left out when given)."""
        if self.encoder is None:
            raise WafertkError("LatentHybridDetector needs a fitted encoder")
        from sklearn.preprocessing import StandardScaler

        z = self.encoder.transform(X).astype(np.float64)
        if y is not None:
            t = binary_labels(y, len(z))
            if t.all():
                raise WafertkError("no normal samples to train on: every training sample is "
                                   "labelled anomalous")
            z = z[~t]
        if len(z) < 2:
            raise WafertkError(f"{len(z)} training sample: anomaly detectors need at least 2")
        self.scaler_ = StandardScaler().fit(z)
        self.detector_ = self._make().fit(self.scaler_.transform(z))
        self.threshold_ = choose_threshold(self._scores(z), contamination=self.contamination)
        return self

    def _scores(self, z):
        return -np.asarray(self.detector_.score_samples(self.scaler_.transform(z)), np.float64)

    def score_samples(self, X) -> np.ndarray:
        """Anomaly score (higher = more anomalous)."""
        return self._scores(self.encoder.transform(X).astype(np.float64))

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - threshold_``."""
        return self.score_samples(X) - self.threshold_

    def predict(self, X) -> np.ndarray:
        """1 anomalous, 0 normal."""
        return (self.score_samples(X) >= self.threshold_).astype(np.int64)


class LatentClassifierHybrid(BaseEstimator):
    """A fitted detector's latent features -> a supervised classifier, where labels exist.

    The semi-supervised counterpart of :class:`LatentHybridDetector`: the encoder learnt
    "normal" without labels (possibly from a large unlabelled archive); a few labelled wafers
    then train XGBoost, a random forest or a small dense head on its latent features.

    Parameters
    ----------
    encoder : BaseDeepDetector
        A fitted detector; its :meth:`~BaseDeepDetector.transform` gives the features.
    classifier : {"xgboost", "random-forest", "dense"} or estimator, default "xgboost"
        ``"dense"`` is scikit-learn's ``MLPClassifier`` with one hidden layer of
        ``hidden_units`` (early stopping on 10 % of the samples from 200 samples on); an
        estimator needs ``fit`` and ``predict_proba``.
    normal_class : str, default "none"
        The label of normal samples: ``score_samples`` is ``1 - P(normal_class)``.
    n_estimators : int, default 300
        Trees (XGBoost, random forest).
    hidden_units : int, default 64
    n_jobs : int, default 1
    random_state : int, optional

    Attributes
    ----------
    classifier_ : the fitted classifier
    scaler_ : sklearn.preprocessing.StandardScaler
    classes_ : ndarray of str
    threshold_ : float
        0.5 on ``1 - P(normal)``.
    """

    def __init__(self, encoder=None, *, classifier: Any = "xgboost",
                 normal_class: str = "none", n_estimators: int = 300, hidden_units: int = 64,
                 n_jobs: int = 1, random_state: int | None = None) -> None:
        self.encoder = encoder
        self.classifier = classifier
        self.normal_class = normal_class
        self.n_estimators = n_estimators
        self.hidden_units = hidden_units
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _make(self):
        if self.classifier == "xgboost":
            from xgboost import XGBClassifier

            return XGBClassifier(n_estimators=self.n_estimators, max_depth=6,
                                 learning_rate=0.1, tree_method="hist", n_jobs=self.n_jobs,
                                 random_state=self.random_state or 0)
        if self.classifier == "random-forest":
            from sklearn.ensemble import RandomForestClassifier

            return RandomForestClassifier(n_estimators=self.n_estimators, n_jobs=self.n_jobs,
                                          class_weight="balanced",
                                          random_state=self.random_state)
        if self.classifier == "dense":
            from sklearn.neural_network import MLPClassifier

            return MLPClassifier(hidden_layer_sizes=(int(self.hidden_units),), alpha=1e-3,
                                 max_iter=500, early_stopping=self._n_fit >= 200,
                                 random_state=self.random_state)
        if hasattr(self.classifier, "fit") and hasattr(self.classifier, "predict_proba"):
            return clone(self.classifier)
        raise WafertkError(f"unknown classifier {self.classifier!r} (xgboost, random-forest, "
                           "dense or an estimator with fit and predict_proba)")

    def fit(self, X, y):
        """Fit the classifier on the latent features of ``X`` with labels ``y`` (class names;
        the normal class among them)."""
        if self.encoder is None:
            raise WafertkError("LatentClassifierHybrid needs a fitted encoder")
        from sklearn.preprocessing import StandardScaler

        y = np.asarray(y).astype(str)
        z = self.encoder.transform(X).astype(np.float64)
        if len(y) != len(z):
            raise WafertkError(f"{len(y)} labels for {len(z)} samples")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise WafertkError(f"the labels hold one class ({str(self.classes_[0])!r}): a "
                               "classifier needs at least two")
        if self.normal_class not in self.classes_:
            raise WafertkError(f"no sample of the normal class {self.normal_class!r} in the "
                               "labels")
        self.scaler_ = StandardScaler().fit(z)
        self._n_fit = len(z)  # early stopping of the dense head only with enough samples
        self.classifier_ = self._make().fit(self.scaler_.transform(z), codes)
        self.threshold_ = 0.5
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        z = self.encoder.transform(X).astype(np.float64)
        return np.asarray(self.classifier_.predict_proba(self.scaler_.transform(z)))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def score_samples(self, X) -> np.ndarray:
        """``1 - P(normal_class)`` (higher = more anomalous)."""
        k = int(np.flatnonzero(self.classes_ == self.normal_class)[0])
        return 1.0 - self.predict_proba(X)[:, k]


#: CLI/config model names -> (estimator class, fixed parameters)
MODELS: dict[str, tuple[type, dict[str, Any]]] = {
    "vae": (VAEDetector, {}),
    "ocvae": (OneClassVAEDetector, {}),
    "deep-svdd": (DeepSVDDDetector, {"objective": "one-class"}),
    "deep-svdd-soft": (DeepSVDDDetector, {"objective": "soft-boundary"}),
    "rotation": (TransformDetector, {}),
    "features-knn": (FeatureKNNDetector, {}),
    "pretrained-knn": (PretrainedKNNDetector, {}),
}

_BY_NAME = {"vae": VAEDetector, "ocvae": OneClassVAEDetector, "deep-svdd": DeepSVDDDetector,
            "deep-svdd-soft": DeepSVDDDetector, "rotation": TransformDetector,
            "features-knn": FeatureKNNDetector, "pretrained-knn": PretrainedKNNDetector}


def load_detector(folder, manifest=None) -> BaseDeepDetector:
    """Load a saved anomaly detector (the registry's loader of kind ``anomaly-detector``).

    Parameters
    ----------
    folder : str or os.PathLike
        A folder written by :meth:`BaseDeepDetector.save` (or a run folder of
        ``wafertk anomaly train``).
    manifest : Manifest, optional
        Already read and checked.

    Returns
    -------
    BaseDeepDetector
        Fitted, with ``manifest`` set.

    Raises
    ------
    ModelFileError
        Wrong kind, unknown model name, bad manifest values or an unreadable model file.
    """
    from pathlib import Path

    from wafertk.errors import ModelFileError
    from wafertk.models.manifest import load_manifest

    folder = Path(folder)
    man = manifest if manifest is not None else load_manifest(folder, ANOMALY_KIND)
    extra = man.extra
    cls = _BY_NAME.get(extra.get("model"))
    if cls is None or not isinstance(extra.get("params"), dict) \
            or not isinstance(extra.get("state"), dict) \
            or not isinstance(extra.get("score_threshold"), (int, float)):
        raise ModelFileError(folder / "manifest.json", "invalid manifest: extra.model, "
                             "params, state and score_threshold are needed (known models: "
                             f"{', '.join(_BY_NAME)})")
    if cls in (FeatureKNNDetector, PretrainedKNNDetector):
        return cls.load(folder, man)
    try:
        est = cls(**extra["params"])
        model = keras.saving.load_model(folder / man.model_file, compile=False)
        est._restore(model, extra)
    except (TypeError, KeyError, ValueError, OSError) as exc:
        raise ModelFileError(folder, f"cannot load the anomaly model ({exc})") from None
    est.manifest = man
    return est
