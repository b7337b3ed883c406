"""Scale-out throughput: ``wafertk classify`` in one process vs on a Dask LocalCluster.

    .venv/bin/python benchmarks/bench_dask.py                 # the >= 1,000,000-wafer run
    .venv/bin/python benchmarks/bench_dask.py --n 50000       # a quick check (small figures)
    [--classifier NAME] [--detector NAME]                     # default: the command's models
    [--command detect]                                        # phase 1 only (wafertk detect)

1. Builds (once, into ``--workdir``, default ``/tmp/wafertk-bench-dask``, never the repository)
   a ``wafers.h5`` of ``--n`` real WM-811K wafers: the three packs of
   ``../shared/data/wm811k`` (Training, Test A, the 200k unlabeled) one after the other,
   tiled as often as needed with the tile number appended to every wafer id and lot name
   (``...-t1``), cut at ``--n``; labels kept (empty for the unlabeled pack).
2. Runs, in the same benchmark run and on that file, the ``wafertk classify`` command
   (two-phase, shipped models, report on, ``--batch-size``) as a user would, each in a fresh
   process: single-process (no ``--scheduler``), then ``--scheduler local:1`` and
   ``--scheduler local:2`` (``--workers``). Wall time includes everything the user waits for
   (Python and TensorFlow start-up, cluster start, model loading on every worker, the report).
3. Records wafers/s, the speed-up over the single-process run, the peak memory of every
   worker process and of the client (``run.json``), the peak memory of the single-process
   run (the file is built in a child process so that this one stays small: Linux carries a
   process's peak RSS over fork and exec), and checks that every run's ``predictions.csv``
   is byte-identical to the single-process one (SHA-256).

Writes ``benchmarks/results/dask.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# the setting of benchmarks/bench_inference.py, inherited by every run (workers included)
os.environ.setdefault("TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
PACKS = ("wm811k_train.npz", "wm811k_test_a.npz", "wm811k_unlabeled_200k.npz")


def build_tiled(n: int, src: Path, dst: Path, chunk: int = 50_000) -> dict:
    """Write ``n`` wafers of the packs in ``src``, tiled with unique ids, to ``dst``."""
    import numpy as np

    from wafertk.data import WaferWriter
    from wafertk.data.importers import read_npz_pack
    from wafertk.data.waferset import WaferSet

    packs = []
    for name in PACKS:
        ws = read_npz_pack(src / name)
        # the same columns for every pack (no extras: the packs' differ), empty labels for
        # the unlabeled one
        labels = ws.labels if ws.labels is not None else np.full(len(ws), "", object)
        ws = WaferSet(ws.maps_flat, ws.offsets, ws.shapes, wafer_id=ws.wafer_id,
                      lot=ws.lot, wafer_index=ws.wafer_index, die_size=ws.die_size,
                      labels=labels, class_names=ws.class_names)
        packs.append((name, ws))
    period = sum(len(ws) for _, ws in packs)
    written, tile = 0, 0
    t0 = time.perf_counter()
    with WaferWriter(dst, class_names=packs[0][1].class_names) as w:
        while written < n:
            for _, ws in packs:
                for a in range(0, len(ws), chunk):
                    if written >= n:
                        break
                    part = ws.slice(a, min(a + chunk, len(ws), a + n - written))
                    if tile:
                        sfx = f"-t{tile}"
                        part = WaferSet(
                            part.maps_flat, part.offsets, part.shapes,
                            wafer_id=np.char.add(part.wafer_id.astype(str), sfx).astype(object),
                            lot=np.char.add(part.lot.astype(str), sfx).astype(object),
                            wafer_index=part.wafer_index, die_size=part.die_size,
                            labels=part.labels, class_names=part.class_names)
                    w.append(part)
                    written += len(part)
            tile += 1
    return {"wafers": written, "packs": list(PACKS), "wafers_per_tile": period,
            "tiles": tile, "bytes": dst.stat().st_size,
            "build_seconds": round(time.perf_counter() - t0, 1)}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_classify(data: Path, out: Path, batch_size: int, scheduler: str | None,
                 report: bool, models: list[str], command: str = "classify") -> dict:
    """One ``wafertk classify`` (or ``detect``) command in a fresh process: wall time and
    what it wrote."""
    exe = Path(sys.executable).with_name("wafertk")
    cmd = [str(exe), command, str(data), "-o", str(out), "--batch-size", str(batch_size),
           "-q", *models]
    if scheduler:
        cmd += ["--scheduler", scheduler]
    if not report:
        cmd.append("--no-report")
    # a small wrapper whose only child is the command: its RUSAGE_CHILDREN peak is the
    # command's (the largest of its process and its local cluster's workers; run.json has
    # each worker's and the client's own)
    wrap = ("import resource, subprocess, sys\nsubprocess.run(sys.argv[1:], check=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrap, *cmd], check=True,
                          stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    peak_kib = int(done.stdout.strip().splitlines()[-1])
    run = json.loads((out / "run.json").read_text())
    res = {"command": " ".join(["wafertk", *cmd[1:]]), "wall_seconds": round(wall, 1),
           "wafers": run["wafers"], "wafers_per_second": round(run["wafers"] / wall, 1),
           "run_seconds": run["seconds"], "sha256": sha256(out / "predictions.csv")}
    # the command's process, and (rolled up when they end) its local cluster's workers
    res["peak_rss_mib"] = round(peak_kib / 1024, 1)
    if scheduler:
        res.update(workers=run.get("workers"), ranges=run.get("ranges"),
                   peak_rss_mib_per_worker=run.get("peak_rss_mib_per_worker"),
                   peak_rss_mib_client=run.get("peak_rss_mib_client"))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="wafers in the tiled file")
    ap.add_argument("--workers", default="1,2", help="LocalCluster sizes, comma-separated")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--no-report", action="store_true", help="time without report.html")
    ap.add_argument("--src", default=str(ROOT.parent / "shared/data/wm811k"))
    ap.add_argument("--workdir", default="/tmp/wafertk-bench-dask")
    ap.add_argument("--detector", help="--detector of every run (default: the command's)")
    ap.add_argument("--classifier", help="--classifier of every run (default: the command's)")
    ap.add_argument("-o", "--out", default=str(ROOT / "benchmarks/results/dask.json"))
    ap.add_argument("--command", choices=["classify", "detect"], default="classify",
                    help="the command timed (detect: phase 1 only, --model is --detector)")
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"wm811k_tiled_{args.n}.h5"
    info_path = data.with_suffix(".json")
    if args.build_only:
        sys.path.insert(0, str(ROOT))
        info_path.write_text(json.dumps(build_tiled(args.n, Path(args.src), data)))
        return
    if not (data.exists() and info_path.exists()):
        # in a child process: this one stays small, so the peak memory of the runs it
        # starts is theirs (Linux carries a process's peak RSS over fork and exec)
        subprocess.run([sys.executable, __file__, "--build-only", "--n", str(args.n),
                        "--src", args.src, "--workdir", args.workdir], check=True)
    built = json.loads(info_path.read_text())
    if args.command == "detect":
        if args.classifier:
            raise SystemExit("--classifier does not apply to detect")
        models = ["--model", args.detector] if args.detector else []
    else:
        models = [*(["--detector", args.detector] if args.detector else []),
                  *(["--classifier", args.classifier] if args.classifier else [])]
    print(f"input {data}: {built['wafers']:,} wafers", flush=True)

    report = not args.no_report
    runs = []
    single = run_classify(data, work / "out-single", args.batch_size, None, report, models,
                          args.command)
    single["config"] = "single process"
    runs.append(single)
    print(f"single process: {single['wafers_per_second']:,.0f} wafers/s", flush=True)
    for k in [int(x) for x in args.workers.split(",") if x.strip()]:
        r = run_classify(data, work / f"out-local{k}", args.batch_size, f"local:{k}", report,
                         models, args.command)
        r["config"] = f"LocalCluster, {k} worker{'s' if k > 1 else ''}"
        r["speedup_vs_single"] = round(r["wafers_per_second"] / single["wafers_per_second"], 2)
        r["identical_to_single"] = r["sha256"] == single["sha256"]
        runs.append(r)
        print(f"local:{k}: {r['wafers_per_second']:,.0f} wafers/s "
              f"(x{r['speedup_vs_single']}), workers peak "
              f"{r['peak_rss_mib_per_worker']} MiB, identical={r['identical_to_single']}",
              flush=True)
    import dask
    import distributed

    sys.path.insert(0, str(ROOT))
    import wafertk

    result = {
        "benchmark": "benchmarks/bench_dask.py",
        "command": "python benchmarks/bench_dask.py " + " ".join(sys.argv[1:]),
        "full_size": args.n >= 1_000_000,
        "input": {**built, "path": str(data)},
        "wafertk_command": args.command,
        "batch_size": args.batch_size, "report": report, "models": models or "defaults",
        "runs": runs,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "wafertk": wafertk.__version__,
                    "dask": dask.__version__, "distributed": distributed.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
