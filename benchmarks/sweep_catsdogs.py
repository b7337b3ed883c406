"""Model-selection sweep on cats vs dogs -> ``benchmarks/results/sweep_catsdogs.{json,md,png}``.

    .venv/bin/python benchmarks/sweep_catsdogs.py                         # configs/sweep.yaml
    .venv/bin/python benchmarks/sweep_catsdogs.py --config my_sweep.yaml --out /tmp/sw

The same as ``wafertk sweep configs/sweep.yaml -o benchmarks/results/tmp/sweep_catsdogs``
(run from the repository root, ``../shared/data/cats_and_dogs`` beside it), plus a record of
what ran: the resolved config, the ranking, every run's wall time, the machine and its load.
The run folders (with their models) stay under the ignored ``benchmarks/results/tmp/``; the
ranked table and plot are copied to ``benchmarks/results/``. Resumable like the command: run
it again after an interruption and finished runs are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "sweep.yaml"))
    ap.add_argument("--out", default=str(RESULTS / "tmp" / "sweep_catsdogs"),
                    help="sweep folder (runs, sweep.json, ranking)")
    ap.add_argument("--json", default=str(RESULTS / "sweep_catsdogs.json"))
    args = ap.parse_args(argv)

    from wafertk.config import to_dict
    from wafertk.sweep import load_sweep_config, run_sweep

    cfg = load_sweep_config(args.config)
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_start = os.getloadavg()

    def show(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} [{time.perf_counter() - t0:7.0f} s] {line}",
              flush=True)

    res = run_sweep(cfg, args.out, on_run=show, config_path=args.config)
    wall = time.perf_counter() - t0
    out = Path(args.out)
    state = json.loads((out / "sweep.json").read_text())
    import keras
    import tensorflow as tf

    record = {
        "command": " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "config_file": args.config, "config": to_dict(cfg),
        "started_utc": started, "wall_s": round(wall, 1),
        "runs_trained_now": res.trained, "runs_skipped": res.skipped,
        "runs_failed": res.failed, "lr_found": res.lr_found,
        "ranking": res.ranking,
        "runs": state["runs"], "selected": state.get("selected", {}),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_start": load_start, "load_avg_end": os.getloadavg(),
                    "tensorflow": tf.__version__, "keras": keras.__version__},
        "note": ("wall_s counts only the runs trained by this invocation; each run's own "
                 "seconds are in runs/ranking (a resumed sweep sums them)"),
    }
    record["run_seconds_total"] = round(sum(r.get("seconds") or 0
                                            for r in state["runs"].values()), 1)
    path = Path(args.json)
    previous = json.loads(path.read_text()) if path.is_file() else {}
    if res.trained == 0 and previous.get("config") == record["config"]:
        # a re-run that trained nothing (e.g. to copy the figures again) keeps the timing
        for key in ("command", "started_utc", "wall_s", "machine"):
            record[key] = previous.get(key, record[key])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    for ext in ("md", "png", "csv"):
        shutil.copyfile(out / f"ranking.{ext}", path.with_suffix(f".{ext}"))
    for png in sorted((out / "runs" / "4").glob("*/lr_find.png")):  # stage 4's LR tests
        shutil.copyfile(png, path.with_name(f"{path.stem}_lr_find_{png.parent.name}.png"))
    print(f"wrote {path} ({len(res.ranking)} runs ranked) in {wall:.0f} s")


if __name__ == "__main__":
    main()
