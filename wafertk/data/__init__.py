"""Wafer-map data layer: the :class:`WaferSet` container, ``wafers.h5`` I/O, preprocessing,
lot-disjoint splits and the synthetic generator.

Nothing here imports TensorFlow.
"""

from wafertk.data.h5 import WaferFile, WaferWriter, iter_wafers, read_wafers, write_wafers
from wafertk.data.importers import import_lswmd, import_npz, wafer_info
from wafertk.data.legacy import read_lswmd
from wafertk.data.waferset import (
    DEFECT_CLASSES,
    NONE_CLASS,
    WM811K_CLASSES,
    WaferSet,
    check_wafer_maps,
)

__all__ = [
    "DEFECT_CLASSES",
    "NONE_CLASS",
    "WM811K_CLASSES",
    "WaferFile",
    "WaferWriter",
    "WaferSet",
    "check_wafer_maps",
    "import_lswmd",
    "import_npz",
    "iter_wafers",
    "read_lswmd",
    "read_wafers",
    "wafer_info",
    "write_wafers",
]
