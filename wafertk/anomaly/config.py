"""The config of an anomaly training run (``configs/anomaly.yaml``, ``wafertk anomaly train``).

Loaded with :func:`wafertk.config.load_config`: unknown keys and out-of-range values are
errors naming the file and the key; command-line flags override single values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from wafertk.config import in_range
from wafertk.errors import WafertkError

#: Model names of ``wafertk anomaly train --model``.
MODEL_NAMES: tuple[str, ...] = ("vae", "ocvae", "deep-svdd", "deep-svdd-soft", "rotation",
                                "features-knn", "pretrained-knn")

_POSITIVE = {"check": in_range(0, lo_open=True)}
_NON_NEGATIVE = {"check": in_range(0)}
_AT_LEAST_1 = {"check": in_range(1)}
_FRACTION = {"check": in_range(0, 1, lo_open=True, hi_open=True)}


@dataclass
class AnomalyModelConfig:
    """Which detector and its network (see :mod:`wafertk.anomaly.estimators`)."""

    name: Literal["vae", "ocvae", "deep-svdd", "deep-svdd-soft", "rotation",
                  "features-knn", "pretrained-knn"] = "vae"
    latent_dim: int = field(default=32, metadata=_AT_LEAST_1)
    conv_filters: list[int] = field(default_factory=lambda: [32, 64], metadata=_AT_LEAST_1)
    attention: bool = False
    #: vae/ocvae: weight of the KL term
    beta: float = field(default=1.0, metadata=_NON_NEGATIVE)
    #: vae: reconstruction | kl | elbo; ocvae: loss | reconstruction | centre | kl | elbo;
    #: null: the model's default
    score: str | None = None
    #: ocvae: weights of the centre term; several: one model each, the best on validation
    centre_weights: list[float] = field(default_factory=lambda: [0.1, 1.0, 10.0],
                                        metadata=_NON_NEGATIVE)
    #: deep-svdd-soft: bound on the share of training samples outside the sphere
    nu: float = field(default=0.1, metadata={"check": in_range(0, 1, lo_open=True)})
    #: deep-svdd: conv kernel size; autoencoder pre-training epochs
    kernel_size: int = field(default=5, metadata=_AT_LEAST_1)
    pretrain_epochs: int = field(default=0, metadata=_NON_NEGATIVE)
    #: rotation: transforms (rotate, flip, translate) and the translation in pixels
    transforms: list[str] = field(default_factory=lambda: ["translate"])
    shift: int | None = field(default=None, metadata=_AT_LEAST_1)
    dense_units: int = field(default=128, metadata=_AT_LEAST_1)
    #: features-knn: wafer-feature sets (wafertk features --set) and neighbours averaged
    feature_sets: list[str] = field(default_factory=lambda: ["density", "radon", "geometry",
                                                             "meta", "spatial"])
    #: null: the model's own default (features-knn 20, pretrained-knn 10)
    k: int | None = field(default=None, metadata=_AT_LEAST_1)
    #: pretrained-knn (images; k above is its neighbours too): the backbone, its local
    #: pretrained weights file (required), the layer pooled (null: the backbone's default)
    #: and the side images are resized to
    backbone: str = "squeezenet"
    weights: str | None = None
    layer: str | None = None
    embed_size: int = field(default=128, metadata={"check": in_range(32)})


@dataclass
class AnomalyTrainConfig:
    """Optimisation."""

    epochs: int = field(default=20, metadata=_AT_LEAST_1)
    batch_size: int = field(default=128, metadata=_AT_LEAST_1)
    learning_rate: float = field(default=1e-3, metadata=_POSITIVE)
    #: deep-svdd: Adam's learning rate in the autoencoder pre-training (null: learning_rate)
    pretrain_learning_rate: float | None = field(default=None, metadata=_POSITIVE)
    weight_decay: float = field(default=0.0, metadata=_NON_NEGATIVE)
    #: deep-svdd-soft: epochs before the radius is updated
    warm_up_epochs: int = field(default=10, metadata=_NON_NEGATIVE)
    seed: int | None = field(default=0, metadata=_NON_NEGATIVE)
    #: robust training: leave out this share of each batch, the samples of highest loss
    #: (features-knn: this share of the training wafers, those farthest from their neighbours)
    trim_fraction: float = field(default=0.0, metadata={"check": in_range(0, 0.5,
                                                                           hi_open=True)})


@dataclass
class AnomalyDataConfig:
    """What is trained on and the lot-disjoint validation split."""

    #: wafer maps are resized to this square grid (images keep their size unless image_size)
    input_size: int = field(default=32, metadata=_AT_LEAST_1)
    image_size: int | None = field(default=None, metadata=_AT_LEAST_1)
    #: the normal class: wafers "none"; image folders: a sub-folder (null: all images normal)
    normal_class: str | None = None
    #: normal: train on the normal class only (labels needed); all: every sample, labels
    #: ignored for training (an unlabeled archive)
    train_on: Literal["normal", "all"] = "normal"
    validation_fraction: float = field(default=0.2, metadata=_FRACTION)
    split_seed: int = field(default=0, metadata=_NON_NEGATIVE)
    #: images: global contrast normalisation + min-max scaling (Ruff et al.)
    gcn: bool = False
    #: at most this many training samples (a random subset), null for all
    max_train: int | None = field(default=None, metadata=_AT_LEAST_1)


@dataclass
class AnomalyDecisionConfig:
    """The threshold of ``anomalous``."""

    #: share of normal validation samples above the threshold
    contamination: float = field(default=0.05, metadata={"check": in_range(0, 0.5,
                                                                            lo_open=True)})
    #: quantile (of normal validation scores) | f1 (best validation F1, needs labels)
    method: Literal["quantile", "f1"] = "quantile"


@dataclass
class AnomalyConfig:
    """A whole anomaly run: ``model``, ``train``, ``data``, ``decision`` sections."""

    model: AnomalyModelConfig = field(default_factory=AnomalyModelConfig)
    train: AnomalyTrainConfig = field(default_factory=AnomalyTrainConfig)
    data: AnomalyDataConfig = field(default_factory=AnomalyDataConfig)
    decision: AnomalyDecisionConfig = field(default_factory=AnomalyDecisionConfig)

    def config_problems(self) -> list[tuple[str, str]]:
        """Checks across sections: transforms, scores and the input size."""
        bad = []
        names = ("rotate", "flip", "translate")
        unknown = [t for t in self.model.transforms if t not in names]
        if unknown or not self.model.transforms:
            bad.append(("model.transforms", f"{unknown[0] if unknown else 'empty'!r} is not "
                        f"a list of {', '.join(names)}"))
        scores = {"vae": ("reconstruction", "kl", "elbo"),
                  "ocvae": ("loss", "reconstruction", "centre", "kl", "elbo")}
        ok = scores.get(self.model.name)
        if self.model.score is not None and (ok is None or self.model.score not in ok):
            bad.append(("model.score", f"{self.model.score!r} is not a score of "
                        f"{self.model.name} ({', '.join(ok) if ok else 'none to choose'})"))
        if not self.model.conv_filters:
            bad.append(("model.conv_filters", "needs at least one conv block"))
        need = 2 ** len(self.model.conv_filters)
        if self.data.input_size % need:
            bad.append(("data.input_size", f"{self.data.input_size} is not divisible by "
                        f"{need} ({len(self.model.conv_filters)} pooling blocks)"))
        if self.model.name == "features-knn":
            from wafertk.features.extract import parse_sets

            try:
                parse_sets(self.model.feature_sets)
            except WafertkError as exc:  # its message names the bad set
                bad.append(("model.feature_sets", str(exc)))
        if self.model.name == "pretrained-knn":
            from wafertk.images.config import BACKBONES

            if self.model.backbone not in BACKBONES:
                bad.append(("model.backbone", f"unknown backbone {self.model.backbone!r} "
                            f"(known: {', '.join(BACKBONES)})"))
            if self.model.weights is None:
                bad.append(("model.weights", "pretrained-knn needs the backbone's local "
                            "pretrained weights file"))
        if self.model.name == "ocvae" and not self.model.centre_weights:
            bad.append(("model.centre_weights", "needs at least one weight"))
        return bad


def estimator_from_config(cfg: AnomalyConfig) -> Any:
    """The unfitted estimator a config describes (imports TensorFlow)."""
    from wafertk.anomaly.estimators import MODELS

    cls, fixed = MODELS[cfg.model.name]
    m, t, d = cfg.model, cfg.train, cfg.data
    if m.name == "features-knn":
        return cls(feature_sets=tuple(m.feature_sets), k=20 if m.k is None else m.k,
                   trim_fraction=t.trim_fraction,
                   contamination=cfg.decision.contamination,
                   threshold_method=cfg.decision.method, random_state=t.seed)
    if m.name == "pretrained-knn":
        return cls(backbone=m.backbone, weights=m.weights, layer=m.layer,
                   image_size=m.embed_size, k=10 if m.k is None else m.k,
                   max_reference=d.max_train or 50000, batch_size=t.batch_size,
                   contamination=cfg.decision.contamination,
                   threshold_method=cfg.decision.method, random_state=t.seed)
    common = dict(epochs=t.epochs, batch_size=t.batch_size, learning_rate=t.learning_rate,
                  weight_decay=t.weight_decay, input_size=d.input_size, gcn=d.gcn,
                  contamination=cfg.decision.contamination,
                  threshold_method=cfg.decision.method, random_state=t.seed,
                  trim_fraction=t.trim_fraction,
                  conv_filters=tuple(m.conv_filters), attention=m.attention)
    if m.name in ("vae", "ocvae"):
        kw = dict(latent_dim=m.latent_dim, beta=m.beta)
        if m.score is not None:
            kw["score"] = m.score
        if m.name == "ocvae":
            w = m.centre_weights
            kw["centre_weight"] = w[0] if len(w) == 1 else tuple(w)
    elif m.name.startswith("deep-svdd"):
        kw = dict(nu=m.nu, latent_dim=m.latent_dim, kernel_size=m.kernel_size,
                  pretrain_epochs=m.pretrain_epochs, warm_up_epochs=t.warm_up_epochs,
                  pretrain_learning_rate=t.pretrain_learning_rate)
    else:
        kw = dict(transforms=tuple(m.transforms), shift=m.shift, dense_units=m.dense_units)
    return cls(**fixed, **common, **kw)
