"""BatchReportBuilder.merge: builders of consecutive ranges add up to one builder's figures."""

import numpy as np
import pytest

from wafertk.data.synthetic import make_wafers
from wafertk.errors import WafertkError
from wafertk.report import BatchReportBuilder


def columns(ws, seed):
    rng = np.random.default_rng(seed)
    n = len(ws)
    pattern = np.asarray(ws.labels).astype(str).astype(object)
    conf = rng.uniform(0.3, 1.0, n)
    return {"wafer_id": ws.wafer_id.astype(str), "lot": ws.lot.astype(str),
            "wafer_index": ws.wafer_index, "p_defect": np.where(pattern == "none", 0.1, 0.9),
            "defective": (pattern != "none").astype(int), "pattern": pattern,
            "confidence": conf, "review": (conf < 0.6).astype(int),
            "top1": pattern, "p_top1": conf, "top2": np.full(n, "Center", object),
            "p_top2": 1 - conf, "top3": np.full(n, "", object), "p_top3": np.full(n, np.nan)}


def builder():
    return BatchReportBuilder("two-phase", max_thumbs=4, max_review=9, max_lots=50)


@pytest.fixture(scope="module")
def batches():
    ws = make_wafers(600, n_lots=24, random_state=5)
    order = np.argsort(ws.lot.astype(str), kind="stable")  # lots contiguous, as in a file
    ws = ws.take(order)
    return [(ws.slice(a, a + 50), columns(ws.slice(a, a + 50), a)) for a in range(0, 600, 50)]


def test_merged_builders_match_one_builder(batches):
    one = builder()
    for ws, cols in batches:
        one.add(ws, cols)
    parts = []
    for k in range(0, len(batches), 5):  # ranges of 5 batches, split inside lots
        b = builder()
        for ws, cols in batches[k:k + 5]:
            b.add(ws, cols)
        parts.append(b)
    merged = parts[0]
    for b in parts[1:]:
        merged.merge(b)
    assert (merged.n, merged.n_defective, merged.n_review) == (one.n, one.n_defective,
                                                              one.n_review)
    assert merged.pattern_counts == one.pattern_counts
    assert merged.n_lots == one.n_lots == 24
    cm1, names1 = one.confusion()
    cm2, names2 = merged.confusion()
    assert names1 == names2 and np.array_equal(cm1, cm2)
    lots1 = {r.name: (r.n, r.n_def, r.n_review, r.patterns) for r, *_ in one.ranked_lots()}
    lots2 = {r.name: (r.n, r.n_def, r.n_review, r.patterns) for r, *_ in merged.ranked_lots()}
    assert lots1 == lots2
    # stacked maps: every lot's stack covers all its wafers in both
    for (r1, *_), (r2, *_) in zip(one.ranked_lots(), merged.ranked_lots(), strict=True):
        assert r1.name == r2.name
        if r1.fails is not None and r2.fails is not None:
            assert np.array_equal(r1.fails, r2.fails) and np.array_equal(r1.dies, r2.dies)
    # review queue: the same lowest confidences
    rev1 = sorted(-t[0] for t in one._review)
    rev2 = sorted(-t[0] for t in merged._review)
    assert rev1 == rev2
    # galleries: uniform samples of the same size from the same wafers
    for key, (seen, items) in one._reservoirs.items():
        seen2, items2 = merged._reservoirs[key]
        assert seen2 == seen and len(items2) == len(items) == min(seen, 4)
    assert "<html" in merged.render()


def test_builder_survives_pickling(batches):
    import pickle

    b = builder()
    for ws, cols in batches[:3]:
        b.add(ws, cols)
    c = pickle.loads(pickle.dumps(b))
    assert (c.n, c.n_review, c.pattern_counts) == (b.n, b.n_review, b.pattern_counts)
    for ws, cols in batches[3:5]:
        c.add(ws, cols)
    assert c.render().count("<section") == b.render().count("<section")


def test_merge_refuses_other_modes():
    with pytest.raises(WafertkError, match="different modes"):
        BatchReportBuilder("two-phase").merge(BatchReportBuilder("detect"))
