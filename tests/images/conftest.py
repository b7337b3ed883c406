"""Tiny generated image folders for the image-classifier tests."""

from pathlib import Path

import numpy as np
import pytest

#: mean RGB colour of each generated class (learnable in one epoch, not asserted)
COLOURS = {"cats": (200, 60, 60), "dogs": (60, 60, 200), "birds": (60, 200, 60)}


def make_image_folder(root: Path, classes=("cats", "dogs"), n: int = 10, size: int = 24,
                      seed: int = 0) -> Path:
    """``root/<class>/img_i.{png,jpg}``: coloured noise images, alternating PNG and JPEG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            base = np.array(COLOURS.get(c, (128, 128, 128)), dtype=float)
            img = np.clip(base + rng.normal(0, 30, (size, size + 4, 3)), 0, 255).astype(np.uint8)
            ext = "png" if i % 2 else "jpg"
            Image.fromarray(img).save(root / c / f"img_{i}.{ext}")
    return root


@pytest.fixture
def image_folder(tmp_path):
    """Factory: ``image_folder(name, classes=..., n=..., size=...)`` -> a new folder."""
    def make(name="data", **kwargs):
        return make_image_folder(tmp_path / name, **kwargs)

    return make
