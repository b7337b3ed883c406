"""The XGBoost baseline over wafer-map features.

Importing this package does not import XGBoost; fitting, predicting and loading do.
"""

from wafertk.baseline.model import DEFAULT_XGB_SETS, KIND, MODEL_FILE, XGBoostWaferClassifier
from wafertk.baseline.train import XGBoostTrainConfig, split_for_training, train_xgboost

__all__ = ["DEFAULT_XGB_SETS", "KIND", "MODEL_FILE", "XGBoostTrainConfig", "XGBoostWaferClassifier",
           "split_for_training", "train_xgboost"]
