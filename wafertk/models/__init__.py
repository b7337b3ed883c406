"""Model files: manifests, loading any saved wafertk model, and the Keras model builders.

Importing this package does not import TensorFlow; :mod:`wafertk.models.cnn` does.
"""

from wafertk.models.manifest import (
    MANIFEST_NAME,
    Manifest,
    load_manifest,
    load_predictor,
    register_loader,
    write_manifest,
)

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "load_manifest",
    "load_predictor",
    "register_loader",
    "write_manifest",
]
