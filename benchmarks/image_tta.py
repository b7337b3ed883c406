"""Test-time augmentation (flips, shifts) for image runs -> ``results/image_tta.json``.

    TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD=1 .venv/bin/python benchmarks/image_tta.py \\
        --name cifar10_e19 --run /tmp/wafertk_cifar10/run19 \\
        --decide-on /tmp/wafertk_cifar10/run19/predictions.csv \\
        --score ../shared/data/cifar10/test

``wafertk images evaluate/predict --tta hflip`` averages the probabilities of each image and
of its mirror image; ``--tta hflip-shift`` also of both shifted by 1/16 of the size up, down,
left and right. Which one pays is decided on a held-out set that is not the scored one:
``--decide-on`` is a ``predictions.csv`` with ``true_class`` (a run folder's own, i.e. its
validation split), scored with each of ``--candidates``; the most accurate there (ties: the
fewer views) is chosen, and only when it is not ``none`` is the ``--score`` folder scored,
with ``none`` and the chosen one (the untouched figure beside the chosen one). Without
``--score`` the script records the comparison on ``--decide-on`` alone. Each entry is merged
into the JSON under ``--name``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="key of this entry in the JSON")
    ap.add_argument("--run", type=Path, required=True, help="image run folder")
    ap.add_argument("--decide-on", type=Path, required=True,
                    help="predictions.csv with true_class: the held-out set that decides")
    ap.add_argument("--score", type=Path, help="labelled image folder scored if a TTA pays")
    ap.add_argument("--candidates", default="none,hflip",
                    help="comma-separated test-time augmentations compared on --decide-on "
                         "(of none, hflip, hflip-shift)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--note", help="recorded with the entry (e.g. what the sets are)")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "image_tta.json")
    args = ap.parse_args(argv)

    from wafertk._atomic import atomic_path
    from wafertk.images.predict import IMAGE_TTA, evaluate_images
    from wafertk.registry import load_model

    pred = load_model(args.run, "image-classifier")
    classes = list(pred.classes_)
    with open(args.decide_on, newline="") as fh:
        rows = list(csv.DictReader(fh))
    files = [r["file"] for r in rows]
    y = np.array([classes.index(r["true_class"]) for r in rows])
    decide: dict = {"file": str(args.decide_on), "n": len(files)}
    candidates = [c.strip() for c in args.candidates.split(",")]
    if "none" not in candidates:
        candidates.insert(0, "none")
    for tta in candidates:
        t = time.perf_counter()
        p = pred.predict_proba(files, batch_size=args.batch_size, tta=tta)
        decide[tta] = {"accuracy": round(float((p.argmax(1) == y).mean()), 4),
                       "seconds": round(time.perf_counter() - t, 1)}
        print(f"{args.decide_on}: tta {tta} accuracy {decide[tta]['accuracy']:.4f}", flush=True)
    # the most accurate on the held-out set; ties go to the cheaper (listed first in IMAGE_TTA)
    chosen = max(candidates, key=lambda c: (decide[c]["accuracy"], -IMAGE_TTA.index(c)))
    entry = {"run": str(args.run), "decided_on": decide, "chosen": chosen}
    if args.note:
        entry["note"] = args.note
    if args.score is not None and chosen != "none":
        scored = {}
        for tta in ("none", chosen):
            t = time.perf_counter()
            rep = evaluate_images(args.run, args.score, Path(f"/tmp/wafertk_tta_{tta}"),
                                  batch_size=args.batch_size, tta=tta)
            scored[tta] = {"accuracy": round(rep["accuracy"], 4),
                           "weighted_f1": round(rep["weighted_f1"], 4), "n": rep["n"],
                           "seconds": round(time.perf_counter() - t, 1)}
            print(f"{args.score}: tta {tta} accuracy {scored[tta]['accuracy']:.4f}", flush=True)
        entry["scored"] = {"folder": str(args.score), **scored}
    entry["command"] = ("TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD=1 .venv/bin/python "
                        "benchmarks/image_tta.py "
                        + shlex.join(argv if argv is not None else sys.argv[1:]))
    entry["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average_at_end": [round(v, 2) for v in os.getloadavg()]}
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[args.name] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
