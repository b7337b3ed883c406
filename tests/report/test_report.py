"""The batch HTML report: sections, self-containment, bounded size, and a headless render."""

import datetime as dt
import html
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from wafertk.data.preprocess import resize_maps
from wafertk.data.synthetic import make_wafers
from wafertk.data.waferset import WaferSet
from wafertk.errors import WafertkError
from wafertk.evaluate import classification_metrics
from wafertk.report import BatchReportBuilder, render_stack_png, render_thumbnail_png
from wafertk.report.batch import (
    CONTRAST_PAIRS,
    PALETTE,
    contrast_ratio,
    matrix_cell_rgb,
    resize_batch,
    text_colour_on,
)

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def fake_columns(ws, rng, mode="two-phase"):
    n = len(ws)
    labels = np.asarray(ws.labels).astype(str)
    pattern = labels.copy()
    flip = rng.random(n) < 0.2
    pattern[flip] = "Loc"
    conf = rng.uniform(0.3, 1.0, n)
    return {"wafer_id": ws.wafer_id.astype(str), "lot": ws.lot.astype(str),
            "wafer_index": ws.wafer_index, "p_defect": np.where(pattern == "none", 0.1, 0.9),
            "defective": (pattern != "none").astype(int), "pattern": pattern.astype(object),
            "confidence": conf, "review": (conf < 0.6).astype(int),
            "top1": pattern.astype(object), "p_top1": conf,
            "top2": np.full(n, "Center", object), "p_top2": 1 - conf,
            "top3": np.full(n, "", object), "p_top3": np.full(n, np.nan)}


def kv(text, key):
    """The value cell of the summary row ``key``."""
    m = re.search(rf"<tr><th>{re.escape(key)}</th><td>(.*?)</td></tr>", text)
    assert m, key
    return html.unescape(m.group(1))


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    rng = np.random.default_rng(0)
    b = BatchReportBuilder("two-phase", max_thumbs=5, max_review=7, max_lots=10,
                           n_attention=4)
    for seed in range(3):
        ws = make_wafers(120, n_lots=20, random_state=seed)
        b.add(ws, fake_columns(ws, rng))
    b.meta.update(source="x.h5", threshold=0.3, review_below=0.6)
    path = tmp_path_factory.mktemp("rep") / "report.html"
    b.write(path)
    return b, path


def test_report_sections_and_self_contained(report_html):
    b, path = report_html
    text = path.read_text()
    for sec in ("summary", "lots", "pareto", "gallery", "review", "metrics"):
        assert f'id="{sec}"' in text, sec
    assert "Confusion matrix" in text and "Per class" in text
    assert not re.search(r"https?://", text)
    assert "<script" not in text and "<link" not in text
    assert "<svg" in text and "data:image/png;base64," in text
    assert kv(text, "Wafers") == "360"  # exact count (was: "360" anywhere in the page)
    assert kv(text, "Lots") == "20"


def test_contents_bar_links_every_section_and_lots_come_first(report_html):
    _, path = report_html
    text = path.read_text()
    nav = re.search(r'<nav class="toc".*?</nav>', text, re.S).group(0)
    targets = re.findall(r'href="#([^"]+)"', nav)
    assert targets == ["summary", "lots", "pareto", "gallery", "review", "metrics"]
    pos = [text.index(f'<section id="{t}"') for t in targets]
    assert pos == sorted(pos) and text.index("<nav") < pos[0]


def test_report_is_bounded(report_html):
    b, path = report_html
    text = path.read_text()
    gallery = text[text.index('id="gallery"'):text.index('id="review"')]
    for block in gallery.split("<h3>")[1:]:
        assert block.count("<figure>") <= 5
    lots = text[text.index('id="lots"'):text.index('id="pareto"')]
    assert lots.count('class="stack"') <= 4
    assert text.count('<tr><td><img src="data:image/png') <= 7  # review rows
    assert "10 more lots, ranked" not in text and "<details>" in lots
    assert len(text) < 400_000


def test_thumbnail_png():
    m = np.ones((30, 40), np.uint8)
    m[5, 5] = 2
    png = render_thumbnail_png(m, 16)
    assert png.startswith(b"\x89PNG") and len(png) < 2000


