"""The batch inspection report: streamed accumulation (memory bounded) and HTML rendering.

What :class:`BatchReportBuilder` retains does not grow with the number of wafers:

* counts per pattern and a confusion-count matrix (classes x classes), updated per batch;
* per lot, a compact record (wafers, defective, flagged, defect-pattern counts) for at most
  ``max_open_lots`` *open* lots plus the ``max_lots`` highest-ranked *closed* lots (pruned
  when it exceeds ``max_lots`` by a quarter);
* a stacked map (fail and die counts on a ``stack_size`` x ``stack_size`` grid) for each open
  lot and for at most ``max_stacks`` closed lots (the highest-ranked ones);
* per pattern, one reservoir sample of at most ``max_thumbs`` thumbnails per confidence bin;
* the ``max_review`` flagged wafers of lowest confidence.

Lots normally arrive contiguously (a file is written lot by lot). A lot is *open* while its
wafers arrive; when a batch brings a new lot and ``max_open_lots`` lots are open, the one
updated least recently is *closed* and ranked. If wafers of a closed lot come later, the lot
is reopened and its counts continue when its record is still kept (and so does its stacked
map if that was kept; otherwise a new stack starts and its caption says how many of the
lot's wafers it covers); a lot whose record was already pruned starts a new record and counts
as a lot again.
"""

from __future__ import annotations

import base64
import datetime as _dt
import heapq
import html
import io
import itertools
import math
import os
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np

from wafertk._atomic import atomic_path
from wafertk.data.preprocess import _axis_plan, resize_map
from wafertk.data.waferset import NONE_CLASS, WM811K_CLASSES, WaferSet
from wafertk.errors import WafertkError
from wafertk.evaluate import metrics_from_confusion

#: RGB of no die, pass, fail in thumbnails
THUMB_COLOURS = np.array([[236, 236, 236], [140, 196, 140], [214, 39, 40]], np.uint8)

#: Mode names; ``"classify"`` is the former name of ``"single-phase"``
MODES = ("detect", "two-phase", "single-phase")
#: ``anomaly`` (``detect --unsupervised``) is a detect report whose rows carry an
#: ``anomaly_score``: the report then lists the most anomalous wafers first.
_MODE_ALIASES = {"classify": "single-phase", "anomaly": "detect"}

#: Page colours (hex). Every (text, background) pair of :data:`CONTRAST_PAIRS` meets WCAG AA
#: (contrast ratio >= 4.5).
PALETTE = {
    "text": "#222222", "bg": "#fafafa", "surface": "#ffffff", "muted": "#555555",
    "link": "#0b5394", "head_bg": "#e8e8e8", "border": "#c8c8c8",
    "notice_text": "#5a3600", "notice_bg": "#fff1cc", "notice_border": "#c98a00",
}
CONTRAST_PAIRS = [
    ("text", "bg"), ("text", "surface"), ("text", "head_bg"), ("muted", "bg"),
    ("muted", "surface"), ("link", "bg"), ("link", "surface"), ("notice_text", "notice_bg"),
]
#: confusion-matrix cell colour at 100 % of the row (blended with white below that)
MATRIX_RGB = (8, 81, 156)
#: stacked-map colour ramp (share of wafers failing: 0 -> ``STACK_VMAX``, linear)
STACK_RAMP = np.array([[255, 247, 236], [253, 212, 158], [252, 141, 89], [215, 48, 31],
                       [127, 0, 0]], np.float64)
STACK_NO_DIE = np.array([200, 200, 200], np.uint8)
#: share of a lot's wafers failing at a position that gets the darkest colour
STACK_VMAX = 0.5
#: lower edges of the gallery's confidence bins (the last bin ends at 1)
CONF_EDGES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
#: a pattern on fewer wafers of a lot does not make the lot unusual
MIN_CONCENTRATED = 3


# ---------------------------------------------------------------------------- colours
def _rgb(hexcol: str) -> tuple[int, int, int]:
    h = hexcol.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def relative_luminance(rgb: tuple[float, float, float] | str) -> float:
    """WCAG 2 relative luminance of an sRGB colour.

    Parameters
    ----------
    rgb : tuple of 3 numbers in 0..255, or str ``"#rrggbb"``

    Returns
    -------
    float
        In [0, 1].
    """
    if isinstance(rgb, str):
        rgb = _rgb(rgb)
    lin = []
    for v in rgb:
        c = float(v) / 255.0
        lin.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast_ratio(fg, bg) -> float:
    """WCAG 2 contrast ratio of two colours (1 to 21; AA body text needs 4.5).

    Examples
    --------
    >>> round(contrast_ratio("#000000", "#ffffff"), 1)
    21.0
    """
    a, b = relative_luminance(fg), relative_luminance(bg)
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


def text_colour_on(bg) -> str:
    """``"#000000"`` or ``"#ffffff"``, whichever contrasts more with ``bg``."""
    return "#000000" if contrast_ratio("#000000", bg) >= contrast_ratio("#ffffff", bg) \
        else "#ffffff"


def matrix_cell_rgb(share: float) -> tuple[int, int, int]:
    """Background of a confusion-matrix cell holding ``share`` (0..1) of its row."""
    s = min(max(float(share), 0.0), 1.0)
    return tuple(int(round(255 + (c - 255) * s)) for c in MATRIX_RGB)


# ---------------------------------------------------------------------------- images
def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


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
    small = resize_map(np.asarray(m, np.uint8), size)
    return _png(THUMB_COLOURS[np.minimum(small, 2)])


def stack_colours(freq: np.ndarray) -> np.ndarray:
    """RGB of fail shares ``freq`` on :data:`STACK_RAMP` (linear, 0 to :data:`STACK_VMAX`).

    A fixed scale keeps lots comparable: random fails (each position failing on a few
    wafers) stay pale, a signature repeated on many wafers is dark.
    """
    t = np.clip(np.asarray(freq, np.float64) / STACK_VMAX, 0, 1) * (len(STACK_RAMP) - 1)
    lo = np.minimum(np.floor(t).astype(int), len(STACK_RAMP) - 2)
    f = (t - lo)[..., None]
    return np.rint(STACK_RAMP[lo] * (1 - f) + STACK_RAMP[lo + 1] * f).astype(np.uint8)


