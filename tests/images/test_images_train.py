"""wafertk.images.train / predict: run folders, the report, the loader, the sweep contract."""

import json

import numpy as np
import pytest

from wafertk.errors import ConfigError, WaferFileError, WafertkError

pytestmark = pytest.mark.tf

#: a tiny, fast recipe (1 epoch, 16 px, 4 filters)
TINY = {"data.image_size": 16, "model.conv_filters": [4], "model.dense_units": 8,
        "train.epochs": 1, "train.batch_size": 8, "augment.rotation": 10.0}


def test_run_folder_report_and_loader(image_folder, tmp_path):
    from wafertk.images.predict import ImagePredictor, evaluate_images, predict_images
    from wafertk.images.train import run_image_training
    from wafertk.registry import load_model

    train = image_folder("train", n=8)
    val = image_folder("val", n=4, seed=1)
    run = tmp_path / "run"
    lines = []
    report = run_image_training(TINY, run, data_dir=train, validation_dir=val,
                                on_epoch=lines.append)
    assert 0 <= report["accuracy"] <= 1 and 0 <= report["weighted_f1"] <= 1
    assert report["n"] == 8 and report["evaluated_on"] == "validation folder"
    assert len(lines) == 1 and lines[0].startswith("train epoch 1/1")
    for name in ("model.keras", "manifest.json", "config.yaml", "history.csv",
                 "curves_loss.png", "curves_accuracy.png", "class_balance.csv", "report.json",
                 "report.md", "report.html", "confusion_matrix.png", "roc_curve.png",
                 "predictions.csv"):
        assert (run / name).is_file(), name
    on_disk = json.loads((run / "report.json").read_text())
    assert on_disk["accuracy"] == report["accuracy"]
    assert on_disk["metrics"]["weighted_f1"] == report["weighted_f1"]
    man = json.loads((run / "manifest.json").read_text())
    assert man["kind"] == "image-classifier" and man["classes"] == ["cats", "dogs"]
    assert man["input_size"] == 16 and man["extra"]["model"] == "small_convnet"
    assert "image_size: 16" in (run / "config.yaml").read_text()
    assert not list(tmp_path.glob(".run*"))  # nothing staged is left

    pred = load_model(run)
    assert isinstance(pred, ImagePredictor)
    files = sorted(str(p) for p in (val / "cats").iterdir())
    proba = pred.predict_proba(files)
    assert proba.shape == (4, 2) and np.allclose(proba.sum(axis=1), 1)
    x = np.zeros((2, 16, 16, 3), np.float32)
    assert pred.predict(x).shape == (2,)
    with pytest.raises(WafertkError, match="expected"):
        pred.predict_proba(np.zeros((2, 8, 8, 3)))

    ev = evaluate_images(run, val, tmp_path / "eval")
    assert ev["n"] == 8 and {"accuracy", "weighted_f1", "metrics"} <= set(ev)
    assert (tmp_path / "eval" / "report.html").is_file()
    res = predict_images(run, [val / "dogs", files[0]], tmp_path / "preds.csv")
    assert res["n"] == 5
    head = (tmp_path / "preds.csv").read_text().splitlines()[0]
    assert head.startswith("file,class,probability")


def test_multiclass_stratified_split_and_softmax(image_folder, tmp_path):
    from wafertk.images.train import run_image_training

    data = image_folder(classes=("birds", "cats", "dogs"), n=10)
    report = run_image_training({**TINY, "augment.enabled": False}, tmp_path / "run",
                                data_dir=data)
    assert report["evaluated_on"] == "test split" and report["n"] == 6  # 20 % of 3 x 10
    assert report["binary"] is None and len(report["metrics"]["classes"]) == 3
    extra = report["extra"]
    assert extra["images"] == {"train": 18, "validation": 6, "test": 6, "skipped": 0}
    assert "stratified 0.6/0.2/0.2 by seed 0" in extra["split"]


def test_transfer_two_phases(image_folder, tmp_path):
    from wafertk.images.train import run_image_training

    data = image_folder(n=6, size=40)
    report = run_image_training(
        {"model.name": "squeezenet", "data.image_size": 40, "model.dense_units": 0,
         "train.epochs": 1, "train.batch_size": 8, "augment.enabled": False,
         "fine_tune.enabled": True, "fine_tune.epochs": 1,
         "fine_tune.from_layer": "fire9_squeeze1x1"},
        tmp_path / "run", data_dir=data)
    phases = report["extra"]["phases"]
    assert set(phases) == {"train", "fine_tune"}
    assert phases["train"]["trainable_params"] < phases["fine_tune"]["trainable_params"]
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert [r.split(",")[1] for r in history[1:]] == ["train", "fine_tune"]


