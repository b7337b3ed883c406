"""benchmarks/production_seeds.py: the headline figures over training seeds."""

import copy
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
RESULT = BENCH / "results" / "production.json"


@pytest.fixture()
def seeds_module(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import production_seeds

    yield production_seeds
    sys.modules.pop("production_seeds", None)


def _record(seed: int, shift: float) -> dict:
    """The shipped models' production record, as if from a run with model seed ``seed``."""
    rec = copy.deepcopy(json.loads(RESULT.read_text()))
    for model in rec["models"].values():
        model["seeds"] = {".": seed}
    rec["production"]["phase1"]["recall"] += shift
    rec["production"]["two_phase"]["macro_f1"] += shift
    return rec


def test_summary_is_mean_and_sd_over_the_seeds(seeds_module):
    recs = [_record(0, 0.0), _record(1, 0.02), _record(2, -0.02)]
    doc = seeds_module.summarise(recs)
    base = seeds_module.headline(recs[0])
    rec = doc["figures"]["phase1_recall"]
    assert doc["seeds"] == [0, 1, 2]
    assert rec["mean"] == pytest.approx(base["phase1_recall"])
    assert rec["sd"] == pytest.approx(0.02)
    assert rec["min"] == pytest.approx(base["phase1_recall"] - 0.02)
    assert rec["target"] == 0.90
    assert rec["seeds_meeting_target"] == sum(
        p["phase1_recall"] >= 0.90 for p in doc["per_seed"])
    # a figure that does not vary has sd 0; figures without a target carry none
    assert doc["figures"]["phase1_roc_auc"]["sd"] == pytest.approx(0.0, abs=1e-12)
    assert "mean_meets_target" not in doc["figures"]["phase1_roc_auc"]


def test_records_must_be_comparable(seeds_module):
    with pytest.raises(SystemExit, match="at least two seeds"):
        seeds_module.summarise([_record(0, 0.0)])
    with pytest.raises(SystemExit, match="one distinct model seed"):
        seeds_module.summarise([_record(0, 0.0), _record(0, 0.01)])
    other = _record(1, 0.0)
    other["production"]["n"] += 1
    with pytest.raises(SystemExit, match="different production tests"):
        seeds_module.summarise([_record(0, 0.0), other])
