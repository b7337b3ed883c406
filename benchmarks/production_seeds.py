"""The shipped recipe over training seeds, on the production test -> ``production_seeds.json``.

The issue's headline figures as mean +- sd over training seeds: each seed is a whole run of
``benchmarks/train_shipped.sh`` (the same data, split, configs and calibration on the
production validation lots; only the model seeds differ: ``train.seed`` of both CNNs and the
``random_state`` of both XGBoosts), scored by ``benchmarks/eval_production.py --models``::

    SEED=1 WORK=/tmp/wafertk-seed1 DEST=/tmp/wafertk-seed1/shipped \\
        bash benchmarks/train_shipped.sh
    python benchmarks/eval_production.py --models /tmp/wafertk-seed1/shipped \\
        -o benchmarks/results/production_seed1.json
    # ... likewise for the other seeds, then
    python benchmarks/production_seeds.py benchmarks/results/production_seed{0,1,2}.json

Nothing is chosen here: the seeds' figures are summarised (mean, sample sd, min, max) beside
the targets, on the production test, which none of the runs trained or was tuned on. The
shipped models were made by the same recipe with seed 0, partly in earlier runs (their own
figures: ``benchmarks/results/production.json``, which records no seeds); CNN training on
CPU is not bit-for-bit repeatable, so a seed-0 run of the command is another draw, not a copy
of them.

The auto-accept target is read at the curve's best point (the lowest review level with at
most 2 % errors among the accepted, found on the production test itself: an upper bound);
the shipped review level's own share and error are recorded beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

#: headline figure -> (its keys in an eval_production.py record, target or None)
FIGURES = {
    "phase1_recall": (("phase1", "recall"), 0.90),
    "phase1_precision": (("phase1", "precision"), 0.80),
    "phase1_roc_auc": (("phase1", "roc_auc"), None),
    "phase1_average_precision": (("phase1", "average_precision"), None),
    "phase1_best_f1_any_threshold": (("phase1", "best_f1_any_threshold"), None),
    "two_phase_macro_f1": (("two_phase", "macro_f1"), 0.85),
    "two_phase_accuracy": (("two_phase", "accuracy"), None),
    "two_phase_cnn_macro_f1": (("two_phase_cnn", "macro_f1"), None),
    "phase2_ensemble_macro_f1": (("phase2_ensemble", "macro_f1"), 0.88),
    "phase2_ensemble_accuracy": (("phase2_ensemble", "accuracy"), None),
    "phase2_cnn_macro_f1": (("phase2_cnn", "macro_f1"), None),
    "phase2_xgboost_accuracy": (("phase2_xgboost", "accuracy"), 0.85),
    "phase2_xgboost_macro_f1": (("phase2_xgboost", "macro_f1"), None),
    # the target: the share auto-accepted at the lowest level with <= 2 % errors among them
    "accepted_share_at_2pct_error": (("automation", "max_share_at_2pct_error"), 0.90),
    "shipped_level_accepted_share": (("automation", "shipped_accepted_share"), None),
    "shipped_level_error_among_accepted": (("automation", "shipped_error_among_accepted"),
                                           None),
}


def headline(record: dict) -> dict[str, float]:
    """The headline figures of one ``eval_production.py`` record."""
    out = {}
    for name, (path, _) in FIGURES.items():
        value = record["production"]
        for key in path:
            if key not in value:
                sys.exit(f"record {record.get('models_dir')}: no {'.'.join(path)} (scored "
                         "without an XGBoost model?)")
            value = value[key]
        out[name] = float(value)
    return out


def run_seeds(record: dict) -> list[int]:
    """The distinct model seeds of a record's models (one per run)."""
    return sorted({s for m in record["models"].values() for s in m.get("seeds", {}).values()
                   if s is not None})


def summarise(records: list[dict]) -> dict:
    """Per-seed headline figures and their mean, sample sd, min and max beside the targets.

    Raises ``SystemExit`` when the records are not comparable: another production test
    (size or lots), or two records from the same seed.
    """
    from experiments import seed_summary

    if len(records) < 2:
        sys.exit("needs the records of at least two seeds (a spread needs two)")
    tests = {(r["production_test"]["n_lots"], r["production"]["n"]) for r in records}
    if len(tests) != 1:
        sys.exit(f"the records score different production tests: {sorted(tests)}")
    seeds = [run_seeds(r) for r in records]
    if any(len(s) != 1 for s in seeds) or len({s[0] for s in seeds}) != len(seeds):
        sys.exit(f"expected one distinct model seed per record, got {seeds}")
    per_seed = [headline(r) for r in records]
    stats = seed_summary(per_seed)
    figures = {}
    for name, (_, target) in FIGURES.items():
        values = [p[name] for p in per_seed]
        figures[name] = {**stats[name], "min": float(np.min(values)),
                         "max": float(np.max(values)), "target": target}
        if target is not None:
            figures[name]["mean_meets_target"] = stats[name]["mean"] >= target
            figures[name]["seeds_meeting_target"] = int(sum(v >= target for v in values))
    return {"seeds": [s[0] for s in seeds], "n_wafers": records[0]["production"]["n"],
            "n_lots": records[0]["production_test"]["n_lots"],
            "per_seed": [{"seed": s[0], "models_dir": r.get("models_dir"), **p}
                         for s, r, p in zip(seeds, records, per_seed, strict=True)],
            "figures": figures}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="+", type=Path,
                    help="eval_production.py results, one per training seed")
    ap.add_argument("-o", "--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "production_seeds.json")
    args = ap.parse_args(argv)
    from experiments import write_result

    records = [json.loads(p.read_text()) for p in args.records]
    doc = {"command": "python benchmarks/production_seeds.py "
                      + " ".join(str(p) for p in args.records),
           "records": [str(p) for p in args.records], **summarise(records)}
    write_result(args.out, doc)
    for name, f in doc["figures"].items():
        target = "" if f["target"] is None else f"  (target {f['target']})"
        print(f"{name:<30} {f['mean']:.3f} +- {f['sd']:.3f}  [{f['min']:.3f}, "
              f"{f['max']:.3f}]{target}")


if __name__ == "__main__":
    main()
