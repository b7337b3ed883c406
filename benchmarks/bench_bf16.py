"""Mixed bfloat16 vs float32 for the shipped classifier's architecture on this CPU.

    python benchmarks/bench_bf16.py [--n 4096] [--repeat 3]   # -> results/bf16.json

Times training steps (``fit`` over ``n`` random 48 px maps with metadata, batch 64) and the
forward pass (batch 1024) under the Keras dtype policies ``float32`` and ``mixed_bfloat16``,
interleaved, best of ``repeat``; also records whether the CPU has native bfloat16
instructions (``avx512_bf16`` / ``amx_bf16``), without which TensorFlow emulates them.
Accuracy is not compared: a policy that is not faster is not worth a training run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "bf16.json"


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return sorted(f for f in flags if "bf16" in f or f.startswith("amx"))


def build(policy: str):
    import keras

    from wafertk.config import load_config
    from wafertk.data.preprocess import META_FEATURE_NAMES
    from wafertk.models.cnn import build_wafer_cnn_classifier
    from wafertk.training import CnnTrainConfig

    keras.mixed_precision.set_dtype_policy(policy)
    cfg = load_config(CnnTrainConfig, ROOT / "configs" / "classifier.yaml")
    m = build_wafer_cnn_classifier((48, 48, 3), 8, conv_filters=cfg.model.conv_filters,
                                   dense_units=cfg.model.dense_units, seed=0, compile=False,
                                   meta_dim=len(META_FEATURE_NAMES))
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    keras.mixed_precision.set_dtype_policy("float32")
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    from wafertk.data.preprocess import META_FEATURE_NAMES

    x = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (args.n, 48, 48))]
    meta = rng.random((args.n, len(META_FEATURE_NAMES))).astype(np.float32)
    y = rng.integers(0, 8, args.n)
    models = {p: build(p) for p in ("float32", "mixed_bfloat16")}
    for m in models.values():  # warm-up: graph building
        m.fit({"maps": x[:256], "meta": meta[:256]}, y[:256], batch_size=64, epochs=1,
              verbose=0)
        m.predict({"maps": x[:1024], "meta": meta[:1024]}, batch_size=1024, verbose=0)
    fit_s = {p: [] for p in models}
    pred_s = {p: [] for p in models}
    for _ in range(args.repeat):
        for p, m in models.items():
            t0 = time.perf_counter()
            m.fit({"maps": x, "meta": meta}, y, batch_size=64, epochs=1, verbose=0)
            fit_s[p].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            m.predict({"maps": x, "meta": meta}, batch_size=1024, verbose=0)
            pred_s[p].append(time.perf_counter() - t0)
    res = {"command": f"python benchmarks/bench_bf16.py --n {args.n} --repeat {args.repeat}",
           "cpu_bf16_flags": cpu_flags(), "n": args.n, "timing": "best of repeat, interleaved",
           "train_maps_per_s": {p: round(args.n / min(v), 1) for p, v in fit_s.items()},
           "predict_maps_per_s": {p: round(args.n / min(v), 1) for p, v in pred_s.items()}}
    res["train_speedup_bf16"] = round(res["train_maps_per_s"]["mixed_bfloat16"]
                                      / res["train_maps_per_s"]["float32"], 2)
    res["predict_speedup_bf16"] = round(res["predict_maps_per_s"]["mixed_bfloat16"]
                                        / res["predict_maps_per_s"]["float32"], 2)
    print(json.dumps(res, indent=1))
    from wafertk._atomic import atomic_path

    with atomic_path(OUT) as tmp:
        tmp.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
