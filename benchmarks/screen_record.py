"""Helpers of ``benchmarks/screen_seeds.sh``: copy a fitted screen, record the screens.

    python benchmarks/screen_record.py copy OWN_MANIFEST CALIBRATED_MANIFEST OUT_MANIFEST
    python benchmarks/screen_record.py record OUT_DIR benchmarks/results/screen_seeds.json

``copy`` puts the calibrated ensemble's ``extra.screen`` into the seed's own detector
manifest (written to OUT_MANIFEST) after checking that the calibration reproduced the
seed's temperature and threshold (to 1e-5). ``record`` writes each seed's screen and the
CNN-share-0.2 ensemble's calibration and screen, read from the manifests under OUT_DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def copy(own: str, calibrated: str, out: str) -> None:
    old, new = json.loads(Path(own).read_text()), json.loads(Path(calibrated).read_text())
    for key in ("temperature", "threshold"):
        a, b = old["extra"][key], new["extra"][key]
        if abs(a - b) > 1e-5:
            raise SystemExit(f"{calibrated}: {key} {b} differs from the seed's own {a}")
    old["extra"]["screen"] = new["extra"]["screen"]
    Path(out).write_text(json.dumps(old, indent=2) + "\n")
    print(out, old["extra"]["screen"])


def record(out_dir: str, result: str) -> None:
    root = Path(out_dir)
    seeds = {}
    for s in (0, 1, 2):
        man = json.loads((root / f"seed{s}-screened" / "detector" / "manifest.json").read_text())
        seeds[f"seed{s}"] = man["extra"]["screen"]
    w02 = json.loads((root / "w02-cal" / "manifest.json").read_text())["extra"]
    doc = {"command": "bash benchmarks/screen_seeds.sh",
           "what": "each seed run's detector screen (fitted by the shipped rule on the "
                   "production validation lots) and the shipped members' ensemble with a "
                   "CNN share of 0.2, calibrated the same way",
           "seeds": seeds,
           "cnn_share_0.2": {"threshold": w02["threshold"],
                             "temperature": w02["temperature"],
                             "validation_after": w02["calibration"]["after"],
                             "screen": w02["screen"]}}
    Path(result).write_text(json.dumps(doc, indent=2) + "\n")
    print("->", result)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"copy": copy, "record": record}[cmd](*args)