def test_detect_mode_report(tmp_path):
    rng = np.random.default_rng(1)
    ws = make_wafers(30, random_state=0)
    cols = fake_columns(ws, rng)
    cols = {k: cols[k] for k in ("wafer_id", "lot", "wafer_index", "p_defect", "defective")}
    b = BatchReportBuilder("detect")
    b.add(ws, cols)
    text = b.render()
    assert 'id="metrics"' in text and ">good<" in text and ">defective<" in text
    assert "Single-phase" not in text


@pytest.mark.parametrize("mode", ["single-phase", "classify"])
def test_single_phase_notice(mode):
    rng = np.random.default_rng(2)
    ws = make_wafers(27, random_state=1)
    b = BatchReportBuilder(mode)
    assert b.mode == "single-phase"
    b.add(ws, fake_columns(ws, rng))
    text = b.render()
    notice = text.index("every wafer was treated as defective")
    assert notice < text.index('<section id="summary"')
    assert "use only for wafers already known to be defective" in text


def test_unknown_mode_is_an_error():
    with pytest.raises(WafertkError, match="unknown report mode"):
        BatchReportBuilder("sometimes")


def test_timestamp_has_timezone(report_html):
    _, path = report_html
    stamp = dt.datetime.fromisoformat(kv(path.read_text(), "Generated"))
    assert stamp.tzinfo is not None and stamp.utcoffset() is not None


