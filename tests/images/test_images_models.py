"""wafertk.images.models: builders, preprocessing, no network, SqueezeNet's real weights."""

import socket

import numpy as np
import pytest

pytestmark = pytest.mark.tf

WEIGHTS = "weights/squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5"


def test_small_convnet_heads_and_augmentation():
    from wafertk.images.models import build_small_convnet

    aug = {"rotation": 45, "shear": 0.2, "width_shift": 0.1, "height_shift": 0.1,
           "zoom": 0.2, "horizontal_flip": True, "vertical_flip": True}
    two = build_small_convnet((32, 32, 3), 2, conv_filters=(4, 8), dense_units=8,
                              batch_norm=True, l2=1e-4, augment=aug, seed=1)
    names = [layer.name for layer in two.layers]
    assert {"aug_flip", "aug_rotation", "aug_shear", "aug_shift", "aug_zoom", "bn1"} <= set(names)
    assert two.output_shape == (None, 1) and two.layers[-1].activation.__name__ == "sigmoid"
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    # augmentation is off at inference: two calls agree
    np.testing.assert_allclose(two(x, training=False), two(x, training=False))
    three = build_small_convnet((32, 32, 3), 3, conv_filters=(4,), dense_units=0)
    out = np.asarray(three(x))
    assert out.shape == (3, 3) and np.allclose(out.sum(axis=1), 1, atol=1e-5)
    assert not any(n.startswith("aug_") for n in (la.name for la in three.layers))


def test_pixel_shift_moves_each_image_by_whole_pixels_and_reloads(tmp_path):
    """RandomPixelShift: each image is the input shifted by its own whole-pixel offsets within
    the reach, edge pixels repeated; identity at inference; saved and reloaded by name."""
    import keras

    from wafertk.errors import ConfigError
    from wafertk.images.models import RandomPixelShift, augmentation_layers, build_small_convnet

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 16, 16, 3)).astype("float32")
    layer = RandomPixelShift(0.125, 0.25, seed=3)  # rows +-2, columns +-4
    np.testing.assert_array_equal(layer(x, training=False), x)
    out = np.asarray(layer(x, training=True))
    padded = np.pad(x, ((0, 0), (2, 2), (4, 4), (0, 0)), mode="edge")
    offsets = []
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-4, 5)
                 if np.array_equal(out[i], padded[i, 2 + dy:18 + dy, 4 + dx:20 + dx])]
        assert len(found) == 1, f"image {i} is no whole-pixel shift within the reach"
        offsets.append(found[0])
    assert len(set(offsets)) > 4  # offsets drawn per image, not per batch
    np.testing.assert_array_equal(RandomPixelShift(0, 0)(x, training=True), x)
    with pytest.raises(ValueError, match="width_factor must be in"):
        RandomPixelShift(0.1, 1.5)
    # a small factor still shifts (by one pixel), where rounding alone would give 0
    tiny = np.asarray(RandomPixelShift(0.01, 0, seed=0)(x, training=True))
    assert not np.array_equal(tiny, x)
    assert all(any(np.array_equal(tiny[i], np.pad(x[i], ((1, 1), (0, 0), (0, 0)),
                                                  mode="edge")[1 + d:17 + d])
                   for d in (-1, 0, 1)) for i in range(len(x)))
    with pytest.raises(ConfigError, match="unknown shift_mode 'bilinear'"):
        augmentation_layers(shift_mode="bilinear")

    aug = {"rotation": 0, "shear": 0, "width_shift": 0.1, "height_shift": 0.1, "zoom": 0,
           "horizontal_flip": False, "shift_mode": "pixels"}
    model = build_small_convnet((16, 16, 3), 3, conv_filters=(4,), dense_units=0,
                                augment=aug, seed=0)
    assert isinstance(model.get_layer("aug_shift"), RandomPixelShift)
    model.save(tmp_path / "m.keras")
    back = keras.models.load_model(tmp_path / "m.keras")
    again = back.get_layer("aug_shift")
    assert isinstance(again, RandomPixelShift)
    assert (again.height_factor, again.width_factor, again.seed) == (0.1, 0.1, 0)
    np.testing.assert_allclose(back(x, training=False), model(x, training=False), atol=1e-6)
    assert not np.array_equal(again(x, training=True), x)  # still shifts in training


