"""Record a run of ``benchmarks/train_shipped.sh`` -> ``results/train_shipped_time.json``.

    /usr/bin/time -v -o /tmp/train_shipped.time bash benchmarks/train_shipped.sh
    python benchmarks/train_shipped_record.py --name seed0 --work /tmp/wafertk-shipped \\
        --time-log /tmp/train_shipped.time --note "quiet cores"

The issue's limit is all shipped models trained by one command in <= 90 min on 2 cores. The
record holds the wall time of the whole command (``train_shipped.sh`` writes
``$WORK/total.time``; or ``Elapsed (wall clock)`` of a ``/usr/bin/time -v`` log, which
wins when both are given), the peak resident memory of its largest process (from such a
log), and each training step's wall time (``$WORK/TASK.time``, written by the script; files
older than the run, left by an earlier run in the same ``WORK``, are listed apart, not
counted), merged into the JSON under ``--name``. A run that failed is not recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
OUT = ROOT / "benchmarks" / "results" / "train_shipped_time.json"
LIMIT_MINUTES = 90


def step_seconds(work: Path) -> dict[str, int]:
    """``{step: seconds}`` from the ``NAME: N s wall`` lines of ``work/*.time``."""
    out = {}
    for f in sorted(work.glob("*.time")):
        m = re.fullmatch(r"\s*(\S+): (\d+) s wall\s*", f.read_text())
        if m is None:
            sys.exit(f"{f}: not a 'NAME: N s wall' line")
        out[m.group(1)] = int(m.group(2))
    return out


def time_log(path: Path) -> dict:
    """Wall seconds, peak resident memory and exit status of a ``/usr/bin/time -v`` log."""
    text = path.read_text()
    # the last summary in the file (a log may hold the command's own output before it)
    text = text[text.rfind("Command being timed"):]
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    status = re.search(r"Exit status: (\d+)", text)
    if wall is None or rss is None or status is None:
        sys.exit(f"{path}: no /usr/bin/time -v summary in it")
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return {"seconds": round(seconds, 1),
            "peak_rss_gib_largest_process": round(int(rss.group(1)) / 2**20, 2),
            "exit_status": int(status.group(1))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="key of this run in the JSON")
    ap.add_argument("--work", type=Path, required=True, help="the run's $WORK")
    ap.add_argument("--time-log", type=Path, help="/usr/bin/time -v output of the command")
    ap.add_argument("--note", help="recorded with the run (e.g. what else ran beside it)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    from experiments import write_result

    steps = step_seconds(args.work)
    run: dict = {"work": str(args.work)}
    total = steps.pop("total", None)
    if args.time_log is not None:
        run.update(time_log(args.time_log))
        if run["exit_status"] != 0:
            sys.exit(f"{args.time_log}: the command failed (exit status "
                     f"{run['exit_status']}); not recorded")
        end = args.time_log.stat().st_mtime
    elif total is not None:
        run["seconds"] = total
        end = (args.work / "total.time").stat().st_mtime
    else:
        sys.exit(f"{args.work}: no total.time and no --time-log: the command's wall time "
                 "is unknown")
    start = end - run["seconds"] - 5  # a step written before this is an earlier run's
    fresh = {k: v for k, v in steps.items() if (args.work / f"{k}.time").stat().st_mtime >= start}
    run["steps_seconds"] = fresh
    if len(fresh) < len(steps):
        run["stale_steps_ignored"] = sorted(set(steps) - set(fresh))
    steps = fresh
    run["minutes"] = round(run["seconds"] / 60, 1)
    run["within_limit"] = run["seconds"] <= LIMIT_MINUTES * 60
    run["note"] = args.note
    run["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                      "load_average_at_record": list(os.getloadavg())}
    doc = json.loads(args.out.read_text()) if args.out.is_file() else {}
    doc["limit_minutes"] = LIMIT_MINUTES
    doc.setdefault("runs", {})[args.name] = run
    write_result(args.out, doc)
    print(f"{args.name}: {run['minutes']} min ({'within' if run['within_limit'] else 'over'} "
          f"the {LIMIT_MINUTES}-min limit); steps {steps}")


if __name__ == "__main__":
    main()