# ---------------------------------------------------------------------- lots and stacks
def lot_batch(lot_patterns, shape=(30, 30), start=0):
    """Wafers lot by lot: ``lot_patterns`` is a list of (lot, [label, ...])."""
    maps, labels, lots, ids = [], [], [], []
    for lot, labs in lot_patterns:
        for k, lab in enumerate(labs):
            m = np.ones(shape, np.uint8)
            if lab != "none":
                m[:, : shape[1] // 3] = 2  # a left-side signature on every defective wafer
            maps.append(m)
            labels.append(lab)
            lots.append(lot)
            ids.append(f"{lot}-{k + start:02d}")
    return WaferSet.from_maps(np.stack(maps), labels=labels, lot=lots, wafer_id=ids)


def cols_of(ws, conf=0.9):
    lab = ws.label_strings().astype(str)
    n = len(ws)
    return {"wafer_id": ws.wafer_id.astype(str), "lot": ws.lot.astype(str),
            "wafer_index": ws.wafer_index, "p_defect": np.where(lab == "none", 0.1, 0.9),
            "defective": (lab != "none").astype(int), "pattern": lab.astype(object),
            "confidence": np.full(n, conf), "review": np.zeros(n, int),
            "top2": np.full(n, "", object), "p_top2": np.zeros(n)}


def test_attention_lots_by_defect_rate_and_by_concentrated_pattern():
    spec = [(f"L{i:02d}", ["none"] * 24 + ["Edge-Loc"]) for i in range(30)]
    spec[7] = ("HOT", ["Edge-Loc"] * 12 + ["none"] * 13)  # high defect rate
    spec[19] = ("SCR", ["Scratch"] * 4 + ["none"] * 21)  # 4 defective, but all Scratch
    spec[25] = ("THIRD", ["Edge-Loc"] * 4 + ["none"] * 21)
    b = BatchReportBuilder("two-phase", n_attention=3, max_open_lots=4)
    ws = lot_batch(spec)
    for s in range(0, len(ws), 100):
        part = ws.take(np.arange(s, min(s + 100, len(ws))))
        b.add(part, cols_of(part))
    ranked = [r.name for r, _, _ in b.ranked_lots()]
    assert sorted(ranked[:2]) == ["HOT", "SCR"] and ranked[2] == "THIRD"
    text = b.render()
    lots = text[text.index('id="lots"'):text.index('id="pareto"')]
    assert max(lots.index("HOT"), lots.index("SCR")) < lots.index("<details>")
    assert "Scratch on 4 wafers" in lots
    assert "27 more lots, ranked" in lots
    assert lots.count('class="stack"') == 3


def test_stacked_map_counts_fails_per_position():
    ws = lot_batch([("A", ["Loc", "none", "Loc", "Loc"])], shape=(20, 24))
    b = BatchReportBuilder("two-phase")
    b.add(ws, cols_of(ws))
    rec = b._open["A"]
    small = resize_maps(ws, 48)
    assert np.array_equal(rec.fails, (small == 2).sum(axis=0))
    assert np.array_equal(rec.dies, (small > 0).sum(axis=0))
    assert rec.fails.max() == 3 and rec.stack_n == 4


def test_render_stack_png_colours():
    from io import BytesIO

    from PIL import Image

    fails = np.array([[0, 1, 4, 0]])
    dies = np.array([[4, 4, 4, 0]])
    img = np.asarray(Image.open(BytesIO(render_stack_png(fails, dies))).convert("RGB"))
    lum = img.astype(float).sum(axis=2)[0]
    assert lum[0] > lum[1] > lum[2]  # darker where more wafers fail
    assert tuple(img[0, 3]) == (200, 200, 200)  # no die on any wafer


def test_resize_batch_matches_resize_maps():
    rng = np.random.default_rng(3)
    maps = [rng.integers(0, 3, size=(h, w)).astype(np.uint8)
            for h, w in [(5, 7), (60, 50), (48, 48), (60, 50), (100, 3), (30, 200)]]
    ws = WaferSet.from_maps(maps)
    assert np.array_equal(resize_batch(ws, 48), resize_maps(ws, 48))
    assert np.array_equal(resize_batch(ws.take(np.array([3, 1])), 16),
                          resize_maps([maps[3], maps[1]], 16))


def test_lot_closed_and_back_is_merged():
    b = BatchReportBuilder("two-phase", max_open_lots=2)
    for lot, start in (("A", 0), ("B", 0), ("C", 0), ("A", 3)):
        ws = lot_batch([(lot, ["none", "Loc", "none"])], start=start)
        b.add(ws, cols_of(ws))
    recs = {r.name: r for r, _, _ in b.ranked_lots()}
    assert b.n_lots == 3 and b.n_lots_reopened == 1
    assert recs["A"].n == 6 and recs["A"].n_def == 2 and recs["A"].stack_n == 6
    assert kv(b.render(), "Lots") == "3"


# ---------------------------------------------------------------------- galleries
def test_gallery_spans_the_confidence_range():
    rng = np.random.default_rng(4)
    ws = make_wafers(900, classes=["Center"], random_state=2)
    b = BatchReportBuilder("two-phase", max_thumbs=12)
    for s in range(0, 900, 300):
        part = ws.take(np.arange(s, s + 300))
        cols = fake_columns(part, rng)
        cols["pattern"] = np.full(300, "Center", object)
        b.add(part, cols)
    text = b.render()
    gallery = text[text.index('id="gallery"'):text.index('id="review"')]
    caps = [float(c) for c in re.findall(r"<figcaption>([0-9.]+)</figcaption>", gallery)]
    assert len(caps) == 12
    assert min(caps) < 0.5 and max(caps) > 0.9  # not only the most confident
    assert len({round(c, 2) for c in caps}) > 6  # captions show each wafer's confidence


# ---------------------------------------------------------------------- contrast
def test_palette_meets_wcag_aa():
    for fg, bg in CONTRAST_PAIRS:
        assert contrast_ratio(PALETTE[fg], PALETTE[bg]) >= 4.5, (fg, bg)
    assert round(contrast_ratio("#777777", "#ffffff"), 2) == 4.48  # the old grey failed


def test_matrix_cells_pick_readable_text():
    for share in np.linspace(0, 1, 101):
        bg = matrix_cell_rgb(share)
        assert contrast_ratio(text_colour_on(bg), bg) >= 4.5, share


def test_rendered_matrix_cells_meet_wcag_aa(report_html):
    _, path = report_html
    cells = re.findall(r'background:rgb\((\d+), (\d+), (\d+)\);color:(#[0-9a-f]{6})',
                       path.read_text())
    assert len(cells) >= 81
    for r, g, bl, fg in cells:
        assert contrast_ratio(fg, (int(r), int(g), int(bl))) >= 4.5


# ---------------------------------------------------------------------- metrics
def test_builder_confusion_counts_match_classification_metrics():
    rng = np.random.default_rng(6)
    b = BatchReportBuilder("two-phase")
    ys, ps = [], []
    for seed in range(3):
        ws = make_wafers(90, random_state=seed)
        cols = fake_columns(ws, rng)
        b.add(ws, cols)
        ys.append(ws.label_strings().astype(str))
        ps.append(np.asarray(cols["pattern"]).astype(str))
    cm, names = b.confusion()
    ref = classification_metrics(np.concatenate(ys), np.concatenate(ps), names)
    assert cm.tolist() == ref["confusion_matrix"]
    text = b.render()
    assert f"accuracy {ref['accuracy']:.3f}" in text and f"macro f1 {ref['macro_f1']:.3f}" in text


# ---------------------------------------------------------------------- memory
def _feed(b, n_wafers, start, maps, rng, batch=2000):
    names = np.array(["none"] * 12 + ["Edge-Loc", "Center", "Loc", "Scratch"])
    n, h, w = maps.shape
    flat, offsets = maps.reshape(-1), np.arange(n + 1) * (h * w)
    shapes, dies = np.tile([h, w], (n, 1)), np.full(n, float(h * w))
    for s in range(start, start + n_wafers, batch):
        idx = np.arange(s, s + batch)
        lab = names[rng.integers(0, len(names), batch)]
        lots = np.char.add("LOT", (idx // 25).astype(str)).astype(object)
        ids = np.char.add("w", idx.astype(str)).astype(object)
        ws = WaferSet(flat, offsets, shapes, labels=lab, lot=lots, wafer_id=ids, die_size=dies,
                      validate=False)
        conf = rng.uniform(0.2, 1.0, batch)
        b.add(ws, {"wafer_id": ids, "lot": lots, "wafer_index": idx % 25 + 1,
                   "p_defect": np.where(lab == "none", 0.1, 0.9),
                   "defective": (lab != "none").astype(int), "pattern": lab.astype(object),
                   "confidence": conf, "review": (conf < 0.5).astype(int),
                   "top2": np.full(batch, "Loc", object), "p_top2": 1 - conf})


def deep_size(obj, seen=None) -> int:
    """Bytes held by ``obj`` and everything it references (arrays by ``nbytes``)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (type, np.random.Generator)):
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        size = sys.getsizeof(obj) + (obj.nbytes if obj.base is not None else 0)
        return size + (sum(deep_size(x, seen) for x in obj.flat) if obj.dtype == object else 0)
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size += sum(deep_size(x, seen) for x in obj)
    elif hasattr(obj, "__dict__") or hasattr(obj, "__slots__"):
        attrs = getattr(obj, "__dict__", {}).values() if hasattr(obj, "__dict__") else \
            [getattr(obj, a) for a in obj.__slots__ if hasattr(obj, a)]
        size += sum(deep_size(v, seen) for v in attrs)
    return size


def test_retained_state_does_not_grow_with_the_wafers():
    """10k then 100k wafers in lots of 25: the builder holds about the same bytes."""
    rng = np.random.default_rng(7)
    maps = rng.choice(np.array([0, 1, 1, 1, 2], np.uint8), size=(2000, 12, 12))
    b = BatchReportBuilder("two-phase", stack_size=16, thumb_size=16)
    _feed(b, 10_000, 0, maps, rng)
    small = deep_size(b)
    _feed(b, 90_000, 10_000, maps, rng)
    large = deep_size(b)
    assert b.n == 100_000 and b.n_lots == 4000
    assert small > 50_000  # the measure sees the state (stacks, thumbnails, lots)
    assert large < 1.25 * small, (small, large)
    b.render()


# ---------------------------------------------------------------------- headless render
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(report_html, tmp_path):
    _, path = report_html
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,900", f"file://{path}"], check=True, capture_output=True,
        timeout=120)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.std() > 5  # not blank
