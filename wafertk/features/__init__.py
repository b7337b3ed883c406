"""Wafer-map features: plain functions over maps and scikit-learn transformers.

Feature sets (:data:`FEATURE_SETS`):

========== ============================================================== =========
set        what                                                           columns
========== ============================================================== =========
gabor      Gabor bank (3 frequencies x 4 orientations) on the resized     48
           fail channel: mean, std, max, energy of each magnitude
filters    uniform LBP histogram (P=8, R=1) of the resized map (kept by   10
           ablation; Sobel and Sato ridge are available candidates)
density    fail density in 13 regions (4 edge quarters + 3x3 inner grid)  13
radon      Radon profile, 20 means + 20 stds (cubic interpolation)        40
geometry   most salient fail region after a median filter                 8
meta       die-metadata vector (same as the CNN's)                        17
spatial    rotation-invariant arrangement of the fails: densest/sparsest  20
           sector per ring, neighbour clustering, raw fail regions, lines
local      short straight fail segments (5, 9, 15 dies; scratches) and    11
           the fail cluster at the wafer centre
========== ============================================================== =========

Functions work on native-size maps (density, radon, geometry, meta, spatial, local) or on the
fail-preserving resize (gabor, filters, default 64 x 64). Nothing here imports TensorFlow or
XGBoost.
"""

from wafertk.features.extract import (
    DEFAULT_SETS,
    FEATURE_SETS,
    extract_features,
    extract_file,
    feature_names,
    make_feature_union,
    parse_sets,
)
from wafertk.features.filters import filter_features
from wafertk.features.gabor import (
    gabor_features,
    gabor_responses,
    gabor_responses_reference,
)
from wafertk.features.local import local_features
from wafertk.features.spatial import spatial_features
from wafertk.features.transformers import (
    DensityFeatures,
    FilterFeatures,
    GaborFeatures,
    GeometryFeatures,
    LocalFeatures,
    MetaFeatures,
    RadonFeatures,
    SpatialFeatures,
)
from wafertk.features.wu import (
    density_features,
    geometry_features,
    radon_features,
    sinogram,
)

__all__ = [
    "DEFAULT_SETS",
    "FEATURE_SETS",
    "DensityFeatures",
    "FilterFeatures",
    "GaborFeatures",
    "GeometryFeatures",
    "LocalFeatures",
    "MetaFeatures",
    "RadonFeatures",
    "SpatialFeatures",
    "density_features",
    "extract_features",
    "extract_file",
    "feature_names",
    "filter_features",
    "gabor_features",
    "gabor_responses",
    "gabor_responses_reference",
    "geometry_features",
    "make_feature_union",
    "parse_sets",
    "radon_features",
    "local_features",
    "spatial_features",
    "sinogram",
]