def render_stack_png(fails: np.ndarray, dies: np.ndarray) -> bytes:
    """A lot's stacked map as a PNG heat map.

    Parameters
    ----------
    fails, dies : ndarray of shape (S, S)
        Per grid cell, the wafers with a fail there and the wafers with a die there.

    Returns
    -------
    bytes
        PNG: grey where no wafer has a die, else the share ``fails / dies`` coloured by
        :func:`stack_colours`.
    """
    dies = np.asarray(dies, np.float64)
    freq = np.divide(np.asarray(fails, np.float64), dies, out=np.zeros_like(dies),
                     where=dies > 0)
    rgb = stack_colours(freq)
    rgb[dies == 0] = STACK_NO_DIE
    return _png(rgb)


def resize_batch(ws: WaferSet, size: int) -> np.ndarray:
    """Every map of ``ws`` resized like :func:`wafertk.data.preprocess.resize_map`.

    Maps of one shape are resized together (vectorised), which is what makes the per-lot
    stacks cheap on large files.

    Returns
    -------
    ndarray of shape (len(ws), size, size), uint8
    """
    n = len(ws)
    out = np.zeros((n, size, size), np.uint8)
    if not n:
        return out
    shapes = np.asarray(ws.shapes, np.int64)
    keys = shapes[:, 0] * (1 << 20) + shapes[:, 1]
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        h, w = (int(v) for v in shapes[idx[0]])
        if h == 0 or w == 0:
            continue
        starts = np.asarray(ws.offsets, np.int64)[idx]
        a = ws.maps_flat[starts[:, None] + np.arange(h * w)].reshape(len(idx), h, w)
        red, ix = _axis_plan(h, size)
        a = np.maximum.reduceat(a, ix, axis=1) if red else a[:, ix]
        red, ix = _axis_plan(w, size)
        out[idx] = np.maximum.reduceat(a, ix, axis=2) if red else a[:, :, ix]
    return out


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt_conf(c: float) -> str:
    """Confidence with enough digits to tell 0.995 from 1 (``"0.87"``, ``"0.9993"``)."""
    if not np.isfinite(c):
        return "n/a"
    if c >= 0.995:
        return f"{min(c, 0.9999):.4f}" if c < 1 else "1.0000"
    return f"{c:.2f}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


# ---------------------------------------------------------------------------- metrics
# ---------------------------------------------------------------------------- lots
class _Lot:
    """Compact per-lot counters and (optionally) its stacked map."""

    __slots__ = ("name", "n", "n_def", "n_review", "patterns", "fails", "dies", "stack_n",
                 "score")

    def __init__(self, name: str) -> None:
        self.name = name
        self.n = self.n_def = self.n_review = 0
        self.patterns: dict[str, int] = {}
        self.fails: np.ndarray | None = None
        self.dies: np.ndarray | None = None
        self.stack_n = 0
        self.score = 0.0  # attention score when last closed

    def drop_stack(self) -> None:
        self.fails = self.dies = None
        self.stack_n = 0


class _Rates:
    """Run-wide rates a lot is compared with (add-one smoothed; ``raw``: as observed)."""

    def __init__(self, n: int, n_def: int, counts: Counter) -> None:
        self.n = n
        self.raw = n_def / n if n else 0.0
        self.defect = (n_def + 1) / (n + 2)
        self.counts = counts

    def pattern(self, p: str) -> float:
        return (self.counts.get(p, 0) + 1) / (self.n + 2)


def _z(k: int, n: int, r: float) -> float:
    return (k - n * r) / math.sqrt(max(n * r * (1 - r), 1e-12))


def _lot_score(rec: _Lot, rates: _Rates, use_patterns: bool) -> tuple[float, str]:
    """Attention score (a binomial z) and the reason, for ranking lots."""
    best = _z(rec.n_def, rec.n, rates.defect)
    why = f"defect rate {_pct(rec.n_def / max(rec.n, 1))} (all wafers {_pct(rates.raw)})"
    if use_patterns:
        for p, k in rec.patterns.items():
            if k < MIN_CONCENTRATED:
                continue
            r = rates.pattern(p)
            z = _z(k, rec.n, r)
            if z > best:
                best, why = z, f"{p} on {k} wafers (expected {rec.n * r:.1f})"
    return best, why


