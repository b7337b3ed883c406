"""Image classification on folders with one sub-folder per class (issue 10).

The same machinery as the wafer CNNs: models built through :mod:`wafertk.registry`
(``image_small_convnet``, ``image_squeezenet``, ``image_vgg16``, ...), run folders with
``model.keras`` + ``manifest.json`` (kind :data:`IMAGE_KIND`), the shared evaluation report
(:func:`wafertk.evaluate.write_evaluation_report`) and configs checked like every other
(:mod:`wafertk.images.config`).

* :mod:`wafertk.images.data`: scan, class balance, stratified split, streamed ``tf.data``,
  ``.npy`` export (no TensorFlow at import);
* :mod:`wafertk.images.models`: builders (imports Keras);
* :mod:`wafertk.images.train`: training runs, evaluation, prediction, the loader.

See docs/images.md.
"""

#: Manifest kind of a trained image classifier.
IMAGE_KIND = "image-classifier"

__all__ = ["IMAGE_KIND"]
