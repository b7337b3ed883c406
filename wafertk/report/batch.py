"""The batch inspection report: accumulation (bounded memory) and HTML rendering."""

from __future__ import annotations

import base64
import datetime as _dt
import heapq
import html
import io
import itertools
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from wafertk._atomic import atomic_path
from wafertk.data.waferset import NONE_CLASS, WM811K_CLASSES, WaferSet
from wafertk.errors import WafertkError

#: RGB of no die, pass, fail in thumbnails
THUMB_COLOURS = np.array([[236, 236, 236], [140, 196, 140], [214, 39, 40]], np.uint8)


def render_thumbnail_png(m: np.ndarray, size: int = 48) -> bytes:
    """A wafer map as a small PNG (no die light grey, pass green, fail red).

    Parameters
    ----------
    m : ndarray of shape (H, W), uint8 in {0, 1, 2}
    size : int, default 48
        Side of the square thumbnail (fail-preserving resize).

    Returns
    -------
    bytes
        PNG file content.
    """
    from PIL import Image

    from wafertk.data.preprocess import resize_map

    small = resize_map(np.asarray(m, np.uint8), size)
    rgb = THUMB_COLOURS[np.minimum(small, 2)]
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class BatchReportBuilder:
    """Accumulate inspection results batch by batch, then write ``report.html``.

    Parameters
    ----------
    mode : str
        ``"detect"``, ``"classify"`` or ``"two-phase"``.
    max_thumbs : int, default 24
        Thumbnails per pattern (highest confidence first).
    max_review : int, default 48
        Review wafers shown (lowest confidence first).
    max_lots : int, default 200
        Rows of the per-lot table (highest defect rate first).
    thumb_size : int, default 48
    """

    def __init__(self, mode: str = "two-phase", *, max_thumbs: int = 24, max_review: int = 48,
                 max_lots: int = 200, thumb_size: int = 48) -> None:
        self.mode = mode
        self.max_thumbs, self.max_review, self.max_lots = max_thumbs, max_review, max_lots
        self.thumb_size = thumb_size
        self.n = 0
        self.n_defective = 0
        self.n_review = 0
        self.pattern_counts: Counter = Counter()
        self.lots: dict[str, list] = defaultdict(lambda: [0, 0, Counter(), 0])
        self._thumbs: dict[str, list] = defaultdict(list)  # min-heaps of (conf, tie, id, png)
        self._review: list = []  # max-heap via negative confidence
        self._tie = itertools.count()
        self._labels: list[np.ndarray] = []
        self._preds: list[np.ndarray] = []
        self.meta: dict = {}

    # ---------------------------------------------------------------- accumulate
    def add(self, ws: WaferSet, cols: dict[str, np.ndarray]) -> None:
        """Add one batch: the wafers and the predicted columns of :mod:`wafertk.inspect`."""
        n = len(ws)
        self.n += n
        if "pattern" in cols:
            pattern = np.asarray(cols["pattern"]).astype(str)
            conf = np.asarray(cols["confidence"], np.float64)
            review = np.asarray(cols["review"]).astype(bool)
        else:
            d = np.asarray(cols["defective"]) == 1
            pattern = np.where(d, "defective", "good")
            p = np.asarray(cols["p_defect"], np.float64)
            conf = np.where(d, p, 1 - p)
            review = np.zeros(n, bool)
        defective = pattern != NONE_CLASS if "pattern" in cols else pattern == "defective"
        self.n_defective += int(defective.sum())
        self.n_review += int(review.sum())
        self.pattern_counts.update(pattern.tolist())
        lots = np.asarray(cols["lot"]).astype(str)
        for lot in np.unique(lots):
            sel = lots == lot
            rec = self.lots[lot]
            rec[0] += int(sel.sum())
            rec[1] += int(defective[sel].sum())
            rec[2].update(pattern[sel & defective].tolist())
            rec[3] += int(review[sel].sum())
        ids = np.asarray(cols["wafer_id"]).astype(str)
        for i in range(n):
            heap = self._thumbs[pattern[i]]
            c = float(conf[i]) if np.isfinite(conf[i]) else 0.0
            if len(heap) < self.max_thumbs or c > heap[0][0]:
                item = (c, next(self._tie), ids[i], lots[i], self._png(ws[i]))
                if len(heap) < self.max_thumbs:
                    heapq.heappush(heap, item)
                else:
                    heapq.heapreplace(heap, item)
        for i in np.flatnonzero(review):
            c = float(conf[i]) if np.isfinite(conf[i]) else 0.0
            if len(self._review) < self.max_review or -c > self._review[0][0]:
                extra = ""
                if "top2" in cols and cols["top2"][i]:
                    extra = f"{cols['top2'][i]} {float(cols['p_top2'][i]):.2f}"
                item = (-c, next(self._tie), ids[i], lots[i], pattern[i], extra,
                        self._png(ws[i]))
                if len(self._review) < self.max_review:
                    heapq.heappush(self._review, item)
                else:
                    heapq.heapreplace(self._review, item)
        if ws.has_labels:
            lab = ws.label_strings().astype(str)
            keep = lab != ""
            if self.mode == "detect":
                lab = np.where(lab == NONE_CLASS, "good", "defective")
            self._labels.append(lab[keep])
            self._preds.append(pattern[keep])

    def _png(self, m: np.ndarray) -> bytes:
        return render_thumbnail_png(m, self.thumb_size)

    # ---------------------------------------------------------------- render
    def write(self, path: str | os.PathLike) -> Path:
        """Render the report into ``path`` (atomically)."""
        with atomic_path(path) as tmp:
            tmp.write_text(self.render(), encoding="utf-8")
        return Path(path)

    def render(self) -> str:
        """The whole report as one HTML string."""
        parts = [_HEAD.format(title="wafertk inspection report")]
        parts.append(self._summary())
        parts.append(self._pareto())
        parts.append(self._lots_table())
        parts.append(self._gallery())
        parts.append(self._review_section())
        if self._labels:
            parts.append(self._metrics_section())
        parts.append("</main></body></html>\n")
        return "\n".join(parts)

    def _summary(self) -> str:
        m = self.meta
        rate = self.n_defective / self.n if self.n else 0.0
        rows = [("Wafers", f"{self.n:,}"), ("Lots", f"{len(self.lots):,}")]
        if self.mode != "classify":
            rows.append(("Defective", f"{self.n_defective:,} ({rate:.1%})"))
        if self.mode != "detect":
            rows.append(("Flagged for review", f"{self.n_review:,}"))
        rows.append(("Mode", self.mode))
        for key, label in (("detector", "Detector"), ("classifier", "Pattern model"),
                           ("threshold", "Phase-1 threshold"), ("review_below", "Review below"),
                           ("source", "Input"), ("seconds", "Inference seconds")):
            if m.get(key) is not None:
                v = m[key]
                rows.append((label, f"{v:.4g}" if isinstance(v, float) else str(v)))
        rows.append(("Generated", _dt.datetime.now().isoformat(timespec="seconds")))
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                       for k, v in rows)
        return f'<section id="summary"><h2>Run summary</h2><table class="kv">{body}</table>' \
               "</section>"

    def _pareto(self) -> str:
        items = self.pattern_counts.most_common()
        if self.mode != "detect":
            items = [(k, v) for k, v in items if k != NONE_CLASS] or items
        title = "Pattern pareto" + (" (defective wafers)" if self.mode == "two-phase" else "")
        if not items:
            return f'<section id="pareto"><h2>{title}</h2><p>No wafers.</p></section>'
        total = sum(v for _, v in items)
        w, bar_h, label_w = 640, 22, 110
        h = bar_h * len(items) + 10
        vmax = max(v for _, v in items)
        svg = [f'<svg width="{w}" height="{h}" '
               f'role="img" aria-label="pattern counts">']
        cum = 0
        for i, (k, v) in enumerate(items):
            cum += v
            y = 5 + i * bar_h
            bw = (w - label_w - 170) * v / vmax
            svg.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" '
                       f'font-size="13">{html.escape(k)}</text>')
            svg.append(f'<rect x="{label_w}" y="{y + 3}" width="{bw:.1f}" height="{bar_h - 6}" '
                       f'fill="{"#d62728" if k not in ("good", NONE_CLASS) else "#8cc48c"}"/>')
            svg.append(f'<text x="{label_w + bw + 6:.1f}" y="{y + 15}" font-size="12">'
                       f"{v:,} ({v / total:.1%}, cum. {cum / total:.0%})</text>")
        svg.append("</svg>")
        return f'<section id="pareto"><h2>{title}</h2>{"".join(svg)}</section>'

    def _lots_table(self) -> str:
        recs = sorted(self.lots.items(),
                      key=lambda kv: (-(kv[1][1] / max(kv[1][0], 1)), -kv[1][0], kv[0]))
        shown = recs[: self.max_lots]
        rows = []
        for lot, (n, d, pats, rev) in shown:
            dom = pats.most_common(1)[0][0] if pats else "-"
            rows.append(f"<tr><td>{html.escape(lot or '(no lot)')}</td><td>{n}</td><td>{d}</td>"
                        f"<td>{d / max(n, 1):.1%}</td><td>{html.escape(dom)}</td>"
                        f"<td>{rev}</td></tr>")
        note = ""
        if len(recs) > len(shown):
            note = (f'<p class="note">Showing the {len(shown)} lots with the highest defect rate '
                    f"of {len(recs):,}; predictions.csv has every wafer.</p>")
        return ('<section id="lots"><h2>Per-lot summary</h2>' + note +
                '<table class="grid"><thead><tr><th>Lot</th><th>Wafers</th><th>Defective</th>'
                "<th>Defect rate</th><th>Dominant pattern</th><th>Flagged</th></tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table></section>")

    def _gallery(self) -> str:
        order = [k for k, _ in self.pattern_counts.most_common()]
        blocks = []
        for k in order:
            heap = self._thumbs.get(k)
            if not heap:
                continue
            items = sorted(heap, key=lambda t: -t[0])
            figs = "".join(
                f'<figure><img src="{_data_uri(png)}" width="{self.thumb_size}" '
                f'height="{self.thumb_size}" alt="{html.escape(wid)}" '
                f'title="{html.escape(wid)} lot {html.escape(lot)} conf {c:.2f}">'
                f"<figcaption>{c:.2f}</figcaption></figure>"
                for c, _, wid, lot, png in items)
            blocks.append(f'<h3>{html.escape(k)} <small>({self.pattern_counts[k]:,} wafers, '
                          f"{len(items)} shown)</small></h3><div class=\"thumbs\">{figs}</div>")
        return ('<section id="gallery"><h2>Wafers by pattern</h2><p class="note">Highest '
                f"confidence first, at most {self.max_thumbs} per pattern. Colours: "
                '<span class="sw nodie"></span> no die <span class="sw pass"></span> pass '
                '<span class="sw fail"></span> fail.</p>' + "".join(blocks) + "</section>")

    def _review_section(self) -> str:
        if self.mode == "detect":
            return ('<section id="review"><h2>Flagged for review</h2><p>Review flags come '
                    "from the pattern classifier (not run in detect mode).</p></section>")
        items = sorted(self._review, key=lambda t: -t[0])
        if not items:
            return ('<section id="review"><h2>Flagged for review</h2>'
                    "<p>No wafer below the review confidence.</p></section>")
        rows = "".join(
            f'<tr><td><img src="{_data_uri(png)}" width="{self.thumb_size}" '
            f'height="{self.thumb_size}" alt=""></td><td>{html.escape(wid)}</td>'
            f"<td>{html.escape(lot)}</td><td>{html.escape(pat)}</td><td>{-negc:.2f}</td>"
            f"<td>{html.escape(alt)}</td></tr>"
            for negc, _, wid, lot, pat, alt, png in items)
        return (f'<section id="review"><h2>Flagged for review ({self.n_review:,})</h2>'
                f'<p class="note">Lowest confidence first, at most {self.max_review} shown.</p>'
                '<table class="grid"><thead><tr><th>Map</th><th>Wafer</th><th>Lot</th>'
                "<th>Pattern</th><th>Confidence</th><th>Runner-up</th></tr></thead>"
                f"<tbody>{rows}</tbody></table></section>")

    def _metrics_section(self) -> str:
        y = np.concatenate(self._labels)
        p = np.concatenate(self._preds)
        if self.mode == "detect":
            names = ["good", "defective"]
        else:
            names = [c for c in WM811K_CLASSES if c in set(y) | set(p)]
            names += sorted((set(y) | set(p)) - set(names))
        cm, per_class, overall = _metrics(y, p, names)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in names)
        body = []
        for i, c in enumerate(names):
            tot = max(int(cm[i].sum()), 1)
            cells = "".join(
                f'<td style="background:rgba(31,119,180,{cm[i, j] / tot:.2f})">{cm[i, j]}</td>'
                for j in range(len(names)))
            body.append(f"<tr><th>{html.escape(c)}</th>{cells}</tr>")
        pc = "".join(
            f"<tr><td>{html.escape(c)}</td><td>{r['precision']:.3f}</td><td>{r['recall']:.3f}"
            f"</td><td>{r['f1']:.3f}</td><td>{r['support']}</td></tr>"
            for c, r in per_class.items())
        ov = " &middot; ".join(f"{html.escape(k)} {v:.3f}" for k, v in overall.items())
        return ('<section id="metrics"><h2>Against the labels in the input</h2>'
                f'<p>{len(y):,} labeled wafers: {ov}</p><h3>Confusion matrix</h3>'
                '<p class="note">Rows: label, columns: prediction.</p>'
                f'<table class="grid cm"><thead><tr><th></th>{head}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table><h3>Per class</h3>"
                '<table class="grid"><thead><tr><th>Class</th><th>Precision</th>'
                "<th>Recall</th><th>F1</th><th>Support</th></tr></thead>"
                f"<tbody>{pc}</tbody></table></section>")