def test_bad_config_and_data_fail_before_training(image_folder, tmp_path):
    from wafertk.images.train import run_image_training

    data = image_folder(n=4)
    with pytest.raises(ConfigError, match=r"images.yaml.*unknown key 'train.epoch'"):
        run_image_training({"train.epoch": 1}, tmp_path / "a", data_dir=data)
    with pytest.raises(ConfigError, match=r"model.dropout: 1.5 is not in \[0, 1\)"):
        run_image_training({"model.dropout": 1.5}, tmp_path / "a", data_dir=data)
    with pytest.raises(ConfigError, match="image_size: 20 is too small for xception"):
        run_image_training({"model.name": "xception", "data.image_size": 20},
                           tmp_path / "a", data_dir=data)
    with pytest.raises(ConfigError, match="small_convnet is trained from scratch"):
        run_image_training(TINY, tmp_path / "a", data_dir=data, weights=tmp_path / "w.h5")
    with pytest.raises(WaferFileError, match="no such folder"):
        run_image_training(TINY, tmp_path / "a", data_dir=tmp_path / "nope")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epochs: 0\n")
    with pytest.raises(ConfigError, match=r"c.yaml: train.epochs: 0 is not >= 1"):
        run_image_training({}, tmp_path / "a", data_dir=data, config=cfg)
    assert not (tmp_path / "a").exists()


def test_failed_training_leaves_nothing(image_folder, tmp_path, monkeypatch):
    from wafertk.images import train as mod

    data = image_folder(n=4)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("wafertk.images.train.save_config", boom)
    with pytest.raises(OSError, match="No space left"):
        mod.run_image_training(TINY, tmp_path / "run", data_dir=data)
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]


def test_build_for_lr_find(image_folder):
    from wafertk.images.train import build_for_lr_find

    model, ds = build_for_lr_find(TINY, data_dir=image_folder(n=5))
    x, y = next(iter(ds))
    assert tuple(x.shape[1:]) == (16, 16, 3) and tuple(y.shape[1:]) == (1,)
    assert model.optimizer is not None and model.compiled_loss is not None or model.loss
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])


def test_cosine_schedule_with_warmup():
    from wafertk.images.train import learning_rate

    assert learning_rate(1e-3) == 1e-3
    sched = learning_rate(1e-3, "cosine", epochs=4, steps_per_epoch=10, warmup_epochs=1)
    lr = [float(sched(s)) for s in (0, 5, 10, 25, 40)]
    assert lr[0] == pytest.approx(0.0, abs=1e-9) and lr[1] == pytest.approx(5e-4)
    assert lr[2] == pytest.approx(1e-3)  # peak at the end of the warm-up
    assert lr[2] > lr[3] > lr[4] and lr[4] == pytest.approx(0.0, abs=1e-9)
    plain = learning_rate(1e-3, "cosine", epochs=2, steps_per_epoch=5)
    assert float(plain(0)) == pytest.approx(1e-3) and float(plain(10)) == pytest.approx(0.0)


def test_vgg_blocks_cosine_and_split_without_test(image_folder, tmp_path):
    from wafertk.images.train import run_image_training

    data = image_folder(classes=("birds", "cats", "dogs"), n=10)
    report = run_image_training(
        {**TINY, "model.convs_per_block": 2, "train.lr_schedule": "cosine",
         "train.epochs": 2, "train.warmup_epochs": 1, "data.split": [0.8, 0.2, 0.0],
         "train.early_stopping_patience": 0},
        tmp_path / "run", data_dir=data)
    assert report["evaluated_on"] == "validation split" and report["n"] == 6
    cfg = (tmp_path / "run" / "config.yaml").read_text()
    assert "convs_per_block: 2" in cfg and "lr_schedule: cosine" in cfg