def test_preprocess_modes():
    from wafertk.images.models import ImagePreprocess

    x = np.array([[[[255.0, 0.0, 127.5]]]], dtype="float32")
    np.testing.assert_allclose(ImagePreprocess("scale")(x), [[[[1, 0, 0.5]]]])
    np.testing.assert_allclose(ImagePreprocess("tf")(x), [[[[1, -1, 0]]]])
    # caffe: BGR order, ImageNet means subtracted, no scaling
    np.testing.assert_allclose(ImagePreprocess("caffe")(x),
                               [[[[127.5 - 103.939, 0 - 116.779, 255 - 123.68]]]], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown preprocessing mode"):
        ImagePreprocess("bgr")


def test_building_transfer_models_never_touches_the_network(monkeypatch):
    import keras

    from wafertk.images.models import build_transfer_model

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    for backbone in ("mobilenet_v2", "squeezenet"):
        model = build_transfer_model(backbone, (48, 48, 3), 3, dense_units=8)
        assert model.output_shape == (None, 3)
        assert not model.get_layer(backbone).trainable


def test_bad_backbone_sizes_and_weights(tmp_path):
    from wafertk.errors import ConfigError, ModelFileError
    from wafertk.images.models import build_transfer_model

    with pytest.raises(ConfigError, match="did you mean 'vgg16'"):
        build_transfer_model("vgg_16", (32, 32, 3))
    with pytest.raises(ConfigError, match="xception needs images of at least 71 px"):
        build_transfer_model("xception", (32, 32, 3))
    with pytest.raises(ModelFileError, match="no such weights file"):
        build_transfer_model("mobilenet_v2", (32, 32, 3), weights=tmp_path / "none.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ModelFileError, match="bad.h5: not an HDF5 weights file"):
        build_transfer_model("squeezenet", (48, 48, 3), weights=bad)
    with pytest.raises(ModelFileError, match="bad.h5: cannot load into mobilenet_v2"):
        build_transfer_model("mobilenet_v2", (32, 32, 3), weights=bad)


def test_unfreeze_from_a_layer():
    from wafertk.errors import ConfigError
    from wafertk.images.models import build_transfer_model, unfreeze_from

    model = build_transfer_model("squeezenet", (48, 48, 3), 2, dense_units=0)
    assert len(model.trainable_weights) == 2  # the head only
    n = unfreeze_from(model, "squeezenet", "fire9/squeeze1x1")  # the file's name works too
    assert n == 6  # fire9: squeeze, expand1x1, expand3x3 (kernel + bias each)
    assert unfreeze_from(model, "squeezenet") == 50
    with pytest.raises(ConfigError, match="not a layer of squeezenet.*fire6_squeeze1x1"):
        unfreeze_from(model, "squeezenet", "fire6_sqeeze1x1")


def test_real_squeezenet_weights_load(shared_data):
    import h5py

    from wafertk.images.models import build_squeezenet, load_squeezenet_weights

    path = shared_data / WEIGHTS
    if not path.is_file():
        pytest.skip(f"{path} not found")
    model = build_squeezenet((227, 227, 3))
    assert model.output_shape == (None, 13, 13, 512)
    assert model.count_params() == 722_496  # the file's parameter count
    assert load_squeezenet_weights(model, path) == 25
    with h5py.File(path, "r") as f:
        g = f["fire9/expand3x3"]
        kernel, bias = (np.asarray(g[n]) for n in g.attrs["weight_names"])
    got = model.get_layer("fire9_expand3x3").get_weights()
    np.testing.assert_array_equal(got[0], kernel)
    np.testing.assert_array_equal(got[1], bias)
    # a real photo through caffe preprocessing gives finite, non-trivial features
    from wafertk.images.models import ImagePreprocess

    cats = sorted((shared_data / "cats_and_dogs" / "train" / "cats").glob("*.jpg"))[:2]
    if cats:
        from wafertk.images.data import load_images

        x = load_images([str(c) for c in cats], 227).astype("float32")
        feats = np.asarray(model(ImagePreprocess("caffe")(x), training=False))
        assert feats.shape == (2, 13, 13, 512) and np.isfinite(feats).all()
        assert (feats > 0).mean() > 0.05


def test_small_convnet_vgg_blocks_and_float32_outputs_under_bf16(tmp_path):
    import keras

    from wafertk.errors import ConfigError
    from wafertk.images.models import build_small_convnet
    from wafertk.images.train import _dtype_policy

    m = build_small_convnet((16, 16, 3), 3, conv_filters=(4, 8), convs_per_block=2,
                            dense_units=0, batch_norm=True)
    convs = [la.name for la in m.layers if isinstance(la, keras.layers.Conv2D)]
    assert convs == ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]
    assert sum(isinstance(la, keras.layers.MaxPooling2D) for la in m.layers) == 2
    with pytest.raises(ConfigError, match="convs_per_block"):
        build_small_convnet((16, 16, 3), 3, conv_filters=(4,), convs_per_block=0)

    before = keras.mixed_precision.global_policy().name
    with _dtype_policy("mixed_bfloat16"):
        bf = build_small_convnet((16, 16, 3), 3, conv_filters=(4,), dense_units=0)
    assert keras.mixed_precision.global_policy().name == before  # restored
    assert bf.get_layer("conv1").compute_dtype == "bfloat16"
    assert bf.get_layer("conv1").kernel.dtype == "float32"  # weights stay float32
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    out = bf(x)
    assert out.dtype == "float32" and np.allclose(np.asarray(out).sum(axis=1), 1, atol=1e-5)
    bf.save(tmp_path / "bf.keras")
    again = keras.models.load_model(tmp_path / "bf.keras")
    assert again.get_layer("conv1").compute_dtype == "bfloat16"
    np.testing.assert_allclose(again(x), out, atol=1e-6)


def test_residual_separable_blocks_shapes_shortcuts_and_reload(tmp_path):
    """The mini-Xception blocks: a 5x5 valid stem, per block two separable convs, a 3x3
    stride-2 pool and a strided 1x1 shortcut added; global pooling; reloads exactly."""
    import keras

    from wafertk.errors import ConfigError
    from wafertk.images.models import build_small_convnet

    # an odd side: a 2x2 pool or a valid 3x3 pool would give other sizes than the shortcut
    m = build_small_convnet((21, 21, 3), 2, conv_filters=(4, 8), convs_per_block=2,
                            dense_units=0, block="residual_separable",
                            pooling="global_average", l2=1e-4)
    assert m.get_layer("stem_conv").output.shape[1:] == (17, 17, 4)
    seps = [la.name for la in m.layers if isinstance(la, keras.layers.SeparableConv2D)]
    assert seps == ["sepconv1_1", "sepconv1_2", "sepconv2_1", "sepconv2_2"]
    pool = m.get_layer("pool1")
    assert pool.pool_size == (3, 3) and pool.strides == (2, 2)
    # 17 -> 9 -> 5 on both paths (ceil halving), or the Add would not build
    assert m.get_layer("add1").output.shape[1:] == (9, 9, 4)
    assert m.get_layer("add2").output.shape[1:] == (5, 5, 8)
    assert m.get_layer("shortcut2").input.shape[1:] == (9, 9, 4)  # the block's input
    assert m.get_layer("shortcut2").input is m.get_layer("add1").output
    assert m.get_layer("global_pool").output.shape[1:] == (8,)
    assert not any(getattr(la, "use_bias", False) for la in m.layers
                   if isinstance(la, (keras.layers.Conv2D, keras.layers.SeparableConv2D)))
    assert len(m.losses) == 2 * 4 + 3  # L2 on depthwise + pointwise kernels, stem, shortcuts
    x = np.random.default_rng(0).uniform(0, 255, (3, 21, 21, 3)).astype("float32")
    out = np.asarray(m(x))
    assert out.shape == (3, 1) and ((out > 0) & (out < 1)).all()
    m.save(tmp_path / "r.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "r.keras")(x), out,
                               atol=1e-6)
    plain = build_small_convnet((16, 16, 3), 3, conv_filters=(4,), dense_units=0,
                                pooling="global_average")
    assert plain.get_layer("global_pool").output.shape[1:] == (4,)
    with pytest.raises(ConfigError, match="unknown block 'dense'"):
        build_small_convnet((16, 16, 3), 2, block="dense")
    with pytest.raises(ConfigError, match="unknown pooling 'max'"):
        build_small_convnet((16, 16, 3), 2, pooling="max")
