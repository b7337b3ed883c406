"""wafertk: find and name defect patterns on semiconductor wafer maps.

A wafer map is a die grid: 0 = no die, 1 = pass, 2 = fail. Importing this package is cheap:
TensorFlow, XGBoost and scikit-image are imported only by the functions that need them.
"""

from wafertk._version import __version__
from wafertk.errors import WaferFileError, WafertkError

__all__ = ["__version__", "WafertkError", "WaferFileError"]
