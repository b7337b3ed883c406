"""The evaluation report every wafertk model shares.

* :func:`classification_metrics`: multi-class figures (accuracy, macro-F1, per class,
  confusion matrix).
* :func:`binary_metrics`: detector figures (ROC AUC, average precision, curves).
* :func:`summary_figures`: the compact validation figures a model's manifest records.
* :func:`write_evaluation_report`: ``report.json``, ``report.md``, a self-contained
  ``report.html`` and the figures as PNG.
* :func:`evaluate_model`: any saved model on a labeled ``wafers.h5``.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wafertk._atomic import atomic_path
from wafertk.errors import WafertkError

log = logging.getLogger(__name__)

MAX_CURVE_POINTS = 200


def _to_codes(y, class_names: list[str], what: str) -> np.ndarray:
    a = np.asarray(y)
    if a.dtype.kind in "iu":
        if a.size and (a.min() < 0 or a.max() >= len(class_names)):
            raise WafertkError(f"{what}: class code out of range 0..{len(class_names) - 1}")
        return a.astype(np.int64)
    lookup = {c: i for i, c in enumerate(class_names)}
    try:
        return np.array([lookup[str(v)] for v in a], dtype=np.int64)
    except KeyError as exc:
        raise WafertkError(
            f"{what}: unknown class {exc.args[0]!r} (known: {', '.join(class_names)})"
        ) from None


def metrics_from_confusion(cm: np.ndarray, class_names: list[str]) -> dict:
    """The figures of :func:`wafertk.evaluate.classification_metrics` from confusion counts.

    Same definitions (undefined ratios are 0; balanced accuracy and macro-F1 average the
    classes with support), so a streamed confusion-count matrix gives the report's metrics
    without keeping per-wafer labels.

    Parameters
    ----------
    cm : ndarray of shape (k, k), int
        Rows = true class, columns = predicted class.
    class_names : list of str

    Returns
    -------
    dict
        ``n``, ``classes``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``,
        ``weighted_f1``, ``per_class`` ({class: {precision, recall, f1, support}}),
        ``confusion_matrix``.
    """
    cm = np.asarray(cm, np.int64)
    if cm.shape != (len(class_names), len(class_names)):
        raise WafertkError(f"confusion matrix {cm.shape} does not match "
                           f"{len(class_names)} classes")
    n = int(cm.sum())
    tp = np.diag(cm).astype(np.float64)
    sup = cm.sum(axis=1).astype(np.float64)
    pred = cm.sum(axis=0).astype(np.float64)
    prec = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    rec = np.divide(tp, sup, out=np.zeros_like(tp), where=sup > 0)
    den = prec + rec
    f1 = np.divide(2 * prec * rec, den, out=np.zeros_like(tp), where=den > 0)
    present = sup > 0
    return {
        "n": n,
        "classes": list(class_names),
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "balanced_accuracy": float(rec[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * sup).sum() / sup.sum()) if sup.sum() else 0.0,
        "per_class": {c: {"precision": float(prec[i]), "recall": float(rec[i]),
                          "f1": float(f1[i]), "support": int(sup[i])}
                      for i, c in enumerate(class_names)},
        "confusion_matrix": cm.tolist(),
    }


def classification_metrics(y_true, y_pred, class_names: Sequence[str],
                           proba: np.ndarray | None = None) -> dict[str, Any]:
    """Multi-class evaluation figures.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        Class names (str) or integer codes into ``class_names``.
    class_names : sequence of str
        All classes, in report order.
    proba : ndarray of shape (n, len(class_names)), optional
        Class probabilities; adds ``log_loss`` and ``top2_accuracy``.

    Returns
    -------
    dict
        ``n``, ``classes``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``,
        ``weighted_f1``, ``per_class`` ({class: {precision, recall, f1, support}}),
        ``confusion_matrix`` (list of lists, rows = true class, columns = predicted),
        ``classification_report`` (scikit-learn's text). Undefined ratios are 0.

    Examples
    --------
    >>> m = classification_metrics(["a", "b", "b"], ["a", "b", "a"], ["a", "b"])
    >>> m["accuracy"], m["confusion_matrix"]
    (0.6666666666666666, [[1, 0], [1, 1]])
    """
    from sklearn.metrics import classification_report

    names = [str(c) for c in class_names]
    if not names:
        raise WafertkError("no classes to evaluate")
    t = _to_codes(y_true, names, "y_true")
    p = _to_codes(y_pred, names, "y_pred")
    if len(t) != len(p):
        raise WafertkError(f"{len(t)} true labels but {len(p)} predictions")
    n = len(t)
    k = len(names)
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    out = metrics_from_confusion(cm, names)
    out["classification_report"] = classification_report(
        t, p, labels=list(range(k)), target_names=names, digits=4, zero_division=0) if n else ""
    if proba is not None and n:
        pr = np.asarray(proba, dtype=np.float64)
        if pr.shape != (n, len(names)):
            raise WafertkError(f"proba has shape {pr.shape}, expected ({n}, {len(names)})")
        eps = 1e-15
        out["log_loss"] = float(-np.log(np.clip(pr[np.arange(n), t], eps, 1)).mean())
        top2 = np.argsort(-pr, axis=1)[:, :2]
        out["top2_accuracy"] = float((top2 == t[:, None]).any(axis=1).mean())
    return out


def _subsample(*arrays: np.ndarray, k: int = MAX_CURVE_POINTS) -> list[list[float]]:
    n = len(arrays[0])
    idx = np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int)) if n else []
    return [[_finite(v) for v in np.asarray(a)[idx]] for a in arrays]


def _finite(v) -> float:
    v = float(v)
    return v if math.isfinite(v) else (1e308 if v > 0 else -1e308)


def binary_metrics(y_true, score, threshold: float = 0.5) -> dict[str, Any]:
    """Binary (detector) evaluation figures.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        True class: bool / 0-1 (1 = positive, e.g. defective).
    score : array-like of shape (n,)
        Score of the positive class (higher = more likely positive).
    threshold : float, default 0.5
        Predicted positive where ``score >= threshold``.

    Returns
    -------
    dict
        ``n``, ``n_positive``, ``threshold``, ``roc_auc``, ``average_precision`` (None when
        only one class is present), ``precision``, ``recall``, ``f1``, ``accuracy``,
        ``confusion_matrix`` ([[TN, FP], [FN, TP]]), ``roc_curve`` {fpr, tpr, thresholds}
        and ``pr_curve`` {precision, recall, thresholds}, each at most 200 points.

    Examples
    --------
    >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    >>> m["roc_auc"], m["confusion_matrix"]
    (0.75, [[1, 1], [1, 1]])
    """
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    t = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    if t.shape != s.shape or t.ndim != 1:
        raise WafertkError(f"y_true {t.shape} and score {s.shape} must be 1-D of one length")
    if not np.isfinite(s).all():
        raise WafertkError("score holds NaN or infinite values")
    pred = s >= threshold
    tp = int((pred & t).sum())
    fp = int((pred & ~t).sum())
    fn = int((~pred & t).sum())
    tn = int((~pred & ~t).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    both = 0 < t.sum() < len(t)
    out: dict[str, Any] = {
        "n": int(len(t)),
        "n_positive": int(t.sum()),
        "threshold": float(threshold),
        "roc_auc": float(roc_auc_score(t, s)) if both else None,
        "average_precision": float(average_precision_score(t, s)) if both else None,
        "precision": prec,
        "recall": rec,
        "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "accuracy": float((pred == t).mean()) if len(t) else 0.0,
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "roc_curve": {"fpr": [], "tpr": [], "thresholds": []},
        "pr_curve": {"precision": [], "recall": [], "thresholds": []},
    }
    if both:
        fpr, tpr, thr = roc_curve(t, s)
        f, tp_, th = _subsample(fpr, tpr, thr)
        out["roc_curve"] = {"fpr": f, "tpr": tp_, "thresholds": th}
        p, r, thr = precision_recall_curve(t, s)
        p_, r_ = _subsample(p[:-1], r[:-1]) if len(thr) else ([], [])
        (th_,) = _subsample(thr) if len(thr) else ([],)
        out["pr_curve"] = {"precision": p_, "recall": r_, "thresholds": th_}
    return out


def summary_figures(*, binary: dict | None = None, metrics: dict | None = None
                    ) -> dict[str, Any]:
    """The compact figures recorded in a model's manifest (``extra.validation``).

    Parameters
    ----------
    binary : dict, optional
        From :func:`binary_metrics` (a detector).
    metrics : dict, optional
        From :func:`classification_metrics` (a classifier).

    Returns
    -------
    dict
        Detector: ``n``, ``n_defective``, ``roc_auc``, ``average_precision``, ``threshold``,
        ``recall``, ``precision``, ``f1``. Classifier: ``n``, ``accuracy``,
        ``balanced_accuracy``, ``macro_f1``, ``per_class_f1`` and ``support`` by class.
        Both when both are given.

    Examples
    --------
    >>> b = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    >>> summary_figures(binary=b)["recall"]
    0.5
    """
    if binary is None and metrics is None:
        raise WafertkError("no figures to summarise: give binary and/or metrics")
    out: dict[str, Any] = {}
    if binary is not None:
        out.update({"n": binary["n"], "n_defective": binary["n_positive"]})
        out.update({k: binary[k] for k in ("roc_auc", "average_precision", "threshold",
                                           "recall", "precision", "f1")})
    if metrics is not None:
        out.update({k: metrics[k] for k in ("n", "accuracy", "balanced_accuracy", "macro_f1")})
        out["per_class_f1"] = {c: v["f1"] for c, v in metrics["per_class"].items()}
        out["support"] = {c: v["support"] for c, v in metrics["per_class"].items()}
    return out


# ---------------------------------------------------------------------------- report files
def _plot_confusion(cm: np.ndarray, classes: list[str], path: Path, normalized: bool) -> None:
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    k = len(classes)
    data = cm.astype(np.float64)
    if normalized:
        rows = data.sum(axis=1, keepdims=True)
        data = np.divide(data, rows, out=np.zeros_like(data), where=rows > 0)
    side = max(4.0, 0.65 * k + 2)
    fig = Figure(figsize=(side, side * 0.9))
    ax = fig.add_subplot()
    im = ax.imshow(data, cmap="Blues", vmin=0, vmax=1 if normalized else max(data.max(), 1))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalized else ""))
    hi = data.max() / 2 if data.size else 0
    for i in range(k):
        for j in range(k):
            txt = f"{data[i, j]:.2f}" if normalized else f"{int(cm[i, j])}"
            ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                    color="white" if data[i, j] > hi else "black")
    fig.tight_layout()
    _save_fig(fig, path)


def _save_fig(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _plot_curve(x, y, xlabel: str, ylabel: str, title: str, path: Path,
                diagonal: bool = False) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4))
    ax = fig.add_subplot()
    ax.plot(x, y, lw=2)
    if diagonal:
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_fig(fig, path)


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _markdown(title: str, metrics, binary, extra) -> str:
    lines = [f"# {title}", ""]
    if binary is not None:
        lines += ["## Detection (binary)", "", "| metric | value |", "| --- | --- |"]
        for k in ("n", "n_positive", "threshold", "roc_auc", "average_precision", "precision",
                  "recall", "f1", "accuracy"):
            lines.append(f"| {k} | {_fmt(binary.get(k))} |")
        (tn, fp), (fn, tp) = binary["confusion_matrix"]
        lines += ["", f"Confusion matrix (rows true): TN {tn}, FP {fp}, FN {fn}, TP {tp}", ""]
    if metrics is not None:
        lines += ["## Classification", "", "| metric | value |", "| --- | --- |"]
        for k in ("n", "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "log_loss",
                  "top2_accuracy"):
            if k in metrics:
                lines.append(f"| {k} | {_fmt(metrics[k])} |")
        lines += ["", "| class | precision | recall | f1 | support |",
                  "| --- | --- | --- | --- | --- |"]
        for c, v in metrics["per_class"].items():
            lines.append(f"| {c} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} "
                         f"| {v['support']} |")
        classes = metrics["classes"]
        lines += ["", "Confusion matrix (rows = true, columns = predicted):", "",
                  "| true \\ pred | " + " | ".join(classes) + " |",
                  "| --- |" + " --- |" * len(classes)]
        for c, row in zip(classes, metrics["confusion_matrix"], strict=True):
            lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
        lines.append("")
    if extra:
        lines += ["## Details", "", "```json", json.dumps(extra, indent=2, default=str), "```",
                  ""]
    return "\n".join(lines)


def _html(title: str, md_metrics, binary, extra, images: dict[str, Path]) -> str:
    esc = html.escape

    def table(rows: list[tuple[str, ...]], head: tuple[str, ...]) -> str:
        h = "".join(f"<th>{esc(x)}</th>" for x in head)
        body = "".join("<tr>" + "".join(f"<td>{esc(str(x))}</td>" for x in r) + "</tr>"
                       for r in rows)
        return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"

    parts = [f"<h1>{esc(title)}</h1>"]
    if binary is not None:
        parts.append("<h2>Detection (binary)</h2>")
        parts.append(table([(k, _fmt(binary.get(k))) for k in (
            "n", "n_positive", "threshold", "roc_auc", "average_precision", "precision",
            "recall", "f1", "accuracy")], ("metric", "value")))
        (tn, fp), (fn, tp) = binary["confusion_matrix"]
        parts.append(table([("good", tn, fp), ("defective", fn, tp)],
                           ("true \\ predicted", "good", "defective")))
    m = md_metrics
    if m is not None:
        parts.append("<h2>Classification</h2>")
        parts.append(table([(k, _fmt(m[k])) for k in (
            "n", "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "log_loss",
            "top2_accuracy") if k in m], ("metric", "value")))
        parts.append(table([(c, f"{v['precision']:.4f}", f"{v['recall']:.4f}",
                             f"{v['f1']:.4f}", v["support"]) for c, v in m["per_class"].items()],
                           ("class", "precision", "recall", "f1", "support")))
    for name, p in images.items():
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        parts.append(f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{esc(name)}</figcaption></figure>")
    if extra:
        parts.append("<h2>Details</h2><pre>"
                     + esc(json.dumps(extra, indent=2, default=str)) + "</pre>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px}"
             "table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}"
             "figure{display:inline-block;margin:0.5em}img{max-width:520px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def write_evaluation_report(out_dir: str | os.PathLike, *, title: str,
                            metrics: dict | None = None, binary: dict | None = None,
                            extra: dict | None = None) -> dict[str, Path]:
    """Write the evaluation report files into ``out_dir`` (each file atomically).

    Parameters
    ----------
    out_dir : str or os.PathLike
        Created if missing.
    title : str
    metrics : dict, optional
        From :func:`classification_metrics`.
    binary : dict, optional
        From :func:`binary_metrics`.
    extra : dict, optional
        Any further JSON-serialisable details (model, data, skipped counts, ...).

    Returns
    -------
    dict of str to pathlib.Path
        ``json``, ``md``, ``html``, ``confusion_matrix``, ``confusion_matrix_normalized``
        (from ``metrics``, else from ``binary``), and ``roc_curve`` / ``pr_curve`` when
        ``binary`` is given. The HTML embeds the PNGs (base64) and loads nothing from the
        network.
    """
    if metrics is None and binary is None:
        raise WafertkError("nothing to report: give metrics and/or binary")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if metrics is not None:
        cm, classes = np.asarray(metrics["confusion_matrix"]), list(metrics["classes"])
    else:
        cm, classes = np.asarray(binary["confusion_matrix"]), ["good", "defective"]
    for key, norm in (("confusion_matrix", False), ("confusion_matrix_normalized", True)):
        paths[key] = out / f"{key}.png"
        _plot_confusion(cm, classes, paths[key], norm)
    if binary is not None and binary["roc_curve"]["fpr"]:
        paths["roc_curve"] = out / "roc_curve.png"
        _plot_curve(binary["roc_curve"]["fpr"], binary["roc_curve"]["tpr"],
                    "false positive rate", "true positive rate",
                    f"ROC (AUC {_fmt(binary['roc_auc'])})", paths["roc_curve"], diagonal=True)
        paths["pr_curve"] = out / "pr_curve.png"
        _plot_curve(binary["pr_curve"]["recall"], binary["pr_curve"]["precision"], "recall",
                    "precision", f"precision-recall (AP {_fmt(binary['average_precision'])})",
                    paths["pr_curve"])
    report = {"title": title, "metrics": metrics, "binary": binary, "extra": extra or {}}
    images = {k: v for k, v in paths.items()}
    for key, name, text in (
        ("json", "report.json", json.dumps(report, indent=2, default=_json_default) + "\n"),
        ("md", "report.md", _markdown(title, metrics, binary, extra)),
        ("html", "report.html", _html(title, metrics, binary, extra, images)),
    ):
        paths[key] = out / name
        with atomic_path(paths[key]) as tmp:
            tmp.write_text(text)
    return paths


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


# ---------------------------------------------------------------------------- any model
def evaluate_model(model_path: str | os.PathLike, wafers_path: str | os.PathLike,
                   out_dir: str | os.PathLike, *, batch_size: int = 4096) -> dict[str, Any]:
    """Evaluate a saved model on a labeled ``wafers.h5`` and write the report.

    A detector (kind ``"cnn-detector"``, classes ``["good", "defective"]``) gets binary
    metrics with truth ``label != "none"`` and its manifest's ``extra["threshold"]`` (0.5 if
    absent). A classifier gets multi-class metrics on the wafers whose label is one of its
    classes; the others (and unlabeled wafers) are skipped and counted.

    Parameters
    ----------
    model_path : str or os.PathLike
        A shipped model's name (``detector``, ``classifier``, ``xgboost``) or a saved model
        folder of any kind :func:`wafertk.registry.load_model` knows.
    wafers_path : str or os.PathLike
        Labeled wafers.h5, streamed in batches.
    out_dir : str or os.PathLike
        Report folder (see :func:`write_evaluation_report`).
    batch_size : int, default 4096

    Returns
    -------
    dict
        The content of ``report.json`` plus ``"files"`` (name -> path).

    Raises
    ------
    UnknownNameError
        ``model_path`` is neither a folder nor a shipped model's name.
    WafertkError
        When the file carries no labels (``"...: no labels to evaluate against"``) or no
        wafer has a label the model knows.
    """
    from wafertk import registry
    from wafertk.data.h5 import WaferFile
    from wafertk.data.waferset import NONE_CLASS
    from wafertk.models.manifest import DETECTOR_CLASSES, DETECTOR_KINDS, load_manifest

    model_path = registry.resolve_model(model_path)
    man = load_manifest(model_path)
    pred = registry.load_model(model_path)
    classes = [str(c) for c in getattr(pred, "classes_", man.classes)]
    detector = man.kind in DETECTOR_KINDS or classes == DETECTOR_CLASSES
    truth: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    skipped_unlabeled = skipped_other = total = 0
    with WaferFile(wafers_path) as f:
        if f.read_column("label", 0, 0) is None:
            raise WafertkError(f"{wafers_path}: no labels to evaluate against")
        for b in f.iter_batches(batch_size):
            total += len(b)
            lab = b.label_strings().astype(str)
            labeled = lab != ""
            keep = labeled if detector else labeled & np.isin(lab, classes)
            skipped_unlabeled += int((~labeled).sum())
            skipped_other += int((labeled & ~keep).sum())
            if not keep.any():
                continue
            sub = b.take(keep)
            probs.append(np.asarray(pred.predict_proba(sub), dtype=np.float64))
            truth.append(lab[keep])
    if not truth:
        if skipped_other:
            raise WafertkError(f"{wafers_path}: no wafer has a label among the model's classes "
                               f"({', '.join(classes)})")
        raise WafertkError(f"{wafers_path}: no labels to evaluate against")
    y = np.concatenate(truth)
    p = np.concatenate(probs)
    extra = {"model": str(model_path), "model_kind": man.kind, "data": str(wafers_path),
             "wafers_in_file": total, "evaluated": int(len(y)),
             "skipped_unlabeled": skipped_unlabeled, "skipped_other_class": skipped_other}
    metrics = binary = None
    if detector:
        thr = man.extra.get("threshold")
        thr = 0.5 if thr is None else float(thr)
        binary = binary_metrics(y != NONE_CLASS, p[:, 1], thr)
        title = f"Detector evaluation: {Path(model_path).name} on {Path(wafers_path).name}"
    else:
        y_pred = np.asarray(classes, dtype=object)[p.argmax(axis=1)]
        metrics = classification_metrics(y, y_pred, classes, proba=p)
        title = f"Classifier evaluation: {Path(model_path).name} on {Path(wafers_path).name}"
    files = write_evaluation_report(out_dir, title=title, metrics=metrics, binary=binary,
                                    extra=extra)
    return {"title": title, "metrics": metrics, "binary": binary, "extra": extra,
            "files": {k: str(v) for k, v in files.items()}}
