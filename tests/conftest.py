"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest

#: ``../shared/data`` beside the project root: the real public datasets (see README.md,
#: "Tests that need ../shared").
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real public datasets).

    Missing: the test is skipped with a message, except under ``CI=true``, where it fails
    (a CI run must not pass by skipping the tests on real data).
    """
    if not SHARED_DATA.is_dir():
        msg = (f"shared data not found at {SHARED_DATA}: these tests need the real WM-811K "
               "files (README.md, 'Tests that need ../shared')")
        if _ci():
            pytest.fail(f"{msg}; CI=true, so this is a failure, not a skip", pytrace=False)
        pytest.skip(msg)
    return SHARED_DATA


#: The real ImageNet SqueezeNet weights file of ``../shared/data/weights``.
SQUEEZENET_WEIGHTS = "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5"


@pytest.fixture(scope="session")
def squeezenet_weights(shared_data) -> Path:
    """The real SqueezeNet weights file (missing: skipped, or failed under ``CI=true``)."""
    path = shared_data / "weights" / SQUEEZENET_WEIGHTS
    if not path.is_file():
        msg = f"{path} not found"
        if _ci():
            pytest.fail(f"{msg}; CI=true, so this is a failure, not a skip", pytrace=False)
        pytest.skip(msg)
    return path