def test_schedule_config_errors(image_folder, tmp_path):
    from wafertk.images.train import run_image_training

    data = image_folder(n=4)
    with pytest.raises(ConfigError, match="warmup_epochs.*lr_schedule: cosine"):
        run_image_training({**TINY, "train.warmup_epochs": 1}, tmp_path / "a", data_dir=data)
    with pytest.raises(ConfigError, match="warmup_epochs: 3 must be fewer than epochs"):
        run_image_training({**TINY, "train.lr_schedule": "cosine", "train.warmup_epochs": 3,
                            "train.epochs": 2}, tmp_path / "a", data_dir=data)
    with pytest.raises(ConfigError, match="lr_schedule"):
        run_image_training({**TINY, "train.lr_schedule": "step"}, tmp_path / "a",
                           data_dir=data)
    with pytest.raises(ConfigError, match="convs_per_block"):
        run_image_training({**TINY, "model.convs_per_block": 9}, tmp_path / "a", data_dir=data)
    with pytest.raises(ConfigError, match="block"):
        run_image_training({**TINY, "model.block": "dense"}, tmp_path / "a", data_dir=data)
    with pytest.raises(ConfigError, match="pooling"):
        run_image_training({**TINY, "model.pooling": "max"}, tmp_path / "a", data_dir=data)
    with pytest.raises(ConfigError, match="image_size: 8 is too small.*needs >= 16"):
        run_image_training({**TINY, "model.conv_filters": [4, 4, 4, 4], "data.image_size": 8},
                           tmp_path / "a", data_dir=data)
    assert not (tmp_path / "a").exists()


def test_residual_separable_run_trains_reloads_and_predicts(image_folder, tmp_path):
    """model.block: residual_separable through the run folder, its config and the loader."""
    from wafertk.images.train import run_image_training
    from wafertk.registry import load_model

    data = image_folder(n=6)
    run = tmp_path / "run"
    # 4 blocks on 8 px: too small for plain blocks (above), fine for residual ones (8 -> 4 by
    # the stem, then 2, 1, 1, 1)
    report = run_image_training({**TINY, "model.block": "residual_separable",
                                 "model.pooling": "global_average", "data.image_size": 8,
                                 "model.conv_filters": [4, 4, 4, 4],
                                 "model.convs_per_block": 2}, run, data_dir=data)
    assert 0 <= report["accuracy"] <= 1
    cfg = (run / "config.yaml").read_text()
    assert "block: residual_separable" in cfg and "pooling: global_average" in cfg
    net = load_model(run).model
    assert net.get_layer("sepconv1_2") is not None and net.get_layer("add1") is not None


def test_mixed_bfloat16_run_trains_reloads_and_predicts(image_folder, tmp_path):
    """bf16 compute with augmentation on, saved, reloaded by the project's loader."""
    from wafertk.images.train import run_image_training
    from wafertk.registry import load_model

    train = image_folder("train", n=6)
    val = image_folder("val", n=3, seed=1)
    run = tmp_path / "run"
    report = run_image_training({**TINY, "train.mixed_precision": True,
                                 "model.batch_norm": True, "augment.shift_mode": "pixels"},
                                run,
                                data_dir=train, validation_dir=val)
    assert 0 <= report["accuracy"] <= 1
    pred = load_model(run)
    net = pred.model
    assert net.get_layer("conv1").compute_dtype == "bfloat16"
    assert type(net.get_layer("aug_shift")).__name__ == "RandomPixelShift"
    assert net.get_layer("preprocess").compute_dtype == "float32"  # pixels kept exact
    proba = pred.predict_proba(np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)))
    assert proba.dtype == np.float64 or proba.dtype == np.float32
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)


def test_tta_views_are_the_documented_shifts_and_mirrors():
    """tta_views: view [i, j] is pixel [i + dy, j + dx] of the (mirrored) image, clipped to
    the image; arrays and tensors (the streamed batches) give the same views."""
    import tensorflow as tf

    from wafertk.images.predict import _view, tta_views

    assert tta_views("none", 32) == [(False, 0, 0)]
    assert tta_views("hflip", 32) == [(False, 0, 0), (True, 0, 0)]
    views = tta_views("hflip-shift", 32)
    assert len(views) == 10 and views[0] == (False, 0, 0)
    assert {(False, 2, 0), (False, -2, 0), (True, 0, 2), (True, 0, -2)} <= set(views)
    assert tta_views("hflip-shift", 5)[1] == (False, 1, 0)  # at least one pixel
    x = np.arange(2 * 5 * 5 * 3, dtype="float32").reshape(2, 5, 5, 3)
    down = np.asarray(_view(x, (False, 1, 0)))
    np.testing.assert_array_equal(down[:, :4], x[:, 1:])
    np.testing.assert_array_equal(down[:, 4], x[:, 4])  # the last row repeated
    mirrored = x[:, :, ::-1]
    right = np.asarray(_view(x, (True, 0, 2)))
    np.testing.assert_array_equal(right[:, :, :3], mirrored[:, :, 2:])
    np.testing.assert_array_equal(right[:, :, 3:], mirrored[:, :, 4:].repeat(2, axis=2))
    for view in tta_views("hflip-shift", 5):
        np.testing.assert_array_equal(np.asarray(_view(tf.constant(x), view)),
                                      np.asarray(_view(x, view)))