def _metrics(y: np.ndarray, p: np.ndarray, names: list[str]):
    """Confusion matrix, per-class P/R/F1 and overall figures (shared evaluate module first)."""
    try:
        from wafertk.evaluate import classification_metrics

        res = classification_metrics(y, p, names)
        cm = np.asarray(res["confusion_matrix"], np.int64)
        per = res["per_class"]
        per_class = {c: {k: float(per[c][k]) for k in ("precision", "recall", "f1")}
                     | {"support": int(per[c].get("support", (y == c).sum()))} for c in names}
        overall = {k: float(res[k]) for k in ("accuracy", "balanced_accuracy", "macro_f1")
                   if k in res}
        if cm.shape == (len(names), len(names)):
            return cm, per_class, overall
    except (ImportError, KeyError, TypeError, ValueError, IndexError, WafertkError):
        pass
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    cm = confusion_matrix(y, p, labels=names)
    pr, rc, f1, sup = precision_recall_fscore_support(y, p, labels=names, zero_division=0)
    per_class = {c: {"precision": float(pr[i]), "recall": float(rc[i]), "f1": float(f1[i]),
                     "support": int(sup[i])} for i, c in enumerate(names)}
    present = sup > 0
    overall = {"accuracy": float(accuracy_score(y, p)),
               "macro_f1": float(f1[present].mean()) if present.any() else 0.0}
    return cm, per_class, overall


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #222; background: #fafafa; }}
main {{ max-width: 1100px; margin: 0 auto; padding: 16px 24px; }}
h1 {{ font-size: 1.5em; }} h2 {{ border-bottom: 1px solid #ddd; padding-bottom: 4px; }}
h3 small {{ color: #777; font-weight: normal; }}
table.kv th {{ text-align: left; padding-right: 16px; color: #555; font-weight: 600; }}
table.grid {{ border-collapse: collapse; font-size: 13px; }}
table.grid th, table.grid td {{ border: 1px solid #ddd; padding: 3px 8px; text-align: right; }}
table.grid th:first-child, table.grid td:first-child {{ text-align: left; }}
table.grid thead th {{ background: #eee; }}
.thumbs {{ display: flex; flex-wrap: wrap; gap: 6px; }}
figure {{ margin: 0; text-align: center; font-size: 11px; color: #555; }}
figure img, td img {{ image-rendering: pixelated; border: 1px solid #ccc; display: block; }}
.note {{ color: #666; font-size: 13px; }}
.sw {{ display: inline-block; width: 12px; height: 12px; border: 1px solid #999;
      vertical-align: middle; }}
.sw.nodie {{ background: rgb(236,236,236); }} .sw.pass {{ background: rgb(140,196,140); }}
.sw.fail {{ background: rgb(214,39,40); }}
</style></head><body><main>
<h1>{title}</h1>"""
