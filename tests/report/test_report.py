"""The batch HTML report: sections, self-containment, bounded size, and a headless render."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from wafertk.data.synthetic import make_wafers
from wafertk.report import BatchReportBuilder, render_thumbnail_png

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


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    rng = np.random.default_rng(0)
    b = BatchReportBuilder("two-phase", max_thumbs=5, max_review=7, max_lots=10)
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
    for sec in ("summary", "pareto", "lots", "gallery", "review", "metrics"):
        assert f'id="{sec}"' in text, sec
    assert "Confusion matrix" in text and "Per class" in text
    assert not re.search(r"https?://", text)
    assert "<script" not in text and "<link" not in text
    assert "<svg" in text and "data:image/png;base64," in text
    assert "360" in text  # wafer count


def test_report_is_bounded(report_html):
    b, path = report_html
    text = path.read_text()
    # thumbnails: at most 5 per pattern + at most 7 review rows
    n_img = text.count("data:image/png;base64,")
    assert n_img <= 5 * len(b.pattern_counts) + 7
    assert "Showing the 10 lots with the highest defect rate" in text
    assert text.count("<tr><td>SYN") <= 10 + 7
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


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(report_html, tmp_path):
    _, path = report_html
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--screenshot={shot}", "--window-size=1200,900",
         f"file://{path}"], check=True, capture_output=True, timeout=120)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.std() > 5  # not blank