def test_hflip_tta_is_the_mean_over_the_mirror_images(image_folder, tmp_path):
    """tta='hflip': files and arrays give the mean of the image's and its mirror's output,
    in file order across uneven batches (so does 'hflip-shift' over its ten views); the
    report records it; unknown names are errors."""
    from wafertk.images.data import make_dataset
    from wafertk.images.predict import evaluate_images, predict_images
    from wafertk.registry import load_model

    train = image_folder("train", classes=("cats", "dogs", "birds"), n=6)
    run = tmp_path / "run"
    run_image_training_tiny(run, train)
    pred = load_model(run)
    files = sorted(str(p) for p in train.rglob("*.*g"))  # 18 files: batches of 4 -> 4,4,4,4,2
    # the files decoded and resized as the predictor reads them
    x = np.concatenate(list(make_dataset(files, None, image_size=16,
                                         batch_size=4).as_numpy_iterator()))
    raw = pred.model.predict(x, verbose=0)
    mirror = pred.model.predict(x[:, :, ::-1], verbose=0)
    want = 0.5 * (raw + mirror)
    assert not np.allclose(raw, mirror, atol=1e-4)  # the flip changes the outputs
    np.testing.assert_allclose(pred.predict_proba(x, batch_size=4, tta="hflip"), want,
                               atol=1e-5)
    np.testing.assert_allclose(pred.predict_proba(files, batch_size=4, tta="hflip"), want,
                               atol=1e-5)
    np.testing.assert_allclose(pred.predict_proba(files, batch_size=4), raw, atol=1e-5)
    # fewer files than one batch
    np.testing.assert_allclose(pred.predict_proba(files[:3], batch_size=64, tta="hflip"),
                               want[:3], atol=1e-5)
    # the flip is left-right (axis W of NHWC): an image made symmetric by hand gives
    # the same output with and without it
    sym = x[:1].copy()
    sym[:, :, 8:] = sym[:, :, 7::-1]
    np.testing.assert_allclose(pred.predict_proba(sym, tta="hflip"), pred.predict_proba(sym),
                               atol=1e-6)
    # hflip-shift: the image and its mirror, each also shifted by 1 pixel (16 px / 16) up,
    # down, left and right with the edge repeated (computed here by edge padding)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    views = [padded[:, 1 + dy:17 + dy, 1 + dx:17 + dx] for dy, dx in
             ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))]
    views += [v[:, :, ::-1] for v in views]  # = the mirror's shifts (the shifts are symmetric)
    want10 = np.mean([pred.model.predict(v, verbose=0) for v in views], axis=0)
    assert not np.allclose(want10, want, atol=1e-4)  # the shifts change the outputs
    for images in (x, files):
        np.testing.assert_allclose(pred.predict_proba(images, batch_size=4,
                                                      tta="hflip-shift"), want10, atol=1e-5)
    np.testing.assert_allclose(pred.predict_proba(files[:3], batch_size=64,
                                                  tta="hflip-shift"), want10[:3], atol=1e-5)
    ev = evaluate_images(run, train, tmp_path / "eval", batch_size=4, tta="hflip")
    assert ev["extra"]["tta"] == "hflip"
    with pytest.raises(WafertkError, match="unknown test-time augmentation 'rot4'"):
        pred.predict_proba(x, tta="rot4")
    with pytest.raises(WafertkError, match="expected none or hflip or hflip-shift"):
        predict_images(run, files, tmp_path / "p.csv", tta="vflip")
    assert not (tmp_path / "p.csv").exists()
    assert predict_images(run, files[:2], tmp_path / "p.csv", tta="hflip")["tta"] == "hflip"


def run_image_training_tiny(run, train):
    from wafertk.images.train import run_image_training

    return run_image_training({**TINY, "data.split": [0.7, 0.3, 0.0]}, run, data_dir=train)
