"""Wafer-map data layer: the :class:`WaferSet` container, ``wafers.h5`` I/O, preprocessing,
lot-disjoint splits and the synthetic generator.

Nothing here imports TensorFlow.
"""

from wafertk.data.h5 import WaferFile, iter_wafers, read_wafers, write_wafers
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
    "WaferSet",
    "check_wafer_maps",
    "iter_wafers",
    "read_wafers",
    "write_wafers",
]
