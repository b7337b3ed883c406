"""Self-supervised pretraining of the pattern classifier's convolutions on unlabeled maps
(rotation prediction), then the shipped classifier recipe, on the production validation lots.

The try the production-accuracy issue lists: pretraining on the 200,000 real unlabeled WM-811K
maps (``../shared/data/wm811k/wm811k_unlabeled_200k.npz``). The pretext task is rotation
prediction (Gidaris et al., 2018; the anomaly detector ``wafertk.anomaly`` uses the same task):
each unlabeled map, resized as the classifier resizes it, is turned by a random multiple of 90
degrees and the network's convolutional trunk (``configs/classifier.yaml``'s blocks, up to the
global average pooling) plus a 4-way softmax head learns which. The trunk's layers are the
classifier's own (one Keras graph shares them), so the classifier then trains from the
pretrained convolutions with the packaged recipe unchanged (``wafertk.training.trainer``:
same data, lot-disjoint split, seed, class weights, augmentation, early stopping,
temperature), its run folder written as ``wafertk train classifier`` writes it.

Unlabeled wafers of any WM-811K Test A lot are left out (no wafer of a scored lot is
trained on). The run is scored on the **production validation** defect wafers (never the
production test) by ``benchmarks/experiments.py``'s scorer and recorded in
``benchmarks/results/experiments.json`` (``--name``, default ``cls-rotpre-full``), beside the
shipped classifier (same recipe and seed without pretraining, ``cls-shipped``) and its
seed-1 rerun (``cls-seed1-full``).

    WORK=/tmp/wafertk-shipped python benchmarks/pretrain_rotation.py [--n 50000]
        [--pretrain-epochs 3] [--set train.epochs=12 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
WORK = Path(os.environ.get("WORK", "/tmp/wafertk-shipped"))


def rotation_batches(maps: np.ndarray, batch_size: int, seed: int):
    """A ``tf.data`` pipeline of (one-hot map turned by k x 90 degrees, k), k drawn per map
    and epoch (op-level seeds, as the trainer's augmentation; no global seed)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(maps).shuffle(
        len(maps), seed=seed, reshuffle_each_iteration=True)

    def turn(x):
        k = tf.random.uniform([], 0, 4, dtype=tf.int32, seed=seed)
        return tf.image.rot90(x[..., None], k)[..., 0], k

    def to_model(x, k):
        return tf.one_hot(tf.cast(x, tf.int32), 3, dtype=tf.float32), k

    opts = tf.data.Options()
    opts.autotune.enabled = False
    opts.deterministic = True
    return ds.map(turn).batch(batch_size).map(to_model).prefetch(2).with_options(opts)


def main() -> int:
    from experiments import parse_sets, record, score
    from pseudo_labels import unlabeled_sample

    from wafertk.config import load_config
    from wafertk.data import read_wafers
    from wafertk.data.preprocess import resize_maps
    from wafertk.training import CnnTrainConfig
    from wafertk.training.trainer import (
        build_model,
        calibrate_and_decide,
        fit_model,
        prepare_data,
        write_run_folder,
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="cls-rotpre-full")
    ap.add_argument("--n", type=int, default=50_000, help="unlabeled maps for the pretext task")
    ap.add_argument("--pretrain-epochs", type=int, default=3)
    ap.add_argument("--pretrain-lr", type=float, default=2e-3)
    ap.add_argument("--set", action="append", default=[], dest="sets",
                    help="classifier config overrides (as experiments.py train)")
    args = ap.parse_args()

    import keras

    sets = parse_sets(args.sets)
    cfg = load_config(CnnTrainConfig, ROOT / "configs" / "classifier.yaml", sets)
    t0 = time.perf_counter()
    ws = read_wafers(WORK / "train.h5")
    data = prepare_data(ws, cfg, "classifier", data_path=str(WORK / "train.h5"))
    model = build_model(cfg, data)

    # the pretext task on the classifier's own trunk
    uws, left_out = unlabeled_sample(args.n, cfg.train.seed)
    umaps = resize_maps(uws, cfg.data.input_size)
    if cfg.fine_tune.enabled:
        raise SystemExit("a transfer architecture's fine-tuning is not part of this try")
    head = keras.layers.Dense(4, activation="softmax", name="rotation",
                              kernel_initializer=keras.initializers.GlorotUniform(
                                  seed=cfg.train.seed))(
        model.get_layer("gap").output)
    rot = keras.Model(model.inputs[0], head, name="rotation_pretext")
    rot.compile(optimizer=keras.optimizers.Adam(args.pretrain_lr),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t1 = time.perf_counter()
    hist = rot.fit(rotation_batches(umaps, cfg.train.batch_size, cfg.train.seed),
                   epochs=args.pretrain_epochs, verbose=0,
                   callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: print(
                       f"[{args.name}] rotation epoch {e + 1}/{args.pretrain_epochs} "
                       f"loss={logs['loss']:.4f} accuracy={logs['accuracy']:.4f}",
                       flush=True))])
    pre_s = time.perf_counter() - t1
    pretext = {"unlabeled_maps": int(len(uws)), "test_a_lot_wafers_left_out": left_out,
               "epochs": args.pretrain_epochs, "learning_rate": args.pretrain_lr,
               "seconds": round(pre_s, 1),
               "loss": [float(v) for v in hist.history["loss"]],
               "accuracy": [float(v) for v in hist.history["accuracy"]]}

    # the shipped recipe from the pretrained trunk
    fit = fit_model(model, data, cfg, on_epoch=lambda line: print(f"[{args.name}] {line}",
                                                                  flush=True))
    decision = calibrate_and_decide(model, data, cfg)
    out = WORK / "experiments" / args.name
    write_run_folder(out, cfg, data, model, fit, decision,
                     seconds=time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    figs = score(out, "classifier")
    entry = {"task": "classifier", "overrides": sets, "figures": figs, "model": str(out),
             "train": {"seconds": round(seconds, 1), "best_epoch": fit.best_epoch,
                       "epochs_run": len(fit.history["loss"])},
             "pretext": pretext,
             "note": (f"rotation-prediction pretraining of the classifier's convolutions on "
                      f"{len(uws)} unlabeled maps ({args.pretrain_epochs} epochs), then the "
                      f"shipped classifier recipe")}
    record(args.name, entry)
    print(json.dumps({"pretext": pretext, "figures": figs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