# ---------------------------------------------------------------------------- builder
class BatchReportBuilder:
    """Accumulate inspection results batch by batch, then write ``report.html``.

    Parameters
    ----------
    mode : str
        ``"detect"``, ``"two-phase"`` or ``"single-phase"`` (``"classify"`` is accepted as
        its former name). In single-phase mode every wafer is treated as defective and the
        report says so at the top.
    max_thumbs : int, default 24
        Thumbnails shown per pattern, sampled across the confidence bins
        :data:`CONF_EDGES` (each bin keeps a reservoir sample of this many).
    max_review : int, default 48
        Review wafers kept (lowest confidence first).
    max_lots : int, default 200
        Closed-lot records kept and ranked (the highest attention scores).
    n_attention : int, default 12
        Lots shown first, with their stacked maps.
    max_stacks : int, optional
        Stacked maps kept for closed lots (default ``2 * n_attention``).
    max_open_lots : int, default 32
        Lots accumulated at a time (see the module docstring).
    stack_size : int, default 48
        Side of the stacked-map grid.
    thumb_size : int, default 48
    seed : int, default 0
        Seed of the gallery's reservoir sampling.
    """

    def __init__(self, mode: str = "two-phase", *, max_thumbs: int = 24, max_review: int = 48,
                 max_lots: int = 200, n_attention: int = 12, max_stacks: int | None = None,
                 max_open_lots: int = 32, stack_size: int = 48, thumb_size: int = 48,
                 seed: int = 0) -> None:
        mode = _MODE_ALIASES.get(mode, mode)
        if mode not in MODES:
            raise WafertkError(f"unknown report mode {mode!r} (known: {', '.join(MODES)})")
        self.mode = mode
        self.max_thumbs, self.max_review = int(max_thumbs), int(max_review)
        self.max_lots, self.n_attention = int(max_lots), int(n_attention)
        self.max_stacks = int(max_stacks) if max_stacks is not None else 2 * self.n_attention
        self.max_open_lots = max(1, int(max_open_lots))
        self.stack_size, self.thumb_size = int(stack_size), int(thumb_size)
        self.n = self.n_defective = self.n_review = 0
        self.n_lots = 0  # lot records created
        self.n_lots_reopened = 0
        self.pattern_counts: Counter = Counter()
        self._open: OrderedDict[str, _Lot] = OrderedDict()
        self._closed: dict[str, _Lot] = {}
        self._stacked: set[str] = set()  # closed lots that still hold a stack
        # gallery: (pattern, bin) -> [seen, list of (conf, id, lot, png)]
        self._reservoirs: dict[tuple[str, int], list] = {}
        self._rng = np.random.default_rng(seed)
        self._review: list = []  # max-heap of the lowest confidences via negative confidence
        self._anomalous: list = []  # min-heap of the highest anomaly scores
        #: True once rows with an ``anomaly_score`` were added (``detect --unsupervised``)
        self.anomaly = False
        self._tie = itertools.count()
        self._cm_names: list[str] = (["good", "defective"] if mode == "detect"
                                     else list(WM811K_CLASSES))
        self._cm = np.zeros((len(self._cm_names),) * 2, np.int64)
        self.meta: dict = {}

    # ---------------------------------------------------------------- accumulate
    def add(self, ws: WaferSet, cols: dict[str, np.ndarray]) -> None:
        """Add one batch: the wafers and the predicted columns of :mod:`wafertk.inspect`.

        Parameters
        ----------
        ws : WaferSet
            The batch.
        cols : dict of str to ndarray
            Per-wafer columns: ``wafer_id, lot, wafer_index, p_defect, defective`` and, when a
            pattern classifier ran, ``pattern, confidence, review, top2, p_top2`` (others are
            ignored).
        """
        n = len(ws)
        if n == 0:
            return
        if "pattern" in cols and self.mode != "detect":
            pattern = np.asarray(cols["pattern"]).astype(str)
            conf = np.asarray(cols["confidence"], np.float64)
            review = np.asarray(cols["review"]).astype(bool)
            defective = pattern != NONE_CLASS
        else:
            defective = np.asarray(cols["defective"]).astype(np.int64) == 1
            pattern = np.where(defective, "defective", "good")
            if "p_defect" in cols:
                p = np.asarray(cols["p_defect"], np.float64)
                conf = np.where(defective, p, 1 - p)
            else:  # an anomaly score is no probability: no confidence bins
                conf = np.full(n, np.nan)
            review = np.zeros(n, bool)
        conf = np.where(np.isfinite(conf), conf, 0.0)
        self.n += n
        self.n_defective += int(defective.sum())
        self.n_review += int(review.sum())
        pnames, pinv = np.unique(pattern, return_inverse=True)
        pinv = pinv.reshape(-1)
        self.pattern_counts.update(dict(zip(pnames.tolist(),
                                            np.bincount(pinv, minlength=len(pnames)).tolist(),
                                            strict=True)))
        lots = np.asarray(cols["lot"]).astype(str)
        ids = np.asarray(cols["wafer_id"]).astype(str)
        small = resize_batch(ws, self.stack_size)
        self._add_lots(lots, defective, review, pnames, pinv, small)
        self._add_gallery(pnames, pinv, conf, ids, lots, ws, small)
        self._add_review(review, conf, ids, lots, pattern, cols, ws, small)
        if "anomaly_score" in cols:
            self._add_anomalous(np.asarray(cols["anomaly_score"], np.float64), ids, lots,
                                pattern, ws, small)
        if ws.has_labels:
            lab = ws.label_strings().astype(str)
            keep = lab != ""
            if self.mode == "detect":
                lab = np.where(lab == NONE_CLASS, "good", "defective")
            self._add_confusion(lab[keep], pattern[keep])

    def _add_lots(self, lots, defective, review, pnames, pinv, small) -> None:
        names, first, inv = np.unique(lots, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        nl, npat = len(names), len(pnames)
        cnt = np.bincount(inv, minlength=nl)
        dcnt = np.bincount(inv, weights=defective, minlength=nl).astype(np.int64)
        rcnt = np.bincount(inv, weights=review, minlength=nl).astype(np.int64)
        pc = np.bincount(inv[defective] * npat + pinv[defective],
                         minlength=nl * npat).reshape(nl, npat)
        order = np.argsort(inv, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(cnt)])
        fails = small == 2
        dies = small > 0
        for j in np.argsort(first):
            rec = self._open_lot(str(names[j]))
            rec.n += int(cnt[j])
            rec.n_def += int(dcnt[j])
            rec.n_review += int(rcnt[j])
            for k in np.flatnonzero(pc[j]):
                p = str(pnames[k])
                rec.patterns[p] = rec.patterns.get(p, 0) + int(pc[j, k])
            sel = order[bounds[j]:bounds[j + 1]]
            rec.fails += fails[sel].sum(axis=0, dtype=np.uint32)
            rec.dies += dies[sel].sum(axis=0, dtype=np.uint32)
            rec.stack_n += int(cnt[j])

    def _open_lot(self, name: str) -> _Lot:
        rec = self._open.pop(name, None)
        if rec is None:
            rec = self._closed.pop(name, None)
            if rec is not None:
                self.n_lots_reopened += 1
                self._stacked.discard(name)
            else:
                rec = _Lot(name)
                self.n_lots += 1
            if rec.fails is None:
                shape = (self.stack_size, self.stack_size)
                rec.fails, rec.dies = np.zeros(shape, np.uint32), np.zeros(shape, np.uint32)
            while len(self._open) >= self.max_open_lots:
                self._close(self._open.popitem(last=False)[1])
        self._open[name] = rec
        return rec

    def _rates(self) -> _Rates:
        return _Rates(self.n, self.n_defective, self.pattern_counts)

    def _score(self, rec: _Lot, rates: _Rates) -> tuple[float, str]:
        return _lot_score(rec, rates, self.mode != "detect")

    def _close(self, rec: _Lot) -> None:
        rates = self._rates()
        rec.score = self._score(rec, rates)[0]
        self._closed[rec.name] = rec
        self._stacked.add(rec.name)
        if len(self._stacked) > self.max_stacks:
            # scores as of each lot's closing: cheap, and the site rates change slowly
            low = min(self._stacked, key=lambda k: (self._closed[k].score, k))
            self._closed[low].drop_stack()
            self._stacked.discard(low)
        if len(self._closed) > self.max_lots + max(16, self.max_lots // 4):
            for r in self._closed.values():
                r.score = self._score(r, rates)[0]
            ranked = sorted(self._closed.values(), key=lambda r: (-r.score, r.name))
            for r in ranked[self.max_lots:]:
                del self._closed[r.name]
                self._stacked.discard(r.name)

    def _conf_bin(self, conf: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(CONF_EDGES), conf, side="right") - 1

    def _thumb(self, ws: WaferSet, small: np.ndarray, i: int) -> bytes:
        """Wafer ``i`` at thumbnail size, packed (2 bits a cell) until rendered."""
        m = small[i] if self.thumb_size == self.stack_size else \
            resize_map(np.asarray(ws[i], np.uint8), self.thumb_size)
        return np.packbits(np.stack([m >= 1, m >= 2])).tobytes()

    def _thumb_png(self, packed: bytes) -> bytes:
        s = self.thumb_size
        bits = np.unpackbits(np.frombuffer(packed, np.uint8), count=2 * s * s)
        m = bits.reshape(2, s, s).sum(axis=0)
        return _png(THUMB_COLOURS[m])

    def _add_gallery(self, pnames, pinv, conf, ids, lots, ws, small) -> None:
        nb = len(CONF_EDGES)
        bins = np.clip(self._conf_bin(conf), 0, nb - 1)
        keys = pinv * nb + bins
        for key in np.unique(keys):
            idx = np.flatnonzero(keys == key)
            res = self._reservoirs.setdefault((str(pnames[key // nb]), int(key % nb)), [0, []])
            seen, items = res
            t = seen + 1 + np.arange(len(idx))  # 1-based position in the stream
            take = (t <= self.max_thumbs) | (self._rng.random(len(idx)) * t < self.max_thumbs)
            for i, ti in zip(idx[take], t[take], strict=True):
                item = (float(conf[i]), ids[i], lots[i], self._thumb(ws, small, i))
                if ti <= self.max_thumbs:
                    items.append(item)
                else:
                    items[int(self._rng.integers(self.max_thumbs))] = item
            res[0] = seen + len(idx)

    def _add_review(self, review, conf, ids, lots, pattern, cols, ws, small) -> None:
        cand = np.flatnonzero(review)
        if not len(cand) or self.max_review <= 0:
            return
        if len(self._review) >= self.max_review:
            cand = cand[conf[cand] < -self._review[0][0]]
        cand = cand[np.argsort(conf[cand], kind="stable")[: self.max_review]]
        for i in cand:
            c = float(conf[i])
            if len(self._review) >= self.max_review and -c <= self._review[0][0]:
                continue
            extra = ""
            if "top2" in cols and cols["top2"][i]:
                extra = f"{cols['top2'][i]} {_fmt_conf(float(cols['p_top2'][i]))}"
            item = (-c, next(self._tie), ids[i], lots[i], pattern[i], extra,
                    self._thumb(ws, small, i))
            if len(self._review) < self.max_review:
                heapq.heappush(self._review, item)
            else:
                heapq.heapreplace(self._review, item)

    def _add_anomalous(self, score, ids, lots, pattern, ws, small) -> None:
        """Keep the ``max_review`` highest anomaly scores (a min-heap)."""
        self.anomaly = True
        score = np.where(np.isfinite(score), score, -np.inf)
        cand = np.argsort(-score, kind="stable")[: self.max_review]
        for i in cand:
            s = float(score[i])
            if len(self._anomalous) >= self.max_review and s <= self._anomalous[0][0]:
                break
            item = (s, -next(self._tie), ids[i], lots[i], pattern[i],
                    self._thumb(ws, small, i))
            if len(self._anomalous) < self.max_review:
                heapq.heappush(self._anomalous, item)
            else:
                heapq.heapreplace(self._anomalous, item)

    def _add_confusion(self, lab: np.ndarray, pred: np.ndarray) -> None:
        for name in sorted((set(np.unique(lab).tolist()) | set(np.unique(pred).tolist()))
                           - set(self._cm_names)):
            self._cm_names.append(name)
            k = len(self._cm_names)
            cm = np.zeros((k, k), np.int64)
            cm[: k - 1, : k - 1] = self._cm
            self._cm = cm
        code = {c: i for i, c in enumerate(self._cm_names)}
        k = len(self._cm_names)
        ln, li = np.unique(lab, return_inverse=True)
        pn, pi = np.unique(pred, return_inverse=True)
        t = np.array([code[c] for c in ln.tolist()], np.int64)[li.reshape(-1)]
        p = np.array([code[c] for c in pn.tolist()], np.int64)[pi.reshape(-1)]
        self._cm += np.bincount(t * k + p, minlength=k * k).reshape(k, k)

    # ---------------------------------------------------------------- pickling
    def __getstate__(self) -> dict:
        # sent between processes by wafertk.distributed; itertools.count is not picklable
        # on every Python version, so the tie-breaker travels as its next value
        state = self.__dict__.copy()
        state["_tie"] = next(self._tie)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._tie = itertools.count(state["_tie"])

    # ---------------------------------------------------------------- merge
    def merge(self, other: BatchReportBuilder) -> BatchReportBuilder:
        """Add what ``other`` accumulated over the wafers that follow this builder's.

        Used by :mod:`wafertk.distributed`: each worker streams its range of wafers into its
        own builder and the client merges the builders in file order, so the report is built
        from bounded summaries, never from every row. Counts, the pattern pareto, the
        confusion matrix and the review queue come out as if one builder had seen every
        wafer; lot records are combined by name (a lot split between two ranges is one lot)
        under the same open/closed limits; each gallery reservoir is merged into a uniform
        sample of both streams (a different sample than one builder would have drawn).

        Parameters
        ----------
        other : BatchReportBuilder
            A builder of the same mode and sizes over the wafers after this one's.

        Returns
        -------
        BatchReportBuilder
            ``self``.
        """
        if other.mode != self.mode or (other.stack_size, other.thumb_size) != (
                self.stack_size, self.thumb_size):
            raise WafertkError("cannot merge report builders of different modes or sizes")
        self.n += other.n
        self.n_defective += other.n_defective
        self.n_review += other.n_review
        self.pattern_counts.update(other.pattern_counts)
        # lots: closed ones first (in closing order), then the open ones (least recent first)
        recs = list(other._closed.values()) + list(other._open.values())
        self.n_lots += other.n_lots - len(recs)  # records other created and pruned
        self.n_lots_reopened += other.n_lots_reopened
        for o in recs:
            rec = self._open_lot(o.name)
            rec.n += o.n
            rec.n_def += o.n_def
            rec.n_review += o.n_review
            for p, k in o.patterns.items():
                rec.patterns[p] = rec.patterns.get(p, 0) + k
            if o.fails is not None:
                rec.fails += o.fails
                rec.dies += o.dies
                rec.stack_n += o.stack_n
        for key, (seen, items) in other._reservoirs.items():
            mine = self._reservoirs.setdefault(key, [0, []])
            mine[1] = self._merge_sample(mine[0], mine[1], seen, items)
            mine[0] += seen
        for item in sorted(other._review, key=lambda t: (-t[0], t[1])):
            item = (item[0], next(self._tie), *item[2:])
            if len(self._review) < self.max_review:
                heapq.heappush(self._review, item)
            elif item[0] > self._review[0][0]:
                heapq.heapreplace(self._review, item)
        self.anomaly = self.anomaly or getattr(other, "anomaly", False)
        for item in getattr(other, "_anomalous", []):
            item = (item[0], -next(self._tie), *item[2:])
            if len(self._anomalous) < self.max_review:
                heapq.heappush(self._anomalous, item)
            elif item[0] > self._anomalous[0][0]:
                heapq.heapreplace(self._anomalous, item)
        cm, names = other._cm, other._cm_names
        for name in names:
            if name not in self._cm_names:
                self._cm_names.append(name)
        k = len(self._cm_names)
        if self._cm.shape[0] < k:
            grown = np.zeros((k, k), np.int64)
            grown[: self._cm.shape[0], : self._cm.shape[0]] = self._cm
            self._cm = grown
        idx = np.array([self._cm_names.index(c) for c in names], np.int64)
        self._cm[np.ix_(idx, idx)] += cm
        return self

    def _merge_sample(self, seen_a: int, a: list, seen_b: int, b: list) -> list:
        """A uniform sample of at most ``max_thumbs`` of two streams from their samples."""
        k = self.max_thumbs
        if seen_a + seen_b <= k or len(a) + len(b) <= k:
            return list(a) + list(b)
        # how many of the k come from stream a: hypergeometric, then a uniform subset of each
        na = int(self._rng.hypergeometric(seen_a, seen_b, k)) if seen_a and seen_b else \
            (k if seen_a else 0)
        na = min(max(na, k - len(b)), len(a))
        pick_a = sorted(self._rng.choice(len(a), na, replace=False).tolist()) if na else []
        pick_b = sorted(self._rng.choice(len(b), k - na, replace=False).tolist()) \
            if k - na else []
        return [a[i] for i in pick_a] + [b[i] for i in pick_b]

    # ---------------------------------------------------------------- state
    def confusion(self) -> tuple[np.ndarray, list[str]]:
        """The confusion counts so far over the classes seen (rows: label, columns: prediction)."""
        used = (self._cm.sum(axis=0) + self._cm.sum(axis=1)) > 0
        names = [c for c, u in zip(self._cm_names, used, strict=True) if u]
        return self._cm[np.ix_(used, used)], names

    def ranked_lots(self) -> list[tuple[_Lot, float, str]]:
        """Kept lot records (open and closed), highest attention score first."""
        rates = self._rates()
        recs = [(r, *self._score(r, rates))
                for r in itertools.chain(self._open.values(), self._closed.values())]
        recs.sort(key=lambda t: (-t[1], -t[0].n_def / max(t[0].n, 1), t[0].name))
        return recs

    # ---------------------------------------------------------------- render
    def write(self, path: str | os.PathLike) -> Path:
        """Render the report into ``path`` (atomically)."""
        with atomic_path(path) as tmp:
            tmp.write_text(self.render(), encoding="utf-8")
        return Path(path)

    def render(self) -> str:
        """The whole report as one HTML string."""
        ranked = self.ranked_lots()
        cm, names = self.confusion()
        has_metrics = int(cm.sum()) > 0
        parts = [_HEAD.format(title="wafertk inspection report", **PALETTE)]
        if self.mode == "single-phase":
            parts.append(
                '<p class="notice" role="note"><strong>Single-phase:</strong> every wafer was '
                "treated as defective; use only for wafers already known to be defective. "
                "Each wafer gets a pattern (possibly <code>none</code>); no detector decided "
                "whether it is defective.</p>")
        parts.append(self._contents(ranked, has_metrics))
        parts.append(self._summary())
        if self.anomaly:
            parts.append(self._anomalous_section())
        parts.append(self._lots_section(ranked))
        parts.append(self._pareto())
        parts.append(self._gallery())
        parts.append(self._review_section())
        if has_metrics:
            parts.append(self._metrics_section(cm, names))
        parts.append("</main></body></html>\n")
        return "\n".join(parts)

    def _contents(self, ranked, has_metrics: bool) -> str:
        links = [("summary", "Summary"),
                 ("lots", f"Lots needing attention ({min(self.n_attention, len(ranked))})"),
                 ("pareto", "Patterns"), ("gallery", "Galleries")]
        if self.mode != "detect":
            links.append(("review", f"Review queue ({self.n_review:,})"))
        if self.anomaly:
            links.insert(1, ("anomalous", "Most anomalous wafers"))
        if has_metrics:
            links.append(("metrics", "Against the labels"))
        items = "".join(f'<li><a href="#{k}">{html.escape(v)}</a></li>' for k, v in links)
        return f'<nav class="toc" aria-label="Contents"><ul>{items}</ul></nav>'

    def _summary(self) -> str:
        m = self.meta
        rate = self.n_defective / self.n if self.n else 0.0
        lots = f"{self.n_lots:,}"
        rows = [("Wafers", f"{self.n:,}"), ("Lots", lots)]
        if self.mode == "single-phase":
            rows.append(("With a pattern other than none", f"{self.n_defective:,} ({rate:.1%})"))
        else:
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
        rows.append(("Generated", _dt.datetime.now().astimezone().isoformat(timespec="seconds")))
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                       for k, v in rows)
        note = ""
        if self.n_lots_reopened:
            note = (f'<p class="note">{self.n_lots_reopened:,} time(s) wafers of a lot came '
                    "after the lot had been closed; they were added to its record.</p>")
        return (f'<section id="summary"><h2>Run summary</h2><table class="kv">{body}</table>'
                f"{note}</section>")

    def _lot_cells(self, rec: _Lot, why: str) -> str:
        top = max(rec.patterns.items(), key=lambda kv: (kv[1], kv[0]), default=None)
        dom = f"{top[0]} ({top[1]})" if top and self.mode != "detect" else "-"
        flagged = f'<td class="n">{rec.n_review}</td>' if self.mode != "detect" else ""
        return (f"<td>{html.escape(rec.name or '(no lot)')}</td><td class=\"n\">{rec.n}</td>"
                f"<td class=\"n\">{rec.n_def}</td>"
                f"<td class=\"n\">{_pct(rec.n_def / max(rec.n, 1))}</td>"
                f"<td>{html.escape(dom)}</td>{flagged}<td>{html.escape(why)}</td>")

    def _lot_head(self) -> str:
        flagged = "<th>Flagged</th>" if self.mode != "detect" else ""
        top = "Top pattern (wafers)" if self.mode != "detect" else "Top pattern"
        return (f"<thead><tr><th>Lot</th><th>Wafers</th><th>Defective</th><th>Defect rate</th>"
                f"<th>{top}</th>{flagged}<th>Why listed</th></tr></thead>")

    def _lots_section(self, ranked) -> str:
        s = self.stack_size
        top, rest = ranked[: self.n_attention], ranked[self.n_attention:]
        if not top:
            return ('<section id="lots"><h2>Lots needing attention</h2><p>No wafers.</p>'
                    "</section>")
        cards = []
        for rec, _, why in top:
            if rec.fails is not None and rec.stack_n:
                uri = _data_uri(render_stack_png(rec.fails, rec.dies))
                img = (f'<img class="stack" src="{uri}"'
                       f' width="{3 * s}" height="{3 * s}" alt="stacked map of lot '
                       f'{html.escape(rec.name)}">')
                cover = ("" if rec.stack_n == rec.n else
                         f"<br>stack of the last {rec.stack_n} of {rec.n} wafers")
            else:
                img = '<div class="nostack">stacked map not kept</div>'
                cover = ""
            cards.append(
                f'<figure class="lot">{img}<figcaption><strong>'
                f"{html.escape(rec.name or '(no lot)')}</strong><br>{rec.n_def} of {rec.n} "
                f"defective ({_pct(rec.n_def / max(rec.n, 1))})"
                f"{'' if why.startswith('defect rate') else '<br>' + html.escape(why)}"
                f"{cover}</figcaption></figure>")
        rows = "".join(f"<tr>{self._lot_cells(r, why)}</tr>" for r, _, why in top)
        legend = _data_uri(render_stack_png(
            np.linspace(0, STACK_VMAX, 101)[None, :].repeat(6, 0), np.ones((6, 101))))
        vmax = f"{100 * STACK_VMAX:.0f} %"
        out = [
            '<section id="lots"><h2>Lots needing attention</h2>',
            f'<p class="note">The {len(top)} lots that stand out most: by defect rate, or by a '
            f"pattern on at least {MIN_CONCENTRATED} of their wafers far more often than on all "
            "wafers (ranked by a binomial z-score against the whole run).</p>",
            f'<div class="lots">{"".join(cards)}</div>',
            '<p class="note legend">Stacked map: each wafer map is resized to a '
            f"{s}&times;{s} grid keeping every fail (a cell fails if any die it covers failed), "
            "so maps of different products stack on the same grid; the colour of a cell is the "
            "share of the lot's wafers failing there: "
            f'0 % <img src="{legend}" width="120" height="10" alt="colour scale"> {vmax} or '
            "more (linear); grey: no die on any wafer. A signature repeated on many wafers "
            "(edge ring, center, scratch) shows as a dark shape; random fails stay pale.</p>",
            f'<table class="grid">{self._lot_head()}<tbody>{rows}</tbody></table>',
        ]
        if rest:
            rows = "".join(f"<tr>{self._lot_cells(r, why)}</tr>" for r, _, why in rest)
            out.append(f"<details><summary>{len(rest):,} more lots, ranked</summary>"
                       f'<table class="grid">{self._lot_head()}<tbody>{rows}</tbody></table>'
                       "</details>")
        if self.n_lots > len(ranked):
            out.append(f'<p class="note">{len(ranked):,} of {self.n_lots:,} lots are ranked '
                       "here (the report keeps a bounded number); predictions.csv has every "
                       "wafer.</p>")
        out.append("</section>")
        return "".join(out)

    def _pareto(self) -> str:
        items = self.pattern_counts.most_common()
        if self.mode != "detect":
            items = [(k, v) for k, v in items if k != NONE_CLASS] or items
        title = {"two-phase": "Pattern pareto (defective wafers)",
                 "single-phase": "Pattern pareto (wafers with a pattern other than none)",
                 "detect": "Good and defective"}[self.mode]
        if not items:
            return f'<section id="pareto"><h2>{title}</h2><p>No wafers.</p></section>'
        total = sum(v for _, v in items)
        w, bar_h, label_w = 640, 22, 110
        h = bar_h * len(items) + 10
        vmax = max(v for _, v in items)
        svg = [f'<svg width="{w}" height="{h}" role="img" aria-label="pattern counts">']
        cum = 0
        for i, (k, v) in enumerate(items):
            cum += v
            y = 5 + i * bar_h
            bw = (w - label_w - 190) * v / vmax
            svg.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" '
                       f'font-size="13" fill="{PALETTE["text"]}">{html.escape(k)}</text>')
            svg.append(f'<rect x="{label_w}" y="{y + 3}" width="{bw:.1f}" height="{bar_h - 6}" '
                       f'fill="{"#c62828" if k not in ("good", NONE_CLASS) else "#5b9a5b"}"/>')
            svg.append(f'<text x="{label_w + bw + 6:.1f}" y="{y + 15}" font-size="12" '
                       f'fill="{PALETTE["text"]}">{v:,} ({v / total:.1%}, cum. '
                       f"{cum / total:.0%})</text>")
        svg.append("</svg>")
        return f'<section id="pareto"><h2>{title}</h2>{"".join(svg)}</section>'

    def _gallery_items(self, pattern: str) -> list[tuple]:
        """Up to ``max_thumbs`` of a pattern, taken in turn from each confidence bin."""
        pools = [list(self._reservoirs[(pattern, b)][1]) for b in range(len(CONF_EDGES))
                 if (pattern, b) in self._reservoirs]
        for pool in pools:
            pool.sort(key=lambda t: (t[0], t[1]))
        picked: list = []
        while len(picked) < self.max_thumbs and any(pools):
            for pool in pools:
                if pool and len(picked) < self.max_thumbs:
                    picked.append(pool.pop(len(pool) // 2))
        return sorted(picked, key=lambda t: (t[0], t[1]))

    def _gallery(self) -> str:
        blocks = []
        for k, count in self.pattern_counts.most_common():
            items = self._gallery_items(k)
            if not items:
                continue
            figs = "".join(
                f'<figure><img src="{_data_uri(self._thumb_png(png))}" width="{self.thumb_size}" '
                f'height="{self.thumb_size}" alt="{html.escape(wid)}" '
                f'title="{html.escape(wid)}, lot {html.escape(lot)}, confidence '
                f'{_fmt_conf(c)}"><figcaption>{_fmt_conf(c)}</figcaption></figure>'
                for c, wid, lot, png in items)
            lo, hi = _fmt_conf(items[0][0]), _fmt_conf(items[-1][0])
            span = f"confidence {lo}" + ("" if lo == hi else f" to {hi}")
            blocks.append(f"<h3>{html.escape(k)} <small>({count:,} wafer{'s' * (count != 1)}, "
                          f"{len(items)} shown, {span})</small></h3>"
                          f'<div class="thumbs">{figs}</div>')
        edges = ", ".join(f"{a:g}" for a in CONF_EDGES[1:])
        return ('<section id="gallery"><h2>Wafers by pattern</h2><p class="note">Sampled '
                f"across the confidence range: at most {self.max_thumbs} per pattern, taken in "
                f"turn from confidence bins split at {edges} (a random sample within each "
                "bin), shown from low to high confidence; the caption is the wafer's "
                "confidence. Colours: <span class=\"sw nodie\"></span> no die "
                '<span class="sw pass"></span> pass <span class="sw fail"></span> fail.</p>'
                + "".join(blocks) + "</section>")

    def _anomalous_section(self) -> str:
        items = sorted(self._anomalous, key=lambda t: (-t[0], -t[1]))
        if not items:
            return ('<section id="anomalous"><h2>Most anomalous wafers</h2>'
                    "<p>No wafer scored.</p></section>")
        rows = "".join(
            f'<tr><td><img src="{_data_uri(self._thumb_png(png))}" width="{self.thumb_size}" '
            f'height="{self.thumb_size}" alt=""></td><td>{html.escape(wid)}</td>'
            f"<td>{html.escape(lot)}</td>"
            f'<td class="n">{s:.6g}</td><td>{html.escape(pat)}</td></tr>'
            for s, _, wid, lot, pat, png in items)
        return ('<section id="anomalous"><h2>Most anomalous wafers</h2>'
                f'<p class="note">Highest anomaly score first, the top {len(items)} of '
                f"{self.n:,} wafers; predictions.csv has every score (column "
                "anomaly_score).</p>"
                '<table class="grid"><thead><tr><th>Map</th><th>Wafer</th><th>Lot</th>'
                "<th>Anomaly score</th><th>Decision</th></tr></thead>"
                f"<tbody>{rows}</tbody></table></section>")

    def _review_section(self) -> str:
        if self.mode == "detect":
            return ('<section id="review"><h2>Review queue</h2><p>Review flags come '
                    "from the pattern classifier (not run in detect mode).</p></section>")
        items = sorted(self._review, key=lambda t: (-t[0], t[1]))
        if not items:
            return ('<section id="review"><h2>Review queue</h2>'
                    "<p>No wafer below the review confidence.</p></section>")
        rows = "".join(
            f'<tr><td><img src="{_data_uri(self._thumb_png(png))}" width="{self.thumb_size}" '
            f'height="{self.thumb_size}" alt=""></td><td>{html.escape(wid)}</td>'
            f"<td>{html.escape(lot)}</td><td>{html.escape(pat)}</td>"
            f'<td class="n">{_fmt_conf(-negc)}</td>'
            f"<td>{html.escape(alt)}</td></tr>"
            for negc, _, wid, lot, pat, alt, png in items)
        return (f'<section id="review"><h2>Review queue ({self.n_review:,} flagged)</h2>'
                f'<p class="note">Lowest confidence first, {len(items)} of {self.n_review:,} '
                "shown; predictions.csv has every flagged wafer (column review).</p>"
                '<table class="grid"><thead><tr><th>Map</th><th>Wafer</th><th>Lot</th>'
                "<th>Pattern</th><th>Confidence</th><th>Runner-up</th></tr></thead>"
                f"<tbody>{rows}</tbody></table></section>")

    def _metrics_section(self, cm: np.ndarray, names: list[str]) -> str:
        res = metrics_from_confusion(cm, names)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in names)
        body = []
        for i, c in enumerate(names):
            tot = max(int(cm[i].sum()), 1)
            cells = []
            for j in range(len(names)):
                bg = matrix_cell_rgb(cm[i, j] / tot)
                fg = text_colour_on(bg)
                cells.append(f'<td class="n" style="background:rgb{bg};color:{fg}">'
                             f"{cm[i, j]:,}</td>")
            body.append(f"<tr><th>{html.escape(c)}</th>{''.join(cells)}</tr>")
        pc = "".join(
            f'<tr><td>{html.escape(c)}</td><td class="n">{r["precision"]:.3f}</td>'
            f'<td class="n">{r["recall"]:.3f}</td><td class="n">{r["f1"]:.3f}</td>'
            f'<td class="n">{r["support"]:,}</td></tr>'
            for c, r in res["per_class"].items())
        ov = " &middot; ".join(f"{k.replace('_', ' ')} {res[k]:.3f}"
                               for k in ("accuracy", "balanced_accuracy", "macro_f1"))
        return ('<section id="metrics"><h2>Against the labels in the input</h2>'
                f'<p>{res["n"]:,} labeled wafers: {ov}</p><h3>Confusion matrix</h3>'
                '<p class="note">Rows: label, columns: prediction; shade: share of the row.</p>'
                f'<table class="grid cm"><thead><tr><th></th>{head}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table><h3>Per class</h3>"
                '<table class="grid"><thead><tr><th>Class</th><th>Precision</th>'
                "<th>Recall</th><th>F1</th><th>Support</th></tr></thead>"
                f"<tbody>{pc}</tbody></table></section>")


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: {text}; background: {bg}; }}
main {{ max-width: 1100px; margin: 0 auto; padding: 0 24px 24px; }}
h1 {{ font-size: 1.5em; margin: 16px 0 8px; }}
h2 {{ border-bottom: 1px solid {border}; padding-bottom: 4px; margin-top: 28px; }}
h3 small {{ color: {muted}; font-weight: normal; }}
a {{ color: {link}; }}
nav.toc {{ position: sticky; top: 0; background: {surface}; border-bottom: 1px solid {border};
          z-index: 1; margin: 0 -24px; padding: 6px 24px; }}
nav.toc ul {{ list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap;
             gap: 4px 18px; }}
nav.toc a {{ font-weight: 600; text-decoration: none; }}
nav.toc a:hover, nav.toc a:focus {{ text-decoration: underline; }}
.notice {{ background: {notice_bg}; color: {notice_text}; border: 2px solid {notice_border};
          padding: 10px 14px; border-radius: 4px; font-size: 15px; }}
table.kv th {{ text-align: left; padding-right: 16px; color: {muted}; font-weight: 600; }}
table.grid {{ border-collapse: collapse; font-size: 13px; background: {surface}; }}
table.grid th, table.grid td {{ border: 1px solid {border}; padding: 3px 8px;
                               text-align: left; }}
table.grid td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
table.grid thead th {{ background: {head_bg}; }}
table.cm td {{ min-width: 3.2em; }}
details {{ margin-top: 12px; }} summary {{ cursor: pointer; color: {link}; font-weight: 600; }}
.lots {{ display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 8px; }}
figure.lot {{ width: 160px; background: {surface}; border: 1px solid {border}; padding: 6px;
             font-size: 12px; color: {text}; text-align: left; }}
figure.lot img, .nostack {{ width: 144px; height: 144px; }}
.nostack {{ display: flex; align-items: center; justify-content: center; color: {muted};
           border: 1px dashed {border}; }}
.thumbs {{ display: flex; flex-wrap: wrap; gap: 6px; }}
figure {{ margin: 0; text-align: center; font-size: 11px; color: {muted}; }}
figure img, td img, .legend img {{ image-rendering: pixelated; border: 1px solid {border};
                                   display: block; }}
.legend img {{ display: inline-block; vertical-align: middle; }}
.note {{ color: {muted}; font-size: 13px; }}
.sw {{ display: inline-block; width: 12px; height: 12px; border: 1px solid {muted};
      vertical-align: middle; }}
.sw.nodie {{ background: rgb(236,236,236); }} .sw.pass {{ background: rgb(140,196,140); }}
.sw.fail {{ background: rgb(214,39,40); }}
</style></head><body><main>
<h1>{title}</h1>"""
